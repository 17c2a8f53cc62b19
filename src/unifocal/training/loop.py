"""One training run end to end: train, validate every epoch, keep best / last, resume, evaluate.

:func:`train_and_evaluate` implements the run-folder contract of ``docs/architecture.md``.

Epochs and batches are numbered from 1 in logs and messages. Per epoch ``e``:

1. the training loader is rebuilt with seed ``seed + e`` (shuffling and augmentation are a pure
   function of seed and epoch, so a resumed run sees the same batches);
2. every batch: forward (autocast when ``amp``), loss (wrapped in ``DeepSupervisionLoss`` when the
   model returns a list), a non-finite loss raises :class:`NonFiniteLossError` naming the epoch and
   batch *before* anything is written (so ``checkpoints/last.pt`` of epoch ``e - 1`` survives),
   backward, optimiser step;
3. validation: each validation case predicted whole (2D) or by sliding window (3D) on the
   preprocessed grid; the validation loss is the plain loss on the full-resolution output, and the
   validation DSC (mean over foreground classes and cases, preprocessed grid) is logged;
4. scheduler step; ``best.pt`` when the validation loss is the lowest so far; then ``last.pt``
   (model, optimiser, scheduler, scaler, history, RNG states of Python / NumPy / torch), then
   ``log.csv`` (rewritten from the history held in ``last.pt``, so the two never disagree), each
   written atomically; TensorBoard scalars.

``stop_after`` N ends training after epoch N of a schedule that still runs over ``epochs`` (a run
stopped to save time once its course is clear). ``stop_after`` and ``patience`` decide only where a run
stops, never its course, so neither is part of the configuration guard: an interrupted run can be
resumed with other values. The same holds for ``epochs`` under the one schedule that does not read it
(``adam`` with ``adam_schedule: plateau``, :func:`unifocal.training.config.schedule_uses_epochs`): there
it is only the maximum. ``summary.json`` says ``stopped_early`` for the first two, and ``stop_reason``
says which limit ended the run (``patience``, ``stop_after`` or ``epochs``). A finished run that
``stop_after`` ended continues from its ``checkpoints/last.pt`` when it is run again with a larger
``stop_after`` (or none), one that ``patience`` ended when it is run again with a larger ``patience``
(or none), and one that ``epochs`` ended under the plateau schedule when it is run again with larger
``epochs``: its last-epoch state is restored, training goes on up to the new limit, and the evaluation and
``summary.json`` are written again (:func:`continues_finished_run`); the result is the run the new
limits would have given from the start (``unifocal study converge`` continues this way the runs that
did not converge).

Early stopping: with ``patience`` P, training stops after epoch ``e`` when the validation loss has not
improved for P epochs (``e - best_epoch >= P``); ``epochs`` is then the maximum. ``summary.json``
records ``best_epoch`` and ``stop_epoch`` (the last epoch trained) in every case.

Resume: when ``checkpoints/last.pt`` exists the run continues after its epoch with every state
restored; when ``summary.json`` says ``finished`` nothing is recomputed. After the last epoch the
best checkpoint is evaluated on the validation cases in the original geometry
(``metrics_per_case.csv``), the learning curves are drawn, and ``summary.json`` is written last.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from unifocal._atomic import atomic_write_csv
from unifocal.data import get_splits, make_train_loader
from unifocal.losses import DeepSupervisionLoss, get_loss
from unifocal.metrics import case_metrics, hard_prediction
from unifocal.models import get_model, supports_deep_supervision
from unifocal.training.checkpoint import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from unifocal.training.config import (
    ALL_FOLDS,
    TrainConfig,
    finalise_for_dataset,
    not_guarded,
    open_dataset,
    read_yaml_mapping,
    resolve_config,
    schedule_uses_epochs,
)
from unifocal.training.diagnostics import Diagnostics
from unifocal.training.evaluation import aggregate, evaluate_cases, write_metrics_csv
from unifocal.training.inference import effective_amp, predict_logits, select_device
from unifocal.training.lock import run_lock
from unifocal.training.schemes import make_optimizer, make_scheduler

__all__ = ["LOG_FIELDS", "AllBackgroundWarning", "NonFiniteLossError", "RunContext", "build_run", "continues_finished_run",
           "train_and_evaluate"]

LOG_FIELDS = ["epoch", "train_loss", "val_loss", "val_dsc", "lr", "seconds"]


class AllBackgroundWarning(UserWarning):
    """Every training mask seen in the first epoch is background: the data or its label values are likely
    wrong (a model trained on it predicts background everywhere)."""


class NonFiniteLossError(ValueError, RuntimeError):
    """The loss or the network output became NaN or Inf; the message names the epoch and batch (1-based).

    A ``ValueError`` (so the command line reports it as an error, exit status 2) and, as before, a
    ``RuntimeError``.
    """


def make_loss(dataset: Any, loss_cfg: dict[str, Any]) -> nn.Module:
    """The configured loss; the dataset's ``rare_classes`` are passed when the configuration does not
    set them (they equal the loss default, all but background, unless the dataset says otherwise).

    Raises:
        ValueError: Invalid loss settings, including the dataset's ``rare_classes`` (e.g. the
            background class): they are refused, never dropped.
    """

    params = dict(loss_cfg.get("params") or {})
    rare = getattr(dataset, "rare_classes", None)
    if rare is not None and "rare_classes" not in params:
        try:
            return get_loss(loss_cfg["name"], **params, rare_classes=list(rare))
        except ValueError as e:
            raise ValueError(f"the dataset's rare_classes {list(rare)} are invalid for loss "
                             f"{loss_cfg['name']!r}: {e}; fix dataset.options.rare_classes") from e
    return get_loss(loss_cfg["name"], **params)


def build_model(cfg: TrainConfig, spatial_dims: int, in_channels: int, num_classes: int) -> nn.Module:
    """The network of ``cfg.model`` for the data."""

    params = {k: v for k, v in cfg.model.items() if k != "name" and v is not None}
    return get_model(cfg.model["name"], spatial_dims, in_channels, num_classes, **params)


def model_spec(cfg: TrainConfig, dataset: Any) -> dict[str, Any]:
    """What :func:`unifocal.training.predict.load_model` needs to rebuild the network without the data."""
    return {"model": dict(cfg.model), "spatial_dims": dataset.spatial_dims, "in_channels": dataset.in_channels,
            "num_classes": dataset.num_classes, "class_names": list(getattr(dataset, "class_names", [])),
            "preprocessing": dict(getattr(dataset, "preprocessing", {}) or {}),
            "patch_size": cfg.patch_size, "overlap": cfg.overlap}


def _pad_to_divisor(x: torch.Tensor, y: torch.Tensor, div: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad image and label batches (label 0: background) at the end of each axis to a multiple of ``div``."""
    pads = [(-s) % div for s in x.shape[2:]]
    if not any(pads):
        return x, y
    arg: list[int] = []
    for p in reversed(pads):
        arg += [0, p]
    return torch.nn.functional.pad(x, arg), torch.nn.functional.pad(y, arg)


