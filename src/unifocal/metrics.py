"""Segmentation metrics from hard predictions: DSC, precision and recall per case and class.

Conventions (stated once, used by training, evaluation and the study report):

* A hard prediction is the arg-max over classes of a ``(B, C, *spatial)`` output, or ``p > threshold``
  for a binary sigmoid output (``C == 1``).
* Per case and class ``c`` (one-vs-rest): ``TP, FP, FN`` are voxel counts; ``DSC = 2TP / (2TP + FP + FN)``,
  ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``.
* A ratio whose denominator is zero (empty ground truth and/or empty prediction) takes the value
  ``zero_division`` (default ``1.0``, as in scikit-learn's ``zero_division`` argument): an empty
  prediction of an empty structure is perfect, so it scores 1; an empty prediction of a present
  structure scores ``DSC = recall = 0`` and precision ``zero_division``; a non-empty prediction of an
  absent structure scores ``DSC = precision = 0`` and recall ``zero_division``. Pass
  ``zero_division=float("nan")`` to leave such cases out of the aggregates instead (``mean_ci`` ignores NaN).
* Aggregation: mean ± half-width of the two-sided Student-t confidence interval,
  ``t_{(1+conf)/2, n-1} · s / sqrt(n)`` with the sample standard deviation ``s`` over the chosen unit
  (cases or folds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

try:
    import torch
except ModuleNotFoundError as _exc:  # one line that says what to install
    if _exc.name != "torch":
        raise
    raise ModuleNotFoundError('unifocal.metrics needs PyTorch: pip install "unifocal[torch]"', name="torch") from None

__all__ = ["METRICS", "MeanCI", "case_metrics", "confusion_counts", "hard_prediction", "mean_ci",
           "scores_from_counts"]

#: The metric names, in the order of :func:`scores_from_counts`.
METRICS: tuple[str, ...] = ("dsc", "precision", "recall")


def hard_prediction(output: torch.Tensor, threshold: float = 0.5, input: str = "logits") -> torch.Tensor:
    """Integer label map ``(B, *spatial)`` from a network output ``(B, C, *spatial)``.

    ``C == 1`` is a binary sigmoid output: foreground where the probability exceeds ``threshold``
    (for logits, where ``logit > logit(threshold)``). Otherwise the arg-max over classes.
    """
    if output.ndim < 3:
        raise ValueError(f"output must be (B, C, *spatial) with 1-3 spatial dims, got shape {tuple(output.shape)}")
    if output.shape[1] == 1:
        if input == "logits":
            cut = math.log(threshold / (1.0 - threshold))
            return (output[:, 0] > cut).long()
        return (output[:, 0] > threshold).long()
    return output.argmax(dim=1)


def confusion_counts(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                     classes: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """``{class: (TP, FP, FN)}`` voxel counts for one case, from two integer label maps of equal shape."""
    p = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred)
    t = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} differs from target shape {tuple(t.shape)}")
    out: dict[int, tuple[int, int, int]] = {}
    for c in classes:
        pc, tc = p == c, t == c
        tp = int((pc & tc).sum())
        out[int(c)] = (tp, int(pc.sum()) - tp, int(tc.sum()) - tp)
    return out


def scores_from_counts(counts: torch.Tensor, zero_division: float = 1.0) -> torch.Tensor:
    """DSC, precision and recall ``(..., 3)`` (float64, in the order of :data:`METRICS`) from ``(TP, FP, FN)``
    counts ``(..., 3)``: the one implementation of the formulas (module docstring), used per case by
    :func:`case_metrics` and per batch by :mod:`unifocal.integrations.metrics`."""
    c = counts.to(torch.float64)
    tp, fp, fn = c.unbind(-1)
    nums = torch.stack([2 * tp, tp, tp], dim=-1)
    dens = torch.stack([2 * tp + fp + fn, tp + fp, tp + fn], dim=-1)
    out = nums / dens.clamp_min(1)
    return torch.where(dens > 0, out, torch.full_like(out, float(zero_division)))


def case_metrics(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, classes: Sequence[int],
                 zero_division: float = 1.0) -> dict[int, dict[str, float]]:
    """Per-class DSC, precision and recall of one case (see the module docstring for conventions).

    Example:
        >>> import numpy as np
        >>> m = case_metrics(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), classes=[1])
        >>> round(m[1]["dsc"], 4), m[1]["precision"], m[1]["recall"]
        (0.8, 0.6666666666666666, 1.0)
    """
    counts = confusion_counts(pred, target, classes)
    scores = scores_from_counts(torch.tensor(list(counts.values()), dtype=torch.int64).reshape(-1, 3), zero_division)
    return {c: {**dict(zip(METRICS, s)), "tp": float(tp), "fp": float(fp), "fn": float(fn)}
            for (c, (tp, fp, fn)), s in zip(counts.items(), scores.tolist())}


@dataclass(frozen=True)
class MeanCI:
    """A mean with the half-width of its confidence interval over ``n`` units."""

    mean: float
    half_width: float
    n: int
    confidence: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def format(self, digits: int = 3) -> str:
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence half-width over the finite entries of ``values`` (NaN ignored).

    With fewer than two finite values the half-width is NaN.

    Example:
        >>> r = mean_ci([0.7, 0.8, 0.9])
        >>> round(r.mean, 3), round(r.half_width, 3)
        (0.8, 0.248)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return MeanCI(float("nan"), float("nan"), 0, confidence)
    m = float(x.mean())
    if n < 2:
        return MeanCI(m, float("nan"), n, confidence)
    from scipy import stats  # pipeline extra; imported here so that the core needs torch and numpy only

    sem = float(x.std(ddof=1)) / math.sqrt(n)
    t = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1))
    return MeanCI(m, t * sem, n, confidence)
