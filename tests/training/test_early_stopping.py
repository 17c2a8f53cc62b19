"""Early stopping (``patience``) and the plateau schedule (``lr_patience``) on scripted validation losses."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

import unifocal.training.loop as loop
from unifocal.training import train_and_evaluate

from .conftest import tiny_config

SMALL = {"name": "phantom2d", "options": {"n_cases": 8, "size": 16}}


def _script(monkeypatch, losses: list[float], fail_at: int | None = None) -> list[int]:
    """Make ``RunContext.validate`` return ``losses[epoch - 1]`` (DSC 0.5); raise at epoch ``fail_at``."""
    seen: list[int] = []

    def validate(self, ids, epoch):
        if epoch == fail_at:
            raise KeyboardInterrupt(f"killed in epoch {epoch}")
        seen.append(epoch)
        return losses[epoch - 1], 0.5

    monkeypatch.setattr(loop.RunContext, "validate", validate)
    return seen


def _log(run):
    return list(csv.DictReader((run / "log.csv").open()))


@pytest.mark.parametrize(("patience", "best", "stop"), [(2, 2, 4), (3, 5, 8), (1, 2, 3), (20, 5, 10)])
def test_stops_after_patience_epochs_without_improvement(tmp_path, monkeypatch, patience, best, stop):
    losses = [1.0, 0.5, 0.6, 0.7, 0.4, 0.9, 0.45, 0.41, 0.5, 0.6]
    _script(monkeypatch, losses)
    run = tmp_path / "run"
    s = train_and_evaluate(tiny_config(epochs=10, patience=patience, dataset=SMALL), run, progress=False)
    assert (s["best_epoch"], s["stop_epoch"], s["epochs"]) == (best, stop, 10)
    assert s["stopped_early"] is (stop < 10)
    assert [int(r["epoch"]) for r in _log(run)] == list(range(1, stop + 1))
    assert s["best_val_loss"] == min(losses[:stop])
    assert json.loads((run / "summary.json").read_text())["stop_epoch"] == stop


def test_without_patience_every_epoch_runs(tmp_path, monkeypatch):
    _script(monkeypatch, [1.0, 0.5, 0.6, 0.7, 0.8])
    s = train_and_evaluate(tiny_config(epochs=5, dataset=SMALL), tmp_path / "run", progress=False)
    assert (s["best_epoch"], s["stop_epoch"], s["stopped_early"]) == (2, 5, False)


def test_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    losses = [1.0, 0.5, 0.6, 0.7, 0.4, 0.9, 0.45, 0.41, 0.5, 0.6]
    cfg = tiny_config(epochs=10, patience=3, dataset=SMALL)
    _script(monkeypatch, losses)
    whole = train_and_evaluate(cfg, tmp_path / "whole", progress=False)
    _script(monkeypatch, losses, fail_at=7)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, tmp_path / "cut", progress=False)
    seen = _script(monkeypatch, losses)
    cut = train_and_evaluate(cfg, tmp_path / "cut", progress=False)
    assert seen == [7, 8]  # resumed after epoch 6, stopped at 8
    assert [cut[k] for k in ("best_epoch", "stop_epoch")] == [whole[k] for k in ("best_epoch", "stop_epoch")]
    assert [r["train_loss"] for r in _log(tmp_path / "cut")] == [r["train_loss"] for r in _log(tmp_path / "whole")]


def test_plateau_schedule_divides_lr_after_lr_patience_epochs(tmp_path, monkeypatch):
    # best at epoch 2, then 3 epochs without improvement: with lr_patience 2 the rate drops after epoch 5
    _script(monkeypatch, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    cfg = tiny_config(epochs=6, adam_schedule="plateau", lr_patience=2, lr=1e-3, dataset=SMALL)
    train_and_evaluate(cfg, tmp_path / "run", progress=False)
    lrs = [float(r["lr"]) for r in _log(tmp_path / "run")]
    assert lrs[:5] == pytest.approx([1e-3] * 5) and lrs[5] == pytest.approx(1e-4)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["lr_patience"] == 2 and saved["adam_schedule"] == "plateau"


@pytest.mark.parametrize(("over", "match"), [
    ({"patience": 0}, "patience must be >= 1"),
    ({"lr_patience": 3}, "lr_patience=3 applies only to scheme adam with adam_schedule plateau"),
    ({"patience": "10"}, "patience must be int"),
])
def test_bad_patience_settings_are_refused(tmp_path, over, match):
    with pytest.raises(ValueError, match=match):
        train_and_evaluate(tiny_config(dataset=SMALL, **over), tmp_path / "run", progress=False)


def test_run_folder_written_before_a_key_existed_is_still_the_same_run(tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(epochs=1, dataset=SMALL)
    train_and_evaluate(cfg, run, progress=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["patience"], saved["lr_patience"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert train_and_evaluate(cfg, run, progress=False)["status"] == "finished"
    with pytest.raises(ValueError, match=r"different configuration \(.*lr_patience: None -> 4"):
        train_and_evaluate(tiny_config(epochs=1, dataset=SMALL, adam_schedule="plateau", lr_patience=4), run,
                           progress=False)


def test_stop_after_ends_a_longer_schedule_and_resumes_an_interrupted_run(tmp_path, monkeypatch):
    losses = [1.0 - 0.1 * e for e in range(10)]
    cfg = tiny_config(epochs=10, scheme="sgd", lr=0.01, dataset=SMALL)
    _script(monkeypatch, losses, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, tmp_path / "run", progress=False)  # interrupted, no stop_after
    _script(monkeypatch, losses)
    s = train_and_evaluate({**cfg, "stop_after": 4}, tmp_path / "run", progress=False)
    assert (s["stop_epoch"], s["epochs"], s["stopped_early"]) == (4, 10, True)
    lrs = [float(r["lr"]) for r in _log(tmp_path / "run")]
    assert lrs == pytest.approx([0.01 * (1 - e / 10) ** 0.9 for e in range(4)])  # the 10-epoch poly schedule
    assert s["stop_reason"] == "stop_after"


def test_a_larger_stop_after_continues_a_finished_run_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from unifocal.study.runners import is_finished
    from unifocal.training.loop import continues_finished_run

    losses = [1.0 - 0.05 * e for e in range(10)]
    cfg = tiny_config(epochs=10, scheme="sgd", lr=0.01, dataset=SMALL)
    _script(monkeypatch, losses)
    whole = train_and_evaluate({**cfg, "stop_after": 7}, tmp_path / "whole", progress=False)
    _script(monkeypatch, losses)
    first = train_and_evaluate({**cfg, "stop_after": 3}, tmp_path / "cut", progress=False)
    assert (first["stop_epoch"], first["stop_reason"]) == (3, "stop_after")
    run = tmp_path / "cut"
    assert not continues_finished_run(run, {**cfg, "stop_after": 3})  # the same limit: nothing to do
    assert is_finished(run, {**cfg, "stop_after": 3}) and not is_finished(run, {**cfg, "stop_after": 7})
    seen = _script(monkeypatch, losses)
    again = train_and_evaluate({**cfg, "stop_after": 7}, run, progress=False)
    assert seen == [4, 5, 6, 7]  # continued from epoch 3's last.pt
    assert (again["stop_epoch"], again["best_epoch"]) == (whole["stop_epoch"], whole["best_epoch"]) == (7, 7)
    assert [r["train_loss"] for r in _log(run)] == [r["train_loss"] for r in _log(tmp_path / "whole")]
    assert json.loads((run / "summary.json").read_text())["stop_epoch"] == 7
    # a run that ended by its patience, or whose checkpoint is gone, is not continued
    (run / "checkpoints" / "last.pt").unlink()
    assert not continues_finished_run(run, {**cfg, "stop_after": 9})
    _script(monkeypatch, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    p = train_and_evaluate({**cfg, "patience": 2, "stop_after": 4}, tmp_path / "pat", progress=False)
    assert (p["stop_epoch"], p["stop_reason"]) == (4, "patience")
    assert not continues_finished_run(tmp_path / "pat", {**cfg, "patience": 2, "stop_after": 4})


def test_a_larger_patience_continues_a_run_that_patience_ended(tmp_path, monkeypatch):
    from unifocal.study.runners import is_finished
    from unifocal.training.loop import continues_finished_run

    losses = [1.0, 0.5, 0.6, 0.7, 0.45, 0.8, 0.9, 0.95, 0.97, 0.99]  # best 2, then 5; 3 epochs without at 4
    cfg = tiny_config(epochs=10, scheme="sgd", lr=0.01, dataset=SMALL)
    _script(monkeypatch, losses)
    whole = train_and_evaluate({**cfg, "patience": 4}, tmp_path / "whole", progress=False)
    assert (whole["best_epoch"], whole["stop_epoch"], whole["stop_reason"]) == (5, 9, "patience")
    _script(monkeypatch, losses)
    run = tmp_path / "cut"
    first = train_and_evaluate({**cfg, "patience": 2}, run, progress=False)
    assert (first["best_epoch"], first["stop_epoch"], first["stop_reason"]) == (2, 4, "patience")
    # patience decides where a run stops, not its course: no configuration guard, and the same or a smaller
    # patience has nothing to continue
    for same in (2, 1):
        assert not continues_finished_run(run, {**cfg, "patience": same})
        assert train_and_evaluate({**cfg, "patience": same}, run, progress=False)["stop_epoch"] == 4
    assert is_finished(run, {**cfg, "patience": 2}) and not is_finished(run, {**cfg, "patience": 4})
    seen = _script(monkeypatch, losses)
    again = train_and_evaluate({**cfg, "patience": 4}, run, progress=False)
    assert seen == [5, 6, 7, 8, 9]  # continued from epoch 4's last.pt; 4 epochs without improving after 5
    assert {k: again[k] for k in ("best_epoch", "stop_epoch", "stop_reason")} == \
        {k: whole[k] for k in ("best_epoch", "stop_epoch", "stop_reason")}
    assert [r["train_loss"] for r in _log(run)] == [r["train_loss"] for r in _log(tmp_path / "whole")]
    assert yaml.safe_load((run / "config.yaml").read_text())["patience"] == 4  # the limits it ended under
    # without patience it runs to the end of its schedule
    seen = _script(monkeypatch, losses)
    end = train_and_evaluate({**cfg, "patience": None}, run, progress=False)
    assert seen == [10] and (end["stop_epoch"], end["stop_reason"]) == (10, "epochs")


def test_summary_without_stop_reason_is_read_from_its_config(tmp_path, monkeypatch):
    from unifocal.training.loop import continues_finished_run

    cfg = tiny_config(epochs=10, scheme="sgd", lr=0.01, dataset=SMALL)
    _script(monkeypatch, [1.0 - 0.05 * e for e in range(10)])
    run = tmp_path / "run"
    train_and_evaluate({**cfg, "stop_after": 2}, run, progress=False)
    s = json.loads((run / "summary.json").read_text())
    del s["stop_reason"]  # as written before the key existed
    (run / "summary.json").write_text(json.dumps(s))
    assert continues_finished_run(run, cfg) and not continues_finished_run(run, {**cfg, "stop_after": 2})


def test_a_continuation_that_cannot_load_its_checkpoint_keeps_the_finished_run(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=10, scheme="sgd", lr=0.01, dataset=SMALL)
    _script(monkeypatch, [1.0 - 0.05 * e for e in range(10)])
    run = tmp_path / "run"
    first = train_and_evaluate({**cfg, "stop_after": 2}, run, progress=False)
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"last\.pt"):
        train_and_evaluate({**cfg, "stop_after": 5}, run, progress=False)
    kept = json.loads((run / "summary.json").read_text())
    assert kept["status"] == "finished" and kept["stop_epoch"] == first["stop_epoch"] == 2


def test_larger_epochs_continue_a_plateau_run_that_its_maximum_ended(tmp_path, monkeypatch):
    from unifocal.training.loop import continues_finished_run

    losses = [1.0 - 0.05 * e for e in range(10)]  # still improving when the maximum ends the run
    cfg = tiny_config(scheme="adam", adam_schedule="plateau", lr_patience=2, dataset=SMALL)
    _script(monkeypatch, losses)
    whole = train_and_evaluate({**cfg, "epochs": 8}, tmp_path / "whole", progress=False)
    _script(monkeypatch, losses)
    run = tmp_path / "cut"
    first = train_and_evaluate({**cfg, "epochs": 5}, run, progress=False)
    assert (first["stop_epoch"], first["stop_reason"]) == (5, "epochs")
    # the plateau schedule does not read epochs: it is only the maximum, outside the configuration guard
    assert continues_finished_run(run, {**cfg, "epochs": 8})
    assert not continues_finished_run(run, {**cfg, "epochs": 5})
    seen = _script(monkeypatch, losses)
    again = train_and_evaluate({**cfg, "epochs": 8}, run, progress=False)
    assert seen == [6, 7, 8]
    assert (again["stop_epoch"], again["epochs"], again["best_epoch"]) == (8, 8, whole["best_epoch"])
    assert [r["train_loss"] for r in _log(run)] == [r["train_loss"] for r in _log(tmp_path / "whole")]
    assert [r["lr"] for r in _log(run)] == [r["lr"] for r in _log(tmp_path / "whole")]
    # a smaller maximum later neither continues nor is refused: the run keeps its 8 epochs
    assert train_and_evaluate({**cfg, "epochs": 5}, run, progress=False)["stop_epoch"] == 8


def test_epochs_stay_guarded_where_the_schedule_reads_them(tmp_path, monkeypatch):
    from unifocal.training.config import schedule_uses_epochs
    from unifocal.training.loop import continues_finished_run

    assert not schedule_uses_epochs({"scheme": "adam", "adam_schedule": "plateau"})
    assert schedule_uses_epochs({"scheme": "adam", "adam_schedule": "cosine"})
    assert schedule_uses_epochs({"scheme": "sgd", "adam_schedule": "plateau"})
    cfg = tiny_config(scheme="sgd", lr=0.01, dataset=SMALL)
    _script(monkeypatch, [1.0 - 0.05 * e for e in range(10)])
    run = tmp_path / "run"
    train_and_evaluate({**cfg, "epochs": 4}, run, progress=False)
    assert not continues_finished_run(run, {**cfg, "epochs": 8})  # poly decay over 8 epochs is another course
    with pytest.raises(ValueError, match=r"different configuration \(epochs: 4 -> 8"):
        train_and_evaluate({**cfg, "epochs": 8}, run, progress=False)
