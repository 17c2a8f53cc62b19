"""Issue 25 (reliability, round two): paths resolved once, run folders written by ``train`` only, values
checked in the precision they are used in, only the project's own files deleted, a resumed run keeps its
own configuration; the tracebacks of the issue are one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import stat

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from unifocal.cli import app, os_error_message
from unifocal.data import make_preprocessing
from unifocal.training import predict_files, train_and_evaluate
from unifocal.training.checkpoint import load_checkpoint
from unifocal.training.config import build_config, load_config_file, resolve_config
from unifocal.training.lock import check_output_dir, run_lock
from unifocal.training.predict import evaluate_run

from .conftest import tiny_config
from .test_inference import _fake_run


def _pairs(root, n: int = 8, size: int = 32, seed: int = 0):
    """A tiny ``pairs`` dataset: noisy images with a bright square, masks 0/255."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        m = np.zeros((size, size), np.uint8)
        a, b = rng.integers(4, size // 2, 2)
        m[a:a + 10, b:b + 10] = 255
        img = (rng.normal(60, 20, (size, size)) + (m > 0) * 120).clip(0, 255).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "images" / f"c{i}.png")
        Image.fromarray(m).save(root / "masks" / f"c{i}.png")
    return root


def _pairs_config(path, **over):
    over = {"epochs": 1, "n_folds": 2, **over}
    cfg = tiny_config(dataset={"path": str(path), "layout": "pairs", "options": {"resize": [32, 32]}}, **over)
    cfg["model"]["base_filters"] = 4
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a pairs dataset given by a *relative* path from the folder ``a``."""
    base = tmp_path_factory.mktemp("r2")
    _pairs(base / "a" / "data" / "ds")
    cwd = os.getcwd()
    os.chdir(base / "a")
    try:
        os.environ["UNIFOCAL_CACHE"] = str(base / "cache")
        train_and_evaluate(_pairs_config("data/ds"), base / "run", progress=False)
    finally:
        os.chdir(cwd)
    return base


def _copy_run(trained, tmp_path, name="run"):
    dst = tmp_path / name
    shutil.copytree(trained / "run", dst)
    return dst


# -- 1. relative dataset paths are resolved once and stored absolute --------------------------------
def test_relative_dataset_path_is_stored_absolute_and_evaluate_does_not_follow_the_cwd(trained, tmp_path,
                                                                                       monkeypatch):
    want = str(trained / "a" / "data" / "ds")
    saved = yaml.safe_load((trained / "run" / "config.yaml").read_text())
    assert saved["dataset"]["path"] == want
    assert load_checkpoint(trained / "run" / "checkpoints" / "best.pt")["config"]["dataset"]["path"] == want
    run = _copy_run(trained, tmp_path)
    ref = evaluate_run(run, tmp_path / "e_ref", device="cpu", progress=False)
    # another directory holding another dataset under the same relative name
    _pairs(tmp_path / "b" / "data" / "ds", n=8, seed=7)
    monkeypatch.chdir(tmp_path / "b")
    got = evaluate_run(run, tmp_path / "e_other", device="cpu", progress=False)
    assert got["metrics"] == ref["metrics"] and got["cases"] == ref["cases"] > 0
    # a resumed train from there with the same relative flag names another dataset: refused
    with pytest.raises(ValueError, match=r"different configuration \(dataset\.path"):
        train_and_evaluate(_pairs_config("data/ds", epochs=2), run, progress=False)


def test_paths_in_a_configuration_file_are_relative_to_that_file(tmp_path, monkeypatch):
    (tmp_path / "proj" / "ds").mkdir(parents=True)
    f = tmp_path / "proj" / "cfg.yaml"
    f.write_text("dataset: {path: ds, layout: pairs}\nsplits_dir: splits\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config_file(f)
    assert cfg["dataset"]["path"] == str(tmp_path / "proj" / "ds")
    assert cfg["splits_dir"] == str(tmp_path / "proj" / "splits")
    assert resolve_config(build_config(f)).dataset["path"] == str(tmp_path / "proj" / "ds")


def test_run_recorded_with_a_relative_path_is_refused_not_followed(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    ck = load_checkpoint(run / "checkpoints" / "best.pt")
    ck["config"]["dataset"]["path"] = "data/ds"
    torch.save(ck, run / "checkpoints" / "best.pt")
    with pytest.raises(ValueError, match=r"relative dataset path 'data/ds'.*give the dataset folder with --dataset"):
        evaluate_run(run, tmp_path / "e", device="cpu", progress=False)


# -- 2. nothing but train writes into a run folder ---------------------------------------------------
def test_evaluate_into_a_run_folder_is_refused_and_the_run_unchanged(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained / "a")  # where the run was trained from (independent of defect 1)
    run = _copy_run(trained, tmp_path)
    (run / "summary.json").unlink()  # a run interrupted before its end: must stay resumable
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for out in (run, run / "eval"):
        with pytest.raises(ValueError, match=r"a run folder: only `unifocal train` writes into a run folder"):
            evaluate_run(run, out, device="cpu", progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert not (run / "summary.json").exists() and not (run / "eval").exists()
    r = CliRunner().invoke(app, ["evaluate", str(run), "-o", str(run), "--device", "cpu", "-q"])
    assert r.exit_code == 2 and r.output.startswith("Error: evaluation folder")


def test_predict_into_a_locked_run_folder_is_refused(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(), None, num_classes=2)
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img)
    busy = tmp_path / "busy"
    with run_lock(busy):
        with pytest.raises(ValueError, match=rf"is a run folder, in use by process {os.getpid()}"):
            predict_files(run, [img], busy, device="cpu")
        with pytest.raises(ValueError, match=r"lies inside .*busy, which is a run folder"):
            predict_files(run, [img], busy / "preds", device="cpu")
    assert not (busy / "x.png").exists() and not (busy / "preds").exists()


# -- 3. values checked in the precision they are used in ---------------------------------------------
def test_nifti_scaling_beyond_float32_is_refused_naming_the_file(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(), None, num_classes=2)
    img = nib.Nifti1Image(np.arange(1, 17 * 17 + 1, dtype=np.int16).reshape(17, 17), np.eye(4))
    img.header.set_slope_inter(3e38, 0)
    src = tmp_path / "scaled.nii.gz"
    nib.save(img, str(src))
    with pytest.raises(ValueError, match=r"scaled\.nii\.gz: 288 value\(s\) beyond the float32 range.*scl_slope"):
        predict_files(run, [src], tmp_path / "pred", device="cpu")
    assert not (tmp_path / "pred" / "scaled.nii.gz").exists()


# -- 6. only the project's own temporary files are deleted -------------------------------------------
def test_cleaning_keeps_the_users_temporary_files(tmp_path):
    folder = tmp_path / "folder"
    (folder / "notes").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    draft = folder / "notes" / ".draft.tmp"
    mine = folder / ".mine.tmp"
    lookalike = folder / "notes" / ".config.yaml.abcd1234.tmp"  # a run's name, not in a run's place
    for p in (draft, mine, lookalike):
        p.write_text("user data")
    orphans = [folder / "checkpoints" / ".last.pt.k3j2x_9a.tmp", folder / ".summary.json.zz81kq0p.tmp"]
    for p in orphans:
        p.write_bytes(b"torn")
    with run_lock(folder):
        pass
    assert draft.read_text() == mine.read_text() == lookalike.read_text() == "user data"
    assert not any(p.exists() for p in orphans)


# -- 7. a resumed run keeps its own configuration ----------------------------------------------------
def test_edited_config_yaml_is_refused_on_resume(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained / "a")  # where the run was trained from (independent of defect 1)
    run = _copy_run(trained, tmp_path)
    (run / "summary.json").unlink()  # interrupted after epoch 1 of 2
    cfg_file = run / "config.yaml"
    saved = yaml.safe_load(cfg_file.read_text())
    saved["loss"] = {"name": "dice", "params": {}}
    cfg_file.write_text(yaml.safe_dump(saved, sort_keys=False))
    dice = _pairs_config(saved["dataset"]["path"], loss={"name": "dice", "params": {}}, epochs=1)
    dice["dataset"] = saved["dataset"]
    with pytest.raises(ValueError, match=r"config\.yaml was changed after training started \(loss\.name: "
                                         r"'unified_focal' -> 'dice'"):
        train_and_evaluate(dice, run, progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (run / "summary.json").exists()


# -- tracebacks become one line ----------------------------------------------------------------------
def test_python_tagged_config_yaml_in_a_run_folder_is_one_line(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    (run / "config.yaml").write_text("seed: !!python/object/apply:os.system ['touch pwned']\n")
    r = CliRunner().invoke(app, ["train", "-o", str(run), "--dataset", "phantom2d", "-q"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("Error: the run's configuration") and "not plain YAML data" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(app, ["study", "report", str(tmp_path), "--no-figures"])
    assert r.exit_code == 2 and "not plain YAML data" in r.output, r.output
    assert not (tmp_path / "pwned").exists()


def test_deeply_nested_yaml_is_one_line(tmp_path):
    f = tmp_path / "deep.yaml"
    f.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    r = CliRunner().invoke(app, ["train", "-o", str(tmp_path / "r"), "-c", str(f)])
    assert r.exit_code == 2 and r.output.startswith("Error: configuration file") and "nested too deeply" in r.output
    r = CliRunner().invoke(app, ["train", "-o", str(tmp_path / "r"), "--loss-param", "delta=" + "[" * 5000])
    assert r.exit_code == 2 and "nested too deeply" in r.output


# -- messages and small things -----------------------------------------------------------------------
@pytest.mark.parametrize("key,value", [("seed", -1), ("split_seed", 2**70)])
def test_seed_errors_name_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^{key} must be an integer in \[0, 2\*\*63\)"):
        resolve_config(tiny_config(**{key: value}))


def test_pretrained_network_and_huge_ignore_index_are_refused_before_training():
    with pytest.raises(ValueError, match=r"model\.pretrained=True: pretrained weights would be downloaded"):
        resolve_config(tiny_config(model={"name": "SwinUNETR", "pretrained": True}))
    with pytest.raises(ValueError, match=r"loss parameter ignore_index=\d+ is outside the 64-bit integer range"):
        resolve_config(tiny_config(loss={"name": "unified_focal", "params": {"ignore_index": 2**70}}))


def test_output_under_a_file_suggests_a_path_outside_it(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"e\.g\. .*/file_out/sub$"):
        check_output_dir(tmp_path / "file" / "sub")


def test_read_only_output_names_the_file_not_a_temporary_one(tmp_path, monkeypatch):
    import errno

    import unifocal._atomic as atomic

    ro = tmp_path / "ro"
    ro.mkdir()

    def denied(prefix, suffix, dir):  # what a folder without write permission gives (also for root on a RO fs)
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}x1y2z3.tmp")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    with pytest.raises(OSError) as e:
        atomic.atomic_write_text(ro / "summary.json", "{}")
    msg = os_error_message(e.value)
    assert f"{ro / 'summary.json'}: Permission denied" in msg and ".tmp" not in msg and "resume" not in msg


def test_files_follow_the_umask(tmp_path):
    from unifocal._atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_predict_reads_every_image_format_and_refuses_a_stem_twice(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(), None, num_classes=2)
    src = tmp_path / "in"
    src.mkdir()
    arr = np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8)
    Image.fromarray(arr).save(src / "a.tif")
    Image.fromarray(arr).save(src / "b.jpg")
    nib.save(nib.Nifti1Image(arr.astype(np.float32), np.eye(4)), str(tmp_path / "c.nii.gz"))
    shutil.move(tmp_path / "c.nii.gz", src / "C.NII.GZ")
    (src / "readme.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"1 file\(s\) that are not images .* skipped: readme\.txt"):
        out = predict_files(run, [src], tmp_path / "p", device="cpu")
    assert sorted(p.name for p in out) == ["C.nii.gz", "a.png", "b.png"]
    Image.fromarray(arr).save(src / "a.png")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"would both be written to .*a\.png"):
        predict_files(run, [src], tmp_path / "p2", device="cpu")


def test_summary_of_an_evaluation_is_marked(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    s = evaluate_run(run, tmp_path / "ev", device="cpu", progress=False)
    assert s["kind"] == "evaluation"
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["kind"] == "evaluation"


def test_train_with_only_the_run_folder_resumes_it_with_its_own_configuration(trained, tmp_path):
    run = _copy_run(trained, tmp_path)
    r = CliRunner().invoke(app, ["train", "-o", str(run), "-q"])
    assert r.exit_code == 0, r.output
    assert "best epoch: 1 of 1" in r.output


def test_a_one_pixel_image_is_named(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(), None, num_classes=2)
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "dot.png")
    with pytest.raises(ValueError, match=r"dot\.png: image of 1x1 pixels"):
        predict_files(run, [tmp_path / "dot.png"], tmp_path / "p", device="cpu")


def test_all_background_masks_warn(tmp_path):
    from unifocal.training.loop import AllBackgroundWarning

    root = tmp_path / "ds"
    for i in range(4):
        for sub, arr in (("images", np.random.default_rng(i).integers(0, 255, (16, 16), dtype=np.uint8)),
                         ("masks", np.zeros((16, 16), np.uint8))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / sub / f"c{i}.png")
    cfg = _pairs_config(root)
    cfg["dataset"]["options"]["resize"] = [16, 16]
    with pytest.warns(AllBackgroundWarning, match="no foreground voxel in any training batch of epoch 1"):
        train_and_evaluate(cfg, tmp_path / "run", progress=False)
