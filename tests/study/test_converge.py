"""``unifocal study converge``: the runs the convergence criterion flags continue under larger limits."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

import unifocal.training.loop as loop
from unifocal.cli import app
from unifocal.study.converge import converge_plan
from unifocal.study.convergence import convergence_rows, last_quarter_gain
from unifocal.study.results import collect_runs, group_arms
from unifocal.training import train_and_evaluate

BASE = {"dataset": {"name": "phantom2d", "options": {"n_cases": 8, "size": 16}},
        "loss": {"name": "dice", "params": {}}, "model": {"name": "unet", "base_filters": 4, "depth": 2},
        "batch_size": 4, "seed": 0, "n_folds": 2, "device": "cpu", "augment": False}
PLATEAU = {**BASE, "scheme": "adam", "adam_schedule": "plateau", "lr_patience": 2, "lr": 3e-3}
# validation (loss, DSC) by epoch: the DSC still rises by 0.3 in the last quarter of 8 epochs, then flattens
RISING = [(1.0 - 0.05 * e, min(0.3 + 0.1 * e, 0.9)) for e in range(16)]
FLAT = [(1.0 - 0.05 * e, 0.6) for e in range(16)]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UNIFOCAL_CACHE", str(tmp_path_factory.mktemp("cache")))


def _script(monkeypatch, by_fold):
    """Validation returns the scripted (loss, DSC) of the run's fold and epoch; records the epochs run."""
    seen: list[tuple[int, int]] = []

    def validate(self, ids, epoch):
        seen.append((self.cfg.fold, epoch))
        return by_fold[self.cfg.fold][epoch - 1]

    monkeypatch.setattr(loop.RunContext, "validate", validate)
    return seen


def _dsc(run):
    with (run / "log.csv").open(newline="") as f:
        return [float(r["val_dsc"]) for r in csv.DictReader(f)]


def test_converge_continues_only_the_unconverged_run_as_if_started_with_larger_limits(tmp_path, monkeypatch):
    root = tmp_path / "study"
    _script(monkeypatch, {0: RISING, 1: FLAT})
    for fold in (0, 1):
        train_and_evaluate({**PLATEAU, "fold": fold, "epochs": 8, "patience": 10}, root / "dice" / f"fold{fold}",
                           progress=False)
    assert last_quarter_gain(_dsc(root / "dice" / "fold0")) > 0.02  # not converged
    assert last_quarter_gain(_dsc(root / "dice" / "fold1")) == 0.0
    plan, notes = converge_plan(root)
    assert notes == []
    assert [c.spec.name for c in plan] == ["dice/fold0"]
    assert plan[0].limits == {"epochs": (8, 16), "patience": (10, 20)}
    assert "epochs 8 -> 16, patience 10 -> 20" in plan[0].describe()

    # the reference: the same run started with the larger limits
    _script(monkeypatch, {0: RISING})
    whole = train_and_evaluate({**PLATEAU, "fold": 0, "epochs": 16, "patience": 20}, tmp_path / "whole",
                               progress=False)
    seen = _script(monkeypatch, {0: RISING, 1: FLAT})
    again = train_and_evaluate(plan[0].spec.config, plan[0].spec.run_dir, progress=False)
    assert seen == [(0, e) for e in range(9, 17)]  # continued after epoch 8, fold 1 untouched
    assert (again["stop_epoch"], again["epochs"]) == (whole["stop_epoch"], whole["epochs"]) == (16, 16)
    assert _dsc(root / "dice" / "fold0") == _dsc(tmp_path / "whole")
    rows = {r.fold: r for r in convergence_rows(group_arms(collect_runs(root)))}
    assert rows[0].max_epochs == 16 and rows[0].converged() and rows[1].max_epochs == 8
    assert converge_plan(root) == ([], [])


def test_converge_names_what_it_cannot_continue(tmp_path, monkeypatch):
    root = tmp_path / "study"
    _script(monkeypatch, {0: RISING, 1: RISING})
    sgd = {**BASE, "scheme": "sgd", "lr": 0.01, "epochs": 8}
    train_and_evaluate({**sgd, "fold": 0}, root / "dice" / "fold0", progress=False)
    train_and_evaluate({**PLATEAU, "fold": 1, "epochs": 8}, root / "dice" / "fold1", progress=False)
    (root / "dice" / "fold1" / "checkpoints" / "last.pt").unlink()
    plan, notes = converge_plan(root)
    assert plan == []
    assert len(notes) == 2
    assert "dice/fold0" in notes[0] and "reads epochs" in notes[0] and "train it again" in notes[0]
    assert "dice/fold1" in notes[1] and "last.pt is gone" in notes[1]
    res = CliRunner().invoke(app, ["study", "converge", str(root)])
    assert res.exit_code != 0 and "not continued" in res.output
    with pytest.raises(ValueError, match="factor"):
        converge_plan(root, factor=1.0)
    with pytest.raises(ValueError, match="tolerance"):
        converge_plan(root, tolerance=-0.1)


def test_converge_dry_run_lists_the_runs(tmp_path, monkeypatch):
    root = tmp_path / "study"
    _script(monkeypatch, {0: RISING})
    train_and_evaluate({**PLATEAU, "fold": 0, "epochs": 8, "patience": 10}, root / "dice" / "fold0", progress=False)
    res = CliRunner().invoke(app, ["study", "converge", str(root), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "continue dice/fold0" in res.output.replace("\n", "")
    assert _dsc(root / "dice" / "fold0") == [d for _, d in RISING[:8]]  # nothing trained
