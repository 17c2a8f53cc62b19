"""Instructions per loss call at the overhead shape (1, 2, 32, 32), counted by valgrind's callgrind.

Wall-clock times of calls this small move with the machine's state (docs/benchmarks.md); instruction
counts do not. For torch threads 1 and 2 and each candidate (default: ``cross_entropy(torch)``,
``unified_focal``, ``monai.DiceCELoss``, each alone in its process), a child process runs forward +
backward ``--reps`` times and, in a second process, ``--reps + --extra`` times, both under
``valgrind --tool=callgrind --separate-threads=yes``; the difference divided by ``--extra`` is the
count per call, without the start-up (imports, the kernel's load check; the kernel is built once,
before any counted run). Printed per row: the
instructions per call on the calling thread, the part of them in OpenMP's runtime (libgomp, opening
and closing PyTorch's parallel regions), and those on all other threads (OpenMP's workers, the
kernel's pool). Under valgrind the CPU kernel is built without ``-march=native`` (valgrind does not
decode AVX-512), so the kernel's own share is that of the portable build.

    python benchmarks/instructions.py                      # needs valgrind; about 20 minutes on 2 cores
    python benchmarks/instructions.py --only unified_focal
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

CANDIDATES = ("cross_entropy(torch)", "unified_focal", "monai.DiceCELoss")


def child(threads: int, reps: int, name: str) -> None:
    import torch

    import losses as bench

    torch.set_num_threads(threads)
    x, y = bench.make_inputs(bench.OVERHEAD_SHAPE, "cpu")
    fn = bench.candidates(bench.OVERHEAD_SHAPE[1])[name]
    for _ in range(3 + reps):  # three warm-up calls: lazy initialisation, the kernel's load
        fn(x, y).backward()
        x.grad = None


def _thread_counts(prefix: Path) -> tuple[int, int, int]:
    """(calling thread, its libgomp part, all other threads) of one callgrind run."""
    files = sorted(prefix.parent.glob(prefix.name + ".*-*"))
    if not files:
        raise RuntimeError(f"callgrind wrote no per-thread files for {prefix}")
    totals = {}
    for f in files:
        m = re.search(r"^totals:\s+(\d+)", f.read_text(errors="replace"), re.M)
        totals[f] = int(m.group(1)) if m else 0
    main = files[0]  # thread 1: the calling thread
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(main)], capture_output=True, text=True,
                         check=True).stdout
    gomp = sum(int(m.group(1).replace(",", "")) for m in re.finditer(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+.*libgomp",
                                                                        out, re.M))
    return totals[main], gomp, sum(v for f, v in totals.items() if f != main)


def measure(threads: int, name: str, reps: int, extra: int, workdir: Path) -> tuple[float, float, float]:
    counts = []
    for n in (reps, reps + extra):
        prefix = workdir / f"cg_{threads}_{re.sub(r'[^a-z0-9]+', '_', name.lower())}_{n}"
        cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={prefix}.%p",
               sys.executable, __file__, "--child", str(threads), str(n), name]
        # a fixed string-hash seed: every child lays out its dictionaries alike, run after run
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        counts.append(_thread_counts(prefix))
    return tuple((b - a) / extra for a, b in zip(*counts))  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated candidates")
    ap.add_argument("--threads", default="1,2", help="torch threads to compare")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--extra", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="callgrind runs at once")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]), args.child[2])
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        sys.exit("benchmarks/instructions.py needs valgrind (with callgrind_annotate) on the PATH")
    import torch

    names = [n for n in args.only.split(",") if n]
    threads = [int(t) for t in args.threads.split(",")]
    vg = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"# {platform.machine()}, nproc={os.cpu_count()}, torch {torch.__version__}, Python "
          f"{platform.python_version()}, {vg}; shape (1, 2, 32, 32), fwd+bwd, instructions per call = "
          f"(I({args.reps} + {args.extra} calls) - I({args.reps} calls)) / {args.extra}")
    with tempfile.TemporaryDirectory(prefix="unifocal-callgrind-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        os.environ["UNIFOCAL_CACHE_DIR"] = str(Path(tmp) / "kernel-cache")  # shared by the children
        # the portable build (as under valgrind) made once before any count, so that no counted run builds
        subprocess.run(["valgrind", "--tool=none", "-q", sys.executable, __file__, "--child", "1", "0", "unified_focal"],
                       check=True, capture_output=True)
        if not any(Path(tmp, "kernel-cache").glob("*.so")):
            sys.exit("the kernel was not built under valgrind (see kernel_status())")
        jobs = {(t, n): pool.submit(measure, t, n, args.reps, args.extra, Path(tmp)) for t in threads for n in names}
        print("\n| candidate | torch threads | calling thread | of which libgomp | other threads |")
        print("|---|---:|---:|---:|---:|")
        for (t, n), job in jobs.items():
            main_i, gomp, others = job.result()
            print(f"| {n} | {t} | {main_i:,.0f} | {gomp:,.0f} | {others:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
