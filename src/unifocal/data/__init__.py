"""Datasets, preprocessing, cache, folds, patch sampling, augmentation and the synthetic phantom.

The public API (see ``docs/architecture.md`` and ``docs/data.md``)::

    ds = load_dataset("phantom2d")                 # or a folder; layout detected or layout="msd"...
    folds = get_splits(ds, "runs/phantom2d", n_folds=5, seed=0)
    train = make_train_loader(ds, folds[0]["train"], batch_size=8, patch_size=(64, 64))
    for case in make_eval_loader(ds, folds[0]["val"]): ...
"""

import importlib
from typing import Any

from unifocal.data.cache import default_cache_dir
from unifocal.data.case import Case
from unifocal.data.dataset import SegmentationDataset
from unifocal.data.phantom import PhantomDataset, make_phantom_case
from unifocal.data.preprocessing import make_preprocessing, preprocess, restore_geometry
from unifocal.data.readers import KITS19_EXCLUDED, LAYOUTS, detect_layout, load_dataset
from unifocal.data.splits import get_splits, load_splits, make_folds, save_splits

# torch / MONAI are imported on first use of these names (keeps `unifocal data summary` and
# readers-only use light)
_LAZY = {
    "AUGMENT_DEFAULTS": "unifocal.data.augment",
    "apply_augmentation": "unifocal.data.augment",
    "build_augmentation": "unifocal.data.augment",
    "make_eval_loader": "unifocal.data.loaders",
    "make_train_loader": "unifocal.data.loaders",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUGMENT_DEFAULTS",
    "KITS19_EXCLUDED",
    "LAYOUTS",
    "Case",
    "PhantomDataset",
    "SegmentationDataset",
    "apply_augmentation",
    "build_augmentation",
    "default_cache_dir",
    "detect_layout",
    "get_splits",
    "load_dataset",
    "load_splits",
    "make_eval_loader",
    "make_folds",
    "make_phantom_case",
    "make_preprocessing",
    "make_train_loader",
    "preprocess",
    "restore_geometry",
    "save_splits",
]
