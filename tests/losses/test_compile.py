"""torch.compile: no graph break on the common path (logits with integer labels)."""

from __future__ import annotations

import pytest
import torch

import unifocal.losses as L


@pytest.mark.parametrize("make,shape", [
    (lambda: L.UnifiedFocalLoss(), (2, 3, 8, 8)),
    (lambda: L.DeepSupervisionLoss(L.DiceLoss(ignore_index=255)), (2, 1, 8, 8)),
    (lambda: L.unified_focal_loss, (2, 2, 8, 8)),  # the functional API: the same checks, traced
])
def test_no_graph_break_logits_with_labels(make, shape):
    torch._dynamo.reset()
    x = torch.randn(shape, requires_grad=True)
    y = torch.randint(0, max(shape[1], 2), (shape[0], *shape[2:]))
    explanation = torch._dynamo.explain(make())(x, y)
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
    assert explanation.graph_count == 1


@pytest.mark.slow
def test_compiled_loss_matches_eager_and_checks_in_graph():
    torch._dynamo.reset()
    loss = L.UnifiedFocalLoss()
    compiled = torch.compile(loss)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    y = torch.randint(0, 3, (2, 8, 8))
    v = compiled(x, y)
    v.backward()
    g = x.grad.clone()
    x.grad = None
    loss(x, y).backward()
    assert torch.allclose(v, loss(x, y), rtol=1e-5) and torch.allclose(g, x.grad, rtol=1e-4, atol=1e-7)
    with pytest.raises(RuntimeError, match=r"target labels must lie in \[0, 3\)"):
        compiled(x, torch.full_like(y, 5))
