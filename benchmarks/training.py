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

``--precision`` (issue #24): one training step (forward, Unified Focal loss in float32, backward, Adam
step) of the study models, float32 / bf16 autocast, eager / ``torch.compile``, channels_last on / off
(2D) side by side; see :func:`precision_main`.

    python benchmarks/training.py --precision --model busi8 --model busi16
    python benchmarks/training.py --precision --model hippocampus
    python benchmarks/training.py --precision --quick   # smoke run, seconds to a minute
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# -- training step: fp32 / bf16, eager / compiled, channels_last (issue #24) ---------------------
# The study models, built by the project from the study configuration files (scheme adam, as
# scripts/reproduce_converged_study.sh passes it), on phantom data of the studies' shapes and classes.
MODELS = {
    "busi8": {"config": "configs/busi_converged.yaml", "dims": 2, "model": {},
              "label": "2D U-Net, BUSI converged (8 filters)"},
    "busi16": {"config": "configs/busi_converged.yaml", "dims": 2, "model": {"base_filters": 16},
               "label": "2D U-Net, BUSI converged with 16 filters"},
    "hippocampus": {"config": "configs/hippocampus_converged.yaml", "dims": 3, "model": {},
                    "label": "3D U-Net, Hippocampus converged (8 filters)"},
}


def _step_config(name: str, amp: bool, channels_last: bool, size: int | None, batch: int | None) -> dict:
    from unifocal.training.config import load_config_file

    spec = MODELS[name]
    cfg = load_config_file(ROOT / spec["config"])
    cfg.update({"scheme": "adam", "device": "cpu", "amp": amp, "seed": 0})
    cfg["model"] = {**cfg["model"], **spec["model"]}
    if batch is not None:
        cfg["batch_size"] = batch
    if spec["dims"] == 2:
        cfg["channels_last"] = channels_last
        cfg["dataset"] = {"name": "phantom2d", "options": {"n_cases": cfg["batch_size"], "size": size or 128,
                                                           "num_classes": 2}}  # BUSI: grey, 2 classes
    else:
        if size is not None:
            cfg["patch_size"] = [size] * 3
        cfg["dataset"] = {"name": "phantom3d",  # Hippocampus: one channel, 3 classes
                          "options": {"n_cases": cfg["batch_size"], "size": list(cfg["patch_size"]),
                                      "num_classes": 3}}
    return cfg


class _Variant:
    """One model in one numeric setting: its own RunContext (same seed, same initial weights)."""

    def __init__(self, name: str, amp: bool, compiled: bool, channels_last: bool, args: argparse.Namespace):
        from unifocal.data.phantom import make_phantom_case
        from unifocal.training.loop import build_run

        self.amp, self.compiled, self.channels_last = amp, compiled, channels_last
        dims = MODELS[name]["dims"]
        self.label = (("bf16 autocast" if amp else "fp32") + (" + compile" if compiled else " eager")
                      + ((", channels_last" if channels_last else ", contiguous") if dims == 2 else ""))
        self.ctx = ctx = build_run(_step_config(name, amp, channels_last, args.size, args.batch_size))
        n = ctx.cfg.batch_size
        # the network input as the loop gives it: the whole 2D image, or the 3D patch_size of the
        # configuration rounded up to the network's divisor (as RunContext does)
        shape = ctx.cfg.patch_size if dims == 3 else [args.size or 128] * 2
        cases = [make_phantom_case(i, spatial_dims=dims, size=tuple(shape), num_classes=ctx.dataset.num_classes)
                 for i in range(n)]
        x = torch.stack([torch.from_numpy(c[0]) for c in cases]).float()
        y = torch.stack([torch.from_numpy(c[1].astype("int64")) for c in cases])
        self.batches = [{"image": x, "label": y}] * args.steps
        self.input_shape = tuple(x.shape)
        if compiled:
            ctx.model = torch.compile(ctx.model)
        self.epoch = 0
        self.times: list[float] = []

    def run(self, batches: list | None = None) -> float:
        """Seconds per training step over the batches, through ``RunContext.train_epoch`` (the
        project's path: autocast when amp, outputs cast to float32, finite check, loss, backward, step)."""
        self.epoch += 1
        b = self.batches if batches is None else batches
        t0 = time.perf_counter()
        self.ctx.train_epoch([], self.epoch, loader=b)
        return (time.perf_counter() - t0) / len(b)


