"""The fused CPU kernel (float32 logits with integer labels) against the plain autograd path in float64."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.losses.test_fused_path import CASES, PARAMS, _autograd
from tests.losses.test_fused_path import graph_has as _graph_has
from tests.losses.test_fused_path import make_inputs as _inputs
from unifocal.losses import _fused, _kernel, available_losses, get_loss


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
    built = sorted(p.name for p in fresh_kernel.iterdir() if p.suffix == ".so")
    assert len(built) == 1 and built[0].startswith("unifocal_kernel_")
    assert {p.suffix for p in fresh_kernel.iterdir()} == {".so", ".ref"}, "no temporary file is left behind"
    mtime = (fresh_kernel / built[0]).stat().st_mtime_ns
    _kernel.reset()
    assert _kernel.kernel_status().path == status.path  # loaded again, not rebuilt
    assert (fresh_kernel / built[0]).stat().st_mtime_ns == mtime
    assert _kernel._self_check(_kernel.library()) is None


def test_without_a_compiler_a_library_built_for_this_cpu_is_reused(fresh_kernel, monkeypatch):
    """A machine without a compiler (a compute node, a slim image) that shares the cache of one with a
    compiler loads the library built there for this source and CPU, checked as a fresh build is; a
    library built for another CPU or a note naming a file outside the cache is not loaded."""
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    built = _kernel.kernel_status()
    assert built.available, built.reason
    monkeypatch.setenv("CC", "unifocal-no-such-compiler")
    _kernel.reset()
    status = _kernel.kernel_status()
    assert status.available and status.path == built.path, status
    assert "no C compiler found here" in status.reason
    x, y, _ = _inputs((2, 3, 8, 8), {}, 4)
    _compare(get_loss("unified_focal"), x, y)

    real = _kernel._cpu_signature()
    monkeypatch.setattr(_kernel, "_cpu_signature", lambda: (real or "") + "\nflags: another CPU")
    _kernel.reset()
    status = _kernel.kernel_status()
    assert not status.available and status.reason == "no C compiler found ($CC, cc, gcc, clang)"
    monkeypatch.undo()
    monkeypatch.setenv("UNIFOCAL_CACHE_DIR", str(fresh_kernel))
    monkeypatch.setenv("CC", "unifocal-no-such-compiler")

    (ref,) = fresh_kernel.glob("*.ref")
    good = ref.read_text()
    outside = fresh_kernel / "sub"
    outside.mkdir()
    shutil.copy(built.path, outside / "unifocal_kernel_x.so")
    shutil.copy(built.path, fresh_kernel.parent / "unifocal_kernel_x.so")
    (fresh_kernel / "unifocal_kernel_link.so").symlink_to(outside / "unifocal_kernel_x.so")
    shutil.copy(built.path, fresh_kernel / "unifocal_kernel_open.so")
    os.chmod(fresh_kernel / "unifocal_kernel_open.so", 0o666)  # anyone could have replaced it
    for text in (b"sub/unifocal_kernel_x.so", b"../unifocal_kernel_x.so", b"libc.so.6", b"unifocal_kernel_gone.so",
                 b"unifocal_kernel_link.so", b"unifocal_kernel_open.so", b"\xff\xfe", b""):
        ref.write_bytes(text + b"\n")
        _kernel.reset()
        status = _kernel.kernel_status()  # refused, without an exception
        assert not status.available and status.reason == "no C compiler found ($CC, cc, gcc, clang)", text

    # a library that fails its check: said, and warned about once
    ref.write_text(good)
    monkeypatch.setattr(_kernel, "_self_check", lambda lib: "planted mismatch")
    _kernel.reset()
    with pytest.warns(RuntimeWarning, match="planted mismatch"):
        status = _kernel.kernel_status()
    assert not status.available and "no C compiler" in status.reason and "planted mismatch" in status.reason


def test_without_a_compiler_a_read_only_cache_is_searched(fresh_kernel, monkeypatch):
    """A cache prepared on a build machine and mounted read-only: the library it holds is loaded (the
    writable directory in use is elsewhere)."""
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    built = _kernel.kernel_status()
    assert built.available, built.reason
    monkeypatch.setenv("CC", "unifocal-no-such-compiler")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == fresh_kernel and mode == os.W_OK
                        else real_access(p, mode, **kw))
    assert _kernel._cache_dir() != fresh_kernel, "the read-only directory is not the one written to"
    _kernel.reset()
    status = _kernel.kernel_status()
    assert status.available and status.path == built.path, status


def test_under_valgrind_the_build_is_portable(fresh_kernel, monkeypatch):
    """valgrind does not decode AVX-512 (a -march=native build dies of SIGILL there): under valgrind,
    recognised by its preloaded core library, the kernel is built without -march=native."""
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("LD_PRELOAD", "/usr/libexec/valgrind/vgpreload_core-amd64-linux.so")
    assert _kernel._under_valgrind()
    monkeypatch.setenv("LD_PRELOAD", "libasan.so.8")
    assert not _kernel._under_valgrind()
    monkeypatch.delenv("LD_PRELOAD")
    assert not _kernel._under_valgrind()
    # (the build itself not with that LD_PRELOAD: the compiler would inherit it)
    monkeypatch.setattr(_kernel, "_under_valgrind", lambda: True)
    status = _kernel.kernel_status()
    assert status.available and "-march=native" not in status.reason, status
    monkeypatch.undo()
    monkeypatch.setenv("UNIFOCAL_CACHE_DIR", str(fresh_kernel))
    _kernel.reset()
    assert _kernel.kernel_status().available


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


# --- inputs and states found in review -----------------------------------------------------------


@pytest.mark.parametrize("name", ["focal", "unified_focal"])
@pytest.mark.parametrize("k", [2, 3])
def test_kernel_with_logits_near_the_float_limit(name, k):
    """Logits of ±2e38 at the target and elsewhere (their difference overflows to infinity in float32):
    finite, the value of the float64 path."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    x = torch.zeros(1, k, 4)
    x[0, 0], x[0, 1] = 2e38, -2e38
    y = torch.zeros(1, 4, dtype=torch.long)
    loss = get_loss(name)
    x32 = x.clone().requires_grad_(True)
    v = loss(x32, y)
    v.backward()
    ref = _autograd(loss, x.double(), y)
    assert torch.isfinite(ref) and torch.allclose(v.double(), ref, rtol=1e-5)
    assert torch.isfinite(x32.grad).all()


