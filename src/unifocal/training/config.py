"""The configuration of one training run: defaults, YAML / flag merging, validation before training.

Nested keys (YAML; command-line flags override, see ``docs/training.md``)::

    dataset: {name: phantom2d}            # or {path: /data/BUSI, layout: pairs2d, options: {...}}
    loss: {name: unified_focal, params: {delta: 0.6, gamma: 0.2}}
    model: {name: unet, base_filters: 16, deep_supervision: null, norm: null}

Every other key is one field of :class:`TrainConfig`, declared once with :func:`setting`: its type
(the annotation), default, valid range, help text, command-line flag and whether the configuration
guard of a run folder compares it. The YAML type and range checks of :func:`resolve_config`, the
options of ``unifocal train`` and ``unifocal study compare|tune`` (``unifocal.cli._common``), the guard's
:data:`NOT_GUARDED` and the configuration table of ``docs/training.md`` (:func:`settings_table`) are
generated from those declarations: a new setting is one ``setting(...)`` line here plus the code that
uses it.

Everything that can be checked without training is checked by :func:`resolve_config`, which
raises ``ValueError`` with a message saying what to change.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unifocal.data import load_dataset
from unifocal.data.phantom import PHANTOM_DEFAULTS

__all__ = ["ALL_FOLDS", "NOT_GUARDED", "SCHEMES", "TrainConfig", "build_config", "load_config_file", "not_guarded", "open_dataset",
           "parse_key_values", "parse_size", "resolve_config", "schedule_uses_epochs", "setting", "setting_fields",
           "settings_table"]

SCHEMES = ("sgd", "adam", "sota")
#: The built-in phantom datasets (names accepted instead of a path).
PHANTOMS: tuple[str, ...] = tuple(PHANTOM_DEFAULTS)
#: The ``fold`` value that trains on every case (no held-out fold), as nnU-Net's ``--fold all``.
ALL_FOLDS = "all"


def setting(default: Any = None, *, help: str, flag: str | None = None, ge: float | None = None,
            gt: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
            guarded: bool = True, study: bool = True, cli_type: type | None = None) -> Any:
    """Declare one :class:`TrainConfig` field (a ``dataclasses.field`` whose metadata says everything else
    needs to know about it).

    Args:
        default: The default value (``None``: filled in from the scheme or the data).
        help: One line: the meaning, shown by ``--help`` and in the table of ``docs/training.md``.
        flag: The command-line flag (``"--lr"``); a boolean gets ``--x/--no-x``. ``None``: YAML only.
        ge, gt, lt: The valid range (``value >= ge``, ``> gt``, ``< lt``), checked by :func:`resolve_config`.
        choices: The allowed strings.
        guarded: Whether the configuration guard of a run folder (and of a study folder) compares the
            key; ``False`` for keys that change only how a run executes or where it stops.
        study: Whether ``unifocal study compare|tune`` share the flag (``False``: ``train`` only).
        cli_type: The flag's type when it differs from the field's (a string parsed by the builder).
    """
    meta = {"help": help, "flag": flag, "ge": ge, "gt": gt, "lt": lt, "choices": choices, "guarded": guarded,
            "study": study, "cli_type": cli_type}
    return field(default=default, metadata={"setting": meta})


@dataclass
class TrainConfig:
    """Fully resolved configuration of one run: ``dataset``, ``loss``, ``model`` (mappings, see the
    module docstring) and one :func:`setting` per other key."""

    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "phantom2d"})
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "unified_focal", "params": {}})
    model: dict[str, Any] = field(default_factory=lambda: {"name": "unet"})
    scheme: str = setting("sgd", help="Training scheme: sgd | adam | sota.", flag="--scheme", choices=SCHEMES)
    epochs: int | None = setting(None, help="Epochs (scheme default 100 / 1000).", flag="--epochs", ge=1)
    batch_size: int | None = setting(None, help="Batch size (paper: 32 for 2D, 2 for 3D).", flag="--batch-size",
                                     ge=1)
    patch_size: list[int] | None = setting(  # noqa: RUF009 (a field declaration, not a default value)
        None, help="Training patch, e.g. 128,128 or 64x64x64 (default: whole image in 2D; 3D: the dataset's, "
        "else 96^3 capped by the largest of the first 20 volumes).", flag="--patch-size", cli_type=str)
    fold: int | str = setting(0, help="Cross-validation fold 0..FOLDS-1, or 'all': train the final model on "
                              "every case.", flag="--fold", study=False, cli_type=str)
    n_folds: int = setting(5, help="Number of cross-validation folds.", flag="--folds", ge=2, study=False)
    split_seed: int = setting(0, help="Seed of the cross-validation folds.", flag="--split-seed", ge=0, lt=2**63)
    group_duplicates: bool = setting(True, help="Keep near-duplicate cases in one fold when the split is made "
                                     "(docs/data.md).", flag="--group-duplicates")
    seed: int = setting(0, help="Random seed.", flag="--seed", ge=0, lt=2**63)
    device: str = setting("auto", help="auto | cpu | cuda (or cuda:N).", flag="--device", guarded=False)
    amp: bool = setting(False, help="Mixed precision (float16 + GradScaler on CUDA, bfloat16 on CPU; float32 with a notice on a CPU without native bfloat16).",
                        flag="--amp", guarded=False)
    num_workers: int = setting(0, help="Data-loader worker processes.", ge=0, guarded=False)
    augment: bool = setting(True, help="Data augmentation of the training patches.")
    overlap: float = setting(0.5, help="Sliding-window overlap in [0, 1).", flag="--overlap", ge=0, lt=1)
    lr: float | None = setting(None, help="Learning rate (scheme default: 0.01 sgd / sota, 3e-4 adam).",
                               flag="--lr", gt=0)
    momentum: float | None = setting(None, help="sgd, sota: Nesterov momentum (default the paper's 0.99).",
                                     ge=0, lt=1)
    adam_schedule: str = setting("cosine", help="adam: cosine | plateau learning-rate schedule.",
                                 choices=("cosine", "plateau"))
    patience: int | None = setting(None, help="Early stopping: epochs without a lower validation loss (default: "
                                   "off, train every epoch).", flag="--patience", ge=1, guarded=False)
    lr_patience: int | None = setting(None, help="Plateau schedule (adam, adam_schedule plateau): epochs without "
                                      "improvement before lr x 0.1 (default 10).", flag="--lr-patience", ge=1)
    stop_after: int | None = setting(None, help="Train at most this many epochs of the schedule (which still runs "
                                     "over epochs).", ge=1, guarded=False)
    diagnostics: bool = setting(False, help="Per-epoch gradient norms per block and predicted class balance "
                                "(diagnostics.csv).")
    save_predictions: bool = setting(False, help="Save the validation predictions.", guarded=False)
    splits_dir: str | None = setting(None, help="Folder of splits.json (default: the run folder).")
    channels_last: bool = setting(False, help="Channels-last memory format (faster 2D convolutions on CPU).")
    samples_per_epoch: int | None = setting(None, help="Training patches per epoch (default: one per case).",
                                            flag="--samples-per-epoch", ge=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML-serialisable)."""
        return copy.deepcopy(asdict(self))