class RunContext:
    """Everything one run needs, built from a resolved configuration (data, model, loss, optimiser)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path | None = None) -> None:

        self.dataset = open_dataset(cfg.dataset)
        cfg = finalise_for_dataset(cfg, self.dataset.spatial_dims, self.dataset)
        self.device = select_device(cfg.device)
        # amp as it runs: float32 (with a one-line notice) on a CPU without native bfloat16
        self.amp = effective_amp(self.device, cfg.amp)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)  # noqa: NPY002 (libraries may draw from the global generator)

        random.seed(cfg.seed)
        self.model = build_model(cfg, self.dataset.spatial_dims, self.dataset.in_channels,
                                 self.dataset.num_classes).to(self.device)
        div = self.divisor = int(getattr(self.model, "divisor", 1))
        if cfg.patch_size is not None and self.dataset.spatial_dims == 3:
            cfg.patch_size = [max(div, math.ceil(p / div) * div) for p in cfg.patch_size]
        if cfg.patch_size is not None and any(p % div for p in cfg.patch_size):
            raise ValueError(f"patch_size {cfg.patch_size} must be divisible by {div} for this network "
                             f"(2**depth); change patch_size or model.depth")
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.cfg = cfg
        self.loss = make_loss(self.dataset, cfg.loss)
        self.train_loss_fn = DeepSupervisionLoss(self.loss) if supports_deep_supervision(self.model) else self.loss
        self.optimizer = make_optimizer(cfg.scheme, self.model.parameters(), cfg.lr, cfg.momentum)
        self.scheduler = make_scheduler(cfg.scheme, self.optimizer, cfg.epochs, cfg.adam_schedule,
                                        cfg.lr_patience)
        use_scaler = self.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.run_dir = run_dir
        self.diagnostics = None
        if cfg.diagnostics:

            self.diagnostics = Diagnostics(self.model)

    # -- data ---------------------------------------------------------------------------------
    def train_loader(self, ids: list[str], epoch: int) -> Any:
        """The training loader of ``epoch`` (1-based), seeded with ``seed + epoch``."""

        return make_train_loader(self.dataset, ids, batch_size=self.cfg.batch_size, patch_size=self.cfg.patch_size,
                                 augment=self.cfg.augment, seed=self.cfg.seed + epoch,
                                 num_workers=self.cfg.num_workers, samples_per_epoch=self.cfg.samples_per_epoch)

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(self, ids: list[str], epoch: int, progress: bool = False, loader: Any = None) -> tuple[float, int]:
        """One pass over the training loader; returns ``(mean loss, images seen)``.

        Raises:
            NonFiniteLossError: NaN / Inf loss (names epoch and batch).
        """
        model, opt = self.model, self.optimizer
        model.train()
        loader = self.train_loader(ids, epoch) if loader is None else loader
        total, n_batches, n_images = 0.0, 0, 0
        self.foreground_seen = False
        bar = None
        if progress:

            bar = tqdm(total=len(loader) if hasattr(loader, "__len__") else None,
                       desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, unit="batch")
        cl = self.cfg.channels_last
        for b, batch in enumerate(loader, start=1):
            x = batch["image"].to(self.device, non_blocking=True)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            y = batch["label"].to(self.device, non_blocking=True).long()
            x, y = _pad_to_divisor(x, y, self.divisor)
            if not self.foreground_seen:
                self.foreground_seen = bool((y > 0).any())
            opt.zero_grad(set_to_none=True)
            with self.autocast():
                out = model(x)
            if isinstance(out, (list, tuple)):
                out = [o.float() for o in out]
            else:
                out = out.float()
            finite_out = all(bool(torch.isfinite(o).all()) for o in (out if isinstance(out, list) else [out]))
            loss = self.train_loss_fn(out, y) if finite_out else torch.tensor(float("nan"))
            if not torch.isfinite(loss).all():
                last = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
                keep = (f"; the last good checkpoint {last} (epoch {epoch - 1}) is kept"
                        if last is not None and last.exists() else "")
                what = f"training loss ({loss.item()})" if finite_out else "network output (NaN/Inf)"
                raise NonFiniteLossError(
                    f"non-finite {what} at epoch {epoch}, batch {b}{keep}. "
                    f"Lower the learning rate (lr), disable amp, or check the data of this batch.")
            self.scaler.scale(loss).backward()
            if self.diagnostics is not None:
                self.scaler.unscale_(opt)
                self.diagnostics.after_backward()
            self.scaler.step(opt)
            self.scaler.update()
            if self.diagnostics is not None:
                self.diagnostics.after_step()
            total += float(loss.detach())
            n_batches += 1
            n_images += x.shape[0]
            if bar is not None:
                bar.set_postfix(loss=f"{total / n_batches:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
                bar.update(1)
        if bar is not None:
            bar.close()
        if n_batches == 0:
            raise ValueError(f"the training loader yielded no batch (training cases: {len(ids)}); "
                             f"lower batch_size or use more cases")
        return total / n_batches, n_images

    @torch.no_grad()
    def validate(self, ids: list[str], epoch: int) -> tuple[float, float]:
        """``(mean validation loss, mean foreground DSC)`` on the preprocessed grid."""

        losses, dscs = [], []
        classes = list(range(1, self.dataset.num_classes))
        ps = self.cfg.patch_size  # 2D: whole image when it fits the patch, else the same tiles as predict
        for cid in ids:
            case = self.dataset[cid]
            logits = predict_logits(self.model, case.image, patch_size=ps, overlap=self.cfg.overlap,
                                    device=self.device, amp=self.amp)
            y = torch.as_tensor(np.asarray(case.label, dtype=np.int64)).unsqueeze(0).to(self.device)
            loss = self.loss(logits, y) if bool(torch.isfinite(logits).all()) else torch.tensor(float("nan"))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"non-finite validation loss ({loss.item()}) at epoch {epoch}, "
                                         f"validation case {cid}. Lower the learning rate or disable amp.")
            losses.append(float(loss))
            if self.diagnostics is not None:
                self.diagnostics.on_validation_case(logits, y[0])
            pred = hard_prediction(logits)[0].cpu()
            m = case_metrics(pred, torch.as_tensor(np.asarray(case.label, dtype=np.int64)), classes)
            dscs.append(float(np.mean([m[c]["dsc"] for c in classes])))
        return float(np.mean(losses)), float(np.mean(dscs))

    def step_scheduler(self, val_loss: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        else:
            self.scheduler.step()


def build_run(config: dict[str, Any] | TrainConfig, run_dir: Path | None = None) -> RunContext:
    """Resolve ``config`` and build the dataset, model, loss, optimiser and scheduler."""
    return RunContext(resolve_config(config), run_dir)


# -- files ------------------------------------------------------------------------------------
def _write_log(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_csv(path, history, LOG_FIELDS)


def plot_learning_curves(path: Path, history: list[dict[str, Any]]) -> None:
    """Training / validation loss (left axis) and validation DSC (right axis) per epoch, as PNG."""
    ep = [r["epoch"] for r in history]
    fig = Figure(figsize=(6, 4), dpi=100)  # no pyplot: no GUI backend, nothing global to close
    ax = fig.subplots()
    ax.plot(ep, [r["train_loss"] for r in history], label="train loss")
    ax.plot(ep, [r["val_loss"] for r in history], label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["val_dsc"] for r in history], color="tab:green", linestyle="--", label="validation DSC")
    ax2.set_ylabel("DSC")
    ax2.set_ylim(0, 1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")

    atomic_write(path, lambda f: f.write(buf.getvalue()))


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(json.dumps(d))  # plain data: tuples become lists, as in config.yaml
    for k in not_guarded():
        d.pop(k, None)
    if not schedule_uses_epochs(d):
        d.pop("epochs", None)  # only the maximum: the schedule follows the validation loss
    ds = d.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("path"), str) and os.path.isabs(ds["path"]):
        ds["path"] = os.path.normpath(ds["path"])
    return d


_DEFAULTS = TrainConfig().to_dict()


def _differences(saved: dict[str, Any], fresh: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys whose value in ``fresh`` differs from ``saved`` (``None`` in ``fresh``: filled from the data
    when the run was built, not compared; a top-level key absent from ``saved`` (a run folder written
    before the key existed) matches its default value)."""
    out: list[str] = []
    for k, v in fresh.items():
        if v is None:
            continue
        if not prefix and k not in saved and k in _DEFAULTS and v == _DEFAULTS[k]:
            continue
        if isinstance(v, dict) and isinstance(saved.get(k), dict):
            out += _differences(saved[k], v, f"{prefix}{k}.")
        elif saved.get(k) != v:
            out.append(f"{prefix}{k}: {saved.get(k)!r} -> {v!r}")
    return out


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / "summary.json"
    if p.is_file():
        try:
            s = json.loads(p.read_text())
        except json.JSONDecodeError:
            return None
        if s.get("status") == "finished":
            return s
    return None


