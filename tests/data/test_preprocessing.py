"""Each preprocessing step against an independent NumPy derivation."""

from __future__ import annotations

import numpy as np
import pytest

from unifocal.data import make_preprocessing, preprocess, restore_geometry
from unifocal.data.preprocessing import resample_array, zscore


def _meta(dims):
    return {"spacing": [1.0] * dims, "affine": np.eye(4)}


def test_bus_resize_mask_nearest_exact_block():
    label = np.zeros((256, 256), np.uint8)
    label[64:128, 96:160] = 1
    image = label[None].astype(np.float32) * 10
    params = make_preprocessing({"resize": [128, 128]}, normalize="none")
    img, lab, meta = preprocess(image, label, _meta(2), params)
    assert lab.shape == (128, 128) and img.shape == (1, 128, 128) and lab.dtype == np.uint8
    expected = np.zeros((128, 128), np.uint8)
    expected[32:64, 48:80] = 1
    np.testing.assert_array_equal(lab, expected)
    assert meta["spacing"] == [2.0, 2.0] and meta["original_shape"] == [256, 256]


def test_resize_image_interpolates_linear_ramp():
    # a linear ramp is reproduced exactly by (Gaussian-prefiltered) linear interpolation away from
    # the borders: new pixel j is centred at old coordinate (j + 0.5) * 2 - 0.5
    x = np.arange(200, dtype=np.float32)
    image = np.tile(x, (60, 1))[None]
    params = make_preprocessing({"resize": [30, 100]}, normalize="none")
    img, _, _ = preprocess(image, np.zeros((60, 200), np.uint8), _meta(2), params)
    j = np.arange(100)
    expected = (j + 0.5) * 2 - 0.5
    np.testing.assert_allclose(img[0, 10, 10:90], expected[10:90], atol=1e-3)
    assert np.all(np.diff(img[0, 10]) > 0)


def test_resize_upsampling_nonbinary_labels_keep_label_set():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (17, 23)).astype(np.uint8)
    out = resample_array(label, (128, 128), is_label=True)
    assert set(np.unique(out)) == {0, 1, 2} and out.dtype == np.uint8


def test_zscore_plain_and_nonzero():
    rng = np.random.default_rng(1)
    x = rng.normal(5, 3, (2, 20, 20)).astype(np.float32)
    z = zscore(x)
    for c in range(2):
        xc = x[c].astype(np.float64)
        np.testing.assert_allclose(z[c], (xc - xc.mean()) / xc.std(), atol=1e-5)
    x[:, :5] = 0
    zn = zscore(x, nonzero=True)
    assert np.all(zn[:, :5] == 0)
    for c in range(2):
        v = zn[c][x[c] != 0]
        assert v.mean() == pytest.approx(0, abs=1e-5) and v.std() == pytest.approx(1, abs=1e-4)


def test_clip_then_resample_then_zscore_order():
    rng = np.random.default_rng(2)
    image = rng.normal(0, 500, (1, 6, 10, 10)).astype(np.float32)
    label = np.zeros((6, 10, 10), np.uint8)
    meta = {"spacing": [2.0, 1.0, 1.0], "affine": np.diag([2.0, 1.0, 1.0, 1.0])}
    params = make_preprocessing(None, clip=[-79, 304], spacing=[1.0, 2.0, 2.0], normalize="zscore")
    img, lab, out = preprocess(image, label, meta, params)
    assert img.shape == (1, 12, 5, 5) and lab.shape == (12, 5, 5)
    assert img.mean() == pytest.approx(0, abs=1e-4) and img.std() == pytest.approx(1, abs=1e-3)
    only_clip = preprocess(image, label, meta, make_preprocessing(None, clip=[-79, 304], normalize="none"))[0]
    np.testing.assert_array_equal(only_clip, np.clip(image, -79, 304))
    np.testing.assert_allclose(np.asarray(out["affine"])[:3, :3], np.diag([1.0, 2.0, 2.0]))


def test_make_preprocessing_validates():
    with pytest.raises(ValueError, match="unknown preprocessing option"):
        make_preprocessing(None, resample=[1, 1])
    with pytest.raises(ValueError, match="normalize"):
        make_preprocessing(None, normalize="minmax")
    with pytest.raises(ValueError, match="clip"):
        make_preprocessing(None, clip=[5, 1])
    with pytest.raises(ValueError, match="entries"):
        preprocess(np.zeros((1, 4, 4), np.float32), np.zeros((4, 4), np.uint8), _meta(2),
                   make_preprocessing(None, resize=[4, 4, 4]))


def test_restore_geometry_inverts_resize():
    label = np.zeros((256, 192), np.uint8)
    label[64:128, 48:96] = 1
    _, lab, meta = preprocess(label[None].astype(np.float32), label, _meta(2),
                              make_preprocessing({"resize": [128, 128]}))
    back = restore_geometry(lab, meta)
    assert back.shape == (256, 192)
    np.testing.assert_array_equal(back, label)
    probs = restore_geometry(np.stack([1 - lab, lab]).astype(np.float32), meta, is_label=False)
    assert probs.shape == (2, 256, 192)
