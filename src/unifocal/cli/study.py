"""``unifocal study``: ``compare`` (the paper's loss comparison), ``tune`` (Table 2 grids), ``converge``
(continue the runs that did not converge), ``report``.

The commands reach the study stage through the package :mod:`unifocal.study`, which loads its modules
(torch, matplotlib, SciPy) on first use, not with ``unifocal --help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from unifocal import study as stage
from unifocal.cli._common import EXIT_FAILED, output_option, quiet_option, train_options, user_errors
from unifocal.training.config import build_config, resolve_config

study_app = typer.Typer(help="Reproduce the paper's study: compare losses, tune the Unified Focal loss, "
                             "report tables and figures.", no_args_is_help=True)


def _base_config(config: Path | None, *, splits_dir: Path | None = None, **settings: Any) -> dict[str, Any]:
    """The configuration shared by the runs of a study (the one builder of ``unifocal train``), checked
    before anything is written."""
    cfg = build_config(config, splits_dir=splits_dir, **settings)
    if "dataset" not in cfg:
        raise ValueError("no dataset: pass --dataset PATH (or phantom2d / phantom3d) or a --config with 'dataset'")
    check = {k: v for k, v in cfg.items() if k not in ("loss", "fold")}
    resolve_config(check)  # unknown keys, bad values, a dataset folder that does not exist
    return cfg


def _execute(specs: list, out: Path, runner: str, workers: int, ray_address: str | None,
             cpus_per_run: float, gpus_per_run: float, dry_run: bool, quiet: bool = False) -> None:
    console = Console()
    done = sum(stage.is_finished(s.run_dir, s.config) for s in specs)
    console.print(f"[bold]{len(specs)} runs[/bold] in {out} ({done} already finished), runner: {runner}")
    if dry_run:
        for s in specs:
            console.print(f"  {'finished' if stage.is_finished(s.run_dir, s.config) else 'to run  '}  {s.name}")
        return
    stage.prepare_study(out, specs)
    if _run(specs, out, runner, workers, ray_address, cpus_per_run, gpus_per_run, quiet, console):
        raise typer.Exit(EXIT_FAILED)


def _run(specs: list, out: Path, runner: str, workers: int, ray_address: str | None, cpus_per_run: float,
         gpus_per_run: float, quiet: bool, console: Console) -> bool:
    """Run ``specs``, print each outcome, a table and the report command; ``True`` when a run failed."""
    outcomes = stage.run_study(specs, runner, workers=workers, ray_address=ray_address,
                               cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                               progress=not quiet and runner == "local" and workers == 1,
                               on_done=lambda o: console.print(f"  {o.status:8s} {o.name}  {o.seconds:.1f} s"))
    t = Table("run", "status", "seconds")
    for o in outcomes:
        t.add_row(o.name, o.status, f"{o.seconds:.1f}")
    console.print(t)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        console.print(f"[red]{o.name} failed[/red]: {o.error}")
    console.print(f"Report: unifocal study report {out}")
    return bool(failed)


_COMMON = {
    "folds": typer.Option(5, "--folds", help="Number of cross-validation folds."),
    "fold": typer.Option([], "--fold", help="Run only this fold (repeatable)."),
    "output": output_option(help="Study folder (runs go to OUTPUT/<arm>/fold<k>)."),
    "splits_dir": typer.Option(None, "--splits-dir", help="Folder of the shared splits.json (default OUTPUT)."),
    "runner": typer.Option("local", "--runner", help="local | ray"),
    "workers": typer.Option(1, "--workers", help="Local worker processes (1 = sequential)."),
    "ray_address": typer.Option(None, "--ray-address", help="Existing Ray cluster (e.g. auto); default: local."),
    "cpus_per_run": typer.Option(1.0, "--cpus-per-run", help="Ray CPUs per run."),
    "gpus_per_run": typer.Option(0.0, "--gpus-per-run", help="Ray GPUs per run (1 = one GPU per run)."),
    "dry_run": typer.Option(False, "--dry-run", help="List the runs and exit."),
    "seeds": typer.Option(None, "--seeds", help="Training seeds, the replicates of every loss and fold, e.g. "
                          "0,1,2 or 0:3 (default: --seed); runs go to <arm>/fold<k>-seed<s> (seed 0: fold<k>)."),
}


def _plan_and_run(kind: str, selection: str, loss: str, output: Path, folds: int, fold: list[int],
                  save_predictions: bool, splits_dir: Path | None, runner: str, workers: int,
                  ray_address: str | None, cpus_per_run: float, gpus_per_run: float, dry_run: bool, quiet: bool,
                  seeds: str | None, settings: dict[str, Any]) -> None:
    settings = dict(settings)
    config = settings.pop("config")
    with user_errors():
        base = _base_config(config, splits_dir=splits_dir, save_predictions=save_predictions, **settings)
        seed_list = stage.parse_seeds(seeds)
        if kind == "compare":
            specs = stage.compare_plan(base, output, selection, n_folds=folds, folds=fold or None, seeds=seed_list)
        else:
            specs = stage.tune_plan(base, output, selection, n_folds=folds, folds=fold or None, loss=loss,
                                    seeds=seed_list)
        _execute(specs, output, runner, workers, ray_address, cpus_per_run, gpus_per_run, dry_run, quiet)


@study_app.command()
@train_options(study=True)
def compare(
    output: Path = _COMMON["output"],
    losses: str = typer.Option("paper", "--losses", help="paper, and/or loss names; name:key=value sets "
                               "parameters (e.g. paper,cross_entropy,unified_focal:delta=0.7)."),
    folds: int = _COMMON["folds"], fold: list[int] = _COMMON["fold"],
    settings: dict[str, Any] | None = None,
    save_predictions: bool = typer.Option(True, "--save-predictions/--no-save-predictions",
                                          help="Save validation predictions (for Fig. 3)."),
    splits_dir: Path | None = _COMMON["splits_dir"],
    runner: str = _COMMON["runner"], workers: int = _COMMON["workers"],
    ray_address: str | None = _COMMON["ray_address"], cpus_per_run: float = _COMMON["cpus_per_run"],
    gpus_per_run: float = _COMMON["gpus_per_run"], dry_run: bool = _COMMON["dry_run"],
    seeds: str | None = _COMMON["seeds"], quiet: bool = quiet_option(),
) -> None:
    """Train every selected loss on the same folds with the paper's settings."""
    _plan_and_run("compare", losses, "", output, folds, fold, save_predictions, splits_dir, runner, workers,
                  ray_address, cpus_per_run, gpus_per_run, dry_run, quiet, seeds, settings or {})


