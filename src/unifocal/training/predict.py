"""Prediction and evaluation with a trained run: ``unifocal predict`` / ``unifocal evaluate``.

* :func:`load_model` rebuilds the network from ``checkpoints/best.pt`` (the final model) alone: the
  checkpoint carries the model specification, class names, preprocessing and patch size.
* :func:`predict_files` predicts standalone image files (PNG for 2D, NIfTI for 2D/3D): each is read,
  preprocessed with the run's preprocessing (``unifocal.data.preprocessing.preprocess``), predicted,
  mapped back to the file's own grid and saved (PNG, or NIfTI with the input's affine).
* :func:`predict_dataset` / :func:`evaluate_run` do the same for the cases of a dataset, the latter
  scoring them against the ground truth (per-case CSV + summary JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unifocal.training.checkpoint import atomic_write_json, load_checkpoint
from unifocal.training.evaluation import aggregate, evaluate_cases, write_metrics_csv
from unifocal.training.inference import predict_probabilities, probs_to_labels, save_prediction, select_device

__all__ = ["evaluate_run", "load_model", "predict_files"]


def _checkpoint_path(run_or_ckpt: str | Path) -> Path:
    p = Path(run_or_ckpt)
    if p.is_dir():
        p = p / "checkpoints" / "best.pt"
    if not p.is_file():
        raise ValueError(f"no checkpoint at {p}; pass a run folder with checkpoints/best.pt or a .pt file")
    return p


def load_model(run_or_ckpt: str | Path, device: str | torch.device = "auto") -> tuple[nn.Module, dict[str, Any]]:
    """The trained network (eval mode, on ``device``) and its specification from a run or checkpoint."""
    from unifocal.models import get_model

    dev = select_device(device) if isinstance(device, str) else device
    st = load_checkpoint(_checkpoint_path(run_or_ckpt), map_location=dev)
    spec = st["spec"]
    params = {k: v for k, v in spec["model"].items() if k != "name" and v is not None}
    model = get_model(spec["model"]["name"], spec["spatial_dims"], spec["in_channels"], spec["num_classes"], **params)
    model.load_state_dict(st["model"])
    model.to(dev).eval()
    return model, spec


def _read_input(path: Path, spatial_dims: int) -> tuple[np.ndarray, dict[str, Any]]:
    from unifocal.data.io import is_nifti, read_nifti, read_png

    if is_nifti(path):
        arr, affine, spacing = read_nifti(path)
        arr = arr.astype(np.float32)
        if arr.ndim == spatial_dims:
            arr = arr[None]
        elif arr.ndim == spatial_dims + 1:
            arr = np.moveaxis(arr, -1, 0)  # channels last on disk
        else:
            raise ValueError(f"{path}: a {arr.ndim}D array cannot be a {spatial_dims}D image for this model")
        return arr, {"affine": affine, "spacing": spacing[:spatial_dims]}
    if spatial_dims != 2:
        raise ValueError(f"{path}: the model is 3D; give NIfTI volumes (.nii / .nii.gz)")
    return read_png(path).astype(np.float32)[None], {"affine": np.eye(4), "spacing": (1.0, 1.0)}


def predict_files(run_or_ckpt: str | Path, inputs: Sequence[str | Path], out_dir: str | Path, *,
                  probabilities: bool = False, device: str = "auto", amp: bool = False,
                  overlap: float | None = None, progress: bool = False) -> list[Path]:
    """Predict image files with a trained run; returns the written label files.

    Each input is preprocessed with the run's preprocessing, predicted (whole image in 2D,
    sliding window in 3D), mapped back to the input's grid (probabilities linearly, then arg-max)
    and saved in ``out_dir`` under the input's stem: PNG for PNG input, NIfTI with the input's
    affine for NIfTI input; ``probabilities`` adds the class probabilities; ``progress`` shows a bar.
    """
    from unifocal.data.io import is_nifti, strip_nifti_suffix
    from unifocal.data.preprocessing import make_preprocessing, preprocess, restore_geometry

    model, spec = load_model(run_or_ckpt, device)
    dev = next(model.parameters()).device
    params = make_preprocessing(**{k: v for k, v in (spec.get("preprocessing") or {}).items()
                                   if k not in ("version",)})
    files: list[Path] = []
    for src in inputs:
        src = Path(src)
        if src.is_dir():
            files += sorted(p for p in src.iterdir() if p.suffix in (".png", ".nii", ".gz") and not p.name.startswith("."))
        elif src.is_file():
            files.append(src)
        else:
            raise ValueError(f"input {src} does not exist; give image files or folders")
    if not files:
        raise ValueError("no input images found (PNG or NIfTI)")
    written = []
    if progress:
        from tqdm import tqdm

        files = tqdm(files, desc="predict", leave=False)
    for f in files:
        image, meta = _read_input(f, spec["spatial_dims"])
        if image.shape[0] != spec["in_channels"]:
            raise ValueError(f"{f}: {image.shape[0]} channel(s), the model expects {spec['in_channels']}")
        dummy = np.zeros(image.shape[1:], np.uint8)
        pimg, _, pmeta = preprocess(image, dummy, meta, params)
        ps = spec.get("patch_size") if spec["spatial_dims"] == 3 else None
        probs = predict_probabilities(model, pimg, patch_size=ps, overlap=overlap or spec.get("overlap", 0.5),
                                      device=dev, amp=amp).numpy()
        probs = restore_geometry(probs, pmeta, is_label=False)
        labels = probs_to_labels(probs)
        stem = strip_nifti_suffix(f.name) if is_nifti(f) else f.stem
        written.append(save_prediction(out_dir, stem, labels, num_classes=spec["num_classes"],
                                       affine=meta["affine"], probs=probs if probabilities else None,
                                       fmt="nifti" if is_nifti(f) else "png"))
    return written


def evaluate_run(run_or_ckpt: str | Path, out_dir: str | Path, *, dataset: dict[str, Any] | None = None,
                 ids: Sequence[str] | None = None, save_predictions: bool = False, probabilities: bool = False,
                 device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Score a trained run on cases of a dataset; writes ``metrics_per_case.csv`` and ``summary.json``.

    Args:
        run_or_ckpt: Run folder or checkpoint.
        out_dir: Where the CSV, summary (and predictions) go.
        dataset: Dataset configuration (default: the run's own, from the checkpoint's config; a
            mapping with ``options`` only adds them to the run's own), always opened with the
            run's preprocessing (:func:`unifocal.training.evaluation.open_run_dataset`).
        ids: Cases to score (default: the run's validation cases from ``split.json`` when evaluating
            the run's own dataset, else every case).
    """
    import json

    from unifocal.training.evaluation import open_run_dataset

    model, spec = load_model(run_or_ckpt, device)
    dev = next(model.parameters()).device
    ckpt = load_checkpoint(_checkpoint_path(run_or_ckpt), map_location="cpu")
    ds, own = open_run_dataset(ckpt["config"], spec, dataset)
    if ids is None:
        split = Path(run_or_ckpt) / "split.json"
        ids = list(ds.ids)
        if own and split.is_file():  # the run's validation cases (those the dataset options keep)
            kept = set(ids)
            ids = [c for c in json.loads(split.read_text())["val"] if c in kept]
    out_dir = Path(out_dir)
    rows = evaluate_cases(model, ds, list(ids), patch_size=spec.get("patch_size") if spec["spatial_dims"] == 3 else None,
                          overlap=spec.get("overlap", 0.5), device=dev,
                          predictions_dir=out_dir / "predictions" if save_predictions else None,
                          save_probabilities=probabilities, progress=progress)
    write_metrics_csv(out_dir / "metrics_per_case.csv", rows)
    summary = {"status": "finished", "cases": len(ids), "metrics": aggregate(rows)}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
