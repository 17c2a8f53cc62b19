"""Preprocessing as in the paper (section 3.2): clipping, resampling / resizing, z-scoring.

The steps run in a fixed order: ``clip`` -> ``spacing`` (resample) -> ``resize`` -> ``normalize``.
Every step is configured by one key of the preprocessing dict, which also keys the on-disk cache.

Resampling uses :func:`scipy.ndimage.zoom` (``grid_mode=True``, i.e. voxel areas are aligned as in
MONAI ``Spacing`` / ``Resize``): images with spline order ``image_order`` (default 1, linear),
labels with order 0 (nearest neighbour, so they stay integer with the same label set). When an
image is downsampled it is first smoothed with a Gaussian (``anti_aliasing``, sigma as in
scikit-image ``resize``), otherwise a 564x474 ultrasound image shrunk to 128x128 aliases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

#: Bump when the preprocessing code changes in a way that changes outputs (invalidates caches).
PREPROCESSING_VERSION = 1

DEFAULT_PREPROCESSING: dict[str, Any] = {
    "clip": None,
    "spacing": None,
    "resize": None,
    "normalize": "zscore",
    "image_order": 1,
    "anti_aliasing": True,
}

NORMALIZATIONS = ("zscore", "zscore_nonzero", "none")


def make_preprocessing(base: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Resolve a full preprocessing dict from defaults, a base and overrides.

    Args:
        base: Layout defaults (e.g. ``{"resize": [128, 128]}`` for BUS).
        **overrides: Values that win over ``base`` (``None`` disables a step).

    Returns:
        A JSON-serialisable dict with every key of :data:`DEFAULT_PREPROCESSING` plus ``version``.

    Raises:
        ValueError: Unknown key or bad value.
    """
    out = dict(DEFAULT_PREPROCESSING)
    for src in (base or {}), overrides:
        for k, v in src.items():
            if k not in DEFAULT_PREPROCESSING:
                raise ValueError(f"unknown preprocessing option {k!r}; known: {sorted(DEFAULT_PREPROCESSING)}")
            out[k] = v
    for k in ("clip", "spacing", "resize"):
        if out[k] is not None:
            out[k] = [float(x) for x in out[k]] if k != "resize" else [int(x) for x in out[k]]
    if out["clip"] is not None and (len(out["clip"]) != 2 or out["clip"][0] >= out["clip"][1]):
        raise ValueError(f"clip must be [low, high] with low < high, got {out['clip']}")
    if out["normalize"] not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {out['normalize']!r}")
    out["image_order"] = int(out["image_order"])
    out["anti_aliasing"] = bool(out["anti_aliasing"])
    out["version"] = PREPROCESSING_VERSION
    return out


def _check_dims(name: str, values: list, spatial_dims: int) -> None:
    if len(values) != spatial_dims:
        raise ValueError(f"preprocessing {name}={values} has {len(values)} entries for {spatial_dims}D data")


def _new_affine(affine: np.ndarray, old_shape: tuple[int, ...], new_shape: tuple[int, ...]) -> np.ndarray:
    """Affine of a grid-aligned resampling (voxel areas kept, as ``grid_mode=True``)."""
    affine = np.asarray(affine, dtype=np.float64)
    r = np.ones(3)
    n = len(old_shape)
    r[:n] = np.asarray(old_shape, float) / np.asarray(new_shape, float)
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] @ np.diag(r)
    out[:3, 3] = affine[:3, :3] @ (0.5 * (r - 1.0)) + affine[:3, 3]
    return out


def resample_array(arr: np.ndarray, new_shape: tuple[int, ...], *, is_label: bool, order: int = 1,
                   anti_aliasing: bool = True) -> np.ndarray:
    """Resample one spatial array (no channel axis) to ``new_shape``.

    Args:
        arr: ``(*spatial)`` array.
        new_shape: Target spatial shape.
        is_label: Nearest neighbour (order 0) and no smoothing when true.
        order: Spline order for images.
        anti_aliasing: Gaussian prefilter for images along axes that shrink.

    Returns:
        The resampled array (labels keep their dtype, images are float32).
    """
    old = np.asarray(arr.shape, float)
    new = np.asarray(new_shape, float)
    if tuple(arr.shape) == tuple(new_shape):
        return arr if is_label else arr.astype(np.float32, copy=False)
    factors = new / old
    if is_label:
        return ndimage.zoom(arr, factors, order=0, mode="nearest", grid_mode=True)
    src = arr.astype(np.float32, copy=False)
    if anti_aliasing and np.any(factors < 1):
        sigma = np.maximum(0.0, (1.0 / factors - 1.0) / 2.0)
        src = ndimage.gaussian_filter(src, sigma, mode="nearest")
    out = ndimage.zoom(src, factors, order=order, mode="nearest", grid_mode=True)
    return out.astype(np.float32, copy=False)


