"""``unifocal data summary``: Table-1 style output; fractions match index.csv."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from unifocal.cli import app

runner = CliRunner()


def test_summary_busi_matches_index(busi_root):
    with open(busi_root / "index.csv") as f:
        rows = list(csv.DictReader(f))
    res = runner.invoke(app, ["data", "summary", str(busi_root), "--limit", "25", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)  # progress bars go to stderr
    assert s["cases"] == 25 and s["layout"] == "pairs"
    by_name = {r["name"]: float(r["fg_fraction"]) for r in rows}
    for cid, fr in s["per_case"].items():
        assert fr[1] == pytest.approx(by_name[cid], abs=2e-6)
    expected = 100 * np.mean([by_name[c] for c in s["per_case"]])
    assert s["classes"]["foreground"]["mean_pct"] == pytest.approx(expected, abs=1e-3)


def test_summary_hippocampus_text(hippocampus_root):
    with open(hippocampus_root / "index.csv") as f:
        rows = list(csv.DictReader(f))[:15]
    res = runner.invoke(app, ["data", "summary", str(hippocampus_root), "--layout", "msd", "--limit", "15"])
    assert res.exit_code == 0, res.output
    assert "Cases: 15" in res.output and "Spacing (median):    1.000 x 1.000 x 1.000" in res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("class1"))
    assert float(line.split()[1]) == pytest.approx(100 * np.mean([float(r["fg_anterior"]) for r in rows]), abs=1e-3)


def test_summary_phantom_and_errors(tmp_path):
    res = runner.invoke(app, ["data", "summary", "phantom2d"])
    assert res.exit_code == 0 and "Cases: 24" in res.output and "lesion" in res.output
    res = runner.invoke(app, ["data", "summary", str(tmp_path)])
    assert res.exit_code == 2 and "no known dataset layout" in res.output


def test_duplicates_command_writes_where_the_split_reads(tmp_path):
    res = runner.invoke(app, ["data", "duplicates", "phantom2d", "--dataset-option", "n_cases=8", "-q",
                              "-o", str(tmp_path / "study")])
    assert res.exit_code == 0, res.output
    assert "8 cases: 0 pairs" in res.output
    assert json.loads((tmp_path / "study" / "duplicates.json").read_text())["groups"] == []
    (tmp_path / "study" / "splits.json").write_text("[]")
    res = runner.invoke(app, ["data", "duplicates", "phantom2d", "-q", "-o", str(tmp_path / "study")])
    assert res.exit_code == 2 and "its folds are already made" in res.output
    res = runner.invoke(app, ["data", "duplicates", "phantom2d", "--threshold", "0", "-q"])
    assert res.exit_code == 2 and "threshold must be in (0, 1]" in res.output


def test_train_refuses_a_leaky_split_in_one_line(tmp_path):
    ids = [f"phantom2d_{i:03d}" for i in range(6)]
    run = tmp_path / "run"
    run.mkdir()
    leaky = [{"train": [*ids[2:], ids[0]], "val": ids[:2]}, {"train": ids[:2], "val": ids[2:]}]
    (run / "splits.json").write_text(json.dumps(leaky))
    res = runner.invoke(app, ["train", "--dataset", "phantom2d", "--dataset-option", "n_cases=6", "--folds", "2",
                              "--epochs", "1", "--device", "cpu", "-q", "-o", str(run)])
    assert res.exit_code == 2, res.output
    assert f"case '{ids[0]}' is on both sides of fold 0" in res.output
    assert not (run / "checkpoints").exists()
