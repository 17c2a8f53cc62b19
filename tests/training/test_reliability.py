"""Issue 12: no code from a checkpoint, no overwritten input, no silent garbage, one process per run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from unifocal.data import make_preprocessing
from unifocal.training import NonFiniteLossError, load_model, predict_files, train_and_evaluate
from unifocal.training.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from unifocal.training.config import resolve_config
from unifocal.training.lock import LOCK_NAME, read_lock_owner, run_lock
from unifocal.training.predict import DEFAULT_TILE_2D, evaluate_run, tile_size

from .conftest import tiny_config
from .test_inference import _fake_run

SMALL = {"name": "phantom2d", "options": {"n_cases": 12, "size": 32}}


class _RunsCode:
    """Unpickling this calls ``os.system`` (what a crafted checkpoint does)."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


# -- 1. checkpoints: weights only ------------------------------------------------------------------
def test_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}, "spec": _RunsCode(f"touch {marker}")}, run / "checkpoints" / "best.pt")
    with pytest.raises(ValueError, match=r"best\.pt was refused: it holds objects other than tensors"):
        load_model(run, device="cpu")
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    with pytest.raises(ValueError, match="was refused"):
        predict_files(run, [img], tmp_path / "pred", device="cpu")
    with pytest.raises(ValueError, match="was refused"):
        evaluate_run(run, tmp_path / "eval", device="cpu")
    # a resumed train loads last.pt the same way
    torch.save({"model": _RunsCode(f"touch {marker}")}, run / "checkpoints" / "last.pt")
    with pytest.raises(ValueError, match=r"last\.pt was refused"):
        train_and_evaluate(tiny_config(epochs=1, dataset=SMALL), run, progress=False)
    assert not marker.exists()


def test_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(p, {"model": {"w": torch.ones(1000)}, "spec": {}})
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"c\.pt is not a readable torch checkpoint"):
        load_checkpoint(p)
    p.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"c\.pt is not a torch checkpoint \(no zip archive"):
        load_checkpoint(p)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match=r"no zip archive: empty file"):
        load_checkpoint(p)
    torch.save([1, 2], p)
    with pytest.raises(ValueError, match="holds a list, not a unifocal checkpoint"):
        load_checkpoint(p)
    with pytest.raises(ValueError, match="cannot store a object"):
        save_checkpoint(tmp_path / "d.pt", {"x": object()})
    assert not (tmp_path / "d.pt").exists()


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    import random

    random.seed(1)
    np.random.seed(2)  # noqa: NPY002
    torch.manual_seed(3)
    random.gauss(0, 1), np.random.normal()  # noqa: NPY002 (cached Gaussian values are part of the state)
    save_checkpoint(tmp_path / "r.pt", {"rng": get_rng_state()})
    expect = (random.random(), random.gauss(0, 1), np.random.normal(), np.random.random(4), torch.rand(3))  # noqa: NPY002
    set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    got = (random.random(), random.gauss(0, 1), np.random.normal(), np.random.random(4), torch.rand(3))  # noqa: NPY002
    assert got[:3] == expect[:3]
    np.testing.assert_array_equal(got[3], expect[3])
    assert torch.equal(got[4], expect[4])


# -- 2. predict never overwrites an input --------------------------------------------------------
def _pngs(folder, names, size=(20, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(folder / n)
    return {n: (folder / n).read_bytes() for n in names}


def test_predict_into_the_input_folder_is_refused_and_inputs_are_kept(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(resize=[16, 16]), None, num_classes=2)
    pin = tmp_path / "pin"
    before = _pngs(pin, ["a.png", "b.png"])
    with pytest.raises(ValueError, match=r"would overwrite the input .*pin/a\.png"):
        predict_files(run, [pin], pin, device="cpu")
    assert {n: (pin / n).read_bytes() for n in before} == before and sorted(os.listdir(pin)) == ["a.png", "b.png"]
    # NIfTI input into its own folder: the prediction would be <stem>.nii.gz, the input itself
    run3, _ = _fake_run(tmp_path / "r3", 3, make_preprocessing(), [16, 16, 16])
    src = tmp_path / "vol" / "v.nii.gz"
    src.parent.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), str(src))
    with pytest.raises(ValueError, match="would overwrite the input"):
        predict_files(run3, [src], src.parent, device="cpu")


