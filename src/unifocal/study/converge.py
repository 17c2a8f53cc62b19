"""Continue the runs that did not converge (``unifocal study converge RUNS_DIR``).

The convergence criterion (:mod:`unifocal.study.convergence`) flags a finished run whose best validation
DSC still rose by more than ``tolerance`` during the last quarter of its epochs: its limits (the
maximum ``epochs``, the early-stopping ``patience``) ended it before its curve had flattened. This step
continues every flagged run from its ``checkpoints/last.pt`` with those limits multiplied by ``factor``
(default 2). Every state is restored (model, optimiser, schedule, random generators; batches are a pure
function of seed and epoch), so the result is exactly the run the larger limits would have given from
the start (:func:`unifocal.training.loop.continues_finished_run`); the new limits are written into the
run's ``config.yaml`` and ``summary.json`` and so appear in the report's convergence table.

Which runs are continued is decided by the criterion alone, before any of them trains: the converged
runs keep their limits. The rule, and its price, are the caller's to state beside the results
(``docs/study.md``, "Convergence").

What cannot be continued is listed, never skipped silently:

* a run ended by ``epochs`` under a schedule that reads ``epochs`` (polynomial decay, cosine annealing:
  every scheme but ``adam`` with ``adam_schedule: plateau``): more epochs change its course from the
  first epoch, so it must be trained again, in another folder;
* a run without ``checkpoints/last.pt`` (deleted to save space);
* a run that never learned (validation DSC 0 at every epoch): a longer run of a network that predicts
  no foreground rarely starts to, and the criterion does not call it unconverged but dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unifocal.study.convergence import convergence_rows
from unifocal.study.plan import RunSpec
from unifocal.study.results import collect_runs, group_arms
from unifocal.training.config import schedule_uses_epochs
from unifocal.training.loop import continues_finished_run

__all__ = ["Continuation", "converge_plan"]


@dataclass(frozen=True)
class Continuation:
    """One unconverged run and the limits it continues under.

    Attributes:
        spec: the run (its folder and the configuration with the new limits).
        gain: its last-quarter gain (above the tolerance).
        limits: ``{"epochs": (old, new), "patience": (old, new)}`` (``None``: no early stopping).
    """

    spec: RunSpec
    gain: float
    limits: dict[str, tuple[int | None, int | None]]

    def describe(self) -> str:
        parts = [f"{k} {old} -> {new}" for k, (old, new) in self.limits.items() if old != new]
        return f"{self.spec.name}: last-quarter gain {self.gain:.3f}; {', '.join(parts)}"


def _scaled(value: int | None, factor: float) -> int | None:
    return None if value is None else max(int(value) + 1, round(int(value) * factor))


def converge_plan(runs_dir: str | Path, tolerance: float = 0.02,
                  factor: float = 2.0) -> tuple[list[Continuation], list[str]]:
    """The unconverged runs of a study folder and the limits to continue them under.

    Args:
        runs_dir: A study folder (or any folder of run folders).
        tolerance: The convergence criterion's tolerance on the last-quarter gain (default 0.02, as the
            report's convergence table).
        factor: Multiplies ``epochs`` (where the schedule does not read it), ``patience`` and
            ``stop_after`` of each unconverged run (default 2); more than 1.

    Returns:
        ``(continuations, notes)``: the runs to continue, and one line per unconverged run that cannot be
        continued, saying why.

    Raises:
        ValueError: for a tolerance below 0, a factor not above 1, or an unreadable study folder.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance={tolerance!r}: the last-quarter gain tolerance must be >= 0")
    if not factor > 1:
        raise ValueError(f"factor={factor!r}: the limits must grow, use a factor above 1 (e.g. 2)")
    arms = group_arms(collect_runs(runs_dir))
    runs = {(a.name, fold, seed): run for a in arms.values() for (fold, seed), run in a.replicates.items()}
    out: list[Continuation] = []
    notes: list[str] = []
    for row in convergence_rows(arms):
        if row.converged(tolerance):
            continue
        run = runs[(row.arm, row.fold, row.seed)]
        name = f"{row.arm}/{run.run_dir.name}"
        if row.never_learned:
            notes.append(f"{name}: never learned (validation DSC 0 at every epoch); not continued")
            continue
        if not (run.run_dir / "checkpoints" / "last.pt").is_file():
            notes.append(f"{name}: not converged (gain {row.last_quarter_gain:.3f}) but {run.run_dir}/checkpoints/"
                         f"last.pt is gone; train it again with larger limits in another folder")
            continue
        cfg: dict[str, Any] = dict(run.config)
        epochs_fixed = schedule_uses_epochs(cfg)
        old = {k: cfg.get(k) for k in ("epochs", "patience", "stop_after")}
        new = dict(old)
        if not epochs_fixed:
            new["epochs"] = _scaled(old["epochs"], factor)
        new["patience"] = _scaled(old["patience"], factor)
        new["stop_after"] = _scaled(old["stop_after"], factor)
        cfg.update(new)
        if not continues_finished_run(run.run_dir, cfg):
            why = (f"it ended at its maximum of {old['epochs']} epochs and its schedule (scheme "
                   f"{cfg.get('scheme')}, adam_schedule {cfg.get('adam_schedule')}) reads epochs, so more epochs "
                   f"would change its course from the first: train it again with larger epochs in another folder"
                   if epochs_fixed else "the larger limits do not let it go on")
            notes.append(f"{name}: not converged (gain {row.last_quarter_gain:.3f}) and not continued: {why}")
            continue
        spec = RunSpec(row.arm, row.fold, cfg, run.run_dir, {"continued": True})
        limits = {k: (old[k], new[k]) for k in ("epochs", "patience", "stop_after") if old[k] is not None
                  or new[k] is not None}
        out.append(Continuation(spec, row.last_quarter_gain, limits))
    return out, notes

