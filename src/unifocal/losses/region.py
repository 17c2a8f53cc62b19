"""Region-based (Dice-type) losses: Dice, Tversky, Focal Tversky, Asymmetric / Symmetric Focal Tversky.

They share one path: the Tversky index of every class from the shared TP/FP/FN, then
``mean_c (1 - TI_c)^{e_c}`` (:func:`unifocal.losses._core.focal_tversky_term`). Dice is Tversky with
``α = β = ½``; Tversky is Focal Tversky with exponent 1. The mean runs over all classes, background
included (the authors' code and experiments; ``include_background=False`` leaves it out); per sample
unless ``batch=True`` pools TP/FP/FN over the batch. Conventions: ``docs/losses.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from unifocal.losses._base import Loss, loss_function

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from unifocal.losses._core import CommonKwargs


# --- functions -----------------------------------------------------------------------------------

@loss_function("focal_tversky")
def focal_tversky_loss(pred: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4 / 3,
                       **common: Unpack[CommonKwargs]) -> Tensor:
    """Focal Tversky loss (Eq. 12): ``mean_c (1 - TI_c)^{1/γ}``, ``TI = TP / (TP + α·FP + β·FN)``.

    Defaults ``α = 0.3, β = 0.7, γ = 4/3`` (exponent 0.75) are the paper's settings (after Abraham
    and Khan). ``γ = 1`` gives the Tversky loss.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        alpha: weight of false positives, ``>= 0``.
        beta: weight of false negatives, ``>= 0``.
        gamma: the exponent is ``1/γ``; ``γ > 0``.
        **common: see :mod:`unifocal.losses.constants`.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 2, 16, 16); y = torch.randint(0, 2, (2, 16, 16))
        >>> bool(torch.isclose(focal_tversky_loss(x, y, gamma=1.0), tversky_loss(x, y)))
        True
    """


@loss_function("tversky")
def tversky_loss(pred: Tensor, target: Tensor, alpha: float = 0.3, beta: float = 0.7,
                 **common: Unpack[CommonKwargs]) -> Tensor:
    """Tversky loss: ``mean_c (1 - TI_c)``, ``α`` on false positives, ``β`` on false negatives.

    Defaults ``α = 0.3, β = 0.7`` (the paper's settings, after Salehi et al.).

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        alpha: weight of false positives, ``>= 0``.
        beta: weight of false negatives, ``>= 0``.
        **common: see :mod:`unifocal.losses.constants`.
    """


@loss_function("dice")
def dice_loss(pred: Tensor, target: Tensor, **common: Unpack[CommonKwargs]) -> Tensor:
    """Dice loss: ``mean_c (1 - DSC_c)`` with the soft ``DSC = 2TP / (2TP + FP + FN)`` (``docs/losses.md``, convention 11).

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        **common: see :mod:`unifocal.losses.constants`.

    Example:
        >>> import torch
        >>> y = torch.randint(0, 2, (1, 8, 8))
        >>> perfect = torch.nn.functional.one_hot(y, 2).permute(0, 3, 1, 2).float()
        >>> float(dice_loss(perfect, y, input="probs")) < 1e-5
        True
    """


@loss_function("asymmetric_focal_tversky")
def asymmetric_focal_tversky_loss(pred: Tensor, target: Tensor, delta: float | Sequence[float] = 0.6,
                                  gamma: float = 0.2, **common: Unpack[CommonKwargs]) -> Tensor:
    """Asymmetric Focal Tversky loss (Eq. 19): background ``1 - TI_bg``, rare ``(1 - TI_r)^{1-γ}``.

    Mean over classes (the authors' code and experiments; Eq. 19 prints a sum), then over the batch.
    Classes neither background nor rare get ``1 - TI``. ``γ`` in [0, 1) *enhances* rare classes:
    ``(1 - TI)^{1-γ} >= 1 - TI``. Computed as a power of ``1 - TI`` (floored at 1e-12), never as the
    authors' ``x · x^{-γ}`` (NaN at a perfect prediction). Defaults ``δ = 0.6, γ = 0.2``.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        delta: weight of false negatives in [0, 1] (``1 - δ`` on false positives), scalar or one per class.
        gamma: enhancement, in [0, 1).
        **common: see :mod:`unifocal.losses.constants`.
    """


@loss_function("symmetric_focal_tversky")
def symmetric_focal_tversky_loss(pred: Tensor, target: Tensor, delta: float | Sequence[float] = 0.6,
                                 gamma: float = 0.2, **common: Unpack[CommonKwargs]) -> Tensor:
    """Symmetric Focal Tversky loss (the authors' code): ``mean_c (1 - TI_c)^{1-γ}`` for every class.

    With ``γ = 1 - 1/γ_FT`` it equals the Focal Tversky loss with ``β = δ``, ``α = 1 - δ``.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        delta: weight of false negatives in [0, 1], scalar or one per class.
        gamma: enhancement, in [0, 1).
        **common: see :mod:`unifocal.losses.constants`.
    """


# --- modules -----------------------------------------------------------------------------------

class DiceLoss(Loss, functional=dice_loss):
    """Module form of :func:`dice_loss`."""


class TverskyLoss(Loss, functional=tversky_loss):
    """Module form of :func:`tversky_loss` (defaults α=0.3, β=0.7)."""


class FocalTverskyLoss(Loss, functional=focal_tversky_loss):
    """Module form of :func:`focal_tversky_loss` (defaults α=0.3, β=0.7, γ=4/3)."""


class AsymmetricFocalTverskyLoss(Loss, functional=asymmetric_focal_tversky_loss):
    """Module form of :func:`asymmetric_focal_tversky_loss` (Eq. 19)."""


class SymmetricFocalTverskyLoss(Loss, functional=symmetric_focal_tversky_loss):
    """Module form of :func:`symmetric_focal_tversky_loss`."""
