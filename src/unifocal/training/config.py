"""The configuration of one training run: defaults, YAML / flag merging, validation before training.

Keys (YAML; command-line flags override, see ``docs/training.md``)::

    dataset: {name: phantom2d}            # or {path: /data/BUSI, layout: pairs2d, options: {...}}
    loss: {name: unified_focal, params: {delta: 0.6, gamma: 0.2}}
    model: {name: unet, base_filters: 16, deep_supervision: null, norm: null}
    scheme: sgd | adam | sota
    epochs: null          # scheme default: 100 (sgd, adam), 1000 (sota)
    batch_size: null      # paper: 32 for 2D, 2 for 3D
    patch_size: null      # 2D: whole (preprocessed) image; 3D: the dataset's, else 96^3 capped by the
                          # largest of the first 20 volumes (rounded up to the network's divisor)
    fold: 0               # 0..n_folds-1, or "all": train on every case (validation = the training
                          # cases, as nnU-Net's fold "all"; the final model, no held-out estimate)
    n_folds: 5
    split_seed: 0
    group_duplicates: true  # keep near-duplicate cases in one fold when the split is made (grouped
                          # k-fold; docs/data.md, "Near-duplicates")
    seed: 0
    device: auto | cpu | cuda
    amp: false
    num_workers: 0
    augment: true
    overlap: 0.5          # sliding-window overlap (paper: 48/96 = 40/80 = 0.5)
    lr: null              # scheme default: 0.01 (sgd, sota), 3e-4 (adam)
    momentum: null        # sgd, sota: Nesterov momentum (default the paper's 0.99)
    adam_schedule: cosine # cosine | plateau
    patience: null        # early stopping: stop when the validation loss has not improved for this
                          # many epochs (epochs is then the maximum); null: run all epochs
    lr_patience: null     # plateau schedule: epochs without improvement before lr x 0.1 (default 10)
    stop_after: null      # train at most this many epochs of the schedule (which still runs over
                          # `epochs`); not part of the run-folder guard
    diagnostics: false    # per-epoch gradient norms per block and predicted class balance (diagnostics.csv)
    save_predictions: false
    splits_dir: null      # folder of splits.json (default: the run folder; the folds are a pure
                          # function of the case ids, n_folds and split_seed, so runs agree anyway)
    channels_last: false  # channels-last memory format (faster 2D convolutions on CPU)
    samples_per_epoch: null  # training samples (patches) per epoch; default one per training case

Everything that can be checked without training is checked by :func:`resolve_config`, which
raises ``ValueError`` with a message saying what to change.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unifocal.data.phantom import PHANTOM_DEFAULTS

__all__ = ["ALL_FOLDS", "NOT_GUARDED", "SCHEMES", "TrainConfig", "build_config", "load_config_file", "parse_key_values",
           "parse_size", "resolve_config"]

SCHEMES = ("sgd", "adam", "sota")
#: Keys that do not change what a run computes, so the configuration guards of a run folder and of a
#: study folder leave them out: how it executes, and the limits that decide only where it stops.
NOT_GUARDED = ("device", "num_workers", "amp", "save_predictions", "stop_after", "patience")
#: The built-in phantom datasets (names accepted instead of a path).
PHANTOMS: tuple[str, ...] = tuple(PHANTOM_DEFAULTS)
#: The ``fold`` value that trains on every case (no held-out fold), as nnU-Net's ``--fold all``.
ALL_FOLDS = "all"


@dataclass
class TrainConfig:
    """Fully resolved configuration of one run (see the module docstring for the meaning of each key)."""

    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "phantom2d"})
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "unified_focal", "params": {}})
    model: dict[str, Any] = field(default_factory=lambda: {"name": "unet"})
    scheme: str = "sgd"
    epochs: int | None = None
    batch_size: int | None = None
    patch_size: list[int] | None = None
    fold: int | str = 0
    n_folds: int = 5
    split_seed: int = 0
    group_duplicates: bool = True
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    num_workers: int = 0
    augment: bool = True
    overlap: float = 0.5
    lr: float | None = None
    momentum: float | None = None
    adam_schedule: str = "cosine"
    patience: int | None = None
    lr_patience: int | None = None
    stop_after: int | None = None
    diagnostics: bool = False
    save_predictions: bool = False
    splits_dir: str | None = None
    channels_last: bool = False
    samples_per_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML-serialisable)."""
        return copy.deepcopy(asdict(self))


