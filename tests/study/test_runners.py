"""Local runner: skip finished runs, retry interrupted ones, same folders sequentially or in workers."""

from __future__ import annotations

import json
import os

import pytest

from unifocal.study.plan import compare_plan
from unifocal.study.runners import is_finished, run_local, run_study

from .fakes import fake_metrics

FAKE = "tests.study.fakes:fake_train"
BASE = {"dataset": {"name": "phantom2d"}, "epochs": 1}


def _calls(spec) -> int:
    f = spec.run_dir / "calls.txt"
    return len(f.read_text().split()) if f.exists() else 0


def test_sequential_skip_and_resume(tmp_path):
    specs = compare_plan(BASE, tmp_path, "dice,tversky", n_folds=2, validate=False)
    # tversky fold 1 gets interrupted the first time
    (tmp_path / "fail-tversky-alpha0.3-beta0.7-fold1").write_text("")
    seen = []
    out = run_local(specs, train_fn=FAKE, on_done=seen.append)
    status = {o.name: o.status for o in out}
    assert status == {"dice/fold0": "finished", "dice/fold1": "finished",
                      "tversky-alpha0.3-beta0.7/fold0": "finished",
                      "tversky-alpha0.3-beta0.7/fold1": "failed"}
    assert "simulated interruption" in out[3].error
    assert len(seen) == 4
    assert not is_finished(specs[3].run_dir)
    first = {s.name: (s.run_dir / "metrics_per_case.csv").read_text() for s in specs[:3]}
    # re-invoking: finished runs are skipped (not called again), the interrupted one completes
    out2 = run_local(specs, train_fn=FAKE)
    assert [o.status for o in out2] == ["skipped", "skipped", "skipped", "finished"]
    assert [_calls(s) for s in specs] == [1, 1, 1, 2]
    assert {s.name: (s.run_dir / "metrics_per_case.csv").read_text() for s in specs[:3]} == first
    assert is_finished(specs[3].run_dir)


def test_is_finished_reads_status(tmp_path):
    assert not is_finished(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "running"}))
    assert not is_finished(tmp_path)
    (tmp_path / "summary.json").write_text("{broken")
    assert not is_finished(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "finished"}))
    assert is_finished(tmp_path)


def test_worker_processes_give_the_same_folders(tmp_path):
    a = compare_plan(BASE, tmp_path / "seq", "dice,focal", n_folds=2, validate=False)
    b = compare_plan(BASE, tmp_path / "par", "dice,focal", n_folds=2, validate=False)
    run_local(a, train_fn=FAKE)
    out = run_local(b, workers=2, train_fn=FAKE, threads_per_worker=1)
    assert all(o.status == "finished" for o in out)
    pids = {(s.run_dir / "calls.txt").read_text().strip() for s in b}
    assert str(os.getpid()) not in pids  # ran in worker processes
    assert {(s.run_dir / "calls.txt").read_text().strip() for s in a} == {str(os.getpid())}
    for sa, sb in zip(a, b):
        assert (sa.run_dir / "metrics_per_case.csv").read_text() == (sb.run_dir / "metrics_per_case.csv").read_text()
    # the metrics are the fake's pure function of the configuration
    want = fake_metrics(b[0].config)
    text = (b[0].run_dir / "metrics_per_case.csv").read_text()
    assert all(cid in text for cid in want["1"])


def test_runner_errors(tmp_path):
    specs = compare_plan(BASE, tmp_path, "dice", n_folds=2, validate=False)
    with pytest.raises(ValueError, match="runner"):
        run_study(specs, runner="slurm", train_fn=FAKE)
    with pytest.raises(ValueError, match="workers"):
        run_local(specs, workers=0, train_fn=FAKE)
    out = run_local(specs[:1], train_fn="tests.study.fakes")  # not module:function
    assert out[0].status == "failed" and "module:function" in out[0].error
