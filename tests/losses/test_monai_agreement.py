"""Test 4 of issue #2: agreement with MONAI where the conventions coincide."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceLoss as MonaiDice
from monai.losses import FocalLoss as MonaiFocal
from monai.losses import TverskyLoss as MonaiTversky

import unifocal.losses as L


def _data(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen)
    return x, y


@pytest.mark.parametrize("shape", [(2, 2, 16, 16), (2, 3, 6, 7, 8)])
def test_dice_matches_monai(shape):
    x, y = _data(shape, 0)
    s = 1e-6  # ours: (TP+s)/(TP+½FN+½FP+s) == MONAI's (2TP+2s)/(Σg+Σp+2s)
    ref = MonaiDice(softmax=True, to_onehot_y=True, smooth_nr=2 * s, smooth_dr=2 * s)(x, y)
    assert float(L.dice_loss(x, y, smooth=s)) == pytest.approx(float(ref), rel=1e-10)


@pytest.mark.parametrize("shape", [(2, 2, 16, 16), (2, 3, 6, 7, 8)])
@pytest.mark.parametrize("ab", [(0.3, 0.7), (0.5, 0.5), (0.8, 0.1)])
def test_tversky_matches_monai(shape, ab):
    x, y = _data(shape, 1)
    a, b = ab
    ref = MonaiTversky(softmax=True, to_onehot_y=True, alpha=a, beta=b, smooth_nr=1e-6, smooth_dr=1e-6)(x, y)
    assert float(L.tversky_loss(x, y, alpha=a, beta=b)) == pytest.approx(float(ref), rel=1e-10)


@pytest.mark.parametrize("shape", [(2, 2, 16, 16), (2, 3, 6, 7, 8)])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_matches_monai_softmax_focal(shape, gamma):
    """MONAI's softmax focal loss averages over classes too: ours = C × MONAI's (alpha=None)."""
    x, y = _data(shape, 2)
    ref = MonaiFocal(gamma=gamma, use_softmax=True, to_onehot_y=True)(x, y)
    ours = L.focal_loss(x, y, alpha=None, gamma=gamma)
    assert float(ours) == pytest.approx(shape[1] * float(ref), rel=1e-6)  # MONAI computes in float32


# --- MONAI's argument names (include_background, to_onehot_y, softmax, sigmoid) -------------------

@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 4, 4, 5, 6)])
@pytest.mark.parametrize("include_background", [True, False])
def test_monai_dialect_dice_and_tversky(shape, include_background):
    x, y = _data(shape, 3)
    kw = {"softmax": True, "to_onehot_y": True, "include_background": include_background}
    s = 1e-6
    ref = MonaiDice(**kw, smooth_nr=2 * s, smooth_dr=2 * s)(x, y)
    assert float(L.dice_loss(x, y, smooth=s, **kw)) == pytest.approx(float(ref), rel=1e-10)
    assert float(L.DiceLoss(smooth=s, **kw)(x, y)) == pytest.approx(float(ref), rel=1e-10)
    ref = MonaiTversky(**kw, alpha=0.3, beta=0.7, smooth_nr=s, smooth_dr=s)(x, y)
    assert float(L.tversky_loss(x, y, **kw)) == pytest.approx(float(ref), rel=1e-10)
    # no activation (softmax=False, sigmoid=False): probabilities, one-hot target (to_onehot_y=False)
    p = torch.softmax(x, 1)
    onehot = torch.nn.functional.one_hot(y[:, 0], shape[1]).movedim(-1, 1).double()
    ref = MonaiDice(include_background=include_background, smooth_nr=2 * s, smooth_dr=2 * s)(p, onehot)
    ours = L.dice_loss(p, onehot, softmax=False, sigmoid=False, to_onehot_y=False, smooth=s,
                       include_background=include_background)
    assert float(ours) == pytest.approx(float(ref), rel=1e-10)


def test_monai_dialect_single_channel_sigmoid_dice():
    """One sigmoid channel: MONAI's Dice is the foreground's alone, ours with include_background=False."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 1, 8, 8), generator=gen)
    s = 1e-6
    ref = MonaiDice(sigmoid=True, smooth_nr=2 * s, smooth_dr=2 * s)(x, y.double())
    for kw in ({"sigmoid": True}, {}):  # multi-label or plain binary: the same single-channel problem
        ours = L.dice_loss(x, y, include_background=False, smooth=s, **kw)
        assert float(ours) == pytest.approx(float(ref), rel=1e-10)


