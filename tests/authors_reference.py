"""The authors' reference values (``<reference>/authors_keras``), loaded without any framework.

Shared by the torch tests (``tests/losses/test_reference_authors.py``) and the Keras tests, which also
run where torch is not installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest


def _reference_dir() -> Path:
    """``$UNIFOCAL_REFERENCE``, else the ``reference`` folder beside ``$UNIFOCAL_DATA``."""
    if os.environ.get("UNIFOCAL_REFERENCE"):
        return Path(os.environ["UNIFOCAL_REFERENCE"])
    return Path(os.environ.get("UNIFOCAL_DATA", "data")).resolve().parent / "reference"


REF_DIR = _reference_dir() / "authors_keras"


def _load():
    jp = REF_DIR / "authors_keras_golden.json"
    if not jp.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"authors' reference values missing: {jp}")
        pytest.skip(f"authors' reference values missing: {jp}")
    meta = json.loads(jp.read_text())
    arrays = np.load(REF_DIR / "authors_keras_golden.npz")
    return meta, arrays


def _records():
    try:
        meta, _ = _load()
    except pytest.skip.Exception:
        return [pytest.param(None, marks=pytest.mark.skip(reason="reference missing"))]
    except pytest.fail.Exception:
        return [None]
    return [pytest.param(r, id=f"{r['case']}-{r['function']}-{json.dumps(r['kwargs'], sort_keys=True)}")
            for r in meta["records"]]
