"""nnU-Net v2 trainers that train with unifocal's losses (extra ``nnunet``).

nnU-Net finds a trainer given with ``-tr NAME`` by searching, by class name,
``nnunetv2/training/nnUNetTrainer`` and then every folder listed in the environment variable
``nnUNet_extTrainer`` (nnU-Net >= 2.8: ``nnunetv2.utilities.find_objects``). unifocal ships such a
folder; point the variable at it and nnU-Net finds the trainers below::

    export nnUNet_extTrainer="$(python -m unifocal.integrations.nnunet)"
    nnUNetv2_train DATASET 3d_fullres 0 -tr nnUNetTrainerUnifiedFocal

Trainers (each a subclass of ``nnUNetTrainer`` that only replaces the loss):

* ``nnUNetTrainerUnifiedFocal`` — :class:`unifocal.losses.UnifiedFocalLoss` (the paper's defaults).
* ``nnUNetTrainerComboLoss`` — :class:`unifocal.losses.ComboLoss`.
* ``nnUNetTrainerHybridFocal`` — :class:`unifocal.losses.HybridFocalLoss`.
* ``nnUNetTrainerSymmetricUnifiedFocal`` — :class:`unifocal.losses.SymmetricUnifiedFocalLoss`.

Importing this package does not import nnU-Net; the trainer classes are loaded on first access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINERS: tuple[str, ...] = (
    "nnUNetTrainerUnifiedFocal", "nnUNetTrainerComboLoss", "nnUNetTrainerHybridFocal",
    "nnUNetTrainerSymmetricUnifiedFocal",
)

__all__ = ["TRAINERS", "trainer_dir", *TRAINERS]


def trainer_dir() -> Path:
    """The folder to put in ``nnUNet_extTrainer`` so that ``nnUNetv2_train -tr`` finds the trainers."""
    return Path(__file__).resolve().parent / "ext"


def __getattr__(name: str) -> Any:
    if name in TRAINERS or name in ("UnifocalNnunetLoss", "build_nnunet_loss", "UnifocalTrainerMixin"):
        from unifocal.integrations.nnunet import trainers

        return getattr(trainers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
