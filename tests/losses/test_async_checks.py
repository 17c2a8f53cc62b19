"""The value checks as they run on CUDA: ``torch._assert_async``, no value read on the host.

On CUDA (and under ``torch.compile``) the checks of ``prepare`` must not force a host
synchronisation, so they queue ``torch._assert_async`` instead of reading the extrema
(``docs/losses.md``, "Input checks"). Without a GPU, forcing that route on CPU tensors checks it: on
CPU ``torch._assert_async`` raises ``RuntimeError`` at once, and a valid input gives the same loss.
"""

from __future__ import annotations

import pytest
import torch

import unifocal.losses as L
from unifocal.losses import _core, _kernel


@pytest.fixture
def asynchronous(monkeypatch):
    # the CUDA route: no CPU kernel (which reads the values in its own pass), asynchronous assertions
    monkeypatch.setenv("UNIFOCAL_KERNEL", "0")
    _kernel.reset()
    monkeypatch.setattr(_core, "_asynchronous", lambda t: True)
    read = torch.Tensor.item

    def no_item(self):  # the asynchronous route must never read a value on the host
        raise AssertionError("a value check read a tensor value on the asynchronous route")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    yield
    monkeypatch.setattr(torch.Tensor, "item", read)
    monkeypatch.undo()
    _kernel.reset()


def _data(k=3):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, k, 6, 5, generator=gen), torch.randint(0, k, (2, 6, 5), generator=gen)


def test_valid_input_same_loss(asynchronous):
    x, y = _data()
    value = L.unified_focal_loss(x, y)
    onehot = torch.nn.functional.one_hot(y, 3).movedim(-1, 1).float()
    probs = x.softmax(1)
    assert torch.isfinite(value)
    assert torch.isfinite(L.dice_loss(probs, onehot, input="probs"))


@pytest.mark.parametrize("case", ["nan pred", "label out of range", "probs out of range", "probs sum",
                                  "soft target range", "float labels"])
def test_bad_input_asserts_asynchronously(asynchronous, case):
    x, y = _data()
    kwargs = {}
    if case == "nan pred":
        x[0, 0, 0, 0] = float("nan")
    elif case == "label out of range":
        y[0, 0, 0] = 3
    elif case == "probs out of range":
        x, kwargs = x.softmax(1) * 1.5, {"input": "probs"}
    elif case == "probs sum":
        x, kwargs = x.softmax(1) * 0.5, {"input": "probs"}
    elif case == "soft target range":
        y = torch.nn.functional.one_hot(y, 3).movedim(-1, 1).float() * 2.0
    elif case == "float labels":
        y = y.float() + 0.5
    with pytest.raises(RuntimeError):
        L.unified_focal_loss(x, y, **kwargs)


def test_eager_cpu_raises_value_error():
    x, y = _data()
    y[0, 0, 0] = 7
    with pytest.raises(ValueError, match="target labels must lie in"):
        L.unified_focal_loss(x, y)
