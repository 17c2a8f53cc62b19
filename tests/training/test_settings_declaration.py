"""Issue #27: a training setting is declared once (``training.config.setting``); the YAML checks, the range
checks, the command-line options of ``train`` / ``study compare|tune``, the resume guard and the table of
``docs/training.md`` are generated from that declaration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

import unifocal.training.config as config
from unifocal.cli._common import train_options
from unifocal.training.config import (
    NOT_GUARDED,
    TrainConfig,
    build_config,
    not_guarded,
    resolve_config,
    setting,
    settings_table,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


@dataclasses.dataclass
class _WithWarmup(TrainConfig):
    """TrainConfig plus two throwaway settings, declared as a new setting is: one line each."""

    warmup: int | None = setting(None, help="Warm-up epochs.", flag="--warmup", ge=1)
    log_every: int = setting(1, help="Log every N epochs.", flag="--log-every", ge=1, guarded=False)


@pytest.fixture()
def warmup(monkeypatch):
    monkeypatch.setattr(config, "TrainConfig", _WithWarmup)


def test_yaml_type_and_range_checks_pick_up_a_new_setting(warmup):
    assert resolve_config({"warmup": 3}).warmup == 3
    with pytest.raises(ValueError, match=r"^warmup must be int, got 'x'"):
        resolve_config({"warmup": "x"})
    with pytest.raises(ValueError, match=r"^warmup must be >= 1, got 0; fix --warmup / warmup"):
        resolve_config({"warmup": 0})
    with pytest.raises(ValueError, match="unknown configuration key 'warmupp'"):
        resolve_config({"warmupp": 3})


def test_resume_guard_picks_up_a_new_setting(warmup, tmp_path):
    from unifocal.training.loop import _check_own_configuration

    assert "log_every" in not_guarded() and "warmup" not in not_guarded()
    cfg = resolve_config({"warmup": 2, "log_every": 5})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    _check_own_configuration(resolve_config({"warmup": 2, "log_every": 7}), tmp_path)  # not guarded
    with pytest.raises(ValueError, match=r"warmup: 2 -> 3"):
        _check_own_configuration(resolve_config({"warmup": 3}), tmp_path)


def test_command_line_picks_up_a_new_setting(warmup):
    app = typer.Typer()
    seen = {}

    @app.command()
    @train_options()
    def train(settings: dict | None = None) -> None:
        seen.update(settings)
        seen["resolved"] = resolve_config(build_config(settings.pop("config"), **settings))

    @app.command()
    def other() -> None:  # two commands: ``train`` is then a subcommand, as in ``unifocal``
        pass

    runner = CliRunner()
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "--warmup" in help_text and "Warm-up epochs." in help_text and "--log-every" in help_text
    res = runner.invoke(app, ["train", "--warmup", "4", "--epochs", "2"])
    assert res.exit_code == 0, res.output
    assert seen["warmup"] == 4 and seen["resolved"].warmup == 4 and seen["resolved"].epochs == 2


def test_every_setting_with_a_flag_is_an_option_of_train_and_study():
    from unifocal.cli import app

    runner = CliRunner()
    train = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    study = runner.invoke(app, ["study", "compare", "--help"], env={"COLUMNS": "250"}).output
    for f in config.setting_fields():
        flag = config.meta(f)["flag"]
        if flag is None:
            continue
        assert flag in train, flag
        if config.meta(f)["study"]:
            assert flag in study, flag


def test_not_guarded_is_generated():
    assert set(NOT_GUARDED) == {"device", "num_workers", "amp", "save_predictions", "stop_after", "patience"}


def test_docs_table_is_the_generated_one():
    text = DOC.read_text()
    start, end = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"
    assert start in text and end in text
    documented = text[text.index(start) + len(start):text.index(end)]
    assert documented == settings_table(), "docs/training.md: run python scripts/update_settings_table.py"


def test_configuration_is_resolved_once_per_run(tmp_path, monkeypatch):
    """``unifocal train`` validates the configuration once (the loss built, the dataset checked) and passes
    the resolved one down; a resolved configuration given again is not validated again."""
    from unifocal.cli import app

    calls = []
    check_loss = config._check_loss
    monkeypatch.setattr(config, "_check_loss", lambda loss: calls.append(1) or check_loss(loss))
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "-o", str(run), "--dataset", "phantom2d", "--dataset-option", "n_cases=8",
                                 "--dataset-option", "size=32", "--model-param", "depth=2", "--base-filters", "4",
                                 "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--folds", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert len(calls) == 1
    cfg = resolve_config({"epochs": 2})
    assert resolve_config(cfg) is cfg and len(calls) == 2
    cfg.epochs = 3  # changed since: resolved again
    assert resolve_config(cfg) is not cfg and len(calls) == 3