def _stop_reason(summary: dict[str, Any], saved: dict[str, Any]) -> str:
    """Which limit ended a finished run: ``patience``, ``stop_after`` or ``epochs`` (summaries written
    before ``stop_reason`` was recorded: inferred from the run's ``config.yaml``)."""
    if "stop_reason" in summary:
        return str(summary["stop_reason"])
    stop, patience = int(summary.get("stop_epoch", 0)), saved.get("patience")
    if patience is not None and stop - int(summary.get("best_epoch", 0)) >= patience:
        return "patience"
    if saved.get("stop_after") is not None and stop == saved["stop_after"] and stop < int(saved.get("epochs") or 0):
        return "stop_after"
    return "epochs"


def continues_finished_run(run_dir: str | Path, config: dict[str, Any] | TrainConfig) -> bool:
    """Whether ``run_dir`` holds a finished run that ``config`` continues: the run was ended by its
    ``stop_after``, its ``patience``, or (under the plateau schedule, which does not read it) its
    ``epochs``, its ``checkpoints/last.pt`` is still there, and ``config`` lets it
    go on: ``min(epochs, stop_after)`` beyond the run's ``stop_epoch``, and (for a run ended by its
    patience) no ``patience`` or one larger than the epochs the run went without improving. The
    configuration guard still applies when the run is started."""
    run_dir = Path(run_dir)
    done = _read_summary(run_dir)
    cfg_path = run_dir / "config.yaml"
    if done is None or not cfg_path.is_file() or not (run_dir / "checkpoints" / "last.pt").is_file():
        return False
    saved = read_yaml_mapping(cfg_path, "the run's configuration")
    reason = _stop_reason(done, saved)
    if reason not in ("stop_after", "patience") and not (reason == "epochs" and not schedule_uses_epochs(saved)):
        return False
    cfg = config if isinstance(config, TrainConfig) else resolve_config(config)
    stop = int(done["stop_epoch"])
    if cfg.patience is not None and stop - int(done["best_epoch"]) >= cfg.patience:
        return False  # the new patience ends the run where it ended
    epochs = cfg.epochs if cfg.epochs is not None else saved.get("epochs")
    limit = epochs if cfg.stop_after is None else min(epochs, cfg.stop_after)
    return limit > stop


