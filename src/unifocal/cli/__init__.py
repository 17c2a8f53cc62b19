"""The ``unifocal`` command line. Each stage registers its own commands (CLI → study → training → data)."""

from __future__ import annotations

import typer

from unifocal import __version__

app = typer.Typer(help="unifocal: Unified Focal loss family and the paper's study pipeline.",
                  no_args_is_help=True, add_completion=False)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"unifocal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Options that apply before any command."""


@app.command()
def losses() -> None:
    """List the available losses and their default parameters."""
    from unifocal.losses import available_losses, loss_defaults

    for name in available_losses():
        params = ", ".join(f"{k}={v!r}" for k, v in loss_defaults(name).items())
        typer.echo(f"{name}: {params}")


def _register_all() -> None:
    from unifocal.cli import data, run, study

    for mod in (data, run, study):
        mod.register(app)


_register_all()


def main() -> None:
    """Run the app outside ``python -m unifocal`` (which calls ``app`` itself, :func:`unifocal.__main__.main`):
    file-system errors (full disk, permissions) end with a message, status 1."""
    import sys
    import warnings

    # a warning is one line on stderr, as an error is (not the file and source line that raised it)
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    try:
        app()
    except OSError as exc:  # the run folder keeps its last complete checkpoint (atomic writes)
        typer.echo(os_error_message(exc), err=True)
        sys.exit(1)


def os_error_message(exc: OSError) -> str:
    """The one-line message of a file-system error (full disk, permissions), naming the file.

    A full disk (or quota) says to free space and rerun (an interrupted run resumes from its last
    complete checkpoint); a permission or read-only error says to choose a writable folder.
    """
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    what = f"{where}{exc.strerror or exc} (errno {exc.errno})"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"Error: cannot write or read {what}. Choose a writable output folder (-o) or fix the "
                f"permissions of that file or folder.")
    return (f"Error: cannot write or read {what}. Free disk space or fix the permissions, then rerun the "
            f"same command: an interrupted run resumes from its last complete checkpoint.")
