"""One process per run folder: an exclusive lock file holding the owner's pid.

:func:`run_lock` takes ``<run_dir>/run.lock`` with ``fcntl.flock`` (exclusive, non-blocking) and
writes the owner's pid, host and start time into it. The kernel drops a ``flock`` when its process
dies, even by ``kill -9``, so a lock file left behind by a dead process is *stale* and is taken over
at once; a live owner makes a second process fail with a ``ValueError`` naming that owner's pid.
While it holds the lock the process also removes the temporary files (``.*.tmp``) that an earlier,
killed writer left in the run folder (:func:`clean_orphaned_tmp`): nobody else can be writing them.
See ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "check_output_dir", "clean_orphaned_tmp", "read_lock_owner", "run_lock"]

LOCK_NAME = "run.lock"


def check_output_dir(path: str | Path, what: str = "output folder", *, create: bool = True) -> Path:
    """Create the folder ``path`` (and its parents); refuse a path that is an existing file.

    With ``create=False`` only the check is made (a refused command writes nothing).

    Raises:
        ValueError: ``path`` (or one of its parents) is a file, or it cannot be created.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise ValueError(f"{what} {path}: {p} is an existing file, not a folder; give a folder path "
                             f"(-o), e.g. {path.with_suffix('')}_out")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be created ({exc.strerror or exc}); choose a writable "
                         f"location") from None
    return path


def read_lock_owner(lock_file: str | Path) -> dict:
    """The ``{"pid", "host", "started"}`` recorded in a lock file (empty dict when unreadable)."""
    try:
        return json.loads(Path(lock_file).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def clean_orphaned_tmp(folder: str | Path) -> list[Path]:
    """Delete the temporary files ``.<name>.<random>.tmp`` of :mod:`unifocal._atomic` under ``folder``.

    Only call this while holding the folder's lock: the files then belong to killed writers.
    Returns the removed paths.
    """
    removed = []
    for p in Path(folder).rglob(".*.tmp"):
        if p.is_file():
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
    import fcntl

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
