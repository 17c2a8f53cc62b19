"""The fused CPU kernel (float32 logits with integer labels) against the plain autograd path in float64."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch

from tests.losses.test_fused_path import CASES, PARAMS, _autograd
from unifocal.losses import _fused, _kernel, available_losses, get_loss


def _graph_has(v, name):
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


@pytest.fixture
def fresh_kernel(tmp_path, monkeypatch):
    """A kernel state of its own: an empty cache directory, loaded again on first use, reset afterwards."""
    monkeypatch.setenv("UNIFOCAL_CACHE_DIR", str(tmp_path))
    _kernel.reset()
    yield tmp_path
    monkeypatch.undo()
    _kernel.reset()


def test_the_kernel_is_built_where_a_compiler_is():
    status = _kernel.kernel_status()
    compiler = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
    if compiler is None and os.environ.get("CI") != "true":
        pytest.skip("no C compiler on this machine: the losses take the PyTorch path")
    assert status.available, status.reason
    assert status.path and os.path.exists(status.path)


def _inputs(shape, common, seed, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * scale
    k = max(shape[1], 2)
    y = torch.randint(0, k, (shape[0], *shape[2:]), generator=gen)
    if common.get("multilabel"):
        y = torch.rand(shape, generator=gen) < 0.4
    if "ignore_index" in common:
        y[torch.rand(y.shape, generator=gen) < 0.2] = common["ignore_index"]
    return x, y, k


def _compare(loss, x, y, rtol=2e-5):
    """The kernel (float32) against the autograd path on the same numbers in float64."""
    x32 = x.detach().float().clone().requires_grad_(True)
    v = loss(x32, y)
    assert _graph_has(v, "_KernelLoss"), "float32 logits with integer labels on the CPU must take the kernel"
    v.backward()
    x64 = x.detach().double().requires_grad_(True)
    ref = _autograd(loss, x64, y)
    ref.backward()
    assert torch.allclose(v.double(), ref, rtol=rtol, atol=1e-6), (float(v), float(ref))
    scale = x64.grad.abs().max()
    err = (x32.grad.double() - x64.grad).abs().max()
    assert err <= rtol * 10 * scale + 1e-9, f"gradient off by {float(err):.3g} (largest {float(scale):.3g})"


@pytest.mark.parametrize("algebra", ["python numbers", "tensors"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", available_losses())
def test_kernel_equals_autograd(name, case, algebra, monkeypatch):
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    if algebra == "tensors":  # the per-row algebra on tensors, as for many rows
        monkeypatch.setattr(_fused, "_FLOAT_CLOSED_FORM_MAX", 0)
    shape, common = CASES[case]
    x, y, k = _inputs(shape, common, len(name) * 31 + len(case))
    params = {key: (v[:k] if isinstance(v, list) else v) for key, v in PARAMS.get(name, {}).items()
              if not (common.get("multilabel") and isinstance(v, list))}
    _compare(get_loss(name, **params, **common), x, y)


@pytest.mark.parametrize("name", ["unified_focal", "symmetric_unified_focal", "focal", "dice", "tversky"])
def test_kernel_with_extreme_logits(name):
    """Logits of ±1e4 (probabilities far below the smallest float): finite and exact (log p_t = x_t - lse)."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    x, y, _ = _inputs((2, 3, 5, 7), {}, 3, scale=1e4)
    loss = get_loss(name)
    x32 = x.detach().float().clone().requires_grad_(True)
    v = loss(x32, y)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(x32.grad).all()
    _compare(loss, x, y, rtol=1e-4)


