"""The fused closed-form path (logits + integer labels) against the plain autograd path, float64."""

from __future__ import annotations

import pytest
import torch

from unifocal.losses import available_losses, get_loss
from unifocal.losses._base import describe
from unifocal.losses._core import evaluate, prepare, reduce
from unifocal.spec import check_common


def _autograd(loss, x, y):
    """The same loss through the plain autograd path (the reference of the fused path)."""
    fn = type(loss).functional
    params = {k: getattr(loss, k) for k in loss.parameter_names}
    common = check_common({k: getattr(loss, k) for k in loss.common_names})
    prep = prepare(x, y, common)
    return reduce(prep.unfold(evaluate(prep, describe(prep, fn.terms, params))), common["reduction"])


CASES = {
    "binary": ((3, 2, 9, 7), {}),
    "sigmoid": ((2, 1, 11), {}),
    "3-class-3d": ((2, 3, 4, 5, 3), {}),
    "4-class-ignore-batch": ((2, 4, 8, 6), {"ignore_index": 255, "batch": True}),
    "binary-ignore": ((2, 2, 10, 10), {"ignore_index": -1}),
    "rare-2-background-1": ((2, 3, 6, 6), {"rare_classes": [2], "background": 1}),
    "exclude-background": ((2, 3, 6, 6), {"include_background": False}),
    "binary-exclude-background-batch": ((2, 2, 6, 6), {"include_background": False, "batch": True}),
    "multilabel": ((2, 3, 6, 6), {"multilabel": True}),
}
PARAMS = {"focal": {"alpha": [0.2, 0.5, 0.9, 0.4]}, "cross_entropy": {"weight": [0.3, 1.2, 2.0, 0.0]},
          "unified_focal": {"delta": [0.3, 0.8, 0.6, 0.7]}, "symmetric_unified_focal": {"gamma": 0.4},
          "combo": {"beta": 0.8}}


