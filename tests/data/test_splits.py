"""Seeded folds, JSON round-trip, reuse."""

from __future__ import annotations

import json

import pytest

from unifocal.data import get_splits, load_dataset, load_splits, make_folds, save_splits

IDS = [f"c{i:02d}" for i in range(23)]


def test_folds_partition_the_cases():
    folds = make_folds(IDS, n_folds=5, seed=0)
    assert len(folds) == 5
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == set(IDS) and sum(map(len, vals)) == len(IDS)
    assert sorted(len(v) for v in vals) == [4, 4, 5, 5, 5]
    for f in folds:
        assert set(f["train"]) | set(f["val"]) == set(IDS) and not set(f["train"]) & set(f["val"])


def test_folds_seeded_and_order_independent():
    assert make_folds(IDS, seed=3) == make_folds(list(reversed(IDS)), seed=3)
    assert make_folds(IDS, seed=3) != make_folds(IDS, seed=4)
    with pytest.raises(ValueError):
        make_folds(IDS[:3], n_folds=5)
    with pytest.raises(ValueError, match="duplicate"):
        make_folds([*IDS, IDS[0]])


def test_save_load_roundtrip(tmp_path):
    folds = make_folds(IDS, n_folds=3, seed=1)
    p = save_splits(tmp_path / "s" / "splits.json", folds)
    assert json.loads(p.read_text())[0]["val"] == folds[0]["val"]
    assert load_splits(p) == folds
    p.write_text(json.dumps([{"train": ["a"], "val": ["b"]}, {"train": ["a"], "val": ["b"]}]))
    with pytest.raises(ValueError, match="'b' is in the validation sets of folds 0 and 1"):
        load_splits(p)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable splits"):
        load_splits(p)


def test_get_splits_reuses_existing_file(tmp_path):
    ds = load_dataset("phantom2d", n_cases=10)
    first = get_splits(ds, tmp_path, n_folds=5, seed=0)
    assert (tmp_path / "splits.json").is_file()
    # a different seed does not matter once the file exists: every run shares the same split
    assert get_splits(ds, tmp_path, n_folds=5, seed=99) == first
    custom = make_folds(ds.ids, n_folds=5, seed=7)
    save_splits(tmp_path / "splits.json", custom)
    assert get_splits(ds, tmp_path, n_folds=5) == custom != first
    with pytest.raises(ValueError, match="do not match"):
        get_splits(load_dataset("phantom2d", n_cases=12), tmp_path, n_folds=5)
