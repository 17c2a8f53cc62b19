"""The full studies on real data (issue #5, "Results on real data"): excluded from the default run.

Run with ``pytest -m slow tests/study/test_full_study.py``; ``UNIFOCAL_STUDY_EPOCHS`` sets the epochs
(default 100, the paper's scheme 1), ``UNIFOCAL_STUDY_OUT`` keeps the study folder (default: a temporary
folder), so that an interrupted study resumes when run again with the same folder.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unifocal.cli import app
from unifocal.study.plan import PAPER_LOSS_ORDER

pytestmark = pytest.mark.slow


def _out(tmp_path: Path, name: str) -> Path:
    base = os.environ.get("UNIFOCAL_STUDY_OUT")
    return Path(base) / name if base else tmp_path / name


def _run(args: list[str]) -> None:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output


def test_busi_seven_losses_and_delta_grid(busi_root, tmp_path):
    epochs = os.environ.get("UNIFOCAL_STUDY_EPOCHS", "100")
    common = ["--dataset", str(busi_root), "--model", "unet", "--base-filters", "16", "--patch-size", "128,128",
              "--scheme", "sgd", "--epochs", epochs, "--folds", "5", "--device", "auto"]
    out = _out(tmp_path, "busi_compare")
    _run(["study", "compare", *common, "--losses", "paper", "--out", str(out)])
    _run(["study", "report", str(out)])
    rows = list(csv.DictReader((out / "report" / "table.csv").open()))
    assert sorted(r["loss"] for r in rows) == sorted(PAPER_LOSS_ORDER)
    tune = _out(tmp_path, "busi_tune")
    _run(["study", "tune", *common, "--grid", "delta", "--splits-dir", str(out), "--out", str(tune)])
    _run(["study", "report", str(tune)])
    assert (tune / "report" / "figures" / "sensitivity_foreground.png").is_file() or \
        list((tune / "report" / "figures").glob("sensitivity_*.png"))


def test_hippocampus_seven_losses(hippocampus_root, tmp_path):
    epochs = os.environ.get("UNIFOCAL_STUDY_EPOCHS", "100")
    out = _out(tmp_path, "hippocampus_compare")
    _run(["study", "compare", "--dataset", str(hippocampus_root), "--base-filters", "8", "--patch-size", "32,48,32",
          "--scheme", "sgd", "--epochs", epochs, "--folds", "5", "--losses", "paper", "--out", str(out)])
    _run(["study", "report", str(out)])
    header = (out / "report" / "table.md").read_text().splitlines()[0]
    assert header.count("DSC (") == 2  # per-class columns for the two rare classes
