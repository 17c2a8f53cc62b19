"""pytest plugin for CI's core step (``-p tests.core_only``): the wheel with its torch extra only (torch, numpy).

A test that fails only because it imports a package of the ``pipeline`` extra (MONAI, SciPy, …)
inside its body is reported as skipped, naming the package; any other failure stays a failure.
Test files that import such a package at module level are left out by ``.ci/run`` itself.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

PIPELINE = frozenset({"monai", "scipy", "yaml", "nibabel", "SimpleITK", "PIL", "typer", "click", "rich",
                      "tqdm", "matplotlib", "tensorboard"})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in PIPELINE:
            pytest.skip(f"needs the pipeline extra (module {exc.name!r} is not installed)")
        raise
