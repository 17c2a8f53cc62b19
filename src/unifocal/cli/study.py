"""``unifocal study``: ``compare`` (the paper's loss comparison), ``tune`` (Table 2 grids), ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

study_app = typer.Typer(help="Reproduce the paper's study: compare losses, tune the Unified Focal loss, "
                             "report tables and figures.", no_args_is_help=True)

_PHANTOMS = ("phantom2d", "phantom3d")


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _base_config(config: Path | None, dataset: str | None, layout: str | None, dataset_option: list[str],
                 epochs: int | None, batch_size: int | None, patch_size: str | None, model: str | None,
                 base_filters: int | None, deep_supervision: bool | None, scheme: str | None,
                 seed: int | None, split_seed: int | None, device: str | None,
                 save_predictions: bool | None, splits_dir: Path | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise ValueError(f"configuration file {config} does not exist")
        cfg = yaml.safe_load(config.read_text()) or {}
        if not isinstance(cfg, dict):
            raise ValueError(f"configuration file {config} must hold a mapping")
    if dataset is not None:
        ds: dict[str, Any] = {"name": dataset} if dataset in _PHANTOMS else {"path": dataset}
        cfg["dataset"] = ds
    if "dataset" not in cfg:
        raise ValueError("no dataset: pass --dataset PATH (or phantom2d / phantom3d) or a --config with 'dataset'")
    if isinstance(cfg["dataset"], str):
        cfg["dataset"] = {"name": cfg["dataset"]} if cfg["dataset"] in _PHANTOMS else {"path": cfg["dataset"]}
    if layout is not None:
        cfg["dataset"]["layout"] = layout
    if dataset_option:
        opts = dict(cfg["dataset"].get("options") or {})
        for item in dataset_option:
            if "=" not in item:
                raise ValueError(f"--dataset-option {item!r} must look like KEY=VALUE")
            k, v = item.split("=", 1)
            opts[k.strip()] = yaml.safe_load(v)
        cfg["dataset"]["options"] = opts
    m = dict(cfg.get("model") or {}) if not isinstance(cfg.get("model"), str) else {"name": cfg["model"]}
    if model is not None:
        m["name"] = model
    if base_filters is not None:
        m["base_filters"] = base_filters
    if deep_supervision is not None:
        m["deep_supervision"] = deep_supervision
    if m:
        cfg["model"] = m
    if patch_size is not None:
        try:
            cfg["patch_size"] = [int(s) for s in patch_size.replace("x", ",").split(",") if s.strip()]
        except ValueError as e:
            raise ValueError(f"--patch-size {patch_size!r} must be integers like 128,128 or 128x128") from e
    for k, v in {"epochs": epochs, "batch_size": batch_size, "scheme": scheme, "seed": seed,
                 "split_seed": split_seed, "device": device, "save_predictions": save_predictions}.items():
        if v is not None:
            cfg[k] = v
    if splits_dir is not None:
        cfg["splits_dir"] = str(splits_dir.resolve())
    return cfg


def _execute(specs: list, out: Path, runner: str, workers: int, ray_address: str | None,
             cpus_per_run: float, gpus_per_run: float, dry_run: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from unifocal.study.plan import prepare_study
    from unifocal.study.runners import is_finished, run_study

    console = Console()
    done = sum(is_finished(s.run_dir) for s in specs)
    console.print(f"[bold]{len(specs)} runs[/bold] in {out} ({done} already finished), runner: {runner}")
    if dry_run:
        for s in specs:
            console.print(f"  {'finished' if is_finished(s.run_dir) else 'to run  '}  {s.name}")
        return
    prepare_study(out, specs)
    outcomes = run_study(specs, runner, workers=workers, ray_address=ray_address, cpus_per_run=cpus_per_run,
                         gpus_per_run=gpus_per_run, progress=runner == "local" and workers == 1,
                         on_done=lambda o: console.print(f"  {o.status:8s} {o.name}  {o.seconds:.1f} s"))
    t = Table("run", "status", "seconds")
    for o in outcomes:
        t.add_row(o.name, o.status, f"{o.seconds:.1f}")
    console.print(t)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        console.print(f"[red]{o.name} failed[/red]: {o.error}")
    console.print(f"Report: unifocal study report {out}")
    if failed:
        raise typer.Exit(1)


_COMMON = {
    "config": typer.Option(None, "--config", help="YAML base configuration (training keys)."),
    "dataset": typer.Option(None, "--dataset", help="Dataset folder, or phantom2d / phantom3d."),
    "layout": typer.Option(None, "--layout", help="Dataset layout (see unifocal data)."),
    "dataset_option": typer.Option([], "--dataset-option", help="Dataset option KEY=VALUE (repeatable)."),
    "folds": typer.Option(5, "--folds", help="Number of cross-validation folds."),
    "fold": typer.Option([], "--fold", help="Run only this fold (repeatable)."),
    "out": typer.Option(..., "--out", "-o", help="Study folder (runs go to OUT/<arm>/fold<k>)."),
    "epochs": typer.Option(None, "--epochs"),
    "batch_size": typer.Option(None, "--batch-size"),
    "patch_size": typer.Option(None, "--patch-size", help="e.g. 128,128 or 64x64x64."),
    "model": typer.Option(None, "--model", help="unet or a MONAI network name."),
    "base_filters": typer.Option(None, "--base-filters"),
    "deep_supervision": typer.Option(None, "--deep-supervision/--no-deep-supervision"),
    "scheme": typer.Option(None, "--scheme", help="sgd | adam | sota"),
    "seed": typer.Option(None, "--seed"),
    "split_seed": typer.Option(None, "--split-seed"),
    "device": typer.Option(None, "--device", help="auto | cpu | cuda"),
    "splits_dir": typer.Option(None, "--splits-dir", help="Folder of the shared splits.json (default OUT)."),
    "runner": typer.Option("local", "--runner", help="local | ray"),
    "workers": typer.Option(1, "--workers", help="Local worker processes (1 = sequential)."),
    "ray_address": typer.Option(None, "--ray-address", help="Existing Ray cluster (e.g. auto); default: local."),
    "cpus_per_run": typer.Option(1.0, "--cpus-per-run", help="Ray CPUs per run."),
    "gpus_per_run": typer.Option(0.0, "--gpus-per-run", help="Ray GPUs per run (1 = one GPU per run)."),
    "dry_run": typer.Option(False, "--dry-run", help="List the runs and exit."),
}


@study_app.command()
def compare(
    out: Path = _COMMON["out"],
    losses: str = typer.Option("paper", "--losses", help="paper, and/or loss names; name:key=value sets "
                               "parameters (e.g. paper,cross_entropy,unified_focal:delta=0.7)."),
    dataset: str | None = _COMMON["dataset"], layout: str | None = _COMMON["layout"],
    dataset_option: list[str] = _COMMON["dataset_option"], config: Path | None = _COMMON["config"],
    folds: int = _COMMON["folds"], fold: list[int] = _COMMON["fold"],
    epochs: int | None = _COMMON["epochs"], batch_size: int | None = _COMMON["batch_size"],
    patch_size: str | None = _COMMON["patch_size"], model: str | None = _COMMON["model"],
    base_filters: int | None = _COMMON["base_filters"], deep_supervision: bool | None = _COMMON["deep_supervision"],
    scheme: str | None = _COMMON["scheme"], seed: int | None = _COMMON["seed"],
    split_seed: int | None = _COMMON["split_seed"], device: str | None = _COMMON["device"],
    save_predictions: bool = typer.Option(True, "--save-predictions/--no-save-predictions",
                                          help="Save validation predictions (for Fig. 3)."),
    splits_dir: Path | None = _COMMON["splits_dir"],
    runner: str = _COMMON["runner"], workers: int = _COMMON["workers"],
    ray_address: str | None = _COMMON["ray_address"], cpus_per_run: float = _COMMON["cpus_per_run"],
    gpus_per_run: float = _COMMON["gpus_per_run"], dry_run: bool = _COMMON["dry_run"],
) -> None:
    """Train every selected loss on the same folds with the paper's settings."""
    from unifocal.study.plan import compare_plan

    try:
        base = _base_config(config, dataset, layout, dataset_option, epochs, batch_size, patch_size, model,
                            base_filters, deep_supervision, scheme, seed, split_seed, device, save_predictions,
                            splits_dir)
        specs = compare_plan(base, out, losses, n_folds=folds, folds=fold or None)
        _execute(specs, out, runner, workers, ray_address, cpus_per_run, gpus_per_run, dry_run)
    except ValueError as e:
        _fail(str(e))


