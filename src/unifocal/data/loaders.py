"""Training and evaluation loaders: random patches (padding small cases), augmentation, batching.

Randomness is fixed by ``seed`` and independent of ``num_workers``: a sampler in the main process
draws, each epoch, a permutation of the cases and one seed per sample; the worker crops and
augments with that seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from unifocal.data.augment import apply_augmentation, build_augmentation
from unifocal.data.dataset import SegmentationDataset


def pad_to(image: np.ndarray, label: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``image (C,*s)`` and ``label (*s)`` with zeros, centred, to at least ``shape``.

    Zero is the mean of a z-scored image, and background for labels (as nnU-Net pads).
    Hand-written with :func:`numpy.pad` (no resampling involved; MONAI ``SpatialPad`` does the same
    on tensors with more overhead).
    """
    need = [max(0, int(t) - s) for t, s in zip(shape, label.shape)]
    if not any(need):
        return image, label
    widths = [(n // 2, n - n // 2) for n in need]
    return (np.pad(image, [(0, 0), *widths], mode="constant"),
            np.pad(label, widths, mode="constant"))


def random_crop(image: np.ndarray, label: np.ndarray, patch_size: Sequence[int], rng: np.random.Generator,
                *, foreground: bool = False, fg_coords: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """A random patch (after padding), optionally centred on a random foreground voxel.

    Args:
        image: ``(C, *s)``.
        label: ``(*s)``.
        patch_size: Patch shape.
        rng: Random generator.
        foreground: Centre the patch on a foreground voxel (when the case has any).
        fg_coords: Foreground voxel coordinates ``(N, dims)`` in the padded grid (computed if
            ``None``).
    """
    image, label = pad_to(image, label, patch_size)
    shape = label.shape
    ps = [int(p) for p in patch_size]
    if foreground:
        if fg_coords is None:
            fg_coords = np.argwhere(label > 0)
        if len(fg_coords):
            c = fg_coords[rng.integers(len(fg_coords))]
            start = [int(np.clip(ci - p // 2, 0, s - p)) for ci, p, s in zip(c, ps, shape)]
        else:
            foreground = False
    if not foreground:
        start = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, ps)]
    sl = tuple(slice(a, a + p) for a, p in zip(start, ps))
    return image[(slice(None), *sl)], label[sl]


class _EpochSampler(Sampler):
    """Yields ``(case index, sample seed)``: a fresh seeded permutation each epoch."""

    def __init__(self, n: int, seed: int, samples_per_epoch: int | None = None):
        self.n = n
        self.samples = samples_per_epoch or n
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        reps = -(-self.samples // self.n)
        order = np.concatenate([self.rng.permutation(self.n) for _ in range(reps)])[: self.samples]
        seeds = self.rng.integers(0, 2**31 - 1, size=len(order))
        yield from zip(order.tolist(), seeds.tolist())


class PatchDataset(Dataset):
    """Map-style dataset of ``(case index, seed) -> {"image", "label"}`` training samples."""

    def __init__(self, dataset: SegmentationDataset, ids: Sequence[str], patch_size: Sequence[int] | None,
                 augment: bool | dict[str, Any], oversample_foreground: float):
        self.dataset = dataset
        self.ids = list(ids)
        self.patch_size = None if patch_size is None else [int(p) for p in patch_size]
        if self.patch_size is not None and len(self.patch_size) != dataset.spatial_dims:
            raise ValueError(f"patch_size {patch_size} does not have {dataset.spatial_dims} entries")
        self.oversample = float(oversample_foreground)
        params = augment if isinstance(augment, dict) else {}
        self.transform = build_augmentation(dataset.spatial_dims, **params) if augment else None
        self._fg: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, seed = item
        cid = self.ids[i]
        case = self.dataset[cid]
        rng = np.random.default_rng(seed)
        image, label = case.image, case.label
        if self.patch_size is not None:
            fg = self.oversample > 0 and rng.random() < self.oversample
            coords = None
            if fg:
                padded = pad_to(image, label, self.patch_size)[1]
                if cid not in self._fg:
                    self._fg[cid] = np.argwhere(padded > 0)
                coords = self._fg[cid]
            image, label = random_crop(image, label, self.patch_size, rng, foreground=fg, fg_coords=coords)
        if self.transform is not None:
            img_t, lab_t = apply_augmentation(self.transform, image, label, seed)
        else:
            img_t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
            lab_t = torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))
        return {"image": img_t, "label": lab_t}


def pad_collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples, zero-padding each (centred) to the largest shape in the batch."""
    shape = np.max([b["label"].shape for b in batch], axis=0)
    imgs, labs = [], []
    for b in batch:
        need = [int(t - s) for t, s in zip(shape, b["label"].shape)]
        pads: list[int] = []
        for n in reversed(need):
            pads += [n // 2, n - n // 2]
        imgs.append(torch.nn.functional.pad(b["image"], pads))
        labs.append(torch.nn.functional.pad(b["label"], pads))
    return {"image": torch.stack(imgs), "label": torch.stack(labs)}


def make_train_loader(dataset: SegmentationDataset, ids: Sequence[str], *, batch_size: int,
                      patch_size: Sequence[int] | None = None, augment: bool | dict[str, Any] = True,
                      seed: int = 0, num_workers: int = 0, oversample_foreground: float = 0.0,
                      samples_per_epoch: int | None = None, drop_last: bool = False) -> DataLoader:
    """A loader of random training patches.

    Each epoch visits every case once (or ``samples_per_epoch`` samples) in a seeded random order.

    Args:
        dataset: The dataset.
        ids: Training case ids.
        batch_size: Samples per batch.
        patch_size: Patch shape; cases smaller than it are zero-padded. ``None``: whole cases (a
            batch is padded to its largest case).
        augment: ``True`` (defaults), ``False``, or a dict of :data:`~unifocal.data.augment.AUGMENT_DEFAULTS`
            overrides.
        seed: Seed of the order, crops and augmentation.
        num_workers: DataLoader worker processes.
        oversample_foreground: Probability that a patch is centred on a foreground voxel (0: plain
            uniform patches, as in the paper).
        samples_per_epoch: Samples per epoch (default ``len(ids)``).
        drop_last: Drop the last incomplete batch.

    Returns:
        A ``DataLoader`` yielding ``{"image": float32 (B, C, *p), "label": int64 (B, *p)}``.
    """
    if not ids:
        raise ValueError("make_train_loader: no training ids")
    missing = [i for i in ids if i not in dataset._index]
    if missing:
        raise KeyError(f"ids not in dataset {dataset.name}: {missing[:5]}")
    ds = PatchDataset(dataset, ids, patch_size, augment, oversample_foreground)
    sampler = _EpochSampler(len(ds), seed, samples_per_epoch)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=pad_collate, drop_last=drop_last, persistent_workers=num_workers > 0)


class EvalLoader:
    """Iterates whole preprocessed cases, one at a time.

    Yields ``{"id": str, "image": float32 (1, C, *s), "label": int64 (1, *s), "meta": dict}``.
    """

    def __init__(self, dataset: SegmentationDataset, ids: Sequence[str]):
        self.dataset = dataset
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for cid in self.ids:
            case = self.dataset[cid]
            yield {"id": cid, "image": torch.from_numpy(np.ascontiguousarray(case.image))[None],
                   "label": torch.from_numpy(case.label.astype(np.int64))[None], "meta": case.meta}


def make_eval_loader(dataset: SegmentationDataset, ids: Sequence[str]) -> EvalLoader:
    """Whole cases one at a time (for sliding-window inference and evaluation)."""
    return EvalLoader(dataset, ids)
