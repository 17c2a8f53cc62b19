"""The fused CPU kernel (``_kernel.c``): built on first use with the system C compiler, loaded with ctypes.

The loss family on logits with integer labels costs, in PyTorch operations, some forty passes over
the positions and about as many dispatches of ~2 µs each; the kernel does the forward pass in one
pass and the backward pass in another, vectorised (``docs/losses.md``, "The CPU kernel";
``docs/benchmarks.md``). It serves float32 logits on the CPU, which is where PyTorch has no fuser
for eager code; CUDA, float64 and ``torch.compile`` keep the PyTorch formulation.

Building: the first process that needs it compiles ``_kernel.c`` (about half a second) with ``$CC``
(else ``cc``, ``gcc`` or ``clang``) and ``-O3 -march=native``, falling back to the same flags without
``-march=native`` (without it from the start under valgrind, which does not decode AVX-512), into
``$UNIFOCAL_CACHE_DIR`` (else ``$XDG_CACHE_HOME/unifocal``, else ``~/.cache/unifocal``; a temporary directory if that is not writable), under a name that hashes the
source, the compiler, the flags and the CPU, written atomically (so concurrent processes and machines
sharing a home directory are safe). The library is then checked against the PyTorch formulation on a
small input before it is used. A process without a compiler loads a library that one with a compiler
built into the same cache from this source with these flags for this CPU (a note ``*.ref`` names it).
No compiler and no such library, a failed build or a failed check: the losses keep the
PyTorch path (:func:`kernel_status` says why; a failed build or check warns once).
``UNIFOCAL_KERNEL=0`` turns the kernel off.

Threads: inputs of 2^18 logits and more are cut into chunks of :data:`CHUNK` positions of one row,
which run on ``torch.get_num_threads()`` threads (at most ``$UNIFOCAL_KERNEL_THREADS``; the call
releases the GIL); their sums are added in a fixed order, so results do not depend on the number of
threads.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("_kernel.c")
_NO_COMPILER = "no C compiler found ($CC, cc, gcc, clang)"
#: Flags of every build; ``-march=native`` is tried first and dropped if the compiler refuses it.
FLAGS = ("-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
NATIVE = ("-march=native",)
#: Positions per chunk: the unit of work of one thread and of one partial sum.
CHUNK = 32768
#: Up to this many rows of one chunk, :func:`forward` returns its sums as Python numbers.
_LIST_ROWS = 16
#: Inputs of fewer logits than this run on the calling thread alone (a thread hand-off has a fixed cost).
_MIN_PARALLEL = 1 << 18


@dataclass(frozen=True)
class KernelStatus:
    """Whether the CPU kernel is in use, the shared library's path, and why not if it is not."""

    available: bool
    path: str | None
    reason: str


_lock = threading.Lock()
_pool_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_status: KernelStatus | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def kernel_status() -> KernelStatus:
    """Whether the losses use the fused CPU kernel (float32 logits with integer labels on the CPU), and why not.

    Builds and loads the kernel if that has not been tried yet in this process (``docs/losses.md``, "The
    CPU kernel").

    Example:
        >>> from unifocal.losses import kernel_status
        >>> status = kernel_status()
        >>> isinstance(status.available, bool) and isinstance(status.reason, str)
        True
    """
    library()
    return _status if _status is not None else KernelStatus(False, None, "not loaded")


def library() -> ctypes.CDLL | None:
    """The loaded kernel, or ``None`` when the losses must take the PyTorch path."""
    if _status is None:
        with _lock:
            if _status is None:
                _load()
    return _lib


def reset() -> None:
    """Forget the loaded kernel (tests: the next :func:`library` call builds or loads it again)."""
    global _lib, _status
    with _lock:
        _lib, _status = None, None


def _set(lib: ctypes.CDLL | None, path: str | None, reason: str) -> None:
    global _lib, _status
    _lib, _status = lib, KernelStatus(lib is not None, path, reason)