def train_and_evaluate(config: dict[str, Any] | TrainConfig, run_dir: str | Path, progress: bool = True) -> dict:
    """Run (or resume, or skip when finished) one training run and return its summary.

    The run folder is locked for the whole call (:func:`unifocal.training.lock.run_lock`): a second
    process on the same folder fails with a ``ValueError`` naming the owner's pid.

    Args:
        config: A configuration dict (see :mod:`unifocal.training.config`) or a :class:`TrainConfig`.
        run_dir: The run folder (created); see the run-folder contract in ``docs/architecture.md``.
        progress: Show progress bars (epoch and batch, with loss and learning rate).

    Returns:
        The content of ``summary.json``.

    Raises:
        ValueError: Invalid configuration (before any training), or ``run_dir`` holds a run of a
            different configuration.
        NonFiniteLossError: NaN / Inf loss (the last good checkpoint is kept).
    """

    cfg = resolve_config(config)
    with run_lock(run_dir):
        return _train_and_evaluate_locked(cfg, Path(run_dir), progress)


def _check_own_configuration(cfg: TrainConfig, run_dir: Path) -> None:
    """The configuration guard of a run folder (from the first write of ``config.yaml``).

    A resumed run uses its own configuration: the one recorded in ``checkpoints/last.pt`` (what the
    epochs so far were trained with). ``config.yaml`` must agree with it (an edited ``config.yaml`` is
    refused, never half followed), and the configuration given must agree with both.

    Raises:
        ValueError: naming the differing keys.
    """
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        return
    old = read_yaml_mapping(cfg_path, "the run's configuration")
    path = (old.get("dataset") or {}).get("path") if isinstance(old.get("dataset"), dict) else None
    if isinstance(path, str) and not os.path.isabs(os.path.expanduser(path)):
        raise ValueError(f"{cfg_path} records the relative dataset path {path!r} (written before dataset paths "
                         f"were stored absolute): it would be read from whatever the working directory is; "
                         f"write the absolute path of the dataset this run was trained on into dataset.path of "
                         f"{cfg_path} (and give the same --dataset), then rerun")
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        recorded = load_checkpoint(last, map_location="cpu").get("config")
        if isinstance(recorded, dict):
            edited = _differences(_comparable(recorded), _comparable(old))
            if edited:
                raise ValueError(f"{cfg_path} was changed after training started ({', '.join(edited)}: the "
                                 f"configuration {last} was trained with -> config.yaml); a run keeps its own "
                                 f"configuration: restore config.yaml, or train the new configuration in another "
                                 f"output folder")
    diff = _differences(_comparable(old), _comparable(cfg.to_dict()))
    if diff:
        raise ValueError(f"{run_dir} holds a run with a different configuration ({', '.join(diff)}; see its "
                         f"config.yaml); use another output folder, or delete {run_dir} to start over")


