"""The :class:`SegmentationDataset` base: ids, preprocessing, caching, access by index or id."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from unifocal.data.cache import CaseCache, default_cache_dir, hash_key
from unifocal.data.case import Case
from unifocal.data.preprocessing import preprocess, restore_geometry


class SegmentationDataset:
    """A set of segmentation cases with a fixed preprocessing.

    Subclasses implement :meth:`_load_raw` (decode one case, labels mapped to ``0..K-1``) and
    :meth:`_source_signature` (what identifies the source files, for the cache key).

    Args:
        name: Short dataset name (cache sub-folder).
        layout: Reader name (``pairs``, ``msd``, ``phantom2d``...).
        ids: Case ids, in a stable order.
        num_classes: Number of classes including background.
        class_names: One name per class.
        spatial_dims: 2 or 3.
        in_channels: Image channels.
        preprocessing: Resolved preprocessing dict (keys the cache).
        rare_classes: Foreground classes of interest (default: all but background).
        cache_dir: Root of the on-disk cache (default ``$UNIFOCAL_CACHE`` or ``~/.cache/unifocal``).
        cache: Use the on-disk cache.
        memory_cache: Keep up to this many preprocessed cases in memory (0: none).

    Raises:
        ValueError: The dataset has no cases.
    """

    def __init__(self, *, name: str, layout: str, ids: list[str], num_classes: int,
                 class_names: list[str], spatial_dims: int, in_channels: int,
                 preprocessing: dict[str, Any], rare_classes: list[int] | None = None,
                 cache_dir: str | Path | None = None, cache: bool = True, memory_cache: int = 0,
                 root: str | Path | None = None):
        if not ids:
            raise ValueError(f"{root or name}: empty dataset (no cases found for layout {layout!r})")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{root or name}: duplicate case ids")
        self.name = name
        self.layout = layout
        self.root = Path(root) if root is not None else None
        self.ids = list(ids)
        self._index = {cid: i for i, cid in enumerate(self.ids)}
        self.num_classes = int(num_classes)
        self.class_names = list(class_names)
        self.spatial_dims = int(spatial_dims)
        self.in_channels = int(in_channels)
        self.preprocessing = dict(preprocessing)
        self.rare_classes = list(rare_classes) if rare_classes is not None else list(range(1, num_classes))
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_cache = bool(cache)
        self._cache = CaseCache(self.cache_dir / name) if cache else None
        self._mem: OrderedDict[str, Case] = OrderedDict()
        self._mem_size = int(memory_cache)
        self._warned = False
        self.excluded: dict[str, str] = {}
        #: The paper's training patch / inference overlap for this dataset (BraTS20 96^3 / 48^3,
        #: KiTS19 80x160x160 / 40x80x80); ``None``: whole images (BUS) or no paper setting.
        self.default_patch_size: tuple[int, ...] | None = None
        self.default_overlap: tuple[int, ...] | None = None

    # -- to implement -------------------------------------------------------------------------
    def _load_raw(self, case_id: str) -> Case:  # pragma: no cover - abstract
        raise NotImplementedError

    def _source_signature(self, case_id: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, layout={self.layout!r}, cases={len(self)}, "
                f"num_classes={self.num_classes}, spatial_dims={self.spatial_dims})")

    def case_id(self, key: int | str) -> str:
        """The id of case ``key`` (index or id)."""
        if isinstance(key, int | np.integer):
            return self.ids[int(key)]
        if key not in self._index:
            raise KeyError(f"{key!r} is not a case of {self.name}")
        return key

    def cache_key(self, case_id: str) -> str:
        """The hash keying the cached preprocessed case."""
        return hash_key(self.layout, self.preprocessing, self._source_signature(case_id))

    def original(self, key: int | str) -> Case:
        """The case before preprocessing (raw intensities, labels mapped to ``0..K-1``).

        Its meta carries ``spacing``, ``affine``, ``original_shape`` and the source paths.
        """
        cid = self.case_id(key)
        case = self._load_raw(cid)
        case.meta.setdefault("original_shape", list(case.image.shape[1:]))
        return case

    def __getitem__(self, key: int | str) -> Case:
        cid = self.case_id(key)
        if cid in self._mem:
            self._mem.move_to_end(cid)
            return self._mem[cid]
        case = None
        ckey = None
        if self._cache is not None:
            ckey = self.cache_key(cid)
            case = self._cache.load(cid, ckey)
        if case is None:
            raw = self.original(cid)
            image, label, meta = preprocess(raw.image, raw.label, raw.meta, self.preprocessing)
            case = Case(cid, image, label, meta)
            if self._cache is not None:
                try:
                    self._cache.save(case, ckey)
                except OSError as exc:  # read-only or full disk: keep working, uncached
                    if not self._warned:
                        warnings.warn(f"cannot write the preprocessing cache in {self._cache.root} ({exc}); "
                                      "continuing without caching", RuntimeWarning, stacklevel=2)
                        self._warned = True
            case.meta["affine"] = np.asarray(case.meta["affine"])
        if self._mem_size > 0:
            self._mem[cid] = case
            while len(self._mem) > self._mem_size:
                self._mem.popitem(last=False)
        return case

    def __iter__(self):
        for cid in self.ids:
            yield self[cid]

    def to_original(self, key: int | str, array: np.ndarray, *, is_label: bool = True) -> np.ndarray:
        """Map a prediction on the preprocessed grid of case ``key`` back to its original grid.

        Args:
            key: Case index or id.
            array: ``(*spatial)`` label map, or ``(C, *spatial)`` probabilities (``is_label=False``).
            is_label: Nearest-neighbour for labels, linear for probabilities.
        """
        return restore_geometry(array, self[key].meta, is_label=is_label)

    def prepare(self, ids: list[str] | None = None, progress: bool = False) -> None:
        """Preprocess and cache ``ids`` (default all) ahead of training."""
        it = ids if ids is not None else self.ids
        if progress:
            it = tqdm(it, desc=f"preprocess {self.name}")
        for cid in it:
            self[cid]
