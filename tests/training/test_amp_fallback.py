"""``amp: true`` on a CPU without native bfloat16 (no AVX512-BF16 / AMX) trains in float32 after a
one-line notice, given once per process; with native bfloat16 it trains under bf16 autocast."""

from __future__ import annotations

import warnings

import pytest
import torch

from unifocal.training import inference
from unifocal.training.loop import build_run

from .conftest import tiny_config


def _conv_dtypes(ctx) -> list[torch.dtype]:
    """Train one short epoch; the dtypes of the first convolution's outputs."""
    conv = next(m for m in ctx.model.modules() if isinstance(m, torch.nn.Conv2d))
    seen: list[torch.dtype] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    try:
        ids = list(ctx.dataset.ids)[:8]
        loss, images = ctx.train_epoch(ids, 1)
    finally:
        handle.remove()
    assert images == 8 and loss == loss  # trained, finite
    return seen


def test_amp_without_native_bf16_falls_back_to_float32_with_one_notice(monkeypatch):
    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(inference, "_AMP_NOTICE_GIVEN", False)
    cfg = tiny_config(amp=True, epochs=1, dataset={"name": "phantom2d", "options": {"n_cases": 8, "size": 32}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx = build_run(cfg)
        build_run(cfg)  # a second run in the same process: no second notice
        dtypes = _conv_dtypes(ctx)
    notices = [w for w in caught if "bfloat16" in str(w.message)]
    assert len(notices) == 1, [str(w.message) for w in caught]
    assert issubclass(notices[0].category, RuntimeWarning)
    msg = str(notices[0].message)
    assert "\n" not in msg and "float32" in msg
    assert ctx.cfg.amp is True and ctx.amp is False  # the request is kept, the run is float32
    assert dtypes and set(dtypes) == {torch.float32}


def test_amp_with_native_bf16_trains_under_bf16_autocast(monkeypatch):
    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: True)
    cfg = tiny_config(amp=True, epochs=1, dataset={"name": "phantom2d", "options": {"n_cases": 8, "size": 32}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ctx = build_run(cfg)
    assert ctx.amp is True
    assert set(_conv_dtypes(ctx)) == {torch.bfloat16}


@pytest.mark.parametrize("amp", [False, True])
def test_effective_amp_leaves_other_cases_alone(monkeypatch, amp):
    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(inference, "_AMP_NOTICE_GIVEN", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert inference.effective_amp("cuda", amp) is amp  # fp16 autocast on CUDA: not this question
        assert inference.effective_amp("cpu", False) is False


def test_cpu_supports_bf16_answers_a_bool():
    assert isinstance(inference.cpu_supports_bf16(), bool)
