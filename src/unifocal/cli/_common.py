"""What every command shares: the error convention, the output and quiet options, the training options.

The convention (written down in the README, section "Command line"):

* exit code 0: done; 2: a usage, configuration or data error, reported as one line
  ``Error: ...`` on stderr before anything is written; 1: the command ran but some of its work
  failed (a study with failed runs);
* ``-o/--output``: the folder a command writes (run, predictions, evaluation, study, report);
* progress bars on stderr by default, ``-q/--quiet`` hides them;
* ``NAME=VALUE`` options are repeatable and parsed as YAML (``null`` / ``None``: off).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer

#: Exit code of a usage, configuration or data error.
EXIT_USAGE = 2
#: Exit code of a command whose work partly failed (e.g. failed runs of a study).
EXIT_FAILED = 1


def fail(msg: str) -> NoReturn:
    """Print ``Error: msg`` on stderr and exit with :data:`EXIT_USAGE`."""
    typer.echo(f"Error: {msg}", err=True)
    raise typer.Exit(code=EXIT_USAGE)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix (bad settings, missing files) into :func:`fail`."""
    try:
        yield
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))


def output_option(required: bool = True, default: Path | None = None, help: str = "Output folder.") -> Any:
    """``-o/--output``: the folder a command writes."""
    return typer.Option(... if required else default, "--output", "-o", help=help)


def quiet_option() -> Any:
    """``-q/--quiet``: hide the progress bars."""
    return typer.Option(False, "--quiet", "-q", help="No progress bars.")


#: Training options shared by ``train`` and ``study compare|tune`` (flags override the YAML file).
TRAIN_OPTIONS: dict[str, Any] = {
    "config": typer.Option(None, "--config", "-c", help="YAML configuration; flags override it."),
    "dataset": typer.Option(None, "--dataset", help="Dataset folder, or phantom2d / phantom3d."),
    "layout": typer.Option(None, "--layout", help="Dataset layout (default: detected)."),
    "dataset_option": typer.Option(None, "--dataset-option",
                                           help="Dataset option NAME=VALUE (repeatable; NAME=null switches "
                                                "a preprocessing step off)."),
    "model": typer.Option(None, "--model", help="unet / unet2d / unet3d or a MONAI network name."),
    "model_param": typer.Option(None, "--model-param", help="Model parameter NAME=VALUE (repeatable)."),
    "base_filters": typer.Option(None, "--base-filters", help="U-Net base width (paper 64 / 32; CPU 16)."),
    "deep_supervision": typer.Option(None, "--deep-supervision/--no-deep-supervision"),
    "scheme": typer.Option(None, "--scheme", help="sgd | adam | sota."),
    "epochs": typer.Option(None, "--epochs", help="Epochs (scheme default 100 / 1000)."),
    "batch_size": typer.Option(None, "--batch-size", help="Batch size (paper: 32 for 2D, 2 for 3D)."),
    "patch_size": typer.Option(None, "--patch-size", help="Training patch, e.g. 128,128 or 64x64x64 "
                                       "(default: whole image in 2D)."),
    "samples_per_epoch": typer.Option(None, "--samples-per-epoch",
                                              help="Training patches per epoch (default: one per case)."),
    "overlap": typer.Option(None, "--overlap", help="Sliding-window overlap in [0, 1) (default 0.5)."),
    "lr": typer.Option(None, "--lr", help="Learning rate (scheme default)."),
    "patience": typer.Option(None, "--patience", help="Early stopping: epochs without a lower validation loss "
                             "(default: off, train every epoch)."),
    "lr_patience": typer.Option(None, "--lr-patience", help="Plateau schedule (adam, adam_schedule plateau): "
                                "epochs without improvement before lr x 0.1."),
    "seed": typer.Option(None, "--seed", help="Random seed."),
    "split_seed": typer.Option(None, "--split-seed", help="Seed of the cross-validation folds."),
    "group_duplicates": typer.Option(None, "--group-duplicates/--no-group-duplicates",
                                     help="Keep near-duplicate cases in one fold when the split is made "
                                          "(default on; docs/data.md)."),
    "device": typer.Option(None, "--device", help="auto | cpu | cuda."),
    "amp": typer.Option(None, "--amp/--no-amp", help="Mixed precision."),
}
