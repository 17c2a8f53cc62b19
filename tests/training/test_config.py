"""Configuration errors fail before any training, with a message saying what to change."""

from __future__ import annotations

import itertools

import pytest
from typer.testing import CliRunner

from unifocal.cli import app
from unifocal.training import resolve_config, train_and_evaluate
from unifocal.training.schemes import make_optimizer, make_scheduler, poly_lr

from .conftest import tiny_config


@pytest.mark.parametrize(("change", "message"), [
    ({"loss": {"name": "unified_focall"}}, "unified_focal"),
    ({"loss": {"name": "unified_focal", "params": {"delt": 0.6}}}, "did you mean 'delta'"),
    ({"loss": {"name": "unified_focal", "params": {"delta": "high"}}}, "delta"),
    ({"epochs": "ten"}, "epochs must be int"),
    ({"amp": "yes"}, "amp must be bool"),
    ({"scheme": "rmsprop"}, "scheme must be one of sgd, adam, sota"),
    ({"dataset": {"path": "/nonexistent/BUSI"}}, "does not exist"),
    ({"epoch": 3}, "Did you mean epochs"),
    ({"fold": 7}, "fold must lie in"),
    ({"model": {"name": "unet", "base_filters": 0}}, "base_filters must be a positive integer"),
])
def test_invalid_config_fails_before_training(tmp_path, change, message):
    cfg = tiny_config(**change)
    with pytest.raises(ValueError, match=message):
        resolve_config(cfg)
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_bad_model_parameter_fails_before_training(tmp_path):
    cfg = tiny_config(model={"name": "unet", "base_filter": 8})
    with pytest.raises(ValueError, match="Did you mean base_filters"):
        train_and_evaluate(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_train_rejects_bad_flags_without_training(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "-o", str(out), "--dataset", "phantom2d", "--loss", "unified_focal",
                            "--loss-param", "delta=1.5", "--epochs", "1"])
    assert r.exit_code == 2 and "delta" in r.output
    r = runner.invoke(app, ["train", "-o", str(out), "--dataset", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["train", "-o", str(out), "--loss-param", "delta"])
    assert r.exit_code == 2 and "NAME=VALUE" in r.output
    assert not (out / "checkpoints").exists()


def test_scheme_defaults():
    c = resolve_config({"scheme": "sota"})
    assert c.epochs == 1000 and c.model["deep_supervision"] is True
    c = resolve_config({"scheme": "sgd"})
    assert c.epochs == 100 and c.model["deep_supervision"] is False


def test_schedules():
    import torch

    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = make_optimizer("sgd", p)
    assert opt.defaults["momentum"] == 0.99 and opt.defaults["nesterov"] and opt.defaults["lr"] == 0.01
    sch = make_scheduler("sgd", opt, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[0] == pytest.approx(0.01) and lrs[50] == pytest.approx(poly_lr(0.01, 50, 100))
    assert lrs[99] == pytest.approx(0.01 * 0.01**0.9)
    opt = make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))])
    sch = make_scheduler("adam", opt, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[0] == pytest.approx(3e-4) and lrs[-1] == pytest.approx(1e-6)
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_momentum_key():
    import torch

    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = make_optimizer("sgd", p, momentum=0.9)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"]
    opt = make_optimizer("sgd", p, momentum=0)
    assert opt.defaults["momentum"] == 0 and not opt.defaults["nesterov"]
    assert resolve_config({"scheme": "sgd", "momentum": 0.9}).momentum == 0.9
    with pytest.raises(ValueError, match=r"momentum=0\.9 applies only to the SGD schemes"):
        resolve_config({"scheme": "adam", "momentum": 0.9})
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\), got 1.0"):
        resolve_config({"scheme": "sgd", "momentum": 1.0})
    with pytest.raises(ValueError, match=r"momentum=0\.9 applies only"):
        make_optimizer("adam", p, momentum=0.9)
