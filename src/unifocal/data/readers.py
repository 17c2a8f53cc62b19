"""Readers of the dataset layouts, layout detection and :func:`load_dataset`.

Layouts (``layout=`` names):

- ``pairs``: generic 2D pairs ``images/<stem>.png`` + ``masks/<stem>.png`` (masks {0,255} -> {0,1}).
- ``bus2017``: BUS2017 Dataset B, ``original/NNNNNN.png`` + ``GT/NNNNNN.png``.
- ``busi``: BUSI as published, ``Dataset_BUSI_with_GT/<class>/<class> (N).png`` with
  ``<class> (N)_mask.png`` (and ``_mask_1.png``... merged by union).
- ``msd``: Medical Segmentation Decathlon / nnU-Net raw, ``imagesTr/`` + ``labelsTr/``, optional
  ``dataset.json``, optional ``_0000`` channel suffixes.
- ``brats20``: ``BraTS20_Training_XXX/BraTS20_Training_XXX_{t1,t1ce,t2,flair,seg}.nii.gz``.
- ``kits19``: ``case_XXXXX/imaging.nii.gz`` + ``segmentation.nii.gz``.
- ``phantom2d`` / ``phantom3d``: the built-in synthetic phantom (a name, not a path).
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from unifocal._atomic import atomic_write
from unifocal.data.cache import default_cache_dir, file_signature, hash_key
from unifocal.data.case import Case
from unifocal.data.dataset import SegmentationDataset
from unifocal.data.io import check_finite, is_nifti, read_nifti, read_png, strip_nifti_suffix
from unifocal.data.phantom import PHANTOM_DEFAULTS, PhantomDataset
from unifocal.data.preprocessing import DEFAULT_PREPROCESSING, make_preprocessing

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
KITS19_EXCLUDED = (15, 23, 37, 68, 125, 133)
BUS_PREPROCESSING = {"resize": [128, 128], "normalize": "zscore"}
BRATS_PREPROCESSING = {"normalize": "zscore_nonzero"}
KITS_PREPROCESSING = {"clip": [-79.0, 304.0], "spacing": [3.22, 1.62, 1.62], "normalize": "zscore"}


@dataclass
class CaseRecord:
    """Where one case lives on disk.

    Attributes:
        id: Case id.
        images: One file per input channel.
        labels: Label file(s); several are merged by union (BUSI ``_mask_1``...).
        kind: ``"png"`` or ``"nifti"``.
    """

    id: str
    images: list[Path]
    labels: list[Path]
    kind: str


@dataclass
class ReaderResult:
    records: list[CaseRecord]
    num_classes: int
    class_names: list[str]
    spatial_dims: int
    in_channels: int
    label_map: dict[int, int]
    preprocessing: dict[str, Any]
    excluded: dict[str, str] = field(default_factory=dict)
    patch_size: tuple[int, ...] | None = None
    overlap: tuple[int, ...] | None = None


# --------------------------------------------------------------------------------------------
# label handling
def map_labels(raw: np.ndarray, label_map: dict[int, int], path: Path | str) -> np.ndarray:
    """Map raw label values to classes ``0..K-1`` with a lookup table.

    Raises:
        ValueError: ``raw`` holds values outside ``label_map`` (the message names ``path``).
    """
    arr = np.asarray(raw)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{path}: label file holds non-integer values")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{path}: label dtype {arr.dtype} is not integer")
    vals = _unique_values(arr)
    bad = [int(v) for v in vals if int(v) not in label_map]
    if bad:
        raise ValueError(f"{path}: label values {bad[:10]} outside the expected set {sorted(label_map)}")
    lut = np.zeros(int(max(vals.max(initial=0), max(label_map))) + 1, dtype=np.uint8)
    for k, v in label_map.items():
        if k >= 0:
            lut[k] = v
    return lut[arr.astype(np.int64, copy=False)] if arr.dtype != np.uint8 else lut[arr]


def _unique_values(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "ub" or (arr.size and arr.min() >= 0 and arr.max() < 65536):
        counts = np.bincount(arr.ravel().astype(np.int64, copy=False))
        return np.flatnonzero(counts)
    return np.unique(arr)


# --------------------------------------------------------------------------------------------
class FileDataset(SegmentationDataset):
    """A dataset read from files described by :class:`CaseRecord` entries."""

    def __init__(self, result: ReaderResult, *, root: Path, layout: str, preprocessing: dict[str, Any],
                 rare_classes: list[int] | None = None, cache_dir=None, cache: bool = True,
                 memory_cache: int = 0, class_names: list[str] | None = None):
        self.records = {r.id: r for r in result.records}
        self.label_map = dict(result.label_map)
        name = f"{root.resolve().name}-{layout}-{hash_key(str(root.resolve()))[:8]}"
        super().__init__(name=name, layout=layout, ids=[r.id for r in result.records],
                         num_classes=result.num_classes,
                         class_names=class_names or result.class_names,
                         spatial_dims=result.spatial_dims, in_channels=result.in_channels,
                         preprocessing=preprocessing, rare_classes=rare_classes, cache_dir=cache_dir,
                         cache=cache, memory_cache=memory_cache, root=root)
        self.excluded = dict(result.excluded)
        self.default_patch_size = result.patch_size
        self.default_overlap = result.overlap

    def _source_signature(self, case_id: str) -> Any:
        r = self.records[case_id]
        return {"images": [file_signature(p) for p in r.images],
                "labels": [file_signature(p) for p in r.labels],
                "label_map": sorted(self.label_map.items())}

    def _load_raw(self, case_id: str) -> Case:
        r = self.records[case_id]
        if r.kind == "png":
            return self._load_png(r)
        return self._load_nifti(r)

    def _load_png(self, r: CaseRecord) -> Case:
        chans = [read_png(p) for p in r.images]
        for p, c in zip(r.images, chans):
            check_finite(c, p)
            if min(c.shape) < 2:
                raise ValueError(f"{p}: image of {c.shape[0]}x{c.shape[1]} pixels; at least 2 pixels per side are "
                                 f"needed (fix or remove this case)")
        for p, c in zip(r.images[1:], chans[1:]):
            if c.shape != chans[0].shape:
                raise ValueError(f"{p}: shape {c.shape} differs from {r.images[0]} {chans[0].shape}")
        label = None
        for p in r.labels:
            m = read_png(p)
            if m.shape != chans[0].shape:
                raise ValueError(f"{p}: mask shape {m.shape} does not match image {r.images[0]} "
                                 f"shape {chans[0].shape}")
            m = map_labels(m, self.label_map, p)
            label = m if label is None else np.maximum(label, m)
        image = np.stack(chans).astype(np.float32)
        meta = {"spacing": [1.0, 1.0], "affine": np.eye(4), "original_shape": list(image.shape[1:]),
                "image_path": str(r.images[0]) if len(r.images) == 1 else [str(p) for p in r.images],
                "label_path": str(r.labels[0]) if len(r.labels) == 1 else [str(p) for p in r.labels]}
        return Case(r.id, image, label, meta)

    def _load_nifti(self, r: CaseRecord) -> Case:
        chans: list[np.ndarray] = []
        ref_aff = ref_sp = ref_shape = None
        for p in r.images:
            arr, aff, sp = read_nifti(p)
            if arr.ndim == 4:  # channels last (MSD multi-modal)
                parts = [arr[..., i] for i in range(arr.shape[-1])]
            elif arr.ndim == 3:
                parts = [arr]
            else:
                raise ValueError(f"{p}: expected a 3D (or 4D multi-channel) volume, got shape {arr.shape}")
            check_finite(arr, p)
            if ref_shape is None:
                ref_aff, ref_sp, ref_shape = aff, sp, parts[0].shape
            elif parts[0].shape != ref_shape or not np.allclose(aff, ref_aff, atol=1e-3):
                raise ValueError(f"{p}: geometry (shape {parts[0].shape}) differs from {r.images[0]} "
                                 f"(shape {ref_shape})")
            chans.extend(parts)
        if len(chans) != self.in_channels:
            raise ValueError(f"{r.images[0]}: case {r.id} has {len(chans)} channel(s) (shape {arr.shape}), the dataset "
                             f"has {self.in_channels}; every case needs the same channels (fix or remove this file)")
        image = np.stack([c.astype(np.float32) for c in chans])
        label = None
        for p in r.labels:
            lab, aff, _sp = read_nifti(p)
            if lab.ndim == 4 and lab.shape[-1] == 1:
                lab = lab[..., 0]
            if lab.shape != ref_shape:
                raise ValueError(f"{p}: label shape {lab.shape} does not match image {r.images[0]} "
                                 f"shape {ref_shape}")
            if not np.allclose(aff, ref_aff, atol=1e-3, rtol=1e-4):
                raise ValueError(f"{p}: label affine/spacing does not match image {r.images[0]}:\n"
                                 f"label {np.round(aff, 4).tolist()}\nimage {np.round(ref_aff, 4).tolist()}")
            m = map_labels(lab, self.label_map, p)
            label = m if label is None else np.maximum(label, m)
        meta = {"spacing": list(ref_sp), "affine": ref_aff, "original_shape": list(ref_shape),
                "image_path": str(r.images[0]) if len(r.images) == 1 else [str(p) for p in r.images],
                "label_path": str(r.labels[0]) if len(r.labels) == 1 else [str(p) for p in r.labels]}
        return Case(r.id, image, label, meta)


# --------------------------------------------------------------------------------------------
# label scans (cached JSON beside the case cache)
def scan_label_values(paths: list[Path], *, cache_dir: Path | None) -> dict[str, list[int]]:
    """Unique label values of each label file (decodes every file once; result cached as JSON).

    Args:
        paths: Label files (PNG or NIfTI).
        cache_dir: Where to keep the scan (keyed by the files' size and mtime); ``None``: no cache.
    """
    key = hash_key("scan", [file_signature(p) for p in paths])
    cfile = cache_dir / "_scans" / f"{key[:24]}.json" if cache_dir is not None else None
    if cfile is not None and cfile.is_file():
        try:
            return json.loads(cfile.read_text())
        except (OSError, ValueError):  # unreadable or torn cache file: scan again
            pass
    out = {}
    for p in paths:
        arr = read_nifti(p)[0] if is_nifti(p) else read_png(p)
        if arr.dtype.kind == "f":
            arr = np.round(arr).astype(np.int64)
        out[str(p)] = [int(v) for v in _unique_values(arr)]
    if cfile is not None:
        atomic_write(cfile, lambda f: f.write(json.dumps(out).encode()))
    return out


def check_label_sets(values: dict[str, list[int]], declared: list[int] | None, source: str) -> int:
    """Check the label values of every file against the declared set; return the number of classes.

    Args:
        values: ``{label file: its unique values}`` (from :func:`scan_label_values`).
        declared: The values the dataset declares (``dataset.json`` labels, or ``num_classes``);
            ``None``: nothing declared, the values must then be ``0..K-1`` without gaps.
        source: What declares them, for the message.

    Raises:
        ValueError: naming the file(s) with a value outside the declared set, or, with nothing
            declared, with a value beyond a gap (one stray voxel of 200 must not make 201 classes).
    """
    union = sorted({v for vs in values.values() for v in vs})
    if declared is None:
        k = 0
        while k in union:
            k += 1
        allowed = set(range(k))
        hint = ("the label values must be 0..K-1 without gaps when the dataset declares none; fix the file(s), "
                "or declare the labels in dataset.json (\"labels\") or pass num_classes=")
    else:
        allowed = set(declared)
        hint = f"fix the file(s), or correct {source}"
    bad = {f: [v for v in vs if v not in allowed] for f, vs in values.items()}
    bad = {f: b for f, b in bad.items() if b}
    if bad:
        files = sorted(bad)
        shown = "; ".join(f"{f}: {bad[f][:5]}" for f in files[:5])
        more = f" (and {len(files) - 5} more files)" if len(files) > 5 else ""
        raise ValueError(f"unexpected label value(s) in {len(files)} of {len(values)} label file(s): {shown}{more}. "
                         f"Expected {sorted(allowed)} ({source}); {hint}")
    return max(len(allowed), 2) if declared is None else len(declared)


def _nifti_channels(paths: list[Path]) -> int:
    """Channels of a one-file-per-case MSD image set (4D: channels last), read from the headers."""
    counts: dict[Path, int] = {}
    for p in paths:
        try:
            shape = nib.load(str(p)).shape
        except Exception as exc:
            raise ValueError(f"{p}: unreadable or truncated NIfTI file ({exc or type(exc).__name__})") from exc
        if len(shape) not in (3, 4):
            raise ValueError(f"{p}: expected a 3D (or 4D multi-channel) volume, got shape {shape}")
        counts[p] = shape[3] if len(shape) == 4 else 1
    if not counts:
        return 1
    common = max(set(counts.values()), key=list(counts.values()).count)
    odd = [p for p, c in counts.items() if c != common]
    if odd:
        raise ValueError(f"{odd[0]}: {counts[odd[0]]} channel(s) but {len(counts) - len(odd)} other image(s) have "
                         f"{common}; every case needs the same channels (fix or remove this file)")
    return common


# --------------------------------------------------------------------------------------------
# readers
def _need_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found (wrong layout?)")


def _listdir(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    _need_dir(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(exts))


def _binary_or_k(num_classes: int) -> dict[int, int]:
    if num_classes == 2:
        return {0: 0, 1: 1, 255: 1}
    return {k: k for k in range(num_classes)}


def _by_stem(files: list[Path]) -> dict[str, Path]:
    """``{stem: file}``; two files with one stem (``x.png`` beside ``x.jpg``) are refused, not one dropped."""
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise ValueError(f"{out[p.stem]} and {p} have the same name: one case would silently replace the "
                             f"other; keep one of them (or rename one)")
        out[p.stem] = p
    return out


def _pairs_from_dirs(img_dir: Path, mask_dir: Path) -> list[CaseRecord]:
    images = _by_stem(_listdir(img_dir, IMAGE_EXTS))
    masks = _by_stem(_listdir(mask_dir, IMAGE_EXTS))
    for stem, p in sorted(images.items()):
        if stem not in masks:
            raise ValueError(f"{p}: image without mask (expected {mask_dir}/{stem}.png)")
    for stem, p in sorted(masks.items()):
        if stem not in images:
            raise ValueError(f"{p}: mask without image (expected {img_dir}/{stem}.png)")
    return [CaseRecord(s, [images[s]], [masks[s]], "png") for s in sorted(images)]


def read_pairs(root: Path, *, num_classes: int = 2, image_dir: str = "images",
               mask_dir: str = "masks", include: str | None = None) -> ReaderResult:
    """Generic 2D pairs ``images/<stem>.png`` + ``masks/<stem>.png``.

    Args:
        root: Folder holding ``images/`` and ``masks/``.
        num_classes: 2 (masks {0,255} or {0,1}) or K (mask values 0..K-1).
        image_dir: Name of the image folder.
        mask_dir: Name of the mask folder.
        include: Regular expression; only cases whose stem matches it (``re.search``) are kept, the
            others are listed in ``dataset.excluded``. E.g. ``"^(benign|malignant)_"`` drops BUSI's
            ``normal`` images (empty masks), as BUS2017 has none.
    """
    recs = _pairs_from_dirs(root / image_dir, root / mask_dir)
    excluded: dict[str, str] = {}
    if include:
        try:
            pattern = re.compile(include)
        except re.error as e:
            raise ValueError(f"include={include!r} is not a valid regular expression: {e}") from None
        excluded = {r.id: f"stem does not match include={include!r}" for r in recs if not pattern.search(r.id)}
        recs = [r for r in recs if r.id not in excluded]
        if not recs:
            raise ValueError(f"{root}: no case stem matches include={include!r}")
    names = ["background", "foreground"] if num_classes == 2 else \
        ["background"] + [f"class{k}" for k in range(1, num_classes)]
    return ReaderResult(recs, num_classes, names, 2, 1, _binary_or_k(num_classes), BUS_PREPROCESSING,
                        excluded=excluded)


def read_bus2017(root: Path) -> ReaderResult:
    """BUS2017 Dataset B: ``original/NNNNNN.png`` + ``GT/NNNNNN.png`` (masks {0,255})."""
    recs = _pairs_from_dirs(root / "original", root / "GT")
    return ReaderResult(recs, 2, ["background", "lesion"], 2, 1, _binary_or_k(2), BUS_PREPROCESSING)


_BUSI_IMG = re.compile(r"^(?P<cls>.+?) \((?P<n>\d+)\)\.png$", re.IGNORECASE)
_BUSI_MASK = re.compile(r"^(?P<cls>.+?) \((?P<n>\d+)\)_mask(?:_(?P<k>\d+))?\.png$", re.IGNORECASE)


def _busi_root(root: Path) -> Path:
    sub = root / "Dataset_BUSI_with_GT"
    return sub if sub.is_dir() else root


def read_busi(root: Path, *, include_normal: bool = True) -> ReaderResult:
    """BUSI as published: ``Dataset_BUSI_with_GT/<class>/<class> (N).png`` + ``... (N)_mask*.png``.

    Several masks of one image are merged by union; RGB PNGs are read as grayscale. Case ids are
    ``<class>_<NNN>`` (as in the flat ``pairs`` copy).

    Args:
        root: The folder holding ``Dataset_BUSI_with_GT`` (or that folder itself).
        include_normal: Keep the ``normal`` class (images with empty masks).
    """
    base = _busi_root(root)
    recs = []
    classes = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    for cdir in classes:
        if cdir.name.lower() == "normal" and not include_normal:
            continue
        images: dict[int, Path] = {}
        masks: dict[int, list[tuple[int, Path]]] = {}
        for p in _listdir(cdir, (".png",)):
            m = _BUSI_MASK.match(p.name)
            if m:
                masks.setdefault(int(m["n"]), []).append((int(m["k"] or 0), p))
                continue
            m = _BUSI_IMG.match(p.name)
            if m:
                images[int(m["n"])] = p
        for n, p in sorted(images.items()):
            if n not in masks:
                raise ValueError(f"{p}: image without mask (expected {cdir}/{cdir.name} ({n})_mask.png)")
        for n, ms in sorted(masks.items()):
            if n not in images:
                raise ValueError(f"{ms[0][1]}: mask without image (expected {cdir}/{cdir.name} ({n}).png)")
        for n in sorted(images):
            recs.append(CaseRecord(f"{cdir.name.lower()}_{n:03d}", [images[n]],
                                   [p for _, p in sorted(masks[n])], "png"))
    return ReaderResult(recs, 2, ["background", "lesion"], 2, 1, _binary_or_k(2), BUS_PREPROCESSING)


def _nii_files(folder: Path) -> list[Path]:
    _need_dir(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_nifti(p))


def read_msd(root: Path, *, num_classes: int | None = None, _cache_dir: Path | None = None) -> ReaderResult:
    """Medical Segmentation Decathlon / nnU-Net raw: ``imagesTr/`` + ``labelsTr/``.

    Channels are ``<case>_0000.nii.gz``, ``<case>_0001.nii.gz``... (nnU-Net) or one file per case,
    possibly 4D with channels last (MSD). ``dataset.json`` (optional) gives the label names
    (MSD ``{"0": "background", ...}`` or nnU-Net v2 ``{"background": 0, ...}``). Without it the
    label files are scanned once (cached) for their values and ``num_classes = max + 1``.

    Args:
        root: The task folder.
        num_classes: Override the number of classes.
    """
    img_dir, lab_dir = root / "imagesTr", root / "labelsTr"
    labels = {strip_nifti_suffix(p.name): p for p in _nii_files(lab_dir)}
    images = _nii_files(img_dir)
    stems = [strip_nifti_suffix(p.name) for p in images]
    suffixed = not all(s in labels for s in stems) and all(re.search(r"_\d{4}$", s) for s in stems)
    groups: dict[str, list[tuple[int, Path]]] = {}
    for s, p in zip(stems, images):
        if suffixed:
            cid, ch = s[:-5], int(s[-4:])
        else:
            cid, ch = s, 0
        groups.setdefault(cid, []).append((ch, p))
    for cid, chs in sorted(groups.items()):
        if cid not in labels:
            raise ValueError(f"{chs[0][1]}: image without label (expected {lab_dir}/{cid}.nii.gz)")
    for cid, p in sorted(labels.items()):
        if cid not in groups:
            raise ValueError(f"{p}: label without image (expected {img_dir}/{cid}"
                             f"{'_0000' if suffixed else ''}.nii.gz)")
    n_ch = {len(v) for v in groups.values()}
    if len(n_ch) > 1:
        bad = min(groups.items(), key=lambda kv: len(kv[1]))
        raise ValueError(f"{bad[1][0][1]}: case {bad[0]} has {len(bad[1])} channel file(s), others have {max(n_ch)}")
    recs = [CaseRecord(cid, [p for _, p in sorted(chs)], [labels[cid]], "nifti") for cid, chs in sorted(groups.items())]
    names: list[str] | None = None
    in_ch = n_ch.pop() if n_ch else 1
    if not suffixed:  # one file per case: 3D, or 4D with the channels last (read from the headers)
        in_ch = _nifti_channels([r.images[0] for r in recs])
    declared: list[int] | None = None
    djson = root / "dataset.json"
    if djson.is_file():
        try:
            info = json.loads(djson.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{djson}: unreadable dataset.json ({exc})") from exc
        lab = info.get("labels", {})
        pairs: dict[int, str] = {}
        for k, v in lab.items():
            if str(k).lstrip("-").isdigit():
                pairs[int(k)] = str(v)
            elif isinstance(v, int):
                pairs[v] = str(k)
        if pairs:
            names = [pairs.get(i, f"class{i}") for i in range(max(pairs) + 1)]
            declared = sorted(pairs)
        mods = info.get("channel_names") or info.get("modality") or {}
        if mods and len(mods) != in_ch:
            raise ValueError(f"{djson}: declares {len(mods)} channel(s) ({', '.join(map(str, mods.values()))}) but "
                             f"the images have {in_ch}; fix dataset.json or the images")
    source = "dataset.json labels" if declared is not None else "nothing declared"
    if num_classes is not None:
        declared, source = list(range(num_classes)), f"num_classes={num_classes}"
    vals = scan_label_values([r.labels[0] for r in recs], cache_dir=_cache_dir)
    k = check_label_sets(vals, declared, source)
    if num_classes is None:
        num_classes = len(names) if names is not None else k
    if names is None or len(names) != num_classes:
        names = ["background"] + [f"class{k}" for k in range(1, num_classes)]
    return ReaderResult(recs, num_classes, names, 3, in_ch, {k: k for k in range(num_classes)},
                        {"normalize": "zscore"})


_BRATS_DIR = re.compile(r"^BraTS20_Training_\d+$")


def _brats_dirs(root: Path) -> list[Path]:
    for base in (root, root / "MICCAI_BraTS2020_TrainingData"):
        if base.is_dir():
            ds = sorted(p for p in base.iterdir() if p.is_dir() and _BRATS_DIR.match(p.name))
            if ds:
                return ds
    return []


def _find_nii(folder: Path, stem: str) -> Path | None:
    for suf in (".nii.gz", ".nii"):
        if (folder / f"{stem}{suf}").is_file():
            return folder / f"{stem}{suf}"
    return None


def read_brats20(root: Path, *, modality: str = "t1ce", exclude_without_foreground: bool = True,
                 _cache_dir: Path | None = None) -> ReaderResult:
    """BraTS20 training data: T1-CE only, enhancing tumour (label 4) as foreground.

    Labels 1 (necrosis) and 2 (oedema) become background. Scans without label 4 are excluded (as
    the paper did), which needs one scan of the segmentations (cached).

    Args:
        root: ``MICCAI_BraTS2020_TrainingData`` or its parent.
        modality: Input sequence (``t1ce``, ``t1``, ``t2``, ``flair``).
        exclude_without_foreground: Drop scans without enhancing tumour.
    """
    recs, excluded = [], {}
    for d in _brats_dirs(root):
        img = _find_nii(d, f"{d.name}_{modality}")
        seg = _find_nii(d, f"{d.name}_seg")
        if seg is None:  # BraTS20_Training_355 ships its mask as "W39_1998.09.19_Segm.nii"
            cands = [p for p in _nii_files(d) if "seg" in p.name.lower()]
            seg = cands[0] if len(cands) == 1 else None
        if img is None and seg is None:
            continue
        if img is None:
            raise ValueError(f"{seg}: mask without image (expected {d}/{d.name}_{modality}.nii.gz)")
        if seg is None:
            raise ValueError(f"{img}: image without mask (expected {d}/{d.name}_seg.nii.gz)")
        recs.append(CaseRecord(d.name, [img], [seg], "nifti"))
    label_map = {0: 0, 1: 0, 2: 0, 4: 1}
    if exclude_without_foreground and recs:
        vals = scan_label_values([r.labels[0] for r in recs], cache_dir=_cache_dir)
        keep = []
        for r in recs:
            v = vals[str(r.labels[0])]
            bad = [x for x in v if x not in label_map]
            if bad:
                raise ValueError(f"{r.labels[0]}: label values {bad} outside the expected set {sorted(label_map)}")
            if 4 in v:
                keep.append(r)
            else:
                excluded[r.id] = "no enhancing tumour (label 4)"
        recs = keep
    return ReaderResult(recs, 2, ["background", "enhancing_tumour"], 3, 1, label_map, BRATS_PREPROCESSING,
                        excluded, patch_size=(96, 96, 96), overlap=(48, 48, 48))


_KITS_DIR = re.compile(r"^case_(\d{5})$")


def _kits_dirs(root: Path) -> list[Path]:
    for base in (root, root / "data"):
        if base.is_dir():
            ds = sorted(p for p in base.iterdir() if p.is_dir() and _KITS_DIR.match(p.name))
            if ds:
                return ds
    return []


def read_kits19(root: Path, *, exclude: tuple[int, ...] | list[int] = KITS19_EXCLUDED) -> ReaderResult:
    """KiTS19: ``case_XXXXX/imaging.nii.gz`` + ``segmentation.nii.gz`` (1 kidney, 2 tumour).

    Cases in ``exclude`` (default 15, 23, 37, 68, 125, 133, as the paper) and cases without a
    segmentation (the challenge test cases) are left out and listed in ``dataset.excluded``.

    Args:
        root: The folder holding ``case_XXXXX`` folders (or the kits19 repository with ``data/``).
        exclude: Case numbers to drop.
    """
    recs, excluded = [], {}
    drop = {int(x) for x in exclude}
    for d in _kits_dirs(root):
        n = int(_KITS_DIR.match(d.name).group(1))
        img = _find_nii(d, "imaging")
        seg = _find_nii(d, "segmentation")
        if n in drop:
            excluded[d.name] = "excluded by the paper"
            continue
        if seg is None:
            excluded[d.name] = "no segmentation"
            continue
        if img is None:
            raise ValueError(f"{seg}: mask without image (expected {d}/imaging.nii.gz)")
        recs.append(CaseRecord(d.name, [img], [seg], "nifti"))
    return ReaderResult(recs, 3, ["background", "kidney", "tumour"], 3, 1, {0: 0, 1: 1, 2: 2},
                        KITS_PREPROCESSING, excluded, patch_size=(80, 160, 160), overlap=(40, 80, 80))


READERS = {"pairs": read_pairs, "bus2017": read_bus2017, "busi": read_busi, "msd": read_msd,
           "brats20": read_brats20, "kits19": read_kits19}
LAYOUTS = (*READERS, *PHANTOM_DEFAULTS)


def detect_layout(path: str | Path) -> str:
    """Guess the layout of the dataset folder ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: No layout, or several, match.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    found = []
    if (root / "imagesTr").is_dir() and (root / "labelsTr").is_dir():
        found.append("msd")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        found.append("pairs")
    if (root / "original").is_dir() and (root / "GT").is_dir():
        found.append("bus2017")
    base = _busi_root(root)
    if base.is_dir() and any(p.is_dir() and any(p.glob("* (*)_mask*.png")) for p in base.iterdir()):
        found.append("busi")
    if _brats_dirs(root):
        found.append("brats20")
    if _kits_dirs(root):
        found.append("kits19")
    if not found:
        raise ValueError(f"{root}: no known dataset layout found (known: {', '.join(READERS)}); "
                         "pass layout=")
    if len(found) > 1:
        raise ValueError(f"{root}: ambiguous layout, matches {found}; pass layout=")
    return found[0]


def load_dataset(path_or_name: str | Path, layout: str | None = None, **options: Any) -> SegmentationDataset:
    """Open a dataset folder (layout detected or given) or the built-in phantom.

    Args:
        path_or_name: A dataset folder, or ``"phantom2d"`` / ``"phantom3d"``.
        layout: One of :data:`LAYOUTS`; detected when ``None``.
        **options: ``cache_dir``, ``cache`` (bool), ``memory_cache`` (int), ``rare_classes``,
            ``class_names``, ``preprocessing`` (dict) or its keys directly (``clip``, ``spacing``,
            ``resize``, ``normalize``, ``image_order``, ``anti_aliasing``; ``None`` disables a
            step), and the reader's own options (``num_classes`` for ``pairs``/``msd``,
            ``include_normal`` for ``busi``, ``modality`` for ``brats20``, ``exclude`` for
            ``kits19``; ``n_cases``, ``size``, ``num_classes``, ``seed`` for the phantom).

    Returns:
        The dataset.

    Raises:
        FileNotFoundError: The folder does not exist.
        ValueError: Unknown layout, bad files (named in the message), or no cases.
        TypeError: An option the layout does not take.
    """
    name = str(path_or_name)
    if layout in PHANTOM_DEFAULTS and name != layout:
        raise ValueError(f"layout {layout!r} is the built-in phantom, but the dataset {name!r} was given: the "
                         f"phantom would be trained and recorded as {name!r}. Drop the layout to read {name!r}, "
                         f"or use the dataset name {layout!r}")
    if layout in PHANTOM_DEFAULTS or (layout is None and name in PHANTOM_DEFAULTS):
        opts = dict(options)
        pre = dict(opts.pop("preprocessing", None) or {})
        for k in list(opts):
            if k in DEFAULT_PREPROCESSING:
                pre[k] = opts.pop(k)
        return PhantomDataset(layout or name, preprocessing=pre, **opts)
    root = Path(path_or_name).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    layout = layout or detect_layout(root)
    if layout not in READERS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    opts = dict(options)
    pre_over = dict(opts.pop("preprocessing", None) or {})
    for k in list(opts):
        if k in DEFAULT_PREPROCESSING:
            pre_over[k] = opts.pop(k)
    common = {k: opts.pop(k) for k in ("cache_dir", "cache", "memory_cache", "rare_classes", "class_names")
              if k in opts}
    reader = READERS[layout]
    sig = inspect.signature(reader).parameters
    unknown = [k for k in opts if k not in sig or k.startswith("_")]
    if unknown:
        allowed = [k for k in sig if k != "root" and not k.startswith("_")]
        raise TypeError(f"layout {layout!r} takes no option(s) {unknown}; its options: {allowed}")

    cache_root = Path(common.get("cache_dir") or default_cache_dir()) if common.get("cache", True) else None
    if "_cache_dir" in sig:
        opts["_cache_dir"] = cache_root
    result = reader(root, **opts)
    pre = make_preprocessing(result.preprocessing, **pre_over)
    ds = FileDataset(result, root=root, layout=layout, preprocessing=pre, **common)
    return ds
