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

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from unifocal.data.io import check_finite, is_nifti, read_nifti, read_png, strip_nifti_suffix
from unifocal.data.preprocessing import make_preprocessing, preprocess, restore_geometry
from unifocal.data.readers import IMAGE_EXTS
from unifocal.models import get_model
from unifocal.training.checkpoint import atomic_write_json, load_checkpoint
from unifocal.training.evaluation import aggregate, evaluate_cases, open_run_dataset, write_metrics_csv
from unifocal.training.inference import predict_probabilities, probs_to_labels, save_prediction, select_device
from unifocal.training.lock import check_output_dir, refuse_run_folder

__all__ = ["DEFAULT_TILE_2D", "evaluate_run", "load_model", "plan_outputs", "predict_files", "tile_size"]

#: Sliding-window tile (pixels per side) for 2D runs trained on whole images without a fixed resize.
DEFAULT_TILE_2D = 512


def _checkpoint_path(run_or_ckpt: str | Path) -> Path:
    p = Path(run_or_ckpt)
    if p.is_dir():
        p = p / "checkpoints" / "best.pt"
    if not p.is_file():
        raise ValueError(f"no checkpoint at {p}; pass a run folder with checkpoints/best.pt or a .pt file")
    return p


def load_model(run_or_ckpt: str | Path, device: str | torch.device = "auto") -> tuple[nn.Module, dict[str, Any]]:
    """The trained network (eval mode, on ``device``) and its specification from a run or checkpoint."""

    dev = select_device(device) if isinstance(device, str) else device
    path = _checkpoint_path(run_or_ckpt)
    st = load_checkpoint(path, map_location=dev)
    spec = st.get("spec")
    if not isinstance(st.get("model"), dict) or not isinstance(spec, dict) or not {
            "model", "spatial_dims", "in_channels", "num_classes"} <= set(spec):
        raise ValueError(f"checkpoint {path} lacks the model weights or specification ('model', 'spec'); give "
                         f"checkpoints/best.pt of a unifocal run")
    params = {k: v for k, v in spec["model"].items() if k != "name" and v is not None}
    model = get_model(spec["model"]["name"], spec["spatial_dims"], spec["in_channels"], spec["num_classes"], **params)
    try:
        model.load_state_dict(st["model"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path}: the weights do not fit the network of its specification "
                         f"({str(exc).splitlines()[0]}); the file was altered or comes from another model") from None
    model.to(dev).eval()
    return model, spec


def tile_size(spec: dict[str, Any]) -> list[int] | None:
    """The window of sliding-window inference for a run: its training patch size.

    3D runs have one. 2D runs trained on whole images: the preprocessing ``resize`` when set (every
    training image had that size), else :data:`DEFAULT_TILE_2D` per side; a 2D image that fits in
    the window is predicted whole, a larger one is tiled (bounded memory, ``docs/reliability.md``).
    """
    if spec.get("patch_size"):
        return [int(p) for p in spec["patch_size"]]
    if spec["spatial_dims"] != 2:
        return None
    resize = (spec.get("preprocessing") or {}).get("resize")
    return [int(r) for r in resize] if resize else [DEFAULT_TILE_2D, DEFAULT_TILE_2D]


def _read_input(path: Path, spatial_dims: int) -> tuple[np.ndarray, dict[str, Any]]:

    if is_nifti(path):
        arr, affine, spacing = read_nifti(path)
        check_finite(arr, path)
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
    arr = read_png(path)
    check_finite(arr, path)
    if min(arr.shape) < 2:
        raise ValueError(f"{path}: image of {arr.shape[0]}x{arr.shape[1]} pixels; at least 2 pixels per side are "
                         f"needed to segment it")
    return arr.astype(np.float32)[None], {"affine": np.eye(4), "spacing": (1.0, 1.0)}


def is_image_file(p: Path) -> bool:
    """An image file ``predict`` reads from a folder: NIfTI or a 2D image format, in any case
    (``.NII.GZ``, ``.PNG``, ``.tif``, ``.jpg``)."""

    return is_nifti(p) or p.suffix.lower() in IMAGE_EXTS


def _input_files(inputs: Sequence[str | Path]) -> list[Path]:

    files: list[Path] = []
    for src in inputs:
        src = Path(src)
        if src.is_dir():
            entries = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
            skipped = [p.name for p in entries if not is_image_file(p)]
            if skipped:
                warnings.warn(f"{src}: {len(skipped)} file(s) that are not images (NIfTI, PNG, TIFF, JPEG, BMP) "
                              f"skipped: {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", stacklevel=3)
            files += [p for p in entries if is_image_file(p)]
        elif src.is_file():
            files.append(src)
        else:
            raise ValueError(f"input {src} does not exist; give image files or folders")
    if not files:
        raise ValueError("no input images found (NIfTI, PNG, TIFF, JPEG or BMP)")
    seen: set[Path] = set()
    unique = []
    for f in files:  # the same file given twice (as a file and through its folder) is predicted once
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def plan_outputs(files: Sequence[Path], out_dir: Path, probabilities: bool) -> list[tuple[str, list[Path]]]:
    """``(stem, [label file, probability file])`` per input; refuses to overwrite an input or collide.

    Raises:
        ValueError: an output would replace one of the inputs (e.g. ``-o`` is the input folder and the
            format is the same), or two inputs would write the same output (``a/x.png``, ``b/x.png``).
            Nothing has been written then.
    """

    inputs = {f.resolve(): f for f in files}
    owner: dict[Path, Path] = {}
    plan = []
    for f in files:
        nifti = is_nifti(f)
        stem = strip_nifti_suffix(f.name) if nifti else f.stem
        outs = [out_dir / f"{stem}.nii.gz" if nifti else out_dir / f"{stem}.png"]
        if probabilities:
            outs.append(out_dir / (f"{stem}_probs.nii.gz" if nifti else f"{stem}_probs.npz"))
        for o in outs:
            r = o.resolve()
            if r in inputs:
                raise ValueError(f"predicting {f} would overwrite the input {inputs[r]}; write the predictions to "
                                 f"another folder (-o), not the folder of the images")
            if r in owner:
                raise ValueError(f"{owner[r]} and {f} would both be written to {o} (same file name); predict "
                                 f"them into separate output folders (-o) or rename one")
            owner[r] = f
        plan.append((stem, outs))
    return plan


