"""``unifocal train`` / ``predict`` / ``evaluate`` end to end on a tiny phantom run, YAML + flags."""

from __future__ import annotations

import json

import numpy as np
import yaml
from PIL import Image
from typer.testing import CliRunner

from unifocal.cli import app
from unifocal.cli.run import build_config, demo_config
from unifocal.training import resolve_config


def test_yaml_and_flags_merge(tmp_path):
    f = tmp_path / "cfg.yaml"
    f.write_text(yaml.safe_dump({"dataset": "phantom2d", "loss": {"name": "unified_focal", "params": {"gamma": 0.5}},
                                 "epochs": 7, "scheme": "sgd"}))
    cfg = resolve_config(build_config(f, loss_param=["delta=0.7"], epochs=2, model="unet", base_filters=8))
    assert cfg.loss == {"name": "unified_focal", "params": {"gamma": 0.5, "delta": 0.7}}
    assert cfg.epochs == 2 and cfg.scheme == "sgd" and cfg.model["base_filters"] == 8
    assert cfg.dataset["name"] == "phantom2d"
    # a different loss on the command line drops the file's loss parameters
    cfg = resolve_config(build_config(f, loss="dice"))
    assert cfg.loss == {"name": "dice", "params": {}}
    assert resolve_config(demo_config()).loss["name"] == "unified_focal"


def test_train_predict_evaluate(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "-o", str(run), "--dataset", "phantom2d", "--dataset-option", "n_cases=12",
                            "--dataset-option", "size=32", "--loss", "unified_focal", "--loss-param", "delta=0.6",
                            "--model", "unet", "--model-param", "depth=3", "--base-filters", "4",
                            "--scheme", "adam", "--epochs", "1", "--batch-size", "4", "--seed", "1",
                            "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    assert "DSC" in r.output and (run / "summary.json").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["loss"]["params"] == {"delta": 0.6} and saved["seed"] == 1 and saved["model"]["depth"] == 3

    img = (np.random.default_rng(0).random((40, 24)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "new.png")
    r = runner.invoke(app, ["predict", str(run), str(tmp_path / "new.png"), "-o", str(tmp_path / "pred"),
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert np.array(Image.open(tmp_path / "pred" / "new.png")).shape == (40, 24)

    r = runner.invoke(app, ["evaluate", str(run), "-o", str(tmp_path / "ev"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev" / "summary.json").read_text())
    ref = json.loads((run / "summary.json").read_text())
    assert ev["metrics"] == ref["metrics"]  # same best model, same validation cases
