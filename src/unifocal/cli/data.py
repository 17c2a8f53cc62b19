"""Commands of the data stage: ``unifocal data summary PATH [--layout ...]``."""

from __future__ import annotations

import json

import typer

from unifocal.cli._common import quiet_option, user_errors

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
    from unifocal.data import load_dataset
    from unifocal.data.summary import format_table, summarize

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


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-app to the main app."""
    app.add_typer(data_app, name="data")