def precision_main(args: argparse.Namespace) -> None:
    """One training step of each study model, every numeric variant in one round robin per repetition.

    A step is ``RunContext.train_epoch`` over in-memory batches: forward (under
    ``torch.autocast("cpu", dtype=torch.bfloat16)`` when ``amp``), outputs cast to float32, the
    Unified Focal loss in float32, backward, Adam step. One torch thread, as the studies run. Each
    variant is warmed up first (for ``torch.compile`` the first steps compile; that time is reported
    apart). The order of the variants rotates from one repetition to the next; the table gives the
    median seconds per step and the median over repetitions of each variant's time over the fp32
    eager time of the same repetition (the paired ratio, robust to load that drifts between
    repetitions).
    """
    from unifocal.training.inference import cpu_supports_bf16

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    flags = _cpu_flags()
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {_cpu_model()}, nproc={os.cpu_count()}, cpu flags avx512_bf16={'avx512_bf16' in flags} "
          f"amx_bf16={'amx_bf16' in flags}, native bf16 (unifocal.training.inference.cpu_supports_bf16)="
          f"{cpu_supports_bf16()}, torch capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"torch {torch.__version__}, python {sys.version.split()[0]}, torch threads={torch.get_num_threads()}")
    print(f"command: python benchmarks/training.py {' '.join(sys.argv[1:])}")
    if not cpu_supports_bf16():
        print("note: no native bf16 here, so the project runs amp in float32 (the bf16 rows are float32)")
    for name in args.model or list(MODELS):
        dims = MODELS[name]["dims"]
        # the configuration's memory format (2D: channels_last) eager and compiled; 2D contiguous eager
        # only (compiling takes minutes per variant on a loaded 2-core machine)
        combos = [(amp, comp, dims == 2) for comp in ((False, True) if args.compile else (False,))
                  for amp in (False, True)]
        if dims == 2 and args.channels_last_both:
            combos += [(False, False, False), (True, False, False)]
        variants = []
        for amp, comp, cl in combos:
            v = _Variant(name, amp, comp, cl, args)
            # warm-up: the first step (compilation for torch.compile, oneDNN kernels otherwise), then more
            t0 = time.perf_counter()
            v.run(v.batches[:1])
            v.first_s = time.perf_counter() - t0
            for _ in range(args.warmup):
                v.run(v.batches[:1])
            variants.append(v)
        base = variants[0]  # fp32 eager in the configuration's memory format
        m = base.ctx.cfg.model
        print(f"\n## {MODELS[name]['label']}: {MODELS[name]['config']} (scheme adam), "
              f"base_filters={m['base_filters']}, norm={m.get('norm')}, deep_supervision={m.get('deep_supervision')}, "
              f"input {base.input_shape} (batch, channel, spatial), {base.ctx.dataset.num_classes} classes, "
              f"loss {base.ctx.cfg.loss['name']}; {args.steps} step(s) x {args.repeats} repetitions")
        t_start = time.perf_counter()
        ratios: list[list[float]] = [[] for _ in variants]
        for r in range(args.repeats):
            k = r % len(variants)
            order = variants[k:] + variants[:k]
            for v in order:
                v.times.append(v.run())
            for i, v in enumerate(variants):
                ratios[i].append(v.times[-1] / base.times[-1])
        print(f"(measured in {time.perf_counter() - t_start:.0f} s)")
        print("| variant | median s/step | min s/step | ratio to fp32 eager (paired median) | first step s |")
        print("|---|---:|---:|---:|---:|")
        for i, v in enumerate(variants):
            print(f"| {v.label} | {statistics.median(v.times):.3f} | {min(v.times):.3f} | "
                  f"**{statistics.median(ratios[i]):.2f}x** | {v.first_s:.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", action="store_true",
                    help="training step: fp32 / bf16 autocast, eager / torch.compile, channels_last (issue #24)")
    ap.add_argument("--model", action="append", choices=list(MODELS),
                    help="--precision: study model (repeatable; default all)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="--precision: include the torch.compile variants (default: yes, not with --quick)")
    ap.add_argument("--channels-last-both", action=argparse.BooleanOptionalAction, default=True,
                    help="--precision: 2D models also without channels_last (eager)")
    ap.add_argument("--threads", type=int, default=1, help="--precision: torch threads (studies: 1)")
    ap.add_argument("--warmup", type=int, default=2, help="--precision: warm-up steps after the first")
    ap.add_argument("--quick", action="store_true",
                    help="--precision smoke run: busi8 at 32x32, batch 2, 1 step x 2 repetitions, no compile")
    ap.add_argument("--size", type=int, default=None, help="image edge (default 128); --precision: also 3D patch edge")
    ap.add_argument("--batch-size", type=int, default=None, help="default 8; --precision: the config's")
    ap.add_argument("--base-filters", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None, help="batches per measurement (default 8; --precision 2)")
    ap.add_argument("--repeats", type=int, default=None, help="default 3; --precision 15")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.precision or args.quick:
        if args.quick:
            args.model = args.model or ["busi8"]
            args.size, args.batch_size = args.size or 32, args.batch_size or 2
            args.steps, args.repeats, args.warmup = args.steps or 1, args.repeats or 2, 0
        args.compile = (not args.quick) if args.compile is None else args.compile
        args.steps, args.repeats = args.steps or 2, args.repeats or 15
        precision_main(args)
        return
    args.size, args.batch_size = args.size or 128, args.batch_size or 8
    args.steps, args.repeats = args.steps or 8, args.repeats or 3

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
