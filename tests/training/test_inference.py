"""Inference: sliding-window output shape and NIfTI geometry equal to the input's; 2D mapped back to size."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from unifocal.data import make_preprocessing
from unifocal.models import get_model
from unifocal.training import predict_files, predict_probabilities
from unifocal.training.checkpoint import save_checkpoint


def _fake_run(tmp_path, dims: int, preprocessing: dict, patch_size, num_classes: int = 3):
    torch.manual_seed(0)
    model_cfg = {"name": "unet", "base_filters": 4, "depth": 3, "norm": "instance"}
    net = get_model("unet", dims, 1, num_classes, base_filters=4, depth=3, norm="instance")
    spec = {"model": model_cfg, "spatial_dims": dims, "in_channels": 1, "num_classes": num_classes,
            "class_names": ["background"] + [f"c{i}" for i in range(1, num_classes)],
            "preprocessing": preprocessing, "patch_size": patch_size, "overlap": 0.5}
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": net.state_dict(), "spec": spec, "epoch": 1})
    return run, net


@pytest.mark.parametrize("shape", [(35, 50, 36), (20, 50, 12)])  # second: smaller than a patch along two axes
def test_sliding_window_nifti_shape_and_affine(tmp_path, shape):
    run, _ = _fake_run(tmp_path, 3, make_preprocessing(), [16, 16, 16])
    affine = np.array([[0.0, -1.2, 0.0, 10.5], [0.9, 0.0, 0.0, -3.0], [0.0, 0.0, 2.5, 7.25], [0, 0, 0, 1]])
    vol = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    src = tmp_path / "case_7.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), str(src))
    out = predict_files(run, [src], tmp_path / "pred", probabilities=True, device="cpu")
    assert [p.name for p in out] == ["case_7.nii.gz"]
    pred = nib.load(str(out[0]))
    assert pred.shape == shape
    np.testing.assert_allclose(pred.affine, affine, atol=1e-6)
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2}
    probs = nib.load(str(tmp_path / "pred" / "case_7_probs.nii.gz"))
    assert probs.shape == (*shape, 3)
    np.testing.assert_allclose(np.asarray(probs.dataobj).sum(-1), 1.0, atol=1e-4)


def test_sliding_window_matches_whole_volume_without_overlap_effects(tmp_path):
    """With a patch covering the volume, sliding-window inference equals one forward pass."""
    _, net = _fake_run(tmp_path, 3, make_preprocessing(), [16, 16, 16])
    x = torch.randn(1, 16, 16, 16)
    p_sw = predict_probabilities(net, x, patch_size=[16, 16, 16], overlap=0.5)
    with torch.no_grad():
        p_whole = torch.softmax(net.eval()(x[None]), 1)[0]
    assert p_sw.shape == (3, 16, 16, 16)
    torch.testing.assert_close(p_sw, p_whole, atol=1e-5, rtol=1e-4)


def test_2d_prediction_mapped_back_to_original_size(tmp_path):
    run, _ = _fake_run(tmp_path, 2, make_preprocessing(resize=[32, 32]), None, num_classes=2)
    img = (np.random.default_rng(1).random((70, 45)) * 255).astype(np.uint8)  # H=70, W=45
    Image.fromarray(img).save(tmp_path / "us_1.png")
    out = predict_files(run, [tmp_path], tmp_path / "pred", probabilities=True, device="cpu")
    assert [p.name for p in out] == ["us_1.png"]
    pred = np.array(Image.open(out[0]))
    assert pred.shape == (70, 45) and set(np.unique(pred)) <= {0, 255}
    probs = np.load(tmp_path / "pred" / "us_1_probs.npz")["probs"]
    assert probs.shape == (2, 70, 45)


def test_2d_whole_image_pads_to_the_divisor():
    net = get_model("unet", 2, 1, 2, base_filters=4, depth=3)
    p = predict_probabilities(net, torch.randn(1, 37, 29))
    assert p.shape == (2, 37, 29)


def test_predict_errors(tmp_path):
    run, _ = _fake_run(tmp_path, 3, make_preprocessing(), [16, 16, 16])
    with pytest.raises(ValueError, match="does not exist"):
        predict_files(run, [tmp_path / "nope.nii.gz"], tmp_path / "pred")
    with pytest.raises(ValueError, match="no checkpoint"):
        predict_files(tmp_path / "empty", [tmp_path], tmp_path / "pred")
