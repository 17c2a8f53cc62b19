"""Evaluation of one model on a set of cases: per-case, per-class metrics in the original geometry.

Writes the run-folder files ``metrics_per_case.csv`` (``case_id, class, dsc, precision, recall, tp,
fp, fn``) and returns the per-class aggregate ``{"<class>": {"dsc": {"mean", "ci95", "n"}, ...}}``
(mean and Student-t 95 % half-width over cases, :func:`unifocal.metrics.mean_ci`). Classes are the
foreground classes ``1..K-1``, named by ``dataset.class_names``.

A trained model is only scored on data preprocessed as it was trained: :func:`open_run_dataset`
opens any dataset with the run's own preprocessing (recorded in the checkpoint), and refuses a
preprocessing option that contradicts it, instead of the layout's defaults (a model trained on
native-resolution patches and scored on images resized to 128x128 gives a wrong, plausible DSC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from unifocal._atomic import atomic_write_csv
from unifocal.data.preprocessing import DEFAULT_PREPROCESSING, make_preprocessing
from unifocal.metrics import METRICS, case_metrics, mean_ci
from unifocal.training.config import _normalise_dataset, open_dataset
from unifocal.training.inference import predict_probabilities, probs_to_labels, save_prediction

__all__ = ["CSV_FIELDS", "aggregate", "evaluate_cases", "open_run_dataset", "write_metrics_csv"]

CSV_FIELDS = ["case_id", "class", *METRICS, "tp", "fp", "fn"]


def _preprocessing_of(options: dict[str, Any]) -> dict[str, Any]:

    pre = dict(options.get("preprocessing") or {})
    pre.update({k: v for k, v in options.items() if k in DEFAULT_PREPROCESSING})
    return pre


def open_run_dataset(run_config: dict[str, Any], spec: dict[str, Any],
                     dataset: dict[str, Any] | None = None) -> tuple[Any, bool]:
    """Open the dataset on which to score a trained run, with the run's own preprocessing.

    Args:
        run_config: The run's configuration (``config`` of its checkpoint).
        spec: The checkpoint's model specification (its ``preprocessing`` is what the model was
            trained on).
        dataset: ``None``: the run's own dataset; a mapping without ``path`` / ``name``: the run's
            own dataset with these ``options`` added (e.g. to select cases); a full dataset entry
            (``{path|name, layout, options}``): another dataset.

    Returns:
        ``(dataset, own)``: the opened dataset and whether it is the run's own.

    Raises:
        ValueError: A preprocessing option differs from the run's, or the dataset's classes do not
            match the model's.
    """

    base = dict(run_config["dataset"])
    own = dataset is None or not (dataset.get("path") or dataset.get("name"))
    if own and base.get("path") is not None and not Path(str(base["path"])).expanduser().is_absolute():
        raise ValueError(f"the run records the relative dataset path {base['path']!r} (written before dataset paths "
                         f"were stored absolute): it would be read from the working directory {Path.cwd()}, which "
                         f"may hold another dataset; give the dataset folder with --dataset (every case is then "
                         f"scored; select cases with --dataset-option)")
    if own:
        extra = dict((dataset or {}).get("options") or {})
        ds_cfg = {**base, "options": {**(base.get("options") or {}), **extra}}
    else:
        ds_cfg = _normalise_dataset(dataset)
    options = dict(ds_cfg.get("options") or {})
    trained = {k: v for k, v in (spec.get("preprocessing") or {}).items() if k != "version"}
    if trained:
        asked = _preprocessing_of(options)
        if asked:
            want = make_preprocessing(trained)
            got = make_preprocessing(trained, **asked)
            bad = [f"{k}={asked[k]!r} (trained with {want[k]!r})" for k in asked if got[k] != want[k]]
            if bad:
                raise ValueError(f"preprocessing {', '.join(bad)} differs from the run's; a model is scored on "
                                 f"data preprocessed as it was trained: drop these dataset options")
        options = {k: v for k, v in options.items() if k not in DEFAULT_PREPROCESSING and k != "preprocessing"}
        options["preprocessing"] = trained
        ds_cfg["options"] = options
    ds = open_dataset(ds_cfg)
    if trained:
        want = {k: v for k, v in make_preprocessing(trained).items() if k != "version"}
        used = {k: v for k, v in ds.preprocessing.items() if k != "version"}
        if used != want:
            raise ValueError(f"{ds_cfg.get('path') or ds_cfg.get('name')} was opened with preprocessing {used}, "
                             f"not the run's {trained}")
    if ds.num_classes != spec["num_classes"]:
        raise ValueError(f"the dataset has {ds.num_classes} classes but the model predicts {spec['num_classes']}; "
                         f"score the run on a dataset with the same classes")
    return ds, own


def _to_original(dataset: Any, cid: str, probs: np.ndarray) -> np.ndarray:
    if hasattr(dataset, "to_original"):
        return np.asarray(dataset.to_original(cid, probs, is_label=False))
    return probs


def class_name(dataset: Any, c: int) -> str:
    """The name of class ``c`` (``class_names`` when the dataset has them, else ``str(c)``)."""
    names = getattr(dataset, "class_names", None)
    return str(names[c]) if names and c < len(names) else str(c)


def evaluate_cases(model: nn.Module, dataset: Any, ids: Iterable[str], *, patch_size: Sequence[int] | None = None,
                   overlap: float = 0.5, device: Any = "cpu", amp: bool = False,
                   predictions_dir: str | Path | None = None, save_probabilities: bool = False,
                   progress: bool = False) -> list[dict[str, Any]]:
    """Predict every case of ``ids`` and score it in its original geometry.

    Returns:
        One row per case and foreground class, with the keys of :data:`CSV_FIELDS`.
    """
    rows: list[dict[str, Any]] = []
    classes = list(range(1, dataset.num_classes))
    ids = list(ids)
    it: Iterable[str] = ids
    if progress:

        it = tqdm(ids, desc="evaluate", leave=False)
    for cid in it:
        case = dataset[cid]
        probs = predict_probabilities(model, case.image, patch_size=patch_size, overlap=overlap,
                                      device=device, amp=amp).numpy()
        probs = _to_original(dataset, cid, probs)
        pred = probs_to_labels(probs)
        orig = dataset.original(cid)
        target = np.asarray(orig.label)
        if pred.shape != target.shape:
            raise ValueError(f"case {cid}: prediction mapped back has shape {pred.shape} but the original label "
                             f"has {target.shape}; the dataset's to_original() does not invert its preprocessing")
        if predictions_dir is not None:
            affine = orig.meta.get("affine")
            save_prediction(predictions_dir, cid, pred, num_classes=dataset.num_classes, affine=affine,
                            probs=probs if save_probabilities else None)
        for c, m in case_metrics(pred, target, classes).items():
            rows.append({"case_id": cid, "class": class_name(dataset, c), "dsc": m["dsc"],
                         "precision": m["precision"], "recall": m["recall"],
                         "tp": int(m["tp"]), "fp": int(m["fp"]), "fn": int(m["fn"])})
    return rows


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Atomically write the per-case metrics CSV."""
    atomic_write_csv(path, rows, CSV_FIELDS)


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{class: {metric: {"mean", "ci95", "n"}}}`` over the cases of ``rows``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cls in dict.fromkeys(r["class"] for r in rows):
        sub = [r for r in rows if r["class"] == cls]
        out[cls] = {}
        for m in METRICS:
            ci = mean_ci([float(r[m]) for r in sub])
            out[cls][m] = {"mean": ci.mean, "ci95": None if np.isnan(ci.half_width) else ci.half_width,
                           "n": ci.n}
    return out