def _train_and_evaluate_locked(cfg: TrainConfig, run_dir: Path, progress: bool) -> dict:
    cfg_path = run_dir / "config.yaml"
    _check_own_configuration(cfg, run_dir)
    done = _read_summary(run_dir)
    if done is not None:
        if not continues_finished_run(run_dir, cfg):
            return done
        if "stop_reason" not in done:  # recorded before config.yaml (which it was read from) is rewritten
            atomic_write_json(run_dir / "summary.json", {**done, "stop_reason": "stop_after"})
    ctx = RunContext(cfg, run_dir)
    cfg = ctx.cfg
    cfg_dict = cfg.to_dict()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg_path, yaml.safe_dump(cfg_dict, sort_keys=False))


    if cfg.fold == ALL_FOLDS:  # the final model on every case; validation = the training cases
        train_ids = list(ctx.dataset.ids)
        val_ids = list(train_ids)
    else:
        splits_dir = Path(cfg.splits_dir) if cfg.splits_dir else run_dir
        folds = get_splits(ctx.dataset, splits_dir, n_folds=cfg.n_folds, seed=cfg.split_seed,
                           group_duplicates=cfg.group_duplicates)
        train_ids, val_ids = list(folds[cfg.fold]["train"]), list(folds[cfg.fold]["val"])
    atomic_write_json(run_dir / "split.json", {"fold": cfg.fold, "train": train_ids, "val": val_ids})
    if not train_ids or not val_ids:
        raise ValueError(f"fold {cfg.fold} has {len(train_ids)} training and {len(val_ids)} validation cases; "
                         f"use a dataset with more cases or fewer folds")

    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    history: list[dict[str, Any]] = []
    diag_history: list[dict[str, Any]] = []
    start_epoch, best_loss, best_epoch, wall = 0, math.inf, 0, 0.0
    spec = model_spec(cfg, ctx.dataset)
    if last_path.exists():
        st = load_checkpoint(last_path, map_location=ctx.device)
        ctx.model.load_state_dict(st["model"])
        ctx.optimizer.load_state_dict(st["optimizer"])
        ctx.scheduler.load_state_dict(st["scheduler"])
        if st.get("scaler"):
            ctx.scaler.load_state_dict(st["scaler"])
        start_epoch, best_loss, best_epoch = st["epoch"], st["best_val_loss"], st["best_epoch"]
        history, wall = list(st["history"]), float(st["wall_time_s"])
        diag_history = list(st.get("diagnostics") or [])
        set_rng_state(st["rng"])
        _write_log(run_dir / "log.csv", history)
        if done is not None:  # a finished run continued: an interruption from now on leaves a resumable run
            (run_dir / "summary.json").unlink()


    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)
    epoch_bar = None
    if progress:

        epoch_bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=f"train {run_dir.name}", unit="epoch")
    def patience_exhausted(epoch: int) -> bool:
        return cfg.patience is not None and epoch - best_epoch >= cfg.patience

    stop_epoch = start_epoch
    try:
        last_epoch = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, cfg.stop_after)
        for epoch in range(start_epoch + 1, last_epoch + 1):
            if patience_exhausted(epoch - 1):
                break  # resumed after the stopping epoch
            t0 = time.perf_counter()
            lr = ctx.optimizer.param_groups[0]["lr"]
            train_loss, _ = ctx.train_epoch(train_ids, epoch, progress=progress)
            if epoch == 1 and not ctx.foreground_seen:
                warnings.warn(f"{run_dir}: no foreground voxel in any training batch of epoch 1 (every mask read "
                              f"is background, label 0); check the masks and the label values the layout "
                              f"expects (e.g. 0/255 or 0/1 for pairs)", AllBackgroundWarning, stacklevel=2)
            val_loss, val_dsc = ctx.validate(val_ids, epoch)
            ctx.step_scheduler(val_loss)
            dt = time.perf_counter() - t0
            wall += dt
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dsc": val_dsc,
                   "lr": lr, "seconds": round(dt, 3)}
            history.append(row)
            if ctx.diagnostics is not None:
                diag_history.append(ctx.diagnostics.end_epoch(epoch))
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                save_checkpoint(best_path, {"model": ctx.model.state_dict(), "epoch": epoch, "val_loss": val_loss,
                                            "spec": spec, "config": cfg_dict})
            save_checkpoint(last_path, {
                "model": ctx.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
                "scheduler": ctx.scheduler.state_dict(), "scaler": ctx.scaler.state_dict(),
                "epoch": epoch, "best_val_loss": best_loss, "best_epoch": best_epoch, "history": history,
                "wall_time_s": wall, "rng": get_rng_state(), "spec": spec, "config": cfg_dict,
                "diagnostics": diag_history})
            _write_log(run_dir / "log.csv", history)
            if ctx.diagnostics is not None:
                atomic_write_csv(run_dir / "diagnostics.csv", diag_history, ctx.diagnostics.fields())
            for k in ("train_loss", "val_loss", "val_dsc", "lr"):
                writer.add_scalar(k, row[k], epoch)
            writer.flush()
            if epoch_bar is not None:
                epoch_bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", dsc=f"{val_dsc:.3f}",
                                      lr=f"{lr:.2e}")
                epoch_bar.update(1)
            stop_epoch = epoch
            if patience_exhausted(epoch):
                break
    finally:
        writer.close()
        if epoch_bar is not None:
            epoch_bar.close()

    # evaluation of the best model in the original geometry
    best = load_checkpoint(best_path, map_location=ctx.device)
    ctx.model.load_state_dict(best["model"])
    t0 = time.perf_counter()
    rows = evaluate_cases(ctx.model, ctx.dataset, val_ids, patch_size=cfg.patch_size, overlap=cfg.overlap,
                          device=ctx.device, amp=ctx.amp,
                          predictions_dir=run_dir / "predictions" if cfg.save_predictions else None,
                          progress=progress)
    write_metrics_csv(run_dir / "metrics_per_case.csv", rows)
    plot_learning_curves(run_dir / "learning_curves.png", history)
    wall += time.perf_counter() - t0
    stop_epoch = history[-1]["epoch"] if history else stop_epoch
    reason = ("patience" if patience_exhausted(stop_epoch) else
              "stop_after" if cfg.stop_after is not None and stop_epoch >= cfg.stop_after else "epochs")
    summary = {"status": "finished", "best_epoch": best_epoch, "stop_epoch": stop_epoch, "epochs": cfg.epochs,
               "stopped_early": stop_epoch < cfg.epochs, "stop_reason": reason, "wall_time_s": round(wall, 3),
               "best_val_loss": best_loss, "metrics": aggregate(rows)}
    atomic_write_json(run_dir / "summary.json", summary)
    return summary
