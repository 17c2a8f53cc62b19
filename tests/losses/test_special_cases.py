"""Test 2 of issue #2: the special cases of the paper's Fig. 1 (docs/losses.md), to 1e-6."""

from __future__ import annotations

import pytest
import torch

import unifocal.losses as L

SHAPES = [(2, 2, 16, 16), (2, 3, 6, 8, 8), (3, 1, 20, 12)]


def _data(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * 3
    k = max(shape[1], 2)
    y = torch.randint(0, k, (shape[0], *shape[2:]), generator=gen)
    y[torch.rand(y.shape, generator=gen) < 0.6] = 0  # imbalanced
    return x, y


def close(a, b, tol=1e-6):
    assert float(a) == pytest.approx(float(b), rel=tol, abs=tol)


@pytest.mark.parametrize("shape", SHAPES)
def test_unified_gamma0_delta_half_lambda0_is_dice(shape):
    x, y = _data(shape)
    close(L.unified_focal_loss(x, y, delta=0.5, gamma=0.0, lambda_=0.0), L.dice_loss(x, y))


@pytest.mark.parametrize("shape", SHAPES)
def test_unified_gamma0_delta_half_lambda1_is_half_cross_entropy(shape):
    x, y = _data(shape)
    close(L.unified_focal_loss(x, y, delta=0.5, gamma=0.0, lambda_=1.0), 0.5 * L.cross_entropy_loss(x, y))
    if shape[1] > 1:  # and plain torch agrees on the cross entropy
        close(L.cross_entropy_loss(x, y), torch.nn.functional.cross_entropy(x, y))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("delta", [0.3, 0.6, 0.9])
def test_asymmetric_focal_tversky_gamma0_is_tversky(shape, delta):
    x, y = _data(shape, 1)
    close(L.asymmetric_focal_tversky_loss(x, y, delta=delta, gamma=0.0),
          L.tversky_loss(x, y, alpha=1 - delta, beta=delta))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma_ft", [1.0, 4 / 3, 2.0, 3.0])
def test_symmetric_focal_tversky_is_focal_tversky(shape, gamma_ft):
    x, y = _data(shape, 2)
    close(L.symmetric_focal_tversky_loss(x, y, delta=0.7, gamma=1 - 1 / gamma_ft),
          L.focal_tversky_loss(x, y, alpha=0.3, beta=0.7, gamma=gamma_ft))


@pytest.mark.parametrize("shape", SHAPES)
def test_focal_gamma0_is_weighted_cross_entropy(shape):
    x, y = _data(shape, 3)
    k = max(shape[1], 2)
    w = [0.3 + 0.4 * c for c in range(k)]
    close(L.focal_loss(x, y, alpha=w, gamma=0.0), L.cross_entropy_loss(x, y, weight=w))
    close(L.focal_loss(x, y, alpha=None, gamma=0.0), L.cross_entropy_loss(x, y))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0])
def test_combo_is_unified_gamma0_delta_half_up_to_constant(shape, lam):
    """Combo(α=λ, β=½) = UF(γ=0, δ=½, λ) - (1-λ): the Dice side enters as -DSC instead of 1-DSC."""
    x, y = _data(shape, 4)
    uf = L.unified_focal_loss(x, y, delta=0.5, gamma=0.0, lambda_=lam)
    close(L.combo_loss(x, y, alpha=lam, beta=0.5), uf - (1 - lam))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_hybrid_focal_is_symmetric_family_member(shape, lam):
    """Hybrid Focal(λ) = λ·SymFocal(δ=α_F, γ_F) + (1-λ)·SymFocalTversky(δ=β_FT, γ=1-1/γ_FT)."""
    x, y = _data(shape, 5)
    expected = lam * L.symmetric_focal_loss(x, y, delta=0.25, gamma=2.0) \
        + (1 - lam) * L.symmetric_focal_tversky_loss(x, y, delta=0.7, gamma=1 - 3 / 4)
    close(L.hybrid_focal_loss(x, y, lambda_=lam), expected)


def test_unified_is_lambda_mix_of_its_halves():
    x, y = _data((2, 3, 10, 10), 6)
    for lam in (0.0, 0.25, 1.0):
        close(L.unified_focal_loss(x, y, lambda_=lam),
              lam * L.asymmetric_focal_loss(x, y) + (1 - lam) * L.asymmetric_focal_tversky_loss(x, y))
        close(L.symmetric_unified_focal_loss(x, y, lambda_=lam),
              lam * L.symmetric_focal_loss(x, y) + (1 - lam) * L.symmetric_focal_tversky_loss(x, y))
