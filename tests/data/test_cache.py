"""The on-disk cache: keyed by preprocessing and source files, atomic, no re-decoding."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel
import numpy as np
import pytest

from unifocal.data import default_cache_dir, load_dataset, make_train_loader


@pytest.fixture
def count_decodes(monkeypatch):
    calls: list[str] = []
    real = nibabel.load

    def counting(path, *a, **k):
        calls.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(nibabel, "load", counting)
    return calls


def test_second_epoch_never_decodes_nifti(kits_root, cache_dir, count_decodes):
    ds = load_dataset(kits_root, cache_dir=cache_dir, spacing=[5.0, 1.6, 1.6])
    loader = make_train_loader(ds, ds.ids, batch_size=2, patch_size=(4, 8, 8), augment=False)
    list(loader)
    assert len(count_decodes) == 2 * len(ds)  # epoch 1: image + segmentation of each case
    count_decodes.clear()
    list(loader)
    assert count_decodes == []
    # a new dataset object (as in a new process) reads the cache too
    ds2 = load_dataset(kits_root, cache_dir=cache_dir, spacing=[5.0, 1.6, 1.6])
    np.testing.assert_array_equal(ds2[0].image, ds[0].image)
    list(make_train_loader(ds2, ds2.ids, batch_size=2, patch_size=(4, 8, 8)))
    assert count_decodes == []


def test_changed_preprocessing_or_source_invalidates(kits_root, cache_dir, count_decodes):
    a = load_dataset(kits_root, cache_dir=cache_dir)
    a[0]
    key_before = a.cache_key("case_00000")
    n = len(count_decodes)
    b = load_dataset(kits_root, cache_dir=cache_dir, clip=[-100, 200])
    assert a.cache_key(a.ids[0]) != b.cache_key(b.ids[0])
    b[0]
    assert len(count_decodes) == 2 * n
    assert b[0].image.shape == a[0].image.shape and not np.allclose(b[0].image, a[0].image)
    # touching a source file (new mtime) invalidates its entry
    img = kits_root / "data" / "case_00000" / "imaging.nii.gz"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    c = load_dataset(kits_root, cache_dir=cache_dir)
    assert c.cache_key("case_00000") != key_before
    c["case_00000"]
    assert len(count_decodes) == 3 * n


def test_cache_files_written_atomically(pairs_root, cache_dir, monkeypatch):
    ds = load_dataset(pairs_root, cache_dir=cache_dir)
    ds[0]
    files = list(Path(cache_dir).rglob("*"))
    npz = [f for f in files if f.suffix == ".npz"]
    assert len(npz) == 1 and not [f for f in files if f.name.endswith(".tmp")]
    with np.load(npz[0]) as d:
        np.testing.assert_array_equal(d["image"], ds[0].image)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    ds2 = load_dataset(pairs_root, cache_dir=cache_dir)
    with pytest.warns(RuntimeWarning, match="disk full"):
        case = ds2[1]  # a failed cache write does not stop training
    np.testing.assert_array_equal(case.label.shape, (128, 128))
    left = list(Path(cache_dir).rglob("*"))
    assert len([f for f in left if f.suffix == ".npz"]) == 1 and not [f for f in left if ".tmp" in f.name]


def test_corrupt_cache_entry_is_recomputed(pairs_root, cache_dir):
    ds = load_dataset(pairs_root, cache_dir=cache_dir)
    ref = ds[0].image.copy()
    (npz,) = Path(cache_dir).rglob("*.npz")
    npz.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_dataset(pairs_root, cache_dir=cache_dir)[0].image, ref)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIFOCAL_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("UNIFOCAL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "unifocal"


def test_cache_off(pairs_root, cache_dir):
    ds = load_dataset(pairs_root, cache_dir=cache_dir, cache=False)
    ds[0]
    assert not Path(cache_dir).exists()
