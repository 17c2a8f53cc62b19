"""A real tiny study end to end: two losses, two folds, one epoch on the phantom, then the report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from unifocal.cli import app
from unifocal.study.plan import compare_plan, prepare_study
from unifocal.study.report import make_report
from unifocal.study.runners import run_local

BASE = {"dataset": {"name": "phantom2d", "options": {"n_cases": 8, "size": 32}}, "epochs": 1, "batch_size": 4,
        "model": {"name": "unet", "base_filters": 4}, "device": "cpu", "save_predictions": True,
        "augment": False, "seed": 0}


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_study_end_to_end(tmp_path):
    pytest.importorskip("unifocal.training")
    # first invocation through the command line (YAML config + flags)
    cfg = tmp_path / "base.yaml"
    cfg.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k not in ("dataset", "epochs")}))
    r = CliRunner().invoke(app, ["study", "compare", "--config", str(cfg), "--dataset", "phantom2d",
                                 "--dataset-option", "n_cases=8", "--dataset-option", "size=32", "--epochs", "1",
                                 "--losses", "dice,unified_focal", "--folds", "2", "--output", str(tmp_path)])
    assert r.exit_code == 0, r.output
    # the Python API plans the very same folders: nothing left to run
    specs = compare_plan(BASE, tmp_path, "dice,unified_focal", n_folds=2)
    splits = prepare_study(tmp_path, specs)
    out = run_local(specs)
    assert [o.status for o in out] == ["skipped"] * 4, [o.error for o in out]
    # one split file, used by every run
    folds = json.loads(splits.read_text())
    for s in specs:
        assert json.loads((s.run_dir / "split.json").read_text())["val"] == folds[s.fold]["val"]
    # re-invoking skips finished runs; a run whose summary is gone is run again
    mtimes = [(s.run_dir / "summary.json").stat().st_mtime_ns for s in specs]
    (specs[1].run_dir / "summary.json").unlink()
    out2 = run_local(specs)
    assert [o.status for o in out2] == ["skipped", "finished", "skipped", "skipped"]
    assert [(s.run_dir / "summary.json").stat().st_mtime_ns for s in specs][2:] == mtimes[2:]

    rep = make_report(tmp_path, formats=("png",))
    assert rep.n_runs == 4 and "fig3" in rep.figures and "fig2" in rep.figures
    # the table against an independent aggregation of the per-case CSVs
    rows = {r["arm"]: r for r in _read(rep.tables["csv"])}
    cls = rep.table.classes[0]
    for s_arm in ("dice", "unified_focal-delta0.6-gamma0.2-lambda0.5"):
        per_fold = []
        for k in (0, 1):
            vals = [float(r["dsc"]) for r in _read(tmp_path / s_arm / f"fold{k}" / "metrics_per_case.csv")
                    if r["class"] == cls]
            per_fold.append(np.mean(vals))
        mean = np.mean(per_fold)
        hw = stats.t.ppf(0.975, 1) * np.std(per_fold, ddof=1) / np.sqrt(2)
        assert float(rows[s_arm][f"{cls}_dsc_mean"]) == pytest.approx(mean)
        assert float(rows[s_arm][f"{cls}_dsc_ci95"]) == pytest.approx(hw)
    assert (tmp_path / "report" / "report.html").is_file()
