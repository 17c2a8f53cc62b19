"""Study planning: the paper's loss comparison and the Table 2 tuning grids as lists of runs.

A *run* is one configuration and one fold. Its folder name is a pure function of the loss, its
parameters and the fold (``<root>/<arm>/fold<k>``), so re-planning the same study yields the same
folders: finished runs are skipped and interrupted ones resumed by
:func:`unifocal.training.train_and_evaluate`.

An *arm* is a loss with its parameters (all folds of it), named ``<loss>[-<param><value>...]``, e.g.
``unified_focal-delta0.6-gamma0.2-lambda0.5``.

Lambda convention (``docs/losses.md``, "Conventions", 2): in this library λ weights the
distribution (focal) term, ``L_UF = λ·L_aF + (1-λ)·L_aFT`` (Eq. 20). The paper's Table 2 λ column
follows the authors' code, where λ weights the Tversky term, so a Table 2 value ``λ_T`` is the run
``lambda_ = 1 - λ_T``. Because the grid 0, 0.1, ..., 1 is symmetric, the set of runs is the same; only
the label differs, and :func:`table2_lambda` converts for the report.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unifocal._atomic import atomic_write_text
from unifocal.data import get_splits
from unifocal.losses import get_loss
from unifocal.losses.constants import PAPER_LOSSES
from unifocal.training.config import TrainConfig, not_guarded, open_dataset

__all__ = [
    "PAPER_SETTINGS",
    "TABLE2_GRIDS",
    "RunSpec",
    "arm_name",
    "compare_plan",
    "parse_grid",
    "parse_losses",
    "parse_seeds",
    "prepare_study",
    "run_folder",
    "table2_lambda",
    "tune_plan",
]

#: The settings of the paper's comparison (Section 3 / Tables 3-5) for each of
#: :data:`unifocal.losses.PAPER_LOSSES` (its keys, in the paper's table order), all explicit so that a
#: run does not depend on the library's defaults (Hybrid Focal: λ = 0.5 with the focal and
#: focal-Tversky settings; Unified Focal: the tuned optimum δ = 0.6, γ = 0.2, λ = 0.5).
PAPER_SETTINGS: dict[str, dict[str, float]] = {
    "focal": {"alpha": 0.25, "gamma": 2.0},
    "dice": {},
    "tversky": {"alpha": 0.3, "beta": 0.7},
    "focal_tversky": {"alpha": 0.3, "beta": 0.7, "gamma": 4.0 / 3.0},
    "combo": {"alpha": 0.5, "beta": 0.5},
    "hybrid_focal": {"lambda_": 0.5, "focal_alpha": 0.25, "focal_gamma": 2.0,
                     "tversky_alpha": 0.3, "tversky_beta": 0.7, "tversky_gamma": 4.0 / 3.0},
    "unified_focal": {"delta": 0.6, "gamma": 0.2, "lambda_": 0.5},  # the paper's tuned optimum
}


def _r(values: Iterable[float]) -> list[float]:
    return [round(float(v), 10) for v in values]


#: Table 2's three one-at-a-time grids: ``(swept parameter, values, fixed parameters)``. The lambda
#: values are in this library's convention (Eq. 20); see the module docstring for the Table 2 column.
TABLE2_GRIDS: dict[str, tuple[str, list[float], dict[str, float]]] = {
    "delta": ("delta", _r(0.1 * i for i in range(1, 10)), {"gamma": 0.0, "lambda_": 0.5}),
    "gamma": ("gamma", [0.05, 0.1, 0.2, 0.3, 0.4, 0.5], {"delta": 0.6, "lambda_": 0.5}),
    "lambda": ("lambda_", _r(0.1 * i for i in range(11)), {"delta": 0.6, "gamma": 0.2}),
}


def table2_lambda(lambda_: float) -> float:
    """The paper's Table 2 λ column value of a run with this library's ``lambda_`` (``1 - lambda_``)."""
    return round(1.0 - float(lambda_), 10)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"loss parameter value {v} is not finite")
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "_".join(_fmt(x) for x in v)
    return str(v)


def arm_name(loss: str, params: Mapping[str, Any]) -> str:
    """Deterministic folder name of a loss with its parameters, e.g. ``tversky-alpha0.3-beta0.7``.

    Parameters are sorted by name; a trailing underscore (``lambda_``) is dropped in the name.

    Raises:
        ValueError: if the loss name or a parameter would not make a safe folder name.
    """
    if not loss or not loss.replace("_", "").isalnum():
        raise ValueError(f"loss name {loss!r} is not a plain identifier")
    parts = [loss]
    for k in sorted(params):
        s = _fmt(params[k])
        if any(c in s for c in "/\\ "):
            raise ValueError(f"loss parameter {k}={params[k]!r} cannot be part of a folder name")
        parts.append(f"{k.rstrip('_')}{s}")
    return "-".join(parts)


@dataclass(frozen=True)
class RunSpec:
    """One planned run: a full configuration (one loss, one fold) and the folder it writes.

    Attributes:
        arm: the arm name (loss with parameters), shared by all folds.
        fold: the fold index.
        config: the configuration passed to :func:`unifocal.training.train_and_evaluate`.
        run_dir: the run folder.
        tags: study metadata (e.g. ``{"grid": "delta"}``), not part of the configuration.
    """

    arm: str
    fold: int
    config: dict[str, Any]
    run_dir: Path
    tags: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def seed(self) -> int:
        """The training seed (``config["seed"]``, default 0)."""
        return int(self.config.get("seed", 0) or 0)

    @property
    def name(self) -> str:
        """``<arm>/<run_folder(fold, seed)>``, e.g. ``dice/fold0`` or ``dice/fold0-seed1``."""
        return f"{self.arm}/{run_folder(self.fold, self.seed)}"


def run_folder(fold: int, seed: int = 0) -> str:
    """The folder of one run inside its arm: ``fold<k>`` for seed 0 (so studies of one seed keep the
    layout they always had), ``fold<k>-seed<s>`` for any other seed."""
    return f"fold{fold}" if int(seed) == 0 else f"fold{fold}-seed{int(seed)}"


def parse_seeds(spec: str | Sequence[int] | None) -> list[int] | None:
    """Parse ``--seeds``: ``"0,1,2"``, ``"0:3"`` (0, 1, 2) or a list; ``None`` or ``""``: not given.

    Raises:
        ValueError: for a malformed list, a negative seed or a repeated one.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if isinstance(spec, str):
        out: list[int] = []
        for part in [p.strip() for p in spec.split(",") if p.strip()]:
            try:
                if ":" in part:
                    a, b = (int(x) for x in part.split(":"))
                    out.extend(range(a, b))
                else:
                    out.append(int(part))
            except ValueError as e:
                raise ValueError(f"seeds {spec!r}: {part!r} is not an integer or a range a:b") from e
    else:
        out = [int(x) for x in spec]
    if not out:
        raise ValueError(f"seeds {spec!r} selects no seed")
    if any(x < 0 for x in out):
        raise ValueError(f"seeds {spec!r}: seeds must be >= 0")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds {spec!r}: a seed is repeated")
    return out


