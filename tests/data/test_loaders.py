"""Training patches (padding, oversampling, determinism) and the evaluation loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unifocal.data import load_dataset, make_eval_loader, make_train_loader
from unifocal.data.loaders import pad_to, random_crop


def _find_offset(big: np.ndarray, patch: np.ndarray) -> tuple[int, ...] | None:
    """Brute-force search of ``patch`` inside ``big`` (independent of the crop code)."""
    ps = patch.shape
    for idx in np.ndindex(*[b - p + 1 for b, p in zip(big.shape, ps)]):
        sl = tuple(slice(i, i + p) for i, p in zip(idx, ps))
        if np.array_equal(big[sl], patch):
            return idx
    return None


def test_train_batches_shapes_and_types():
    ds = load_dataset("phantom2d", n_cases=6, size=32)
    loader = make_train_loader(ds, ds.ids, batch_size=4, patch_size=(24, 16))
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [4, 2]
    for b in batches:
        assert b["image"].dtype == torch.float32 and b["image"].shape[1:] == (1, 24, 16)
        assert b["label"].dtype == torch.int64 and b["label"].shape[1:] == (24, 16)
        assert set(torch.unique(b["label"]).tolist()) <= {0, 1}


def test_patches_are_windows_of_the_case_without_augmentation():
    ds = load_dataset("phantom2d", n_cases=3, size=20)
    loader = make_train_loader(ds, ds.ids, batch_size=1, patch_size=(8, 12), augment=False, seed=1)
    found = set()
    for b in loader:
        img = b["image"][0, 0].numpy()
        hits = [cid for cid in ds.ids if _find_offset(ds[cid].image[0], img) is not None]
        assert len(hits) == 1
        off = _find_offset(ds[hits[0]].image[0], img)
        sl = (slice(off[0], off[0] + 8), slice(off[1], off[1] + 12))
        np.testing.assert_array_equal(b["label"][0].numpy(), ds[hits[0]].label[sl])
        found.add(hits[0])
    assert found == set(ds.ids)  # one epoch visits every case once


def test_small_cases_are_zero_padded():
    image = np.ones((1, 5, 6), np.float32)
    label = np.ones((5, 6), np.uint8)
    img, lab = pad_to(image, label, (9, 6))
    assert img.shape == (1, 9, 6) and lab.shape == (9, 6)
    np.testing.assert_array_equal(lab[:, 0], [0, 0, 1, 1, 1, 1, 1, 0, 0])
    img, lab = random_crop(image, label, (8, 8), np.random.default_rng(0))
    assert img.shape == (1, 8, 8) and lab.sum() == 30 and img.sum() == 30
    ds = load_dataset("phantom3d", n_cases=2, size=12)
    b = next(iter(make_train_loader(ds, ds.ids, batch_size=2, patch_size=(16, 12, 14), augment=False)))
    assert b["image"].shape == (2, 1, 16, 12, 14)
    assert torch.all(b["image"][:, :, :2] == 0) and torch.all(b["label"][:, :2] == 0)


def test_foreground_oversampling():
    ds = load_dataset("phantom2d", n_cases=8, size=64)
    kw = {"batch_size": 8, "patch_size": (12, 12), "augment": False, "samples_per_epoch": 64}
    fg = torch.cat([b["label"].flatten(1).amax(1) for b in make_train_loader(ds, ds.ids, oversample_foreground=1.0, **kw)])
    plain = torch.cat([b["label"].flatten(1).amax(1) for b in make_train_loader(ds, ds.ids, **kw)])
    assert len(fg) == 64 and bool(torch.all(fg > 0))
    assert plain.float().mean() < 0.6  # lesions are rare: uniform patches often miss them


def test_loader_is_deterministic_by_seed():
    ds = load_dataset("phantom2d", n_cases=4, size=32)

    def run(seed):
        loader = make_train_loader(ds, ds.ids, batch_size=2, patch_size=(16, 16), seed=seed)
        return [b["image"] for _ in range(2) for b in loader]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert not torch.equal(a[0], a[2])  # the second epoch differs from the first


def test_whole_case_batches_padded_to_largest():
    ds = load_dataset("phantom2d", n_cases=2, size=16)
    ds2 = load_dataset("phantom2d", n_cases=2, size=(16, 20))
    from unifocal.data.loaders import pad_collate

    batch = pad_collate([{"image": torch.from_numpy(d[0].image), "label": torch.from_numpy(d[0].label.astype(np.int64))}
                         for d in (ds, ds2)])
    assert batch["image"].shape == (2, 1, 16, 20) and batch["label"].shape == (2, 16, 20)
    assert torch.all(batch["image"][0, 0, :, :2] == 0)
    b = next(iter(make_train_loader(ds, ds.ids, batch_size=2, augment=False)))
    assert b["image"].shape == (2, 1, 16, 16)


def test_eval_loader_whole_cases():
    ds = load_dataset("phantom3d", n_cases=3, size=16)
    items = list(make_eval_loader(ds, ds.ids[1:]))
    assert [it["id"] for it in items] == ds.ids[1:]
    for it in items:
        np.testing.assert_array_equal(it["image"][0].numpy(), ds[it["id"]].image)
        assert it["label"].shape == (1, 16, 16, 16) and it["label"].dtype == torch.int64
        assert "spacing" in it["meta"]


def test_bad_arguments():
    ds = load_dataset("phantom2d", n_cases=2)
    with pytest.raises(ValueError):
        make_train_loader(ds, [], batch_size=1)
    with pytest.raises(KeyError):
        make_train_loader(ds, ["nope"], batch_size=1)
    with pytest.raises(ValueError, match="patch_size"):
        make_train_loader(ds, ds.ids, batch_size=1, patch_size=(8, 8, 8))


def test_same_batches_with_a_worker_process(pairs_root, cache_dir):
    ds = load_dataset(pairs_root, cache_dir=cache_dir, resize=[32, 32])
    kw = {"batch_size": 2, "patch_size": (24, 24), "seed": 3}
    a = [b["image"] for b in make_train_loader(ds, ds.ids, **kw)]
    b = [b["image"] for b in make_train_loader(ds, ds.ids, num_workers=1, **kw)]
    assert len(a) == len(b) == 2 and all(torch.equal(x, y) for x, y in zip(a, b))
