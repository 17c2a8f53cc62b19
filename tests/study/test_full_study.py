"""The real-data studies of ``docs/results.md`` (issue #5): excluded from the default run.

``pytest -m slow tests/study/test_full_study.py`` runs ``scripts/reproduce_cpu_study.sh``, the exact
commands behind the tables of ``docs/results.md`` (about 4.5 hours on 2 CPU cores), and checks that every
table and figure is written. ``UNIFOCAL_STUDY_OUT`` keeps the study folder (default: a temporary
folder), so that an interrupted study resumes when run again with the same folder.
"""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from unifocal.losses import PAPER_LOSSES

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reproduce_cpu_study.sh"


def test_reproduce_cpu_study(data_root, busi_root, hippocampus_root, tmp_path):
    out = Path(os.environ.get("UNIFOCAL_STUDY_OUT") or tmp_path / "study")
    env = {**os.environ, "UNIFOCAL_DATA": str(data_root)}
    subprocess.run(["bash", str(SCRIPT), str(out)], check=True, env=env)

    rows = list(csv.DictReader((out / "busi" / "report" / "table.csv").open()))
    assert sorted(r["loss"] for r in rows) == sorted(PAPER_LOSSES)
    # every loss, and every delta of the Table 2 grid, trained on all five folds
    for study, n_arms in (("busi", 7), ("busi_delta", 9)):
        arms = [p for p in (out / study).iterdir() if (p / "fold0").is_dir()]
        assert len(arms) == n_arms, arms
        for arm in arms:
            assert sorted(f.name for f in arm.glob("fold*")) == [f"fold{k}" for k in range(5)], arm

    assert list((out / "busi_delta" / "report" / "figures").glob("sensitivity_*.png"))
    # the gamma and lambda grids of Table 2: 6 + 11 values sharing the (0.6, 0.2, 0.5) arm
    rows = list(csv.DictReader((out / "busi_gamma_lambda" / "report" / "table.csv").open()))
    assert len(rows) == 16, [r["arm"] for r in rows]
    header = (out / "hippocampus" / "report" / "table.md").read_text().splitlines()[0]
    assert header.count("| DSC (") == 2  # per-class columns for the two rare classes
    rows = list(csv.DictReader((out / "hippocampus_8ep" / "report" / "table.csv").open()))
    assert sorted(r["loss"] for r in rows) == sorted(PAPER_LOSSES)
