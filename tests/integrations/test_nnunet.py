"""nnU-Net v2 trainers: found by nnU-Net's own trainer search, loss built inside nnU-Net's own
deep-supervision wrapper with its ignore label, and (slow) a tiny real nnU-Net training.

A synthetic nnU-Net raw dataset (3D NIfTI, labels background / blob / ignore) is planned and
preprocessed once with nnU-Net's own command; the trainer is then built from those plans. The dataset
script, the tiny trainer and the commands are those of docs/integrations.md ("A short real run"): the
script and the trainer are read from the page, and the page's commands are checked against the
test's (without nnU-Net).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from tests.integrations.conftest import require
from unifocal.integrations.nnunet import TRAINERS, trainer_dir
from unifocal.losses import get_loss

DATASET = "Dataset987_UnifocalBlobs"
DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
PLAN_ARGS = ["-d", DATASET.split("_")[0][7:], "-c", "2d", "-np", "1"]
TRAIN_ARGS = [DATASET.split("_")[0][7:], "2d", "0", "-tr", "nnUNetTrainerUnifiedFocalTiny", "-device", "cpu"]


def _doc_block(name: str) -> str:
    """The code block of docs/integrations.md under ``<!-- nnunet-example: NAME -->``."""
    m = re.search(rf"<!-- nnunet-example: {name} -->\n```\w+\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert m, f"docs/integrations.md lost its nnU-Net example {name!r}"
    return m.group(1)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _env(root: Path, ext: list[Path], n_proc_da: int = 0) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
        "nnUNet_results": str(root / "results"), "nnUNet_extTrainer": os.pathsep.join(map(str, ext)),
        "nnUNet_n_proc_DA": str(n_proc_da), "nnUNet_def_n_proc": "1", "nnUNet_compile": "false", "OMP_NUM_THREADS": "2",
    })
    return env


def _write_dataset(raw: Path) -> None:
    """The page's ``write_dataset.py``, run with ``nnUNet_raw=raw``."""
    require("SimpleITK")
    with mock.patch.dict(os.environ, {"nnUNet_raw": str(raw)}):
        exec(compile(_doc_block("write-dataset"), f"{DOC.name}:write-dataset", "exec"), {"__name__": "write_dataset"})
    assert (raw / DATASET / "dataset.json").is_file()


