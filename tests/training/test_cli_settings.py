"""Every setting given on the command line arrives (or is refused), and evaluation uses the run's own
preprocessing; the command-line convention holds for every command."""

from __future__ import annotations

import csv
import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from unifocal.cli import app
from unifocal.cli.run import build_config
from unifocal.training import build_run, evaluate_run, resolve_config, train_and_evaluate
from unifocal.training.config import open_dataset

from .conftest import tiny_config

runner = CliRunner()
TINY = ["--model", "unet", "--model-param", "depth=3", "--model-param", "norm=instance", "--base-filters", "4",
        "--scheme", "adam", "--lr", "0.003", "--batch-size", "4", "--seed", "0", "--device", "cpu", "-q"]


def _yaml(tmp_path, data):
    f = tmp_path / "cfg.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dataset_settings_arrive(tmp_path):
    f = _yaml(tmp_path, {"dataset": {"name": "phantom2d", "options": {"n_cases": 8, "size": 32, "resize": [16, 16]}},
                         "epochs": 3})
    # --dataset replaces the source only: the file's options stay; resize=null switches the step off
    for off in ("resize=null", "resize=None", "resize=~"):
        cfg = build_config(f, dataset="phantom2d", dataset_option=[off])
        assert cfg["dataset"] == {"name": "phantom2d", "options": {"n_cases": 8, "size": 32, "resize": None}}
    ds = open_dataset(resolve_config(cfg).dataset)
    assert len(ds) == 8 and ds[0].image.shape == (1, 32, 32)  # native size, not the file's 16x16
    assert ds.preprocessing["resize"] is None
    # without the override the file's resize is used
    ds16 = open_dataset(resolve_config(build_config(f, dataset="phantom2d")).dataset)
    assert ds16[0].image.shape == (1, 16, 16)
    # loss parameters set to null arrive too; a bare NAME is refused
    assert build_config(loss="dice", loss_param=["rare_classes=null"])["loss"]["params"] == {"rare_classes": None}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        build_config(dataset="phantom2d", dataset_option=["resize"])
    with pytest.raises(ValueError, match="need a dataset"):
        build_config(dataset_option=["resize=null"])


def test_training_settings_arrive(tmp_path):
    cfg = build_config(dataset="phantom2d", patch_size="24x24", samples_per_epoch=5, overlap=0.25, fold="all",
                       n_folds=3, lr=0.01, split_seed=4)
    r = resolve_config(cfg)
    assert (r.patch_size, r.samples_per_epoch, r.overlap, r.fold, r.n_folds, r.lr, r.split_seed) == \
        ([24, 24], 5, 0.25, "all", 3, 0.01, 4)
    assert build_config(patch_size="96")["patch_size"] == [96]
    for bad, msg in ((dict(patch_size="12,x"), "patch-size"), (dict(fold="first"), "--fold"),
                     (dict(epoch=3), "Did you mean epochs")):
        with pytest.raises(ValueError, match=msg):
            build_config(dataset="phantom2d", **bad)
    with pytest.raises(ValueError, match="fold must be an integer"):
        resolve_config(tiny_config(fold="last"))


def test_invalid_rare_classes_fail_loudly(tmp_path):
    cfg = tiny_config(dataset={"name": "phantom2d", "options": {"n_cases": 8, "size": 32, "rare_classes": [0, 1]}})
    with pytest.raises(ValueError, match=r"rare_classes \[0, 1\]"):
        build_run(cfg)
    r = runner.invoke(app, ["train", "-o", str(tmp_path / "run"), "--dataset", "phantom2d", "--dataset-option",
                            "rare_classes=[0, 1]", "--epochs", "1", *TINY])
    assert r.exit_code == 2 and r.stderr.startswith("Error:") and "rare_classes" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_all_cases_and_cli_settings_in_config_yaml(tmp_path):
    f = _yaml(tmp_path, {"dataset": {"name": "phantom2d", "options": {"n_cases": 8, "size": 32, "resize": [16, 16]}}})
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "-c", str(f), "-o", str(run), "--dataset", "phantom2d", "--dataset-option",
                            "resize=null", "--patch-size", "16,16", "--samples-per-epoch", "6", "--overlap", "0.25",
                            "--fold", "all", "--epochs", "1", *TINY])
    assert r.exit_code == 0, r.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["dataset"]["options"] == {"n_cases": 8, "size": 32, "resize": None}
    assert (saved["patch_size"], saved["samples_per_epoch"], saved["overlap"], saved["fold"]) == \
        ([16, 16], 6, 0.25, "all")
    split = json.loads((run / "split.json").read_text())
    ids = [f"phantom2d_{i:03d}" for i in range(8)]
    assert split == {"fold": "all", "train": ids, "val": ids}  # the final model sees every case
    assert sorted({row["case_id"] for row in _rows(run / "metrics_per_case.csv")}) == ids
    assert json.loads((run / "summary.json").read_text())["metrics"]["lesion"]["dsc"]["n"] == 8
    # a rerun with the same settings is the same run (nothing new, no "different configuration")
    r = runner.invoke(app, ["train", "-c", str(f), "-o", str(run), "--dataset", "phantom2d", "--dataset-option",
                            "resize=null", "--patch-size", "16,16", "--samples-per-epoch", "6", "--overlap", "0.25",
                            "--fold", "all", "--epochs", "1", *TINY])
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def resized_run(tmp_path_factory):
    """A run trained on the phantom resized from 32x32 to 16x16 (not the phantom's default preprocessing)."""
    root = tmp_path_factory.mktemp("resized")
    mp = pytest.MonkeyPatch()
    mp.setenv("UNIFOCAL_CACHE", str(root / "cache"))
    # one epoch at a negligible learning rate: a nearly untrained network whose label maps still depend
    # on every pixel (neither all background nor all foreground), which is all the scoring checks need
    cfg = tiny_config(dataset={"name": "phantom2d", "options": {"n_cases": 12, "size": 32, "resize": [16, 16]}},
                      model={"name": "unet", "base_filters": 4, "depth": 2, "norm": "instance"}, n_folds=3,
                      epochs=1, lr=1e-6, augment=False)
    train_and_evaluate(cfg, root / "run", progress=False)
    mp.undo()
    return root / "run"


