"""The Ray runner on a local 2-CPU Ray instance (runs only when Ray is installed: extra ``ray``)."""

from __future__ import annotations

import pytest

from unifocal.study.plan import compare_plan
from unifocal.study.runners import run_local, run_ray
from unifocal.study.tables import build_table

from .fakes import fake_metrics

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")

FAKE = "tests.study.fakes:fake_train"
BASE = {"dataset": {"name": "phantom2d"}, "epochs": 1}


def test_ray_runner_matches_local_and_resumes(tmp_path):
    from unifocal.study.results import collect_runs, group_arms

    losses = "dice,focal,unified_focal"
    a = compare_plan(BASE, tmp_path / "local", losses, n_folds=2, validate=False)
    b = compare_plan(BASE, tmp_path / "ray", losses, n_folds=2, validate=False)
    run_local(a, train_fn=FAKE)
    # one run is interrupted the first time (as a driver or worker crash would leave it)
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "fail-dice-fold1").write_text("")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = run_ray(b, cpus_per_run=1, train_fn=FAKE, shutdown=False)
        assert {o.name: o.status for o in out}["dice/fold1"] == "failed"
        assert sum(o.status == "finished" for o in out) == 5
        # ran in Ray worker processes, not in this driver
        import os

        pids = {(s.run_dir / "calls.txt").read_text().split()[0] for s in b}
        assert str(os.getpid()) not in pids
        # a new invocation (e.g. after a driver restart) only runs what is missing
        out2 = run_ray(b, cpus_per_run=1, train_fn=FAKE, shutdown=False)
        assert sorted(o.status for o in out2) == ["finished"] + ["skipped"] * 5
        assert {o.name: o.status for o in out2}["dice/fold1"] == "finished"
    finally:
        ray.shutdown()
    for sa, sb in zip(a, b):
        assert (sa.run_dir / "metrics_per_case.csv").read_text() == (sb.run_dir / "metrics_per_case.csv").read_text()
    text = (b[0].run_dir / "metrics_per_case.csv").read_text()
    assert all(f"{cid},1," in text for cid in fake_metrics(b[0].config)["1"])
    # the report does not depend on the runner
    ta = build_table(group_arms(collect_runs(tmp_path / "local")))
    tb = build_table(group_arms(collect_runs(tmp_path / "ray")))
    assert ta.to_markdown() == tb.to_markdown()