def test_monai_dialect_focal_sigmoid_and_errors():
    x, y = _data((2, 3, 6, 6), 4)
    onehot = torch.nn.functional.one_hot(y[:, 0], 3).movedim(-1, 1).double()
    ref = MonaiFocal(gamma=2.0, use_softmax=False)(x, onehot)  # sigmoid: per-channel binary focal
    assert float(L.focal_loss(x, onehot, alpha=None, sigmoid=True)) == pytest.approx(float(ref), rel=1e-6)
    with pytest.raises(ValueError, match="exclusive"):
        L.DiceLoss(softmax=True, sigmoid=True)
    with pytest.raises(ValueError, match="contradicts"):
        L.DiceLoss(softmax=True, input="probs")
    with pytest.raises(ValueError, match="to_onehot_y=True expects labels"):
        L.dice_loss(x, onehot, to_onehot_y=True)
    with pytest.raises(ValueError, match="to_onehot_y=False expects a one-hot target"):
        L.dice_loss(x, y, to_onehot_y=False)


# --- the parameter mapping table of docs/losses.md, one test per row --------------------------------

@pytest.mark.parametrize("w,g,d", [(0.5, 0.5, 0.7), (0.2, 0.2, 0.6), (0.9, 0.0, 0.5), (0.0, 0.75, 0.3)])
def test_mapping_row_monai_asymmetric_unified_focal_loss(w, g, d):
    """MONAI AsymmetricUnifiedFocalLoss(weight=w, gamma=g, delta=d), on probabilities =
    (1 - w/2) · unified_focal_loss(p, y, delta=d, gamma=g, lambda_=w/(2-w), input="probs", smooth=1e-7)."""
    from monai.losses import AsymmetricUnifiedFocalLoss

    gen = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(3, 2, 12, 12, generator=gen, dtype=torch.float64) * 2, 1)
    y = torch.randint(0, 2, (3, 1, 12, 12), generator=gen)
    ref = AsymmetricUnifiedFocalLoss(to_onehot_y=True, num_classes=2, weight=w, gamma=g, delta=d)(p, y)
    ours = (1 - w / 2) * L.unified_focal_loss(p, y, delta=d, gamma=g, lambda_=w / (2 - w), input="probs",
                                              smooth=1e-7)
    assert float(ours) == pytest.approx(float(ref), rel=1e-9)


def test_mapping_row_authors_keras_asym_unified_focal_loss():
    """The authors' Keras asym_unified_focal_loss(weight=w, delta=d, gamma=g), on probabilities =
    unified_focal_loss(p, y, delta=d, gamma=g, lambda_=1 - w, input="probs", smooth=1e-7)."""
    from tests.losses.test_reference_authors import _channels_first, _load

    meta, arrays = _load()
    records = [r for r in meta["records"] if r["function"] == "asym_unified_focal_loss"]
    assert records
    for r in records:
        kw = r["kwargs"]
        w, d, g = kw.get("weight", 0.5), kw.get("delta", 0.6), kw.get("gamma", 0.5)  # the authors' defaults
        p = torch.from_numpy(_channels_first(arrays[f"{r['case']}__y_pred"])).float()
        y = torch.from_numpy(_channels_first(arrays[f"{r['case']}__y_true"])).float()
        ours = L.unified_focal_loss(p, y, delta=d, gamma=g, lambda_=1 - w, input="probs", smooth=1e-7)
        assert float(ours) == pytest.approx(r["value"], rel=1e-5, abs=1e-8), r


# --- MONAI DynUNet's stacked deep-supervision output (B, S, C, ...) ---------------------------------

def test_dynunet_stacked_deep_supervision_output():
    from monai.networks.nets import DynUNet

    torch.manual_seed(0)
    net = DynUNet(2, 1, 3, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2],
                  deep_supervision=True, deep_supr_num=1).train()
    out = net(torch.randn(2, 1, 16, 16))
    assert out.shape == (2, 2, 3, 16, 16)  # (B, S, C, H, W): heads at full resolution, main first
    y = torch.randint(0, 3, (2, 1, 16, 16))
    ds = L.DeepSupervisionLoss(L.UnifiedFocalLoss())
    heads = out.detach()
    expected = float(sum(w * L.unified_focal_loss(heads[:, i], y) for i, w in enumerate(L.default_weights(2))))
    value = ds(out, y)
    assert float(value.detach()) == pytest.approx(expected, rel=1e-6)
    value.backward()  # gradients reach the network through every head
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert float(L.DeepSupervisionLoss(L.UnifiedFocalLoss(), stacked=True)(heads, y[:, 0])) == \
        pytest.approx(expected, rel=1e-6)
    single = out[:, 0].detach()  # one output of the same shape family still reads as one output
    assert float(ds(single, y)) == pytest.approx(float(L.unified_focal_loss(single, y)), rel=1e-7)
    with pytest.raises(ValueError, match="stacked"):
        L.DeepSupervisionLoss(L.DiceLoss(), stacked="yes")


# --- MONAI's names mean MONAI's losses: sigmoid=True on multi-hot targets ---------------------------