def setting_fields() -> list[dataclasses.Field]:
    """The :func:`setting` fields of :class:`TrainConfig`, in order (``dataset``, ``loss`` and ``model`` are
    mappings with checks of their own)."""
    return [f for f in dataclasses.fields(TrainConfig) if "setting" in f.metadata]


def meta(f: dataclasses.Field) -> dict[str, Any]:
    """A setting's declaration (the keyword arguments of :func:`setting`)."""
    return f.metadata["setting"]


def value_types(f: dataclasses.Field) -> tuple[type, ...]:
    """The types a YAML value of setting ``f`` may have (from its annotation; a float also takes an int,
    ``None`` is always allowed)."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    out: list[type] = []
    for a in args:
        if a is type(None):
            continue
        a = typing.get_origin(a) or a
        out += [a, int] if a is float else [a]
    return tuple(out)


def not_guarded() -> tuple[str, ...]:
    """Keys that do not change what a run computes, so the configuration guards of a run folder and of a
    study folder leave them out: how it executes, and the limits that decide only where it stops."""
    return tuple(f.name for f in setting_fields() if not meta(f)["guarded"])


NOT_GUARDED = not_guarded()


def schedule_uses_epochs(config: dict[str, Any] | TrainConfig) -> bool:
    """Whether ``epochs`` shapes a run's course, not only where it stops: the learning-rate schedule of
    every scheme reads it (polynomial decay, cosine annealing) except ``adam`` with ``adam_schedule:
    plateau``, which follows the validation loss. Where it does not, ``epochs`` is only the maximum, and a
    run ended by it continues under a larger one (:func:`unifocal.training.loop.continues_finished_run`)."""
    d = config.to_dict() if isinstance(config, TrainConfig) else config
    return not (d.get("scheme") == "adam" and d.get("adam_schedule") == "plateau")


def _bound(x: float) -> str:
    return "2**63" if x == 2**63 else f"{x:g}"


def range_text(f: dataclasses.Field) -> str:
    """A setting's valid range in words (``>= 1``, ``[0, 1)``, ``sgd | adam``), ``""`` when any value goes."""
    m = meta(f)
    if m["choices"]:
        return ", ".join(m["choices"])
    if m["ge"] is not None and m["lt"] is not None:
        return f"[{_bound(m['ge'])}, {_bound(m['lt'])})"
    if m["ge"] is not None:
        return f">= {_bound(m['ge'])}"
    if m["gt"] is not None:
        return f"> {_bound(m['gt'])}"
    return ""


