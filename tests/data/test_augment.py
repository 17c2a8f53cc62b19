"""Augmentation: same transform on image and mask, masks integer with their label set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.data.conftest import blob_mask
from unifocal.data import apply_augmentation, build_augmentation
from unifocal.data.augment import augment_params

OFF = {"p_scale": 0, "p_rotate": 0, "p_flip": 0, "p_gamma": 0, "p_elastic": 0}
ALL_SPATIAL = {"p_scale": 1, "p_rotate": 1, "p_flip": 0.5, "p_gamma": 0, "p_elastic": 1}


def _labels(dims, size):
    shape = (size,) * dims
    lab = np.zeros(shape, np.uint8)
    lab[blob_mask(shape, (size * 0.4,) * dims, size / 5)] = 1
    lab[blob_mask(shape, (size * 0.65,) * dims, size / 8)] = 2
    return lab


@pytest.mark.parametrize("dims,size", [(2, 48), (3, 24)])
def test_masks_keep_label_set_and_stay_aligned(dims, size):
    lab = _labels(dims, size)
    image = np.stack([(lab == c).astype(np.float32) for c in (1, 2)])  # the image encodes the mask
    t = build_augmentation(dims, **ALL_SPATIAL)
    changed = 0
    for seed in range(4):
        img_t, lab_t = apply_augmentation(t, image, lab, seed)
        assert lab_t.dtype == torch.int64 and img_t.dtype == torch.float32
        assert set(torch.unique(lab_t).tolist()) <= {0, 1, 2}
        assert img_t.shape == (2, *lab.shape) and lab_t.shape == lab.shape
        changed += not np.array_equal(lab_t.numpy(), lab)
        for c in (1, 2):  # image and mask moved together: Dice of (channel c > 0.5) vs (mask == c)
            a = img_t[c - 1].numpy() > 0.5
            b = lab_t.numpy() == c
            if b.sum() > 10:
                dice = 2 * (a & b).sum() / (a.sum() + b.sum())
                assert dice > 0.8, (seed, c, dice)  # a mismatch of transforms gives << 0.5
    assert changed >= 3


@pytest.mark.parametrize("dims", [2, 3])
def test_flip_only_matches_numpy_flip(dims):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, *(8,) * dims)).astype(np.float32)
    lab = rng.integers(0, 3, (8,) * dims).astype(np.uint8)
    t = build_augmentation(dims, **{**OFF, "p_flip": 1.0})
    img_t, lab_t = apply_augmentation(t, image, lab, 0)
    axes = tuple(range(dims))
    np.testing.assert_array_equal(img_t[0].numpy(), np.flip(image[0], axes))
    np.testing.assert_array_equal(lab_t.numpy(), np.flip(lab, axes))


def test_gamma_only_changes_intensity_not_mask():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(1, 32, 32)).astype(np.float32)
    lab = _labels(2, 32)
    t = build_augmentation(2, **{**OFF, "p_gamma": 1.0})
    img_t, lab_t = apply_augmentation(t, image, lab, 3)
    np.testing.assert_array_equal(lab_t.numpy(), lab)
    assert not np.allclose(img_t.numpy(), image)
    # monotonic intensity map, statistics retained
    order = np.argsort(image.ravel())
    assert np.all(np.diff(img_t.numpy().ravel()[order]) >= -1e-5)
    assert img_t.mean().item() == pytest.approx(float(image.mean()), abs=1e-4)
    assert img_t.std().item() == pytest.approx(float(image.std()), rel=1e-2)


def test_zero_probabilities_are_identity_and_seed_reproducible():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(1, 16, 16)).astype(np.float32)
    lab = _labels(2, 16)
    img_t, lab_t = apply_augmentation(build_augmentation(2, **OFF), image, lab, 0)
    np.testing.assert_array_equal(img_t.numpy(), image)
    np.testing.assert_array_equal(lab_t.numpy(), lab)
    t = build_augmentation(2, **ALL_SPATIAL)
    a = apply_augmentation(t, image, lab, 11)[0]
    b = apply_augmentation(t, image, lab, 11)[0]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_params(p_mirror=1)


def test_flips_of_different_axes_are_independent():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    lab = np.zeros((4, 4), np.uint8)
    t = build_augmentation(2, **{**OFF, "p_flip": 0.5})
    seen = set()
    for seed in range(40):
        out = apply_augmentation(t, image, lab, seed)[0][0].numpy()
        for ax0 in (False, True):
            for ax1 in (False, True):
                ref = image[0][::-1] if ax0 else image[0]
                ref = ref[:, ::-1] if ax1 else ref
                if np.array_equal(out, ref):
                    seen.add((ax0, ax1))
    assert seen == {(False, False), (True, False), (False, True), (True, True)}