def _load() -> None:
    if os.environ.get("UNIFOCAL_KERNEL", "1").strip().lower() in ("0", "off", "false", "no"):
        _set(None, None, "turned off by UNIFOCAL_KERNEL")
        return
    _thread_limit()  # a bad $UNIFOCAL_KERNEL_THREADS raises here, at the first call
    compiler = _compiler()
    source = SOURCE.read_bytes()
    errors = []
    try:
        cache = _cache_dir()
    except OSError as exc:
        cache = None
        errors.append(f"no writable cache directory: {exc}")
    # -march=native only where the cache key can name the CPU it was built for, and not under valgrind,
    # which does not decode every instruction of recent CPUs (AVX-512: the process would die of SIGILL)
    native = _cpu_signature() is not None and not _under_valgrind()
    variants = (FLAGS + NATIVE, FLAGS) if native else (FLAGS,)
    if compiler is None:
        # the configured directory is searched even where it is only readable (a cache prepared on a
        # build machine, mounted read-only), then the writable one in use
        dirs = [d for d in dict.fromkeys((_configured_cache_dir(), cache)) if d is not None]
        _load_without_compiler(dirs, source, variants)
        return
    for flags in variants if cache is not None else ():
        path = cache / f"unifocal_kernel_{_key(source, compiler, flags)}.so"
        how = "loaded from the cache"
        if not path.exists():
            t0 = time.perf_counter()
            err = _build(compiler, flags, path)
            if err:
                errors.append(err)
                continue
            how = f"built in {time.perf_counter() - t0:.2f} s"
        lib, err = _load_checked(path)
        if lib is None:
            errors.append(err)
            continue
        _set(lib, str(path), f"{how}; compiled with {compiler} {' '.join(flags)}")
        _write_ref(cache / _ref_name(source, flags), path.name)
        return
    _give_up("; ".join(errors))


def _give_up(reason: str, stacklevel: int = 5) -> None:
    """No kernel in this process, because of ``reason`` (a failed build or check): said once, as a warning
    (``stacklevel`` counted from here: by default the caller of :func:`library`'s caller, via ``_load``)."""
    _set(None, None, reason)
    warnings.warn(f"unifocal: the CPU loss kernel is not used ({reason}); the losses take the slower PyTorch "
                  "path (set UNIFOCAL_KERNEL=0 to silence this)", RuntimeWarning, stacklevel=stacklevel)


def _load_checked(path: Path) -> tuple[ctypes.CDLL | None, str]:
    """The library at ``path``, loaded and checked against the PyTorch formulation; or ``None`` and why."""
    try:
        lib = _declare(ctypes.CDLL(str(path)))
    except OSError as exc:
        return None, f"loading {path}: {exc}"
    with torch.device("cpu"), torch.inference_mode(False), torch.enable_grad():
        mismatch = _self_check(lib)
    if mismatch:
        return None, f"{path} disagrees with the PyTorch formulation: {mismatch}"
    return lib, ""


def _ref_name(source: bytes, flags: tuple[str, ...]) -> str:
    """The name of the note that records which cached library was built from ``source`` with ``flags``
    for this CPU, whatever the compiler: what a process without a compiler looks for."""
    return f"unifocal_kernel_{_digest(source, ' '.join(flags).encode())}.ref"


def _write_ref(ref: Path, target: str) -> None:
    """Record ``target`` in ``ref``, atomically; a cache that cannot take it only loses the shortcut."""
    try:
        if _read_ref(ref) == target:
            return
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(target + "\n")
        os.replace(tmp, ref)
    except OSError:
        pass


def _read_ref(ref: Path) -> str | None:
    """The library name a note records, or ``None`` (no note, unreadable, not a plain name)."""
    try:
        name = ref.read_bytes().decode("ascii").strip()
    except (OSError, ValueError):
        return None
    ok = name.startswith("unifocal_kernel_") and name.endswith(".so") and "/" not in name and "\\" not in name
    return name if ok else None


def _trusted(path: Path) -> bool:
    """Whether a library found through a note may be loaded (loading runs its code before any check): a
    regular file, not a symbolic link, of this user or root, that nobody else can write to, in a
    directory of this user or root that nobody else can write to (or only with the sticky bit, as
    ``/tmp``). A cache shared by several users is therefore not reused without a compiler."""
    try:
        st, dst = path.lstat(), path.parent.stat()
    except OSError:
        return False
    if not hasattr(os, "getuid"):
        return stat.S_ISREG(st.st_mode)
    owners = (os.getuid(), 0)
    file_ok = stat.S_ISREG(st.st_mode) and st.st_uid in owners and not st.st_mode & 0o022
    dir_ok = dst.st_uid in owners and (not dst.st_mode & 0o022 or bool(dst.st_mode & stat.S_ISVTX))
    return file_ok and dir_ok


