"""Seeded k-fold cross-validation splits, saved as JSON and reused (as the paper did).

Near-duplicate cases (:mod:`unifocal.data.duplicates`) are kept on one side of every fold (grouped
k-fold): a group goes whole into one validation fold. The groups are recorded in ``splits.json`` (each
fold's ``groups``: the groups of its validation cases), and a split that cuts a group in two, puts a
case on both sides of a fold or names a case the dataset does not have is refused with the case named.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unifocal._atomic import atomic_write
from unifocal.data.duplicates import (
    DUPLICATES_FILE,
    duplicate_groups,
    find_duplicates,
    load_duplicates,
    save_duplicates,
)

SPLITS_FILE = "splits.json"


def make_folds(ids: list[str], n_folds: int = 5, seed: int = 0,
               groups: Sequence[Sequence[str]] | None = None) -> list[dict[str, list[str]]]:
    """Assign cases to ``n_folds`` folds by one seeded random permutation, groups kept whole.

    The ids are sorted first, so the result depends only on the set of ids, the groups and ``seed``.
    The cases (each group counts as one unit holding its members) are permuted with ``seed``; units go,
    the largest first (a stable sort, so equal sizes keep the permuted order), each to the fold with the
    fewest cases so far (the lowest index on a tie). Without groups that is a round robin over the
    permutation; with groups, fold sizes differ by at most the size of the largest group. Every id is
    in exactly one validation set, and the members of a group in the same one.

    Args:
        ids: Case ids.
        n_folds: Number of folds (>= 2, <= number of ids).
        seed: Seed of the permutation.
        groups: Groups of near-duplicate case ids to keep in one fold (ids not in ``ids`` are
            refused; an id in two groups joins them).

    Returns:
        ``[{"train": [...], "val": [...]}, ...]`` (each list sorted); a fold whose validation set holds
        groups of two or more also has ``"groups"``: those groups.

    Raises:
        ValueError: duplicate ids, an impossible number of folds, or a group naming an unknown case.
    """
    if len(set(ids)) != len(ids):
        raise ValueError("make_folds: duplicate case ids")
    ids = sorted(ids)
    if n_folds < 2 or n_folds > len(ids):
        raise ValueError(f"cannot make {n_folds} folds from {len(ids)} cases")
    units = _units(ids, groups or [])
    if len(units) < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {len(units)} groups of near-duplicate cases")
    perm = np.random.default_rng(seed).permutation(len(units))
    order = sorted((units[i] for i in perm), key=len, reverse=True)  # stable: permuted order within a size
    members: list[list[str]] = [[] for _ in range(n_folds)]
    fold_groups: list[list[list[str]]] = [[] for _ in range(n_folds)]
    for unit in order:
        k = min(range(n_folds), key=lambda j: len(members[j]))
        members[k].extend(unit)
        if len(unit) > 1:
            fold_groups[k].append(sorted(unit))
    folds = []
    for k in range(n_folds):
        val = sorted(members[k])
        vs = set(val)
        fold: dict[str, Any] = {"train": [i for i in ids if i not in vs], "val": val}
        if fold_groups[k]:
            fold["groups"] = sorted(fold_groups[k], key=lambda g: g[0])
        folds.append(fold)
    return folds


def _units(ids: list[str], groups: Sequence[Sequence[str]]) -> list[list[str]]:
    """``ids`` partitioned into units: the (merged) groups and the single cases, in sorted-id order of
    their first member (without groups: the sorted ids one by one)."""
    known = set(ids)
    pairs = []
    for g in groups:
        unknown = [i for i in g if i not in known]
        if unknown:
            raise ValueError(f"near-duplicate group {list(g)} names case {unknown[0]!r}, which is not in the dataset")
        pairs += [(g[0], other) for other in g[1:]]
    merged = duplicate_groups(ids, pairs)
    grouped = {i for g in merged for i in g}
    units = merged + [[i] for i in ids if i not in grouped]
    return sorted(units, key=lambda u: u[0])


def save_splits(path: str | Path, folds: list[dict[str, Any]]) -> Path:
    """Write ``folds`` as JSON (nnU-Net's ``splits_final.json`` format, plus each fold's ``groups``
    when there are any), atomically."""
    path = Path(path)
    out = []
    for f in folds:
        fold: dict[str, Any] = {"train": list(f["train"]), "val": list(f["val"])}
        if f.get("groups"):
            fold["groups"] = [list(g) for g in f["groups"]]
        out.append(fold)
    atomic_write(path, lambda fh: fh.write(json.dumps(out, indent=1).encode()))
    return path


def load_splits(path: str | Path, ids: Sequence[str] | None = None,
                groups: Sequence[Sequence[str]] = ()) -> list[dict[str, Any]]:
    """Read folds written by :func:`save_splits` (or by hand, in nnU-Net's format) and check them.

    Args:
        path: The ``splits.json``.
        ids: The dataset's case ids: a case the file names outside them is refused.
        groups: Near-duplicate groups that must not be cut, beside those the file records.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a list of ``{"train", "val"}`` dicts of case ids; a case in two validation
            sets; a case on both sides of a fold; a case the dataset does not have; a group of
            near-duplicates cut in two by a fold. The message names the case.
    """
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable splits file ({exc})") from exc
    if not isinstance(data, list) or not all(
            isinstance(f, dict) and {"train", "val"} <= set(f)
            and all(isinstance(f[s], list) and all(isinstance(i, str) for i in f[s]) for s in ("train", "val"))
            for f in data):
        raise ValueError(f"{path}: expected a list of {{'train': [case ids], 'val': [case ids]}} folds")
    known = set(ids) if ids is not None else None
    seen: dict[str, int] = {}
    recorded: list[list[str]] = []
    for k, f in enumerate(data):
        both = sorted(set(f["train"]) & set(f["val"]))
        if both:
            raise ValueError(f"{path}: case {both[0]!r} is on both sides of fold {k} (train and val)")
        for i in f["val"]:
            if i in seen:
                raise ValueError(f"{path}: case {i!r} is in the validation sets of folds {seen[i]} and {k}")
            seen[i] = k
        if known is not None:
            unknown = sorted((set(f["train"]) | set(f["val"])) - known)
            if unknown:
                raise ValueError(f"{path}: fold {k} names case {unknown[0]!r}, which is not in the dataset"
                                 + (f" ({len(unknown)} such cases)" if len(unknown) > 1 else ""))
        g = f.get("groups", [])
        if not isinstance(g, list) or not all(isinstance(x, list) and all(isinstance(i, str) for i in x) for x in g):
            raise ValueError(f"{path}: fold {k}: 'groups' must be a list of lists of case ids")
        recorded += g
    for group in [*recorded, *groups]:
        for k, f in enumerate(data):
            train, val = set(f["train"]), set(f["val"])
            inside = [i for i in group if i in val]
            if inside and len(inside) < len(group):
                outside = next(i for i in group if i not in val)
                side = "training set" if outside in train else "neither side"
                raise ValueError(f"{path}: near-duplicates {inside[0]!r} and {outside!r} are split by fold {k}: "
                                 f"{inside[0]!r} is validated, {outside!r} is in its {side}; keep each group of "
                                 "duplicates in one fold (delete the file to make a grouped split)")
    out = []
    for f in data:
        fold: dict[str, Any] = {"train": list(f["train"]), "val": list(f["val"])}
        if f.get("groups"):
            fold["groups"] = [list(x) for x in f["groups"]]
        out.append(fold)
    return out


def get_splits(dataset: Any, folder: str | Path, n_folds: int = 5, seed: int = 0,
               group_duplicates: bool = False, progress: bool = False) -> list[dict[str, Any]]:
    """The splits of ``dataset``: ``<folder>/splits.json`` when present (checked), else made and saved.

    Args:
        dataset: A dataset (anything with ``ids``) or a list of ids.
        folder: Where ``splits.json`` lives (shared by every loss and run on the dataset).
        n_folds: Number of folds.
        seed: Seed used when the file is created.
        group_duplicates: Keep near-duplicate cases in one fold (grouped k-fold). The groups are read
            from ``<folder>/duplicates.json`` when it exists (``unifocal data duplicates``), else found
            with :func:`unifocal.data.duplicates.find_duplicates` (needs a dataset, not a list of ids)
            and written there. An existing ``splits.json`` must not cut a group of ``duplicates.json``.
        progress: Show a progress bar while finding duplicates.

    Raises:
        ValueError: The existing file does not cover exactly the dataset's ids, has another number of
            folds, or fails the checks of :func:`load_splits` (the case is named).
    """
    ids = list(getattr(dataset, "ids", dataset))
    folder = Path(folder)
    path, dup_path = folder / SPLITS_FILE, folder / DUPLICATES_FILE
    groups = load_duplicates(dup_path) if dup_path.is_file() else None
    if path.is_file():
        folds = load_splits(path, ids, groups or ())
        covered = {i for f in folds for i in f["val"]}
        if covered != set(ids) or len(folds) != n_folds:
            missing = sorted(set(ids) - covered)
            hint = f"; case {missing[0]!r} is in no validation set" if missing else ""
            raise ValueError(f"{path}: existing splits ({len(folds)} folds, {len(covered)} cases) do not "
                             f"match the dataset ({n_folds} folds, {len(set(ids))} cases){hint}; delete it or "
                             "use another folder")
        return folds
    if group_duplicates and groups is None:
        if not hasattr(dataset, "original"):
            raise ValueError("group_duplicates needs a dataset (to read its images), not a list of ids")
        found = find_duplicates(dataset, progress=progress)
        groups = found["groups"]
        folder.mkdir(parents=True, exist_ok=True)
        save_duplicates(dup_path, found)
    folds = make_folds(ids, n_folds=n_folds, seed=seed, groups=groups if group_duplicates else None)
    save_splits(path, folds)
    return folds
