"""Training, inference and evaluation of one run (schemes, checkpoints / resume, run-folder contract)."""

from unifocal.training.config import SCHEMES, TrainConfig, resolve_config
from unifocal.training.inference import predict_logits, predict_probabilities, save_prediction, select_device
from unifocal.training.loop import NonFiniteLossError, build_run, train_and_evaluate
from unifocal.training.predict import evaluate_run, load_model, predict_files

__all__ = ["SCHEMES", "NonFiniteLossError", "TrainConfig", "build_run", "evaluate_run", "load_model",
           "predict_files", "predict_logits", "predict_probabilities", "resolve_config", "save_prediction",
           "select_device", "train_and_evaluate"]