def _load_without_compiler(dirs: list[Path], source: bytes, variants: tuple[tuple[str, ...], ...]) -> None:
    """No compiler here: load a library that a process with a compiler built from this source and these
    flags for this CPU into one of ``dirs`` (a shared home directory, a cache directory prepared on a
    build machine of the same CPU); checked before use like a fresh build. None there: the status says
    so; one that fails its check: the status says why, and it warns."""
    errors = []
    for cache in dirs:
        for flags in variants:
            name = _read_ref(cache / _ref_name(source, flags))
            if name is None or not _trusted(cache / name):
                continue
            lib, err = _load_checked(cache / name)
            if lib is not None:
                _set(lib, str(cache / name), f"loaded from the cache (built earlier with {' '.join(flags)} for "
                                             "this source and CPU; no C compiler found here)")
                return
            errors.append(err)
    if errors:
        _give_up("; ".join([_NO_COMPILER, *errors]), stacklevel=6)  # one frame deeper than from _load
    else:
        _set(None, None, _NO_COMPILER)


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _configured_cache_dir() -> Path | None:
    """``$UNIFOCAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/unifocal``, else ``~/.cache/unifocal`` (``None``
    without a home directory)."""
    base = os.environ.get("UNIFOCAL_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(xdg) if xdg else Path.home() / ".cache") / "unifocal"
    except RuntimeError:  # no home directory
        return None


def _cache_dir() -> Path:
    d = _configured_cache_dir()
    try:
        if d is None:
            raise OSError("no home directory")
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    # a shared temporary directory: a directory of this user's own that nobody else can write to (another
    # user could otherwise plant a library under the predictable name), else a fresh private one
    if hasattr(os, "getuid"):
        d = Path(tempfile.gettempdir()) / f"unifocal-{os.getuid()}"
        try:
            d.mkdir(mode=0o700, exist_ok=True)
            st = d.lstat()
            if d.is_dir() and not d.is_symlink() and st.st_uid == os.getuid() and not st.st_mode & 0o022:
                return d
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="unifocal-"))


def _under_valgrind() -> bool:
    """Whether this process runs under valgrind (its preloaded core library is in ``LD_PRELOAD``)."""
    return "vgpreload" in os.environ.get("LD_PRELOAD", "")