def _resample_case(image: np.ndarray, label: np.ndarray | None, new_shape: tuple[int, ...],
                   params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    img = np.stack([resample_array(c, new_shape, is_label=False, order=params["image_order"],
                                   anti_aliasing=params["anti_aliasing"]) for c in image])
    lab = None if label is None else resample_array(label, new_shape, is_label=True)
    return img, lab


def zscore(image: np.ndarray, *, nonzero: bool = False) -> np.ndarray:
    """Z-score each channel: ``(x - mean) / std``.

    Args:
        image: ``(C, *spatial)``.
        nonzero: Statistics over non-zero voxels only (BraTS: the brain); zero voxels stay 0.

    Returns:
        float32 array of the same shape.
    """
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        if nonzero:
            x = image[c].astype(np.float64)
            m = x != 0
            vals = x[m]
            res = np.zeros_like(x)
            if vals.size:
                res[m] = (vals - vals.mean()) / max(vals.std(), 1e-8)
            out[c] = res
        else:
            # float64 statistics and arithmetic, but the output in chunks: a 4000x4000 image needs one
            # float64 temporary (for the standard deviation) instead of three
            mean = float(image[c].mean(dtype=np.float64))
            std = max(float(image[c].std(dtype=np.float64)), 1e-8)
            flat_in, flat_out = image[c].reshape(-1), out[c].reshape(-1)
            step = 1 << 20
            for i in range(0, flat_in.size, step):
                flat_out[i:i + step] = (flat_in[i:i + step].astype(np.float64) - mean) / std
    return out


def preprocess(image: np.ndarray, label: np.ndarray, meta: dict[str, Any], params: dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Apply the preprocessing ``params`` to one case.

    Args:
        image: Raw image ``(C, *spatial)``.
        label: Mapped label ``(*spatial)`` (uint8).
        meta: Raw meta (``spacing``, ``affine``, ...).
        params: A dict from :func:`make_preprocessing`.

    Returns:
        ``(image float32, label uint8, meta)``; meta gains ``original_spacing``,
        ``original_affine``, ``original_shape`` and ``preprocessing``, and ``spacing``/``affine``
        describe the preprocessed grid.
    """
    dims = image.ndim - 1
    meta = dict(meta)
    spacing = tuple(float(s) for s in meta.get("spacing", (1.0,) * dims))
    affine = np.asarray(meta.get("affine", np.eye(4)), dtype=np.float64)
    meta["original_spacing"] = list(spacing)
    meta["original_affine"] = affine.tolist()
    meta["original_shape"] = list(image.shape[1:])
    img = image.astype(np.float32, copy=False)
    lab = label
    if params.get("clip") is not None:
        lo, hi = params["clip"]
        img = np.clip(img, lo, hi)
    if params.get("spacing") is not None:
        target = tuple(params["spacing"])
        _check_dims("spacing", list(target), dims)
        new_shape = tuple(max(1, round(s * sp / t)) for s, sp, t in zip(img.shape[1:], spacing, target))
        affine = _new_affine(affine, img.shape[1:], new_shape)
        img, lab = _resample_case(img, lab, new_shape, params)
        spacing = target
    if params.get("resize") is not None:
        new_shape = tuple(params["resize"])
        _check_dims("resize", list(new_shape), dims)
        old_shape = img.shape[1:]
        spacing = tuple(sp * o / n for sp, o, n in zip(spacing, old_shape, new_shape))
        affine = _new_affine(affine, old_shape, new_shape)
        img, lab = _resample_case(img, lab, new_shape, params)
    norm = params.get("normalize", "zscore")
    if norm == "zscore":
        img = zscore(img)
    elif norm == "zscore_nonzero":
        img = zscore(img, nonzero=True)
    meta["spacing"] = [float(s) for s in spacing]
    meta["affine"] = affine.tolist()
    meta["shape"] = list(img.shape[1:])
    meta["preprocessing"] = dict(params)
    return np.ascontiguousarray(img, dtype=np.float32), np.ascontiguousarray(lab, dtype=np.uint8), meta


def restore_geometry(array: np.ndarray, meta: dict[str, Any], *, is_label: bool = True) -> np.ndarray:
    """Map an array on the preprocessed grid back to the original grid of the case.

    Preprocessing only resamples (no cropping), so the inverse is a resampling to
    ``meta["original_shape"]``.

    Args:
        array: ``(*spatial)`` label map, or ``(C, *spatial)`` probabilities/logits when
            ``is_label`` is false.
        meta: The preprocessed case's meta.
        is_label: Nearest-neighbour for label maps, linear for probabilities.

    Returns:
        The array in the original geometry.
    """
    orig = tuple(int(s) for s in meta["original_shape"])
    if tuple(np.shape(array)[-len(orig):]) == orig:  # nothing was resampled: no copy
        return np.asarray(array) if is_label else np.asarray(array, dtype=np.float32)
    if is_label:
        return resample_array(np.asarray(array), orig, is_label=True)
    arr = np.asarray(array, dtype=np.float32)
    return np.stack([resample_array(c, orig, is_label=False, order=1, anti_aliasing=False) for c in arr])