def _check_type(f: dataclasses.Field, v: Any) -> None:
    """The declared type of one setting (``None``: not given, always allowed)."""
    allowed = value_types(f)
    if v is not None and ((isinstance(v, bool) and bool not in allowed) or not isinstance(v, allowed)):
        want = " or ".join(t.__name__ for t in allowed)
        raise ValueError(f"{f.name} must be {want}, got {v!r} ({type(v).__name__})")


def _check_range(f: dataclasses.Field, v: Any) -> None:
    """The declared range or choices of one setting of the right type (``None``: not given)."""
    if v is None:
        return
    m, k = meta(f), f.name
    allowed = value_types(f)
    fix = f"; fix {m['flag']} / {k}" if m["flag"] else ""
    if m["choices"] and v not in m["choices"]:
        raise ValueError(f"{k} must be one of {', '.join(m['choices'])}, got {v!r}")
    if isinstance(v, str):
        return
    if m["ge"] is not None and m["lt"] is not None and not m["ge"] <= v < m["lt"]:
        what = "an integer in" if allowed == (int,) else "lie in"
        word = "be " if what.startswith("an") else ""
        raise ValueError(f"{k} must {word}{what} {range_text(f)}, got {v}{fix}")
    if m["ge"] is not None and m["lt"] is None and not v >= m["ge"]:
        raise ValueError(f"{k} must be >= {_bound(m['ge'])}, got {v}{fix}")
    if m["gt"] is not None and not v > m["gt"]:
        raise ValueError(f"{k} must be > {_bound(m['gt'])}, got {v}{fix}")


def _default_text(f: dataclasses.Field) -> str:
    return "null" if f.default is None else yaml.safe_dump(f.default, default_flow_style=True).strip().removesuffix(
        "\n...").strip()


