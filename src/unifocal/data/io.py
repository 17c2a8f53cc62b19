"""Decoding of image files (PNG via Pillow, NIfTI via nibabel) with errors that name the file.

Every decode goes through :func:`read_png` or :func:`read_nifti`; bad files raise ``ValueError``
naming the file (missing files raise ``FileNotFoundError``).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti(path: str | Path) -> bool:
    """True when ``path`` ends in ``.nii`` or ``.nii.gz``."""
    return str(path).endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """``"case_0000.nii.gz"`` -> ``"case_0000"``."""
    for suf in NIFTI_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def read_png(path: str | Path, *, grayscale: bool = True) -> np.ndarray:
    """Read a 2D image file (PNG, or anything Pillow reads) as a 2D array.

    Args:
        path: The file.
        grayscale: Convert colour (RGB/RGBA/palette) images to 8-bit luminance
            (ITU-R 601-2, Pillow's ``convert("L")``).

    Returns:
        The pixel array ``(H, W)`` (``uint8``, or ``uint16``/``int32`` for 16-bit files).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file cannot be decoded (unreadable or truncated) or is not 2D.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if grayscale and im.mode not in ("L", "I;16", "I;16B", "I", "1"):
                im = im.convert("L")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.array(im)
    except Exception as exc:
        raise ValueError(f"{path}: unreadable or truncated image file ({exc})") from exc
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2D image, got shape {arr.shape}")
    return arr


def read_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read a NIfTI file with nibabel.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(array, affine, spacing)``: the stored array in its on-disk dtype and axis order, the 4x4
        affine, and the voxel spacing of the first three axes (mm, from the header zooms).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file cannot be decoded (unreadable or truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        arr = np.asarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
        zooms = tuple(float(z) for z in img.header.get_zooms()[: min(3, arr.ndim)])
    except Exception as exc:
        raise ValueError(f"{path}: unreadable or truncated NIfTI file ({exc})") from exc
    return arr, affine, zooms