@study_app.command()
@train_options(study=True)
def tune(
    output: Path = _COMMON["output"],
    grid: str = typer.Option("table2", "--grid", help="table2 (all three sweeps), delta, gamma, lambda "
                             "(comma-separated), or a user grid 'delta=0.5,0.6;gamma=0:0.5:0.1' "
                             "(λ in Eq. 20's convention: weight of the focal term)."),
    loss: str = typer.Option("unified_focal", "--loss", help="The loss to tune."),
    folds: int = _COMMON["folds"], fold: list[int] = _COMMON["fold"],
    settings: dict[str, Any] | None = None,
    save_predictions: bool = typer.Option(False, "--save-predictions/--no-save-predictions"),
    splits_dir: Path | None = _COMMON["splits_dir"],
    runner: str = _COMMON["runner"], workers: int = _COMMON["workers"],
    ray_address: str | None = _COMMON["ray_address"], cpus_per_run: float = _COMMON["cpus_per_run"],
    gpus_per_run: float = _COMMON["gpus_per_run"], dry_run: bool = _COMMON["dry_run"],
    seeds: str | None = _COMMON["seeds"], quiet: bool = quiet_option(),
) -> None:
    """Tune the Unified Focal loss on the Table 2 grids (or a user grid)."""
    _plan_and_run("tune", grid, loss, output, folds, fold, save_predictions, splits_dir, runner, workers,
                  ray_address, cpus_per_run, gpus_per_run, dry_run, quiet, seeds, settings or {})


