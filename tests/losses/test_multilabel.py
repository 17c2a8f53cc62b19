"""Multi-label mode: independent per-channel sigmoid losses; multi-hot targets refused without it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unifocal.losses as L
from unifocal.losses import available_losses, get_loss

NAMES = available_losses()


def _multihot(seed=0, shape=(2, 3, 8, 8)):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    y = torch.rand(shape, generator=gen) < 0.35  # overlapping regions
    y[:, 1] |= y[:, 0]  # nested, as BraTS's whole tumour contains the tumour core
    return x, y


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("common", [{}, {"batch": True}, {"ignore_index": 255}, {"input": "probs"}])
def test_multilabel_is_the_mean_of_per_channel_binary_losses(name, common):
    """Definition: channel c is the binary problem (outside c: background role, inside c: rare role)."""
    x, y = _multihot()
    target = y.long()
    if "ignore_index" in common:
        target[:, :, :2, :3] = 255
    pred = torch.sigmoid(x) if common.get("input") == "probs" else x
    per_sample = get_loss(name, multilabel=True, reduction="none", **common)(pred, target)
    binary = get_loss(name, reduction="none", **common)
    expected = torch.stack([binary(pred[:, c:c + 1], target[:, c:c + 1]) for c in range(3)], 1).mean(1)
    assert torch.allclose(per_sample, expected, rtol=1e-10, atol=1e-12)


def test_multilabel_fast_and_soft_paths_agree_and_gradients_match():
    x, y = _multihot(1)
    for name in ("unified_focal", "dice", "focal"):
        xa = x.clone().requires_grad_(True)
        xb = x.clone().requires_grad_(True)
        a = get_loss(name, multilabel=True)(xa, y)  # bool target: labels, fused path
        b = get_loss(name, multilabel=True)(xb, y.double())  # float target: soft, autograd path
        a.backward()
        b.backward()
        assert torch.allclose(a, b, rtol=1e-10) and torch.allclose(xa.grad, xb.grad, rtol=1e-8, atol=1e-12)


def test_multilabel_against_monai_sigmoid_losses():
    from monai.losses import DiceLoss, FocalLoss

    x, y = _multihot(2)
    g = y.double()
    # our per-channel binary Dice averages the Dice of the region and of its complement; MONAI's
    # sigmoid Dice is the region's alone: the complement is the region of -x and 1 - y
    s = 1e-6
    monai_dice = DiceLoss(sigmoid=True, smooth_nr=2 * s, smooth_dr=2 * s)
    expected = 0.5 * (monai_dice(x, g) + monai_dice(-x, 1 - g))
    assert float(L.dice_loss(x, y, multilabel=True, smooth=s)) == pytest.approx(float(expected), rel=1e-9)
    # MONAI's spelling means MONAI's loss: the region alone
    assert float(L.dice_loss(x, y, sigmoid=True, smooth=s)) == pytest.approx(float(monai_dice(x, g)), rel=1e-9)
    assert float(L.dice_loss(x, y, multilabel=True, complement=False, smooth=s)) == pytest.approx(
        float(monai_dice(x, g)), rel=1e-9)
    # sigmoid focal loss (alpha=None): mean over channels and positions of (1 - p_t)^γ BCE
    ref = FocalLoss(gamma=2.0, use_softmax=False)(x, g)
    assert float(L.focal_loss(x, y, alpha=None, gamma=2.0, multilabel=True)) == pytest.approx(float(ref), rel=1e-6)
    # scalar alpha: α inside the region (rare role), 1 - α outside (background role), as Lin et al.'s sigmoid form
    ref = FocalLoss(gamma=2.0, alpha=0.25, use_softmax=False)(x, g)
    assert float(L.focal_loss(x, y, multilabel=True)) == pytest.approx(float(ref), rel=1e-6)
    bce = F.binary_cross_entropy_with_logits(x, g)
    assert float(L.cross_entropy_loss(x, y, multilabel=True)) == pytest.approx(float(bce), rel=1e-10)


def test_multilabel_include_background_false_drops_the_first_channel():
    x, y = _multihot(3)
    a = L.unified_focal_loss(x, y, multilabel=True, include_background=False)
    assert float(a) == pytest.approx(float(L.unified_focal_loss(x[:, 1:], y[:, 1:], multilabel=True)), rel=1e-12)


@pytest.mark.parametrize("name", ["unified_focal", "dice", "cross_entropy", "focal"])
def test_multi_hot_target_without_multilabel_raises(name):
    x, y = _multihot(4)
    with pytest.raises(ValueError, match="multilabel=True"):
        get_loss(name)(x, y.float())
    soft = torch.softmax(torch.randn(2, 3, 8, 8), 1) * 0.9  # soft target not summing to one
    with pytest.raises(ValueError, match=r"sum to one.*multilabel=True"):
        get_loss(name)(x, soft)
    with pytest.raises(ValueError, match=r"probabilities must sum to one.*multilabel=True"):
        get_loss(name, input="probs")(torch.sigmoid(x), y.long().argmax(1))
    # normalised soft targets and probabilities are fine (float32 rounding tolerated)
    p = torch.softmax(torch.randn(2, 3, 8, 8), 1)
    assert torch.isfinite(get_loss(name, input="probs")(p, torch.softmax(torch.randn(2, 3, 8, 8), 1)))
    # validate=False switches the value checks off (for data checked once up front)
    assert torch.isfinite(get_loss(name, validate=False)(x, soft))


def test_multilabel_errors_name_the_problem():
    x, y = _multihot(5)
    with pytest.raises(ValueError, match="multi-hot target of the shape of pred"):
        L.dice_loss(x, y[:, 0], multilabel=True)
    with pytest.raises(ValueError, match="per-class sequences do not apply"):
        L.unified_focal_loss(x, y, delta=[0.5, 0.6, 0.7], multilabel=True)
    with pytest.raises(ValueError, match="rare_classes and background do not apply"):
        L.UnifiedFocalLoss(multilabel=True, rare_classes=[1])
    with pytest.raises(ValueError, match="one-hot / soft target values must lie in"):
        L.dice_loss(x, y.double() * 2, multilabel=True)
