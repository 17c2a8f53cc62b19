"""Resume after ``kill -9``: the resumed run ends exactly like an uninterrupted one (fixed seed, CPU),
with random augmentation and dropout, so that both the loaders' seeds and the restored RNG states count."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from unifocal.training import train_and_evaluate
from unifocal.training.checkpoint import load_checkpoint, save_checkpoint

from .conftest import tiny_config

EPOCHS = 4


def _log(run: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run / "log.csv").open()))
    for r in rows:
        r.pop("seconds")
    return rows


def _kill_after_epochs(cfg: dict, run: Path, epochs_done: int, timeout: float = 240.0) -> int:
    code = ("import json, sys; from unifocal.training import train_and_evaluate; "
            "train_and_evaluate(json.loads(sys.argv[1]), sys.argv[2], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg), str(run)], env=os.environ.copy())
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            log = run / "log.csv"
            if log.is_file() and len(log.read_text().strip().splitlines()) - 1 >= epochs_done:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return proc.returncode


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    # Random augmentation (seeded per epoch by the loader) and dropout (drawn from the global torch
    # generator, whose state only the checkpoint's RNG states carry across a restart).
    cfg = tiny_config(epochs=EPOCHS, dataset={"name": "phantom2d", "options": {"n_cases": 16, "size": 32}},
                      model={"name": "BasicUNet", "base_filters": 4, "dropout": 0.3}, augment=True)
    ref = train_and_evaluate(cfg, tmp_path / "ref", progress=False)

    run = tmp_path / "resumed"
    rc = _kill_after_epochs(cfg, run, epochs_done=2)
    assert rc == -signal.SIGKILL, "the training process should have been killed mid-run"
    assert not (run / "summary.json").exists()
    done = load_checkpoint(run / "checkpoints" / "last.pt")["epoch"]
    assert 2 <= done < EPOCHS
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no torn temporary file became a checkpoint

    # control: the same interrupted run resumed with another torch RNG state ends differently, so the
    # comparison below can fail (it would, were the RNG states not restored on resume)
    control = tmp_path / "control"
    shutil.copytree(run, control)
    st = load_checkpoint(control / "checkpoints" / "last.pt")
    st["rng"]["torch"] = torch.Generator().manual_seed(12345).get_state()
    save_checkpoint(control / "checkpoints" / "last.pt", st)
    train_and_evaluate(cfg, control, progress=False)
    assert _log(control)[:done] == _log(tmp_path / "ref")[:done]
    assert _log(control) != _log(tmp_path / "ref")

    res = train_and_evaluate(cfg, run, progress=False)
    assert _log(run) == _log(tmp_path / "ref")  # every epoch's losses, DSC and lr identical
    assert res["metrics"] == ref["metrics"] and res["best_epoch"] == ref["best_epoch"]
    a = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    b = load_checkpoint(tmp_path / "ref" / "checkpoints" / "best.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (run / "metrics_per_case.csv").read_text() == (tmp_path / "ref" / "metrics_per_case.csv").read_text()
