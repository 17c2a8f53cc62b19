"""Loss benchmark (issue #2): forward+backward time and peak extra memory of every loss.

Every loss of ``unifocal.losses`` and ``torch.nn.functional.cross_entropy`` on the same logits, with
MONAI's ``DiceCELoss`` and ``AsymmetricUnifiedFocalLoss`` as peers, on the shapes (32, 2, 128, 128)
and (2, 3, 96, 96, 96) with integer targets. Runs are interleaved and the median of ``--reps`` (>= 10)
is reported with its ratio to cross entropy measured in the same run: by default each loss alternates
with ``F.cross_entropy`` (``--mode pairwise``: both see the same allocator state, as a loss does
inside a training loop); ``--mode all`` puts every loss in one round robin instead.

Peak extra memory: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs; on CPU the peak
resident set of a fresh subprocess doing one forward+backward, above the same subprocess after
allocating the inputs (glibc is told to serve big blocks with mmap so that freed memory leaves the
resident set at once), sampled by a thread during the call. The gradient buffer of the input counts.

The last line printed is ``unified_focal/cross_entropy: <max ratio over the two shapes>``.

``--compile`` measures eager against ``torch.compile`` instead: for each candidate (default
``cross_entropy(torch)``, ``unified_focal``, ``dice``, ``focal``; ``--only`` to choose), the first
compiled call (compilation included), then eager and compiled runs alternated, median of ``--reps``.

    python benchmarks/losses.py                 # CPU (or CUDA when present)
    python benchmarks/losses.py --reps 20 --device cuda
    python benchmarks/losses.py --only unified_focal   # cross entropy and the Unified Focal loss alone
    python benchmarks/losses.py --compile --reps 10    # eager vs torch.compile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

SHAPES = {"2d": (32, 2, 128, 128), "3d": (2, 3, 96, 96, 96)}
CE = "cross_entropy(torch)"


def candidates(num_classes: int) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    from unifocal.losses import available_losses, get_loss

    out: dict[str, Callable] = {"cross_entropy(torch)": lambda x, y: F.cross_entropy(x, y)}
    for name in available_losses():
        out[name] = get_loss(name)
    try:
        from monai.losses import AsymmetricUnifiedFocalLoss, DiceCELoss

        dice_ce = DiceCELoss(softmax=True, to_onehot_y=True)
        out["monai.DiceCELoss"] = lambda x, y: dice_ce(x, y.unsqueeze(1))
        if num_classes == 2:  # MONAI's version is binary-only
            aufl = AsymmetricUnifiedFocalLoss(to_onehot_y=True, num_classes=2)
            out["monai.AsymmetricUnifiedFocalLoss"] = lambda x, y: aufl(x, y.unsqueeze(1))
    except ImportError:  # pragma: no cover
        pass
    return out


def make_inputs(shape: tuple[int, ...], device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    # imbalanced labels: ~90 % background, the rest split over the other classes
    u = torch.rand((shape[0], *shape[2:]), generator=gen)
    y = torch.zeros(u.shape, dtype=torch.long)
    for c in range(1, shape[1]):
        y[(u > 1 - 0.1 * c / (shape[1] - 1)) & (u <= 1 - 0.1 * (c - 1) / (shape[1] - 1))] = c
    return x.to(device).requires_grad_(True), y.to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_round_robin(cands, x, y, device, reps, warmup=2):
    names = list(cands)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(warmup):
        for n in names:
            cands[n](x, y).backward()
            x.grad = None
    for r in range(reps):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            loss = cands[n](x, y)
            loss.backward()
            sync(device)
            times[n].append(time.perf_counter() - t0)
            x.grad = None
    return {n: statistics.median(v) for n, v in times.items()}


def time_all(shape, device, reps, only=None, mode="pairwise"):
    """Median fwd+bwd seconds per candidate and its ratio to cross entropy.

    ``pairwise``: each candidate alternates with ``F.cross_entropy`` on its own (its ratio uses the
    cross-entropy times of the same alternation), so both see the same allocator state.
    ``all``: every candidate in one round robin (allocator state then depends on the neighbours).
    """
    x, y = make_inputs(shape, device)
    cands = candidates(shape[1])
    if only:
        cands = {n: f for n, f in cands.items() if n in only or n == CE}
    if mode == "all":
        med = _time_round_robin(cands, x, y, device, reps)
        return {n: (t, t / med[CE], med[CE]) for n, t in med.items()}
    out = {}
    for n, f in cands.items():
        if n == CE:
            continue
        med = _time_round_robin({CE: cands[CE], n: f}, x, y, device, reps)
        out.setdefault(CE, (med[CE], 1.0, med[CE]))
        out[n] = (med[n], med[n] / med[CE], med[CE])
    return out


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_child(shape_key: str, name: str) -> None:
    """Child process: print the peak RSS (bytes) of one forward+backward above the inputs.

    A thread samples the resident set every 0.2 ms while the main thread runs (torch releases the GIL
    inside its kernels); the baseline is the resident set just before, inputs and warm-up included.
    """
    shape = SHAPES[shape_key]
    x, y = make_inputs(shape, "cpu")
    fn = candidates(shape[1])[name]
    fn(x, y).backward()  # warm-up: lazy initialisation is not the loss's memory
    x.grad = None
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    fn(x, y).backward()
    peak[0] = max(peak[0], _rss())
    stop.set()
    t.join()
    print(json.dumps({"extra_bytes": peak[0] - base}))


def peak_memory(shape_key: str, names: list[str], device: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if device.startswith("cuda"):
        x, y = make_inputs(SHAPES[shape_key], device)
        cands = candidates(SHAPES[shape_key][1])
        for n in names:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            cands[n](x, y).backward()
            torch.cuda.synchronize()
            out[n] = torch.cuda.max_memory_allocated() - base
            x.grad = None
        return out
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    for n in names:
        res = subprocess.run([sys.executable, __file__, "--child", shape_key, n], capture_output=True, text=True,
                             env=env, check=False)
        try:
            out[n] = json.loads(res.stdout.strip().splitlines()[-1])["extra_bytes"]
        except (IndexError, json.JSONDecodeError, KeyError):
            out[n] = float("nan")
    return out


COMPILE_DEFAULT = (CE, "unified_focal", "dice", "focal")


def compare_compiled(shape, device, reps, only=None):
    """``{name: (first compiled call s, eager median s, compiled median s)}`` for each candidate."""
    import torch._dynamo

    x, y = make_inputs(shape, device)
    cands = candidates(shape[1])
    names = [n for n in (only or COMPILE_DEFAULT) if n in cands]
    out = {}
    for n in names:
        torch._dynamo.reset()
        eager = cands[n]
        compiled = torch.compile(eager)
        sync(device)
        t0 = time.perf_counter()
        compiled(x, y).backward()
        sync(device)
        first = time.perf_counter() - t0
        x.grad = None
        med = _time_round_robin({"eager": eager, "compiled": compiled}, x, y, device, reps)
        out[n] = (first, med["eager"], med["compiled"])
    return out


def main_compile(args) -> None:
    only = [n for n in args.only.split(",") if n] or None
    for key in args.shapes.split(","):
        shape = SHAPES[key]
        res = compare_compiled(shape, args.device, args.reps, only)
        print(f"\n## shape {shape}: eager vs torch.compile (median of {args.reps}, alternated)")
        print("| loss | first compiled call s | eager fwd+bwd ms | compiled fwd+bwd ms | compiled / eager |")
        print("|---|---:|---:|---:|---:|")
        for n, (first, e, c) in res.items():
            print(f"| {n} | {first:.1f} | {e * 1e3:.1f} | {c * 1e3:.1f} | {c / e:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shapes", default="2d,3d")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated candidates to time (cross entropy always)")
    ap.add_argument("--mode", choices=["pairwise", "all"], default="pairwise",
                    help="pairwise: each loss alternates with cross entropy; all: one round robin of every loss")
    ap.add_argument("--compile", action="store_true", help="eager vs torch.compile instead of the loss table")
    ap.add_argument("--child", nargs=2, metavar=("SHAPE", "NAME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _peak_child(*args.child)
        return
    if args.reps < 10:
        ap.error("--reps must be at least 10 (median of >= 10 runs)")
    print(f"# device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()} nproc={os.cpu_count()}")
    if args.compile:
        main_compile(args)
        return
    worst = 0.0
    for key in args.shapes.split(","):
        shape = SHAPES[key]
        res = time_all(shape, args.device, args.reps, only=set(filter(None, args.only.split(","))), mode=args.mode)
        mem = {} if args.no_memory else peak_memory(key, list(res), args.device)
        ce_mem = mem.get(CE)
        print(f"\n## shape {shape} (median of {args.reps}, interleaved, mode={args.mode})")
        print("| loss | fwd+bwd ms | cross entropy ms (same alternation) | time x cross_entropy "
              "| peak extra MiB | memory x cross_entropy |")
        print("|---|---:|---:|---:|---:|---:|")
        for n, (t, ratio, ce_t) in res.items():
            m = mem.get(n, float("nan"))
            mr = m / ce_mem if ce_mem else float("nan")
            print(f"| {n} | {t * 1e3:.1f} | {ce_t * 1e3:.1f} | {ratio:.2f} | {m / 2**20:.1f} | {mr:.2f} |")
        worst = max(worst, res["unified_focal"][1])
    print(f"\nunified_focal/cross_entropy: {worst:.2f}")


if __name__ == "__main__":
    main()
