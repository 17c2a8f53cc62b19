"""Seeded k-fold cross-validation splits, saved as JSON and reused (as the paper did)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from unifocal._atomic import atomic_write

SPLITS_FILE = "splits.json"


def make_folds(ids: list[str], n_folds: int = 5, seed: int = 0) -> list[dict[str, list[str]]]:
    """Assign cases to ``n_folds`` folds by one seeded random permutation.

    The ids are sorted first, so the result depends only on the set of ids and ``seed``. Fold
    sizes differ by at most one; every id is in exactly one validation set.

    Args:
        ids: Case ids.
        n_folds: Number of folds (>= 2, <= number of ids).
        seed: Seed of the permutation.

    Returns:
        ``[{"train": [...], "val": [...]}, ...]`` (each list sorted).
    """
    if len(set(ids)) != len(ids):
        raise ValueError("make_folds: duplicate case ids")
    ids = sorted(ids)
    if n_folds < 2 or n_folds > len(ids):
        raise ValueError(f"cannot make {n_folds} folds from {len(ids)} cases")
    perm = np.random.default_rng(seed).permutation(len(ids))
    folds = []
    for k in range(n_folds):
        val = sorted(ids[i] for i in perm[k::n_folds])
        vs = set(val)
        folds.append({"train": [i for i in ids if i not in vs], "val": val})
    return folds


def save_splits(path: str | Path, folds: list[dict[str, list[str]]]) -> Path:
    """Write ``folds`` as JSON (nnU-Net's ``splits_final.json`` format), atomically."""
    path = Path(path)
    blob = json.dumps([{"train": list(f["train"]), "val": list(f["val"])} for f in folds], indent=1)
    atomic_write(path, lambda f: f.write(blob.encode()))
    return path


def load_splits(path: str | Path) -> list[dict[str, list[str]]]:
    """Read folds written by :func:`save_splits`.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a list of ``{"train", "val"}`` dicts, or a case in two validation sets.
    """
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: unreadable splits file ({exc})") from exc
    if not isinstance(data, list) or not all(isinstance(f, dict) and {"train", "val"} <= set(f) for f in data):
        raise ValueError(f"{path}: expected a list of {{'train': [...], 'val': [...]}} folds")
    seen: set[str] = set()
    for f in data:
        dup = seen & set(f["val"])
        if dup:
            raise ValueError(f"{path}: case(s) {sorted(dup)[:5]} in more than one validation fold")
        seen |= set(f["val"])
    return [{"train": list(f["train"]), "val": list(f["val"])} for f in data]


def get_splits(dataset: Any, folder: str | Path, n_folds: int = 5, seed: int = 0) -> list[dict[str, list[str]]]:
    """The splits of ``dataset``: ``<folder>/splits.json`` when present, else made and saved.

    Args:
        dataset: A dataset (anything with ``ids``) or a list of ids.
        folder: Where ``splits.json`` lives (shared by every loss and run on the dataset).
        n_folds: Number of folds.
        seed: Seed used when the file is created.

    Raises:
        ValueError: The existing file does not cover exactly the dataset's ids or has another
            number of folds.
    """
    ids = list(getattr(dataset, "ids", dataset))
    path = Path(folder) / SPLITS_FILE
    if path.is_file():
        folds = load_splits(path)
        covered = {i for f in folds for i in f["val"]}
        if covered != set(ids) or len(folds) != n_folds:
            raise ValueError(f"{path}: existing splits ({len(folds)} folds, {len(covered)} cases) do not "
                             f"match the dataset ({n_folds} folds, {len(set(ids))} cases); delete it or "
                             "use another folder")
        return folds
    folds = make_folds(ids, n_folds=n_folds, seed=seed)
    save_splits(path, folds)
    return folds
