"""Inference: whole-image (2D) and sliding-window (3D) prediction, mapping back, saving.

* **2D**: the whole preprocessed image (e.g. 128x128 for BUS) goes through the network at once,
  zero-padded at the end of each axis to a multiple of the network's ``divisor`` and cropped back,
  when it fits in ``patch_size`` (or no ``patch_size`` is given); a larger image (a 4000x4000
  photograph predicted by a run trained on 512x512 images) is tiled with MONAI's
  ``sliding_window_inference`` like a 3D volume, with windows no larger than the image, so that
  memory stays bounded (``docs/benchmarks.md``).
  For the metrics the class **probabilities** are then mapped back to the original image size by
  linear interpolation (the inverse of the preprocessing resize, ``dataset.to_original``) and the
  arg-max is taken there, so the metrics are computed on the original pixel grid against the
  original mask.
* **3D**: ``monai.inferers.sliding_window_inference`` with the training patch size and the paper's
  overlap of 0.5 (BraTS 96^3 patches with 48^3 overlap; KiTS 80x160x160 with 40x80x80), Gaussian
  weighting of the patch outputs (as nnU-Net); volumes smaller than a patch are padded by MONAI.
  Probabilities are mapped back to the original voxel grid in the same way.
* Saving: label maps as NIfTI carrying the source affine (3D, and 2D NIfTI input) or as PNG (2D):
  the PNG pixel value is ``class * (255 // (K - 1))`` (0/255 for a binary task, like BUSI masks).
  Probabilities on request: ``<id>_probs.nii.gz`` (4D, classes last) or ``<id>_probs.npz``.
"""

from __future__ import annotations

import functools
import gzip
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from unifocal._atomic import atomic_write

__all__ = ["cpu_supports_bf16", "effective_amp", "predict_logits", "predict_probabilities", "probs_to_labels",
           "save_prediction", "select_device"]


def select_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return torch.device(device)


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively: x86 AVX512-BF16 or AMX, Arm's BF16 extension.

    Without it ``torch.autocast("cpu", dtype=torch.bfloat16)`` is emulated and slower than float32.
    ``torch.backends.cpu.get_cpu_capability()`` does not tell (it says ``AVX512`` with or without
    BF16), so torch's own CPU feature probes are asked first, then the ``flags`` / ``Features`` of
    ``/proc/cpuinfo``; with neither saying yes, the answer is no.
    """
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # a private probe of another torch version: fall through to the flags
            pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


_AMP_NOTICE_GIVEN = False


def effective_amp(device: torch.device | str, amp: bool) -> bool:
    """``amp`` as it runs on ``device``: on a CPU without native bfloat16 (:func:`cpu_supports_bf16`)
    ``False``, i.e. float32, with a one-line ``RuntimeWarning`` the first time in a process."""
    global _AMP_NOTICE_GIVEN
    if not amp or torch.device(device).type != "cpu" or cpu_supports_bf16():
        return amp
    if not _AMP_NOTICE_GIVEN:
        _AMP_NOTICE_GIVEN = True
        warnings.warn("amp: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where bf16 autocast is slower "
                      "than float32; running in float32 instead", RuntimeWarning, stacklevel=2)
    return False


def _autocast(device: torch.device, amp: bool):
    amp = effective_amp(device, amp)
    if not amp:
        return torch.autocast(device_type=device.type, enabled=False)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _activate(logits: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    if not inplace:
        return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
    if logits.shape[1] == 1:  # in place: no second full-size tensor for a large image
        return logits.sigmoid_()
    logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
    return logits.div_(logits.sum(dim=1, keepdim=True))


def _model_divisor(model: nn.Module) -> int:
    return int(getattr(model, "divisor", 1))


def _forward_padded(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    div = _model_divisor(model)
    spatial = x.shape[2:]
    pads = [(-s) % div for s in spatial]
    if any(pads):
        pad_arg: list[int] = []
        for p in reversed(pads):
            pad_arg += [0, p]
        x = F.pad(x, pad_arg)
    out = model(x)
    if isinstance(out, (list, tuple)):
        out = out[0]
    return out[(slice(None), slice(None), *(slice(0, s) for s in spatial))]


@torch.no_grad()
def predict_logits(model: nn.Module, image: np.ndarray | torch.Tensor, *, patch_size: Sequence[int] | None = None,
                   overlap: float = 0.5, device: torch.device | str = "cpu", amp: bool = False,
                   sw_batch_size: int = 2, mode: str = "gaussian") -> torch.Tensor:
    """Logits ``(1, K, *spatial)`` (float32, on ``device``) for one image ``(C, *spatial)``.

    Whole-image when ``patch_size`` is ``None`` or covers the image (2D), else sliding window
    (2D windows are capped by the image size).
    The model is put in eval mode (so deep supervision returns the full-resolution head only).
    """
    device = torch.device(device)
    model.eval()
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    x = x.float().unsqueeze(0).to(device)
    spatial = tuple(x.shape[2:])
    with _autocast(device, amp):
        if patch_size is None or (len(spatial) == 2 and all(p >= s for p, s in zip(patch_size, spatial))):
            out = _forward_padded(model, x)
        else:
            from monai.inferers import sliding_window_inference

            roi = [int(p) for p in patch_size]
            if len(spatial) == 2:  # windows no larger than the image (MONAI would pad it up to the window)
                roi = [min(p, s) for p, s in zip(roi, spatial)]
            out = sliding_window_inference(x, roi_size=tuple(roi),
                                           sw_batch_size=sw_batch_size, predictor=lambda t: _forward_padded(model, t),
                                           overlap=overlap, mode=mode)
    return out.float()


def predict_probabilities(model: nn.Module, image: np.ndarray | torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Class probabilities ``(K, *spatial)`` on CPU (softmax; sigmoid for one-channel outputs).

    Keyword arguments are those of :func:`predict_logits`.
    """
    return _activate(predict_logits(model, image, **kwargs), inplace=True)[0].cpu()