def test_chunks_and_threads_do_not_change_the_result():
    """Inputs of several chunks, on one and on two threads: the same numbers bit for bit, and right."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    shape = (2, 3, 2 * _kernel.CHUNK // 100 + 7, 100)  # three chunks per row, the last one short
    x, y, _ = _inputs(shape, {"ignore_index": 255}, 5)
    loss = get_loss("unified_focal", ignore_index=255)
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            x32 = x.detach().float().clone().requires_grad_(True)
            v = loss(x32, y)
            v.backward()
            out.append((v.detach(), x32.grad))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    _compare(loss, x, y)


def test_kernel_off_takes_the_pytorch_path(fresh_kernel, monkeypatch):
    monkeypatch.setenv("UNIFOCAL_KERNEL", "0")
    status = _kernel.kernel_status()
    assert not status.available and "UNIFOCAL_KERNEL" in status.reason
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    v = get_loss("unified_focal")(x, torch.randint(0, 3, (2, 6, 6)))
    assert not _graph_has(v, "_KernelLoss") and _graph_has(v, "_FusedLoss")
    assert not list(fresh_kernel.iterdir()), "nothing is built when the kernel is off"


def test_a_failing_compiler_warns_once_and_falls_back(fresh_kernel, monkeypatch):
    monkeypatch.setenv("CC", shutil.which("false") or "false")
    with pytest.warns(RuntimeWarning, match="CPU loss kernel is not used"):
        assert _kernel.library() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _kernel.library() is None  # decided once per process: no second warning
    x = torch.randn(2, 2, 6, 6, requires_grad=True)
    v = get_loss("focal")(x, torch.randint(0, 2, (2, 6, 6)))
    v.backward()
    assert _graph_has(v, "_FusedBinaryLoss") and torch.isfinite(x.grad).all()


def test_the_build_is_cached_under_a_hashed_name(fresh_kernel):
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    status = _kernel.kernel_status()
    assert status.available, status.reason
    built = sorted(p.name for p in fresh_kernel.iterdir())
    assert len(built) == 1 and built[0].startswith("unifocal_kernel_") and built[0].endswith(".so")
    mtime = (fresh_kernel / built[0]).stat().st_mtime_ns
    _kernel.reset()
    assert _kernel.kernel_status().path == status.path  # loaded again, not rebuilt
    assert (fresh_kernel / built[0]).stat().st_mtime_ns == mtime
    assert _kernel._self_check(_kernel.library()) is None


def test_kernel_under_inference_mode_and_no_grad():
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    x, y, _ = _inputs((2, 3, 8, 8), {}, 9)
    loss = get_loss("unified_focal")
    want = _autograd(loss, x.double(), y)
    with torch.inference_mode():
        a = loss(x, y)
    with torch.no_grad():
        b = loss(x, y)
    assert torch.allclose(a.double(), want, rtol=1e-5) and torch.allclose(b.double(), want, rtol=1e-5)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("region", ["custom", "tversky", "both"])
def test_kernel_with_custom_region_functions(k, batch, region):
    """A region function that is not a Tversky term: autograd on the statistics the kernel summed."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    from tests.losses.test_fused_custom_region import _custom
    from unifocal.losses._core import evaluate, prepare
    from unifocal.spec import Tversky, check_common, distribution_terms, region_terms

    gen = torch.Generator().manual_seed(k)
    x = torch.randn(3, k, 7, 5, generator=gen)
    y = torch.randint(0, k, (3, 7, 5), generator=gen)
    fns = {"custom": [_custom], "tversky": [Tversky(0.3, 0.7, (1.0,) + (0.75,) * (k - 1), 1e-6)]}
    fns["both"] = fns["custom"] + fns["tversky"]
    terms = distribution_terms((0.4,) * k, (0.5,) + (0.0,) * (k - 1), coef=0.5)
    for f in fns[region]:
        terms = terms + region_terms(f, scale=0.7)
    outs, grads = [], []
    for fn, dtype in ((_fused.fused_loss, torch.float32), (evaluate, torch.float64)):
        prep = prepare(x.to(dtype), y, check_common({"batch": batch}))
        xi = prep.x.clone().requires_grad_(True)
        prep.x, prep._logp = xi, None
        out = fn(prep, terms)
        if dtype == torch.float32:
            assert _graph_has(out, "_KernelLoss")
        (out * torch.arange(1.0, 4.0, dtype=out.dtype)).sum().backward()
        outs.append(out.detach().double())
        grads.append(xi.grad.double())
    torch.testing.assert_close(outs[0], outs[1], rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("name", ["unified_focal", "focal", "symmetric_focal"])
def test_kernel_where_the_target_probability_is_near_one(name, k):
    """1 - p_t from 1e-7 to 1e-1, where log p_t ≈ -(1 - p_t) must not lose its relative precision: the
    loss and the gradient of every position agree with float64 to float32 precision."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    n = 400
    y = torch.zeros(1, n, dtype=torch.long)
    y[0, ::3] = 1
    margin = torch.linspace(2.0, 16.0, n)  # x_t - x_other: 1 - p_t ≈ (k - 1) e^{-margin}
    x = torch.zeros(1, k, n)
    x.scatter_(1, y.unsqueeze(1), margin.view(1, 1, n))
    loss = get_loss(name, reduction="sum")
    x32 = x.clone().requires_grad_(True)
    v = loss(x32, y)
    v.backward()
    x64 = x.double().requires_grad_(True)
    ref = _autograd(loss, x64, y)
    ref.backward()
    assert torch.allclose(v.double(), ref, rtol=1e-5)
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-12)


def test_the_thread_limit_is_read_and_checked(monkeypatch):
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    shape = (2, 3, 2 * _kernel.CHUNK // 100 + 7, 100)
    x, y, _ = _inputs(shape, {}, 6)
    loss = get_loss("unified_focal")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        values = []
        for limit in ("1", "2"):
            monkeypatch.setenv("UNIFOCAL_KERNEL_THREADS", limit)
            values.append(loss(x, y))
        assert torch.equal(values[0], values[1])
        monkeypatch.setenv("UNIFOCAL_KERNEL_THREADS", "zero")
        with pytest.raises(ValueError, match="UNIFOCAL_KERNEL_THREADS must be a positive integer, got 'zero'"):
            loss(x, y)
    finally:
        torch.set_num_threads(before)
