"""Issue 25, defect 8: the runs of a report are never dropped without a word."""

from __future__ import annotations

import json

import pytest

from unifocal.study.results import collect_runs

from .fakes import write_run


def _config(fold: int, loss: str = "dice") -> dict:
    return {"fold": fold, "seed": 0, "loss": {"name": loss, "params": {}}, "dataset": {"name": "phantom2d"}}


def _cases(v: float) -> dict:
    return {"1": {f"c{i}": {"dsc": v, "precision": v, "recall": v} for i in range(3)}}


def test_a_corrupt_summary_refuses_the_report_naming_the_run(tmp_path):
    for k in range(3):
        write_run(tmp_path / "dice" / f"fold{k}", _config(k), _cases(0.5 + k / 10))
    assert len(collect_runs(tmp_path)) == 3
    bad = tmp_path / "dice" / "fold1" / "summary.json"
    bad.write_text('{"status": "finished", "best_ep')  # torn by hand or by a copy
    with pytest.raises(ValueError, match=r"fold1/summary\.json is unreadable .*cannot be reported"):
        collect_runs(tmp_path)
    bad.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError, match=r"fold1/summary\.json is unreadable"):
        collect_runs(tmp_path)


def test_an_evaluation_folder_in_a_study_is_listed_not_fatal(tmp_path):
    write_run(tmp_path / "dice" / "fold0", _config(0), _cases(0.5))
    ev = tmp_path / "dice" / "fold0_eval"
    ev.mkdir()
    (ev / "summary.json").write_text(json.dumps({"status": "finished", "cases": 3, "metrics": {}}))
    (ev / "metrics_per_case.csv").write_text("case_id,class,dsc,precision,recall\n")
    write_run(tmp_path / "dice" / "fold1", _config(1), _cases(0.5), status="running")
    runs = collect_runs(tmp_path)
    assert [r.fold for r in runs] == [0]
    assert [(p.name, why.split(" (")[0]) for p, why in runs.skipped] == [
        ("fold0_eval", "an evaluation folder"), ("fold1", "not finished")]


def test_a_bad_metric_value_names_the_file(tmp_path):
    write_run(tmp_path / "dice" / "fold0", _config(0), _cases(0.5))
    f = tmp_path / "dice" / "fold0" / "metrics_per_case.csv"
    f.write_text(f.read_text().replace("0.5", "O.5", 1))
    with pytest.raises(ValueError, match=r"fold0/metrics_per_case\.csv: could not convert string to float: 'O\.5'"):
        collect_runs(tmp_path)


def test_the_report_lists_what_it_left_out(tmp_path):
    from unifocal.study.report import make_report

    for k in range(2):
        write_run(tmp_path / "dice" / f"fold{k}", _config(k), _cases(0.5 + k / 10))
        write_run(tmp_path / "combo" / f"fold{k}", _config(k, "combo"), _cases(0.6))
    running = tmp_path / "combo" / "fold2"
    running.mkdir()
    (running / "summary.json").write_text(json.dumps({"status": "running"}))
    rep = make_report(tmp_path, figures=False)
    assert any(n.startswith("left out: combo/fold2: not finished") for n in rep.notes), rep.notes
    assert "left out: combo/fold2" in (tmp_path / "report" / "report.md").read_text()
