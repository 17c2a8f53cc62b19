"""Issue 25: image values checked in the precision they are used in, transparency never dropped, no case
silently replaced by another of the same name."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from unifocal.data import load_dataset
from unifocal.data.io import check_finite, read_nifti, read_png

from .conftest import write_nifti, write_png


def _pairs(root, n=3, size=16):
    for i in range(n):
        write_png(root / "images" / f"c{i}.png", np.full((size, size), 100, np.uint8))
        m = np.zeros((size, size), np.uint8)
        m[4:8, 4:8] = 255
        write_png(root / "masks" / f"c{i}.png", m)
    return root


# -- 3. a NIfTI scaling that overflows float32 -------------------------------------------------------
def test_nifti_scaling_beyond_float32_is_refused_at_reading(tmp_path, cache_dir):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_nifti(tmp_path / "msd" / "imagesTr" / f"case_{i}.nii.gz", rng.normal(size=(6, 6, 6)).astype(np.float32))
        lab = np.zeros((6, 6, 6), np.uint8)
        lab[1:3, 1:3, 1:3] = 1
        write_nifti(tmp_path / "msd" / "labelsTr" / f"case_{i}.nii.gz", lab)
    bad = tmp_path / "msd" / "imagesTr" / "case_1.nii.gz"
    img = nib.Nifti1Image(np.arange(216, dtype=np.int16).reshape(6, 6, 6), np.eye(4))
    img.header.set_slope_inter(3e38, 0)
    nib.save(img, str(bad))
    arr = read_nifti(bad)[0]
    assert np.isfinite(arr).all() and not np.isfinite(arr.astype(np.float32)).all()  # the trap
    ds = load_dataset(tmp_path / "msd", cache_dir=cache_dir)
    with pytest.raises(ValueError, match=r"case_1\.nii\.gz: 214 value\(s\) beyond the float32 range"):
        ds["case_1"]
    ds["case_0"]  # a normal file passes
    check_finite(np.array([3.0e38, -3.0e38]), "ok")  # in range: accepted


# -- 4. transparency is refused, not dropped ---------------------------------------------------------
def test_mask_drawn_in_the_alpha_channel_is_refused(tmp_path, cache_dir):
    root = _pairs(tmp_path / "p")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 255  # white
    rgba[4:8, 4:8, 3] = 255  # the lesion is drawn in alpha only; elsewhere transparent
    Image.fromarray(rgba, mode="RGBA").save(root / "masks" / "c1.png")
    ds = load_dataset(root, layout="pairs", cache_dir=cache_dir, resize=None)
    with pytest.raises(ValueError, match=r"masks/c1\.png: the image has transparent pixels \(240 of 256"):
        ds["c1"]
    # an opaque alpha channel carries nothing: it is dropped as before
    rgba[..., 3] = 255
    rgba[4:8, 4:8, :3] = 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "opaque.png")
    assert read_png(tmp_path / "opaque.png").min() == 0


# -- x.png beside x.jpg ------------------------------------------------------------------------------
def test_two_files_with_one_stem_are_refused_not_one_dropped(tmp_path, cache_dir):
    root = _pairs(tmp_path / "p")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "images" / "c1.jpg")
    with pytest.raises(ValueError, match=r"images/c1\.(jpg|png) and .*images/c1\.(png|jpg) have the same name"):
        load_dataset(root, layout="pairs", cache_dir=cache_dir)
