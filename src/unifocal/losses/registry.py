"""Losses by name: ``get_loss``, ``available_losses``, ``loss_defaults`` (names: :data:`unifocal.spec.LOSSES`)."""

from __future__ import annotations

from typing import Any

from unifocal.losses._base import Loss
from unifocal.losses.compound import ComboLoss, HybridFocalLoss, SymmetricUnifiedFocalLoss, UnifiedFocalLoss
from unifocal.losses.distribution import AsymmetricFocalLoss, CrossEntropyLoss, FocalLoss, SymmetricFocalLoss
from unifocal.losses.region import (
    AsymmetricFocalTverskyLoss,
    DiceLoss,
    FocalTverskyLoss,
    SymmetricFocalTverskyLoss,
    TverskyLoss,
)
from unifocal.spec import (
    COMMON_DEFAULTS,
    MONAI_KEYS,
    available_losses,
    lookup,
    loss_defaults,
    unknown_keywords,
)
from unifocal.spec import LOSSES as SPECS

LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (CrossEntropyLoss, FocalLoss, DiceLoss, TverskyLoss, FocalTverskyLoss, ComboLoss, HybridFocalLoss,
                AsymmetricFocalLoss, AsymmetricFocalTverskyLoss, UnifiedFocalLoss, SymmetricFocalLoss,
                SymmetricFocalTverskyLoss, SymmetricUnifiedFocalLoss)
}
if list(LOSSES) != list(SPECS):  # pragma: no cover - a loss described but not built, or the other way round
    raise ImportError(f"internal: torch losses {list(LOSSES)} differ from the descriptions {list(SPECS)}")


def get_loss(name: str, /, **params: Any) -> Loss:
    """Build a loss module by name, e.g. ``get_loss("unified_focal", delta=0.7)``.

    Raises:
        ValueError: unknown name (the message lists close matches) or a bad value.
        TypeError: unknown parameter (:class:`unifocal.spec.UnknownArgumentError`, also a ``ValueError``).
    """
    spec = lookup(name)
    allowed = set(spec.defaults) | set(COMMON_DEFAULTS) | set(MONAI_KEYS)
    unknown = set(params) - allowed
    if unknown:
        raise unknown_keywords(f"loss {spec.name!r}", unknown, allowed)
    return LOSSES[spec.name](**params)


__all__ = ["LOSSES", "available_losses", "get_loss", "loss_defaults"]