def probs_to_labels(probs: np.ndarray | torch.Tensor, threshold: float = 0.5) -> np.ndarray:
    """``(K, *spatial)`` probabilities -> ``uint8`` label map (arg-max; ``p > threshold`` for K == 1)."""
    p = np.asarray(probs)
    if p.shape[0] == 1:
        return (p[0] > threshold).astype(np.uint8)
    # arg-max class by class (first maximum wins, as np.argmax) without an int64 index array
    labels = np.zeros(p.shape[1:], np.uint8)
    best = p[0].copy()
    for k in range(1, p.shape[0]):
        better = p[k] > best
        labels[better] = k
        np.maximum(best, p[k], out=best)
    return labels


def save_prediction(out_dir: str | Path, case_id: str, labels: np.ndarray, *, num_classes: int,
                    affine: np.ndarray | None = None, probs: np.ndarray | None = None,
                    fmt: str = "auto") -> Path:
    """Save one label map (and optionally probabilities); returns the label file path.

    Args:
        out_dir: Output folder (created).
        case_id: File stem.
        labels: ``(*spatial)`` integer labels in the original geometry.
        num_classes: ``K`` (for the PNG grey levels).
        affine: 4x4 source affine for NIfTI (identity when missing).
        probs: ``(K, *spatial)`` probabilities to save beside the labels, or ``None``.
        fmt: ``"png"``, ``"nifti"`` or ``"auto"`` (PNG for 2D, NIfTI for 3D).
    """
    out_dir = Path(out_dir)
    if fmt == "auto":
        fmt = "png" if labels.ndim == 2 else "nifti"
    if fmt not in ("png", "nifti"):
        raise ValueError(f"unknown prediction format {fmt!r}; use png, nifti or auto")
    out_dir.mkdir(parents=True, exist_ok=True)
    aff = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)

    def nifti_bytes(arr: np.ndarray) -> bytes:
        return gzip.compress(nib.Nifti1Image(arr, aff).to_bytes(), compresslevel=6, mtime=0)

    if fmt == "png":
        scale = 255 // max(num_classes - 1, 1)
        path = out_dir / f"{case_id}.png"
        buf = io.BytesIO()
        Image.fromarray((labels.astype(np.int32) * scale).astype(np.uint8)).save(buf, format="PNG")
        atomic_write(path, lambda f: f.write(buf.getbuffer()))
    else:
        path = out_dir / f"{case_id}.nii.gz"
        data = nifti_bytes(labels.astype(np.uint8))
        atomic_write(path, lambda f: f.write(data))
    if probs is not None:
        if fmt == "nifti":
            data = nifti_bytes(np.moveaxis(np.asarray(probs, np.float32), 0, -1))
            atomic_write(out_dir / f"{case_id}_probs.nii.gz", lambda f: f.write(data))
        else:
            buf = io.BytesIO()
            np.savez_compressed(buf, probs=np.asarray(probs, np.float32))
            atomic_write(out_dir / f"{case_id}_probs.npz", lambda f: f.write(buf.getbuffer()))
    return path
