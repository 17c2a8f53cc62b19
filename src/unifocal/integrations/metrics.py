"""DSC, precision and recall accumulated batch by batch (update / compute / reset).

The values are those of :func:`unifocal.metrics.case_metrics` — per case and class, one-vs-rest,
``zero_division`` for an empty denominator — averaged over every case seen since the last
:meth:`CaseMetrics.reset`, which is how the study reports them. Needs torch only.

Example:
    >>> import torch
    >>> from unifocal.integrations.metrics import CaseMetrics
    >>> m = CaseMetrics(classes=[1])
    >>> m.update(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 1]]]))
    >>> {k: round(v, 4) for k, v in m.compute().items()}
    {'dsc_1': 0.8, 'precision_1': 0.6667, 'recall_1': 1.0, 'dsc': 0.8, 'precision': 0.6667, 'recall': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from unifocal.metrics import METRICS, hard_prediction, scores_from_counts

# METRICS and scores_from_counts (the one implementation of the formulas) are unifocal.metrics', re-exported
__all__ = ["METRICS", "CaseMetrics", "batch_confusion", "scores_from_counts"]


def _check_classes(classes: Sequence[int]) -> tuple[int, ...]:
    cls = tuple(int(c) for c in classes)
    if not cls or len(set(cls)) != len(cls) or any(c < 0 for c in cls):
        raise ValueError(f"classes must be a non-empty sequence of distinct non-negative labels, got {list(classes)!r}")
    return cls


def _label_map(output: Tensor, target: Tensor, threshold: float, input: str) -> Tensor:
    """Integer label map ``(B, *spatial)``: a network output ``(B, C, *spatial)`` is made hard first."""
    if output.is_floating_point():
        if output.ndim != target.ndim + 1:
            raise ValueError(f"a floating output must be (B, C, *spatial) for a target (B, *spatial); got output "
                             f"{tuple(output.shape)} and target {tuple(target.shape)}: pass integer targets "
                             f"(not one-hot) or an integer prediction")
        return hard_prediction(output, threshold=threshold, input=input)
    return output


def batch_confusion(pred: Tensor, target: Tensor, classes: Sequence[int], *, threshold: float = 0.5,
                    input: str = "logits") -> Tensor:
    """Per-case ``(TP, FP, FN)`` voxel counts, shape ``(B, K, 3)`` (int64), ``K = len(classes)``.

    Args:
        pred: An integer label map ``(B, *spatial)`` or a network output ``(B, C, *spatial)`` (made
            hard as in :func:`unifocal.metrics.hard_prediction`).
        target: Integer labels ``(B, *spatial)`` or ``(B, 1, *spatial)``.
        classes: The labels to score (one-vs-rest).
        threshold: Probability cut of a single-channel (sigmoid) output.
        input: ``"logits"`` or ``"probs"``, for a single-channel output.

    Raises:
        ValueError: On a floating (one-hot) target or mismatched shapes.
    """
    cls = _check_classes(classes)
    if target.is_floating_point():
        raise ValueError(f"target must hold integer labels, got dtype {target.dtype}: use target.argmax(1) for one-hot")
    if pred.ndim == target.ndim and target.ndim >= 3 and target.shape[1] == 1 and pred.is_floating_point():
        target = target[:, 0]
    pred = _label_map(pred, target, threshold, input)
    if target.ndim == pred.ndim + 1 and target.shape[1] == 1:
        target = target[:, 0]
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    b = pred.shape[0]
    p = pred.reshape(b, 1, -1)
    t = target.reshape(b, 1, -1).to(p.device)
    c = torch.tensor(cls, device=p.device, dtype=p.dtype).view(1, -1, 1)
    pc, tc = p == c, t == c.to(t.dtype)
    tp = (pc & tc).sum(-1)
    fp = pc.sum(-1) - tp
    fn = tc.sum(-1) - tp
    return torch.stack([tp, fp, fn], dim=-1).long()


def summarise(counts: Tensor, classes: Sequence[int], zero_division: float) -> dict[str, Tensor]:
    """Mean over cases (NaN ignored) per class and metric, plus the mean over classes of each metric."""
    cls = _check_classes(classes)
    if counts.numel() == 0:
        raise ValueError("compute() called before any update(): no case was seen since the last reset()")
    per_case = scores_from_counts(counts.reshape(-1, len(cls), 3), zero_division)
    per_class = per_case.nanmean(dim=0)  # (K, 3)
    out: dict[str, Tensor] = {}
    for j, name in enumerate(METRICS):
        for k, c in enumerate(cls):
            out[f"{name}_{c}"] = per_class[k, j]
    for j, name in enumerate(METRICS):
        out[name] = per_class[:, j].nanmean()
    return out


class CaseMetrics:
    """Accumulate per-case DSC / precision / recall over batches; :meth:`compute` averages over cases.

    Args:
        classes: The labels to score (e.g. ``[1]`` for binary, ``[1, 2]`` for two structures).
        zero_division: The value of a ratio with an empty denominator (see :mod:`unifocal.metrics`).
        threshold: Probability cut of a single-channel (sigmoid) output.
        input: ``"logits"`` or ``"probs"`` (single-channel outputs only).
    """

    def __init__(self, classes: Sequence[int], zero_division: float = 1.0, threshold: float = 0.5,
                 input: str = "logits") -> None:
        self.classes = _check_classes(classes)
        if input not in ("logits", "probs"):
            raise ValueError(f"input must be 'logits' or 'probs', got {input!r}")
        self.zero_division = float(zero_division)
        self.threshold = float(threshold)
        self.input = input
        self._counts: list[Tensor] = []

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` a network output ``(B, C, *spatial)`` or label map, ``target`` labels."""
        with torch.no_grad():
            self._counts.append(batch_confusion(pred.detach(), target, self.classes, threshold=self.threshold,
                                                input=self.input).cpu())

    def compute(self) -> dict[str, float]:
        """``{"dsc_<c>", "precision_<c>", "recall_<c>"}`` per class and their means over classes."""
        counts = torch.cat(self._counts) if self._counts else torch.zeros(0, len(self.classes), 3)
        return {k: float(v) for k, v in summarise(counts, self.classes, self.zero_division).items()}

    def reset(self) -> None:
        """Forget every case seen so far."""
        self._counts = []

    @property
    def n_cases(self) -> int:
        """The number of cases seen since the last reset."""
        return sum(int(c.shape[0]) for c in self._counts)