def test_evaluate_uses_the_runs_preprocessing(resized_run, tmp_path):
    own = {(row["case_id"], row["class"]): row for row in _rows(resized_run / "metrics_per_case.csv")}
    predicted = [int(row["tp"]) + int(row["fp"]) for row in own.values()]
    assert all(0 < n < 32 * 32 for n in predicted)  # label maps that depend on the image
    # another dataset entry (here the same phantom, without the run's resize): opened with the run's
    # preprocessing, so the run's validation cases score exactly as in training's own evaluation
    evaluate_run(resized_run, tmp_path / "api", dataset={"name": "phantom2d", "options": {"n_cases": 12, "size": 32}},
                 device="cpu", progress=False)
    ev = {(row["case_id"], row["class"]): row for row in _rows(tmp_path / "api" / "metrics_per_case.csv")}
    assert len(ev) == 12
    for key, row in own.items():
        assert ev[key] == row, key
    r = runner.invoke(app, ["evaluate", str(resized_run), "-o", str(tmp_path / "ev"), "--dataset", "phantom2d",
                            "--dataset-option", "n_cases=12", "--dataset-option", "size=32", "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    assert "None" not in r.stdout and "cases scored: 12" in r.stdout
    assert _rows(tmp_path / "ev" / "metrics_per_case.csv") == _rows(tmp_path / "api" / "metrics_per_case.csv")
    # a preprocessing option that contradicts the run's is refused, before anything is written
    r = runner.invoke(app, ["evaluate", str(resized_run), "-o", str(tmp_path / "ev2"), "--dataset", "phantom2d",
                            "--dataset-option", "resize=[8, 8]", "--device", "cpu", "-q"])
    assert r.exit_code == 2 and "resize" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "ev2").exists()
    # the run's own preprocessing given explicitly is accepted
    r = runner.invoke(app, ["evaluate", str(resized_run), "-o", str(tmp_path / "ev3"), "--dataset-option",
                            "resize=[16, 16]", "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output


def test_evaluate_dataset_options_select_cases(resized_run, tmp_path):
    val = json.loads((resized_run / "split.json").read_text())["val"]
    keep = [f"phantom2d_{i:03d}" for i in range(6)]
    r = runner.invoke(app, ["evaluate", str(resized_run), "-o", str(tmp_path / "ev"), "--dataset-option",
                            "n_cases=6", "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    scored = [row["case_id"] for row in _rows(tmp_path / "ev" / "metrics_per_case.csv")]
    assert scored == [c for c in val if c in keep]
    own = {row["case_id"]: row for row in _rows(resized_run / "metrics_per_case.csv")}
    assert all(row == own[row["case_id"]] for row in _rows(tmp_path / "ev" / "metrics_per_case.csv"))


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), cmd


def test_one_convention_for_every_command():
    root = typer.main.get_command(app)
    cmds = dict(_commands(root))
    writes = {"train", "predict", "evaluate", "demo", "study compare", "study tune", "study report"}
    bars = {"train", "predict", "evaluate", "demo", "study compare", "study tune", "data summary"}
    assert writes | bars <= set(cmds)
    for name, cmd in cmds.items():
        opts = {o: p for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        assert "--out" not in opts and "--progress" not in opts, name
        if name in writes:
            assert opts["-o"] is opts["--output"], name
        if name in bars:
            assert opts["-q"] is opts["--quiet"], name
    # the training settings are the same options in train and study compare / tune
    shared = ("--patch-size", "--samples-per-epoch", "--overlap", "--dataset-option", "--config", "-c",
              "--model-param", "--lr", "--patience", "--lr-patience", "--split-seed")
    for name in ("train", "study compare", "study tune"):
        opts = {o for p in cmds[name].params for o in p.opts}
        assert set(shared) <= opts, (name, set(shared) - opts)


@pytest.mark.parametrize("argv", [
    ["study", "compare", "--dataset", "{missing}", "-o", "{out}", "--losses", "dice"],
    ["study", "tune", "--dataset", "{missing}", "-o", "{out}", "--grid", "delta"],
    ["train", "--dataset", "{missing}", "-o", "{out}"],
    ["evaluate", "{missing}", "-o", "{out}"],
    ["predict", "{missing}", "{missing}", "-o", "{out}"],
    ["data", "summary", "{missing}"],
    ["study", "report", "{missing}", "-o", "{out}"],
])
def test_missing_input_is_one_line_exit_2_and_writes_nothing(tmp_path, argv):
    argv = [a.format(missing=tmp_path / "missing", out=tmp_path / "out") for a in argv]
    r = runner.invoke(app, argv)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()
