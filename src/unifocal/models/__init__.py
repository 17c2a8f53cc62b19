"""Networks: the paper's 2D / 3D U-Nets with deep supervision, and MONAI networks by name."""

from unifocal.models.registry import MonaiNet, available_models, get_model, supports_deep_supervision
from unifocal.models.unet import UNet, count_parameters, unet2d, unet3d

__all__ = ["MonaiNet", "UNet", "available_models", "count_parameters", "get_model",
           "supports_deep_supervision", "unet2d", "unet3d"]
