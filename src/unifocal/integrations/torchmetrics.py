"""DSC / precision / recall as a ``torchmetrics.Metric``: accumulates per-case counts, DDP-safe.

Needs the ``torchmetrics`` extra (``pip install "unifocal[torchmetrics]"``). The per-case
``(TP, FP, FN)`` counts are a list state reduced by concatenation across processes, so the value
after a distributed sync is the mean over every case of every process, equal to
:class:`unifocal.integrations.metrics.CaseMetrics` on the whole data (and to
:func:`unifocal.metrics.case_metrics` averaged over cases).

Example (Lightning)::

    self.val_metrics = SegmentationMetrics(classes=[1])
    ...
    self.val_metrics.update(logits, labels)           # in validation_step
    self.log_dict(self.val_metrics.compute())         # in on_validation_epoch_end
    self.val_metrics.reset()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

try:
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        'unifocal.integrations.torchmetrics needs torchmetrics: pip install "unifocal[torchmetrics]"',
        name=exc.name) from exc

from unifocal.integrations.metrics import _check_classes, batch_confusion, summarise

__all__ = ["SegmentationMetrics"]


class SegmentationMetrics(Metric):
    """Per-case DSC, precision and recall averaged over cases, for each class in ``classes``.

    Args:
        classes: The labels to score, e.g. ``[1]`` for binary segmentation.
        zero_division: The value of a ratio with an empty denominator (see :mod:`unifocal.metrics`).
        threshold: Probability cut of a single-channel (sigmoid) output.
        input: ``"logits"`` or ``"probs"`` (single-channel outputs only).
        **kwargs: Passed to ``torchmetrics.Metric`` (``sync_on_compute``, ``dist_sync_fn``, …).

    ``compute()`` returns ``{"dsc_<c>", "precision_<c>", "recall_<c>", "dsc", "precision", "recall"}``
    (scalar float64 tensors; the last three are means over classes).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, classes: Sequence[int], zero_division: float = 1.0, threshold: float = 0.5,
                 input: str = "logits", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classes = _check_classes(classes)
        if input not in ("logits", "probs"):
            raise ValueError(f"input must be 'logits' or 'probs', got {input!r}")
        self.zero_division = float(zero_division)
        self.threshold = float(threshold)
        self.input = input
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` a network output ``(B, C, *spatial)`` or label map, ``target`` labels."""
        self.counts.append(batch_confusion(pred.detach(), target, self.classes, threshold=self.threshold,
                                           input=self.input))

    def compute(self) -> dict[str, Tensor]:
        counts = dim_zero_cat(self.counts) if len(self.counts) else torch.zeros(0, len(self.classes), 3)
        return summarise(counts, self.classes, self.zero_division)
