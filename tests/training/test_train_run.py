"""A few-epoch run on the phantom: the run-folder contract, learning, skip when finished, NaN handling."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from unifocal.training import NonFiniteLossError, train_and_evaluate
from unifocal.training.checkpoint import load_checkpoint
from unifocal.training.loop import build_run

from .conftest import tiny_config


def test_phantom_run_learns_and_writes_the_contract(tmp_path):
    cfg = tiny_config(epochs=8)
    run = tmp_path / "run"
    summary = train_and_evaluate(cfg, run, progress=False)
    for f in ("config.yaml", "split.json", "log.csv", "checkpoints/last.pt", "checkpoints/best.pt",
              "metrics_per_case.csv", "summary.json", "learning_curves.png"):
        assert (run / f).is_file(), f
    assert any((run / "tensorboard").iterdir())
    assert summary["status"] == "finished" and summary["epochs"] == 8
    assert json.loads((run / "summary.json").read_text()) == summary
    log = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in log] == list(range(1, 9))
    assert list(log[0]) == ["epoch", "train_loss", "val_loss", "val_dsc", "lr", "seconds"]
    # the final model is the one with the lowest validation loss
    best = min(log, key=lambda r: float(r["val_loss"]))
    assert summary["best_epoch"] == int(best["epoch"])
    # the untrained network scores far lower than the trained one on the same validation cases
    split = json.loads((run / "split.json").read_text())
    ctx = build_run(cfg)
    untrained = ctx.validate(split["val"], 0)[1]
    trained = summary["metrics"]["lesion"]["dsc"]["mean"]
    assert trained > untrained + 0.3, (untrained, trained)
    assert trained > 0.5
    rows = list(csv.DictReader((run / "metrics_per_case.csv").open()))
    assert list(rows[0]) == ["case_id", "class", "dsc", "precision", "recall", "tp", "fp", "fn"]
    assert {r["case_id"] for r in rows} == set(split["val"])
    m = summary["metrics"]["lesion"]
    assert set(m) == {"dsc", "precision", "recall"} and m["dsc"]["n"] == len(split["val"])
    # a finished run is not recomputed
    mtime = os.stat(run / "checkpoints" / "last.pt").st_mtime_ns
    again = train_and_evaluate(cfg, run, progress=False)
    assert again == summary and os.stat(run / "checkpoints" / "last.pt").st_mtime_ns == mtime


def test_nan_loss_names_epoch_and_batch_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    import unifocal.training.loop as loop

    real = loop.make_loss
    calls = {"n": 0}

    class Poisoned(torch.nn.Module):
        """The real loss, except that the 10th training call (epoch 2, batch 2) returns NaN."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, out, target):
            val = self.inner(out, target)
            if torch.is_grad_enabled():  # training batches only (validation runs under no_grad)
                calls["n"] += 1
                if calls["n"] == 10:
                    return val * float("nan")
            return val

    monkeypatch.setattr(loop, "make_loss", lambda ds, cfg: Poisoned(real(ds, cfg)))
    run = tmp_path / "run"
    cfg = tiny_config(epochs=3, batch_size=4)  # 30 training cases -> 8 batches per epoch
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 2") as info:
        train_and_evaluate(cfg, run, progress=False)
    assert "last.pt" in str(info.value)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and (run / "checkpoints" / "best.pt").is_file()
    assert not (run / "summary.json").exists()
    # the same command resumes from the surviving checkpoint once the cause is gone
    monkeypatch.setattr(loop, "make_loss", real)
    summary = train_and_evaluate(cfg, run, progress=False)
    assert summary["status"] == "finished"
    log = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in log] == [1, 2, 3]


def test_sota_scheme_deep_supervision_with_amp_runs(tmp_path):
    """Scheme 3 (SGD + deep supervision) with mixed precision (bfloat16 on CPU): finite losses, list outputs."""
    cfg = tiny_config(scheme="sota", epochs=2, amp=True, lr=None,
                      dataset={"name": "phantom2d", "options": {"n_cases": 12, "size": 32}})
    run = tmp_path / "run"
    summary = train_and_evaluate(cfg, run, progress=False)
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    assert saved["config"]["model"]["deep_supervision"] is True
    assert any(k.startswith("aux_heads.") for k in saved["model"])
    assert saved["optimizer"]["param_groups"][0]["nesterov"] and saved["optimizer"]["param_groups"][0]["momentum"] == 0.99
    log = list(csv.DictReader((run / "log.csv").open()))
    assert float(log[0]["lr"]) == pytest.approx(0.01)
    assert float(log[1]["lr"]) == pytest.approx(0.01 * (1 - 1 / 2) ** 0.9)
    assert all(torch.isfinite(torch.tensor(float(r["train_loss"]))) for r in log)
    assert summary["status"] == "finished"


def test_run_folder_of_another_configuration_is_refused(tmp_path):
    run = tmp_path / "run"
    small = {"name": "phantom2d", "options": {"n_cases": 12, "size": 32}}
    train_and_evaluate(tiny_config(epochs=1, dataset=small), run, progress=False)
    with pytest.raises(ValueError, match=r"different configuration \(seed: 0 -> 5"):
        train_and_evaluate(tiny_config(epochs=1, dataset=small, seed=5), run, progress=False)
    # device / progress-only differences are not a different run
    assert train_and_evaluate(tiny_config(epochs=1, dataset=small, device="auto"), run)["status"] == "finished"
