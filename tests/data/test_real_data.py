"""The real data in ``$UNIFOCAL_DATA``: BUSI pairs and MSD Hippocampus, checked against index.csv."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from unifocal.data import detect_layout, load_dataset
from unifocal.data.summary import summarize

SUBSET = 12  # cases decoded per dataset (keeps the test fast); ids/lengths are checked for all


def _index(root):
    with open(root / "index.csv") as f:
        return list(csv.DictReader(f))


def _subset(rows, n=SUBSET):
    idx = np.linspace(0, len(rows) - 1, n).round().astype(int)
    return [rows[i] for i in idx]


def test_busi_pairs(busi_root, tmp_path):
    rows = _index(busi_root)
    assert detect_layout(busi_root) == "pairs"
    ds = load_dataset(busi_root, cache_dir=tmp_path)
    assert sorted(ds.ids) == sorted(r["name"] for r in rows) and len(ds) == len(rows)
    assert ds.num_classes == 2 and ds.spatial_dims == 2 and ds.in_channels == 1
    for r in _subset(rows):
        orig = ds.original(r["name"])
        assert orig.image.shape == (1, int(r["height"]), int(r["width"]))
        assert set(np.unique(orig.label)) <= {0, 1}
        assert orig.label.mean() == pytest.approx(float(r["fg_fraction"]), abs=2e-6)
        case = ds[r["name"]]
        assert case.image.shape == (1, 128, 128) and case.label.shape == (128, 128)
        assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
        assert abs(float(case.image.mean())) < 1e-4 and float(case.image.std()) == pytest.approx(1, abs=1e-3)
        # nearest-neighbour resize keeps the lesion fraction roughly
        assert case.label.mean() == pytest.approx(float(r["fg_fraction"]), abs=0.01)


def test_hippocampus_msd(hippocampus_root, tmp_path):
    rows = _index(hippocampus_root)
    assert detect_layout(hippocampus_root) == "msd"
    ds = load_dataset(hippocampus_root, cache_dir=tmp_path)
    names = sorted(r["name"].removesuffix(".nii.gz") for r in rows)
    assert sorted(ds.ids) == names
    assert ds.num_classes == 3 and ds.spatial_dims == 3 and ds.rare_classes == [1, 2]
    dtypes = set()
    for r in _subset(rows):
        cid = r["name"].removesuffix(".nii.gz")
        case = ds[cid]
        shape = tuple(int(x) for x in r["shape"].split("x"))
        assert case.image.shape == (1, *shape) and case.image.dtype == np.float32
        assert set(np.unique(case.label)) == {0, 1, 2}
        assert case.meta["spacing"] == pytest.approx([1.0, 1.0, 1.0])
        assert (case.label == 1).mean() == pytest.approx(float(r["fg_anterior"]), abs=1e-5)
        assert (case.label == 2).mean() == pytest.approx(float(r["fg_posterior"]), abs=1e-5)
        dtypes.add(r["img_dtype"])
    assert dtypes == {"uint8", "float32"}  # both on-disk dtypes were read and cast


def test_summary_fractions_match_index(busi_root, hippocampus_root):
    rows = _subset(_index(busi_root), 20)
    ds = load_dataset(busi_root, cache=False)
    s = summarize(ds, [r["name"] for r in rows])
    expected = 100 * np.mean([float(r["fg_fraction"]) for r in rows])
    assert s["classes"]["foreground"]["mean_pct"] == pytest.approx(expected, abs=1e-3)
    assert s["classes"]["background"]["mean_pct"] == pytest.approx(100 - expected, abs=1e-3)
    hrows = _subset(_index(hippocampus_root), 20)
    h = load_dataset(hippocampus_root, cache=False, num_classes=3)
    hs = summarize(h, [r["name"].removesuffix(".nii.gz") for r in hrows])
    assert hs["classes"]["class1"]["mean_pct"] == pytest.approx(100 * np.mean([float(r["fg_anterior"]) for r in hrows]), abs=1e-3)
    assert hs["classes"]["class2"]["mean_pct"] == pytest.approx(100 * np.mean([float(r["fg_posterior"]) for r in hrows]), abs=1e-3)
