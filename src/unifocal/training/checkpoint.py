"""Checkpoints and random-number-generator states, written atomically.

Every file a run writes that another process may read (checkpoints, ``log.csv``, ``summary.json``,
``config.yaml``, ``split.json``) goes through :mod:`unifocal._atomic` / :func:`save_checkpoint`: the
content is written to a temporary file in the same folder, flushed and fsync-ed, then moved over the
target with :func:`os.replace` (atomic on POSIX), so a ``kill -9`` leaves either the old or the new
file, never a torn one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unifocal._atomic import atomic_write, atomic_write_json, atomic_write_text

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "get_rng_state", "load_checkpoint",
           "save_checkpoint", "set_rng_state"]


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
