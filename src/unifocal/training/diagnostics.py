"""Training diagnostics (``diagnostics: true``): why a run does or does not learn.

Per epoch, written to ``<run_dir>/diagnostics.csv`` (rewritten atomically after every epoch from the
history held in ``checkpoints/last.pt``, as ``log.csv`` is, so a resumed run continues it):

* ``grad/<block>``: the L2 norm of the gradient of each block of the network (parameters grouped by
  their first name component, and by index for a ``ModuleList``: ``down.0``, ``dec.3``, ``head``),
  averaged over the epoch's batches, taken after ``backward`` and before the optimiser step (unscaled
  when a gradient scaler is active);
* ``update_ratio``: the mean over batches of ``||Δθ|| / ||θ||`` of the whole network (how far one
  step moves the weights);
* ``val_fg_pred``: the share of validation pixels / voxels predicted as foreground (argmax != 0),
  beside ``val_fg_true``, the share that is foreground in the labels; ``val_fg_prob``: the mean
  predicted probability of the foreground classes. A network collapsed onto the background has
  ``val_fg_pred`` at 0 while ``val_fg_true`` is not.

These are the measurements behind the SGD-recipe finding of ``docs/results.md``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from torch import nn

__all__ = ["Diagnostics", "block_of"]


def block_of(param_name: str) -> str:
    """The block a parameter belongs to: ``down.0.conv.weight`` -> ``down.0``, ``head.bias`` -> ``head``."""
    parts = param_name.split(".")
    if len(parts) > 2 and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


class Diagnostics:
    """Accumulates the per-epoch measurements of the module docstring."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.blocks = list(dict.fromkeys(block_of(n) for n, p in model.named_parameters() if p.requires_grad))
        self.reset()

    def reset(self) -> None:
        self._grad: dict[str, float] = defaultdict(float)
        self._batches = 0
        self._ratio = 0.0
        self._before: list[torch.Tensor] | None = None
        self._fg_pred = self._fg_true = self._fg_prob = 0.0
        self._cases = 0

    @torch.no_grad()
    def after_backward(self) -> None:
        """Record the gradient norms of this batch (call after ``backward``, before ``step``)."""
        sq: dict[str, float] = defaultdict(float)
        for n, p in self.model.named_parameters():
            if p.grad is not None:
                sq[block_of(n)] += float(p.grad.detach().float().pow(2).sum())
        for b in self.blocks:
            self._grad[b] += math.sqrt(sq.get(b, 0.0))
        self._before = [p.detach().clone() for p in self.model.parameters() if p.requires_grad]
        self._batches += 1

    @torch.no_grad()
    def after_step(self) -> None:
        """Record how far the optimiser step moved the weights (call after ``step``)."""
        if self._before is None:
            return
        params = [p.detach() for p in self.model.parameters() if p.requires_grad]
        num = math.sqrt(sum(float((p - q).float().pow(2).sum()) for p, q in zip(params, self._before)))
        den = math.sqrt(sum(float(q.float().pow(2).sum()) for q in self._before))
        self._ratio += num / den if den > 0 else 0.0
        self._before = None

    @torch.no_grad()
    def on_validation_case(self, logits: torch.Tensor, label: torch.Tensor) -> None:
        """Record the class balance of one validation prediction (logits ``(1, C, *s)``, label ``(*s)``)."""
        lg = logits.detach().float()
        if lg.shape[1] == 1:
            prob_fg = torch.sigmoid(lg[:, 0])
            pred_fg = prob_fg > 0.5
        else:
            prob = torch.softmax(lg, dim=1)
            prob_fg = 1.0 - prob[:, 0]
            pred_fg = lg.argmax(dim=1) != 0
        self._fg_pred += float(pred_fg.float().mean())
        self._fg_prob += float(prob_fg.mean())
        self._fg_true += float((label != 0).float().mean())
        self._cases += 1

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's row (``epoch``, ``grad/<block>``..., ``update_ratio``, ``val_fg_*``), then reset."""
        nb, nc = max(self._batches, 1), max(self._cases, 1)
        row: dict[str, Any] = {"epoch": epoch}
        row.update({f"grad/{b}": self._grad.get(b, 0.0) / nb for b in self.blocks})
        row["update_ratio"] = self._ratio / nb
        row["val_fg_pred"] = self._fg_pred / nc
        row["val_fg_true"] = self._fg_true / nc
        row["val_fg_prob"] = self._fg_prob / nc
        self.reset()
        return row

    def fields(self) -> list[str]:
        """The CSV columns, in order."""
        return ["epoch", *[f"grad/{b}" for b in self.blocks], "update_ratio", "val_fg_pred", "val_fg_true",
                "val_fg_prob"]
