"""Losses by name: ``get_loss``, ``available_losses``, ``loss_defaults``."""

from __future__ import annotations

import difflib
from typing import Any

from unifocal.losses._base import Loss, parameters_of
from unifocal.losses._core import COMMON_DEFAULTS, MONAI_KEYS
from unifocal.losses.compound import ComboLoss, HybridFocalLoss, SymmetricUnifiedFocalLoss, UnifiedFocalLoss
from unifocal.losses.distribution import AsymmetricFocalLoss, CrossEntropyLoss, FocalLoss, SymmetricFocalLoss
from unifocal.losses.region import (
    AsymmetricFocalTverskyLoss,
    DiceLoss,
    FocalTverskyLoss,
    SymmetricFocalTverskyLoss,
    TverskyLoss,
)

LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (CrossEntropyLoss, FocalLoss, DiceLoss, TverskyLoss, FocalTverskyLoss, ComboLoss, HybridFocalLoss,
                AsymmetricFocalLoss, AsymmetricFocalTverskyLoss, UnifiedFocalLoss, SymmetricFocalLoss,
                SymmetricFocalTverskyLoss, SymmetricUnifiedFocalLoss)
}


def available_losses() -> list[str]:
    """Names accepted by :func:`get_loss`."""
    return list(LOSSES)


def _lookup(name: str) -> type[Loss]:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = key.removesuffix("_loss")
    if key not in LOSSES:
        close = difflib.get_close_matches(key, LOSSES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown loss {name!r}{hint} Available: {', '.join(LOSSES)}")
    return LOSSES[key]


def loss_defaults(name: str) -> dict[str, Any]:
    """The loss's own parameters and their defaults (the common keyword arguments excluded)."""
    return parameters_of(_lookup(name).functional)


def get_loss(name: str, **params: Any) -> Loss:
    """Build a loss module by name, e.g. ``get_loss("unified_focal", delta=0.7)``.

    Raises:
        ValueError: unknown name or parameter (the message lists close matches), or a bad value.
    """
    cls = _lookup(name)
    allowed = set(loss_defaults(name)) | set(COMMON_DEFAULTS) | set(MONAI_KEYS)
    for key in params:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown parameter {key!r} for loss {cls.name!r}{hint} "
                             f"Accepted: {', '.join(sorted(allowed))}")
    return cls(**params)
