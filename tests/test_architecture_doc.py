"""``docs/architecture.md`` states the contracts the code implements: every configuration key and the
signatures it quotes."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from unifocal.data import make_train_loader
from unifocal.training import TrainConfig

PAGE = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()


def _paragraph(start: str) -> str:
    i = PAGE.index(start)
    return PAGE[i:PAGE.index("\n\n", i)]


def test_every_configuration_key_is_listed():
    keys = _paragraph("Configuration keys")
    listed = set(re.findall(r"`(\w+)(?::[^`]*)?`", keys))
    missing = [k for k in TrainConfig.__dataclass_fields__ if k not in listed]
    assert not missing, f"docs/architecture.md misses configuration keys {missing}"


def test_make_train_loader_signature_is_the_codes():
    doc = _paragraph("- `make_train_loader(")
    documented = re.search(r"make_train_loader\(([^)]*)\)", doc.replace("\n", " ")).group(1)
    doc_params = [p.strip().split("=")[0] for p in documented.split(",") if p.strip() not in ("*", "")]
    code = inspect.signature(make_train_loader).parameters
    assert doc_params == list(code)
    for p in documented.split(","):
        if "=" in p:
            name, default = (s.strip() for s in p.split("="))
            assert repr(code[name].default) == default, name
