"""Compound losses: Combo, Hybrid Focal, and the Unified Focal loss (asymmetric and symmetric).

Each evaluates its two halves on one prepared input (log-probabilities and TP/FP/FN computed once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from torch import Tensor

from unifocal.losses._base import Loss, core_of, loss_function
from unifocal.losses._core import (
    CommonKwargs,
    Prepared,
    Terms,
    check_range,
    check_unit,
    distribution_terms,
    region_terms,
    tversky_index,
)
from unifocal.losses.distribution import (
    Weights,
    asymmetric_focal_loss,
    check_focal,
    focal_loss,
    symmetric_focal_loss,
)
from unifocal.losses.region import (
    asymmetric_focal_tversky_loss,
    check_asymmetric_focal_tversky,
    check_focal_tversky,
    focal_tversky_loss,
    symmetric_focal_tversky_loss,
)


def check_combo(alpha: float = 0.5, beta: float | None = 0.5) -> None:
    check_unit("alpha", alpha)
    if beta is not None:
        check_unit("beta", beta)


def check_hybrid_focal(lambda_: float = 0.5, focal_alpha: Weights = 0.25, focal_gamma: float = 2.0,
                       tversky_alpha: float = 0.3, tversky_beta: float = 0.7, tversky_gamma: float = 4 / 3) -> None:
    check_unit("lambda_", lambda_)
    check_focal(focal_alpha, focal_gamma)
    check_focal_tversky(tversky_alpha, tversky_beta, tversky_gamma)


def check_unified_focal(delta: float | Sequence[float] = 0.6, gamma: float = 0.2, lambda_: float = 0.5) -> None:
    check_asymmetric_focal_tversky(delta, gamma)
    check_unit("lambda_", lambda_)
    check_range("gamma", gamma, 0.0, 1.0)


@loss_function
def combo_loss(prep: Prepared, alpha: float = 0.5, beta: float | None = 0.5) -> Terms:
    """Combo loss (Eq. 13/14): ``α·L_mCE - (1-α)·DSC``.

    ``L_mCE`` weights the cross entropy of rare classes by ``β`` and of the others by ``1-β`` (Eq. 14
    read as ``β·y·log p``; ``beta=None``: unweighted). ``DSC`` is the soft Dice coefficient averaged
    over classes. Defaults ``α = β = 0.5`` (the paper). The value can be negative; that is expected.
    """
    w = None if beta is None else prep.by_role(background=1.0 - beta, rare=beta, other=1.0 - beta)
    s = prep.common["smooth"]

    def dsc(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        return tversky_index(tp, fp, fn, 0.5, 0.5, s).mean(-1)

    return distribution_terms(w, None, coef=alpha) + region_terms(dsc, scale=-(1.0 - alpha))


@loss_function
def hybrid_focal_loss(prep: Prepared, lambda_: float = 0.5, focal_alpha: Weights = 0.25, focal_gamma: float = 2.0,
                      tversky_alpha: float = 0.3, tversky_beta: float = 0.7, tversky_gamma: float = 4 / 3) -> Terms:
    """Hybrid Focal loss (Eq. 15): ``λ·L_F + (1-λ)·L_FT`` with the Focal and Focal Tversky settings above."""
    lf = core_of(focal_loss)(prep, focal_alpha, focal_gamma)
    lft = core_of(focal_tversky_loss)(prep, tversky_alpha, tversky_beta, tversky_gamma)
    return lambda_ * lf + (1.0 - lambda_) * lft


@loss_function
def unified_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                       lambda_: float = 0.5) -> Terms:
    """Asymmetric Unified Focal loss (Eq. 20): ``λ·L_aF + (1-λ)·L_aFT``.

    One ``γ`` drives both halves: the background cross entropy is suppressed by ``(1 - p_bg)^γ``
    (Eq. 17) and each rare class's Tversky term enhanced as ``(1 - TI)^{1-γ}`` (Eq. 19); ``δ`` weights
    false negatives (and rare-class cross entropy), ``1-δ`` false positives. ``λ`` weights the
    distribution (cross-entropy) half: ``λ = 1`` is the cross-entropy side, ``λ = 0`` the Dice side
    (Fig. 1). The authors' code weights the Tversky half instead: their ``weight = 1 - λ``.

    Defaults ``δ = 0.6, γ = 0.2, λ = 0.5``: the paper's tuned optimum (Table 2). Special cases
    (Fig. 1): ``γ=0, δ=½, λ=0`` is the Dice loss; ``γ=0, δ=½, λ=1`` is ½ × cross entropy.

    Args:
        pred: ``(B, C, *spatial)`` logits (``C == 1``: binary sigmoid) or probabilities (``input="probs"``).
        target: labels ``(B, *spatial)`` / ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        delta: FN weight in [0, 1], scalar or one per class.
        gamma: in [0, 1).
        lambda_: in [0, 1].
        **common: ``input, rare_classes, background, ignore_index, batch, reduction, smooth``.

    Example:
        >>> import torch
        >>> from unifocal.losses import UnifiedFocalLoss
        >>> loss = UnifiedFocalLoss()
        >>> logits = torch.randn(2, 3, 32, 32, requires_grad=True)
        >>> labels = torch.randint(0, 3, (2, 32, 32))
        >>> value = loss(logits, labels); value.backward()
        >>> bool(torch.isfinite(value)) and logits.grad.shape == logits.shape
        True
    """
    laf = core_of(asymmetric_focal_loss)(prep, delta, gamma)
    laft = core_of(asymmetric_focal_tversky_loss)(prep, delta, gamma)
    return lambda_ * laf + (1.0 - lambda_) * laft


@loss_function
def symmetric_unified_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                                 lambda_: float = 0.5) -> Terms:
    """Symmetric Unified Focal loss (the authors' code): ``λ·L_sF + (1-λ)·L_sFT``, every class modulated."""
    lsf = core_of(symmetric_focal_loss)(prep, delta, gamma)
    lsft = core_of(symmetric_focal_tversky_loss)(prep, delta, gamma)
    return lambda_ * lsf + (1.0 - lambda_) * lsft


class ComboLoss(Loss):
    """Module form of :func:`combo_loss` (defaults α = β = 0.5)."""

    functional = staticmethod(combo_loss)
    check = staticmethod(check_combo)
    name = "combo"

    def __init__(self, alpha: float = 0.5, beta: float | None = 0.5, **common: Unpack[CommonKwargs]) -> None:
        super().__init__({"alpha": alpha, "beta": beta}, common)


class HybridFocalLoss(Loss):
    """Module form of :func:`hybrid_focal_loss`."""

    functional = staticmethod(hybrid_focal_loss)
    check = staticmethod(check_hybrid_focal)
    name = "hybrid_focal"

    def __init__(self, lambda_: float = 0.5, focal_alpha: Weights = 0.25, focal_gamma: float = 2.0,
                 tversky_alpha: float = 0.3, tversky_beta: float = 0.7, tversky_gamma: float = 4 / 3,
                 **common: Unpack[CommonKwargs]) -> None:
        super().__init__({"lambda_": lambda_, "focal_alpha": focal_alpha, "focal_gamma": focal_gamma,
                          "tversky_alpha": tversky_alpha, "tversky_beta": tversky_beta,
                          "tversky_gamma": tversky_gamma}, common)


class UnifiedFocalLoss(Loss):
    """Module form of :func:`unified_focal_loss` (Eq. 20; defaults δ=0.6, γ=0.2, λ=0.5)."""

    functional = staticmethod(unified_focal_loss)
    check = staticmethod(check_unified_focal)
    name = "unified_focal"

    def __init__(self, delta: float | Sequence[float] = 0.6, gamma: float = 0.2, lambda_: float = 0.5,
                 **common: Unpack[CommonKwargs]) -> None:
        super().__init__({"delta": delta, "gamma": gamma, "lambda_": lambda_}, common)


class SymmetricUnifiedFocalLoss(UnifiedFocalLoss):
    """Module form of :func:`symmetric_unified_focal_loss`."""

    functional = staticmethod(symmetric_unified_focal_loss)
    name = "symmetric_unified_focal"