def test_inputs_with_the_same_name_do_not_collide(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(resize=[16, 16]), None, num_classes=2)
    _pngs(tmp_path / "a", ["x.png"])
    _pngs(tmp_path / "b", ["x.png"])
    with pytest.raises(ValueError, match=r"a/x\.png and .*b/x\.png would both be written to .*out/x\.png"):
        predict_files(run, [tmp_path / "a", tmp_path / "b"], tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    # the same file given twice (itself and through its folder) is one input, one prediction
    out = predict_files(run, [tmp_path / "a", tmp_path / "a" / "x.png"], tmp_path / "out", device="cpu")
    assert [p.name for p in out] == ["x.png"]


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(resize=[16, 16]), None, num_classes=2)
    _pngs(tmp_path / "in", ["x.png"])
    f = tmp_path / "taken.txt"
    f.write_text("keep")
    with pytest.raises(ValueError, match=r"taken\.txt is an existing file, not a folder"):
        predict_files(run, [tmp_path / "in"], f, device="cpu")
    with pytest.raises(ValueError, match=r"taken\.txt is an existing file"):
        evaluate_run(run, f, device="cpu")
    with pytest.raises(ValueError, match=r"taken\.txt is an existing file"):
        train_and_evaluate(tiny_config(epochs=1, dataset=SMALL), f, progress=False)
    assert f.read_text() == "keep"


def test_non_finite_input_to_predict_is_named(tmp_path):
    run, _ = _fake_run(tmp_path, 3, make_preprocessing(), [16, 16, 16])
    vol = np.zeros((10, 10, 10), np.float32)
    vol[1, 2, 3] = np.nan
    src = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(src))
    with pytest.raises(ValueError, match=r"nan\.nii\.gz: 1 non-finite value.*\(1, 2, 3\)"):
        predict_files(run, [src], tmp_path / "pred", device="cpu")
    assert not list((tmp_path / "pred").glob("*"))


# -- 7. large 2D images are tiled ----------------------------------------------------------------
def test_large_2d_image_is_tiled_with_monai(tmp_path, monkeypatch):
    import monai.inferers

    calls = []
    real = monai.inferers.sliding_window_inference

    def spy(inputs, roi_size, *a, **k):
        calls.append((tuple(inputs.shape[2:]), tuple(roi_size)))
        return real(inputs, roi_size, *a, **k)

    monkeypatch.setattr(monai.inferers, "sliding_window_inference", spy)
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(), None, num_classes=2)  # trained on whole images
    spec = load_model(run, device="cpu")[1]
    assert tile_size(spec) == [DEFAULT_TILE_2D, DEFAULT_TILE_2D]
    _pngs(tmp_path / "in", ["big.png"], size=(DEFAULT_TILE_2D + 88, 300))
    _pngs(tmp_path / "in2", ["small.png"], size=(100, 90))
    out = predict_files(run, [tmp_path / "in", tmp_path / "in2"], tmp_path / "pred", device="cpu")
    assert calls == [((600, 300), (512, 300))]  # the large image only, windows no larger than the image
    assert np.array(Image.open(out[0])).shape == (600, 300)
    assert np.array(Image.open(out[1])).shape == (100, 90)
    # a run trained on a fixed resize tiles with that size
    run2, _ = _fake_run(tmp_path / "r2", 2, make_preprocessing(resize=[32, 32]), None, num_classes=2)
    assert tile_size(load_model(run2, device="cpu")[1]) == [32, 32]


