"""Training diagnostics: gradient norms per block and the predicted class balance."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from unifocal.training import train_and_evaluate
from unifocal.training.diagnostics import Diagnostics, block_of
from unifocal.training.loop import build_run

from .conftest import tiny_config


def test_block_of():
    assert block_of("down.0.conv1.weight") == "down.0"
    assert block_of("head.bias") == "head"
    assert block_of("encoder.weight") == "encoder"


def test_gradient_norms_add_up_to_the_total_norm_and_update_ratio():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    d = Diagnostics(model)
    assert d.blocks == ["0", "2"]
    model(torch.randn(2, 1, 8, 8)).square().mean().backward()
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
    d.after_backward()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    d.after_step()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    row = d.end_epoch(1)
    assert math.hypot(row["grad/0"], row["grad/2"]) == pytest.approx(total, rel=1e-5)
    assert row["grad/0"] == pytest.approx(torch.cat([p.grad.flatten() for p in model[0].parameters()]).norm().item())
    assert row["update_ratio"] == pytest.approx(((after - before).norm() / before.norm()).item(), rel=1e-5)


def test_class_balance_of_a_prediction():
    d = Diagnostics(torch.nn.Linear(1, 1))
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0] = 1.0  # background everywhere ...
    logits[0, 2, 0, 0] = 5.0  # ... but one pixel of class 2
    label = torch.tensor([[0, 1], [1, 1]])
    d.on_validation_case(logits, label)
    row = d.end_epoch(3)
    assert row["val_fg_pred"] == pytest.approx(0.25) and row["val_fg_true"] == pytest.approx(0.75)
    prob_bg = torch.softmax(logits, 1)[0, 0]
    assert row["val_fg_prob"] == pytest.approx(float((1 - prob_bg).mean()))


def test_run_with_diagnostics_writes_one_row_per_epoch(tmp_path):
    cfg = tiny_config(epochs=2, diagnostics=True, dataset={"name": "phantom2d", "options": {"n_cases": 8, "size": 16}})
    run = tmp_path / "run"
    train_and_evaluate(cfg, run, progress=False)
    rows = list(csv.DictReader((run / "diagnostics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"grad/head", "grad/down.0", "update_ratio", "val_fg_pred"} <= set(rows[0])
    assert all(float(r["grad/head"]) > 0 and float(r["update_ratio"]) > 0 for r in rows)
    # the true foreground share is that of the validation labels, computed independently
    ctx = build_run(cfg)
    val = json.loads((run / "split.json").read_text())["val"]
    share = np.mean([np.mean(np.asarray(ctx.dataset[c].label) != 0) for c in val])
    assert float(rows[0]["val_fg_true"]) == pytest.approx(share, rel=1e-5)
