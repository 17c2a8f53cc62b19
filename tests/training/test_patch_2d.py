"""2D runs trained on patches validate and evaluate with the same window as ``predict`` (issue: 2D
inference ignored ``patch_size`` and ``overlap``)."""

from __future__ import annotations

import unifocal.training.loop as loop
from unifocal.training import train_and_evaluate

from .conftest import tiny_config


def test_2d_patch_size_and_overlap_reach_validation_and_evaluation(tmp_path, monkeypatch):
    seen: list[tuple] = []
    real_predict, real_eval = loop.predict_logits, loop.evaluate_cases

    def predict(model, image, **kw):
        seen.append(("validate", kw.get("patch_size"), kw.get("overlap")))
        return real_predict(model, image, **kw)

    def evaluate(*a, **kw):
        seen.append(("evaluate", kw.get("patch_size"), kw.get("overlap")))
        return real_eval(*a, **kw)

    monkeypatch.setattr(loop, "predict_logits", predict)
    monkeypatch.setattr(loop, "evaluate_cases", evaluate)
    cfg = tiny_config(epochs=1, patch_size=[16, 16], overlap=0.25,
                      dataset={"name": "phantom2d", "options": {"n_cases": 8, "size": 32}})
    s = train_and_evaluate(cfg, tmp_path / "run", progress=False)
    assert s["status"] == "finished"
    assert {x[0] for x in seen} == {"validate", "evaluate"}
    assert all(ps == [16, 16] and ov == 0.25 for _, ps, ov in seen), seen
