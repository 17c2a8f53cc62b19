"""Training throughput: the full training loop beside the bare model step, same model, same run.

* **full loop**: :meth:`unifocal.training.loop.RunContext.train_epoch` — data loader (phantom cases
  from memory, random order, augmentation as in the paper), batching, forward, loss, NaN check,
  backward, optimiser step — over ``--steps`` batches.
* **bare step**: the same model, loss and optimiser on one batch of tensors already in memory
  (forward, loss, backward, step), ``--steps`` times.

The two are interleaved ``--repeats`` times after a warm-up; medians and bests are reported. On a
shared machine the best run (least disturbed by other processes) is the fairer figure; the ratio is
given for both.
CPU configuration of the issue: 2D U-Net with 16 base filters, 128 x 128 images, batch 8.

    python benchmarks/training.py                      # channels_last on
    python benchmarks/training.py --no-channels-last
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--base-filters", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8, help="batches per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from unifocal.training.loop import build_run

    n = args.steps * args.batch_size
    cfg = {"dataset": {"name": "phantom2d", "options": {"n_cases": n, "size": args.size}},
           "loss": {"name": "unified_focal"},
           "model": {"name": "unet", "base_filters": args.base_filters, "depth": 4},
           "scheme": "sgd", "epochs": 100, "batch_size": args.batch_size, "device": args.device,
           "channels_last": args.channels_last, "augment": args.augment, "num_workers": args.num_workers,
           "samples_per_epoch": n}
    ctx = build_run(cfg)
    ids = list(ctx.dataset.ids)
    ctx.dataset.prepare(ids)  # decode / generate once, as the on-disk cache would
    dev = ctx.device
    x = torch.stack([torch.from_numpy(ctx.dataset[i].image) for i in ids[: args.batch_size]]).to(dev)
    y = torch.stack([torch.from_numpy(ctx.dataset[i].label.astype("int64")) for i in ids[: args.batch_size]]).to(dev)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def bare() -> float:
        ctx.model.train()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            ctx.optimizer.zero_grad(set_to_none=True)
            loss = ctx.train_loss_fn(ctx.model(x), y)
            loss.backward()
            ctx.optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return args.steps * args.batch_size / (time.perf_counter() - t0)

    epoch = [0]

    def full() -> float:
        epoch[0] += 1
        t0 = time.perf_counter()
        _, images = ctx.train_epoch(ids, epoch[0])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return images / (time.perf_counter() - t0)

    bare()
    full()  # warm-up (oneDNN kernels, MONAI transforms)
    b, f = [], []
    for _ in range(args.repeats):
        b.append(bare())
        f.append(full())
    mb, mf = statistics.median(b), statistics.median(f)
    bb, bf = max(b), max(f)
    print(f"machine: {_cpu_model()}, nproc={os.cpu_count()}, torch threads={torch.get_num_threads()}, "
          f"device={dev}, torch {torch.__version__}, python {sys.version.split()[0]}")
    print(f"config: 2D U-Net base_filters={args.base_filters}, {args.size}x{args.size}, batch {args.batch_size}, "
          f"channels_last={args.channels_last}, augment={args.augment}, num_workers={args.num_workers}, "
          f"{args.steps} batches x {args.repeats} repeats")
    print(f"bare model step: median {mb:.2f}, best {bb:.2f} images/s  (runs: {', '.join(f'{v:.2f}' for v in b)})")
    print(f"full training loop: median {mf:.2f}, best {bf:.2f} images/s  (runs: {', '.join(f'{v:.2f}' for v in f)})")
    print(f"full/bare: median {mf / mb:.3f}, best {bf / bb:.3f}")


if __name__ == "__main__":
    main()
