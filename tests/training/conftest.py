"""Helpers for the training tests: tiny configurations on the 2D / 3D phantom."""

from __future__ import annotations

import copy
from typing import Any

import pytest


def tiny_config(**over: Any) -> dict[str, Any]:
    """A 2D phantom run small enough for a 2-core CPU (32x32 images, U-Net with 8 base filters)."""
    cfg: dict[str, Any] = {
        "dataset": {"name": "phantom2d", "options": {"n_cases": 40, "size": 32}},
        "loss": {"name": "unified_focal", "params": {}},
        "model": {"name": "unet", "base_filters": 8, "depth": 3, "norm": "instance"},
        "scheme": "adam", "lr": 3e-3, "epochs": 3, "batch_size": 4, "seed": 0, "n_folds": 4,
        "device": "cpu",
    }
    for k, v in over.items():
        cfg[k] = copy.deepcopy(v)
    return cfg


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep every dataset cache of these tests in a temporary folder."""
    monkeypatch.setenv("UNIFOCAL_CACHE", str(tmp_path_factory.mktemp("cache")))
