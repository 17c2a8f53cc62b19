"""unifocal: the Unified Focal loss family (Yeung et al.) and the paper's study pipeline."""

__version__ = "0.1.0"