def make_inputs(shape, common, seed, scale=3.0, dtype=torch.float32):
    """Logits ``scale``·N(0, 1) of ``shape``, labels of ``max(C, 2)`` classes (multi-label masks with
    ``common["multilabel"]``; 20 % ``common["ignore_index"]`` where given), and the class count."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype) * scale
    k = max(shape[1], 2)
    y = torch.randint(0, k, (shape[0], *shape[2:]), generator=gen)
    if common.get("multilabel"):
        y = torch.rand(shape, generator=gen) < 0.4
    if "ignore_index" in common:
        y[torch.rand(y.shape, generator=gen) < 0.2] = common["ignore_index"]
    return x, y, k


def graph_has(v, name):
    """Whether a node whose type name contains ``name`` is in the autograd graph of ``v``."""
    seen, todo = set(), [v.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if name in type(node).__name__:
            return True
        todo.extend(n for n, _ in node.next_functions)
    return False


def _has_fused_node(v):
    return graph_has(v, "Fused")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", available_losses())
def test_fused_equals_autograd(name, case):
    shape, common = CASES[case]
    x, y, k = make_inputs(shape, common, len(name) * 31 + len(case), dtype=torch.float64)
    x.requires_grad_(True)
    params = {key: (v[:k] if isinstance(v, list) else v) for key, v in PARAMS.get(name, {}).items()
              if not (common.get("multilabel") and isinstance(v, list))}
    loss = get_loss(name, **params, **common)
    results = []
    for path in (loss, lambda a, b: _autograd(loss, a, b)):
        x.grad = None
        v = path(x, y)
        v.backward()
        results.append((v.detach().clone(), x.grad.clone()))
    (v1, g1), (v2, g2) = results
    assert _has_fused_node(loss(x, y)), "logits with integer labels must take the fused path"
    assert torch.allclose(v1, v2, rtol=1e-10, atol=1e-12)
    assert torch.allclose(g1, g2, rtol=1e-8, atol=1e-12)


def test_second_derivative_of_the_fused_path_fails_clearly():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (2, 4, 4))
    loss = get_loss("unified_focal")
    with pytest.raises(RuntimeError, match=r"first derivatives only.*one-hot target"):
        torch.autograd.grad(loss(x, y), x, create_graph=True)
    onehot = torch.nn.functional.one_hot(y, 3).movedim(-1, 1).double()
    (g,) = torch.autograd.grad(loss(x, onehot), x, create_graph=True)  # the autograd path: twice differentiable
    assert torch.autograd.gradcheck(lambda inp: torch.autograd.grad(loss(inp, onehot), inp, create_graph=True)[0],
                                    (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", ["binary", "3-class-3d", "4-class-ignore-batch", "binary-exclude-background-batch"])
@pytest.mark.parametrize("name", ["unified_focal", "dice", "focal", "combo"])
def test_backward_twice_and_weighted_rows_match_the_autograd_path(name, case):
    """The fused backward pass only reads what the forward pass saved: a second backward through the same
    graph (retain_graph=True) gives the same gradient again, and per-row weights of ``reduction="none"``
    reach each row (pooled rows with ``batch=True`` through their sum)."""
    shape, common = CASES[case]
    gen = torch.Generator().manual_seed(7)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    k = max(shape[1], 2)
    y = torch.randint(0, k, (shape[0], *shape[2:]), generator=gen)
    if "ignore_index" in common:
        y[torch.rand(y.shape, generator=gen) < 0.2] = common["ignore_index"]
    loss = get_loss(name, reduction="none", **common)
    w = torch.rand(shape[0], generator=gen, dtype=torch.float64) + 0.5
    v = loss(x, y)
    assert _has_fused_node(v)
    (g1,) = torch.autograd.grad((v * w).sum(), x, retain_graph=True)
    (g2,) = torch.autograd.grad((v * w).sum(), x)
    assert torch.equal(g1, g2)
    ref = _autograd(loss, x, y)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    assert torch.allclose(g1, g_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["unified_focal", "focal", "cross_entropy", "combo"])
def test_target_probabilities_that_underflow_keep_an_exact_log(name, dtype):
    """Three classes whose target logit lies far below the others at some positions: ``p_t`` underflows
    (below the smallest normal number), and ``log p_t`` must still be ``x_t - logsumexp(x)``, as on the
    log-softmax of the autograd path, not a clamped or infinite value."""
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, 6, 5, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (2, 6, 5), generator=gen)
    gap = 150.0 if dtype == torch.float32 else 800.0
    far = torch.rand(2, 6, 5, generator=gen) < 0.2
    x = torch.where(far.unsqueeze(1) & (torch.arange(3).view(1, 3, 1, 1) == y.unsqueeze(1)), x - gap, x)
    x = x.to(dtype).requires_grad_(True)
    loss = get_loss(name)
    v = loss(x, y)
    assert torch.isfinite(v)
    ref = _autograd(loss, x, y)
    assert torch.allclose(v, ref, rtol=1e-6 if dtype == torch.float32 else 1e-12)
    (g,) = torch.autograd.grad(v, x)
    (g_ref,) = torch.autograd.grad(ref, x)
    # (float32: the two formulations round differently, by up to a few 1e-5 relative)
    assert torch.allclose(g, g_ref, rtol=1e-4 if dtype == torch.float32 else 1e-8,
                          atol=1e-7 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("case", ["3-class-3d", "rare-2-background-1", "exclude-background"])
@pytest.mark.parametrize("name", ["unified_focal", "focal", "cross_entropy", "symmetric_unified_focal"])
def test_multiclass_log_softmax_branch_equals_autograd(name, case, monkeypatch):
    """The multi-class path's log-softmax branch (other devices, ignored positions) without ignored
    positions, on the CPU: the same values and gradients as the plain autograd path."""
    import unifocal.losses._fused as fused

    monkeypatch.setattr(fused, "_log_pt_from_p", lambda x, valid: False)
    shape, common = CASES[case]
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    loss = get_loss(name, **common)
    v = loss(x, y)
    (g,) = torch.autograd.grad(v, x)
    ref = _autograd(loss, x, y)
    (g_ref,) = torch.autograd.grad(ref, x)
    assert torch.allclose(v, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(g, g_ref, rtol=1e-8, atol=1e-12)