def _cpu_signature() -> str | None:
    """What ``-march=native`` depends on: the CPU model and its instruction-set flags (Linux); ``None``
    where they cannot be read, and the build then does without ``-march=native``."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(wanted))) or None


def _key(source: bytes, compiler: str, flags: tuple[str, ...]) -> str:
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    return _digest(source, compiler.encode(), version.encode(), " ".join(flags).encode())


def _digest(*parts: bytes) -> str:
    """A short hash of ``parts`` and of the CPU (model, instruction-set flags, architecture)."""
    h = hashlib.sha256()
    for part in (*parts, (_cpu_signature() or "").encode(), platform.machine().encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:20]


def _build(compiler: str, flags: tuple[str, ...], path: Path) -> str | None:
    """Compile into a temporary file beside ``path`` and move it into place; the error, or ``None``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        proc = subprocess.run([compiler, *flags, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            return f"{Path(compiler).name} {' '.join(flags)} failed: {tail}"
        os.replace(tmp, path)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{Path(compiler).name} {' '.join(flags)} failed: {exc}"
    finally:
        if tmp.exists():
            tmp.unlink()


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
    lib.uf_forward.argtypes = [p, p, p, i64, i64, i64, p, i32, i32, i64, i64, i64, p, p]
    lib.uf_forward.restype = ctypes.c_int
    lib.uf_backward.argtypes = [p, p, p, i64, i64, i64, p, p, i32, i64, i64, i64, p]
    lib.uf_backward.restype = ctypes.c_int
    return lib


# --- calls ------------------------------------------------------------------------------------

def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _run(fn, args_before: tuple, n_chunks: int, args_after: tuple, size: int) -> None:
    """``fn(*args_before, CHUNK, c0, c1, *args_after)`` over all chunks, on several threads if worth it
    (``size``: the number of logits)."""
    threads = 1 if size < _MIN_PARALLEL else min(torch.get_num_threads(), _thread_limit(), n_chunks)
    if threads < 2:
        if fn(*args_before, CHUNK, 0, n_chunks, *args_after):
            raise MemoryError("unifocal's CPU kernel could not allocate its block buffer")
        return
    pool = _thread_pool(threads)
    bounds = [n_chunks * j // threads for j in range(threads + 1)]
    futures = [pool.submit(fn, *args_before, CHUNK, bounds[j], bounds[j + 1], *args_after)
               for j in range(1, threads)]
    rc = [fn(*args_before, CHUNK, bounds[0], bounds[1], *args_after)] + [f.result() for f in futures]
    if any(rc):  # (every chunk has finished: nothing writes into the buffers any more)
        raise MemoryError("unifocal's CPU kernel could not allocate its block buffer")


def _thread_limit() -> int:
    """``$UNIFOCAL_KERNEL_THREADS``: at most this many threads for the kernel (unset: no limit of its own)."""
    value = os.environ.get("UNIFOCAL_KERNEL_THREADS")
    if value is None or not value.strip():
        return 1 << 30
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"UNIFOCAL_KERNEL_THREADS must be a positive integer, got {value!r}")
    return limit


def _after_fork_in_child() -> None:
    """In a child process after ``fork``: the parent's pool threads do not exist there, and a lock the
    parent held (a build in progress on another thread) would never be released."""
    global _pool, _pool_size, _pool_lock, _lock
    _pool, _pool_size, _pool_lock, _lock = None, 0, threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size < threads - 1:
        with _pool_lock:
            if _pool is None or _pool_size < threads - 1:
                old = _pool
                _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="unifocal-kernel")
                _pool_size = threads - 1
                if old is not None:
                    old.shutdown(wait=False)
    return _pool


def chunks(n: int) -> int:
    """Chunks per row of ``n`` positions."""
    return max(1, -(-n // CHUNK))


def forward(lib: ctypes.CDLL, x: Tensor, labels: Tensor, valid: Tensor | None, wg: Tensor, coef: bool,
            regions: bool) -> tuple[Tensor | list[list[float]], Tensor | None, tuple[float, float, float]]:
    """The forward pass: per-row sums, the coefficients ``c`` ``(B, N)`` and the input checks.

    ``x`` ``(B, K, N)`` float32, ``labels`` ``(B, N)`` int64, ``valid`` ``(B, N)`` float32 or ``None``, all
    contiguous on the CPU; ``wg`` ``(2K,)`` float32: the class weights, then the class exponents ``γ``.
    Returns the sums ``(B, 1 + 3K)`` float64 ``[Σ v f, TP_c, ΣP_c, Σg_c]`` (for at most ``_LIST_ROWS`` rows of
    one chunk each, as lists of Python numbers, each row followed by three more numbers), ``c`` (``None``
    without ``coef``) and ``(Σ x·0, min label, max label)`` (the first is NaN if a logit is not finite).
    """
    b, k, n = x.shape
    per_row = chunks(n)
    width = 4 + 3 * k
    partial = torch.empty(b * per_row, width, dtype=torch.float64, device="cpu")
    c = torch.empty(b, n, dtype=x.dtype, device="cpu") if coef else None
    if not b * n:
        return partial.new_zeros(b, 1 + 3 * k), c, (0.0, 0.0, 0.0)
    _run(lib.uf_forward, (_ptr(x), _ptr(labels), _ptr(valid), b, k, n, _ptr(wg), int(coef), int(regions)),
         b * per_row, (_ptr(partial), _ptr(c)), x.numel())
    if per_row == 1 and b <= _LIST_ROWS:  # few rows: Python numbers (the caller's per-row algebra wants them)
        rows = partial.tolist()
        checks = (sum(r[-3] for r in rows), min(r[-2] for r in rows), max(r[-1] for r in rows))
        return rows, c, checks
    tail = partial[:, width - 3:]
    checks = (float(tail[:, 0].sum()), float(tail[:, 1].min()), float(tail[:, 2].max()))
    sums = partial[:, :width - 3] if per_row == 1 else partial[:, :width - 3].reshape(b, per_row, -1).sum(1)
    return sums, c, checks


def backward(lib: ctypes.CDLL, x: Tensor, labels: Tensor, valid: Tensor | None, c: Tensor | None,
             coeffs: Tensor, regions: bool) -> Tensor:
    """The logit gradient ``(B, K, N)`` from the per-row ``coeffs`` ``(B, 1 + 2K)`` float32
    ``[k, ∂L/∂ΣP_c, ∂L/∂TP_c]`` (``k`` scales ``c``; the rest is read only with ``regions``)."""
    b, k, n = x.shape
    grad = torch.empty_like(x)
    if b * n:
        _run(lib.uf_backward, (_ptr(x), _ptr(labels), _ptr(valid), b, k, n, _ptr(c), _ptr(coeffs), int(regions)),
             b * chunks(n), (_ptr(grad),), x.numel())
    return grad


def _self_check(lib: ctypes.CDLL) -> str | None:
    """Compare the kernel with a float64 PyTorch formulation on small inputs of two classes (the kernel's
    two-class path) and of three; the mismatch, or ``None``. (Run on the CPU with gradients enabled.)"""
    f32 = torch.float32
    try:
        for k, w_list, g_list in ((2, [0.4, 1.5], [0.5, 0.0]), (3, [0.3, 1.0, 2.0], [0.5, 0.0, 0.25])):
            g = torch.Generator().manual_seed(k)
            b, n = 2, 300
            x = torch.randn(b, k, n, generator=g, dtype=f32) * 4
            labels = torch.randint(0, k, (b, n), generator=g)
            valid = (torch.rand(b, n, generator=g) > 0.2).to(f32)
            w, gam = torch.tensor(w_list, dtype=f32), torch.tensor(g_list, dtype=f32)
            sums, c, checks = forward(lib, x, labels, valid, torch.cat([w, gam]), True, True)
            if isinstance(sums, list):
                sums = torch.tensor(sums, dtype=torch.float64)[:, :1 + 3 * k]
            if checks != (0.0, float(labels.min()), float(labels.max())):
                return f"input checks {checks} ({k} classes)"
            x_nan = x.clone()
            x_nan[1, k - 1, 17] = float("nan")
            if not math.isnan(forward(lib, x_nan, labels, valid, torch.cat([w, gam]), True, True)[2][0]):
                return f"a NaN logit was not reported ({k} classes)"
            xd = x.double().requires_grad_()
            logp = torch.log_softmax(xd, 1)
            lpt = logp.gather(1, labels.unsqueeze(1)).squeeze(1)
            pt = lpt.exp()
            vd = valid.double()
            f = -w.double()[labels] * (1 - pt) ** gam.double()[labels] * lpt * vd
            onehot = torch.nn.functional.one_hot(labels, k).movedim(-1, 1).double() * vd.unsqueeze(1)
            p = logp.exp()
            tp, ps, cnt = (p * onehot).sum(-1), (p * vd.unsqueeze(1)).sum(-1), onehot.sum(-1)
            ref = torch.cat([f.sum(-1, keepdim=True), tp, ps, cnt], 1)
            if not torch.allclose(sums, ref, rtol=1e-4, atol=1e-4):
                return f"sums off by {float((sums - ref).abs().max()):.3g} ({k} classes)"
            kr = torch.tensor([0.7, -1.3], dtype=f32)
            a, bt = torch.randn(b, k, generator=g, dtype=f32), torch.randn(b, k, generator=g, dtype=f32)
            loss = (kr.double() * f.sum(-1)).sum() + (a.double() * ps).sum() + (bt.double() * tp).sum()
            (want,) = torch.autograd.grad(loss, xd)
            got = backward(lib, x, labels, valid, c, torch.cat([kr.unsqueeze(1), a, bt], 1), True)
            if not torch.allclose(got.double(), want, rtol=1e-4, atol=1e-5):
                return f"gradient off by {float((got.double() - want).abs().max()):.3g} ({k} classes)"
    except Exception as exc:  # any failure means: do not use the kernel
        return f"{type(exc).__name__}: {exc}"
    return None
