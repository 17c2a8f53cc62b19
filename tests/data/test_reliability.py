"""Bad inputs refused at reading, naming the file (issue 12, defects 3, 4 and 6)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from unifocal.data import load_dataset
from unifocal.data.cache import CaseCache
from unifocal.data.io import read_nifti

from .conftest import write_nifti


def _msd_single(root: Path, n: int = 3, *, channels: int = 1, labels=(0, 1, 2), dataset_json: str | None = None):
    """One file per case (MSD), 3D or 4D channels-last images, labels with the given values."""
    rng = np.random.default_rng(0)
    shape = (6, 7, 5)
    for i in range(n):
        img = rng.normal(size=(*shape, channels) if channels > 1 else shape).astype(np.float32)
        write_nifti(root / "imagesTr" / f"case_{i:03d}.nii.gz", img)
        lab = np.zeros(shape, np.uint8)
        for j, v in enumerate(labels):
            lab[j, :2, :2] = v
        write_nifti(root / "labelsTr" / f"case_{i:03d}.nii.gz", lab)
    if dataset_json is not None:
        (root / "dataset.json").write_text(dataset_json)
    return root


def test_one_stray_label_value_is_named_with_its_file_not_made_a_class(tmp_path, cache_dir):
    root = _msd_single(tmp_path / "Task")
    lab = np.asarray(nib.load(str(root / "labelsTr/case_001.nii.gz")).dataobj).copy()
    lab[5, 6, 4] = 200  # one voxel
    write_nifti(root / "labelsTr/case_001.nii.gz", lab)
    with pytest.raises(ValueError, match=r"labelsTr/case_001\.nii\.gz: \[200\].*Expected \[0, 1, 2\]") as info:
        load_dataset(root, cache_dir=cache_dir)
    assert "case_000" not in str(info.value) and "1 of 3 label file" in str(info.value)
    # without the stray voxel: three classes, as before
    lab[5, 6, 4] = 0
    write_nifti(root / "labelsTr/case_001.nii.gz", lab)
    assert load_dataset(root, cache_dir=cache_dir).num_classes == 3


def test_label_outside_num_classes_is_refused_at_open(tmp_path, cache_dir):
    root = _msd_single(tmp_path / "Task", labels=(0, 1, 2, 3))
    with pytest.raises(ValueError, match=r"case_000\.nii\.gz: \[3\].*num_classes=3"):
        load_dataset(root, cache_dir=cache_dir, num_classes=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxel_is_refused_naming_the_file(tmp_path, cache_dir, bad):
    root = _msd_single(tmp_path / "Task")
    img = np.asarray(nib.load(str(root / "imagesTr/case_002.nii.gz")).dataobj).copy()
    img[3, 2, 1] = bad
    write_nifti(root / "imagesTr/case_002.nii.gz", img)
    ds = load_dataset(root, cache_dir=cache_dir)
    assert np.isfinite(ds["case_000"].image).all()
    with pytest.raises(ValueError, match=r"imagesTr/case_002\.nii\.gz: 1 non-finite value.*index \(3, 2, 1\)"):
        ds["case_002"]


def test_4d_multichannel_msd_without_dataset_json_has_its_channels(tmp_path, cache_dir):
    root = _msd_single(tmp_path / "Task", channels=2)
    ds = load_dataset(root, cache_dir=cache_dir)
    assert ds.in_channels == 2
    assert ds[0].image.shape == (2, 6, 7, 5)


def test_one_4d_case_among_3d_cases_is_named(tmp_path, cache_dir):
    root = _msd_single(tmp_path / "Task")
    write_nifti(root / "imagesTr/case_001.nii.gz", np.zeros((6, 7, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"imagesTr/case_001\.nii\.gz: 2 channel\(s\) but 2 other image\(s\) have 1"):
        load_dataset(root, cache_dir=cache_dir)


def test_dataset_json_channel_count_must_match_the_images(tmp_path, cache_dir):
    root = _msd_single(tmp_path / "Task", dataset_json='{"labels": {"0": "bg", "1": "a", "2": "b"}, '
                                                       '"modality": {"0": "T1", "1": "T2"}}')
    with pytest.raises(ValueError, match=r"dataset\.json: declares 2 channel\(s\).*images have 1"):
        load_dataset(root, cache_dir=cache_dir)


def test_nifti_header_declaring_a_huge_volume_gives_a_reason(tmp_path):
    p = tmp_path / "huge.nii"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.float32)
    nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(str(p))
    raw = bytearray(p.read_bytes())
    raw[:348] = hdr.binaryblock  # the header now declares 30000^3 float32 voxels
    p.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"huge\.nii: the header declares shape \(30000, 30000, 30000\).*more than"):
        read_nifti(p)


def test_truncated_uncompressed_nifti_is_named(tmp_path):
    p = tmp_path / "cut.nii"
    nib.save(nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.eye(4)), str(p))
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cut\.nii: truncated NIfTI file"):
        read_nifti(p)


def test_phantom_layout_with_another_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"layout 'phantom2d' is the built-in phantom, but the dataset"):
        load_dataset(tmp_path, layout="phantom2d")
    with pytest.raises(ValueError, match=r"layout 'phantom3d'"):
        load_dataset("phantom2d", layout="phantom3d")
    assert load_dataset("phantom2d", layout="phantom2d", n_cases=2, size=16).spatial_dims == 2


def test_cache_removes_old_orphaned_temporary_files(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    old, fresh = root / ".case-1.npz.abc.tmp", root / ".case-2.npz.def.tmp"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    t = time.time() - 7200
    os.utime(old, (t, t))
    CaseCache(root)
    assert not old.exists() and fresh.exists()  # a fresh one may belong to a live writer


def test_float_tiff_with_nan_is_refused_not_cast_to_8_bits(tmp_path, cache_dir):
    from PIL import Image

    root = tmp_path / "pairs"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    for i in range(3):
        img = np.random.default_rng(i).normal(size=(16, 16)).astype(np.float32)
        if i == 1:
            img[2, 3] = np.nan
        Image.fromarray(img, mode="F").save(root / "images" / f"c{i}.tif")
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "masks" / f"c{i}.tif")
    ds = load_dataset(root, layout="pairs", cache_dir=cache_dir, resize=None, normalize="none")
    ref = np.asarray(Image.open(root / "images" / "c0.tif"), dtype=np.float32)
    np.testing.assert_array_equal(ds.original("c0").image[0], ref)  # float values kept, not 8-bit
    with pytest.raises(ValueError, match=r"images/c1\.tif: 1 non-finite value.*\(2, 3\)"):
        ds["c1"]
