"""Data augmentation as in the paper: scaling, rotation, mirroring, gamma, elastic deformation.

Built on MONAI so image and mask get the same spatial transform (masks with nearest-neighbour
interpolation, so they stay integer with no new labels). Each transform has its own probability;
``p_*=0`` switches one off.

Scaling, rotation and elastic deformation are drawn independently (each with its probability) but
applied in **one** resampling (:class:`RandSpatiald`, as batchgenerators' ``SpatialTransform`` used
by the paper): chaining MONAI ``RandAffined`` + ``Rand2DElasticd`` resamples two or three times,
which blurs the image and erodes small lesions in the nearest-neighbour mask (measured: Dice of
the mask with the transformed image fell to ~0.75 for 3-voxel lesions). The sampling grid is built
with MONAI's ``create_grid`` / ``create_rotate`` / ``create_scale`` and applied with MONAI
``Resample``; the elastic field is batchgenerators' (uniform noise smoothed by a Gaussian of
``sigma``, times ``alpha``), computed with :func:`scipy.ndimage.gaussian_filter`.
Mirroring is MONAI ``RandFlipd`` and gamma MONAI ``RandAdjustContrastd`` (statistics retained).

MONAI is imported inside the functions that use it, on the first augmentation: importing it takes about
as long as torch, and the loaders (hence the training loop) are also imported where nothing is augmented
(a run with ``augment: false``, a study's check for finished runs).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

AUGMENT_DEFAULTS: dict[str, Any] = {
    "p_scale": 0.2, "scale_range": 0.15,          # isotropic zoom factor 1 ± 0.15
    "p_rotate": 0.2, "rotate_degrees": 30.0,      # uniform in ± degrees (every axis in 3D)
    "p_flip": 0.5,                                # per spatial axis
    "p_gamma": 0.3, "gamma_range": (0.7, 1.5),    # intensity stats retained (as batchgenerators)
    "p_elastic": 0.2,
    "elastic_sigma": (9.0, 13.0),                 # Gaussian smoothing of the field, px (nnU-Net)
    "elastic_alpha_2d": (0.0, 200.0),             # field magnitude (nnU-Net 2D)
    "elastic_alpha_3d": (0.0, 900.0),             # field magnitude (nnU-Net 3D)
}


class RandSpatiald:
    """Random scaling, rotation and elastic deformation of ``image`` and ``label`` in one resampling.

    Each component is switched on independently with its own probability. The image is resampled
    bilinearly, the label with nearest neighbour; outside the field of view both are 0.

    Args:
        spatial_dims: 2 or 3.
        p_scale: Probability of an isotropic scaling by a factor in ``1 ± scale_range``.
        scale_range: Half-width of the scaling factor range.
        p_rotate: Probability of a rotation (each axis uniform in ``± rotate_degrees``).
        rotate_degrees: Maximum rotation angle.
        p_elastic: Probability of an elastic deformation.
        elastic_sigma: Range of the Gaussian sigma smoothing the displacement field.
        elastic_alpha: Range of the displacement field magnitude.
    """

    def __init__(self, spatial_dims: int, p_scale: float, scale_range: float, p_rotate: float,
                 rotate_degrees: float, p_elastic: float, elastic_sigma: tuple[float, float],
                 elastic_alpha: tuple[float, float]):
        self.dims = spatial_dims
        self.p_scale, self.scale_range = float(p_scale), float(scale_range)
        self.p_rotate, self.rotate = float(p_rotate), math.radians(float(rotate_degrees))
        self.p_elastic, self.sigma, self.alpha = float(p_elastic), tuple(elastic_sigma), tuple(elastic_alpha)
        self.R = np.random.RandomState()

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        self.R = state if state is not None else np.random.RandomState(seed)
        return self

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        from monai.transforms import Resample, create_grid, create_rotate, create_scale

        do_scale = self.R.uniform() < self.p_scale
        do_rot = self.R.uniform() < self.p_rotate
        do_el = self.R.uniform() < self.p_elastic
        if not (do_scale or do_rot or do_el):
            return data
        d = dict(data)
        shape = tuple(d["label"].shape[1:])
        grid = np.asarray(create_grid(shape), dtype=np.float64)  # centred pixel coords, homogeneous
        if do_el:
            sigma = self.R.uniform(*self.sigma)
            alpha = self.R.uniform(*self.alpha)
            for ax in range(self.dims):
                noise = self.R.uniform(-1.0, 1.0, shape)
                grid[ax] += gaussian_filter(noise, sigma, mode="constant") * alpha
        mat = np.eye(self.dims + 1)
        if do_rot:
            n_angles = 1 if self.dims == 2 else 3
            mat = mat @ np.asarray(create_rotate(self.dims, self.R.uniform(-self.rotate, self.rotate, n_angles).tolist()))
        if do_scale:
            f = self.R.uniform(1.0 - self.scale_range, 1.0 + self.scale_range)
            mat = mat @ np.asarray(create_scale(self.dims, [f] * self.dims))
        if do_rot or do_scale:
            grid = (mat @ grid.reshape(self.dims + 1, -1)).reshape(grid.shape)
        g = torch.as_tensor(grid, dtype=torch.float32)
        d["image"] = Resample(mode="bilinear", padding_mode="zeros")(torch.as_tensor(d["image"]), g)
        d["label"] = Resample(mode="nearest", padding_mode="zeros")(torch.as_tensor(d["label"]), g)
        return d


def augment_params(**overrides: Any) -> dict[str, Any]:
    """Defaults of :data:`AUGMENT_DEFAULTS` with ``overrides``; unknown keys raise ``ValueError``."""
    unknown = set(overrides) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {sorted(unknown)}; known: {sorted(AUGMENT_DEFAULTS)}")
    return {**AUGMENT_DEFAULTS, **overrides}


def build_augmentation(spatial_dims: int, **params: Any):
    """A MONAI ``Compose`` on ``{"image": (C,*s), "label": (1,*s)}`` dicts.

    Args:
        spatial_dims: 2 or 3.
        **params: Overrides of :data:`AUGMENT_DEFAULTS`.

    Returns:
        The composed transform (call ``set_random_state(seed)`` for reproducibility).
    """
    from monai.transforms import Compose, RandAdjustContrastd, RandFlipd

    p = augment_params(**params)
    keys = ["image", "label"]
    ts: list = []
    if p["p_scale"] > 0 or p["p_rotate"] > 0 or p["p_elastic"] > 0:
        ts.append(RandSpatiald(spatial_dims, p["p_scale"], p["scale_range"], p["p_rotate"], p["rotate_degrees"],
                               p["p_elastic"], p["elastic_sigma"],
                               p["elastic_alpha_2d"] if spatial_dims == 2 else p["elastic_alpha_3d"]))
    if p["p_flip"] > 0:
        ts.extend(RandFlipd(keys, prob=p["p_flip"], spatial_axis=a) for a in range(spatial_dims))
    if p["p_gamma"] > 0:
        ts.append(RandAdjustContrastd(["image"], prob=p["p_gamma"], gamma=tuple(p["gamma_range"]),
                                      retain_stats=True))
    return Compose(ts)


def _plain(x) -> torch.Tensor:
    if hasattr(x, "as_tensor"):
        return x.as_tensor()
    return torch.as_tensor(np.asarray(x))


def _set_seed(transform, seed: int) -> None:
    # one shared stream: transforms draw from it in turn (seeding each with the same seed would make
    # e.g. the flips of different axes always fire together)
    state = np.random.RandomState(seed)
    for t in getattr(transform, "transforms", [transform]):
        if hasattr(t, "set_random_state"):
            t.set_random_state(state=state)


def apply_augmentation(transform, image: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor,
                       seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` (from :func:`build_augmentation`) with a fixed seed.

    Args:
        transform: The composed transform.
        image: ``(C, *s)`` float.
        label: ``(*s)`` integer labels.
        seed: Random seed of this sample.

    Returns:
        ``(image float32 (C,*s), label int64 (*s))``; labels keep their value set (nearest).
    """
    from monai.data.meta_obj import get_track_meta, set_track_meta

    _set_seed(transform, int(seed) % (2**32))
    img = torch.as_tensor(np.asarray(image, dtype=np.float32))
    lab = torch.as_tensor(np.asarray(label)).to(torch.float32)[None]
    tracking = get_track_meta()
    set_track_meta(False)  # plain tensors: MONAI's MetaTensor bookkeeping cost ~2/3 of the time
    try:
        out = transform({"image": img, "label": lab})
    finally:
        set_track_meta(tracking)
    img_t = _plain(out["image"]).to(torch.float32).contiguous()
    lab_t = _plain(out["label"])[0].to(torch.int64).contiguous()  # nearest: exact integers
    return img_t, lab_t
