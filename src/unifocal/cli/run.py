"""Commands of the training stage: ``train``, ``predict``, ``evaluate``, ``demo``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer


def _fail(msg: str) -> None:
    typer.echo(f"Error: {msg}", err=True)
    raise typer.Exit(code=2)


def build_config(config: Path | None = None, *, dataset: str | None = None, layout: str | None = None,
                 dataset_option: list[str] | None = None, loss: str | None = None,
                 loss_param: list[str] | None = None, model: str | None = None,
                 model_param: list[str] | None = None, base_filters: int | None = None,
                 deep_supervision: bool | None = None, scheme: str | None = None, fold: int | None = None,
                 epochs: int | None = None, batch_size: int | None = None, seed: int | None = None,
                 device: str | None = None, amp: bool | None = None) -> dict[str, Any]:
    """Merge a YAML file with command-line flags (flags win) into a configuration dict."""
    from unifocal.training.config import load_config_file, merge, parse_key_values

    cfg: dict[str, Any] = load_config_file(config) if config is not None else {}
    if dataset is not None:
        from unifocal.training.config import PHANTOMS

        cfg["dataset"] = {"name": dataset} if dataset in PHANTOMS else {"path": dataset}
    if layout is not None or dataset_option:
        ds = cfg.get("dataset")
        if isinstance(ds, str):
            from unifocal.training.config import PHANTOMS

            ds = {"name": ds} if ds in PHANTOMS else {"path": ds}
        ds = dict(ds or {"name": "phantom2d"})
        if layout is not None:
            ds["layout"] = layout
        if dataset_option:
            ds["options"] = merge(ds.get("options") or {}, parse_key_values(dataset_option, "--dataset-option"))
        cfg["dataset"] = ds
    if loss is not None or loss_param:
        lc = cfg.get("loss")
        lc = {"name": lc} if isinstance(lc, str) else dict(lc or {"name": "unified_focal"})
        if loss is not None and loss != lc.get("name"):
            lc = {"name": loss, "params": {}}
        lc["params"] = merge(lc.get("params") or {}, parse_key_values(loss_param, "--loss-param"))
        cfg["loss"] = lc
    if model is not None or model_param or base_filters is not None or deep_supervision is not None:
        mc = cfg.get("model")
        mc = {"name": mc} if isinstance(mc, str) else dict(mc or {"name": "unet"})
        if model is not None:
            mc["name"] = model
        mc.update(parse_key_values(model_param, "--model-param"))
        if base_filters is not None:
            mc["base_filters"] = base_filters
        if deep_supervision is not None:
            mc["deep_supervision"] = deep_supervision
        cfg["model"] = mc
    for k, v in (("scheme", scheme), ("fold", fold), ("epochs", epochs), ("batch_size", batch_size),
                 ("seed", seed), ("device", device), ("amp", amp)):
        if v is not None:
            cfg[k] = v
    return cfg


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo(f"best epoch: {summary.get('best_epoch')} of {summary.get('epochs')}")
    for cls, ms in summary["metrics"].items():
        parts = []
        for m in ("dsc", "precision", "recall"):
            v = ms[m]
            ci = f" ± {v['ci95']:.3f}" if v.get("ci95") is not None else ""
            parts.append(f"{m.upper() if m == 'dsc' else m} {v['mean']:.3f}{ci}")
        typer.echo(f"  {cls}: " + ", ".join(parts) + f"  (n={ms['dsc']['n']} cases)")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``predict``, ``evaluate`` and ``demo`` to the main app."""

    @app.command()
    def train(
        output: Path = typer.Option(..., "--output", "-o", help="Run folder (created; a rerun resumes it)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="YAML configuration; flags override it."),
        dataset: str | None = typer.Option(None, help="Dataset folder, or phantom2d / phantom3d."),
        layout: str | None = typer.Option(None, help="Dataset layout (default: detected)."),
        dataset_option: list[str] | None = typer.Option(None, help="Dataset option NAME=VALUE (repeatable)."),
        loss: str | None = typer.Option(None, help="Loss name (see `unifocal losses`)."),
        loss_param: list[str] | None = typer.Option(None, help="Loss parameter NAME=VALUE (repeatable), e.g. delta=0.6."),
        model: str | None = typer.Option(None, help="unet / unet2d / unet3d or a MONAI network name."),
        model_param: list[str] | None = typer.Option(None, help="Model parameter NAME=VALUE (repeatable)."),
        base_filters: int | None = typer.Option(None, help="U-Net base width (paper 64 / 32; CPU 16)."),
        deep_supervision: bool | None = typer.Option(None, "--deep-supervision/--no-deep-supervision"),
        scheme: str | None = typer.Option(None, help="sgd | adam | sota."),
        fold: int | None = typer.Option(None, help="Cross-validation fold."),
        epochs: int | None = typer.Option(None, help="Epochs (scheme default 100 / 1000)."),
        batch_size: int | None = typer.Option(None, help="Batch size (paper: 32 for 2D, 2 for 3D)."),
        seed: int | None = typer.Option(None, help="Random seed."),
        device: str | None = typer.Option(None, help="auto | cpu | cuda."),
        amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed precision."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Train one run (one configuration, one fold), or resume it, then evaluate its best model."""
        from unifocal.training import resolve_config, train_and_evaluate

        try:
            cfg = build_config(config, dataset=dataset, layout=layout, dataset_option=dataset_option, loss=loss,
                               loss_param=loss_param, model=model, model_param=model_param,
                               base_filters=base_filters, deep_supervision=deep_supervision, scheme=scheme,
                               fold=fold, epochs=epochs, batch_size=batch_size, seed=seed, device=device, amp=amp)
            resolve_config(cfg)
        except ValueError as e:
            _fail(str(e))
        try:
            summary = train_and_evaluate(cfg, output, progress=not quiet)
        except ValueError as e:
            _fail(str(e))
        _print_summary(summary)
        typer.echo(f"run folder: {output}")

    @app.command()
    def predict(
        run: Path = typer.Argument(..., help="Run folder (uses checkpoints/best.pt) or a checkpoint file."),
        inputs: list[Path] = typer.Argument(..., help="Image files or folders (PNG for 2D, NIfTI)."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for the predictions."),
        probabilities: bool = typer.Option(False, "--probabilities", help="Also save class probabilities."),
        device: str = typer.Option("auto", help="auto | cpu | cuda."),
    ) -> None:
        """Predict label maps for new images with a trained run (original image size / NIfTI affine kept)."""
        from unifocal.training import predict_files

        try:
            out = predict_files(run, inputs, output, probabilities=probabilities, device=device)
        except ValueError as e:
            _fail(str(e))
        typer.echo(f"{len(out)} prediction(s) written to {output}")

    @app.command()
    def evaluate(
        run: Path = typer.Argument(..., help="Run folder or checkpoint."),
        output: Path = typer.Option(..., "--output", "-o", help="Folder for metrics_per_case.csv and summary.json."),
        dataset: str | None = typer.Option(None, help="Dataset to score (default: the run's validation cases)."),
        layout: str | None = typer.Option(None, help="Layout of --dataset."),
        save_predictions: bool = typer.Option(False, "--save-predictions", help="Also save the predictions."),
        probabilities: bool = typer.Option(False, "--probabilities", help="With --save-predictions: probabilities."),
        device: str = typer.Option("auto", help="auto | cpu | cuda."),
    ) -> None:
        """Per-case, per-class DSC / precision / recall of a trained run (original geometry)."""
        from unifocal.training import evaluate_run

        ds = None
        if dataset is not None:
            ds = {"name": dataset} if dataset in ("phantom2d", "phantom3d") else {"path": dataset}
            ds["layout"] = layout
        try:
            summary = evaluate_run(run, output, dataset=ds, save_predictions=save_predictions,
                                   probabilities=probabilities, device=device)
        except ValueError as e:
            _fail(str(e))
        _print_summary(summary)
        typer.echo(f"written: {output / 'metrics_per_case.csv'}, {output / 'summary.json'}")

    @app.command()
    def demo(
        output: Path = typer.Option(Path("unifocal-demo"), "--output", "-o", help="Run folder of the demo."),
        epochs: int = typer.Option(30, help="Training epochs."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Train a small U-Net with the Unified Focal loss on the 2D phantom, predict, print the metrics."""
        from unifocal.training import train_and_evaluate

        cfg = demo_config(epochs)
        t0 = time.perf_counter()
        summary = train_and_evaluate(cfg, output, progress=not quiet)
        from unifocal.losses import loss_defaults

        params = ", ".join(f"{k}={v}" for k, v in loss_defaults("unified_focal").items())
        typer.echo(f"Unified Focal loss ({params}), 2D U-Net (16 base filters, instance norm), phantom2d "
                   f"{cfg['dataset']['options']['n_cases']} cases of 64x64, {epochs} epochs, "
                   f"{time.perf_counter() - t0:.0f} s")
        _print_summary(summary)
        typer.echo(f"run folder: {output} (learning_curves.png, log.csv, predictions/)")
        typer.echo(json.dumps({c: {m: round(v[m]["mean"], 4) for m in ("dsc", "precision", "recall")}
                               for c, v in summary["metrics"].items()}))


def demo_config(epochs: int = 30) -> dict[str, Any]:
    """The configuration of ``unifocal demo`` (2D phantom, Unified Focal loss, U-Net with 16 base filters)."""
    return {
        "dataset": {"name": "phantom2d", "options": {"n_cases": 40, "size": 64}},
        "loss": {"name": "unified_focal", "params": {}},
        "model": {"name": "unet", "base_filters": 16, "depth": 4, "norm": "instance"},
        "scheme": "adam", "lr": 3e-3, "epochs": epochs, "batch_size": 8, "samples_per_epoch": 64,
        "seed": 0, "save_predictions": True,
    }
