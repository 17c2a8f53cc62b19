"""Every code example of ``docs/keras.md`` runs as printed, without the pipeline extra.

Each ``python`` block of the guide carries a ``<!-- docs-example: NAME -->`` marker and runs in a fresh
namespace while the pipeline extra's packages and unifocal's pipeline subpackages are made unimportable
(a guide example may need only ``unifocal[keras]`` and a backend). The training example must also
train (its loss falls), and the save / load example's claim is checked in fresh processes: loading a
saved model fails without ``import unifocal.keras`` and works with it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "keras.md"
BLOCK = re.compile(r"(?:<!-- docs-example: (?P<name>[\w-]+) -->\n)?```python\n(?P<code>.*?)```", re.S)
EXAMPLES = ("keras-training", "keras-save-load", "keras-deep-supervision")
# what `unifocal[keras]` plus a backend does not install (the pipeline extra, less what Keras or a
# backend brings itself: scipy, rich, tensorboard) and unifocal's subpackages that need it
PIPELINE = ("monai", "nibabel", "SimpleITK", "PIL", "typer", "tqdm", "matplotlib", "yaml",
            "unifocal.data", "unifocal.study", "unifocal.training", "unifocal.models",
            "unifocal.cli")


def _examples() -> dict[str, str]:
    blocks = list(BLOCK.finditer(DOC.read_text(encoding="utf-8")))
    assert all(m["name"] for m in blocks), "every python block of docs/keras.md needs a docs-example marker"
    return {m["name"]: m["code"] for m in blocks}


def test_every_example_is_tested():
    assert tuple(_examples()) == EXAMPLES


def _run(name: str, monkeypatch) -> dict:
    for module in PIPELINE:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    namespace: dict = {"__name__": f"docs_example_{name.replace('-', '_')}"}
    exec(compile(_examples()[name], f"{DOC.name}:{name}", "exec"), namespace)
    return namespace


def test_docs_training_example_runs_and_trains(capsys, monkeypatch):
    namespace = _run("keras-training", monkeypatch)
    losses = namespace["history"].history["loss"]
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses  # the loss falls: the model learns the discs
    printed = capsys.readouterr().out
    assert printed.strip().startswith("[")
    model, x = namespace["model"], namespace["x"]
    assert model.predict(x[:1], verbose=0).shape == (1, 32, 32, 2)


def test_docs_save_load_example_runs(capsys, monkeypatch):
    namespace = _run("keras-save-load", monkeypatch)
    restored = namespace["restored"]
    assert type(restored.loss).__name__ == "UnifiedFocalLoss" and restored.loss.get_config()["delta"] == 0.7
    assert capsys.readouterr().out.strip() == "UnifiedFocalLoss(delta=0.7, gamma=0.2, lambda_=0.5)"


def test_docs_deep_supervision_example_runs(monkeypatch):
    namespace = _run("keras-deep-supervision", monkeypatch)
    assert namespace["weights"] == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert np.isfinite(namespace["history"].history["loss"]).all()
    shapes = [tuple(o.shape) for o in namespace["model"].predict(namespace["x"][:1], verbose=0)]
    assert shapes == [(1, 32, 32, 2), (1, 16, 16, 2), (1, 8, 8, 2)]


def test_loading_needs_import_unifocal_keras(tmp_path):
    """What the guide says: without ``import unifocal.keras`` a fresh process cannot load the model."""
    from unifocal.keras import UnifiedFocalLoss

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 1, activation="softmax")])
    model.compile(optimizer="adam", loss=UnifiedFocalLoss(delta=0.7))
    path = tmp_path / "model.keras"
    model.save(path)
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    load = f"import keras\nm = keras.saving.load_model({str(path)!r}, compile=True)\nprint(type(m.loss).__name__)"
    without = subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, text=True, timeout=300)
    assert without.returncode != 0
    assert "Could not locate class 'UnifiedFocalLoss'" in without.stderr, without.stderr[-2000:]
    with_import = subprocess.run([sys.executable, "-c", "import unifocal.keras\n" + load], env=env,
                                 capture_output=True, text=True, timeout=300)
    assert with_import.returncode == 0, with_import.stderr[-2000:]
    assert with_import.stdout.strip().endswith("UnifiedFocalLoss")
