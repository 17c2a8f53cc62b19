"""Readers of every layout on tiny fixtures written here, layout detection, and clear errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.data.conftest import blob_mask, write_nifti, write_png
from unifocal.data import KITS19_EXCLUDED, detect_layout, load_dataset


# ---------------------------------------------------------------------------------------- pairs
def test_pairs_masks_255_become_1(pairs_root, cache_dir):
    ds = load_dataset(pairs_root, cache_dir=cache_dir, resize=None, normalize="none")
    assert ds.layout == "pairs" and ds.ids == ["case_0", "case_1", "case_2"]
    assert ds.spatial_dims == 2 and ds.num_classes == 2
    for cid in ds.ids:
        from PIL import Image

        raw_mask = np.array(Image.open(pairs_root / "masks" / f"{cid}.png"))
        raw_img = np.array(Image.open(pairs_root / "images" / f"{cid}.png"))
        case = ds[cid]
        np.testing.assert_array_equal(case.label, (raw_mask == 255).astype(np.uint8))
        np.testing.assert_array_equal(case.image[0], raw_img.astype(np.float32))
        assert case.meta["image_path"].endswith(f"{cid}.png") and case.meta["label_path"].endswith(f"{cid}.png")
        assert set(np.unique(case.label)) <= {0, 1} and case.label.sum() > 0


def test_pairs_default_preprocessing_is_bus(pairs_root, cache_dir):
    ds = load_dataset(pairs_root, cache_dir=cache_dir)
    assert ds.preprocessing["resize"] == [128, 128] and ds.preprocessing["normalize"] == "zscore"
    case = ds[0]
    assert case.image.shape == (1, 128, 128) and case.label.shape == (128, 128)
    assert case.meta["original_shape"] == [40, 60]


def _pairs(root: Path, names_img, names_mask, mask_value=255, shape=(10, 12), mask_shape=None):
    for n in names_img:
        write_png(root / "images" / f"{n}.png", np.full(shape, 7, np.uint8))
    for n in names_mask:
        m = np.zeros(mask_shape or shape, np.uint8)
        m[2:4, 2:4] = mask_value
        write_png(root / "masks" / f"{n}.png", m)
    return root


def test_image_without_mask(tmp_path):
    root = _pairs(tmp_path / "d", ["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"b\.png: image without mask"):
        load_dataset(root)


def test_mask_without_image(tmp_path):
    root = _pairs(tmp_path / "d", ["a"], ["a", "c"])
    with pytest.raises(ValueError, match=r"c\.png: mask without image"):
        load_dataset(root)


def test_shape_mismatch(tmp_path, cache_dir):
    root = _pairs(tmp_path / "d", ["a"], ["a"], mask_shape=(10, 13))
    ds = load_dataset(root, cache_dir=cache_dir)
    with pytest.raises(ValueError, match=r"a\.png: mask shape \(10, 13\) does not match"):
        ds[0]


def test_label_values_outside_set(tmp_path, cache_dir):
    root = _pairs(tmp_path / "d", ["a"], ["a"], mask_value=128)
    ds = load_dataset(root, cache_dir=cache_dir)
    with pytest.raises(ValueError, match=r"masks/a\.png: label values \[128\] outside"):
        ds[0]


def test_truncated_png(tmp_path, cache_dir):
    root = _pairs(tmp_path / "d", ["a"], ["a"], shape=(64, 64))
    p = root / "images" / "a.png"
    write_png(p, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[:200])
    ds = load_dataset(root, cache_dir=cache_dir)
    with pytest.raises(ValueError, match=r"a\.png: unreadable or truncated"):
        ds[0]


def test_empty_dataset(tmp_path):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty dataset"):
        load_dataset(tmp_path / "d")


def test_missing_folder_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="no known dataset layout"):
        load_dataset(tmp_path / "x")
    with pytest.raises(ValueError, match="unknown layout"):
        load_dataset(tmp_path / "x", layout="bogus")


def test_wrong_explicit_layout(pairs_root):
    with pytest.raises(FileNotFoundError, match=r"(imagesTr|labelsTr): folder not found"):
        load_dataset(pairs_root, layout="msd")
    with pytest.raises(FileNotFoundError, match=r"original: folder not found"):
        load_dataset(pairs_root, layout="bus2017")


def test_unknown_option(pairs_root):
    with pytest.raises(TypeError, match="include_normal"):
        load_dataset(pairs_root, include_normal=False)


# -------------------------------------------------------------------------------------- BUS2017
def test_bus2017_layout(tmp_path, cache_dir):
    root = tmp_path / "BUS2017B"
    for n in (1, 2):
        write_png(root / "original" / f"{n:06d}.png", np.full((30, 40), 50 * n, np.uint8))
        m = np.zeros((30, 40), np.uint8)
        m[5 : 5 + 5 * n, 10:20] = 255
        write_png(root / "GT" / f"{n:06d}.png", m)
    assert detect_layout(root) == "bus2017"
    ds = load_dataset(root, cache_dir=cache_dir, resize=None)
    assert ds.ids == ["000001", "000002"]
    assert [int(ds.original(i).label.sum()) for i in range(2)] == [50, 100]
    assert ds[1].image.shape == (1, 30, 40)


# ----------------------------------------------------------------------------------------- BUSI
def _busi(root: Path) -> Path:
    base = root / "Dataset_BUSI_with_GT"
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    write_png(base / "benign" / "benign (1).png", rgb)
    m0 = np.zeros((20, 24), np.uint8)
    m0[2:6, 2:6] = 255
    m1 = np.zeros((20, 24), np.uint8)
    m1[10:14, 10:16] = 255
    write_png(base / "benign" / "benign (1)_mask.png", m0)
    write_png(base / "benign" / "benign (1)_mask_1.png", m1)
    write_png(base / "malignant" / "malignant (12).png", rgb[..., 0])
    write_png(base / "malignant" / "malignant (12)_mask.png", np.stack([m1] * 3, -1))  # RGB mask
    write_png(base / "normal" / "normal (3).png", rgb)
    write_png(base / "normal" / "normal (3)_mask.png", np.zeros((20, 24), np.uint8))
    return root


def test_busi_published_layout(tmp_path, cache_dir):
    root = _busi(tmp_path / "busi")
    assert detect_layout(root) == "busi"
    ds = load_dataset(root, cache_dir=cache_dir, resize=None, normalize="none")
    assert ds.ids == ["benign_001", "malignant_012", "normal_003"]
    b = ds.original("benign_001")
    assert int(b.label.sum()) == 16 + 24  # union of _mask and _mask_1
    assert b.meta["label_path"] == [str(root / "Dataset_BUSI_with_GT/benign/benign (1)_mask.png"),
                                    str(root / "Dataset_BUSI_with_GT/benign/benign (1)_mask_1.png")]
    # RGB read as grayscale: ITU-R 601-2 luminance (Pillow's fixed-point formula)
    from PIL import Image

    rgb = np.array(Image.open(root / "Dataset_BUSI_with_GT/benign/benign (1).png")).astype(np.int64)
    lum = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    np.testing.assert_array_equal(b.image[0], lum.astype(np.float32))
    assert ds.original("malignant_012").label.sum() == 24
    assert ds.original("normal_003").label.sum() == 0
    no_normal = load_dataset(root, cache_dir=cache_dir, include_normal=False)
    assert no_normal.ids == ["benign_001", "malignant_012"]


def test_busi_mask_without_image(tmp_path):
    root = _busi(tmp_path / "busi")
    write_png(root / "Dataset_BUSI_with_GT" / "benign" / "benign (9)_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"benign \(9\)_mask\.png: mask without image"):
        load_dataset(root)


# ------------------------------------------------------------------------------------------ MSD
def _msd(root: Path, *, channels: int = 2, labels_json: dict | None = None, lab_values=(0, 1, 2)):
    rng = np.random.default_rng(4)
    aff = np.array([[0, 0, -1.5, 10], [0, 2.0, 0, -5], [1.2, 0, 0, 3], [0, 0, 0, 1]], float)
    for n in range(2):
        shape = (6, 7, 5)
        for c in range(channels):
            arr = rng.integers(0, 200, shape).astype(np.uint8 if c == 0 else np.float32)
            write_nifti(root / "imagesTr" / f"case_{n:03d}_{c:04d}.nii.gz", arr, spacing=(1.2, 2.0, 1.5), affine=aff)
        lab = np.zeros(shape, np.uint8)
        for j, v in enumerate(lab_values):
            lab[j, :2, :2] = v
        write_nifti(root / "labelsTr" / f"case_{n:03d}.nii.gz", lab, spacing=(1.2, 2.0, 1.5), affine=aff)
    if labels_json is not None:
        (root / "dataset.json").write_text(json.dumps({"labels": labels_json, "channel_names": {"0": "T1", "1": "T2"}}))
    return root


def test_msd_channels_and_dataset_json(tmp_path, cache_dir):
    root = _msd(tmp_path / "Task", labels_json={"background": 0, "left": 1, "right": 2})
    assert detect_layout(root) == "msd"
    ds = load_dataset(root, cache_dir=cache_dir, normalize="none")
    assert ds.ids == ["case_000", "case_001"] and ds.in_channels == 2 and ds.spatial_dims == 3
    assert ds.class_names == ["background", "left", "right"] and ds.num_classes == 3
    import nibabel as nib

    case = ds[0]
    assert case.image.dtype == np.float32 and case.image.shape == (2, 6, 7, 5)
    ref0 = np.asarray(nib.load(str(root / "imagesTr/case_000_0000.nii.gz")).dataobj)
    ref1 = np.asarray(nib.load(str(root / "imagesTr/case_000_0001.nii.gz")).dataobj)
    assert ref0.dtype == np.uint8  # cast on load
    np.testing.assert_array_equal(case.image[0], ref0.astype(np.float32))
    np.testing.assert_array_equal(case.image[1], ref1)
    assert case.meta["spacing"] == pytest.approx([1.2, 2.0, 1.5])
    np.testing.assert_allclose(case.meta["affine"], nib.load(str(root / "labelsTr/case_000.nii.gz")).affine)
    assert set(np.unique(case.label)) == {0, 1, 2}


def test_msd_msd_style_labels_json_and_no_suffix(tmp_path, cache_dir):
    root = tmp_path / "Task02"
    write_nifti(root / "imagesTr" / "heart_1.nii.gz", np.ones((4, 4, 4), np.float32))
    write_nifti(root / "labelsTr" / "heart_1.nii.gz", np.eye(4, dtype=np.uint8)[None].repeat(4, 0))
    write_nifti(root / "imagesTr" / "._heart_1.nii.gz", np.ones((2, 2, 2), np.float32))  # macOS junk
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "left atrium"}}))
    ds = load_dataset(root, cache_dir=cache_dir)
    assert ds.ids == ["heart_1"] and ds.class_names == ["background", "left atrium"] and ds.in_channels == 1


def test_msd_without_json_scans_labels(tmp_path, cache_dir):
    root = _msd(tmp_path / "Task", channels=1, lab_values=(0, 1, 2, 3))
    ds = load_dataset(root, cache_dir=cache_dir)
    assert ds.num_classes == 4


def test_msd_label_outside_dataset_json(tmp_path, cache_dir):
    root = _msd(tmp_path / "Task", labels_json={"background": 0, "left": 1}, lab_values=(0, 1, 2))
    # refused when the dataset is opened (the label files are scanned once), naming the file and value
    with pytest.raises(ValueError, match=r"labelsTr/case_000\.nii\.gz: \[2\].*Expected \[0, 1\] \(dataset.json"):
        load_dataset(root, cache_dir=cache_dir)


def test_msd_geometry_mismatch(tmp_path, cache_dir):
    root = _msd(tmp_path / "Task", channels=1)
    lab = np.zeros((6, 7, 5), np.uint8)
    write_nifti(root / "labelsTr" / "case_001.nii.gz", lab, spacing=(1.0, 1.0, 1.0))
    ds = load_dataset(root, cache_dir=cache_dir, num_classes=3)
    with pytest.raises(ValueError, match=r"labelsTr/case_001\.nii\.gz: label affine/spacing does not match"):
        ds["case_001"]
    write_nifti(root / "labelsTr" / "case_000.nii.gz", np.zeros((6, 7, 4), np.uint8))
    with pytest.raises(ValueError, match=r"case_000\.nii\.gz: label shape \(6, 7, 4\) does not match"):
        ds["case_000"]


def test_msd_truncated_nifti(tmp_path, cache_dir):
    root = _msd(tmp_path / "Task", channels=1)
    p = root / "imagesTr" / "case_000_0000.nii.gz"
    raw = gzip.compress(np.zeros(4000, np.float32).tobytes())
    p.write_bytes(raw[:50])
    ds = load_dataset(root, cache_dir=cache_dir, num_classes=3)
    with pytest.raises(ValueError, match=r"case_000_0000\.nii\.gz: unreadable or truncated"):
        ds[0]


def test_msd_label_without_image(tmp_path):
    root = _msd(tmp_path / "Task", channels=1)
    write_nifti(root / "labelsTr" / "case_009.nii.gz", np.zeros((6, 7, 5), np.uint8))
    with pytest.raises(ValueError, match=r"case_009\.nii\.gz: label without image"):
        load_dataset(root, num_classes=3)


# -------------------------------------------------------------------------------------- BraTS20
def _brats(root: Path) -> Path:
    base = root / "MICCAI_BraTS2020_TrainingData"
    rng = np.random.default_rng(5)
    shape = (10, 12, 8)
    brain = blob_mask(shape, (5, 6, 4), 4)
    for n, labels in ((1, (1, 2, 4)), (2, (1, 2)), (3, (2, 4))):
        d = base / f"BraTS20_Training_{n:03d}"
        for mod in ("t1", "t1ce", "t2", "flair"):
            img = np.where(brain, rng.normal(300 + 100 * (mod == "t1ce"), 50, shape), 0).astype(np.float32)
            write_nifti(d / f"{d.name}_{mod}.nii.gz", img)
        seg = np.zeros(shape, np.uint8)
        for j, v in enumerate(labels):
            seg[4 + j, 5:7, 3:5] = v
        write_nifti(d / f"{d.name}_seg.nii.gz", seg)
    return root


def test_brats20_label4_and_exclusion(tmp_path, cache_dir):
    root = _brats(tmp_path / "brats")
    assert detect_layout(root) == "brats20"
    ds = load_dataset(root, cache_dir=cache_dir)
    assert ds.ids == ["BraTS20_Training_001", "BraTS20_Training_003"]
    assert ds.excluded == {"BraTS20_Training_002": "no enhancing tumour (label 4)"}
    assert ds.num_classes == 2 and ds.in_channels == 1
    assert ds.default_patch_size == (96, 96, 96) and ds.default_overlap == (48, 48, 48)
    import nibabel as nib

    for cid in ds.ids:
        d = root / "MICCAI_BraTS2020_TrainingData" / cid
        seg = np.asarray(nib.load(str(d / f"{cid}_seg.nii.gz")).dataobj)
        t1ce = np.asarray(nib.load(str(d / f"{cid}_t1ce.nii.gz")).dataobj).astype(np.float64)
        case = ds[cid]
        np.testing.assert_array_equal(case.label, (seg == 4).astype(np.uint8))
        assert case.meta["image_path"].endswith("_t1ce.nii.gz")
        # z-score within the brain (non-zero voxels); background stays 0
        nz = t1ce != 0
        expected = np.zeros_like(t1ce)
        expected[nz] = (t1ce[nz] - t1ce[nz].mean()) / t1ce[nz].std()
        np.testing.assert_allclose(case.image[0], expected, atol=1e-5)
        assert np.all(case.image[0][~nz] == 0)


def test_brats20_misnamed_seg_of_case_355(tmp_path, cache_dir):
    root = _brats(tmp_path / "brats")
    d = root / "MICCAI_BraTS2020_TrainingData" / "BraTS20_Training_003"
    (d / "BraTS20_Training_003_seg.nii.gz").rename(d / "W39_1998.09.19_Segm.nii.gz")
    ds = load_dataset(root, cache_dir=cache_dir)
    assert "BraTS20_Training_003" in ds.ids
    assert ds["BraTS20_Training_003"].meta["label_path"].endswith("W39_1998.09.19_Segm.nii.gz")


def test_brats20_missing_seg(tmp_path):
    root = _brats(tmp_path / "brats")
    (root / "MICCAI_BraTS2020_TrainingData/BraTS20_Training_002/BraTS20_Training_002_seg.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"BraTS20_Training_002_t1ce\.nii\.gz: image without mask"):
        load_dataset(root)


# --------------------------------------------------------------------------------------- KiTS19
def test_kits19_exclusions(kits_root, cache_dir):
    assert detect_layout(kits_root) == "kits19"
    ds = load_dataset(kits_root, cache_dir=cache_dir)
    assert ds.ids == ["case_00000", "case_00002"]
    assert ds.excluded == {"case_00001": "no segmentation", "case_00015": "excluded by the paper"}
    assert set(KITS19_EXCLUDED) == {15, 23, 37, 68, 125, 133}
    assert ds.class_names == ["background", "kidney", "tumour"]
    assert ds.preprocessing["clip"] == [-79.0, 304.0] and ds.preprocessing["spacing"] == [3.22, 1.62, 1.62]
    assert ds.default_patch_size == (80, 160, 160) and ds.default_overlap == (40, 80, 80)


def test_kits19_hu_clipping(kits_root, cache_dir):
    import nibabel as nib

    ds = load_dataset(kits_root, cache_dir=cache_dir, spacing=None, normalize="none")
    raw = np.asarray(nib.load(str(kits_root / "data/case_00000/imaging.nii.gz")).dataobj)
    assert raw.min() < -79 and raw.max() > 304
    np.testing.assert_array_equal(ds[0].image[0], np.clip(raw.astype(np.float32), -79, 304))


def test_kits19_resampling_spacing_and_labels(kits_root, cache_dir):
    import nibabel as nib

    ds = load_dataset(kits_root, cache_dir=cache_dir, normalize="none")
    case = ds["case_00000"]
    # (8, 20, 24) voxels of (5.0, 0.8, 0.8) mm -> round(extent / (3.22, 1.62, 1.62))
    expected_shape = tuple(round(n * s / t) for n, s, t in zip((8, 20, 24), (5.0, 0.8, 0.8), (3.22, 1.62, 1.62)))
    assert case.label.shape == expected_shape == (12, 10, 12)
    assert case.meta["spacing"] == pytest.approx([3.22, 1.62, 1.62])
    zooms = np.sqrt((np.asarray(case.meta["affine"])[:3, :3] ** 2).sum(0))
    np.testing.assert_allclose(zooms, [5.0 * 8 / 12, 0.8 * 20 / 10, 0.8 * 24 / 12])
    assert case.meta["original_spacing"] == pytest.approx([5.0, 0.8, 0.8])
    assert case.meta["original_shape"] == [8, 20, 24]
    # labels nearest: same label set, physical volume of each class roughly preserved
    seg = np.asarray(nib.load(str(kits_root / "data/case_00000/segmentation.nii.gz")).dataobj)
    assert set(np.unique(case.label)) == {0, 1, 2}
    vox_new = np.prod(zooms)  # the resampled grid's true voxel size (shape is rounded)
    for c in (1, 2):
        vol_old = (seg == c).sum() * 5.0 * 0.8 * 0.8
        vol_new = (case.label == c).sum() * vox_new
        assert vol_new == pytest.approx(vol_old, rel=0.5)
    assert case.image.min() >= -79 - 1e-3 and case.image.max() <= 304 + 1e-3


def test_kits19_zscore(kits_root, cache_dir):
    ds = load_dataset(kits_root, cache_dir=cache_dir)
    raw = load_dataset(kits_root, cache_dir=cache_dir, normalize="none")["case_00002"].image.astype(np.float64)
    np.testing.assert_allclose(ds["case_00002"].image, (raw - raw.mean()) / raw.std(), atol=1e-4)


def test_pairs_include_pattern_keeps_matching_stems(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for stem in ("benign_001", "malignant_002", "normal_003"):
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "images" / f"{stem}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"{stem}.png")
    ds = load_dataset(tmp_path, layout="pairs", include="^(benign|malignant)_")
    assert list(ds.ids) == ["benign_001", "malignant_002"]
    assert set(ds.excluded) == {"normal_003"}
    with pytest.raises(ValueError, match="not a valid regular expression"):
        load_dataset(tmp_path, layout="pairs", include="(")