def settings_table() -> str:
    """The Markdown table of every setting (key, default, valid range, flag, guarded, meaning): the
    configuration table of ``docs/training.md`` (``python scripts/update_settings_table.py`` rewrites it)."""
    rows = ["| key | default | valid | flag | guarded | meaning |", "|---|---|---|---|---|---|"]
    for f in setting_fields():
        m = meta(f)
        flag = m["flag"]
        if flag and value_types(f) == (bool,):
            flag = f"--[no-]{flag[2:]}"
        rows.append(f"| `{f.name}` | `{_default_text(f)}` | {range_text(f)} | {f'`{flag}`' if flag else ''} | "
                    f"{'yes' if m['guarded'] else 'no'} | {m['help'].replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def _fail_unknown(kind: str, key: str, allowed: list[str]) -> None:
    close = difflib.get_close_matches(key, allowed, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown {kind} {key!r}.{hint} Allowed: {', '.join(allowed)}")


def read_yaml_mapping(path: str | Path, what: str = "configuration file") -> dict[str, Any]:
    """A YAML file holding a mapping, read with ``yaml.safe_load``; every failure is one ``ValueError``.

    A Python tag (``!!python/object/apply:...``: ``safe_load`` never runs it), a document nested
    thousands of levels deep, an unreadable or non-UTF-8 file or a document that is not a mapping is
    refused naming the file. An empty file is an empty mapping.

    Raises:
        ValueError: naming ``path``.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.constructor.ConstructorError as e:
        m = e.problem_mark
        where = f", line {m.line + 1}, column {m.column + 1}" if m is not None else ""
        raise ValueError(f"{what} {p} holds a tag that is not plain YAML data ({e.problem}{where}); such tags "
                         f"are never loaded: write plain keys and values") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{what} {p} is not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ValueError(f"{what} {p} is nested too deeply to be a configuration; write plain keys and "
                         f"values") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {p} is not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {p} must hold a mapping of keys, got {type(data).__name__}")
    return data


def _relative_to(path: Any, base: Path) -> Any:
    """``path`` resolved against ``base`` when it is a relative path string (else unchanged)."""
    if not isinstance(path, str) or not path or path in PHANTOMS:
        return path
    p = Path(path).expanduser()
    return path if p.is_absolute() else os.path.normpath(os.path.join(os.path.abspath(base), p))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file into a dict (no validation).

    Relative paths in it (``dataset.path``, ``splits_dir``) are resolved against the file's own
    folder, not the working directory: the file means the same dataset wherever it is used from.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"configuration file {p} does not exist; pass an existing YAML file to --config")
    data = read_yaml_mapping(p)
    base = p.parent
    ds = data.get("dataset")
    if isinstance(ds, str) and ds not in PHANTOMS:
        data["dataset"] = {"path": _relative_to(ds, base)}
    elif isinstance(ds, dict) and isinstance(ds.get("path"), str):
        data["dataset"] = {**ds, "path": _relative_to(ds["path"], base)}
    if isinstance(data.get("splits_dir"), str):
        data["splits_dir"] = _relative_to(data["splits_dir"], base)
    return data


def parse_key_values(items: list[str] | None, what: str = "--loss-param") -> dict[str, Any]:
    """``["delta=0.6", "gamma=0.2"]`` -> ``{"delta": 0.6, "gamma": 0.2}``.

    Values are parsed as YAML (``0.6``, ``[128, 128]``, ``true``); ``null``, ``~`` and ``None`` give
    ``None``, which is kept (it switches a preprocessing step off).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} {item!r} must look like NAME=VALUE (e.g. {what} delta=0.6)")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        if not k:
            raise ValueError(f"{what} {item!r} has an empty name; write NAME=VALUE")
        if v.strip() == "None":  # Python's spelling of YAML's null: switches a step off
            out[k] = None
            continue
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError:
            out[k] = v
        except RecursionError:
            raise ValueError(f"{what} {k}=... is nested too deeply; give a plain value") from None
    return out


def parse_size(value: str | int | list[int] | None, what: str = "--patch-size") -> list[int] | None:
    """``"128,128"``, ``"128x128"``, ``96`` or ``[96, 96]`` -> a list of integers (``None`` stays ``None``).

    Raises:
        ValueError: The value is not one or more positive integers.
    """
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    parts = [s.strip() for s in str(value).lower().replace("x", ",").split(",")]
    sizes = [int(s) for s in parts if s.isdigit()]
    if not sizes or len(sizes) != len(parts) or any(s < 1 for s in sizes):
        raise ValueError(f"{what} {value!r} must be positive integers like 128,128 or 64x64x64")
    return sizes


def parse_fold(value: str | int | None) -> int | str | None:
    """A fold from the command line: an integer, or ``"all"`` (train on every case)."""
    if value is None or isinstance(value, int):
        return value
    v = str(value).strip().lower()
    if v == ALL_FOLDS:
        return ALL_FOLDS
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"--fold {value!r} must be a fold number (0, 1, ...) or {ALL_FOLDS!r}") from None


