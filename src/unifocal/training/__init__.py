"""Training, inference and evaluation of one run (schemes, checkpoints / resume, run-folder contract).

The configuration (``unifocal.training.config``) is loaded with the package; the rest (torch) when one
of its names is first used, so ``import unifocal.training.config`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from unifocal.training.config import SCHEMES, TrainConfig, resolve_config

_LAZY = {
    "predict_logits": "inference", "predict_probabilities": "inference", "save_prediction": "inference",
    "select_device": "inference", "NonFiniteLossError": "loop", "build_run": "loop",
    "continues_finished_run": "loop", "train_and_evaluate": "loop", "evaluate_run": "predict",
    "load_model": "predict", "predict_files": "predict",
}

__all__ = ["SCHEMES", "NonFiniteLossError", "TrainConfig", "build_run", "continues_finished_run", "evaluate_run",
           "load_model", "predict_files", "predict_logits", "predict_probabilities", "resolve_config",
           "save_prediction", "select_device", "train_and_evaluate"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"unifocal.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'unifocal.training' has no attribute {name!r}")
