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
