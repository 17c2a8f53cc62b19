"""Study-level files are written atomically; a study that cannot open its dataset writes nothing; the
paper's losses and settings have one definition each."""

from __future__ import annotations

import os
import pathlib

import pytest

import unifocal.study as study
from unifocal.losses import PAPER_LOSSES, get_loss
from unifocal.study.plan import PAPER_SETTINGS, compare_plan, parse_losses, prepare_study, tune_plan
from unifocal.study.report import make_report

from .test_figures_report import _tune_study


def _watch_writes(monkeypatch) -> set[pathlib.Path]:
    """Record every ``os.replace`` target and forbid the non-atomic ``Path.write_text`` / ``write_bytes``."""
    targets: set[pathlib.Path] = set()
    real = os.replace

    def record(src, dst, *a, **k):
        targets.add(pathlib.Path(dst).resolve())
        return real(src, dst, *a, **k)

    def forbidden(self, *a, **k):
        raise AssertionError(f"non-atomic write of {self}")

    monkeypatch.setattr(os, "replace", record)
    monkeypatch.setattr(pathlib.Path, "write_text", forbidden)
    monkeypatch.setattr(pathlib.Path, "write_bytes", forbidden)
    return targets


def test_study_and_report_files_are_atomic(tmp_path, monkeypatch):
    specs = _tune_study(tmp_path)  # fake finished runs, written before the writes are watched
    monkeypatch.setenv("UNIFOCAL_CACHE", str(tmp_path / "cache"))
    targets = _watch_writes(monkeypatch)
    prepare_study(tmp_path, specs)
    rep = make_report(tmp_path, overlays=False, formats=("png",))
    assert rep.n_runs == len({s.run_dir for s in specs})
    written = [p.resolve() for p in (tmp_path / "report").rglob("*") if p.is_file()]
    written += [tmp_path.resolve() / "study.yaml", tmp_path.resolve() / "splits.json"]
    assert len(written) > 10
    missing = sorted(str(p) for p in written if p not in targets)
    assert not missing, f"written without the atomic writer: {missing}"


def test_missing_dataset_leaves_no_study_file(tmp_path):
    specs = compare_plan({"dataset": {"path": str(tmp_path / "missing")}}, tmp_path / "s", "dice", n_folds=2,
                         validate=False)
    with pytest.raises(ValueError, match="missing"):
        prepare_study(tmp_path / "s", specs)
    assert not (tmp_path / "s").exists()


def test_one_definition_of_the_papers_losses_and_settings():
    for gone in ("PAPER_LOSS_ORDER", "UNIFIED_FOCAL_OPTIMUM"):
        assert not hasattr(study.plan, gone) and gone not in study.__all__
    assert tuple(PAPER_SETTINGS) == PAPER_LOSSES  # one setting per compared loss, in the paper's order
    assert [n for n, _ in parse_losses("paper")] == list(PAPER_LOSSES)
    assert PAPER_SETTINGS["unified_focal"] == {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5}  # Table 2 optimum
    for name, params in PAPER_SETTINGS.items():
        get_loss(name, **params)  # every paper setting is a valid loss
    # the user grid's fixed parameters are the optimum
    specs = tune_plan({"dataset": {"name": "phantom2d"}}, "study", "gamma=0.5", n_folds=2, validate=False)
    assert specs[0].config["loss"]["params"] == {"delta": 0.6, "gamma": 0.5, "lambda_": 0.5}
