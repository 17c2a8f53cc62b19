"""An empty batch (B = 0) behaves as in torch and MONAI: no error, the reduction of nothing.

``F.cross_entropy`` and MONAI's ``DiceLoss`` / ``DiceCELoss`` / ``FocalLoss`` return NaN for
``reduction="mean"`` (the mean of no values), 0 for ``"sum"`` and an empty tensor for ``"none"``,
with a gradient of the input's (empty) shape; so does every unifocal loss (``docs/losses.md``).
"""

from __future__ import annotations

import math

import pytest
import torch

import unifocal.losses as L

LOSSES = [getattr(L, f"{n}_loss") for n in L.available_losses()]


def _cases():
    lab = torch.zeros((0, 8, 8), dtype=torch.long)
    return [
        ("labels, 2 classes", (0, 2, 8, 8), lab, {}),
        ("labels, 3 classes, ignore_index", (0, 3, 8, 8), lab, {"ignore_index": 255}),
        ("labels, 3D, batch=True", (0, 3, 4, 8, 8), torch.zeros((0, 4, 8, 8), dtype=torch.long), {"batch": True}),
        ("one-hot", (0, 3, 8, 8), torch.zeros((0, 3, 8, 8)), {}),
        ("sigmoid channel", (0, 1, 8, 8), torch.zeros((0, 1, 8, 8)), {}),
        ("multilabel", (0, 3, 8, 8), torch.zeros((0, 3, 8, 8)), {"multilabel": True}),
        ("probs", (0, 3, 8, 8), lab, {"input": "probs"}),
    ]


@pytest.mark.parametrize("fn", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_empty_batch_reduces_like_torch(fn, case):
    _, shape, target, kwargs = case
    for reduction in ("mean", "sum", "none"):
        x = torch.randn(shape, requires_grad=True)
        loss = fn(x, target, reduction=reduction, **kwargs)
        if reduction == "none":
            assert loss.shape == (0,)
        else:
            assert loss.shape == ()
            if reduction == "mean":
                assert math.isnan(loss.item())
            else:
                assert loss.item() == 0.0
        loss.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


def test_torch_cross_entropy_is_the_model():
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    y = torch.zeros((0, 8, 8), dtype=torch.long)
    assert math.isnan(torch.nn.functional.cross_entropy(x, y).item())
    assert torch.nn.functional.cross_entropy(x, y, reduction="sum").item() == 0.0
    assert math.isnan(L.unified_focal_loss(x, y).item())


@pytest.mark.parametrize("fn", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(2, 2, 0, 4), (2, 3, 0, 4), (2, 1, 0)], ids=str)
def test_no_positions_gives_what_the_autograd_path_gives(fn, shape):
    """Images with no positions: the fused path computes what the plain autograd path does (a mean over
    no positions is NaN, as in ``F.cross_entropy``; a smoothed region ratio stays finite), no error."""
    from unifocal.losses._base import describe
    from unifocal.losses._core import evaluate, prepare, reduce
    from unifocal.spec import check_common

    target = torch.zeros((shape[0], *shape[2:]), dtype=torch.long)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    fused = fn(x, target, reduction="none")
    common = check_common({})
    prep = prepare(x, target, common)
    plain = reduce(evaluate(prep, describe(prep, fn.terms, dict(fn.spec.defaults))), "none")
    torch.testing.assert_close(fused, plain, equal_nan=True)
    fused.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