@study_app.command()
def tune(
    out: Path = _COMMON["out"],
    grid: str = typer.Option("table2", "--grid", help="table2 (all three sweeps), delta, gamma, lambda "
                             "(comma-separated), or a user grid 'delta=0.5,0.6;gamma=0:0.5:0.1' "
                             "(λ in Eq. 20's convention: weight of the focal term)."),
    loss: str = typer.Option("unified_focal", "--loss", help="The loss to tune."),
    dataset: str | None = _COMMON["dataset"], layout: str | None = _COMMON["layout"],
    dataset_option: list[str] = _COMMON["dataset_option"], config: Path | None = _COMMON["config"],
    folds: int = _COMMON["folds"], fold: list[int] = _COMMON["fold"],
    epochs: int | None = _COMMON["epochs"], batch_size: int | None = _COMMON["batch_size"],
    patch_size: str | None = _COMMON["patch_size"], model: str | None = _COMMON["model"],
    base_filters: int | None = _COMMON["base_filters"], deep_supervision: bool | None = _COMMON["deep_supervision"],
    scheme: str | None = _COMMON["scheme"], seed: int | None = _COMMON["seed"],
    split_seed: int | None = _COMMON["split_seed"], device: str | None = _COMMON["device"],
    save_predictions: bool = typer.Option(False, "--save-predictions/--no-save-predictions"),
    splits_dir: Path | None = _COMMON["splits_dir"],
    runner: str = _COMMON["runner"], workers: int = _COMMON["workers"],
    ray_address: str | None = _COMMON["ray_address"], cpus_per_run: float = _COMMON["cpus_per_run"],
    gpus_per_run: float = _COMMON["gpus_per_run"], dry_run: bool = _COMMON["dry_run"],
) -> None:
    """Tune the Unified Focal loss on the Table 2 grids (or a user grid)."""
    from unifocal.study.plan import tune_plan

    try:
        base = _base_config(config, dataset, layout, dataset_option, epochs, batch_size, patch_size, model,
                            base_filters, deep_supervision, scheme, seed, split_seed, device, save_predictions,
                            splits_dir)
        specs = tune_plan(base, out, grid, n_folds=folds, folds=fold or None, loss=loss)
        _execute(specs, out, runner, workers, ray_address, cpus_per_run, gpus_per_run, dry_run)
    except ValueError as e:
        _fail(str(e))