def dataset_entry(value: Any) -> dict[str, Any]:
    """A ``dataset`` entry as a mapping: a phantom name becomes ``{name}``, anything else ``{path}``."""
    if value is None:
        return {}
    if isinstance(value, (str, Path)):
        return {"name": str(value)} if str(value) in PHANTOMS else {"path": str(value)}
    if not isinstance(value, dict):
        raise ValueError(f"dataset must be a name ({', '.join(PHANTOMS)}), a path, or a mapping "
                         f"{{path|name, layout, options}}; got {value!r}")
    return copy.deepcopy(value)


def build_config(config_file: str | Path | None = None, *, dataset: str | None = None, layout: str | None = None,
                 dataset_option: list[str] | None = None, loss: str | None = None,
                 loss_param: list[str] | None = None, model: str | None = None,
                 model_param: list[str] | None = None, base_filters: int | None = None,
                 deep_supervision: bool | None = None, **keys: Any) -> dict[str, Any]:
    """Merge a YAML file with command-line settings into one configuration dict (the settings win).

    The single builder behind ``unifocal train``, ``unifocal evaluate`` and ``unifocal study``.
    Every setting given arrives: ``None`` means "not given" for the arguments, but a ``None`` *value*
    inside ``NAME=VALUE`` (``resize=null``) is kept, since it switches a preprocessing step off.

    Args:
        config_file: YAML file of configuration keys (the module docstring lists them).
        dataset: Dataset folder or phantom name; replaces the file's ``path`` / ``name`` only, its
            ``layout`` and ``options`` are kept.
        layout: Dataset layout.
        dataset_option: ``NAME=VALUE`` items added to ``dataset.options``.
        loss: Loss name; a name other than the file's drops the file's loss parameters.
        loss_param: ``NAME=VALUE`` items added to ``loss.params``.
        model: Model name.
        model_param: ``NAME=VALUE`` items added to ``model``.
        base_filters: ``model.base_filters``.
        deep_supervision: ``model.deep_supervision``.
        **keys: Any other top-level key (``epochs``, ``patch_size``, ``fold``...), ``None``: not given.

    Returns:
        The unvalidated configuration (pass it to :func:`resolve_config`).

    Raises:
        ValueError: Unreadable file, malformed ``NAME=VALUE``, patch size or fold, unknown key.
    """
    cfg: dict[str, Any] = load_config_file(config_file) if config_file is not None else {}
    if dataset is not None or layout is not None or dataset_option:
        ds = dataset_entry(cfg.get("dataset"))
        if dataset is not None:
            ds.pop("name", None)
            ds.pop("path", None)
            ds.update(dataset_entry(dataset))
        if not ds.get("name") and not ds.get("path"):
            raise ValueError("--layout / --dataset-option need a dataset: pass --dataset PATH (or "
                             f"{' / '.join(PHANTOMS)}) or a --config with 'dataset'")
        if layout is not None:
            ds["layout"] = layout
        if dataset_option:
            opts = ds.get("options") or {}
            if not isinstance(opts, dict):
                raise ValueError(f"dataset.options must be a mapping, got {opts!r}")
            ds["options"] = {**opts, **parse_key_values(dataset_option, "--dataset-option")}
        cfg["dataset"] = ds
    if loss is not None or loss_param:
        lc = cfg.get("loss")
        lc = {"name": lc} if isinstance(lc, str) else dict(lc or {"name": "unified_focal"})
        if loss is not None and loss != lc.get("name"):
            lc = {"name": loss, "params": {}}
        lc["params"] = {**(lc.get("params") or {}), **parse_key_values(loss_param, "--loss-param")}
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
    allowed = [k for k in TrainConfig.__dataclass_fields__ if k not in ("dataset", "loss", "model")]
    for k, v in keys.items():
        if k not in allowed:
            _fail_unknown("configuration key", k, allowed)
        if v is None:
            continue
        if k == "patch_size":
            v = parse_size(v)
        elif k == "fold":
            v = parse_fold(v)
        elif k == "splits_dir":
            v = str(Path(v).resolve())
        cfg[k] = v
    return cfg


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``override`` wins; ``None`` values in ``override`` do not override."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if v is None:
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _normalise_dataset(ds: Any) -> dict[str, Any]:
    ds = dataset_entry(ds)
    for k in ds:
        if k not in ("name", "path", "layout", "options"):
            _fail_unknown("dataset key", k, ["name", "path", "layout", "options"])
    ds = dict(ds)
    name, path = ds.get("name"), ds.get("path")
    if name is not None and path is not None:
        raise ValueError("dataset has both 'name' and 'path'; keep one")
    if name is None and path is None:
        raise ValueError(f"dataset needs 'path' (a folder) or 'name' ({', '.join(PHANTOMS)})")
    if name is not None and name not in PHANTOMS:
        if Path(str(name)).exists():
            ds["path"], ds["name"] = str(name), None
        else:
            raise ValueError(f"unknown dataset name {name!r}; use {', '.join(PHANTOMS)} or give a 'path'")
    if ds.get("path") is not None:
        p = Path(str(ds["path"])).expanduser()
        if not p.exists():
            raise ValueError(f"dataset path {p} does not exist; fix --dataset / dataset.path "
                             f"(or use the built-in phantom2d)")
        ds["path"] = os.path.abspath(p)  # resolved once, against the working directory it was given in
    ds.setdefault("layout", None)
    ds.setdefault("options", {})
    if not isinstance(ds["options"], dict):
        raise ValueError(f"dataset.options must be a mapping, got {ds['options']!r}")
    return {k: v for k, v in ds.items() if v is not None or k == "layout"}


