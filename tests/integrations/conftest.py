"""Optional frameworks: a test that needs one skips without it, unless ``UNIFOCAL_REQUIRE`` names it.

``.ci/run`` runs these tests in a separate environment that has nnU-Net v2, smp, Lightning and
torchmetrics, with ``UNIFOCAL_REQUIRE=nnunetv2,segmentation_models_pytorch,lightning,torchmetrics``:
there a missing framework fails the run instead of skipping silently.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str) -> ModuleType:
    """Import ``module``; skip the test when it is missing, or fail when ``UNIFOCAL_REQUIRE`` lists it."""
    required = {m.strip() for m in os.environ.get("UNIFOCAL_REQUIRE", "").split(",") if m.strip()}
    if module in required:
        return importlib.import_module(module)
    return pytest.importorskip(module)
