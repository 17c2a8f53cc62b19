"""Runners: execute planned runs locally (sequentially or in worker processes) or on Ray.

Every runner does the same thing per run: skip it when its folder holds a finished ``summary.json``,
else call the training function (by default :func:`unifocal.training.train_and_evaluate`, which
resumes an interrupted run from its last checkpoint). A failed run is reported and does not stop the
others. Since runs are idempotent, re-invoking a study (after a crash, a ``kill -9`` or a Ray driver
restart) only computes what is missing.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from unifocal import training
from unifocal.study.plan import RunSpec

__all__ = ["RunOutcome", "is_finished", "run_local", "run_ray", "run_study"]

TRAIN_FN = "unifocal.training:train_and_evaluate"


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run.

    Attributes:
        name: ``<arm>/fold<k>``.
        run_dir: its folder.
        status: ``"finished"`` (trained now), ``"skipped"`` (already finished) or ``"failed"``.
        seconds: wall time spent on it by this invocation.
        error: the error message of a failed run.
    """

    name: str
    run_dir: Path
    status: str
    seconds: float = 0.0
    error: str = ""


def is_finished(run_dir: str | Path, config: dict[str, Any] | None = None) -> bool:
    """Whether ``run_dir/summary.json`` exists with ``status == "finished"`` (and, given the run's
    ``config``, that config does not continue it: a run ended by ``stop_after`` or ``patience`` continues
    under a larger limit, :func:`unifocal.training.loop.continues_finished_run`)."""
    f = Path(run_dir) / "summary.json"
    if not f.is_file():
        return False
    try:
        finished = json.loads(f.read_text()).get("status") == "finished"
    except (json.JSONDecodeError, OSError):
        return False
    if finished and config is not None:
        return not training.continues_finished_run(run_dir, config)
    return finished


