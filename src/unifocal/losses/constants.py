"""Accepted shapes, argument vocabulary and names shared by every loss (written down once).

The conventions behind every formula are stated in ``docs/losses.md``.

Shapes
------
``pred``
    ``(B, C, *spatial)`` with 1, 2 or 3 spatial dimensions. ``input="logits"`` (default): raw network
    scores, turned into log-probabilities by ``log_softmax`` over ``C`` (``C >= 2``) or by
    ``logsigmoid`` for a single-channel binary output (``C == 1``, treated as the two classes
    ``[1 - p, p]``). ``input="probs"``: probabilities that already sum to one over ``C`` (or the
    foreground probability when ``C == 1``); for parity with the authors' Keras code they are clipped
    to ``[1e-7, 1 - 1e-7]`` wherever a logarithm is taken and inside the Focal Tversky family, and
    used unclipped in the Dice and Tversky sums, exactly as the authors' functions do.
    Computation runs in float32 (float64 inputs stay float64), autocast disabled.
``target``
    * integer labels ``(B, *spatial)`` or ``(B, 1, *spatial)`` with values in ``[0, K)`` where ``K = C``
      (``K = 2`` when ``C == 1``), or ``ignore_index``; or
    * one-hot / soft labels ``(B, C, *spatial)`` (floating point, each position summing to one over
      ``C``); for ``C == 1`` a floating ``(B, 1, *spatial)`` target is the foreground probability.
    * with ``multilabel=True``: a multi-hot target ``(B, C, *spatial)`` (bool or integer 0/1, or
      floating values in ``[0, 1]``), channels free to overlap.

    Integer targets are never expanded into a one-hot tensor the size of the input: per-class sums
    are gathered with ``scatter_add``.

Common keyword arguments (every loss)
-------------------------------------
``input``: ``"logits" | "probs"``. ``multilabel``: every channel is its own binary (sigmoid) problem,
for overlapping regions (default ``False``). ``rare_classes``: sequence of class indices treated as
rare (default: every class but ``background``). ``background``: index of the background class
(default 0). ``ignore_index``: label value whose positions take no part in any sum (default
``None``). ``include_background``: ``False`` leaves the background class (the first channel with
``multilabel=True``) out of every sum and mean over classes, as MONAI does (default ``True``).
``batch``: pool TP/FP/FN over the whole batch instead of per sample (default ``False``).
``reduction``: ``"mean" | "sum" | "none"`` over samples (``"none"`` returns ``(B,)``).
``smooth``: additive smoothing of every Tversky/Dice ratio (default ``1e-6``, the authors' value).
``validate``: run the checks that read tensor values (NaN/Inf, label range, one-hot and probability
sums; default ``True``); shape and dtype checks always run. ``complement``: with ``multilabel=True``,
average each channel's region term (Dice, Tversky) with that of its complement, the authors'
two-class convention (default ``True``); ``False`` takes the region alone, as MONAI's ``sigmoid=True``.
An unknown keyword is a ``TypeError`` (:class:`unifocal.spec.UnknownArgumentError`, also a
``ValueError``).

MONAI's spelling is accepted too, with MONAI's meaning (``docs/losses.md``, "MONAI dialect"):
``softmax=True`` (logits, one class per position), ``sigmoid=True`` (logits, ``multilabel=True``,
``complement=False``), ``softmax=False,
sigmoid=False`` (``input="probs"``), ``to_onehot_y=True`` (the target holds labels) or ``False``
(the target is one-hot / multi-hot with ``C`` channels).
"""

from __future__ import annotations

# the numbers themselves live in the framework-neutral description, shared with unifocal.keras
from unifocal.spec import (
    DEFAULT_SMOOTH,
    INPUT_KINDS,
    PAPER_LOSSES,
    POW_FLOOR,
    PROB_EPS,
    REDUCTIONS,
    SUM_TOL,
    SUM_TOL_LOW_PRECISION,
    InputKind,
    Reduction,
)

__all__ = ["DEFAULT_SMOOTH", "INPUT_KINDS", "PAPER_LOSSES", "POW_FLOOR", "PROB_EPS", "REDUCTIONS", "SUM_TOL",
           "SUM_TOL_LOW_PRECISION", "InputKind", "Reduction"]
