"""The built-in synthetic phantom: deterministic, small, rare lesions, z-scored."""

from __future__ import annotations

import numpy as np
import pytest

from unifocal.data import load_dataset, make_phantom_case


@pytest.mark.parametrize("name,dims", [("phantom2d", 2), ("phantom3d", 3)])
def test_phantom_shapes_and_api(name, dims):
    ds = load_dataset(name, n_cases=4)
    assert len(ds) == 4 and ds.spatial_dims == dims and ds.in_channels == 1
    assert ds.num_classes == 2 and ds.class_names[0] == "background" and ds.rare_classes == [1]
    case = ds[0]
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    assert case.image.shape == (1, *case.label.shape) and case.label.ndim == dims
    assert ds[ds.ids[1]].id == ds.ids[1]
    for key in ("spacing", "affine", "original_shape", "image_path", "label_path"):
        assert key in case.meta


def test_phantom_is_deterministic_by_seed():
    a = load_dataset("phantom2d", n_cases=3, seed=5)
    b = load_dataset("phantom2d", n_cases=3, seed=5)
    c = load_dataset("phantom2d", n_cases=3, seed=6)
    for i in range(3):
        np.testing.assert_array_equal(a[i].image, b[i].image)
        np.testing.assert_array_equal(a[i].label, b[i].label)
    assert not np.array_equal(a[0].label, c[0].label)
    assert not np.array_equal(a[0].label, a[1].label)


def test_phantom_lesions_are_small_and_rare():
    ds = load_dataset("phantom2d", n_cases=10)
    fr = np.array([(ds[i].label > 0).mean() for i in range(len(ds))])
    assert np.all(fr > 0) and fr.mean() < 0.05
    ds3 = load_dataset("phantom3d", n_cases=4)
    fr3 = np.array([(ds3[i].label > 0).mean() for i in range(len(ds3))])
    assert np.all(fr3 > 0) and fr3.mean() < 0.05


def test_phantom_multiclass_and_lesion_contrast():
    ds = load_dataset("phantom2d", n_cases=6, num_classes=3, size=48)
    assert ds.num_classes == 3 and len(ds.class_names) == 3
    labels = set()
    for i in range(len(ds)):
        case = ds[i]
        assert case.label.shape == (48, 48)
        labels |= set(np.unique(case.label).tolist())
        # class 1 lesions are brighter than the background on average (they are learnable)
        img = case.image[0]
        assert img[case.label == 1].mean() > img[case.label == 0].mean()
    assert labels == {0, 1, 2}


def test_phantom_zscore_matches_numpy():
    ds = load_dataset("phantom2d", n_cases=2)
    raw = ds.original(1).image.astype(np.float64)
    expected = (raw - raw.mean()) / raw.std()
    np.testing.assert_allclose(ds[1].image, expected, atol=1e-5)
    image, label = make_phantom_case(1, spatial_dims=2, size=64, seed=0)
    np.testing.assert_array_equal(image, ds.original(1).image)


def test_phantom_common_options():
    ds = load_dataset("phantom2d", n_cases=2, num_classes=3, rare_classes=[2], memory_cache=0,
                      class_names=["bg", "organ", "tumour"])
    assert ds.rare_classes == [2] and ds.class_names == ["bg", "organ", "tumour"]
    np.testing.assert_array_equal(ds[0].label, ds[0].label)


def test_phantom_unknown_option():
    with pytest.raises(TypeError):
        load_dataset("phantom2d", nonsense=1)
