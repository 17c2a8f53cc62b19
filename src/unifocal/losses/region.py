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
from unifocal.losses._core import (
    Prepared,
    Terms,
    Tversky,
    check_range,
    check_unit,
    region_terms,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from unifocal.losses._core import CommonKwargs


# --- parameter checks -------------------------------------------------------------------------

def check_dice() -> None:
    """The Dice loss has no parameters of its own."""


def check_tversky(alpha: float, beta: float, prefix: str = "") -> None:
    """``prefix`` names the parameters as a compound loss spells them (``tversky_alpha``)."""
    check_range(f"{prefix}alpha", alpha, 0.0)
    check_range(f"{prefix}beta", beta, 0.0)
    if float(alpha) + float(beta) <= 0:
        raise ValueError(f"{prefix}alpha + {prefix}beta must be positive, got {prefix}alpha={alpha!r}, "
                         f"{prefix}beta={beta!r}")


def check_focal_tversky(alpha: float, beta: float, gamma: float, prefix: str = "") -> None:
    check_tversky(alpha, beta, prefix)
    check_range(f"{prefix}gamma", gamma, 0.0, low_open=True, hint=" (the exponent is 1/gamma)")


def check_delta_enhancement(delta: float | Sequence[float], gamma: float) -> None:
    check_unit("delta", delta)
    check_range("gamma", gamma, 0.0, 1.0, hint=" (the enhancement exponent 1-gamma must be positive)")


# --- descriptions ------------------------------------------------------------------------------

def tversky_terms(prep: Prepared, fp_weight: float | Sequence[float], fn_weight: float | Sequence[float],
                  exponent: Sequence[float], clip: bool) -> Terms:
    """The shared path: ``(1 - TI_c)^{e_c}`` with ``TI = (TP+s) / (TP + w_FN·FN + w_FP·FP + s)``."""
    wfp = float(fp_weight) if isinstance(fp_weight, float | int) else tuple(float(w) for w in fp_weight)
    wfn = float(fn_weight) if isinstance(fn_weight, float | int) else tuple(float(w) for w in fn_weight)
    term = Tversky(wfp, wfn, tuple(float(e) for e in exponent), float(prep.common["smooth"]))
    return region_terms(term, clip=clip)


def delta_tversky_terms(prep: Prepared, delta: float | Sequence[float], exponent: Sequence[float]) -> Terms:
    """``TI_c`` with ``δ_c`` on false negatives and ``1 - δ_c`` on false positives (``docs/losses.md``, convention 1)."""
    d = prep.class_vector("delta", delta)
    return tversky_terms(prep, [1.0 - v for v in d], list(d), exponent, clip=True)


def dice_terms(prep: Prepared) -> Terms:
    return tversky_terms(prep, 0.5, 0.5, prep.class_vector("exponent", 1.0), clip=False)


def tversky_loss_terms(prep: Prepared, alpha: float, beta: float) -> Terms:
    return tversky_terms(prep, float(alpha), float(beta), prep.class_vector("exponent", 1.0), clip=False)


def focal_tversky_terms(prep: Prepared, alpha: float, beta: float, gamma: float) -> Terms:
    return tversky_terms(prep, float(alpha), float(beta), prep.class_vector("exponent", 1.0 / gamma), clip=True)


def asymmetric_focal_tversky_terms(prep: Prepared, delta: float | Sequence[float], gamma: float) -> Terms:
    return delta_tversky_terms(prep, delta, prep.by_role(background=1.0, rare=1.0 - gamma, other=1.0))


def symmetric_focal_tversky_terms(prep: Prepared, delta: float | Sequence[float], gamma: float) -> Terms:
    return delta_tversky_terms(prep, delta, prep.class_vector("exponent", 1.0 - gamma))


# --- functions -----------------------------------------------------------------------------------

@loss_function(check=check_focal_tversky, terms=focal_tversky_terms)
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


@loss_function(check=check_tversky, terms=tversky_loss_terms)
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


@loss_function(check=check_dice, terms=dice_terms)
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


@loss_function(check=check_delta_enhancement, terms=asymmetric_focal_tversky_terms)
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


@loss_function(check=check_delta_enhancement, terms=symmetric_focal_tversky_terms)
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
