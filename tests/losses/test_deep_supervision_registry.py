"""DeepSupervisionLoss, get_loss / available_losses / loss_defaults."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unifocal.losses import (
    PAPER_LOSSES,
    DeepSupervisionLoss,
    DiceLoss,
    UnifiedFocalLoss,
    available_losses,
    default_weights,
    get_loss,
    loss_defaults,
)


def test_default_weights_halve_and_sum_to_one():
    w = default_weights(4)
    assert sum(w) == pytest.approx(1.0)
    assert all(w[i + 1] == pytest.approx(w[i] / 2) for i in range(3))


def test_deep_supervision_is_weighted_sum_over_downsampled_targets():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (2, 16, 16), generator=gen)
    outs = [torch.randn(2, 3, s, s, generator=gen) for s in (16, 8, 4)]
    base = UnifiedFocalLoss()
    ds = DeepSupervisionLoss(base, weights=[4, 2, 1])
    expected = 0.0
    for w, o in zip([4 / 7, 2 / 7, 1 / 7], outs):
        s = o.shape[-1]
        k = 16 // s  # nearest-exact at an integer factor k picks pixel k*i + k//2
        yt = y[:, k // 2:: k, k // 2:: k]
        expected += w * float(base(o, yt))
    assert float(ds(outs, y)) == pytest.approx(expected, rel=1e-6)
    assert float(ds(outs[0], y)) == pytest.approx(float(base(outs[0], y)), rel=1e-7)


def test_deep_supervision_soft_target_and_3d():
    y = torch.randint(0, 2, (1, 8, 8, 8))
    oh = F.one_hot(y, 2).permute(0, 4, 1, 2, 3).float()
    outs = [torch.randn(1, 2, 8, 8, 8, requires_grad=True), torch.randn(1, 2, 4, 4, 4, requires_grad=True)]
    v = DeepSupervisionLoss(DiceLoss())(outs, oh)
    v.backward()
    assert torch.isfinite(v) and outs[1].grad is not None and outs[1].grad.abs().sum() > 0


def test_deep_supervision_errors():
    with pytest.raises(ValueError, match="weights"):
        DeepSupervisionLoss(DiceLoss(), weights=[-1, 1])
    ds = DeepSupervisionLoss(DiceLoss(), weights=[1, 1])
    with pytest.raises(ValueError, match="2 deep-supervision weights for 3 outputs"):
        ds([torch.randn(1, 2, 4, 4)] * 3, torch.zeros(1, 4, 4, dtype=torch.long))


def test_registry_names_and_defaults():
    names = available_losses()
    assert len(names) == 13 and set(PAPER_LOSSES) <= set(names)
    assert loss_defaults("unified_focal") == {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5}
    assert loss_defaults("focal") == {"alpha": 0.25, "gamma": 2.0}
    assert loss_defaults("tversky") == {"alpha": 0.3, "beta": 0.7}
    assert loss_defaults("focal_tversky")["gamma"] == pytest.approx(4 / 3)
    assert isinstance(get_loss("Unified-Focal-Loss"), UnifiedFocalLoss)


def test_registry_errors_list_close_matches():
    with pytest.raises(ValueError, match="did you mean unified_focal"):
        get_loss("unified_focl")
    with pytest.raises(TypeError, match="did you mean 'delta'"):
        get_loss("unified_focal", deltaa=0.5)
    with pytest.raises(TypeError, match="did you mean 'lambda_'"):
        get_loss("unified_focal", lambda_x=0.5)