@study_app.command()
def report(
    runs_dir: Path = typer.Argument(..., help="Study folder with run folders."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default RUNS_DIR/report)."),
    unit: str | None = typer.Option(None, "--unit", help="CI unit: folds (per-fold means, as the paper; "
                                    "default) or cases."),
    reference: str | None = typer.Option(None, "--reference", help="Arm or loss for the Wilcoxon tests "
                                         "(default: Unified Focal at δ=0.6, γ=0.2, λ=0.5)."),
    include_background: bool | None = typer.Option(None, "--include-background/--no-include-background"),
    figures: bool = typer.Option(True, "--figures/--no-figures"),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Fig. 3 (needs saved predictions)."),
    case: str | None = typer.Option(None, "--case", help="Case of Fig. 3."),
    lambda_axis: str | None = typer.Option(None, "--lambda-axis", help="table2 (1 - λ; default) or eq20 (λ)."),
    fmt: list[str] | None = typer.Option(None, "--format", help="Figure formats (repeatable; default png and "
                                         "pdf)."),
    paper: str | None = typer.Option(None, "--paper", help="Put the table beside the paper's: table3, table4, "
                                     "table5, table2_delta, table2_gamma or table2_lambda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder holding the runs' dataset when its "
                                          "recorded path is not on this machine (default $UNIFOCAL_DATA)."),
) -> None:
    """Tables (Markdown, CSV, LaTeX), Wilcoxon tests and figures from the finished runs only.

    Options not given come from RUNS_DIR/report.yaml when the study folder has one."""
    from unifocal.study.report import make_report

    try:
        rep = make_report(runs_dir, out, unit=unit, reference=reference, include_background=include_background,
                          figures=figures, overlays=overlays, case_id=case, lambda_axis=lambda_axis,
                          formats=tuple(fmt) if fmt else None, paper=paper, data_root=data_root)
    except ValueError as e:
        _fail(str(e))
        return
    typer.echo(rep.table.to_markdown())
    for n in rep.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"{rep.n_runs} finished runs; report: {rep.page_html} / {rep.page_md}")


def register(app: typer.Typer) -> None:
    """Add ``unifocal study compare|tune|report`` to the main app."""
    app.add_typer(study_app, name="study")
