"""On-disk cache of preprocessed cases.

One uncompressed ``.npz`` per case (image, label, meta as JSON) under
``<cache_dir>/<dataset>/<case id>-<key>.npz``. The key is a SHA-256 of the preprocessing dict, the
label mapping, the reader and each source file's path, size and modification time, so changing any
of them invalidates the entry. Files are written to a temporary name in the same folder and moved
into place with :func:`os.replace` (atomic: a reader never sees a half-written file, and parallel
writers of the same entry are harmless).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from unifocal._atomic import atomic_write
from unifocal.data.case import Case


def default_cache_dir() -> Path:
    """``$UNIFOCAL_CACHE`` if set, else ``~/.cache/unifocal``."""
    env = os.environ.get("UNIFOCAL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unifocal"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def hash_key(*parts: Any) -> str:
    """A stable SHA-256 hex digest of JSON-serialisable ``parts``."""
    blob = json.dumps(_jsonable(list(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def file_signature(path: str | Path) -> list:
    """``[absolute path, size, mtime_ns]`` of a source file (part of a cache key)."""
    p = Path(path)
    st = p.stat()
    return [str(p.resolve()), st.st_size, st.st_mtime_ns]


class CaseCache:
    """Preprocessed-case store in one folder.

    Args:
        root: Folder of this dataset's entries.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.clean_stale_tmp()

    def clean_stale_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files (``.*.tmp``) of writers killed mid-write, once older than ``older_than_s``.

        The cache is shared by concurrent processes, so only old temporary files are removed (a live
        writer finishes a case in seconds). Returns how many were removed.
        """
        n = 0
        if not self.root.is_dir():
            return 0
        now = time.time()
        for p in self.root.glob(".*.tmp"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n

    def path(self, case_id: str, key: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id)
        return self.root / f"{safe}-{key[:20]}.npz"

    def load(self, case_id: str, key: str) -> Case | None:
        """The cached case, or ``None`` when absent or unreadable (then it is recomputed)."""
        p = self.path(case_id, key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as d:
                image, label, meta = d["image"], d["label"], json.loads(str(d["meta"]))
        except Exception:
            return None
        if meta.get("_key") != key:
            return None
        meta.pop("_key", None)
        meta["affine"] = np.asarray(meta["affine"])
        return Case(case_id, image, label, meta)

    def save(self, case: Case, key: str) -> Path:
        """Store ``case`` atomically; returns the file."""
        p = self.path(case.id, key)
        meta = _jsonable(dict(case.meta, _key=key))

        def write(f):
            np.savez(f, image=case.image, label=case.label, meta=np.array(json.dumps(meta)))

        atomic_write(p, write)
        return p
