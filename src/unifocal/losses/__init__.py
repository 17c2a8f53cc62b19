"""The losses of "Unified Focal loss" (Yeung et al.): functions, and ``nn.Module`` s derived from them.

Conventions: ``docs/losses.md``; accepted shapes and the common keyword arguments (multi-label mode,
MONAI's argument names): :mod:`unifocal.losses.constants`. The framework-neutral description of every
loss (parameters, defaults, checks), shared with :mod:`unifocal.keras`: :mod:`unifocal.spec`.
Needs PyTorch: ``pip install "unifocal[torch]"``.
"""

try:
    import torch  # noqa: F401
except ModuleNotFoundError as _exc:  # one line that says what to install, as transformers does
    if _exc.name != "torch":
        raise
    raise ModuleNotFoundError('unifocal.losses needs PyTorch: pip install "unifocal[torch]" (unifocal.keras, '
                              'the same losses for Keras 3, needs no torch)', name="torch") from None

from unifocal.losses._base import Loss
from unifocal.losses._kernel import KernelStatus, kernel_status
from unifocal.losses.compound import (
    ComboLoss,
    HybridFocalLoss,
    SymmetricUnifiedFocalLoss,
    UnifiedFocalLoss,
    combo_loss,
    hybrid_focal_loss,
    symmetric_unified_focal_loss,
    unified_focal_loss,
)
from unifocal.losses.constants import PAPER_LOSSES
from unifocal.losses.deep_supervision import DeepSupervisionLoss, default_weights
from unifocal.losses.distribution import (
    AsymmetricFocalLoss,
    CrossEntropyLoss,
    FocalLoss,
    SymmetricFocalLoss,
    asymmetric_focal_loss,
    cross_entropy_loss,
    focal_loss,
    symmetric_focal_loss,
)
from unifocal.losses.region import (
    AsymmetricFocalTverskyLoss,
    DiceLoss,
    FocalTverskyLoss,
    SymmetricFocalTverskyLoss,
    TverskyLoss,
    asymmetric_focal_tversky_loss,
    dice_loss,
    focal_tversky_loss,
    symmetric_focal_tversky_loss,
    tversky_loss,
)
from unifocal.losses.registry import available_losses, get_loss, loss_defaults

__all__ = [
    "PAPER_LOSSES",
    "AsymmetricFocalLoss",
    "AsymmetricFocalTverskyLoss",
    "ComboLoss",
    "CrossEntropyLoss",
    "DeepSupervisionLoss",
    "DiceLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "HybridFocalLoss",
    "KernelStatus",
    "Loss",
    "SymmetricFocalLoss",
    "SymmetricFocalTverskyLoss",
    "SymmetricUnifiedFocalLoss",
    "TverskyLoss",
    "UnifiedFocalLoss",
    "asymmetric_focal_loss",
    "asymmetric_focal_tversky_loss",
    "available_losses",
    "combo_loss",
    "cross_entropy_loss",
    "default_weights",
    "dice_loss",
    "focal_loss",
    "focal_tversky_loss",
    "get_loss",
    "hybrid_focal_loss",
    "kernel_status",
    "loss_defaults",
    "symmetric_focal_loss",
    "symmetric_focal_tversky_loss",
    "symmetric_unified_focal_loss",
    "tversky_loss",
    "unified_focal_loss",
]
