"""Loss benchmarks: the shape sweep (issue #24, the default), the two-shape table (issue #2), eager vs compiled.

**Sweep (default).** Forward + backward of every loss of ``unifocal.losses``, ``F.cross_entropy``
and MONAI's ``DiceCELoss`` on logits with integer targets (~90 % background) at common training
shapes — batch 1-32, 2-4 classes, 2D 64²-512², 3D patches 32³-128³ — all candidates of a shape in
ONE interleaved round robin (the order shuffled every repetition, seeded: a rotation would keep every
candidate behind the same one, whose allocations it would always inherit), one torch thread by default,
median of many repetitions (at least ``--reps``, more for small shapes, up to ``--budget`` seconds
of timing per shape). Printed per shape: cross entropy's median time and every candidate's median
over cross entropy's; then the median and the worst of those ratios over the training shapes.
The per-call overhead is measured separately at (1, 2, 32, 32), where everything is fixed cost:
its row gives the absolute median times. The last line is
``unified_focal/cross_entropy: median <m> worst <w> overhead(1,2,32,32) <ms> ms``.

Targets (issue #24): median <= 1.5x, worst <= 3x cross entropy, overhead <= 0.3 ms. On a loaded
machine read the ratios, not the times.

**Table** (``--table``): the two shapes (32, 2, 128, 128) and (2, 3, 96, 96, 96) of issue #2 with the
peak extra memory of one forward + backward. Runs are interleaved and the median of ``--reps``
(>= 10) is reported with its ratio to cross entropy measured in the same run: by default each loss
alternates with ``F.cross_entropy`` (``--mode pairwise``); ``--mode all`` puts every loss in one
round robin. Peak extra memory: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs; on
CPU the peak resident set of a fresh subprocess doing one forward+backward, above the same
subprocess after allocating the inputs (glibc is told to serve big blocks with mmap so that freed
memory leaves the resident set at once), sampled by a thread during the call.

``--compile`` measures eager against ``torch.compile`` instead: for each candidate (default
``cross_entropy(torch)``, ``unified_focal``, ``dice``, ``focal``; ``--only`` to choose), the first
compiled call (compilation included), then eager and compiled runs alternated, median of ``--reps``.

    python benchmarks/losses.py                        # the sweep, one thread (CPU, or CUDA when present)
    python benchmarks/losses.py --only unified_focal   # the sweep with cross entropy, DiceCE and UF only
    python benchmarks/losses.py --table --reps 15      # the two-shape table with memory
    python benchmarks/losses.py --compile --reps 10    # eager vs torch.compile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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
UF = "unified_focal"
DICE_CE = "monai.DiceCELoss"
#: The per-call overhead shape: everything there is fixed cost.
OVERHEAD_SHAPE = (1, 2, 32, 32)
#: Common training shapes (B, C, *spatial): batch 1-32, 2-4 classes, 2D 64²-512², 3D 32³-128³.
SWEEP_SHAPES = [
    (2, 2, 64, 64),
    (2, 2, 128, 128),
    (8, 2, 128, 128),
    (32, 2, 128, 128),
    (16, 4, 128, 128),
    (4, 3, 256, 256),
    (1, 2, 512, 512),
    (8, 2, 32, 32, 32),
    (2, 3, 40, 56, 40),   # the Hippocampus patch of the studies
    (2, 4, 64, 64, 64),
    (2, 3, 96, 96, 96),
    (1, 2, 128, 128, 128),
]


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
    rng = random.Random(0)
    for _ in range(reps):
        order = rng.sample(names, len(names))
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


def sweep_shape(shape, device, only, reps, budget):
    """``(medians s, repetitions)`` of every candidate at ``shape``, in one interleaved round robin."""
    x, y = make_inputs(shape, device)
    cands = candidates(shape[1])
    cands.pop("monai.AsymmetricUnifiedFocalLoss", None)  # binary-only: not at every shape
    if only:
        cands = {n: f for n, f in cands.items() if n in only or n in (CE, UF, DICE_CE)}
    names = list(cands)
    for _ in range(2):  # warm-up (lazy initialisation, allocator)
        for n in names:
            cands[n](x, y).backward()
            x.grad = None
    sync(device)
    t0 = time.perf_counter()
    for n in names:
        cands[n](x, y).backward()
        x.grad = None
    sync(device)
    one_round = time.perf_counter() - t0
    n_reps = max(reps, min(400, int(budget / max(one_round, 1e-9))))
    return _time_round_robin(cands, x, y, device, n_reps, warmup=0), n_reps


def main_sweep(args) -> None:
    only = set(filter(None, args.only.split(",")))
    print(f"# sweep: one interleaved round robin per shape, fwd+bwd, integer targets, median of >= {args.reps} "
          f"repetitions (up to {args.budget:g} s per shape)")
    results = {}
    for shape in [OVERHEAD_SHAPE, *SWEEP_SHAPES]:
        med, n_reps = sweep_shape(shape, args.device, only, args.reps, args.budget)
        results[shape] = med
        print(f"#   {shape}: {n_reps} repetitions, cross entropy {med[CE] * 1e3:.3f} ms, "
              f"unified_focal {med[UF] * 1e3:.3f} ms", flush=True)
    names = [n for n in results[OVERHEAD_SHAPE] if n != CE]
    names = [UF, DICE_CE, *[n for n in names if n not in (UF, DICE_CE)]]
    names = [n for n in names if n in results[OVERHEAD_SHAPE]]

    def cell(v: float) -> str:
        return f"{v:.2f}"

    print("\n## Per-call overhead (absolute medians, ms)")
    o = results[OVERHEAD_SHAPE]
    print(f"| shape | cross entropy | {' | '.join(names)} |")
    print("|---|---:|" + "---:|" * len(names))
    print(f"| {OVERHEAD_SHAPE} | {o[CE] * 1e3:.3f} | " + " | ".join(f"{o[n] * 1e3:.3f}" for n in names) + " |")
    print("\n## Training shapes: median time over cross entropy's (same round robin)")
    print(f"| shape | cross entropy ms | {' | '.join(names)} |")
    print("|---|---:|" + "---:|" * len(names))
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for shape in SWEEP_SHAPES:
        med = results[shape]
        row = []
        for n in names:
            r = med[n] / med[CE]
            ratios[n].append(r)
            row.append(cell(r))
        print(f"| {shape} | {med[CE] * 1e3:.2f} | " + " | ".join(row) + " |")
    print("| **median** | | " + " | ".join(f"**{statistics.median(ratios[n]):.2f}**" for n in names) + " |")
    print("| **worst** | | " + " | ".join(f"**{max(ratios[n]):.2f}**" for n in names) + " |")
    print(f"\nunified_focal/cross_entropy: median {statistics.median(ratios[UF]):.2f} worst {max(ratios[UF]):.2f} "
          f"overhead{OVERHEAD_SHAPE} {o[UF] * 1e3:.3f} ms (cross entropy {o[CE] * 1e3:.3f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--budget", type=float, default=4.0,
                    help="sweep: seconds of timing per shape; small shapes get more repetitions")
    ap.add_argument("--table", action="store_true", help="the two-shape table with memory (issue #2)")
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
    torch.set_num_threads(args.threads)
    print(f"# device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()} nproc={os.cpu_count()}")
    from unifocal.losses import kernel_status

    status = kernel_status()
    print(f"# unifocal CPU kernel: {'in use, ' + status.reason if status.available else 'not used: ' + status.reason}")
    if args.compile:
        main_compile(args)
        return
    if not args.table:
        main_sweep(args)
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
