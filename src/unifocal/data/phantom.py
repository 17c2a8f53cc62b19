"""A built-in synthetic phantom: small, rare lesions on a textured, noisy background.

Deterministic by ``seed`` (case ``i`` uses ``numpy.random.default_rng([seed, i])``), generated in
memory (no files), so the demo and the fast tests need no download. Hand-written because no
library ships such a phantom; it uses only :mod:`numpy` and :func:`scipy.ndimage.gaussian_filter`.

Each case: a smooth low-frequency texture plus fine speckle-like texture, an optional brighter
"organ" ellipse, then for each foreground class 1..K-1 one to ``max_lesions`` small ellipsoidal
lesions (class ``c`` shifted by ``contrast * c`` in intensity, with blurred borders so the boundary
is not trivial) and additive Gaussian noise. With the defaults lesions cover about 1-3% of the
image, a rare-class problem like the paper's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from unifocal.data.case import Case
from unifocal.data.dataset import SegmentationDataset
from unifocal.data.preprocessing import make_preprocessing

PHANTOM_DEFAULTS: dict[str, dict[str, Any]] = {
    "phantom2d": {"n_cases": 24, "size": 64, "num_classes": 2, "seed": 0, "max_lesions": 2,
                  "lesion_radius": (2.0, 5.0), "contrast": 1.0, "noise": 0.6},
    "phantom3d": {"n_cases": 12, "size": 32, "num_classes": 2, "seed": 0, "max_lesions": 2,
                  "lesion_radius": (2.5, 5.0), "contrast": 1.0, "noise": 0.6},
}


def make_phantom_case(index: int, *, spatial_dims: int = 2, size: int | tuple[int, ...] = 64,
                      num_classes: int = 2, seed: int = 0, max_lesions: int = 2,
                      lesion_radius: tuple[float, float] = (2.0, 5.0), contrast: float = 1.0,
                      noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Generate one phantom case.

    Args:
        index: Case number (with ``seed``, fixes the random stream).
        spatial_dims: 2 or 3.
        size: Edge length, or the full spatial shape.
        num_classes: Classes including background (>= 2).
        seed: Dataset seed.
        max_lesions: Up to this many lesions per foreground class (at least one).
        lesion_radius: Range of lesion semi-axes in pixels.
        contrast: Lesion intensity shift per class, in units of the background texture std.
        noise: Std of the additive white noise.

    Returns:
        ``(image float32 (1, *shape), label uint8 (*shape))``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    shape = (int(size),) * spatial_dims if np.isscalar(size) else tuple(int(s) for s in size)
    rng = np.random.default_rng([int(seed), int(index)])
    coarse = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(shape) / 10.0, mode="wrap")
    coarse /= coarse.std() + 1e-8
    fine = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=1.0, mode="wrap")
    fine /= fine.std() + 1e-8
    img = 0.8 * coarse + 0.5 * fine
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))
    # a bright "organ" ellipse covering part of the field of view
    centre = np.array(shape) * rng.uniform(0.35, 0.65, spatial_dims)
    radii = np.array(shape) * rng.uniform(0.25, 0.4, spatial_dims)
    organ = (((grid - centre.reshape(-1, *[1] * spatial_dims)) / radii.reshape(-1, *[1] * spatial_dims)) ** 2
             ).sum(0) <= 1.0
    img = img + 0.7 * ndimage.gaussian_filter(organ.astype(np.float64), 1.5)
    label = np.zeros(shape, dtype=np.uint8)
    lo, hi = lesion_radius
    for c in range(1, num_classes):
        n = int(rng.integers(1, max(1, max_lesions) + 1))
        for _ in range(n):
            r = rng.uniform(lo, hi, spatial_dims)
            margin = np.minimum(np.ceil(r) + 1, (np.array(shape) - 1) / 2.0)
            ctr = np.array([rng.uniform(m, s - 1 - m) for m, s in zip(margin, shape)])
            d = (((grid - ctr.reshape(-1, *[1] * spatial_dims)) / r.reshape(-1, *[1] * spatial_dims)) ** 2).sum(0)
            blob = d <= 1.0
            label[blob] = c
            soft = ndimage.gaussian_filter(blob.astype(np.float64), 0.8)
            img = img + contrast * (1.0 + 0.5 * (c - 1)) * (1 if c % 2 else -1) * 2.0 * soft
    img = img + noise * rng.standard_normal(shape)
    img = (img * 20.0 + 100.0).astype(np.float32)  # an arbitrary scanner-like intensity range
    return img[None], label


class PhantomDataset(SegmentationDataset):
    """The synthetic phantom as a :class:`SegmentationDataset` (``phantom2d`` / ``phantom3d``).

    Args:
        name: ``"phantom2d"`` or ``"phantom3d"``.
        n_cases: Number of cases.
        size: Edge length (or shape) of each case.
        num_classes: Classes including background (default 2: binary).
        seed: Generation seed.
        preprocessing: Preprocessing dict (default: z-score).
        **params: Further :func:`make_phantom_case` arguments.
    """

    def __init__(self, name: str = "phantom2d", *, n_cases: int | None = None, size: Any = None,
                 num_classes: int | None = None, seed: int | None = None,
                 preprocessing: dict[str, Any] | None = None, cache_dir=None, cache: bool = False,
                 memory_cache: int | None = None, rare_classes: list[int] | None = None,
                 class_names: list[str] | None = None, **params: Any):
        if name not in PHANTOM_DEFAULTS:
            raise ValueError(f"unknown phantom {name!r}; use one of {sorted(PHANTOM_DEFAULTS)}")

        cfg = dict(PHANTOM_DEFAULTS[name])
        for k, v in {"n_cases": n_cases, "size": size, "num_classes": num_classes, "seed": seed}.items():
            if v is not None:
                cfg[k] = v
        unknown = set(params) - set(cfg)
        if unknown:
            raise TypeError(f"unknown phantom options {sorted(unknown)}")
        cfg.update(params)
        self.params = cfg
        dims = 2 if name == "phantom2d" else 3
        k = int(cfg["num_classes"])
        n = int(cfg["n_cases"])
        ids = [f"{name}_{i:03d}" for i in range(n)]
        names = ["background", "lesion"] if k == 2 else ["background"] + [f"lesion{c}" for c in range(1, k)]
        if class_names is not None:
            if len(class_names) != k:
                raise ValueError(f"class_names {class_names} do not have {k} entries")
            names = list(class_names)
        super().__init__(name=name, layout=name, ids=ids, num_classes=k, class_names=names,
                         spatial_dims=dims, in_channels=1,
                         preprocessing=make_preprocessing(None, **(preprocessing or {})),
                         rare_classes=rare_classes, cache_dir=cache_dir, cache=cache,
                         memory_cache=max(n, 1) if memory_cache is None else memory_cache, root=None)

    def _source_signature(self, case_id: str) -> Any:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()} | {"id": case_id}

    def _load_raw(self, case_id: str) -> Case:
        i = self._index[case_id]
        p = dict(self.params)
        p.pop("n_cases")
        image, label = make_phantom_case(i, spatial_dims=self.spatial_dims, **p)
        dims = self.spatial_dims
        meta = {"spacing": [1.0] * dims, "affine": np.eye(4), "original_shape": list(label.shape),
                "image_path": None, "label_path": None, "phantom": dict(self._source_signature(case_id))}
        return Case(case_id, image, label, meta)