def _coerce(value: str) -> Any:
    v = yaml.safe_load(value)
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def parse_losses(spec: str | Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Parse a loss selection into ``[(name, params), ...]``.

    ``spec`` is a comma-separated string or a list of items; an item is ``paper`` (the seven losses
    with the paper's settings), a loss name (the paper's settings if it is one of the seven, else the
    library's defaults) or ``name:key=value:key=value`` to set parameters, e.g.
    ``paper,cross_entropy,unified_focal:delta=0.7``. Duplicates are removed, order kept.

    Raises:
        ValueError: for an empty selection or a malformed item.
    """
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items:
        raise ValueError("no loss selected: give --losses paper or a comma-separated list of loss names")
    out: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if item == "paper":
            out.extend((n, dict(PAPER_SETTINGS[n])) for n in PAPER_LOSSES)
            continue
        name, *kvs = item.split(":")
        params = dict(PAPER_SETTINGS.get(name, {}))
        for kv in kvs:
            if "=" not in kv:
                raise ValueError(f"loss parameter {kv!r} in {item!r} is not of the form key=value")
            k, v = kv.split("=", 1)
            k = k.strip()
            if k == "lambda":
                k = "lambda_"
            params[k] = _coerce(v.strip())
        out.append((name, params))
    seen: set[str] = set()
    unique = []
    for name, params in out:
        key = arm_name(name, params)
        if key not in seen:
            seen.add(key)
            unique.append((name, params))
    return unique


def parse_grid(spec: str) -> dict[str, list[float]]:
    """Parse a user grid ``"delta=0.5,0.6;gamma=0.1,0.2"`` into ``{"delta": [...], "gamma": [...]}``.

    ``lambda`` is accepted for ``lambda_`` (this library's convention, Eq. 20). Numeric ranges
    ``start:stop:step`` (inclusive stop) are accepted too, e.g. ``delta=0.1:0.9:0.1``.

    Raises:
        ValueError: for a malformed grid.
    """
    grid: dict[str, list[float]] = {}
    for part in [p.strip() for p in spec.split(";") if p.strip()]:
        if "=" not in part:
            raise ValueError(f"grid entry {part!r} is not of the form param=v1,v2,...")
        k, vals = (s.strip() for s in part.split("=", 1))
        k = "lambda_" if k == "lambda" else k
        values: list[float] = []
        for v in [s.strip() for s in vals.split(",") if s.strip()]:
            if v.count(":") == 2:
                try:
                    a, b, c = (float(x) for x in v.split(":"))
                except ValueError as e:
                    raise ValueError(f"grid range {v!r} for {k} is not start:stop:step") from e
                if c <= 0 or b < a:
                    raise ValueError(f"grid range {v!r} for {k} needs step > 0 and stop >= start")
                n = math.floor((b - a) / c + 1e-9) + 1
                values.extend(round(a + i * c, 10) for i in range(n))
            else:
                try:
                    values.append(float(v))
                except ValueError as e:
                    raise ValueError(f"grid value {v!r} for {k} is not a number") from e
        if not values:
            raise ValueError(f"grid entry {part!r} has no values")
        grid[k] = values
    if not grid:
        raise ValueError(f"empty grid {spec!r}")
    return grid


def _validate_loss(name: str, params: Mapping[str, Any]) -> None:
    """Check name and parameters with ``unifocal.losses.get_loss``."""
    get_loss(name, **params)  # raises ValueError naming an unknown loss / parameter


def _folds(n_folds: int, folds: Sequence[int] | None) -> list[int]:
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2 (cross-validation), got {n_folds}")
    ks = list(range(n_folds)) if folds is None else [int(k) for k in folds]
    bad = [k for k in ks if not 0 <= k < max(n_folds, 1)]
    if bad:
        raise ValueError(f"fold(s) {bad} outside 0..{n_folds - 1}")
    if not ks:
        raise ValueError("no fold selected")
    return sorted(set(ks))


def _base(base_config: Mapping[str, Any], root: str | Path) -> dict[str, Any]:
    if "dataset" not in base_config:
        raise ValueError("the study configuration needs a 'dataset' entry ({name|path, layout, options})")
    cfg = copy.deepcopy(dict(base_config))
    cfg.pop("loss", None)
    cfg.pop("fold", None)
    if not cfg.get("splits_dir"):
        cfg["splits_dir"] = str(Path(root).resolve())
    return cfg


def _specs(root: Path, base: dict[str, Any], arms: Sequence[tuple[str, dict[str, Any], dict[str, Any]]],
           folds: list[int], n_folds: int, validate: bool, seeds: Sequence[int] | None = None) -> list[RunSpec]:
    """Fold-major: every arm of the first fold (seed by seed), then of the next; a runner starts runs in
    this order, so a study cut short leaves whole folds finished (what ``complete_folds`` of the report
    compares), and a pool of workers moves on to the next fold's runs while the last run of a fold
    finishes. ``seeds`` (default: the configuration's ``seed``) are the replicates of every (arm, fold)."""
    seed_list = list(seeds) if seeds is not None else [int(base.get("seed", 0) or 0)]
    unique: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for loss, params, tags in arms:
        if validate:
            _validate_loss(loss, params)
        unique.setdefault(arm_name(loss, params), (loss, params, tags))
    specs: list[RunSpec] = []
    for k in folds:
        for seed in seed_list:
            for arm, (loss, params, tags) in unique.items():
                cfg = copy.deepcopy(base)
                cfg["loss"] = {"name": loss, "params": dict(params)}
                cfg["fold"] = k
                cfg["n_folds"] = n_folds
                cfg["seed"] = seed
                specs.append(RunSpec(arm, k, cfg, Path(root) / arm / run_folder(k, seed), dict(tags)))
    return specs


def compare_plan(base_config: Mapping[str, Any], root: str | Path, losses: str | Sequence[str] = "paper",
                 n_folds: int = 5, folds: Sequence[int] | None = None, validate: bool = True,
                 seeds: Sequence[int] | None = None) -> list[RunSpec]:
    """The loss comparison: every selected loss on every fold.

    Args:
        base_config: the configuration shared by all runs (dataset, model, scheme, epochs, ...);
            ``loss`` and ``fold`` are set per run.
        root: the study folder; runs go to ``root/<arm>/fold<k>``.
        losses: see :func:`parse_losses` (default: the paper's seven losses and settings).
        n_folds: number of cross-validation folds.
        folds: a subset of folds to run (default all).
        validate: check loss names and parameters with ``unifocal.losses``.
        seeds: training seeds, the replicates of every (loss, fold) (default: the configuration's
            ``seed``); run folders ``fold<k>`` (seed 0) and ``fold<k>-seed<s>`` (:func:`run_folder`).

    Returns:
        The runs, fold by fold, and within a fold seed by seed and arm by arm (the order runners start
        them in).

    Raises:
        ValueError: for an unknown loss or parameter, an invalid fold, or a configuration without dataset.
    """
    base = _base(base_config, root)
    base["n_folds"] = n_folds
    arms = [(n, p, {"study": "compare"}) for n, p in parse_losses(losses)]
    return _specs(Path(root), base, arms, _folds(n_folds, folds), n_folds, validate, seeds)


def tune_plan(base_config: Mapping[str, Any], root: str | Path, grids: str | Sequence[str] = "table2",
              n_folds: int = 5, folds: Sequence[int] | None = None, loss: str = "unified_focal",
              base_params: Mapping[str, Any] | None = None, validate: bool = True,
              seeds: Sequence[int] | None = None) -> list[RunSpec]:
    """The tuning grids: Table 2's one-at-a-time sweeps, or a user grid (Cartesian product).

    Args:
        base_config: the configuration shared by all runs.
        root: the study folder.
        grids: ``"table2"`` (all three sweeps), a subset of ``"delta"``, ``"gamma"``, ``"lambda"``
            (comma-separated string or list), or a user grid such as ``"delta=0.5,0.6;gamma=0:0.5:0.1"``
            (see :func:`parse_grid`; λ there in this library's convention).
        n_folds: number of cross-validation folds.
        folds: subset of folds (default all).
        loss: the loss to tune (default ``unified_focal``; the Table 2 grids need a loss taking
            ``delta``, ``gamma`` and ``lambda_``).
        base_params: parameters not swept by a user grid (default: the paper's optimum for
            ``unified_focal``, else none).
        validate: check loss names and parameters with ``unifocal.losses``.
        seeds: training seeds (see :func:`compare_plan`).

    Returns:
        The runs, fold by fold; a configuration shared by two sweeps (e.g. δ=0.6, γ=0.2, λ=0.5) is planned once.

    Raises:
        ValueError: for an unknown grid name or a malformed grid.
    """
    base = _base(base_config, root)
    base["n_folds"] = n_folds
    items = [s.strip() for s in (grids.split(",") if isinstance(grids, str) and "=" not in grids else
                                 ([grids] if isinstance(grids, str) else grids))]
    arms: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for item in items:
        if item == "table2":
            names = list(TABLE2_GRIDS)
        elif item in TABLE2_GRIDS:
            names = [item]
        elif "=" in item:
            grid = parse_grid(item)
            fixed = dict(base_params if base_params is not None else
                         (PAPER_SETTINGS["unified_focal"] if loss == "unified_focal" else {}))
            keys = list(grid)
            for combo in itertools.product(*(grid[k] for k in keys)):
                p = {**fixed, **dict(zip(keys, combo))}
                arms.append((loss, p, {"study": "tune", "grid": "user"}))
            continue
        else:
            raise ValueError(f"unknown grid {item!r}: use table2, delta, gamma, lambda or param=v1,v2;...")
        for g in names:
            param, values, fixed = TABLE2_GRIDS[g]
            for v in values:
                arms.append((loss, {**fixed, param: v}, {"study": "tune", "grid": g}))
    if not arms:
        raise ValueError(f"grid {grids!r} selects no run")
    return _specs(Path(root), base, arms, _folds(n_folds, folds), n_folds, validate, seeds)


_STUDY_FILE = "study.yaml"


def _not_shared() -> tuple[str, ...]:
    """The per-run keys (loss, fold and seed: the seeds are replicates), and those that do not change
    what a run computes (a study can be continued under other stopping limits:
    ``unifocal.training.loop.continues_finished_run``)."""
    return ("loss", "fold", "seed", "splits_dir", *not_guarded())


def _comparable(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The shared part of a run configuration. A dataset folder is recorded by its name, not its path,
    so that a study folder (e.g. a committed results store) can be continued on a machine where the
    data lives elsewhere."""
    c = copy.deepcopy(dict(cfg))
    for k in _not_shared():
        c.pop(k, None)
    ds = c.get("dataset")
    if isinstance(ds, dict) and ds.get("path"):
        c["dataset"] = {**ds, "path": Path(str(ds["path"])).name}
    return c


def _study_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ; a key missing from ``old`` (recorded before the key existed) matches
    its default value."""
    defaults = TrainConfig().to_dict()
    out = []
    for k in sorted(set(old) | set(new)):
        if k not in old and k in defaults and new.get(k) == defaults[k]:
            continue
        if old.get(k) != new.get(k):
            out.append(k)
    return out


def prepare_study(root: str | Path, specs: Sequence[RunSpec], *, write_splits: bool = True) -> Path | None:
    """Create the study folder, guard its shared configuration and write the shared splits.

    * ``root/study.yaml`` records the configuration shared by all runs (everything but the loss, the
      fold, execution-only keys such as ``device``, ``num_workers``, ``amp``, and ``stop_after`` and
      ``patience``, which decide only where each run stops). Re-planning a study into the
      same folder with a different shared configuration raises, since run folder names only encode
      loss, parameters and fold.
    * ``splits.json`` in the configuration's ``splits_dir`` (default ``root``): one split file per
      dataset, made here once by ``unifocal.data.get_splits`` (which reuses an existing one) before
      any worker starts, and read by every run (training's ``splits_dir``).

    Returns:
        The path of ``splits.json`` (``None`` when ``write_splits`` is false or there is no run).

    Raises:
        ValueError: if the runs disagree on their shared configuration or it differs from the one
            already recorded in the folder.
    """
    root = Path(root)
    if not specs:
        return None
    shared = _comparable(specs[0].config)
    for s in specs[1:]:
        if _comparable(s.config) != shared:
            raise ValueError(f"run {s.name} has a different shared configuration from {specs[0].name}")
    f = root / _STUDY_FILE
    recorded = False
    if f.exists():
        old = yaml.safe_load(f.read_text()) or {}
        recorded = not any(k in old for k in _not_shared())  # else rewritten below, without those keys
        old = {k: v for k, v in old.items() if k not in _not_shared()}
        diff = _study_differences(old, json.loads(json.dumps(shared)))
        if diff:
            raise ValueError(f"{root} already holds a study with a different configuration (keys {diff}); "
                             "use another output folder")
    dataset = None
    if write_splits:  # opened before anything is written: a missing dataset leaves no study folder
        dataset = open_dataset(specs[0].config["dataset"])
    root.mkdir(parents=True, exist_ok=True)
    if not recorded:
        atomic_write_text(f, yaml.safe_dump(json.loads(json.dumps(shared)), sort_keys=True))
    if dataset is None:
        return None

    cfg0 = specs[0].config
    splits_dir = Path(cfg0.get("splits_dir") or root)
    splits_dir.mkdir(parents=True, exist_ok=True)
    folds = get_splits(dataset, splits_dir, int(cfg0.get("n_folds", 5)), int(cfg0.get("split_seed", 0)),
                       group_duplicates=bool(cfg0.get("group_duplicates", True)))
    for s in specs:
        if s.fold >= len(folds):
            raise ValueError(f"run {s.name}: fold {s.fold} but {splits_dir / 'splits.json'} has {len(folds)} folds")
    return splits_dir / "splits.json"
