"""Throughput of the training input pipeline vs. the training throughput of the CPU-sized 2D U-Net.

Measures samples/s of ``make_train_loader`` (read preprocessed case from the on-disk cache, random
patch, augmentation with the paper's defaults, batching) for

- the BUS configuration: BUSI (``$UNIFOCAL_DATA/BUSI``, else the 2D phantom at 128x128), resized to
  128x128, batch 8, whole images;
- a 3D configuration: MSD Hippocampus (``$UNIFOCAL_DATA/MSD_Task04_Hippocampus``, else the 3D
  phantom), patches 32x48x32, batch 2;

and, in the same run, training steps/s of the 2D U-Net with 16 base filters on 128x128, batch 8
(``unifocal.models.unet2d``; MONAI ``BasicUNet`` if unavailable), forward + backward + SGD step with
cross-entropy. Prints the ratio pipeline / model (target >= 3).

Usage::

    .venv/bin/python benchmarks/data.py [--batches 20] [--cases 48] [--num-workers 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch


def _data_root() -> Path | None:
    env = os.environ.get("UNIFOCAL_DATA")
    guess = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return guess if guess.is_dir() else None


def pipeline_rate(ds, ids, *, batch_size, patch_size, batches, num_workers, augment=True) -> float:
    """Samples/s of the training loader after a warm-up batch (cache already filled)."""
    from unifocal.data import make_train_loader

    loader = make_train_loader(ds, ids, batch_size=batch_size, patch_size=patch_size, augment=augment,
                               seed=0, num_workers=num_workers, samples_per_epoch=batch_size * (batches + 1))
    it = iter(loader)
    next(it)  # warm-up (imports, worker start)
    t0 = time.perf_counter()
    n = 0
    for b in it:
        n += b["image"].shape[0]
    return n / (time.perf_counter() - t0)


def model_rate(batches: int, dims: int = 2) -> tuple[float, str]:
    """Training samples/s of the 16-filter 2D U-Net (128x128, batch 8), or, with ``dims=3``, of the
    16-filter 3D U-Net on the 3D configuration (32x48x32, batch 2, 3 classes)."""
    shape, bs, k = ((128, 128), 8, 2) if dims == 2 else ((32, 48, 32), 2, 3)
    try:
        from unifocal.models import unet2d, unet3d

        if dims == 2:
            net, name = unet2d(1, k, base_filters=16), "unifocal.models.unet2d(base_filters=16)"
        else:
            net, name = unet3d(1, k, base_filters=16), "unifocal.models.unet3d(base_filters=16)"
    except Exception:  # pragma: no cover - fallback when the models stage is missing
        from monai.networks.nets import BasicUNet

        net = BasicUNet(spatial_dims=dims, in_channels=1, out_channels=k, features=(16, 32, 64, 128, 256, 16))
        name = f"monai BasicUNet(spatial_dims={dims}, features=(16, 32, 64, 128, 256, 16))"
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(bs, 1, *shape)
    y = torch.randint(0, k, (bs, *shape))

    def step():
        opt.zero_grad()
        out = net(x)
        out = out[0] if isinstance(out, list | tuple) else out
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    return bs * batches / (time.perf_counter() - t0), name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20, help="timed batches per configuration")
    ap.add_argument("--cases", type=int, default=48, help="cases preprocessed into the cache per dataset")
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--model-batches", type=int, default=5)
    args = ap.parse_args()

    from unifocal.data import load_dataset

    root = _data_root()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op threads")
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        configs = []
        if root and (root / "BUSI").is_dir():
            bus = load_dataset(root / "BUSI", cache_dir=cache)
        else:
            bus = load_dataset("phantom2d", n_cases=args.cases, size=128, cache=True, cache_dir=cache)
        configs.append(("BUS 2D 128x128, batch 8", bus, 8, None))
        if root and (root / "MSD_Task04_Hippocampus").is_dir():
            hip = load_dataset(root / "MSD_Task04_Hippocampus", cache_dir=cache)
        else:
            hip = load_dataset("phantom3d", n_cases=args.cases, size=48, cache=True, cache_dir=cache)
        configs.append(("3D 32x48x32 patches, batch 2", hip, 2, (32, 48, 32)))
        for name, ds, bs, ps in configs:
            ids = ds.ids[: args.cases]
            t0 = time.perf_counter()
            ds.prepare(ids)
            prep = (time.perf_counter() - t0) / len(ids)
            n_threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as inside DataLoader workers
            try:
                rate = pipeline_rate(ds, ids, batch_size=bs, patch_size=ps, batches=args.batches,
                                     num_workers=args.num_workers)
                rate_noaug = pipeline_rate(ds, ids, batch_size=bs, patch_size=ps, batches=args.batches,
                                           num_workers=args.num_workers, augment=False)
            finally:
                torch.set_num_threads(n_threads)
            results[name] = rate
            print(f"{name} [{ds.name}]: first-time preprocessing {1000 * prep:.1f} ms/case; pipeline "
                  f"{rate:.1f} samples/s with augmentation, {rate_noaug:.1f} without "
                  f"(num_workers={args.num_workers}, 1 thread)")
    n_threads = torch.get_num_threads()
    rates = {}
    for nt in sorted({1, n_threads}):
        torch.set_num_threads(nt)
        rates[nt], mname = model_rate(args.model_batches)
    torch.set_num_threads(n_threads)
    mrate = max(rates.values())  # the faster model setting: the stricter test of the pipeline
    print(f"model: {mname}, 128x128, batch 8, fwd+bwd+SGD: "
          + ", ".join(f"{r:.1f} samples/s ({nt} thread{'s' if nt > 1 else ''})" for nt, r in rates.items()))
    for name, rate in results.items():
        print(f"ratio pipeline/model [{name}] vs the 2D U-Net: {rate / mrate:.1f}x (target >= 3x)")
    rates3 = {}
    for nt in sorted({1, n_threads}):
        torch.set_num_threads(nt)
        rates3[nt], mname3 = model_rate(max(2, args.model_batches // 2), dims=3)
    torch.set_num_threads(n_threads)
    m3 = max(rates3.values())
    print(f"model: {mname3}, 32x48x32, batch 2, fwd+bwd+SGD: "
          + ", ".join(f"{r:.1f} samples/s ({nt} thread{'s' if nt > 1 else ''})" for nt, r in rates3.items()))
    name3 = list(results)[-1]
    print(f"ratio pipeline/model [{name3}] vs the 3D U-Net: {results[name3] / m3:.1f}x")


if __name__ == "__main__":
    main()
