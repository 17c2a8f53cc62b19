"""The Keras tests run on one backend per process: ``KERAS_BACKEND`` (default ``jax``) is read by the
first ``import keras``, so CI runs this folder once per backend (``.ci/run``). Skipped when Keras or
the chosen backend is not installed (``pip install ".[keras]"`` plus a backend).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
BACKEND = os.environ["KERAS_BACKEND"]
_MODULE = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch"}.get(BACKEND, BACKEND)

if importlib.util.find_spec("keras") is None or importlib.util.find_spec(_MODULE) is None:
    collect_ignore_glob = ["test_*.py"]
    if os.environ.get("UNIFOCAL_REQUIRE_KERAS", "").lower() == "true":
        raise pytest.UsageError(f"Keras tests required but keras or the {BACKEND} backend is not installed")
elif BACKEND == "jax":
    import jax

    jax.config.update("jax_enable_x64", True)  # the float64 agreement tests; Keras's floatx stays float32
