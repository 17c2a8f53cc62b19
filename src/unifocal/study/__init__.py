"""The study stage: the paper's loss comparison and tuning grids, runners, tables, statistics, figures.

See ``docs/study.md``. Plan (:func:`compare_plan`, :func:`tune_plan`), prepare (:func:`prepare_study`),
run (:func:`run_local`, :func:`run_ray`), report (:func:`make_report`).

Names are imported lazily, so that worker processes which only need the planner and the runner do not
pay for matplotlib or scipy.stats, and ``unifocal --help`` not for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["PAPER_SETTINGS", "TABLE2_GRIDS", "RunSpec", "arm_name", "compare_plan", "parse_grid",
                     "parse_losses", "parse_seeds", "prepare_study", "table2_lambda", "tune_plan"], "plan"),
    **dict.fromkeys(["Continuation", "converge_plan"], "converge"),
    **dict.fromkeys(["Report", "make_report"], "report"),
    **dict.fromkeys(["Arm", "RunResult", "aggregate", "collect_runs", "group_arms", "paired_wilcoxon"],
                    "results"),
    **dict.fromkeys(["RunOutcome", "is_finished", "run_local", "run_ray", "run_study"], "runners"),
    **dict.fromkeys(["ResultTable", "build_table", "write_tables"], "tables"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"unifocal.study.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'unifocal.study' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