@study_app.command()
def converge(
    runs_dir: Path = typer.Argument(..., help="Study folder with run folders."),
    tolerance: float = typer.Option(0.02, "--tolerance", help="Convergence criterion: the largest last-quarter "
                                    "gain of the best validation DSC that counts as converged."),
    factor: float = typer.Option(2.0, "--factor", help="Multiply the limits (epochs under the plateau schedule, "
                                 "patience, stop_after) of every unconverged run by this."),
    runner: str = _COMMON["runner"], workers: int = _COMMON["workers"],
    ray_address: str | None = _COMMON["ray_address"], cpus_per_run: float = _COMMON["cpus_per_run"],
    gpus_per_run: float = _COMMON["gpus_per_run"], dry_run: bool = _COMMON["dry_run"],
    quiet: bool = quiet_option(),
) -> None:
    """Continue the runs that did not converge, from their last epoch, under larger limits.

    The runs are those the report's convergence table flags (last-quarter gain above --tolerance); each
    goes on exactly as if it had been started with the larger limits. See docs/study.md, "Convergence"."""
    console = Console()
    with user_errors():
        plan, notes = stage.converge_plan(runs_dir, tolerance=tolerance, factor=factor)
    for n in notes:
        console.print(f"[yellow]not continued[/yellow] {n}")
    if not plan:
        console.print(f"No run of {runs_dir} to continue (tolerance {tolerance:g}).")
        if notes:
            raise typer.Exit(EXIT_FAILED)
        return
    for c in plan:
        console.print(f"  continue {c.describe()}")
    if dry_run:
        return
    with user_errors():
        failed = _run([c.spec for c in plan], runs_dir, runner, workers, ray_address, cpus_per_run, gpus_per_run,
                      quiet, console)
    if failed or notes:
        raise typer.Exit(EXIT_FAILED)


@study_app.command()
def report(
    runs_dir: Path = typer.Argument(..., help="Study folder with run folders."),
    output: Path | None = output_option(required=False, help="Report folder (default RUNS_DIR/report)."),
    unit: str | None = typer.Option(None, "--unit", help="CI unit: folds (per-fold means, as the paper; "
                                    "default) or cases."),
    reference: str | None = typer.Option(None, "--reference", help="Arm or loss for the Wilcoxon tests "
                                         "(default: Unified Focal at δ=0.6, γ=0.2, λ=0.5)."),
    include_background: bool | None = typer.Option(None, "--include-background/--no-include-background"),
    figures: bool = typer.Option(True, "--figures/--no-figures"),
    overlays: bool | None = typer.Option(None, "--overlays/--no-overlays", help="Fig. 3 (needs saved predictions; "
                                         "default on)."),
    case: str | None = typer.Option(None, "--case", help="Case of Fig. 3."),
    lambda_axis: str | None = typer.Option(None, "--lambda-axis", help="table2 (1 - λ; default) or eq20 (λ)."),
    fmt: list[str] | None = typer.Option(None, "--format", help="Figure formats (repeatable; default png and "
                                         "pdf)."),
    paper: str | None = typer.Option(None, "--paper", help="Put the table beside the paper's: table3, table4, "
                                     "table5, table2_delta, table2_gamma or table2_lambda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder holding the runs' dataset when its "
                                          "recorded path is not on this machine (default $UNIFOCAL_DATA)."),
    complete_folds: bool | None = typer.Option(None, "--complete-folds/--all-folds", help="Compare the losses "
                                               "on the folds every loss has finished (default: all folds)."),
    duplicates: Path | None = typer.Option(None, "--duplicates", help="A duplicates.json (unifocal data "
                                           "duplicates): leave out every validation case with a near-duplicate "
                                           "on its run's training side (leak-free re-analysis)."),
) -> None:
    """Tables (Markdown, CSV, LaTeX), Wilcoxon tests and figures from the finished runs only.

    Options not given come from RUNS_DIR/report.yaml when the study folder has one."""
    with user_errors():
        rep = stage.make_report(runs_dir, output, unit=unit, reference=reference,
                                include_background=include_background, figures=figures, overlays=overlays,
                                case_id=case, lambda_axis=lambda_axis, formats=tuple(fmt) if fmt else None,
                                paper=paper, data_root=data_root, complete_folds=complete_folds,
                                duplicates=duplicates)
    typer.echo(rep.table.to_markdown())
    for n in rep.notes:
        typer.echo(f"note: {n}")
    typer.echo(f"{rep.n_runs} finished runs; report: {rep.page_html} / {rep.page_md}")


def register(app: typer.Typer) -> None:
    """Add ``unifocal study compare|tune|report`` to the main app."""
    app.add_typer(study_app, name="study")