_TYPES: dict[str, tuple[type, ...]] = {
    "scheme": (str,), "epochs": (int,), "batch_size": (int,), "fold": (int, str), "n_folds": (int,),
    "split_seed": (int,), "group_duplicates": (bool,), "seed": (int,), "device": (str,), "amp": (bool,), "num_workers": (int,),
    "augment": (bool,), "overlap": (float, int), "lr": (float, int), "momentum": (float, int), "adam_schedule": (str,),
    "save_predictions": (bool,), "splits_dir": (str,), "channels_last": (bool,), "samples_per_epoch": (int,),
    "patience": (int,), "lr_patience": (int,), "diagnostics": (bool,), "stop_after": (int,),
}


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

    Raises:
        ValueError: unknown key / loss / loss parameter / scheme, wrong type, missing dataset path.
    """
    if isinstance(config, TrainConfig):
        config = config.to_dict()
    if not isinstance(config, dict):
        raise ValueError(f"configuration must be a mapping, got {type(config).__name__}")
    allowed = list(TrainConfig.__dataclass_fields__)
    for k in config:
        if k not in allowed:
            _fail_unknown("configuration key", k, allowed)
    cfg = TrainConfig()
    data = merge(cfg.to_dict(), {k: v for k, v in config.items() if k not in ("dataset", "loss", "model")})
    for k, types in _TYPES.items():
        v = data.get(k)
        if v is None:
            continue
        if isinstance(v, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(v, types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            raise ValueError(f"{k} must be {want}, got {v!r} ({type(v).__name__})")
    if data["lr_patience"] is not None and (data["scheme"] != "adam" or data["adam_schedule"] != "plateau"):
        raise ValueError(f"lr_patience={data['lr_patience']} applies only to scheme adam with adam_schedule "
                         f"plateau (got scheme {data['scheme']!r}, adam_schedule {data['adam_schedule']!r}); "
                         f"drop lr_patience or set adam_schedule: plateau")
    if data["momentum"] is not None:
        if data["scheme"] not in ("sgd", "sota"):
            raise ValueError(f"momentum={data['momentum']} applies only to the SGD schemes (sgd, sota), got scheme "
                             f"{data['scheme']!r}; drop momentum")
        if not 0.0 <= float(data["momentum"]) < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {data['momentum']}")
    if data["scheme"] not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {data['scheme']!r}")
    if data["adam_schedule"] not in ("cosine", "plateau"):
        raise ValueError(f"adam_schedule must be 'cosine' or 'plateau', got {data['adam_schedule']!r}")
    if data["device"] not in ("auto", "cpu", "cuda") and not str(data["device"]).startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {data['device']!r}")
    for k in ("epochs", "batch_size", "n_folds", "samples_per_epoch", "patience", "lr_patience", "stop_after"):
        if data[k] is not None and data[k] < 1:
            raise ValueError(f"{k} must be >= 1, got {data[k]}")
    for k in ("seed", "split_seed"):
        if not 0 <= data[k] < 2**63:
            raise ValueError(f"{k} must be an integer in [0, 2**63), got {data[k]}; fix --{k.replace('_', '-')} / {k}")
    if data["splits_dir"] is not None:
        data["splits_dir"] = os.path.abspath(os.path.expanduser(data["splits_dir"]))
    if data["n_folds"] < 2:
        raise ValueError(f"n_folds must be >= 2, got {data['n_folds']}")
    if isinstance(data["fold"], str):
        if data["fold"].strip().lower() != ALL_FOLDS:
            raise ValueError(f"fold must be an integer in [0, n_folds={data['n_folds']}) or {ALL_FOLDS!r} "
                             f"(train on every case), got {data['fold']!r}")
        data["fold"] = ALL_FOLDS
    elif not 0 <= data["fold"] < data["n_folds"]:
        raise ValueError(f"fold must lie in [0, n_folds={data['n_folds']}) or be {ALL_FOLDS!r}, got {data['fold']}")
    if not 0.0 <= float(data["overlap"]) < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {data['overlap']}")
    if data["lr"] is not None and not data["lr"] > 0:
        raise ValueError(f"lr must be > 0, got {data['lr']}")
    if data["num_workers"] < 0:
        raise ValueError(f"num_workers must be >= 0, got {data['num_workers']}")
    ps = data.get("patch_size")
    if ps is not None:
        if isinstance(ps, int) and not isinstance(ps, bool):
            ps = [ps]
        if not isinstance(ps, (list, tuple)) or not all(isinstance(s, int) and s > 0 for s in ps):
            raise ValueError(f"patch_size must be a list of positive integers, got {ps!r}")
        data["patch_size"] = [int(s) for s in ps]
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
    return TrainConfig(**data)


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