def _check_loss(loss: Any) -> dict[str, Any]:
    if isinstance(loss, str):
        loss = {"name": loss}
    if not isinstance(loss, dict) or "name" not in loss:
        raise ValueError(f"loss must be a name or a mapping {{name, params}}; got {loss!r}")
    for k in loss:
        if k not in ("name", "params"):
            _fail_unknown("loss key", k, ["name", "params"])
    params = loss.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError(f"loss.params must be a mapping, got {params!r}")
    from unifocal.losses import get_loss

    for k, v in params.items():  # used as 64-bit integers in the loss (e.g. ignore_index)
        if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
            raise ValueError(f"loss parameter {k}={v} is outside the 64-bit integer range; fix --loss-param {k}=")
    try:
        get_loss(loss["name"], **params)  # unknown name / parameter / bad value -> ValueError
    except (TypeError, OverflowError) as e:
        raise ValueError(f"invalid parameters for loss {loss['name']!r}: {e}; fix --loss-param") from e
    return {"name": loss["name"], "params": dict(params)}


def _check_model(model: Any) -> dict[str, Any]:
    if isinstance(model, str):
        model = {"name": model}
    if not isinstance(model, dict):
        raise ValueError(f"model must be a name or a mapping {{name, ...parameters}}; got {model!r}")
    model = dict(model)
    model.setdefault("name", "unet")
    if not isinstance(model["name"], str):
        raise ValueError(f"model.name must be a string, got {model['name']!r}")
    for k in ("base_filters", "depth", "ds_levels"):
        v = model.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"model.{k} must be a positive integer, got {v!r}")
    for k, v in model.items():
        if "pretrained" in str(k).lower() and v not in (None, False):
            raise ValueError(f"model.{k}={v!r}: pretrained weights would be downloaded, and unifocal trains its "
                             f"networks from scratch (no network access is assumed); drop {k} or set it to false")
    ds = model.get("deep_supervision")
    if ds is not None and not isinstance(ds, bool):
        raise ValueError(f"model.deep_supervision must be true or false, got {ds!r}")
    return model


