"""``python -m unifocal`` and the ``unifocal`` console script: the one place that turns what ends a
command into a message and an exit status.

The command line belongs to the ``pipeline`` extra (torch, Typer, MONAI, SciPy, …); the losses alone
(``unifocal[torch]``) have no command line. Without the extra, ``unifocal`` prints one line that
says what to install instead of a traceback and exits with status 2 (a usage or configuration error,
as the README's exit codes); ``unifocal --version`` works either way. A file-system error (full disk,
permissions) ends with the one-line message of :func:`os_error_message` and status 1; a warning is one
line on stderr, as an error is.
"""

from __future__ import annotations

import errno
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from unifocal import __version__

# top-level modules of the ``pipeline`` extra (import names, not distribution names)
PIPELINE_MODULES = frozenset({
    "typer", "click", "rich", "monai", "scipy", "nibabel", "SimpleITK", "PIL", "tqdm",
    "matplotlib", "yaml", "tensorboard",
})
INSTALL_HINT = 'pip install "unifocal[pipeline]"'


def _missing_pipeline_module(exc: ModuleNotFoundError) -> str | None:
    name = (exc.name or "").split(".")[0]
    return name if name in PIPELINE_MODULES else None


def _no_pipeline(exc: ModuleNotFoundError) -> int:
    """Print the install hint of a missing pipeline package (re-raise any other missing module); status 2."""
    module = _missing_pipeline_module(exc)
    if module is None:
        raise exc
    print(f"unifocal: the command line needs the pipeline extra (module {module!r} is not installed); "
          f"install it with: {INSTALL_HINT}", file=sys.stderr)
    return 2  # a configuration error: the README's exit code 2


def os_error_message(exc: OSError) -> str:
    """The one-line message of a file-system error (full disk, permissions), naming the file.

    A full disk (or quota) says to free space and rerun (an interrupted run resumes from its last
    complete checkpoint); a permission or read-only error says to choose a writable folder.
    """
    where = f"{exc.filename}: " if exc.filename else ""
    what = f"{where}{exc.strerror or exc} (errno {exc.errno})"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"Error: cannot write or read {what}. Choose a writable output folder (-o) or fix the "
                f"permissions of that file or folder.")
    return (f"Error: cannot write or read {what}. Free disk space or fix the permissions, then rerun the "
            f"same command: an interrupted run resumes from its last complete checkpoint.")


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"warning: {message}\n"  # not the file and source line that raised it


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``unifocal`` command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # the pipeline extra: imported here, so that its absence is a hint and --version still answers
        from unifocal import cli
    except ModuleNotFoundError as exc:
        if args == ["--version"] and _missing_pipeline_module(exc) is not None:
            print(f"unifocal {__version__}")
            return 0
        return _no_pipeline(exc)
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        cli.app(args=args, prog_name="unifocal")
    except ModuleNotFoundError as exc:
        return _no_pipeline(exc)
    except OSError as exc:  # the run folder keeps its last complete checkpoint (atomic writes; docs/reliability.md)
        print(os_error_message(exc), file=sys.stderr)
        return 1
    except SystemExit as exc:  # click's standalone mode always exits
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        warnings.formatwarning = formatwarning
    return 0


if __name__ == "__main__":
    sys.exit(main())
