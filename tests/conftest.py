"""Shared fixtures. Real data lives outside the repo; its location comes from ``UNIFOCAL_DATA``.

Under CI (``CI=true``) a missing data folder is a failure, not a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_root() -> Path | None:
    env = os.environ.get("UNIFOCAL_DATA")
    if env:
        return Path(env)
    guess = Path(__file__).resolve().parents[2] / "shared" / "data"
    return guess if guess.is_dir() else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data folder (``$UNIFOCAL_DATA``); skip locally, fail under CI, when it is missing."""
    root = _data_root()
    if root is None or not root.is_dir():
        msg = f"real data not found (UNIFOCAL_DATA={os.environ.get('UNIFOCAL_DATA')!r})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


def _dataset_dir(data_root: Path, name: str) -> Path:
    p = data_root / name
    if not p.is_dir():
        pytest.fail(f"{p} missing from the real-data folder")
    return p


@pytest.fixture(scope="session")
def busi_root(data_root: Path) -> Path:
    return _dataset_dir(data_root, "BUSI")


@pytest.fixture(scope="session")
def hippocampus_root(data_root: Path) -> Path:
    return _dataset_dir(data_root, "MSD_Task04_Hippocampus")
