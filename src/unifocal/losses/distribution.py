"""Distribution-based (cross-entropy-type) losses: CE, Focal, Asymmetric and Symmetric Focal.

Each is a pure function ``f(pred, target, <params>, **common)`` plus a thin module. All are one
distribution term of :class:`unifocal.losses._core.Terms`: per position ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``,
averaged over the (valid) positions of a sample, then reduced over the batch.
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
    check_weights,
    distribution_terms,
)

Weights = float | Sequence[float] | None


# --- parameter checks -------------------------------------------------------------------------

def check_cross_entropy(weight: Sequence[float] | None = None) -> None:
    if weight is not None:
        check_weights("weight", weight)


def check_focal(alpha: Weights = 0.25, gamma: float = 2.0) -> None:
    if isinstance(alpha, int | float):
        check_unit("alpha", alpha)
    elif alpha is not None:
        check_weights("alpha", alpha)
    check_range("gamma", gamma, 0.0)


def check_asymmetric_focal(delta: float | Sequence[float] = 0.6, gamma: float = 0.2) -> None:
    check_unit("delta", delta)
    check_range("gamma", gamma, 0.0)


# --- per-class vectors -------------------------------------------------------------------------

def focal_alpha(prep: Prepared, alpha: Weights) -> Tensor | None:
    """Class weights of the Focal loss: a scalar α weights the rare classes, 1-α the others (Lin et al.)."""
    if alpha is None:
        return None
    if isinstance(alpha, int | float):
        return prep.by_role(background=1.0 - alpha, rare=alpha, other=1.0 - alpha)
    return prep.class_vector("alpha", alpha)


def delta_weights(prep: Prepared, delta: float | Sequence[float]) -> Tensor:
    """Class weights ``δ_r`` for rare classes and ``1 - δ_c`` for the background and other classes."""
    d = prep.class_vector("delta", delta)
    w = 1.0 - d
    _, rare = prep.roles()
    if rare:
        w[list(rare)] = d[list(rare)]
    return w


# --- pure functions ----------------------------------------------------------------------------

@loss_function
def cross_entropy_loss(prep: Prepared, weight: Sequence[float] | None = None) -> Terms:
    """Categorical cross entropy ``-Σ_c w_c g_c log p_c``, mean over positions.

    The paper's distribution-based baseline (Section 2). With class weights this is the plain mean of
    the weighted terms (not divided by the summed weights as ``torch.nn.functional.cross_entropy``
    does); without weights the two agree.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels ``(B, *spatial)`` / ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        weight: optional per-class weights ``(C,)``.
        **common: see :mod:`unifocal.losses.constants`.

    Example:
        >>> import torch
        >>> x, y = torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
        >>> round(float(cross_entropy_loss(x, y)), 4)
        0.6931
    """
    return distribution_terms(None if weight is None else prep.class_vector("weight", weight), None)


@loss_function
def focal_loss(prep: Prepared, alpha: Weights = 0.25, gamma: float = 2.0) -> Terms:
    """Focal loss (Lin et al.; the paper's Eq. 6/7): ``-Σ_c α_c (1 - p_c)^γ g_c log p_c``.

    Defaults ``α = 0.25, γ = 2`` are the paper's settings (after Lin et al.). A scalar ``α`` weights
    the rare classes by ``α`` and the background (and other classes) by ``1 - α``; a sequence gives
    one weight per class; ``None`` weights every class by 1. ``γ = 0`` gives (weighted) cross entropy.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3, 8, 8); y = torch.randint(0, 3, (2, 8, 8))
        >>> bool(torch.isclose(focal_loss(x, y, alpha=None, gamma=0.0), cross_entropy_loss(x, y)))
        True
    """
    return distribution_terms(focal_alpha(prep, alpha), prep.class_vector("gamma", gamma))


@loss_function
def asymmetric_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2) -> Terms:
    """Asymmetric Focal loss (Eq. 17): the focal modulation suppresses the background only.

    Per position: background ``(1-δ)(1 - p_bg)^γ (-log p_bg) g_bg``; each rare class
    ``δ (-log p_r) g_r`` (no modulation, so rare-class gradients are kept); other classes (neither
    background nor rare) ``(1-δ)(-log p_c) g_c``. Mean over positions. Defaults ``δ = 0.6, γ = 0.2``:
    the paper's tuned optimum of the Unified Focal loss (the authors' code defaults to 0.7 and 2).
    ``δ`` may be a per-class sequence.
    """
    g = prep.by_role(background=gamma, rare=0.0, other=0.0)
    return distribution_terms(delta_weights(prep, delta), g)


@loss_function
def symmetric_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2) -> Terms:
    """Symmetric Focal loss (the authors' code; not printed in the paper): every class modulated.

    Per position ``w_c (1 - p_c)^γ (-log p_c) g_c`` with ``w = δ`` for rare classes and ``1-δ`` for the
    others. With two classes this is the Focal loss with ``α = δ``.
    """
    return distribution_terms(delta_weights(prep, delta), prep.class_vector("gamma", gamma))


# --- modules -----------------------------------------------------------------------------------

class CrossEntropyLoss(Loss):
    """Module form of :func:`cross_entropy_loss`."""

    functional = staticmethod(cross_entropy_loss)
    check = staticmethod(check_cross_entropy)
    name = "cross_entropy"

    def __init__(self, weight: Sequence[float] | None = None, **common: Unpack[CommonKwargs]) -> None:
        super().__init__({"weight": None if weight is None else list(weight)}, common)


class FocalLoss(Loss):
    """Module form of :func:`focal_loss` (defaults α=0.25, γ=2: the paper's settings)."""

    functional = staticmethod(focal_loss)
    check = staticmethod(check_focal)
    name = "focal"

    def __init__(self, alpha: Weights = 0.25, gamma: float = 2.0, **common: Unpack[CommonKwargs]) -> None:
        super().__init__({"alpha": alpha, "gamma": gamma}, common)


class AsymmetricFocalLoss(DeltaGammaLoss):
    """Module form of :func:`asymmetric_focal_loss` (Eq. 17)."""

    functional = staticmethod(asymmetric_focal_loss)
    check = staticmethod(check_asymmetric_focal)
    name = "asymmetric_focal"



class SymmetricFocalLoss(AsymmetricFocalLoss):
    """Module form of :func:`symmetric_focal_loss`."""

    functional = staticmethod(symmetric_focal_loss)
    name = "symmetric_focal"