def resolve_config(config: dict[str, Any] | TrainConfig) -> TrainConfig:
    """Validate and complete a configuration (without loading data or building the network).

    Data-dependent defaults (batch size, patch size, base filters) stay ``None`` here and are
    resolved by :func:`finalise_for_dataset` once the dataset is known.

    The configuration is resolved once per run and passed down: a :class:`TrainConfig` this function
    returned, unchanged since, is returned as it is (not validated again).

    Raises:
        ValueError: unknown key / loss / loss parameter / scheme, wrong type, missing dataset path.
    """
    if isinstance(config, TrainConfig):
        if config.__dict__.get("_resolved") == config.to_dict():
            return config  # resolved already and not changed since: resolved once per run, then passed down
        config = config.to_dict()
    if not isinstance(config, dict):
        raise ValueError(f"configuration must be a mapping, got {type(config).__name__}")
    allowed = list(TrainConfig.__dataclass_fields__)
    for k in config:
        if k not in allowed:
            _fail_unknown("configuration key", k, allowed)
    cfg = TrainConfig()
    data = merge(cfg.to_dict(), {k: v for k, v in config.items() if k not in ("dataset", "loss", "model")})
    ps = data.get("patch_size")
    if ps is not None:
        if isinstance(ps, int) and not isinstance(ps, bool):
            ps = [ps]
        if not isinstance(ps, (list, tuple)) or not all(isinstance(s, int) and s > 0 for s in ps):
            raise ValueError(f"patch_size must be a list of positive integers, got {ps!r}")
        data["patch_size"] = [int(s) for s in ps]
    fields = setting_fields()
    for f in fields:
        _check_type(f, data[f.name])
    if data["lr_patience"] is not None and (data["scheme"] != "adam" or data["adam_schedule"] != "plateau"):
        raise ValueError(f"lr_patience={data['lr_patience']} applies only to scheme adam with adam_schedule "
                         f"plateau (got scheme {data['scheme']!r}, adam_schedule {data['adam_schedule']!r}); "
                         f"drop lr_patience or set adam_schedule: plateau")
    if data["momentum"] is not None and data["scheme"] not in ("sgd", "sota"):
        raise ValueError(f"momentum={data['momentum']} applies only to the SGD schemes (sgd, sota), got scheme "
                         f"{data['scheme']!r}; drop momentum")
    for f in fields:
        _check_range(f, data[f.name])
    if data["device"] not in ("auto", "cpu", "cuda") and not str(data["device"]).startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {data['device']!r}")
    if data["splits_dir"] is not None:
        data["splits_dir"] = os.path.abspath(os.path.expanduser(data["splits_dir"]))
    if isinstance(data["fold"], str):
        if data["fold"].strip().lower() != ALL_FOLDS:
            raise ValueError(f"fold must be an integer in [0, n_folds={data['n_folds']}) or {ALL_FOLDS!r} "
                             f"(train on every case), got {data['fold']!r}")
        data["fold"] = ALL_FOLDS
    elif not 0 <= data["fold"] < data["n_folds"]:
        raise ValueError(f"fold must lie in [0, n_folds={data['n_folds']}) or be {ALL_FOLDS!r}, got {data['fold']}")
    data["overlap"] = float(data["overlap"])
    if data["lr"] is not None:
        data["lr"] = float(data["lr"])
    data["dataset"] = _normalise_dataset(config.get("dataset", cfg.dataset))
    data["loss"] = _check_loss(config.get("loss", cfg.loss))
    data["model"] = _check_model(config.get("model", cfg.model))
    if data["epochs"] is None:
        data["epochs"] = 1000 if data["scheme"] == "sota" else 100
    if data["model"].get("deep_supervision") is None:
        data["model"]["deep_supervision"] = data["scheme"] == "sota"
    resolved = TrainConfig(**data)
    resolved.__dict__["_resolved"] = resolved.to_dict()  # not a field: to_dict and the guards never see it
    return resolved


