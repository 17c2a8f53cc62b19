"""Checkpoints and random-number-generator states, written atomically and read as weights only.

Every file a run writes that another process may read (checkpoints, ``log.csv``, ``summary.json``,
``config.yaml``, ``split.json``) goes through :mod:`unifocal._atomic` / :func:`save_checkpoint`: the
content is written to a temporary file in the same folder, flushed and fsync-ed, then moved over the
target with :func:`os.replace` (atomic on POSIX), so a ``kill -9`` leaves either the old or the new
file, never a torn one.

A checkpoint holds tensors and plain data only (dicts, lists, tuples, strings, numbers, booleans,
``None``): the model specification and the configuration are plain dicts, and the random-number
generator states are stored as tensors and lists (:func:`get_rng_state`). It is read with
``torch.load(weights_only=True)``, which never runs code from the file; a file that needs anything
else (a crafted pickle, a checkpoint of another program) is refused with a ``ValueError``. See
``docs/reliability.md``.
"""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from unifocal._atomic import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "get_rng_state", "load_checkpoint",
           "save_checkpoint", "set_rng_state", "to_plain"]


def to_plain(obj: Any) -> Any:
    """``obj`` with NumPy arrays / scalars and paths turned into plain Python data (tensors are kept).

    Raises:
        ValueError: ``obj`` holds something that is neither plain data nor a tensor.
    """
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        return {to_plain(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = [to_plain(v) for v in obj]
        return out if isinstance(obj, list) else tuple(out)
    raise ValueError(f"cannot store a {type(obj).__name__} ({obj!r:.80}) in a checkpoint: checkpoints hold "
                     f"tensors and plain data only (dict, list, tuple, str, int, float, bool, None)")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically, after checking it loads with ``weights_only=True``.

    Raises:
        ValueError: ``state`` holds an object that is not a tensor or plain data.
    """
    buf = io.BytesIO()
    torch.save(to_plain(state), buf)
    buf.seek(0)
    try:
        torch.load(buf, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # pragma: no cover - to_plain lets nothing else through
        raise ValueError(f"{path}: the checkpoint would not load as weights only ({exc})") from exc
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, as weights only (no code is run).

    Raises:
        ValueError: the file does not exist, is not a readable checkpoint (truncated, not a torch
            file), or holds objects other than tensors and plain data (a crafted or foreign pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; give a run folder that has finished at least one "
                         f"epoch, or a .pt file")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive; anything else is not ours
        raise ValueError(f"checkpoint {path} is not a torch checkpoint (no zip archive: "
                         f"{'empty file' if not magic else 'starts with ' + repr(magic)}); it was overwritten or is not a "
                         f"checkpoint: restore it from a copy, or retrain the run")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "Unsupported global" in ln or "GLOBAL" in ln]
        why = lines[0].split(". ")[0] if lines else type(exc).__name__
        raise ValueError(f"checkpoint {path} was refused: it holds objects other than tensors and plain data, "
                         f"which could run code when loaded ({why}). "
                         f"Only checkpoints written by unifocal are loaded; retrain the run, or use a "
                         f"checkpoint from a trusted source") from None
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise ValueError(f"checkpoint {path} is not a readable torch checkpoint ({type(exc).__name__}: {exc}); "
                         f"it is truncated or not a checkpoint: restore it from a copy, or retrain the run") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a unifocal checkpoint (a dict "
                         f"with 'model' and 'spec'); give a checkpoint written by unifocal")
    return state


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, as tensors and lists.

    Python's Mersenne-Twister state and NumPy's legacy ``RandomState`` state are stored element for
    element (int64 tensors), so that :func:`set_rng_state` restores them exactly and the checkpoint
    loads with ``weights_only=True``.
    """
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global generator, on purpose)
    state = {"python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], np.asarray(npy["keys"].numpy(), dtype=np.uint32), npy["pos"],  # noqa: NPY002
                         npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu() if state["torch"].device.type != "cpu" else state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
