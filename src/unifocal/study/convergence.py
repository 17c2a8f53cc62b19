"""Did the runs converge? Best and stopping epochs, and what the last quarter of training added.

Read from the finished run folders only (``log.csv`` and ``summary.json``). For a run that trained
``E`` epochs (its stopping epoch), the *last-quarter gain* is

    gain = max(val_dsc over epochs 1..E) - max(val_dsc over epochs 1..floor(3E/4))

the improvement of the best validation DSC during the last quarter of its epochs (0 when the best
DSC came earlier). A run counts as converged when ``gain <= tolerance`` (default 0.02). The best
epoch is the model selection of the paper (lowest validation loss), written by training. A run whose
validation DSC was 0 at every epoch never predicted the class it is scored on: its curve is flat because
it has not learned, so it is marked "never learned" and not counted as converged.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unifocal.study.results import Arm

__all__ = ["RunConvergence", "convergence_markdown", "convergence_rows", "last_quarter_gain", "read_log"]


@dataclass(frozen=True)
class RunConvergence:
    """Convergence facts of one finished run."""

    arm: str
    fold: int
    best_epoch: int
    stop_epoch: int
    max_epochs: int
    best_val_dsc: float
    last_quarter_gain: float
    wall_time_s: float
    seed: int = 0

    @property
    def stopped_early(self) -> bool:
        return self.stop_epoch < self.max_epochs

    @property
    def never_learned(self) -> bool:
        """Validation DSC 0 (or undefined) at every epoch."""
        return not self.best_val_dsc > 0.0

    def converged(self, tolerance: float = 0.02) -> bool:
        return not self.never_learned and self.last_quarter_gain <= tolerance


def read_log(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of ``log.csv`` as floats (``epoch`` as int)."""
    p = Path(run_dir) / "log.csv"
    if not p.is_file():
        raise ValueError(f"{p} does not exist; a finished run folder has its log.csv")
    rows = []
    with p.open(newline="") as f:
        for r in csv.DictReader(f):
            d = {k: float(v) for k, v in r.items() if v not in (None, "")}
            d["epoch"] = int(d["epoch"])
            rows.append(d)
    return rows


def last_quarter_gain(val_dsc: Sequence[float]) -> float:
    """``max(all) - max(first floor(3E/4))`` of a per-epoch validation-DSC series (0 for E < 4... see
    the module docstring); NaN epochs are ignored."""
    vals = [v for v in val_dsc]
    e = len(vals)
    if e == 0:
        raise ValueError("an empty validation-DSC series has no last quarter")
    head = vals[: (3 * e) // 4]

    def best(xs: Sequence[float]) -> float:
        finite = [x for x in xs if math.isfinite(x)]
        return max(finite) if finite else 0.0

    if not head:
        return best(vals)
    return max(0.0, best(vals) - best(head))


def convergence_rows(arms: dict[str, Arm], order: Sequence[str] | None = None) -> list[RunConvergence]:
    """One :class:`RunConvergence` per finished run (every fold and seed) that has its ``log.csv``, arms
    in ``order`` then folds and seeds ascending."""
    out = []
    for name in order or sorted(arms):
        for (fold, seed), run in sorted(arms[name].replicates.items()):
            if not (run.run_dir / "log.csv").is_file():
                continue
            log = read_log(run.run_dir)
            dsc = [r["val_dsc"] for r in log]
            s = run.summary
            stop = int(s.get("stop_epoch") or (log[-1]["epoch"] if log else 0))
            out.append(RunConvergence(name, fold, int(s.get("best_epoch") or 0), stop,
                                      int(s.get("epochs") or stop), max(dsc) if dsc else float("nan"),
                                      last_quarter_gain(dsc), float(s.get("wall_time_s") or 0.0), seed))
    return out


def convergence_markdown(rows: Sequence[RunConvergence], titles: dict[str, str],
                         tolerance: float = 0.02) -> str:
    """A Markdown table of every run, then the share of converged runs and epoch statistics."""
    lines = ["| Loss | Fold | Best epoch | Stop epoch | Max epochs | Best val. DSC | Last-quarter gain | "
             "Wall time (min) |", "|---|:-:|:-:|:-:|:-:|:-:|:-:|:-:|"]
    for r in rows:
        flag = (" (never learned)" if r.never_learned else
                "" if r.last_quarter_gain <= tolerance else " (not converged)")
        fold = f"{r.fold}" if r.seed == 0 else f"{r.fold} (seed {r.seed})"
        lines.append(f"| {titles.get(r.arm, r.arm)} | {fold} | {r.best_epoch} | {r.stop_epoch} | {r.max_epochs} | "
                     f"{r.best_val_dsc:.3f} | {r.last_quarter_gain:.3f}{flag} | {r.wall_time_s / 60:.1f} |")
    if not rows:
        return "\n".join(lines) + "\n\nNo finished run with a log.csv.\n"
    n_ok = sum(r.converged(tolerance) for r in rows)
    dead = sum(r.never_learned for r in rows)
    early = sum(r.stopped_early for r in rows)
    stops = sorted(r.stop_epoch for r in rows)
    med = stops[len(stops) // 2] if len(stops) % 2 else (stops[len(stops) // 2 - 1] + stops[len(stops) // 2]) / 2
    total_h = sum(r.wall_time_s for r in rows) / 3600
    return ("\n".join(lines) + "\n\n"
            f"Converged (last-quarter gain of the best validation DSC ≤ {tolerance:g}): {n_ok} of {len(rows)} "
            f"runs ({n_ok / len(rows):.0%})"
            + (f"; {dead} never learned (validation DSC 0 at every epoch), not counted as converged" if dead else "")
            + f". Stopped early (before the maximum): {early} of {len(rows)}. "
            f"Stopping epoch: median {med:g}, range {stops[0]}–{stops[-1]}. "
            f"Training + evaluation time: {total_h:.2f} h (sum over runs).\n")
