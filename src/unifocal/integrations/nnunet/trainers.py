"""nnU-Net v2 trainer classes whose loss is one of unifocal's (see :mod:`unifocal.integrations.nnunet`).

Each trainer keeps everything of ``nnUNetTrainer`` but the loss. :func:`build_nnunet_loss` lets
nnU-Net build its own loss first and then swaps the per-output loss inside nnU-Net's own
``DeepSupervisionWrapper``, so the deep-supervision weights are exactly nnU-Net's (``1/2^i``, the
lowest resolution weighted 0, normalised; ``1e-6`` instead of 0 under DDP without compile) whatever
nnU-Net version computes them. nnU-Net's ignore label becomes the loss's ``ignore_index`` (its
positions take no part in any sum) and nnU-Net's ``batch_dice`` the loss's ``batch`` (TP/FP/FN pooled
over the batch). Region-based training (``regions_class_order`` in dataset.json: overlapping,
multi-hot targets with sigmoid outputs) passes ``multilabel=True`` to the loss.

Change the loss's parameters with a subclass in a folder of your own that is also listed in
``nnUNet_extTrainer``::

    class nnUNetTrainerUnifiedFocalDelta07(nnUNetTrainerUnifiedFocal):
        unifocal_params = {"delta": 0.7}
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

try:
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        'unifocal.integrations.nnunet needs nnU-Net v2: pip install "unifocal[nnunet]"', name=exc.name) from exc

from unifocal.losses import get_loss

__all__ = [
    "UnifocalNnunetLoss", "UnifocalTrainerMixin", "build_nnunet_loss", "nnUNetTrainerComboLoss",
    "nnUNetTrainerHybridFocal", "nnUNetTrainerSymmetricUnifiedFocal", "nnUNetTrainerUnifiedFocal",
]


class UnifocalNnunetLoss(nn.Module):
    """A unifocal loss called the way nnU-Net calls its losses: ``loss(output, target)`` per resolution.

    nnU-Net's targets are ``(B, 1, *spatial)`` label maps (of a floating or integer dtype) in the
    label mode, and multi-hot ``(B, R, *spatial)`` region maps in the region mode. Label maps are
    passed on as integer labels ``(B, *spatial)``; region maps unchanged.
    """

    def __init__(self, loss: nn.Module, regions: bool = False) -> None:
        super().__init__()
        self.loss = loss
        self.regions = regions

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if not self.regions:
            if target.ndim == output.ndim:
                if target.shape[1] != 1:
                    raise ValueError(f"nnU-Net label-mode target must be (B, 1, *spatial), got {tuple(target.shape)}")
                target = target[:, 0]
            if target.is_floating_point():
                target = target.round()
            target = target.long()
        return self.loss(output, target)


def build_nnunet_loss(trainer: nnUNetTrainer, name: str, params: dict[str, Any] | None = None) -> nn.Module:
    """The loss ``name`` (see :func:`unifocal.losses.get_loss`) wired into ``trainer``'s nnU-Net setup.

    Args:
        trainer: An initialising ``nnUNetTrainer`` (its label manager and configuration are read).
        name: A unifocal loss name, e.g. ``"unified_focal"``.
        params: Loss parameters overriding the registry defaults.

    Returns:
        nnU-Net's ``DeepSupervisionWrapper`` (with nnU-Net's weights) around
        :class:`UnifocalNnunetLoss` when deep supervision is enabled, else the latter alone.

    Raises:
        ValueError: If ``params`` sets what nnU-Net decides (``ignore_index``, ``batch``, ``multilabel``)
            or the loss does not support nnU-Net's region mode.
    """
    params = dict(params or {})
    owned = {"ignore_index", "batch", "multilabel"} & params.keys()
    if owned:
        raise ValueError(f"{sorted(owned)} come from nnU-Net's plans and dataset.json (ignore label, batch_dice, "
                         f"regions); remove them from unifocal_params")
    lm = trainer.label_manager
    regions = bool(lm.has_regions)
    common: dict[str, Any] = {"batch": bool(trainer.configuration_manager.batch_dice)}
    if lm.ignore_label is not None:
        common["ignore_index"] = int(lm.ignore_label)
    if regions:
        common["multilabel"] = True
    try:
        core = get_loss(name, **params, **common)
    except (TypeError, ValueError) as exc:
        if regions:
            raise ValueError(f"loss {name!r} cannot train nnU-Net's region mode (multilabel=True): {exc}") from exc
        raise
    adapter = UnifocalNnunetLoss(core, regions=regions)
    built = nnUNetTrainer._build_loss(trainer)  # nnU-Net's own wrapper and deep-supervision weights
    if isinstance(built, DeepSupervisionWrapper):
        built.loss = adapter
        return built
    return adapter


class UnifocalTrainerMixin:
    """Replace ``nnUNetTrainer._build_loss`` by :func:`build_nnunet_loss` with ``unifocal_loss``."""

    unifocal_loss: ClassVar[str] = "unified_focal"
    unifocal_params: ClassVar[dict[str, Any]] = {}

    def _build_loss(self) -> nn.Module:
        return build_nnunet_loss(self, self.unifocal_loss, self.unifocal_params)  # type: ignore[arg-type]


class nnUNetTrainerUnifiedFocal(UnifocalTrainerMixin, nnUNetTrainer):
    """nnU-Net with the Unified Focal loss (``unified_focal``, the paper's default parameters)."""

    unifocal_loss = "unified_focal"


class nnUNetTrainerComboLoss(UnifocalTrainerMixin, nnUNetTrainer):
    """nnU-Net with the Combo loss (``combo``)."""

    unifocal_loss = "combo"


class nnUNetTrainerHybridFocal(UnifocalTrainerMixin, nnUNetTrainer):
    """nnU-Net with the Hybrid Focal loss (``hybrid_focal``)."""

    unifocal_loss = "hybrid_focal"


class nnUNetTrainerSymmetricUnifiedFocal(UnifocalTrainerMixin, nnUNetTrainer):
    """nnU-Net with the Symmetric Unified Focal loss (``symmetric_unified_focal``)."""

    unifocal_loss = "symmetric_unified_focal"
