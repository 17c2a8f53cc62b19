"""The paper's training schemes: optimiser and learning-rate schedule.

* ``sgd`` (scheme 1, loss tuning and comparison): SGD with Nesterov momentum 0.99, initial learning
  rate 0.01, polynomial decay ``lr = lr0 * (1 - epoch / epochs) ** 0.9`` applied per epoch (epoch
  counted from 0, so the first epoch runs at ``lr0``), 100 epochs by default.
* ``adam`` (scheme 2): Adam, initial learning rate 3e-4 decaying to a minimum of 1e-6. The paper
  gives only the two end points; **our schedule**: cosine annealing per epoch from 3e-4 at epoch 0 to
  1e-6 at the last epoch (``CosineAnnealingLR(T_max=epochs-1, eta_min=1e-6)``), deterministic and so
  exactly resumable. ``adam_schedule: plateau`` selects instead ``ReduceLROnPlateau`` on the
  validation loss (factor 0.1, patience 10 epochs or ``lr_patience``, ``min_lr=1e-6``): the schedule
  to use with early stopping (``patience``), when the length of the run is not known in advance.
  Batches are reshuffled every epoch (true in every scheme here: the training loader is re-seeded with ``seed + epoch``).
* ``sota`` (scheme 3, the state-of-the-art run): scheme 1 for 1000 epochs with deep supervision.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SCHEME_DEFAULTS", "make_optimizer", "make_scheduler", "poly_lr"]

SCHEME_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.99},
    "adam": {"optimizer": "adam", "lr": 3e-4, "min_lr": 1e-6},
    "sota": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.99},
}  # the schemes' epochs and deep supervision are defaults of the configuration (training.config.resolve_config)


def poly_lr(lr0: float, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """Polynomial decay ``lr0 * (1 - epoch / epochs) ** exponent``."""
    return lr0 * (1.0 - epoch / epochs) ** exponent


def make_optimizer(scheme: str, params: Any, lr: float | None = None,
                   momentum: float | None = None) -> torch.optim.Optimizer:
    """The scheme's optimiser over ``params`` (``lr`` overrides the scheme's initial rate, ``momentum``
    the SGD schemes' Nesterov momentum 0.99; Nesterov needs ``momentum > 0``, so 0 gives plain SGD)."""
    d = SCHEME_DEFAULTS[scheme]
    lr = d["lr"] if lr is None else lr
    if d["optimizer"] == "sgd":
        m = d["momentum"] if momentum is None else float(momentum)
        return torch.optim.SGD(params, lr=lr, momentum=m, nesterov=m > 0)
    if momentum is not None:
        raise ValueError(f"momentum={momentum} applies only to the SGD schemes (sgd, sota), not {scheme!r}")
    return torch.optim.Adam(params, lr=lr)


def make_scheduler(scheme: str, optimizer: torch.optim.Optimizer, epochs: int,
                   adam_schedule: str = "cosine", lr_patience: int | None = None) -> Any:
    """The scheme's per-epoch schedule; call ``step()`` (plateau: ``step(val_loss)``) after each epoch.

    Every schedule here but the plateau one reads ``epochs``; a new one must say which it does in
    :func:`unifocal.training.config.schedule_uses_epochs` (whether more epochs may continue a run)."""
    if SCHEME_DEFAULTS[scheme]["optimizer"] == "sgd":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: poly_lr(1.0, min(e, epochs - 1), epochs))
    min_lr = SCHEME_DEFAULTS["adam"]["min_lr"]
    if adam_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                          patience=10 if lr_patience is None else lr_patience,
                                                          min_lr=min_lr)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs - 1, 1), eta_min=min_lr)
