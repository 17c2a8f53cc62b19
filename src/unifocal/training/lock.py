"""One process per run folder: an exclusive lock file holding the owner's pid.

:func:`run_lock` takes ``<run_dir>/run.lock`` with ``fcntl.flock`` (exclusive, non-blocking) and
writes the owner's pid, host and start time into it. The kernel drops a ``flock`` when its process
dies, even by ``kill -9``, so a lock file left behind by a dead process is *stale* and is taken over
at once; a live owner makes a second process fail with a ``ValueError`` naming that owner's pid.
While it holds the lock the process also removes the temporary files that an earlier, killed writer
left in the run folder (:func:`clean_orphaned_tmp`): nobody else can be writing them. Only the
temporary files of the files a run writes, in the places it writes them, are removed
(``.<name>.<random>.tmp`` of ``config.yaml``, ``checkpoints/last.pt``...): anything else in the
folder (a user's ``notes/.draft.tmp``) is the user's and is kept.

Nothing but ``train`` writes into a run folder: :func:`refuse_run_folder` refuses an output folder
(``predict -o``, ``evaluate -o``) that is a run folder or lies inside one.
See ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "RUN_FILES", "check_output_dir", "clean_orphaned_tmp", "find_run_folder", "read_lock_owner",
           "refuse_run_folder", "run_lock"]

LOCK_NAME = "run.lock"
#: The files a run writes atomically at its top level (their temporary files are the run's own).
RUN_FILES = ("config.yaml", "split.json", "splits.json", "duplicates.json", "log.csv", "diagnostics.csv",
             "metrics_per_case.csv", "learning_curves.png", "summary.json")
#: ``{subfolder: suffixes of the files a run writes there}``.
RUN_SUBFOLDERS = {"checkpoints": ("last.pt", "best.pt"), "predictions": (".png", ".nii.gz", "_probs.npz")}
#: ``.<name>.<random>.tmp``: a temporary file of :func:`unifocal._atomic.atomic_write`.
_TMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")


def check_output_dir(path: str | Path, what: str = "output folder", *, create: bool = True) -> Path:
    """Create the folder ``path`` (and its parents); refuse a path that is an existing file.

    With ``create=False`` only the check is made (a refused command writes nothing).

    Raises:
        ValueError: ``path`` (or one of its parents) is a file, or it cannot be created.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            alt = p.with_name(f"{p.with_suffix('').name}_out")
            suggestion = alt / path.relative_to(p) if p != path else alt
            raise ValueError(f"{what} {path}: {p} is an existing file, not a folder; give a folder path "
                             f"(-o), e.g. {suggestion}")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be created ({exc.strerror or exc}); choose a writable "
                         f"location") from None
    return path


def is_run_folder(folder: Path) -> bool:
    """A folder that ``train`` made: it holds ``run.lock``, ``checkpoints/``, or ``config.yaml`` with
    ``split.json`` / ``log.csv``."""
    if not folder.is_dir():
        return False
    if (folder / LOCK_NAME).exists() or (folder / "checkpoints").is_dir():
        return True
    return (folder / "config.yaml").is_file() and any((folder / f).is_file() for f in ("split.json", "log.csv"))


def find_run_folder(path: str | Path) -> Path | None:
    """The run folder that ``path`` is or lies inside (``None``: none)."""
    p = Path(os.path.abspath(path))
    for q in (p, *p.parents):
        if is_run_folder(q):
            return q
    return None


def refuse_run_folder(path: str | Path, what: str = "output folder") -> None:
    """Refuse to write into a run folder: only ``train`` writes there, and a locked one is in use.

    Raises:
        ValueError: ``path`` is a run folder or lies inside one (the message says which, and whether
            a live process holds it).
    """
    run = find_run_folder(path)
    if run is None:
        return
    owner = ""
    if _lock_is_held(run / LOCK_NAME):
        o = read_lock_owner(run / LOCK_NAME)
        owner = f", in use by process {o.get('pid', '?')}"
    inside = "is" if run == Path(os.path.abspath(path)) else f"lies inside {run}, which is"
    raise ValueError(f"{what} {path} {inside} a run folder{owner}: only `unifocal train` writes into a run folder "
                     f"(its summary.json, metrics_per_case.csv and checkpoints decide whether it is finished); "
                     f"write to a folder outside it, e.g. {run.parent / (run.name + '_' + what.split()[0])}")


def _lock_is_held(lock_file: Path) -> bool:
    """Whether a live process holds ``lock_file`` (a shared lock cannot be taken; nothing is created)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def read_lock_owner(lock_file: str | Path) -> dict:
    """The ``{"pid", "host", "started"}`` recorded in a lock file (empty dict when unreadable)."""
    try:
        return json.loads(Path(lock_file).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _ours(tmp: Path, folder: Path) -> bool:
    m = _TMP.match(tmp.name)
    if m is None:
        return False
    name, where = m["name"], tmp.parent
    if where == folder:
        return name in RUN_FILES
    if where.parent == folder and where.name in RUN_SUBFOLDERS:
        return name.endswith(RUN_SUBFOLDERS[where.name])
    return False


def clean_orphaned_tmp(folder: str | Path) -> list[Path]:
    """Delete the temporary files ``.<name>.<random>.tmp`` that :mod:`unifocal._atomic` leaves when its
    writer is killed, of the files a run writes (:data:`RUN_FILES` at the top of ``folder``,
    :data:`RUN_SUBFOLDERS` below it); nothing else is touched.

    Only call this while holding the folder's lock: the files then belong to killed writers.
    Returns the removed paths.
    """
    folder = Path(folder)
    candidates = [*folder.glob(".*.tmp"), *(p for sub in RUN_SUBFOLDERS for p in (folder / sub).glob(".*.tmp"))]
    removed = []
    for p in sorted(candidates):
        if p.is_file() and not p.is_symlink() and _ours(p, folder):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def run_lock(run_dir: str | Path, *, clean: bool = True) -> Iterator[Path]:
    """Hold the exclusive lock of ``run_dir`` (created) for the duration of the ``with`` block.

    Args:
        run_dir: The run folder.
        clean: Remove orphaned ``.*.tmp`` files once the lock is held.

    Raises:
        ValueError: another live process holds the lock (its pid is named), or ``run_dir`` is a file.
    """
    run_dir = check_output_dir(run_dir, "run folder")
    lock_file = run_dir / LOCK_NAME
    for _ in range(50):
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            owner = read_lock_owner(lock_file)
            who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')} (since {owner.get('started', '?')})"
            raise ValueError(f"run folder {run_dir} is in use by {who}: one process per run folder. Wait for it "
                             f"to finish, stop it, or use another output folder (-o)") from None
        # the file may have been unlinked and re-created by a previous owner between open and flock
        try:
            same = os.stat(lock_file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:  # pragma: no cover - needs 50 lost races in a row
        raise ValueError(f"run folder {run_dir}: could not take {lock_file}; retry")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        os.fsync(fd)
        if clean:
            clean_orphaned_tmp(run_dir)
        yield lock_file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_file)
        os.close(fd)
