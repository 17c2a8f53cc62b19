"""``python -m unifocal`` and the ``unifocal`` console script.

The command line belongs to the ``pipeline`` extra (Typer, MONAI, SciPy, …); the core install
(``torch`` and ``numpy``) has no command line. Without the extra, ``unifocal`` prints one line that
says what to install instead of a traceback and exits with status 2 (a usage or configuration error,
as the README's exit codes); ``unifocal --version`` works either way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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


def _hint(module: str) -> str:
    return (f"unifocal: the command line needs the pipeline extra (module {module!r} is not installed); "
            f"install it with: {INSTALL_HINT}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``unifocal`` command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from unifocal.cli import app
    except ModuleNotFoundError as exc:
        module = _missing_pipeline_module(exc)
        if module is None:
            raise
        if args == ["--version"]:
            print(f"unifocal {__version__}")
            return 0
        print(_hint(module), file=sys.stderr)
        return 2  # a configuration error: the README's exit code 2
    try:
        app(args=args, prog_name="unifocal")
    except ModuleNotFoundError as exc:
        module = _missing_pipeline_module(exc)
        if module is None:
            raise
        print(_hint(module), file=sys.stderr)
        return 2  # a configuration error: the README's exit code 2
    except OSError as exc:  # full disk, permissions: a message, not a traceback (docs/reliability.md)
        from unifocal.cli import os_error_message

        print(os_error_message(exc), file=sys.stderr)
        return 1
    except SystemExit as exc:  # click's standalone mode always exits
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