@pytest.mark.parametrize("shape", [(2, 3, 12, 10), (2, 2, 6, 5, 4), (3, 1, 16, 16)])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
def test_sigmoid_dice_and_tversky_equal_monai_on_multi_hot(shape, include_background, batch):
    """``DiceLoss(sigmoid=True)`` / ``TverskyLoss(sigmoid=True)`` = MONAI's, MONAI's own defaults on both sides
    (smoothing 1e-5 there, 1e-6 here: within 1e-6), and exactly with the smoothing matched."""
    from monai.losses import DiceLoss as MonaiDiceLoss
    from monai.losses import TverskyLoss as MonaiTverskyLoss

    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2
    g = (torch.rand(*shape, generator=gen) < 0.3).double()  # multi-hot: channels overlap
    kw = {"include_background": include_background, "batch": batch}
    if shape[1] == 1 and not include_background:
        return  # MONAI warns and keeps the single channel; ours is the same problem (tested above)
    pairs = [(L.DiceLoss(sigmoid=True, **kw), MonaiDiceLoss(sigmoid=True, **kw), 1e-6),
             (L.DiceLoss(sigmoid=True, smooth=1e-5, **kw),
              MonaiDiceLoss(sigmoid=True, smooth_nr=2e-5, smooth_dr=2e-5, **kw), 1e-12),
             (L.TverskyLoss(sigmoid=True, **kw), MonaiTverskyLoss(sigmoid=True, alpha=0.3, beta=0.7, **kw), 1e-6),
             (L.TverskyLoss(sigmoid=True, smooth=1e-5, **kw),
              MonaiTverskyLoss(sigmoid=True, alpha=0.3, beta=0.7, smooth_nr=1e-5, smooth_dr=1e-5, **kw), 1e-12)]
    for ours, theirs, tol in pairs:
        assert float(ours(x, g)) == pytest.approx(float(theirs(x, g)), abs=tol, rel=tol)
        assert float(ours(x, g.bool())) == pytest.approx(float(theirs(x, g)), abs=tol, rel=tol)  # fused path
    # the authors' two-class convention stays under multilabel=True, and differs
    both = float(L.DiceLoss(multilabel=True, **kw)(x, g))
    assert abs(both - float(MonaiDiceLoss(sigmoid=True, **kw)(x, g))) > 1e-3


def test_sigmoid_contradicting_complement_is_refused():
    with pytest.raises(ValueError, match="complement=True contradicts sigmoid=True"):
        L.DiceLoss(sigmoid=True, complement=True)
    assert L.DiceLoss(sigmoid=True).complement is False and L.DiceLoss(sigmoid=True).multilabel is True


# --- MONAI's AsymmetricUnifiedFocalLoss arguments build the equivalent loss --------------------------

@pytest.mark.parametrize("w,g,d", [(0.5, 0.5, 0.7), (0.2, 0.2, 0.6), (1.0, 0.0, 0.5), (0.0, 0.75, 0.3)])
@pytest.mark.parametrize("onehot_y", [True, False])
def test_monai_asymmetric_unified_focal_loss_constructor(w, g, d, onehot_y):
    from monai.losses import AsymmetricUnifiedFocalLoss as MonaiAUFL

    from unifocal.losses.monai import AsymmetricUnifiedFocalLoss

    gen = torch.Generator().manual_seed(11)
    p = torch.softmax(torch.randn(3, 2, 12, 12, generator=gen, dtype=torch.float64) * 2, 1)
    y = torch.randint(0, 2, (3, 1, 12, 12), generator=gen)
    target = y if onehot_y else torch.cat([1 - y, y], 1).double()
    kw = {"to_onehot_y": onehot_y, "num_classes": 2, "weight": w, "gamma": g, "delta": d}
    ours = AsymmetricUnifiedFocalLoss(**kw)
    assert float(ours(p, target)) == pytest.approx(float(MonaiAUFL(**kw)(p, target)), rel=1e-9)
    assert ours.weight == w and ours.delta == d and ours.gamma == g
    assert isinstance(ours.loss, L.UnifiedFocalLoss) and ours.loss.lambda_ == pytest.approx(w / (2 - w))
    # MONAI's defaults are MONAI's
    assert float(AsymmetricUnifiedFocalLoss(to_onehot_y=True)(p, y)) == pytest.approx(
        float(MonaiAUFL(to_onehot_y=True)(p, y)), rel=1e-9)


def test_monai_asymmetric_unified_focal_loss_errors():
    from unifocal.losses.monai import AsymmetricUnifiedFocalLoss

    with pytest.raises(ValueError, match="weight"):
        AsymmetricUnifiedFocalLoss(weight=1.5)
    with pytest.raises(ValueError, match="num_classes"):
        AsymmetricUnifiedFocalLoss(num_classes=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        AsymmetricUnifiedFocalLoss(lambda_=0.5)
    with pytest.raises(ValueError, match="3 channels"):
        AsymmetricUnifiedFocalLoss(num_classes=2)(torch.rand(1, 3, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long))
