"""Near-duplicate cases: the same scan stored more than once, found so that folds do not leak.

Public datasets hold the same scan more than once, at other crops, resolutions or with other burned-in
marks (BUSI does: ``docs/data.md``, "Near-duplicates"). When two such copies fall on the two sides of a
fold, the network is validated on an image it was trained on, and every loss scores higher there.

Criterion (``docs/data.md`` says how it was chosen): each case's image, as stored (before
preprocessing), averaged over its channels, is reduced to a *thumbnail* of ``size`` pixels per axis by
area averaging (32 x 32 in 2D, 16 x 16 x 16 in 3D), and two cases are near-duplicates when the Pearson
correlation of their thumbnails exceeds ``threshold`` (default 0.95). Area averaging makes the
criterion indifferent to resolution, and a thumbnail moves little under a crop of a few per cent of
the image, so rescaled and slightly cropped copies are found; a crop that removes much of the image is
a different picture and is not. Groups are the connected components of the near-duplicate relation
(if A ~ B and B ~ C, then A, B, C are one group even when A and C are below the threshold), so that a
split that keeps every group on one side has no near-duplicate pair across a fold.

The groups are written to ``duplicates.json`` beside ``splits.json`` (:func:`save_duplicates`), and
:func:`unifocal.data.splits.get_splits` keeps each group in one fold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from unifocal._atomic import atomic_write

__all__ = [
    "DEFAULT_THRESHOLD",
    "DUPLICATES_FILE",
    "duplicate_groups",
    "find_duplicates",
    "load_duplicates",
    "save_duplicates",
    "thumbnail",
    "thumbnail_correlation",
]

DUPLICATES_FILE = "duplicates.json"
#: Thumbnail correlation above which two cases are one scan (``docs/data.md``: how it was chosen).
DEFAULT_THRESHOLD = 0.95
_SIZE = {2: 32, 3: 16}


def _area_resize(a: np.ndarray, size: int) -> np.ndarray:
    """Area-average ``a`` (any number of axes) to ``size`` per axis (each output pixel is the mean of
    the input pixels it covers, with fractional coverage at the borders)."""
    out = np.asarray(a, dtype=np.float64)
    for axis, n in enumerate(out.shape):
        # weights[i, j]: the share of input pixel j in output pixel i (edges of the two grids on [0, n])
        edges = np.linspace(0.0, n, size + 1)
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(n)[None, :]
        w = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
        w /= w.sum(axis=1, keepdims=True)
        out = np.moveaxis(np.tensordot(w, np.moveaxis(out, axis, 0), axes=(1, 0)), 0, axis)
    return out


def thumbnail(image: np.ndarray, size: int | None = None) -> np.ndarray:
    """The thumbnail of an image ``(C, *spatial)``: channel mean, area-averaged to ``size`` per axis.

    Args:
        image: ``(C, H, W)`` or ``(C, D, H, W)``.
        size: Pixels per axis (default 32 in 2D, 16 in 3D).

    Raises:
        ValueError: for an image that is not 2D or 3D with a channel axis, or a non-finite image.
    """
    img = np.asarray(image)
    if img.ndim not in (3, 4):
        raise ValueError(f"thumbnail: expected an image (C, H, W) or (C, D, H, W), got shape {img.shape}")
    spatial = img.ndim - 1
    size = int(size or _SIZE[spatial])
    mean = img.astype(np.float64).mean(axis=0)
    if not np.all(np.isfinite(mean)):
        raise ValueError("thumbnail: the image has NaN or infinite values")
    return _area_resize(mean, size)


def _standardise(thumbs: np.ndarray) -> np.ndarray:
    x = np.asarray(thumbs, dtype=np.float64).reshape(len(thumbs), -1)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def thumbnail_correlation(thumbs: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of thumbnails ``(N, ...)`` (a constant thumbnail correlates 0 with
    every other, and 1 with itself)."""
    z = _standardise(thumbs)
    r = np.clip(z @ z.T, -1.0, 1.0)
    np.fill_diagonal(r, 1.0)
    return r


