"""Distribution-based (cross-entropy-type) losses: CE, Focal, Asymmetric and Symmetric Focal.

Each is a function ``f(pred, target, <params>, **common)`` plus the module derived from it. All are
one distribution term of :class:`unifocal.losses._core.Terms`: per position
``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``, averaged over the (valid) positions of a sample, then
reduced over the batch. Conventions: ``docs/losses.md``.
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

@loss_function("cross_entropy")
def cross_entropy_loss(pred: Tensor, target: Tensor, weight: Sequence[float] | None = None,
                       **common: Unpack[CommonKwargs]) -> Tensor:
    """Categorical cross entropy ``-Σ_c w_c g_c log p_c``, mean over positions.

    The paper's distribution-based baseline (Section 2). With class weights this is the plain mean of
    the weighted terms (not divided by the summed weights as ``torch.nn.functional.cross_entropy``
    does); without weights the two agree. With ``multilabel=True``: binary cross entropy per channel
    (per-class ``weight`` does not apply there), averaged over channels.

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


@loss_function("focal")
def focal_loss(pred: Tensor, target: Tensor, alpha: Weights = 0.25, gamma: float = 2.0,
               **common: Unpack[CommonKwargs]) -> Tensor:
    """Focal loss (Lin et al.; the paper's Eq. 6/7): ``-Σ_c α_c (1 - p_c)^γ g_c log p_c``.

    Defaults ``α = 0.25, γ = 2`` are the paper's settings (after Lin et al.). A scalar ``α`` weights
    the rare classes by ``α`` and the background (and other classes) by ``1 - α``; a sequence gives
    one weight per class; ``None`` weights every class by 1. ``γ = 0`` gives (weighted) cross entropy.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        alpha: scalar in [0, 1], one non-negative weight per class, or ``None``.
        gamma: focusing exponent, ``>= 0``.
        **common: see :mod:`unifocal.losses.constants`.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3, 8, 8); y = torch.randint(0, 3, (2, 8, 8))
        >>> bool(torch.isclose(focal_loss(x, y, alpha=None, gamma=0.0), cross_entropy_loss(x, y)))
        True
    """


@loss_function("asymmetric_focal")
def asymmetric_focal_loss(pred: Tensor, target: Tensor, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                          **common: Unpack[CommonKwargs]) -> Tensor:
    """Asymmetric Focal loss (Eq. 17): the focal modulation suppresses the background only.

    Per position: background ``(1-δ)(1 - p_bg)^γ (-log p_bg) g_bg``; each rare class
    ``δ (-log p_r) g_r`` (no modulation, so rare-class gradients are kept); other classes (neither
    background nor rare) ``(1-δ)(-log p_c) g_c``. Mean over positions. Defaults ``δ = 0.6, γ = 0.2``:
    the paper's tuned optimum of the Unified Focal loss (the authors' code defaults to 0.7 and 2).

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        delta: weight of the rare classes in [0, 1] (``1 - δ`` for the others), scalar or one per class.
        gamma: background suppression exponent, ``>= 0``.
        **common: see :mod:`unifocal.losses.constants`.
    """


@loss_function("symmetric_focal")
def symmetric_focal_loss(pred: Tensor, target: Tensor, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                         **common: Unpack[CommonKwargs]) -> Tensor:
    """Symmetric Focal loss (the authors' code; not printed in the paper): every class modulated.

    Per position ``w_c (1 - p_c)^γ (-log p_c) g_c`` with ``w = δ`` for rare classes and ``1-δ`` for the
    others. With two classes this is the Focal loss with ``α = δ``.

    Args:
        pred: ``(B, C, *spatial)`` logits (or probabilities with ``input="probs"``).
        target: labels or one-hot / multi-hot, see :mod:`unifocal.losses.constants`.
        delta: weight of the rare classes in [0, 1], scalar or one per class.
        gamma: focusing exponent, ``>= 0``.
        **common: see :mod:`unifocal.losses.constants`.
    """


# --- modules -----------------------------------------------------------------------------------

class CrossEntropyLoss(Loss, functional=cross_entropy_loss):
    """Module form of :func:`cross_entropy_loss`."""


class FocalLoss(Loss, functional=focal_loss):
    """Module form of :func:`focal_loss` (defaults α=0.25, γ=2: the paper's settings)."""


class AsymmetricFocalLoss(Loss, functional=asymmetric_focal_loss):
    """Module form of :func:`asymmetric_focal_loss` (Eq. 17)."""


class SymmetricFocalLoss(Loss, functional=symmetric_focal_loss):
    """Module form of :func:`symmetric_focal_loss`."""
