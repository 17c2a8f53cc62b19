"""Commands of the data stage: ``unifocal data summary PATH``, ``unifocal data duplicates PATH``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from unifocal.cli._common import output_option, quiet_option, user_errors
from unifocal.data import load_dataset
from unifocal.data.duplicates import DEFAULT_THRESHOLD, DUPLICATES_FILE, find_duplicates, save_duplicates
from unifocal.data.splits import SPLITS_FILE
from unifocal.data.summary import format_table, summarize
from unifocal.training.config import parse_key_values
from unifocal.training.lock import refuse_run_folder

data_app = typer.Typer(help="Datasets: layouts, preprocessing, summaries.", no_args_is_help=True,
                       add_completion=False)


@data_app.command("summary")
def summary(
    path: str = typer.Argument(..., help="Dataset folder, or phantom2d / phantom3d."),
    layout: str | None = typer.Option(None, "--layout",
                                      help="pairs, bus2017, busi, msd, brats20, kits19 (default: detect)."),
    limit: int | None = typer.Option(None, "--limit", help="Summarise only the first N cases."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with per-case fractions)."),
    quiet: bool = quiet_option(),
) -> None:
    """Cases, image sizes, spacings and per-class foreground/background percentages (paper Table 1)."""
    with user_errors():
        try:
            ds = load_dataset(path, layout=layout, cache=False)
        except TypeError as e:  # an option the layout does not take
            raise ValueError(str(e)) from e
        ids = ds.ids[:limit] if limit else None
        s = summarize(ds, ids, progress=not quiet)
    if as_json:
        typer.echo(json.dumps(s, indent=1))
    else:
        typer.echo(format_table(s))


@data_app.command("duplicates")
def duplicates(
    path: str = typer.Argument(..., help="Dataset folder, or phantom2d / phantom3d."),
    layout: str | None = typer.Option(None, "--layout", help="Dataset layout (default: detect)."),
    dataset_option: list[str] | None = typer.Option(None, "--dataset-option",
                                                    help="Dataset option NAME=VALUE (repeatable), e.g. "
                                                         "'include=^(benign|malignant)_'."),
    threshold: float | None = typer.Option(None, "--threshold", help="Thumbnail correlation above which two "
                                           "cases are one scan (default 0.95; docs/data.md)."),
    output: Path | None = output_option(required=False, help="Folder to write duplicates.json into: the study "
                                        "folder (or --splits-dir) whose splits are still to be made."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON (groups and every pair)."),
    quiet: bool = quiet_option(),
) -> None:
    """Near-duplicate cases (the same scan at another crop or resolution), grouped so that splits keep a
    group in one fold. With -o, writes FOLDER/duplicates.json, which the split step reads."""
    with user_errors():
        options = parse_key_values(dataset_option, "--dataset-option")
        if output is not None:
            refuse_run_folder(output, "duplicates folder (-o)")
        if output is not None and (output / SPLITS_FILE).is_file():
            raise ValueError(f"{output / SPLITS_FILE} exists: its folds are already made; write the duplicates "
                             "to a new study folder (a split that cuts a group is refused when the file is read)")
        try:
            ds = load_dataset(path, layout=layout, cache=False, **options)
        except TypeError as e:  # an option the layout does not take
            raise ValueError(str(e)) from e
        found = find_duplicates(ds, DEFAULT_THRESHOLD if threshold is None else threshold, progress=not quiet)
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            save_duplicates(output / DUPLICATES_FILE, found)
    if as_json:
        typer.echo(json.dumps(found, indent=1))
        return
    n_cases = sum(len(g) for g in found["groups"])
    typer.echo(f"{found['cases']} cases: {len(found['pairs'])} pairs with thumbnail correlation > "
               f"{found['threshold']:g}, in {len(found['groups'])} groups holding {n_cases} cases "
               f"(largest {max((len(g) for g in found['groups']), default=0)})")
    for g in found["groups"][:20]:
        typer.echo("  " + ", ".join(g))
    if len(found["groups"]) > 20:
        typer.echo(f"  ... {len(found['groups']) - 20} more (--json lists them all)")
    if output is not None:
        typer.echo(f"written: {output / DUPLICATES_FILE}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-app to the main app."""
    app.add_typer(data_app, name="data")
