"""Rewrite the configuration table of docs/training.md from the declarations in unifocal.training.config
(tests/training/test_settings_declaration.py checks that the two agree)."""

from __future__ import annotations

from pathlib import Path

from unifocal.training.config import settings_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
START, END = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"

if __name__ == "__main__":
    text = DOC.read_text()
    i, j = text.index(START) + len(START), text.index(END)
    DOC.write_text(text[:i] + settings_table() + text[j:])
    print(f"rewrote the settings table of {DOC}")