# -- 4. a diverging run stops with the documented error -------------------------------------------
def test_nan_network_output_names_epoch_and_batch(tmp_path, monkeypatch):
    import unifocal.training.loop as loop

    real = loop.build_model
    n = {"calls": 0}

    class Diverging(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.divisor = inner.divisor

        def forward(self, x):
            out = self.inner(x)
            if self.training:
                n["calls"] += 1
                if n["calls"] == 3:
                    return out * float("inf") * 0  # NaN everywhere, as after a diverging step
            return out

    monkeypatch.setattr(loop, "build_model", lambda *a, **k: Diverging(real(*a, **k)))
    with pytest.raises(NonFiniteLossError, match=r"non-finite network output \(NaN/Inf\) at epoch 1, batch 3") as e:
        train_and_evaluate(tiny_config(epochs=1, dataset=SMALL), tmp_path / "run", progress=False)
    assert isinstance(e.value, ValueError)  # reported by the CLI as an error (status 2), not a traceback


# -- 5. one process per run folder ---------------------------------------------------------------
def test_second_process_on_a_run_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time; from unifocal.training.lock import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"run folder .*run is in use by process {holder.pid} "):
            train_and_evaluate(tiny_config(epochs=1, dataset=SMALL), run, progress=False)
        assert sorted(os.listdir(run)) == [LOCK_NAME]  # nothing was written by the refused process
        holder.send_signal(signal.SIGKILL)  # its lock file stays behind, stale
        holder.wait()
        assert read_lock_owner(run / LOCK_NAME)["pid"] == holder.pid
        with run_lock(run) as lock:  # a dead owner's lock is taken over
            assert read_lock_owner(lock)["pid"] == os.getpid()
        assert not (run / LOCK_NAME).exists()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_lock_cleans_orphaned_temporary_files(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    orphan = run / "checkpoints" / ".last.pt.k3j2x.tmp"
    orphan.write_bytes(b"torn")
    keep = run / "checkpoints" / "last.pt"
    keep.write_bytes(b"x")
    with run_lock(run):
        pass
    assert not orphan.exists() and keep.exists()


def test_configuration_guard_applies_from_the_first_write(tmp_path):
    """A folder whose config.yaml was written (run killed before its first checkpoint) keeps its configuration."""
    run = tmp_path / "run"
    run.mkdir()
    other = resolve_config(tiny_config(epochs=1, dataset=SMALL, seed=5)).to_dict()
    (run / "config.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    with pytest.raises(ValueError, match=r"different configuration \(seed: 5 -> 0"):
        train_and_evaluate(tiny_config(epochs=1, dataset=SMALL), run, progress=False)
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 5
    assert not (run / "checkpoints").exists()


# -- 6. full disk: a message, the last checkpoint kept, the rerun resumes ---------------------------
def test_full_disk_is_a_clear_error_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    import unifocal._atomic as atomic
    from unifocal.cli import main

    run = tmp_path / "run"
    real_fsync = os.fsync
    seen = {"last": 0}

    def fsync(fd):
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            seen["last"] += 1
            if seen["last"] == 2:  # the checkpoint of epoch 2 does not fit on the disk
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    argv = ["unifocal", "train", "-o", str(run), "--dataset", "phantom2d", "--dataset-option", "n_cases=12",
            "--dataset-option", "size=32", "--model-param", "depth=3", "--model-param", "norm=instance",
            "--base-filters", "4", "--scheme", "adam", "--epochs", "2", "--batch-size", "4", "--device", "cpu", "-q"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "checkpoints/last.pt" in err and "Traceback" not in err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1  # the previous checkpoint survived
    assert not list(run.rglob(".*.tmp"))
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None)
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2


def test_timestamps_do_not_matter_for_the_lock(tmp_path):
    """A lock file written by hand (no flock held) is stale whatever it says."""
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": time.ctime()}))
    with run_lock(run) as lock:
        assert read_lock_owner(lock)["pid"] == os.getpid()
