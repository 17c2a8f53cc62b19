"""Writers of tiny fixture datasets (PNG via Pillow, NIfTI via nibabel with real affines)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr)).save(path)
    return path


def write_nifti(path: Path, arr: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if affine is None:
        affine = np.diag([*spacing, 1.0])
        affine[:3, 3] = origin
    img = nib.Nifti1Image(np.asarray(arr), affine)
    img.header.set_zooms(tuple(float(s) for s in spacing) + tuple(1.0 for _ in range(arr.ndim - 3)))
    nib.save(img, str(path))
    return path


def blob_mask(shape, centre, radius) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    d = sum((g - c) ** 2 for g, c in zip(grid, centre))
    return d <= radius**2


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def pairs_root(tmp_path: Path) -> Path:
    """A generic 2D pairs folder with three cases of different sizes (masks {0,255})."""
    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(40, 60), (50, 30), (64, 64)]):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        mask = (blob_mask(shape, (shape[0] // 2, shape[1] // 2), 6 + i) * 255).astype(np.uint8)
        write_png(root / "images" / f"case_{i}.png", img)
        write_png(root / "masks" / f"case_{i}.png", mask)
    return root


@pytest.fixture
def kits_root(tmp_path: Path) -> Path:
    """KiTS19-like: case 0 and 2 usable, 15 excluded by the paper, 1 without segmentation."""
    root = tmp_path / "kits19" / "data"
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 15):
        shape = (8, 20, 24)
        img = rng.normal(40, 300, shape).astype(np.int16)  # HU values well outside [-79, 304]
        seg = np.zeros(shape, np.uint8)
        seg[2:6, 4:16, 4:16] = 1
        seg[3:5, 6:10, 6:10] = 2
        d = root / f"case_{n:05d}"
        write_nifti(d / "imaging.nii.gz", img, spacing=(5.0, 0.8, 0.8))
        if n != 1:
            write_nifti(d / "segmentation.nii.gz", seg, spacing=(5.0, 0.8, 0.8))
    return root.parent


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread for these small tensors (2 cores shared by several engineers: thread
    spinning made small ``grid_sample`` calls 10x slower). Restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