def _pairs_above(thumbs: np.ndarray, threshold: float, block: int = 1024) -> list[tuple[int, int, float]]:
    """``(i, j, r)`` with ``i < j`` and correlation ``r > threshold``, computed a block of rows at a time
    (memory ``block × N``, not ``N × N``, for datasets of many thousand images)."""
    z = _standardise(thumbs)
    out = []
    for start in range(0, len(z), block):
        r = np.clip(z[start:start + block] @ z.T, -1.0, 1.0)
        ii, jj = np.nonzero(r > threshold)
        keep = jj > ii + start
        out += [(int(i) + start, int(j), float(r[i, j])) for i, j in zip(ii[keep], jj[keep])]
    return out


def duplicate_groups(ids: Sequence[str], pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components of ``pairs`` over ``ids``: groups of two or more, each sorted, sorted by
    their first id."""
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict[str, list[str]] = {}
    for i in ids:
        comps.setdefault(root(i), []).append(i)
    return sorted((sorted(g) for g in comps.values() if len(g) > 1), key=lambda g: g[0])


def find_duplicates(dataset: Any, threshold: float = DEFAULT_THRESHOLD, size: int | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Find the near-duplicate groups of a dataset (the criterion of the module docstring).

    Args:
        dataset: A :class:`~unifocal.data.SegmentationDataset` (its images as stored are read with
            ``original``).
        threshold: Thumbnail correlation above which two cases are near-duplicates, in ``(0, 1]``.
        size: Thumbnail pixels per axis (default 32 in 2D, 16 in 3D).
        progress: Show a progress bar.

    Returns:
        ``{"criterion": ..., "threshold": t, "size": s, "groups": [[id, ...], ...],
        "pairs": [[id_a, id_b, r], ...]}`` with every pair above the threshold.

    Raises:
        ValueError: for a threshold outside ``(0, 1]``.
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"duplicate threshold must be in (0, 1], got {threshold}")
    ids = list(dataset.ids)
    it: Iterable[str] = ids
    if progress:
        it = tqdm(ids, desc="thumbnails")
    thumbs = []
    for cid in it:
        try:
            thumbs.append(thumbnail(dataset.original(cid).image, size))
        except ValueError as e:
            raise ValueError(f"case {cid!r}: {e}") from e
    shapes = {t.shape for t in thumbs}
    if len(shapes) > 1:
        raise ValueError(f"cases of different dimensionality {sorted(shapes)}; cannot compare thumbnails")
    found = _pairs_above(np.stack(thumbs), float(threshold)) if thumbs else []
    pairs = [[ids[a], ids[b], round(r, 6)] for a, b, r in found]
    pairs.sort(key=lambda p: (p[0], p[1]))
    return {
        "criterion": "Pearson correlation of area-averaged thumbnails of the stored images",
        "threshold": float(threshold),
        "size": int(thumbs[0].shape[0]) if thumbs else int(size or 0),
        "cases": len(ids),
        "groups": duplicate_groups(ids, [(a, b) for a, b, _ in pairs]),
        "pairs": pairs,
    }


def save_duplicates(path: str | Path, found: dict[str, Any]) -> Path:
    """Write the result of :func:`find_duplicates` as JSON, atomically."""
    path = Path(path)
    atomic_write(path, lambda f: f.write(json.dumps(found, indent=1).encode()))
    return path


def load_duplicates(path: str | Path) -> list[list[str]]:
    """The groups of a ``duplicates.json`` (written by :func:`save_duplicates`, or by hand: a JSON
    object with ``groups``, a list of lists of case ids, or such a list alone).

    Raises:
        ValueError: an unreadable file, or groups that are not lists of two or more case ids.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable duplicates file ({exc})") from exc
    groups = data.get("groups") if isinstance(data, dict) else data
    if not isinstance(groups, list) or not all(
            isinstance(g, list) and len(g) >= 2 and all(isinstance(i, str) for i in g) for g in groups):
        raise ValueError(f"{path}: 'groups' must be a list of lists of two or more case ids")
    return [sorted(g) for g in groups]
