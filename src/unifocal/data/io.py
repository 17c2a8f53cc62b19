"""Decoding of image files (PNG via Pillow, NIfTI via nibabel) with errors that name the file.

Every decode goes through :func:`read_png` or :func:`read_nifti`; bad files raise ``ValueError``
naming the file (missing files raise ``FileNotFoundError``). A NIfTI header declaring more data than
the file holds (truncated) or than this machine's memory (a corrupt or hostile header, e.g.
30000^3 voxels) is refused before anything is allocated. :func:`check_finite` refuses images with
NaN or Inf values, naming the file (see ``docs/reliability.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: The largest float32 value: every image is used in float32.
F32_MAX = float(np.finfo(np.float32).max)


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def check_finite(arr: np.ndarray, path: str | Path) -> None:
    """Refuse an image holding NaN or Inf values, or values beyond the float32 range.

    Images are used in float32: a value that is finite in float64 (a NIfTI ``scl_slope`` of 3e38)
    but beyond ``±3.4e38`` would become ``inf`` there, so it is refused as well.

    Raises:
        ValueError: naming ``path``, the number of bad values and the first one's index.
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{path}: {int(bad.sum())} non-finite value(s) (NaN or Inf), the first at index {first} "
                         f"(value {a[first]}); fix or remove this file: a single NaN turns the normalised "
                         f"image into NaN")
    if a.dtype.itemsize > 4 and a.size:
        big = np.abs(a) > F32_MAX
        if big.any():
            first = tuple(int(i) for i in np.argwhere(big)[0])
            raise ValueError(f"{path}: {int(big.sum())} value(s) beyond the float32 range (±{F32_MAX:.3g}) the "
                             f"pipeline computes in, the first at index {first} (value {a[first]:.4g}); they would "
                             f"become Inf: check the file's scaling (NIfTI scl_slope / scl_inter) or rescale it")


def is_nifti(path: str | Path) -> bool:
    """True when ``path`` ends in ``.nii`` or ``.nii.gz`` (in any case: ``.NII.GZ``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """``"case_0000.nii.gz"`` -> ``"case_0000"``."""
    for suf in NIFTI_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


class _AlphaError(Exception):
    pass


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info)


def read_png(path: str | Path, *, grayscale: bool = True) -> np.ndarray:
    """Read a 2D image file (PNG, or anything Pillow reads) as a 2D array.

    Args:
        path: The file.
        grayscale: Convert colour (RGB/RGBA/palette) images to 8-bit luminance
            (ITU-R 601-2, Pillow's ``convert("L")``).

    Returns:
        The pixel array ``(H, W)`` (``uint8``, ``uint16``/``int32`` for 16/32-bit files, ``float32``
        for floating-point TIFF: kept as is, so that NaN / Inf are seen by :func:`check_finite`
        instead of being cast to 8 bits).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file cannot be decoded (unreadable or truncated), is not 2D, or has transparent
            pixels (an alpha channel below 255: converting to grey would drop it; fully opaque alpha
            is dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            if grayscale and _has_alpha(im):
                alpha = np.asarray(im.convert("RGBA").getchannel("A"))
                if alpha.min() < 255:
                    raise _AlphaError(f"{path}: the image has transparent pixels ({int((alpha < 255).sum())} of "
                                      f"{alpha.size} with alpha < 255): their grey value would be read and the "
                                      f"transparency lost (a mask drawn in the alpha channel would be read as "
                                      f"its colour); flatten the image (e.g. save the mask as a grey-level PNG "
                                      f"without alpha)")
            if grayscale and im.mode not in ("L", "I;16", "I;16B", "I", "1", "F"):  # float TIFF stays float
                im = im.convert("L")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.array(im)
    except _AlphaError as exc:
        raise ValueError(str(exc)) from None
    except Exception as exc:
        raise ValueError(f"{path}: unreadable or truncated image file ({exc or type(exc).__name__})") from exc
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
    except Exception as exc:
        raise ValueError(f"{path}: unreadable or truncated NIfTI file ({exc or type(exc).__name__})") from exc
    shape = tuple(int(s) for s in img.shape)
    itemsize = np.dtype(img.get_data_dtype()).itemsize
    nbytes = int(np.prod(shape, dtype=np.float64) * itemsize)
    if nbytes > _memory_bytes():
        raise ValueError(f"{path}: the header declares shape {shape} ({nbytes / 2**30:.1f} GiB of "
                         f"{img.get_data_dtype()}), more than this machine's memory; the header is corrupt or the "
                         f"volume must be cropped/resampled first")
    if not str(path).lower().endswith(".gz"):
        offset = int(img.header.get("vox_offset", 0) or 0)
        if offset + nbytes > path.stat().st_size:
            raise ValueError(f"{path}: truncated NIfTI file: the header declares shape {shape} ({offset + nbytes} "
                             f"bytes with the header) but the file has {path.stat().st_size} bytes")
    try:
        arr = np.asarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
        zooms = tuple(float(z) for z in img.header.get_zooms()[: min(3, arr.ndim)])
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to read shape {shape} ({nbytes / 2**30:.1f} GiB); crop or "
                         f"resample the volume, or use a machine with more memory") from None
    except Exception as exc:
        raise ValueError(f"{path}: unreadable or truncated NIfTI file ({exc or type(exc).__name__})") from exc
    return arr, affine, zooms
