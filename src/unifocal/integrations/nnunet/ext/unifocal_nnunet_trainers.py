"""Entry module for nnU-Net's external-trainer search (``nnUNet_extTrainer`` points at this folder).

nnU-Net imports every module of the folder by its file name and looks for the ``-tr`` class name;
the classes are defined once, in :mod:`unifocal.integrations.nnunet.trainers`.
"""

from unifocal.integrations.nnunet.trainers import (  # noqa: F401
    nnUNetTrainerComboLoss,
    nnUNetTrainerHybridFocal,
    nnUNetTrainerSymmetricUnifiedFocal,
    nnUNetTrainerUnifiedFocal,
)