@pytest.fixture(scope="module")
def nnunet_root(tmp_path_factory) -> Path:
    """A planned and preprocessed synthetic dataset (configuration 2d), by nnU-Net's own command."""
    require("nnunetv2")
    root = tmp_path_factory.mktemp("nnunet")
    _write_dataset(root / "raw")
    # nnUNet_n_proc_DA=0 would stop planning: torch.set_num_threads(0) (docs/integrations.md)
    r = subprocess.run([_bin("nnUNetv2_plan_and_preprocess"), *PLAN_ARGS],
                       env=_env(root, [trainer_dir()], n_proc_da=1), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root


def test_trainers_found_by_nnunet_external_trainer_search(monkeypatch):
    require("nnunetv2")
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    with pytest.raises(RuntimeError, match="Could not find"):
        recursive_find_trainer_class_by_name("nnUNetTrainerUnifiedFocal")
    out = subprocess.run([sys.executable, "-m", "unifocal.integrations.nnunet"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert Path(out) == trainer_dir()
    monkeypatch.setenv("nnUNet_extTrainer", out)
    for name in TRAINERS:
        cls = recursive_find_trainer_class_by_name(name)
        assert cls.__name__ == name and issubclass(cls, nnUNetTrainer)


def _trainer(root: Path, monkeypatch, name: str = "nnUNetTrainerUnifiedFocal"):
    for k, v in _env(root, [trainer_dir()]).items():
        monkeypatch.setenv(k, v)
    from nnunetv2.run.run_training import get_trainer_from_args

    # nnU-Net's own construction path: trainer search by name, plans and dataset.json from disk
    return get_trainer_from_args(DATASET, "2d", 0, name, device=torch.device("cpu"))


def _nnunet_ds_weights(n: int) -> np.ndarray:
    """nnU-Net's deep-supervision weights, written out independently: 1/2^i, the last 0, normalised."""
    w = np.array([0.5**i for i in range(n)])
    w[-1] = 0.0
    return w / w.sum()


def test_trainer_loss_on_nnunet_deep_supervision_outputs(nnunet_root, monkeypatch):
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    trainer = _trainer(nnunet_root, monkeypatch)
    trainer.initialize()
    assert trainer.label_manager.ignore_label == 2
    loss = trainer.loss
    assert isinstance(loss, DeepSupervisionWrapper)  # nnU-Net's own wrapper
    dl_train, _ = trainer.get_dataloaders()
    batch = next(dl_train)
    data, target = batch["data"], batch["target"]
    assert isinstance(target, list) and len(target) > 1  # nnU-Net's downsampled targets
    torch.manual_seed(0)
    outputs = trainer.network(data)
    assert [o.shape[2:] for o in outputs] == [t.shape[2:] for t in target]
    assert any((t == 2).any() for t in target)  # the ignore label reaches the loss
    weights = _nnunet_ds_weights(len(outputs))
    assert np.allclose(loss.weight_factors, weights)

    value = loss(outputs, target)
    # independent: the registry's loss per output, ignored voxels removed by ignore_index
    ref_loss = get_loss("unified_focal", ignore_index=2, batch=bool(trainer.configuration_manager.batch_dice))
    expected = sum(float(w) * ref_loss(o, t[:, 0].long()) for w, o, t in zip(weights, outputs, target) if w)
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-6)

    # the ignore label: changing the network output on ignored voxels does not change the loss
    perturbed = [o.detach().clone() for o in outputs]
    for o, t in zip(perturbed, target):
        mask = (t == 2).expand_as(o)
        o[mask] = torch.randn(int(mask.sum())) * 10
    assert float(loss(perturbed, target)) == pytest.approx(float(value.detach()), rel=1e-6)

    value.backward()
    grads = [p.grad for p in trainer.network.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name, loss_name", [("nnUNetTrainerComboLoss", "combo"),
                                             ("nnUNetTrainerHybridFocal", "hybrid_focal")])
def test_other_compound_trainers_build_their_loss(nnunet_root, monkeypatch, name, loss_name):
    trainer = _trainer(nnunet_root, monkeypatch, name)
    trainer.initialize()
    assert type(trainer.loss.loss.loss) is type(get_loss(loss_name))


def test_params_owned_by_nnunet_are_rejected(nnunet_root, monkeypatch):
    from unifocal.integrations.nnunet import build_nnunet_loss

    trainer = _trainer(nnunet_root, monkeypatch)
    with pytest.raises(ValueError, match="ignore_index"):
        build_nnunet_loss(trainer, "unified_focal", {"ignore_index": 5})


def test_docs_short_run_is_the_tests_run():
    """The page's commands and environment are the ones these tests run (checked without nnU-Net)."""
    commands = _doc_block("commands")
    assert f"nnUNet_n_proc_DA=1 nnUNetv2_plan_and_preprocess {' '.join(PLAN_ARGS)}\n" in commands
    assert f"nnUNet_n_proc_DA=0 nnUNetv2_train {' '.join(TRAIN_ARGS)}\n" in commands
    env = _env(Path("root"), [])
    for key in ("nnUNet_def_n_proc", "nnUNet_compile", "OMP_NUM_THREADS"):
        assert f"{key}={env[key]}" in commands, key
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):  # folders: set
        assert f"{key}=" in commands, key
    assert DATASET in _doc_block("write-dataset")
    trainer = _doc_block("tiny-trainer")
    compile(trainer, f"{DOC.name}:tiny-trainer", "exec")
    assert "class nnUNetTrainerUnifiedFocalTiny(nnUNetTrainerUnifiedFocal)" in trainer


@pytest.mark.slow
def test_tiny_real_nnunet_training(nnunet_root, tmp_path):
    """``nnUNetv2_train`` with a subclass of the Unified Focal trainer from a user's own folder."""
    ext = tmp_path / "my_trainers"
    ext.mkdir()
    (ext / "my_trainers_module.py").write_text(_doc_block("tiny-trainer"))  # the page's trainer
    r = subprocess.run([_bin("nnUNetv2_train"), *TRAIN_ARGS],
                       env=_env(nnunet_root, [ext, trainer_dir()]), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = nnunet_root / "results" / DATASET / "nnUNetTrainerUnifiedFocalTiny__nnUNetPlans__2d" / "fold_0"
    assert (out / "checkpoint_final.pth").is_file()
    summary = json.loads((out / "validation" / "summary.json").read_text())
    dice = summary["foreground_mean"]["Dice"]
    assert np.isfinite(dice) and 0.0 <= dice <= 1.0
    log = next(out.glob("training_log_*.txt")).read_text()
    assert "train_loss" in log and "nan" not in log.split("train_loss", 1)[1].split("\n", 1)[0]
