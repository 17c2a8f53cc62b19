"""Every Python example of docs/integrations.md runs (each needs its framework, see conftest.require)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integrations.conftest import require

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
BLOCK = re.compile(r"```python\n# example: (?P<name>[\w-]+)\n(?P<code>.*?)```", re.S)


def _examples() -> dict[str, str]:
    return {m["name"]: m["code"] for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))}


NEEDS = {
    "pytorch": [],
    "monai": ["monai"],
    "smp-lightning-binary": ["segmentation_models_pytorch", "lightning", "torchmetrics"],
    "smp-lightning-multilabel": ["segmentation_models_pytorch", "lightning", "torchmetrics"],
}


def test_every_example_is_tested():
    assert set(_examples()) == set(NEEDS)


@pytest.mark.parametrize("name", list(NEEDS))
def test_example_runs(name):
    for module in NEEDS[name]:
        require(module)
    code = _examples()[name]
    exec(compile(code, f"{DOC.name}:{name}", "exec"), {"__name__": f"docs_example_{name.replace('-', '_')}"})
