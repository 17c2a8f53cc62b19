"""The Keras training example of ``docs/keras.md`` runs as printed and trains (``model.fit`` on the phantom)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[2] / "docs" / "keras.md"


def _example() -> str:
    text = DOC.read_text()
    m = re.search(r"<!-- docs-example: keras-training -->\n```python\n(.*?)```", text, re.S)
    assert m, "docs/keras.md lost its tested training example"
    return m.group(1)


def test_docs_training_example_runs_and_trains(capsys):
    namespace: dict = {}
    exec(compile(_example(), str(DOC), "exec"), namespace)
    losses = namespace["history"].history["loss"]
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses  # the loss falls: the model learns the phantom
    printed = capsys.readouterr().out
    assert printed.strip().startswith("[")
    model, x = namespace["model"], namespace["x"]
    assert model.predict(x[:1], verbose=0).shape == (1, 32, 32, 2)