@pytest.mark.parametrize("shape, common", [
    ((2, 6, 30, 20), {}),                                    # six classes, 600 positions: three blocks
    ((3, 5, 17, 31), {"ignore_index": 255, "batch": True}),  # five classes, 527 positions
    ((2, 3, 19, 29), {"multilabel": True, "reduction": "sum"}),
    ((2, 3, 19, 29), {"multilabel": True, "batch": True, "reduction": "mean"}),
    ((3, 2, 300, 250), {"reduction": "none"}),               # two classes over three chunks per row
])
@pytest.mark.parametrize("name", ["unified_focal", "combo", "focal", "tversky"])
def test_kernel_more_classes_blocks_and_reductions(name, shape, common):
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    x, y, _ = _inputs(shape, common, sum(shape))
    if name == "unified_focal" and not common.get("multilabel"):
        common = {**common, "delta": [0.6] * max(shape[1], 2)}
    loss = get_loss(name, **common)
    x32 = x.detach().clone().requires_grad_(True)
    v = loss(x32, y)
    assert _graph_has(v, "_KernelLoss")
    (v * torch.arange(1.0, v.numel() + 1).view_as(v)).sum().backward()
    x64 = x.detach().double().requires_grad_(True)
    ref = _autograd(loss, x64, y)
    (ref * torch.arange(1.0, ref.numel() + 1, dtype=torch.float64).view_as(ref)).sum().backward()
    torch.testing.assert_close(v.double(), ref, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-4 * float(x64.grad.abs().max()))


#: Position counts at the kernel's block edges (256 positions) and a few between.
_EDGES = [1, 2, 7, 8, 15, 16, 17, 255, 256, 257, 511, 512, 513, 700]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(b=st.integers(1, 3), k=st.integers(2, 5), n=st.sampled_from(_EDGES), seed=st.integers(0, 2**16),
       name=st.sampled_from(["unified_focal", "focal", "dice", "combo"]), ignore=st.booleans(),
       batch=st.booleans())
