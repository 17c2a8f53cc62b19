"""Reading finished run folders and the statistics of the report.

Only folders whose ``summary.json`` says ``status: finished`` are read; everything else (running,
interrupted, failed) is ignored, so a report can be made while a study is still running and the same
folders always give the same numbers, whichever runner produced them.

Aggregation (``unit``):

* ``"folds"`` (default, as the paper): per fold, the mean over its validation cases; then the mean and
  the two-sided 95% Student-t interval over the folds (``n`` = number of folds, ``t_{0.975, n-1}``).
* ``"cases"``: the mean and Student-t interval over all validation cases of all folds pooled (each
  case is validated in exactly one fold under cross-validation).

Cases whose metric is NaN (undefined under ``zero_division=nan``) are left out of the means.

Significance: paired two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, default
``zero_method="wilcox"``) per case between the reference arm (the Unified Focal loss) and every
other arm, on the cases both arms evaluated, per class and metric. The per-case value of a case is its
metric in the fold where it was validated. When all paired differences are zero the test is undefined
and the p-value is reported as 1.0 (no evidence of a difference).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from unifocal.metrics import METRICS, MeanCI, mean_ci
from unifocal.study.plan import PAPER_SETTINGS, arm_name
from unifocal.training.config import read_yaml_mapping

__all__ = [
    "METRICS",
    "Arm",
    "RunResult",
    "aggregate",
    "collect_runs",
    "foreground_classes",
    "group_arms",
    "paired_values",
    "paired_wilcoxon",
    "pick_reference",
]

_BACKGROUND = {"0", "background", "bg"}


@dataclass
class RunResult:
    """One finished run read back from its folder.

    Attributes:
        run_dir: the folder.
        config: its ``config.yaml``.
        summary: its ``summary.json``.
        fold: the fold index.
        loss: loss name.
        params: loss parameters.
        cases: ``{class: {case_id: {metric: value}}}`` from ``metrics_per_case.csv`` (metrics
            ``dsc``, ``precision``, ``recall`` and, when present, the counts ``tp``, ``fp``, ``fn``).
        seed: the training seed (``config.yaml``'s ``seed``, default 0).
    """

    run_dir: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    fold: int
    loss: str
    params: dict[str, Any]
    cases: dict[str, dict[str, dict[str, float]]]
    seed: int = 0

    @property
    def arm(self) -> str:
        """Arm name (loss + parameters), as :func:`unifocal.study.plan.arm_name`."""
        return arm_name(self.loss, self.params)


@dataclass
class Arm:
    """All finished runs of one loss with one parameter setting: every fold, and every seed of a fold.

    The trained network (one fold, one seed) is the unit of replication. Where a fold has several seeds,
    its value is the mean over them: :meth:`fold_means` averages the networks' means, :meth:`case_values`
    each case's values.

    Attributes:
        name: arm name.
        loss: loss name.
        params: loss parameters.
        replicates: finished runs, by ``(fold, seed)``.
    """

    name: str
    loss: str
    params: dict[str, Any]
    replicates: dict[tuple[int, int], RunResult] = field(default_factory=dict)

    @property
    def runs(self) -> dict[int, RunResult]:
        """One run per fold, the one of the lowest seed (for learning curves and convergence per fold)."""
        out: dict[int, RunResult] = {}
        for (k, _seed), r in sorted(self.replicates.items(), reverse=True):
            out[k] = r
        return dict(sorted(out.items()))

    @property
    def seeds(self) -> dict[int, list[int]]:
        """``{fold: [seeds]}`` of the finished runs."""
        out: dict[int, list[int]] = {}
        for k, sd in sorted(self.replicates):
            out.setdefault(k, []).append(sd)
        return out

    @property
    def classes(self) -> list[str]:
        """Classes in the per-case metrics, in first-seen order."""
        out: list[str] = []
        for r in self.replicates.values():
            for c in r.cases:
                if c not in out:
                    out.append(c)
        return out

    def network_means(self, cls: str, metric: str) -> dict[tuple[int, int], float]:
        """``{(fold, seed): mean over that network's validation cases}`` (NaN cases left out)."""
        out = {}
        for key in sorted(self.replicates):
            vals = np.array([m[metric] for m in self.replicates[key].cases.get(cls, {}).values()], dtype=float)
            vals = vals[np.isfinite(vals)]
            out[key] = float(vals.mean()) if vals.size else float("nan")
        return out

    def case_values(self, cls: str, metric: str) -> dict[str, float]:
        """``{case_id: value}`` over all folds, the mean over a fold's seeds (NaN values left out of that
        mean; a case validated in two folds: the later fold wins)."""
        out: dict[str, float] = {}
        for k, seeds in self.seeds.items():
            per: dict[str, list[float]] = {}
            for sd in seeds:
                for cid, m in self.replicates[(k, sd)].cases.get(cls, {}).items():
                    per.setdefault(cid, []).append(m[metric])
            for cid, vs in per.items():
                finite = [v for v in vs if math.isfinite(v)]
                out[cid] = float(np.mean(finite)) if finite else float("nan")
        return out

    def fold_means(self, cls: str, metric: str) -> dict[int, float]:
        """``{fold: mean over that fold's networks of their mean over the fold's cases}``."""
        per: dict[int, list[float]] = {}
        for (k, _sd), v in self.network_means(cls, metric).items():
            per.setdefault(k, []).append(v)
        out = {}
        for k, vs in sorted(per.items()):
            finite = [v for v in vs if math.isfinite(v)]
            out[k] = float(np.mean(finite)) if finite else float("nan")
        return out


def _read_cases(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        need = {"case_id", "class", *METRICS}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path} lacks columns {sorted(need - set(reader.fieldnames or []))}")
        for row in reader:
            vals = {}
            for m in (*METRICS, "tp", "fp", "fn"):
                if m not in row:
                    continue
                v = (row[m] or "").strip()
                vals[m] = float(v) if v not in ("", "nan", "NaN") else float("nan")
            out.setdefault(str(row["class"]), {})[str(row["case_id"])] = vals
    return out


class RunList(list):
    """The runs :func:`collect_runs` found, with ``skipped``: ``[(folder, reason)]`` of the folders under
    the root holding a ``summary.json`` that are not finished runs (an evaluation folder, a run still
    training), so that a report can say what it left out."""

    skipped: list[tuple[Path, str]]


def collect_runs(root: str | Path) -> list[RunResult]:
    """Every finished run folder under ``root`` (searched recursively), sorted by folder.

    A folder is never dropped silently: a ``summary.json`` that cannot be read refuses the whole
    collection (the ranking would change without a word), and the folders left out on purpose (an
    ``unifocal evaluate`` folder, a run not finished) are listed in the result's ``skipped``.

    Raises:
        ValueError: if ``root`` is not a folder, a ``summary.json`` is unreadable, or a finished run lacks
            its ``config.yaml`` or ``metrics_per_case.csv`` or holds an unreadable one (each named).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"runs folder {root} does not exist")
    results = RunList()
    results.skipped = []
    for sfile in sorted(root.rglob("summary.json")):
        d = sfile.parent
        try:
            summary = json.loads(sfile.read_text())
            if not isinstance(summary, dict):
                raise ValueError(f"a JSON {type(summary).__name__}, not an object")
        except (ValueError, OSError, RecursionError) as e:
            raise ValueError(f"{sfile} is unreadable ({' '.join(str(e).split()) or type(e).__name__}): the run {d} "
                             f"cannot be reported, and leaving it out would change the ranking without a word; "
                             f"restore the file, or delete it and rerun `unifocal train -o {d}` with the run's "
                             f"configuration (it evaluates checkpoints/best.pt again), or move {d} out of "
                             f"{root}") from None
        if summary.get("kind") == "evaluation" or (
                "cases" in summary and "best_epoch" not in summary and not (d / "config.yaml").is_file()):
            results.skipped.append((d, "an evaluation folder (unifocal evaluate), not a run"))
            continue
        if summary.get("status") != "finished":
            results.skipped.append((d, f"not finished (status {summary.get('status')!r})"))
            continue
        cfile, mfile = d / "config.yaml", d / "metrics_per_case.csv"
        if not cfile.is_file() or not mfile.is_file():
            raise ValueError(f"finished run {d} lacks config.yaml or metrics_per_case.csv")
        config = read_yaml_mapping(cfile, "the run's configuration")
        loss = config.get("loss") or {}
        if isinstance(loss, str):
            loss = {"name": loss}
        try:
            cases = _read_cases(mfile)
        except (ValueError, csv.Error, UnicodeDecodeError) as e:
            msg = str(e) if str(mfile) in str(e) else f"{mfile}: {e}"
            raise ValueError(f"{msg}; the run {d} cannot be reported: restore the file or rerun its "
                             f"evaluation") from None
        results.append(RunResult(d, config, summary, int(config.get("fold", 0)), str(loss.get("name")),
                                 dict(loss.get("params") or {}), cases, int(config.get("seed", 0) or 0)))
    return results


def group_arms(runs: Sequence[RunResult]) -> dict[str, Arm]:
    """Group runs by arm (loss + parameters), preserving first-seen order.

    Raises:
        ValueError: if two finished runs of one arm have the same fold and seed.
    """
    arms: dict[str, Arm] = {}
    for r in runs:
        a = arms.setdefault(r.arm, Arm(r.arm, r.loss, dict(r.params)))
        key = (r.fold, r.seed)
        if key in a.replicates:
            raise ValueError(f"arm {r.arm} has two finished runs of fold {r.fold}, seed {r.seed}: "
                             f"{a.replicates[key].run_dir} and {r.run_dir}")
        a.replicates[key] = r
    return arms


def foreground_classes(arms: Sequence[Arm], include_background: bool = False) -> list[str]:
    """Classes to report: all in the per-case metrics except the background (``0``/``background``)."""
    out: list[str] = []
    for a in arms:
        for c in a.classes:
            if c not in out and (include_background or c.lower() not in _BACKGROUND):
                out.append(c)
    return out


def aggregate(arm: Arm, cls: str, metric: str, unit: str = "folds", confidence: float = 0.95) -> MeanCI:
    """Mean ± Student-t CI of one metric of one class over folds or cases (see the module docstring).

    Raises:
        ValueError: for an unknown unit or metric.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if unit == "folds":
        return mean_ci(arm.fold_means(cls, metric).values(), confidence)
    if unit == "cases":
        return mean_ci(arm.case_values(cls, metric).values(), confidence)
    raise ValueError(f"unknown CI unit {unit!r}; use 'folds' or 'cases'")


def paired_values(reference: Arm, other: Arm, cls: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The per-case values of two arms on the cases both have (finite in both), in case-id order:
    ``(reference values, other values)``."""
    a, b = reference.case_values(cls, metric), other.case_values(cls, metric)
    ids = sorted(k for k in set(a) & set(b) if math.isfinite(a[k]) and math.isfinite(b[k]))
    return np.array([a[k] for k in ids], dtype=float), np.array([b[k] for k in ids], dtype=float)


def paired_wilcoxon(reference: Arm, other: Arm, cls: str, metric: str) -> tuple[float, int]:
    """Two-sided paired Wilcoxon signed-rank p-value per case, and the number of pairs.

    Returns ``(nan, n)`` when fewer than two cases are paired; ``(1.0, n)`` when every difference is 0.
    """
    x, y = paired_values(reference, other, cls, metric)
    n = len(x)
    if n < 2:
        return float("nan"), n
    if np.all(x == y):
        return 1.0, n
    return float(stats.wilcoxon(x, y).pvalue), n


def pick_reference(arms: dict[str, Arm], reference: str | None = None) -> str | None:
    """The arm the others are tested against: ``reference`` if given, else the ``unified_focal`` arm
    closest to the paper's optimum (δ=0.6, γ=0.2, λ=0.5; sum of absolute differences, the first arm on
    a tie); ``None`` if there is none. In a Table 2 sweep that is the arm at the optimum's value of the
    swept parameter (δ=0.6 in the δ grid, which fixes γ=0).

    Raises:
        ValueError: if ``reference`` names no arm.
    """
    if reference is not None:
        if reference in arms:
            return reference
        cands = [n for n, a in arms.items() if a.loss == reference]
        if not cands:
            raise ValueError(f"reference {reference!r} is neither an arm nor a loss of {sorted(arms)}")
        return cands[0]

    def distance(name: str) -> float:
        p = arms[name].params
        return round(sum(abs(float(p.get(k, v)) - v) for k, v in PAPER_SETTINGS["unified_focal"].items()), 9)

    uf = [n for n, a in arms.items() if a.loss == "unified_focal"]
    return min(uf, key=distance) if uf else None  # min keeps the first of equal distances