def open_dataset(ds_cfg: dict[str, Any] | None, data_root: str | Path | None = None) -> Any:
    """Open the dataset of a configuration's ``dataset`` entry: the one way every stage opens it.

    Args:
        ds_cfg: ``{path|name, layout, options}``.
        data_root: Folder holding the dataset when its recorded path is not on this machine (a report
            made elsewhere): ``data_root / <folder name>`` is opened instead.

    Raises:
        ValueError: No path or name, a path found neither where recorded nor under ``data_root``, or a
            dataset that cannot be opened with these layout and options.
    """
    ds = dict(ds_cfg or {})
    src = ds.get("path") or ds.get("name")
    if src is None:
        raise ValueError("dataset configuration needs 'path' or 'name'")
    if ds.get("path") and data_root and not Path(ds["path"]).exists():
        moved = Path(data_root) / Path(ds["path"]).name
        if not moved.exists():
            raise ValueError(f"dataset {ds['path']} of the runs is not on this machine, nor at {moved}; "
                             f"pass the folder holding it as data_root (--data-root)")
        src = str(moved)
    try:
        return load_dataset(src, layout=ds.get("layout"), **(ds.get("options") or {}))
    except (TypeError, FileNotFoundError) as e:
        raise ValueError(f"cannot open dataset {src!r}: {e}; fix --dataset / dataset.path / layout / options") from e


def finalise_for_dataset(cfg: TrainConfig, spatial_dims: int, dataset: Any = None) -> TrainConfig:
    """Fill the data-dependent defaults: batch size (32 / 2), base filters (64 / 32), 3D patch size."""
    c = copy.deepcopy(cfg)
    if c.batch_size is None:
        c.batch_size = 32 if spatial_dims == 2 else 2
    if c.model.get("name", "unet").lower() in ("unet", "unet2d", "unet3d") and c.model.get("base_filters") is None:
        c.model["base_filters"] = 64 if spatial_dims == 2 else 32
    if c.patch_size is not None and len(c.patch_size) == 1:
        c.patch_size = c.patch_size * spatial_dims
    if c.patch_size is not None and len(c.patch_size) != spatial_dims:
        raise ValueError(f"patch_size {c.patch_size} has {len(c.patch_size)} sizes but the data is "
                         f"{spatial_dims}D; give {spatial_dims} sizes")
    if c.patch_size is None and spatial_dims == 3:
        ps = getattr(dataset, "patch_size", None) if dataset is not None else None
        if ps:
            c.patch_size = [int(s) for s in ps]
        elif dataset is not None and len(dataset):
            # no patch size from the dataset: 96^3 (BraTS), capped by the largest of the first 20 volumes
            shapes = np.array([dataset[i].image.shape[1:] for i in range(min(20, len(dataset)))])
            c.patch_size = [int(min(96, m)) for m in shapes.max(axis=0)]
        else:
            c.patch_size = [96, 96, 96]
    return c
