"""Atomic files, checkpoints and random-number-generator states.

Every file a run writes that another process may read (checkpoints, ``log.csv``, ``summary.json``,
``config.yaml``, ``split.json``) goes through :func:`atomic_write` / :func:`save_checkpoint`: the
content is written to a temporary file in the same folder, flushed and fsync-ed, then moved over the
target with :func:`os.replace` (atomic on POSIX), so a ``kill -9`` leaves either the old or the new
file, never a torn one.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "get_rng_state", "load_checkpoint",
           "save_checkpoint", "set_rng_state"]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file that then replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file (UTF-8)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (our own files: ``weights_only=False``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; give a run folder that has finished at least one "
                         f"epoch, or a .pt file")
    return torch.load(path, map_location=map_location, weights_only=False)


def get_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    state = {"python": random.getstate(),
             "numpy": np.random.get_state(),  # noqa: NPY002 (the global generator is saved on purpose)
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`get_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
