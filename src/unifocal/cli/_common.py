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
import functools
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import typer

from unifocal.training.config import meta, setting_fields, value_types

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


#: The options of ``train`` and ``study compare|tune`` that are not a :class:`TrainConfig` setting: the YAML file
#: and the ``dataset`` / ``model`` entries (the named arguments of ``training.config.build_config``).
BUILD_OPTIONS: dict[str, tuple[Any, Any]] = {
    "config": (Path | None, typer.Option(None, "--config", "-c", help="YAML configuration; flags override it.")),
    "dataset": (str | None, typer.Option(None, "--dataset", help="Dataset folder, or phantom2d / phantom3d.")),
    "layout": (str | None, typer.Option(None, "--layout", help="Dataset layout (default: detected).")),
    "dataset_option": (list[str] | None, typer.Option(
        None, "--dataset-option", help="Dataset option NAME=VALUE (repeatable; NAME=null switches a "
                                       "preprocessing step off).")),
    "model": (str | None, typer.Option(None, "--model", help="unet / unet2d / unet3d or a MONAI network name.")),
    "model_param": (list[str] | None, typer.Option(None, "--model-param",
                                                   help="Model parameter NAME=VALUE (repeatable).")),
    "base_filters": (int | None, typer.Option(None, "--base-filters",
                                              help="U-Net base width (paper 64 / 32; CPU 16).")),
    "deep_supervision": (bool | None, typer.Option(None, "--deep-supervision/--no-deep-supervision",
                                                   help="Deep supervision (default: on with scheme sota).")),
}


def setting_options(study: bool) -> dict[str, tuple[Any, Any]]:
    """The option of every :class:`TrainConfig` setting declared with a flag (``study``: only those that
    ``study compare|tune`` share), generated from the declarations in ``training.config``."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in setting_fields():
        m = meta(f)
        if m["flag"] is None or (study and not m["study"]):
            continue
        kind = m["cli_type"] or value_types(f)[0]
        decl = f"{m['flag']}/--no-{m['flag'][2:]}" if kind is bool else m["flag"]
        out[f.name] = (kind | None, typer.Option(None, decl, help=m["help"]))
    return out


def train_options(study: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the training options: :data:`BUILD_OPTIONS` and one option per setting with a flag.

    The command declares a parameter ``settings``; the options take its place in the signature (and in
    ``--help``), and the command receives their values as the one dict ``settings`` (``None``: not given),
    ready for ``build_config(**settings)``. Typer reads the generated ``__signature__``.
    """
    options = {**BUILD_OPTIONS, **setting_options(study)}

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.name == "settings":
                params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=kind)
                           for name, (kind, opt) in options.items()]
            else:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            settings = {name: kwargs.pop(name) for name in options}
            return func(**kwargs, settings=settings)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
