"""Compound losses: Combo, Hybrid Focal, and the Unified Focal loss (asymmetric and symmetric).

Each evaluates its two halves on one prepared input (log-probabilities and TP/FP/FN computed once).
Conventions: ``docs/losses.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from unifocal.losses._base import Loss, loss_function
from unifocal.spec import Weights

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from unifocal.losses._core import CommonKwargs


# --- functions -----------------------------------------------------------------------------------

@loss_function("combo")
def combo_loss(pred: Tensor, target: Tensor, alpha: float = 0.5, beta: float | None = 0.5,
               **common: Unpack[CommonKwargs]) -> Tensor:
    """Combo loss (Eq. 13/14): ``α·L_mCE - (1-α)·DSC``.

    ``L_mCE`` weights the cross entropy of rare classes by ``β`` and of the others by ``1-β`` (Eq. 14
    read as ``β·y·log p``; ``beta=None``: unweighted). ``DSC`` is the soft Dice coefficient averaged
    over classes. Defaults ``α = β = 0.5`` (the paper). The value can be negative; that is expected.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        alpha: weight of the cross-entropy half, in [0, 1].
        beta: weight of rare-class cross entropy in [0, 1], or ``None``.
        **common: see :mod:`unifocal.losses.constants`.
    """


@loss_function("hybrid_focal")
def hybrid_focal_loss(pred: Tensor, target: Tensor, lambda_: float = 0.5, focal_alpha: Weights = 0.25,
                      focal_gamma: float = 2.0, tversky_alpha: float = 0.3, tversky_beta: float = 0.7,
                      tversky_gamma: float = 4 / 3, **common: Unpack[CommonKwargs]) -> Tensor:
    """Hybrid Focal loss (Eq. 15): ``λ·L_F + (1-λ)·L_FT`` with the Focal and Focal Tversky settings.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        lambda_: weight of the Focal half, in [0, 1].
        focal_alpha: ``alpha`` of :func:`~unifocal.losses.focal_loss`.
        focal_gamma: ``gamma`` of :func:`~unifocal.losses.focal_loss`.
        tversky_alpha: ``alpha`` of :func:`~unifocal.losses.focal_tversky_loss`.
        tversky_beta: ``beta`` of :func:`~unifocal.losses.focal_tversky_loss`.
        tversky_gamma: ``gamma`` of :func:`~unifocal.losses.focal_tversky_loss`.
        **common: see :mod:`unifocal.losses.constants`.
    """


@loss_function("unified_focal")
def unified_focal_loss(pred: Tensor, target: Tensor, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                       lambda_: float = 0.5, **common: Unpack[CommonKwargs]) -> Tensor:
    """Asymmetric Unified Focal loss (Eq. 20): ``λ·L_aF + (1-λ)·L_aFT``.

    One ``γ`` drives both halves: the background cross entropy is suppressed by ``(1 - p_bg)^γ``
    (Eq. 17) and each rare class's Tversky term enhanced as ``(1 - TI)^{1-γ}`` (Eq. 19); ``δ`` weights
    false negatives (and rare-class cross entropy), ``1-δ`` false positives. ``λ`` weights the
    distribution (cross-entropy) half: ``λ = 1`` is the cross-entropy side, ``λ = 0`` the Dice side
    (Fig. 1). The authors' code weights the Tversky half instead: their ``weight = 1 - λ``
    (``docs/losses.md`` maps their parameters and MONAI's).

    Defaults ``δ = 0.6, γ = 0.2, λ = 0.5``: the paper's tuned optimum (Table 2). Special cases
    (Fig. 1): ``γ=0, δ=½, λ=0`` is the Dice loss; ``γ=0, δ=½, λ=1`` is ½ × cross entropy.

    Args:
        pred: ``(B, C, *spatial)`` logits (``C == 1``: binary sigmoid) or probabilities (``input="probs"``).
        target: labels ``(B, *spatial)`` / ``(B, 1, *spatial)``, one-hot ``(B, C, *spatial)``, or
            multi-hot ``(B, C, *spatial)`` with ``multilabel=True``.
        delta: FN weight in [0, 1], scalar or one per class.
        gamma: in [0, 1).
        lambda_: in [0, 1].
        **common: ``input, multilabel, rare_classes, background, ignore_index, include_background, batch,
            reduction, smooth, validate`` (:mod:`unifocal.losses.constants`).

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


@loss_function("symmetric_unified_focal")
def symmetric_unified_focal_loss(pred: Tensor, target: Tensor, delta: float | Sequence[float] = 0.6,
                                 gamma: float = 0.2, lambda_: float = 0.5,
                                 **common: Unpack[CommonKwargs]) -> Tensor:
    """Symmetric Unified Focal loss (the authors' code): ``λ·L_sF + (1-λ)·L_sFT``, every class modulated.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        delta: FN weight in [0, 1], scalar or one per class.
        gamma: in [0, 1).
        lambda_: in [0, 1].
        **common: see :mod:`unifocal.losses.constants`.
    """


# --- modules -----------------------------------------------------------------------------------

class ComboLoss(Loss, functional=combo_loss):
    """Module form of :func:`combo_loss` (defaults α = β = 0.5)."""


class HybridFocalLoss(Loss, functional=hybrid_focal_loss):
    """Module form of :func:`hybrid_focal_loss`."""


class UnifiedFocalLoss(Loss, functional=unified_focal_loss):
    """Module form of :func:`unified_focal_loss` (Eq. 20; defaults δ=0.6, γ=0.2, λ=0.5)."""


class SymmetricUnifiedFocalLoss(Loss, functional=symmetric_unified_focal_loss):
    """Module form of :func:`symmetric_unified_focal_loss`."""
