"""Region-based (Dice-type) losses: Dice, Tversky, Focal Tversky, Asymmetric / Symmetric Focal Tversky.

They share one path (as smp's ``TverskyLoss`` subclasses ``DiceLoss``): the Tversky index of every
class from the shared TP/FP/FN, then ``mean_c (1 - TI_c)^{e_c}``
(:func:`unifocal.losses._core.focal_tversky_term`). Dice is Tversky with ``α = β = ½``; Tversky is Focal
Tversky with exponent 1. The mean runs over all classes, background included (the authors' code and
experiments); per sample unless ``batch=True`` pools TP/FP/FN over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from torch import Tensor

from unifocal.losses._base import DeltaGammaLoss, Loss, loss_function
from unifocal.losses._core import (
    CommonKwargs,
    Prepared,
    Terms,
    check_range,
    check_unit,
    focal_tversky_term,
    region_terms,
    tversky_index,
)


def check_tversky(alpha: float = 0.3, beta: float = 0.7) -> None:
    check_range("alpha", alpha, 0.0)
    check_range("beta", beta, 0.0)
    if float(alpha) + float(beta) <= 0:
        raise ValueError(f"alpha + beta must be positive, got alpha={alpha!r}, beta={beta!r}")


def check_focal_tversky(alpha: float = 0.3, beta: float = 0.7, gamma: float = 4 / 3) -> None:
    check_tversky(alpha, beta)
    check_range("gamma", gamma, 0.0, low_open=True, hint=" (the exponent is 1/gamma)")


def check_asymmetric_focal_tversky(delta: float | Sequence[float] = 0.6, gamma: float = 0.2) -> None:
    check_unit("delta", delta)
    check_range("gamma", gamma, 0.0, 1.0, hint=" (the enhancement exponent 1-gamma must be positive)")


def tversky_terms(prep: Prepared, fp_weight: float | Tensor, fn_weight: float | Tensor, exponent: Tensor,
                  clip: bool) -> Terms:
    """The shared path: ``mean_c (1 - TI_c)^{e_c}`` with ``TI = (TP+s) / (TP + w_FN·FN + w_FP·FP + s)``."""
    s = prep.common["smooth"]

    def term(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
        return focal_tversky_term(tversky_index(tp, fp, fn, fp_weight, fn_weight, s), exponent)

    return region_terms(term, clip=clip)


def delta_tversky_terms(prep: Prepared, delta: float | Sequence[float], exponent: Tensor) -> Terms:
    """``TI_c`` with ``δ_c`` on false negatives and ``1 - δ_c`` on false positives (Eq. 18, spec conv. 1)."""
    d = prep.class_vector("delta", delta)
    return tversky_terms(prep, 1.0 - d, d, exponent, clip=True)


def _tversky_core(prep: Prepared, alpha: float, beta: float, exponent: float, clip: bool) -> Terms:
    return tversky_terms(prep, alpha, beta, prep.class_vector("exponent", exponent), clip)


@loss_function
def focal_tversky_loss(prep: Prepared, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4 / 3) -> Terms:
    """Focal Tversky loss (Eq. 12): ``mean_c (1 - TI_c)^{1/γ}``, ``TI = TP / (TP + α·FP + β·FN)``.

    Defaults ``α = 0.3, β = 0.7, γ = 4/3`` (exponent 0.75) are the paper's settings (after Abraham
    and Khan). ``γ = 1`` gives the Tversky loss.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 2, 16, 16); y = torch.randint(0, 2, (2, 16, 16))
        >>> bool(torch.isclose(focal_tversky_loss(x, y, gamma=1.0), tversky_loss(x, y)))
        True
    """
    return _tversky_core(prep, alpha, beta, 1.0 / gamma, clip=True)


@loss_function
def tversky_loss(prep: Prepared, alpha: float = 0.3, beta: float = 0.7) -> Terms:
    """Tversky loss: ``mean_c (1 - TI_c)``, ``α`` on false positives, ``β`` on false negatives.

    Defaults ``α = 0.3, β = 0.7`` (the paper's settings, after Salehi et al.).
    """
    return _tversky_core(prep, alpha, beta, 1.0, clip=False)


@loss_function
def dice_loss(prep: Prepared) -> Terms:
    """Dice loss: ``mean_c (1 - DSC_c)`` with the soft ``DSC = 2TP / (2TP + FP + FN)`` (spec conv. 10).

    Example:
        >>> import torch
        >>> y = torch.randint(0, 2, (1, 8, 8))
        >>> perfect = torch.nn.functional.one_hot(y, 2).permute(0, 3, 1, 2).float()
        >>> float(dice_loss(perfect, y, input="probs")) < 1e-5
        True
    """
    return _tversky_core(prep, 0.5, 0.5, 1.0, clip=False)


@loss_function
def asymmetric_focal_tversky_loss(prep: Prepared, delta: float | Sequence[float] = 0.6,
                                  gamma: float = 0.2) -> Terms:
    """Asymmetric Focal Tversky loss (Eq. 19): background ``1 - TI_bg``, rare ``(1 - TI_r)^{1-γ}``.

    Mean over classes (the authors' code and experiments; Eq. 19 prints a sum), then over the batch.
    Classes neither background nor rare get ``1 - TI``. ``γ`` in [0, 1) *enhances* rare classes:
    ``(1 - TI)^{1-γ} >= 1 - TI``. Computed as a power of ``1 - TI`` (floored at 1e-12), never as the
    authors' ``x · x^{-γ}`` (NaN at a perfect prediction). Defaults ``δ = 0.6, γ = 0.2``.
    """
    e = prep.by_role(background=1.0, rare=1.0 - gamma, other=1.0)
    return delta_tversky_terms(prep, delta, e)


@loss_function
def symmetric_focal_tversky_loss(prep: Prepared, delta: float | Sequence[float] = 0.6,
                                 gamma: float = 0.2) -> Terms:
    """Symmetric Focal Tversky loss (the authors' code): ``mean_c (1 - TI_c)^{1-γ}`` for every class.

    With ``γ = 1 - 1/γ_FT`` it equals the Focal Tversky loss with ``β = δ``, ``α = 1 - δ``.
    """
    return delta_tversky_terms(prep, delta, prep.class_vector("exponent", 1.0 - gamma))


class DiceLoss(Loss):
    """Module form of :func:`dice_loss`."""

    functional = staticmethod(dice_loss)
    check = staticmethod(lambda: None)
    name = "dice"

    def __init__(self, **common: Unpack[CommonKwargs]) -> None:
        super().__init__({}, common)


class TverskyLoss(DiceLoss):
    """Module form of :func:`tversky_loss` (defaults α=0.3, β=0.7)."""

    functional = staticmethod(tversky_loss)
    check = staticmethod(check_tversky)
    name = "tversky"

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, **common: Unpack[CommonKwargs]) -> None:
        Loss.__init__(self, {"alpha": alpha, "beta": beta}, common)


class FocalTverskyLoss(TverskyLoss):
    """Module form of :func:`focal_tversky_loss` (defaults α=0.3, β=0.7, γ=4/3)."""

    functional = staticmethod(focal_tversky_loss)
    check = staticmethod(check_focal_tversky)
    name = "focal_tversky"

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4 / 3,
                 **common: Unpack[CommonKwargs]) -> None:
        Loss.__init__(self, {"alpha": alpha, "beta": beta, "gamma": gamma}, common)


class AsymmetricFocalTverskyLoss(DeltaGammaLoss):
    """Module form of :func:`asymmetric_focal_tversky_loss` (Eq. 19)."""

    functional = staticmethod(asymmetric_focal_tversky_loss)
    check = staticmethod(check_asymmetric_focal_tversky)
    name = "asymmetric_focal_tversky"



class SymmetricFocalTverskyLoss(AsymmetricFocalTverskyLoss):
    """Module form of :func:`symmetric_focal_tversky_loss`."""

    functional = staticmethod(symmetric_focal_tversky_loss)
    name = "symmetric_focal_tversky"
