"""The ``unifocal`` command line. Each stage registers its own commands (CLI → study → training → data)."""

from __future__ import annotations

import sys

import typer

from unifocal import __version__
from unifocal.__main__ import main as run_command
from unifocal.__main__ import os_error_message
from unifocal.cli import data, run, study

__all__ = ["app", "main", "os_error_message"]

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


for _stage in (data, run, study):
    _stage.register(app)


def main() -> None:
    """Run the ``unifocal`` command line from ``sys.argv`` and exit with its status: the console script
    :func:`unifocal.__main__.main` (the one handler of file-system errors, warnings and a missing pipeline
    package), for callers that import the app's package."""
    sys.exit(run_command())