def predict_files(run_or_ckpt: str | Path, inputs: Sequence[str | Path], out_dir: str | Path, *,
                  probabilities: bool = False, device: str = "auto", amp: bool = False,
                  overlap: float | None = None, progress: bool = False) -> list[Path]:
    """Predict image files with a trained run; returns the written label files.

    Each input is preprocessed with the run's preprocessing, predicted (sliding window over the
    run's training patch, :func:`tile_size`; a 2D image that fits in it whole), mapped back to the
    input's grid (probabilities linearly, then arg-max) and saved in ``out_dir`` under the input's
    stem: PNG for PNG input, NIfTI with the input's affine for NIfTI input; ``probabilities`` adds
    the class probabilities; ``progress`` shows a bar. Every file is written atomically; an input is never overwritten and
    two inputs never write the same file (:func:`plan_outputs`, checked before anything is
    written).

    Raises:
        ValueError: bad checkpoint, input (named), output folder, or an output that would replace an
            input or collide with another.
    """

    model, spec = load_model(run_or_ckpt, device)
    dev = next(model.parameters()).device
    params = make_preprocessing(**{k: v for k, v in (spec.get("preprocessing") or {}).items()
                                   if k not in ("version",)})
    files = _input_files(inputs)
    out_dir = Path(out_dir)
    check_output_dir(out_dir, "prediction folder", create=False)  # raises: an existing file
    refuse_run_folder(out_dir, "prediction folder")
    plan = plan_outputs(files, out_dir, probabilities)
    check_output_dir(out_dir, "prediction folder")
    tile = tile_size(spec)
    written = []
    pairs = list(zip(files, plan))
    if progress:

        pairs = tqdm(pairs, desc="predict", leave=False)
    for f, (stem, _outs) in pairs:
        image, meta = _read_input(f, spec["spatial_dims"])
        if image.shape[0] != spec["in_channels"]:
            raise ValueError(f"{f}: {image.shape[0]} channel(s), the model expects {spec['in_channels']}")
        dummy = np.zeros(image.shape[1:], np.uint8)
        pimg, _, pmeta = preprocess(image, dummy, meta, params)
        del image, dummy  # a 4000x4000 image: 64 MB of float32 less during the prediction
        try:
            probs = predict_probabilities(model, pimg, patch_size=tile, overlap=overlap or spec.get("overlap", 0.5),
                                          device=dev, amp=amp,
                                          sw_batch_size=1 if spec["spatial_dims"] == 2 else 2).numpy()
        except (RuntimeError, ValueError) as exc:  # the network's own message does not say which file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{f}: cannot be predicted (image shape {tuple(pimg.shape[1:])} after the run's "
                             f"preprocessing: {first})") from None
        del pimg
        probs = restore_geometry(probs, pmeta, is_label=False)
        labels = probs_to_labels(probs)
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


    out_dir = check_output_dir(out_dir, "evaluation folder", create=False)
    refuse_run_folder(out_dir, "evaluation folder")
    model, spec = load_model(run_or_ckpt, device)
    dev = next(model.parameters()).device
    ckpt = load_checkpoint(_checkpoint_path(run_or_ckpt), map_location="cpu")
    if dataset is None and not isinstance((ckpt.get("config") or {}).get("dataset"), dict):
        raise ValueError(f"checkpoint {_checkpoint_path(run_or_ckpt)} records no dataset configuration; "
                         f"give --dataset")
    ds, own = open_run_dataset(ckpt["config"], spec, dataset)
    if ids is None:
        split = Path(run_or_ckpt) / "split.json"
        ids = list(ds.ids)
        if own and split.is_file():  # the run's validation cases (those the dataset options keep)
            kept = set(ids)
            ids = [c for c in json.loads(split.read_text())["val"] if c in kept]
    check_output_dir(out_dir, "evaluation folder")
    rows = evaluate_cases(model, ds, list(ids), patch_size=tile_size(spec),
                          overlap=spec.get("overlap", 0.5), device=dev,
                          predictions_dir=out_dir / "predictions" if save_predictions else None,
                          save_probabilities=probabilities, progress=progress)
    write_metrics_csv(out_dir / "metrics_per_case.csv", rows)
    summary = {"status": "finished", "kind": "evaluation", "run": str(Path(run_or_ckpt).absolute()),
               "cases": len(ids), "metrics": aggregate(rows)}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