def test_kernel_at_block_edges(b, k, n, seed, name, ignore, batch):
    """Any batch, class count and position count around the block edges, with and without ignored
    positions: the kernel against the autograd path in float64 (under ``scripts/check_kernel.sh`` also
    against the sanitizers)."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    common = {"ignore_index": 255, "batch": batch} if ignore else {"batch": batch}
    x, y, _ = _inputs((b, k, n), common, seed)
    loss = get_loss(name, **common)
    x32 = x.detach().clone().requires_grad_(True)
    v = loss(x32, y)
    assert _graph_has(v, "_KernelLoss")
    v.backward()
    x64 = x.detach().double().requires_grad_(True)
    ref = _autograd(loss, x64, y)
    ref.backward()
    if not torch.isfinite(ref):  # every position ignored: NaN on both paths
        assert not torch.isfinite(v)
        return
    torch.testing.assert_close(v.double(), ref, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-4 * float(x64.grad.abs().max()))


def test_first_load_under_no_grad_inference_mode_and_a_float64_default(fresh_kernel):
    """The check made before first use works in whatever mode the first loss call comes."""
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        with torch.no_grad(), torch.inference_mode():
            status = _kernel.kernel_status()
    finally:
        torch.set_default_dtype(before)
    assert status.available, status.reason


def test_a_bad_thread_limit_raises_at_the_first_call(fresh_kernel, monkeypatch):
    monkeypatch.setenv("UNIFOCAL_KERNEL_THREADS", "-3")
    with pytest.raises(ValueError, match="UNIFOCAL_KERNEL_THREADS must be a positive integer, got '-3'"):
        get_loss("focal")(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def _passes_in_a_fresh_interpreter(code, timeout):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_buffers_stay_on_the_cpu_under_another_default_device():
    """``torch.set_default_device`` must not move the buffers the kernel writes into (in a subprocess:
    a buffer elsewhere would be written through a wrong pointer)."""
    if not _kernel.kernel_status().available:
        pytest.skip(_kernel.kernel_status().reason)
    code = ("import torch\nfrom unifocal.losses import get_loss, kernel_status\n"
            "assert kernel_status().available\n"
            "x = torch.randn(2, 3, 8, 8, device='cpu', requires_grad=True)\n"
            "y = torch.randint(0, 3, (2, 8, 8), device='cpu')\n"
            "want = get_loss('unified_focal')(x, y)\n"
            "torch.set_default_device('meta')\n"
            "got = get_loss('unified_focal')(x, y)\n"
            "got.backward()\n"
            "assert got.device.type == 'cpu' and torch.equal(got, want), (got, want)\n"
            "assert torch.isfinite(x.grad).all()\n")
    _passes_in_a_fresh_interpreter(code, timeout=300)


def test_a_fork_while_the_kernel_is_being_loaded_does_not_deadlock_the_child():
    """In a fresh interpreter (the test process may hold other libraries' threads): the load lock held, as
    by a thread building the kernel, then a fork; the child must get a lock of its own."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    code = ("import os\nfrom unifocal.losses import _kernel\n"
            "with _kernel._lock:\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        os._exit(0 if _kernel._lock.acquire(timeout=10) else 3)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status\n")
    _passes_in_a_fresh_interpreter(code, timeout=120)


def test_no_usable_cache_directory_falls_back_with_a_warning(fresh_kernel, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("UNIFOCAL_CACHE_DIR", str(blocker / "cache"))  # under a file: cannot be made
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(blocker))

    def no_temp(*args, **kwargs):
        raise OSError("no temporary directory")

    monkeypatch.setattr(tempfile, "mkdtemp", no_temp)
    with pytest.warns(RuntimeWarning, match="no writable cache directory"):
        status = _kernel.kernel_status()
    assert not status.available
    v = get_loss("focal")(torch.randn(1, 2, 4, 4, requires_grad=True), torch.zeros(1, 4, 4, dtype=torch.long))
    assert torch.isfinite(v)


def test_a_shared_temporary_directory_of_someone_else_is_not_used(fresh_kernel, monkeypatch, tmp_path):
    if not hasattr(os, "getuid"):
        pytest.skip("no user ids")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("UNIFOCAL_CACHE_DIR", str(blocker / "cache"))
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(shared))
    planted = shared / f"unifocal-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # writable by everyone: someone could have put a library there
    d = _kernel._cache_dir()
    assert d != planted and d.is_dir() and not d.stat().st_mode & 0o077


def test_deferred_checks_run_when_the_kernel_does_not_take_the_input(monkeypatch):
    """prepare(defer_checks=True) and then no kernel: fused_loss runs the checks itself."""
    from unifocal.losses._base import describe
    from unifocal.losses._core import prepare
    from unifocal.spec import check_common

    loss = get_loss("focal")
    x = torch.randn(1, 2, 4, 4)
    x[0, 1, 2, 2] = float("nan")
    prep = prepare(x, torch.zeros(1, 4, 4, dtype=torch.long), check_common({}), defer_checks=True)
    assert prep.deferred is not None
    monkeypatch.setattr(_kernel, "library", lambda: None)
    params = {k: getattr(loss, k) for k in loss.parameter_names}
    with pytest.raises(ValueError, match="pred contains NaN or Inf values"):
        _fused.fused_loss(prep, describe(prep, type(loss).functional.terms, params))
