"""Commands of the training stage: ``train``, ``predict``, ``evaluate``, ``demo``.

torch is loaded when a command runs, not with ``unifocal --help``: the commands reach the training stage
through the package :mod:`unifocal.training`, which loads its modules on first use.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from unifocal import training
from unifocal.cli._common import BUILD_OPTIONS, fail, output_option, quiet_option, train_options, user_errors
from unifocal.training.config import build_config, parse_key_values, read_yaml_mapping


def _print_summary(summary: dict[str, Any]) -> None:
    if summary.get("best_epoch") is not None:
        stop = summary.get("stop_epoch")
        early = f", stopped early at {stop}" if summary.get("stopped_early") and stop is not None else ""
        typer.echo(f"best epoch: {summary['best_epoch']} of {summary.get('epochs')}{early}")
    if summary.get("cases") is not None:
        typer.echo(f"cases scored: {summary['cases']}")
    for cls, ms in summary["metrics"].items():
        parts = []
        for m in ("dsc", "precision", "recall"):
            v = ms[m]
            ci = f" ± {v['ci95']:.3f}" if v.get("ci95") is not None else ""
            parts.append(f"{m.upper() if m == 'dsc' else m} {v['mean']:.3f}{ci}")
        typer.echo(f"  {cls}: " + ", ".join(parts) + f"  (n={ms['dsc']['n']} cases)")


@train_options()
def train(
    output: Path = output_option(help="Run folder (created; a rerun resumes it)."),
    loss: str | None = typer.Option(None, "--loss", help="Loss name (see `unifocal losses`)."),
    loss_param: list[str] | None = typer.Option(None, "--loss-param",
                                                help="Loss parameter NAME=VALUE (repeatable), e.g. delta=0.6."),
    settings: dict[str, Any] | None = None,
    quiet: bool = quiet_option(),
) -> None:
    """Train one run (one configuration, one fold), or resume it, then evaluate its best model."""
    settings = dict(settings or {})
    config, device = settings.pop("config"), settings.pop("device")
    with user_errors():
        own = output / "config.yaml"
        if (config is None and loss is None and not loss_param
                and all(v in (None, [], ()) for v in settings.values()) and own.is_file()):
            # `unifocal train -o RUN` alone resumes RUN with its own configuration
            cfg = read_yaml_mapping(own, "the run's configuration")
            if device is not None:
                cfg["device"] = device
        else:
            cfg = build_config(config, loss=loss, loss_param=loss_param, **settings, device=device)
        summary = training.train_and_evaluate(cfg, output, progress=not quiet)
    _print_summary(summary)
    typer.echo(f"run folder: {output}")


def predict(
    run: Path = typer.Argument(..., help="Run folder (uses checkpoints/best.pt) or a checkpoint file."),
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (PNG for 2D, NIfTI)."),
    output: Path = output_option(help="Folder for the predictions."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also save class probabilities."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    quiet: bool = quiet_option(),
) -> None:
    """Predict label maps for new images with a trained run (original image size / NIfTI affine kept)."""
    with user_errors():
        out = training.predict_files(run, inputs, output, probabilities=probabilities, device=device,
                                     progress=not quiet)
    typer.echo(f"{len(out)} prediction(s) written to {output}")


def evaluate(
    run: Path = typer.Argument(..., help="Run folder or checkpoint."),
    output: Path = output_option(help="Folder for metrics_per_case.csv and summary.json."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset to score (default: the run's own "
                                       "dataset and validation cases); opened with the run's preprocessing."),
    layout: str | None = BUILD_OPTIONS["layout"][1],
    dataset_option: list[str] | None = typer.Option(
        None, "--dataset-option", help="Dataset option NAME=VALUE (repeatable), e.g. to select the cases; "
                                       "preprocessing options must match the run's."),
    save_predictions: bool = typer.Option(False, "--save-predictions", help="Also save the predictions."),
    probabilities: bool = typer.Option(False, "--probabilities", help="With --save-predictions: probabilities."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    quiet: bool = quiet_option(),
) -> None:
    """Per-case, per-class DSC / precision / recall of a trained run (original geometry)."""
    with user_errors():
        ds = None
        if dataset is not None:
            ds = build_config(dataset=dataset, layout=layout, dataset_option=dataset_option)["dataset"]
        elif layout is not None:
            fail("--layout needs --dataset (the run's own dataset keeps its layout)")
        elif dataset_option:  # the run's own dataset with these options added
            ds = {"options": parse_key_values(dataset_option, "--dataset-option")}
        summary = training.evaluate_run(run, output, dataset=ds, save_predictions=save_predictions,
                                        probabilities=probabilities, device=device, progress=not quiet)
    _print_summary(summary)
    typer.echo(f"written: {output / 'metrics_per_case.csv'}, {output / 'summary.json'}")


def demo(
    output: Path = output_option(required=False, default=Path("unifocal-demo"), help="Run folder of the demo."),
    epochs: int = typer.Option(30, "--epochs", help="Training epochs."),
    quiet: bool = quiet_option(),
) -> None:
    """Train a small U-Net with the Unified Focal loss on the 2D phantom, predict, print the metrics."""
    cfg = demo_config(epochs)
    t0 = time.perf_counter()
    with user_errors():
        summary = training.train_and_evaluate(cfg, output, progress=not quiet)
    from unifocal.losses import loss_defaults  # loaded by the training above; not with --help

    params = ", ".join(f"{k}={v}" for k, v in loss_defaults("unified_focal").items())
    typer.echo(f"Unified Focal loss ({params}), 2D U-Net (16 base filters, instance norm), phantom2d "
               f"{cfg['dataset']['options']['n_cases']} cases of 64x64, {epochs} epochs, "
               f"{time.perf_counter() - t0:.0f} s")
    _print_summary(summary)
    typer.echo(f"run folder: {output} (learning_curves.png, log.csv, predictions/)")
    typer.echo(json.dumps({c: {m: round(v[m]["mean"], 4) for m in ("dsc", "precision", "recall")}
                           for c, v in summary["metrics"].items()}))


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict``, ``evaluate`` and ``demo`` to the main app."""
    for command in (train, predict, evaluate, demo):
        app.command()(command)


def demo_config(epochs: int = 30) -> dict[str, Any]:
    """The configuration of ``unifocal demo`` (2D phantom, Unified Focal loss, U-Net with 16 base filters)."""
    return {
        "dataset": {"name": "phantom2d", "options": {"n_cases": 40, "size": 64}},
        "loss": {"name": "unified_focal", "params": {}},
        "model": {"name": "unet", "base_filters": 16, "depth": 4, "norm": "instance"},
        "scheme": "adam", "lr": 3e-3, "epochs": epochs, "batch_size": 8, "samples_per_epoch": 64,
        "seed": 0, "save_predictions": True,
    }