def _resolve(train_fn: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(train_fn):
        return train_fn
    mod, _, attr = train_fn.partition(":")
    if not attr:
        raise ValueError(f"training function {train_fn!r} must be 'module:function'")
    return getattr(importlib.import_module(mod), attr)


def _limit_threads(threads: int) -> None:
    """Cap torch's intra-op threads in a worker (via the environment when torch is not imported yet)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)


def _watch_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """Worker initializer: exit this worker when the process that started it is gone.

    A ``kill -9`` of the study driver leaves its pool workers blocked on their task queue forever
    (each holding a model in memory); this daemon thread ends them within ``interval_s``. The run
    they were training resumes from its last checkpoint when the study is run again.
    """
    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, name="unifocal-parent-watch", daemon=True).start()


def _execute(spec: RunSpec, train_fn: str | Callable[..., Any], threads: int | None,
             progress: bool = False) -> RunOutcome:
    """Run one spec (in whatever process this is called); never raises."""
    if is_finished(spec.run_dir, spec.config):
        return RunOutcome(spec.name, spec.run_dir, "skipped")
    t0 = time.perf_counter()
    try:
        if threads:
            _limit_threads(threads)
        fn = _resolve(train_fn)
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        fn(spec.config, spec.run_dir, progress=progress)
        if not is_finished(spec.run_dir):
            raise RuntimeError(f"training returned but {spec.run_dir / 'summary.json'} is not finished")
        return RunOutcome(spec.name, spec.run_dir, "finished", time.perf_counter() - t0)
    except Exception as e:  # a failed run must not take the study down (Ctrl-C and exit still do)
        msg = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
        return RunOutcome(spec.name, spec.run_dir, "failed", time.perf_counter() - t0, msg)



def _collector(specs: Sequence[RunSpec], outcomes: dict[str, RunOutcome],
               on_done: Callable[[RunOutcome], None] | None) -> tuple[Callable[[RunOutcome], None], list[RunSpec]]:
    """``(done, todo)``: a callback recording each outcome (and forwarding it to ``on_done``), and the
    specs still to run; finished runs are recorded as skipped at once."""

    def done(o: RunOutcome) -> None:
        outcomes[o.name] = o
        if on_done is not None:
            on_done(o)

    todo = []
    for s in specs:
        if is_finished(s.run_dir, s.config):
            done(RunOutcome(s.name, s.run_dir, "skipped"))
        else:
            todo.append(s)
    return done, todo

def run_local(specs: Sequence[RunSpec], workers: int = 1, train_fn: str | Callable[..., Any] = TRAIN_FN,
              threads_per_worker: int | None = None,
              on_done: Callable[[RunOutcome], None] | None = None, progress: bool = False) -> list[RunOutcome]:
    """Run the specs on this machine.

    Args:
        specs: the planned runs.
        workers: 1 = sequentially in this process; N > 1 = N worker processes (``spawn`` start
            method, safe with torch), each with ``threads_per_worker`` torch threads (default
            ``max(1, cpu_count // workers)``).
        train_fn: ``"module:function"`` or a picklable callable ``(config, run_dir, progress=False)``.
        threads_per_worker: torch threads per worker process.
        on_done: called with each outcome as it completes.
        progress: show the training progress bars (sequential mode only).

    Returns:
        One outcome per spec, in the order of ``specs``.

    Raises:
        ValueError: if ``workers < 1``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    outcomes: dict[str, RunOutcome] = {}
    done, todo = _collector(specs, outcomes, on_done)
    if workers == 1 or len(todo) <= 1:
        for s in todo:
            done(_execute(s, train_fn, threads_per_worker, progress))
    else:
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn"),
                                 initializer=_watch_parent, initargs=(os.getpid(),)) as ex:
            futs = {ex.submit(_execute, s, train_fn, threads): s for s in todo}
            for f in as_completed(futs):
                s = futs[f]
                try:
                    done(f.result())
                except Exception as e:  # worker died (e.g. killed)
                    done(RunOutcome(s.name, s.run_dir, "failed", 0.0, f"{type(e).__name__}: {e}"))
    return [outcomes[s.name] for s in specs]


def run_ray(specs: Sequence[RunSpec], address: str | None = None, cpus_per_run: float = 1.0,
            gpus_per_run: float = 0.0, train_fn: str | Callable[..., Any] = TRAIN_FN,
            num_cpus: int | None = None, on_done: Callable[[RunOutcome], None] | None = None,
            shutdown: bool = True) -> list[RunOutcome]:
    """Run the specs as Ray tasks, one task (trial) per run.

    Args:
        specs: the planned runs. Run folders must be on storage that every Ray node sees (a shared
            file system) when the cluster has several nodes.
        address: an existing cluster (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``); ``None``
            starts a local instance with ``num_cpus`` CPUs.
        cpus_per_run: the CPU resources each run requests (also its torch thread count).
        gpus_per_run: the GPU resources each run requests (``1`` for one GPU per run, fractions share).
        train_fn: ``"module:function"`` (imported on the worker) or a picklable callable.
        num_cpus: CPUs of a locally started instance (ignored with ``address``).
        on_done: called with each outcome as it completes.
        shutdown: disconnect from Ray at the end.

    Returns:
        One outcome per spec, in the order of ``specs``.

    Raises:
        ValueError: if Ray is not installed (``pip install 'unifocal[ray]'``) or resources are invalid.
    """
    try:
        import ray
    except ImportError as e:
        raise ValueError("the ray runner needs Ray: pip install 'unifocal[ray]' (or 'ray[tune]')") from e
    if cpus_per_run <= 0 or gpus_per_run < 0:
        raise ValueError(f"invalid resources per run: cpu={cpus_per_run}, gpu={gpus_per_run}")
    outcomes: dict[str, RunOutcome] = {}
    done, todo = _collector(specs, outcomes, on_done)
    if todo:
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                                      "include_dashboard": False}
            if address:
                kwargs["address"] = address
            elif num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            ray.init(**kwargs)
            started = True
        try:
            task = ray.remote(_execute).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                                 max_retries=0)
            threads = max(1, int(cpus_per_run))
            refs = {task.remote(s, train_fn, threads): s for s in todo}
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for r in ready:
                    s = refs[r]
                    try:
                        done(ray.get(r))
                    except Exception as e:  # worker crash
                        done(RunOutcome(s.name, s.run_dir, "failed", 0.0, f"{type(e).__name__}: {e}"))
        finally:
            if shutdown and started:
                ray.shutdown()
    return [outcomes[s.name] for s in specs]


def run_study(specs: Sequence[RunSpec], runner: str = "local", *, workers: int = 1,
              ray_address: str | None = None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
              train_fn: str | Callable[..., Any] = TRAIN_FN,
              on_done: Callable[[RunOutcome], None] | None = None, progress: bool = False) -> list[RunOutcome]:
    """Dispatch to :func:`run_local` or :func:`run_ray` by name.

    Raises:
        ValueError: for an unknown runner.
    """
    if runner == "local":
        return run_local(specs, workers=workers, train_fn=train_fn, on_done=on_done, progress=progress)
    if runner == "ray":
        return run_ray(specs, address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                       train_fn=train_fn, on_done=on_done)
    raise ValueError(f"unknown runner {runner!r}: use 'local' or 'ray'")
