"""The study's figures (matplotlib; each written as PNG and PDF).

* :func:`fig2_loss_curves`: the paper's Fig. 2, loss against the probability of the true class for
  several γ, for the focal and the focal-Tversky components, background and foreground (rare) class.
* :func:`sensitivity_figure`: DSC / precision / recall against δ, γ and λ (tuning grids) with CI bands.
* :func:`learning_curves_figure`: training and validation loss and validation DSC per epoch, one line
  per run (fold) of an arm, from each run's ``log.csv``.
* :func:`fold_learning_curves_figure`: validation loss (relative to its first epoch) and validation
  DSC per epoch of every arm on one fold, the best epoch (lowest validation loss) marked.
* :func:`diagnostics_figure`: from runs trained with ``diagnostics: true``, the gradient norm of each
  block of the network in the first and last epoch, that of the deepest block and the head per epoch,
  and the predicted (pixels and mean probability) against the true foreground share of the validation
  cases per epoch.
* :func:`cd_diagram`: the critical-difference diagram (Demšar 2006) of the losses' mean ranks over the
  trained networks, with the Nemenyi critical difference.
* :func:`overlay_figure`: the paper's Fig. 3, one case's segmentation by each loss beside the ground
  truth, with contours and a magnified inset, from the runs' saved ``predictions/``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from unifocal._atomic import atomic_write
from unifocal.study.plan import table2_lambda
from unifocal.study.results import METRICS, Arm, aggregate

__all__ = [
    "cd_diagram",
    "choose_overlay_case",
    "deepest_block",
    "diagnostics_figure",
    "fig2_components",
    "fig2_loss_curves",
    "find_sweeps",
    "fold_learning_curves_figure",
    "learning_curves_figure",
    "overlay_figure",
    "read_prediction",
    "save_figure",
    "sensitivity_figure",
]

_COLORS = {"dsc": "tab:blue", "precision": "tab:orange", "recall": "tab:green"}
_LABEL = {"dsc": "DSC", "precision": "Precision", "recall": "Recall"}


def save_figure(fig: Any, path_stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save ``fig`` atomically as ``<stem>.<fmt>`` for each format and close it; returns the paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        p = stem.parent / f"{stem.name}.{fmt}"
        atomic_write(p, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=150, bbox_inches="tight"))
        out.append(p)
    return out


def fig2_components(p: np.ndarray, gamma: float, delta: float = 0.6) -> dict[str, np.ndarray]:
    """The loss components of one position against the probability ``p`` of its true class.

    Formulas of ``docs/losses.md`` ("Conventions" 1, 3, 4, 9), per position:

    * asymmetric focal, background: ``(1-δ)·(1-p)^γ·(-log p)``; foreground (rare): ``δ·(-log p)``;
      the symmetric variant modulates the foreground too: ``δ·(1-p)^γ·(-log p)``.
    * focal Tversky of a one-position structure predicted with probability ``p``: ``TP = p``,
      ``FN = 1-p``, ``FP = 0``, so ``TI = p / (p + δ(1-p))``; background ``1 - TI``, foreground
      (rare) ``(1 - TI)^(1-γ)``; the symmetric variant enhances the background too.

    Returns:
        ``{"focal_bg", "focal_fg", "focal_fg_sym", "ft_bg", "ft_bg_sym", "ft_fg"}`` arrays like ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    ce = -np.log(p)
    ti = p / (p + delta * (1.0 - p))
    one_m = np.clip(1.0 - ti, 0.0, None)
    return {
        "focal_bg": (1.0 - delta) * (1.0 - p) ** gamma * ce,
        "focal_fg": delta * ce,
        "focal_fg_sym": delta * (1.0 - p) ** gamma * ce,
        "ft_bg": one_m,
        "ft_bg_sym": one_m ** (1.0 - gamma),
        "ft_fg": one_m ** (1.0 - gamma),
    }


def fig2_loss_curves(out_stem: str | Path, gammas: Sequence[float] = (0.0, 0.2, 0.5, 0.8),
                     delta: float = 0.6, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Fig. 2: focal (top) and focal-Tversky (bottom) components against the true-class probability,
    background (left: suppressed by γ) and foreground / rare class (right: enhanced by γ).

    Solid lines: the asymmetric Unified Focal components; dashed: the symmetric variant where the
    asymmetric one does not depend on γ.

    Raises:
        ValueError: if a γ lies outside [0, 1) or δ outside (0, 1).
    """
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    bad = [g for g in gammas if not 0.0 <= g < 1.0]
    if bad:
        raise ValueError(f"gamma must lie in [0, 1) for the figure, got {bad}")
    p = np.linspace(1e-3, 1.0, 500)
    fig = Figure(figsize=(10, 8))
    axes = fig.subplots(2, 2, sharex=True)
    cmap = matplotlib.colormaps["viridis"]
    for i, g in enumerate(gammas):
        c = cmap(i / max(len(gammas) - 1, 1))
        comp = fig2_components(p, g, delta)
        axes[0, 0].plot(p, comp["focal_bg"], color=c, label=f"γ = {g:g}")
        axes[0, 1].plot(p, comp["focal_fg_sym"], color=c, ls="--", label=f"symmetric, γ = {g:g}")
        axes[1, 0].plot(p, comp["ft_bg_sym"], color=c, ls="--", label=f"symmetric, γ = {g:g}")
        axes[1, 1].plot(p, comp["ft_fg"], color=c, label=f"γ = {g:g}")
    comp = fig2_components(p, 0.0, delta)
    axes[0, 1].plot(p, comp["focal_fg"], color="k", lw=2, label="asymmetric (any γ)")
    axes[1, 0].plot(p, comp["ft_bg"], color="k", lw=2, label="asymmetric (any γ)")
    titles = [["Focal component, background (suppressed)", "Focal component, foreground (rare)"],
              ["Focal Tversky component, background", "Focal Tversky component, foreground (enhanced)"]]
    for r in range(2):
        for c in range(2):
            ax = axes[r, c]
            ax.set_title(titles[r][c], fontsize=10)
            ax.set_xlabel("probability of the ground-truth class")
            ax.set_ylabel("loss")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    axes[0, 0].set_ylim(0, 3)
    axes[0, 1].set_ylim(0, 3)
    fig.suptitle(f"Unified Focal loss components (δ = {delta:g})")
    return save_figure(fig, out_stem, formats)


def find_sweeps(arms: dict[str, Arm], params: Sequence[str] = ("delta", "gamma", "lambda_"),
                loss: str = "unified_focal") -> dict[str, list[str]]:
    """One-at-a-time sweeps among the arms of ``loss``: ``{param: [arm, ...]}`` sorted by the value.

    For each parameter the arms are grouped by the values of the other parameters; the largest group
    with at least two values of the parameter is the sweep (ties: the first group found).
    """
    out: dict[str, list[str]] = {}
    cand = [a for a in arms.values() if a.loss == loss]
    for prm in params:
        groups: dict[tuple, dict[float, str]] = {}
        for a in cand:
            if prm not in a.params:
                continue
            rest = tuple(sorted((k, repr(v)) for k, v in a.params.items() if k != prm))
            groups.setdefault(rest, {})[float(a.params[prm])] = a.name
        best = max(groups.values(), key=len, default={})
        if len(best) >= 2:
            out[prm] = [best[v] for v in sorted(best)]
    return out


def sensitivity_figure(arms: dict[str, Arm], out_stem: str | Path, cls: str, unit: str = "folds",
                       lambda_axis: str = "table2", formats: Sequence[str] = ("png", "pdf"),
                       loss: str = "unified_focal") -> list[Path]:
    """DSC, precision and recall against each swept parameter, mean with its CI band.

    Args:
        arms: the study's arms.
        out_stem: output path without suffix.
        cls: the class to plot.
        unit: CI unit (``folds`` or ``cases``).
        lambda_axis: ``"table2"`` plots λ as the paper's Table 2 column (``1 - λ`` of Eq. 20, i.e. the
            weight of the Tversky term), ``"eq20"`` as this library's λ (weight of the focal term).
        formats: file formats.
        loss: the tuned loss.

    Returns:
        The written paths (empty when there is no sweep).

    Raises:
        ValueError: for an unknown ``lambda_axis``.
    """
    if lambda_axis not in ("table2", "eq20"):
        raise ValueError(f"lambda_axis must be 'table2' or 'eq20', got {lambda_axis!r}")
    sweeps = find_sweeps(arms, loss=loss)
    if not sweeps:
        return []
    fig = Figure(figsize=(4.5 * len(sweeps), 3.8))
    axes = fig.subplots(1, len(sweeps), squeeze=False)
    for ax, (prm, names) in zip(axes[0], sweeps.items()):
        xs = np.array([float(arms[n].params[prm]) for n in names])
        xlabel = {"delta": "δ", "gamma": "γ", "lambda_": "λ (Eq. 20: weight of the focal term)"}[prm]
        if prm == "lambda_" and lambda_axis == "table2":
            xs = np.array([table2_lambda(x) for x in xs])
            xlabel = "λ (Table 2 column = 1 − λ of Eq. 20)"
        order = np.argsort(xs)
        fixed = {k: v for k, v in arms[names[0]].params.items() if k != prm}
        for m in METRICS:
            cis = [aggregate(arms[names[i]], cls, m, unit) for i in order]
            mean = np.array([c.mean for c in cis])
            hw = np.array([c.half_width if math.isfinite(c.half_width) else 0.0 for c in cis])
            ax.plot(xs[order], mean, "o-", color=_COLORS[m], label=_LABEL[m])
            ax.fill_between(xs[order], mean - hw, mean + hw, color=_COLORS[m], alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.set_title(", ".join(f"{'λ' if k == 'lambda_' else {'delta': 'δ', 'gamma': 'γ'}.get(k, k)}={v:g}"
                               for k, v in sorted(fixed.items())), fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"Sensitivity, class {cls} (mean ± 95% CI over {unit})")
    fig.tight_layout()
    return save_figure(fig, out_stem, formats)


def _read_log(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                try:
                    out.setdefault(k, []).append(float(v))
                except (TypeError, ValueError):
                    out.setdefault(k, []).append(float("nan"))
    return out


def learning_curves_figure(arm: Arm, out_stem: str | Path, title: str | None = None,
                           formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Training / validation loss (left) and validation DSC (right) per epoch, one colour per run.

    Returns:
        The written paths (empty when no run of the arm has a ``log.csv``).
    """
    logs = {k: r.run_dir / "log.csv" for k, r in sorted(arm.runs.items()) if (r.run_dir / "log.csv").is_file()}
    if not logs:
        return []
    fig = Figure(figsize=(10, 3.8))
    a1, a2 = fig.subplots(1, 2)
    for i, (k, p) in enumerate(logs.items()):
        log = _read_log(p)
        ep = log.get("epoch", list(range(len(next(iter(log.values()))))))
        c = f"C{i % 10}"
        if "train_loss" in log:
            a1.plot(ep, log["train_loss"], color=c, label=f"fold {k} train")
        if "val_loss" in log:
            a1.plot(ep, log["val_loss"], color=c, ls="--", label=f"fold {k} val")
        if "val_dsc" in log:
            a2.plot(ep, log["val_dsc"], color=c, label=f"fold {k}")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation DSC")
    a2.set_ylim(0, 1)
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    fig.suptitle(title or arm.name)
    fig.tight_layout()
    return save_figure(fig, out_stem, formats)


def rescaled_loss(values: Sequence[float]) -> np.ndarray:
    """``(L - min L) / (L_1 - min L)``: a loss curve on a common scale whatever the loss's scale and sign
    (1 at the first epoch, 0 at the lowest value; shifted only when the first value is the lowest)."""
    v = np.asarray(values, dtype=float)
    low = np.nanmin(v)
    span = v[0] - low
    return (v - low) / span if span > 0 else v - low


def fold_learning_curves_figure(arms: dict[str, Arm], order: Sequence[str], titles: dict[str, str], fold: int,
                                out_stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Every arm's learning curves on one fold: validation loss rescaled per arm to
    ``(L - min L) / (L_1 - min L)`` (left: the losses have different scales and signs, Combo's is
    negative; every curve starts at 1 and reaches 0 at its best epoch) and validation DSC (right), a dot
    at the best epoch (lowest validation loss).

    Returns:
        The written paths (empty when no arm has a ``log.csv`` for ``fold``).
    """
    logs = {n: arms[n].runs[fold].run_dir / "log.csv" for n in order
            if fold in arms[n].runs and (arms[n].runs[fold].run_dir / "log.csv").is_file()}
    if not logs:
        return []
    fig = Figure(figsize=(11, 4.2))
    a1, a2 = fig.subplots(1, 2)
    for i, (name, p) in enumerate(logs.items()):
        log = _read_log(p)
        ep, vl, dsc = log["epoch"], np.asarray(log["val_loss"]), log["val_dsc"]
        b = int(np.nanargmin(vl))
        rel = rescaled_loss(vl)
        c = f"C{i % 10}"
        a1.plot(ep, rel, color=c, label=titles.get(name, name))
        a1.plot([ep[b]], [rel[b]], "o", color=c, ms=4)
        a2.plot(ep, dsc, color=c, label=titles.get(name, name))
        a2.plot([ep[b]], [dsc[b]], "o", color=c, ms=4)
    a1.set_xlabel("epoch")
    a1.set_ylabel("validation loss, (L − min L) / (L₁ − min L)")
    a1.grid(alpha=0.3)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation DSC")
    a2.set_ylim(0, 1)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Learning curves, fold {fold} (dot: best epoch, the selected model)")
    fig.tight_layout()
    return save_figure(fig, out_stem, formats)


def deepest_block(blocks: Sequence[str]) -> str:
    """The block a vanishing gradient reaches last: the deepest encoder block of a U-Net (the highest
    ``down.<i>``), else the middle block in network order."""
    down = [b for b in blocks if b.startswith("down.") and b[5:].isdigit()]
    if down:
        return max(down, key=lambda b: int(b[5:]))
    if not blocks:
        raise ValueError("no gradient block in diagnostics.csv")
    return blocks[len(blocks) // 2]


def diagnostics_figure(arms: dict[str, Arm], order: Sequence[str], titles: dict[str, str], fold: int,
                       out_stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Three panels for every arm's run on ``fold`` that has a ``diagnostics.csv``: the gradient norm per
    block at the first and last epoch (log scale; blocks in network order); the gradient norm of the
    deepest block (:func:`deepest_block`) and of the output head per epoch; and the foreground share of
    the validation cases per epoch: predicted (solid), mean predicted probability (dotted, where
    recorded) and true (dashed). A collapsed network predicts no foreground pixel while its mean
    probability shows whether it is moving.

    Returns:
        The written paths (empty when no such run).
    """
    files = {n: arms[n].runs[fold].run_dir / "diagnostics.csv" for n in order
             if fold in arms[n].runs and (arms[n].runs[fold].run_dir / "diagnostics.csv").is_file()}
    if not files:
        return []
    fig = Figure(figsize=(15, 4.4))
    a1, a3, a2 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.3, 1, 1]})
    blocks: list[str] = []
    deep = ""
    for i, (name, p) in enumerate(files.items()):
        d = _read_log(p)
        blocks = [k[len("grad/"):] for k in d if k.startswith("grad/")]
        deep = deepest_block(blocks)
        c = f"C{i % 10}"
        title = titles.get(name, name)
        x = np.arange(len(blocks))
        for row, ls, when in ((0, "-", "epoch 1"), (-1, ":", f"epoch {int(d['epoch'][-1])}")):
            y = np.array([d[f"grad/{b}"][row] for b in blocks])
            a1.plot(x, np.where(y > 0, y, np.nan), ls=ls, marker="o", ms=3, color=c, label=f"{title}, {when}")
        for block, ls in ((deep, "-"), (blocks[-1], ":")):
            y = np.asarray(d[f"grad/{block}"], dtype=float)
            a3.plot(d["epoch"], np.where(y > 0, y, np.nan), color=c, ls=ls, label=f"{title}: {block}")
        a2.plot(d["epoch"], d["val_fg_pred"], color=c, label=f"{title}: predicted")
        if "val_fg_prob" in d:
            a2.plot(d["epoch"], d["val_fg_prob"], color=c, ls=":", label=f"{title}: mean probability")
        a2.plot(d["epoch"], d["val_fg_true"], color=c, ls="--", lw=0.8)
    a1.set_yscale("log")
    a1.set_xticks(np.arange(len(blocks)), blocks, rotation=60, fontsize=7)
    a1.set_ylabel("gradient L2 norm (mean over batches)")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=7)
    a3.set_yscale("log")
    a3.set_xlabel("epoch")
    a3.set_ylabel(f"gradient L2 norm: {deep} (solid), {blocks[-1]} (dotted)")
    a3.grid(alpha=0.3)
    a3.legend(fontsize=7)
    a2.set_xlabel("epoch")
    a2.set_ylabel("foreground share, validation (dashed: true)")
    a2.set_ylim(bottom=0)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=7)
    fig.suptitle(f"Training diagnostics, fold {fold}")
    fig.tight_layout()
    return save_figure(fig, out_stem, formats)


def _prediction_file(run_dir: Path, case_id: str) -> Path | None:
    for suffix in (".png", ".nii.gz", ".nii"):
        p = run_dir / "predictions" / f"{case_id}{suffix}"
        if p.is_file():
            return p
    return None


def read_prediction(path: str | Path, num_classes: int) -> np.ndarray:
    """Label map of a saved prediction (PNG grey level ``class * (255 // (K-1))``, or NIfTI labels)."""
    path = Path(path)
    if path.suffix == ".png":
        arr = np.asarray(Image.open(path))
        if arr.ndim == 3:
            arr = arr[..., 0]
        scale = 255 // max(num_classes - 1, 1)
        return np.rint(arr.astype(np.float64) / scale).astype(np.int64)

    return np.asarray(nib.load(str(path)).dataobj).astype(np.int64)


def _slice(image: np.ndarray, label: np.ndarray, preds: list[np.ndarray]) -> tuple:
    """2D views: the image's first channel; for 3D the slice (last axis) with most foreground."""
    img = image[0] if image.ndim == label.ndim + 1 else image
    if label.ndim == 3:
        z = int(np.argmax((label > 0).reshape(-1, label.shape[-1]).sum(0)))
        return img[..., z], label[..., z], [p[..., z] for p in preds]
    return img, label, preds


def _prediction_files(arms: dict[str, Arm], order: Sequence[str], cid: str) -> dict[str, Path]:
    out = {}
    for n in order:
        for r in arms[n].runs.values():
            f = _prediction_file(r.run_dir, cid)
            if f is not None:
                out[n] = f
                break
    return out


def _case_stem(name: str) -> str | None:
    for suffix in (".nii.gz", ".png", ".nii"):
        if name.endswith(suffix) and not name.endswith(f"_probs{suffix}"):
            return name[: -len(suffix)]
    return None


def choose_overlay_case(arms: dict[str, Arm], order: Sequence[str]) -> str | None:
    """The default case of Fig. 3: saved predictions from every arm in ``order``, a non-empty ground
    truth when the per-case counts tell (``tp + fn > 0``), and the largest DSC spread across the arms
    (ties: the smallest id). ``None`` when no case has predictions from every arm.
    """
    if not order:
        return None
    first = arms[order[0]]
    ids = sorted({stem for r in first.runs.values() for f in (r.run_dir / "predictions").glob("*")
                  if (stem := _case_stem(f.name)) is not None})
    cands = [cid for cid in ids if len(_prediction_files(arms, order, cid)) == len(order)]
    present = [cid for cid in cands
               if any(per[cid].get("tp", 0) + per[cid].get("fn", 0) > 0
                      for r in first.runs.values() for per in r.cases.values() if cid in per)]
    cands = present or cands
    if not cands:
        return None
    cls = first.classes[0] if first.classes else None

    def spread(cid: str) -> float:
        v = [arms[n].case_values(cls, "dsc").get(cid, float("nan")) for n in order] if cls else []
        v = [x for x in v if math.isfinite(x)]
        return (max(v) - min(v)) if v else 0.0

    return sorted(cands, key=lambda c: (-spread(c), c))[0]


def overlay_figure(arms: dict[str, Arm], order: Sequence[str], titles: dict[str, str], dataset: Any,
                   out_stem: str | Path, case_id: str | None = None,
                   formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Fig. 3: one case, ground truth and each arm's prediction, with contours and a zoomed inset.

    Args:
        arms: the study's arms (their runs' ``predictions/`` are read).
        order: arms to show, in order.
        titles: panel titles by arm.
        dataset: the dataset (``original(case_id)`` gives image and label in the original geometry,
            the geometry of the saved predictions) with ``num_classes``.
        out_stem: output path without suffix.
        case_id: the case; default the case with predictions from every arm and a non-empty ground
            truth (when the per-case counts say so) whose DSC differs most across arms (ties: the
            smallest id).
        formats: file formats.

    Returns:
        The written paths; empty when no case has predictions from every arm.

    Raises:
        ValueError: if ``case_id`` lacks a prediction of some arm.
    """
    if case_id is None:
        case_id = choose_overlay_case(arms, order)
        if case_id is None:
            return []
    found = _prediction_files(arms, order, case_id)
    missing = [n for n in order if n not in found]
    if missing:
        raise ValueError(f"case {case_id!r} has no saved prediction for {missing} (train with save_predictions)")
    orig = dataset.original(case_id)
    k = int(dataset.num_classes)
    preds = [read_prediction(found[n], k) for n in order]
    label = np.asarray(orig.label).astype(np.int64)
    for n, p in zip(order, preds):
        if p.shape != label.shape:
            raise ValueError(f"prediction of {n} for {case_id!r} has shape {p.shape}, label {label.shape}")
    img, lab, prd = _slice(np.asarray(orig.image, dtype=np.float64), label, preds)
    fg = np.argwhere(lab > 0)
    if fg.size:
        (y0, x0), (y1, x1) = fg.min(0), fg.max(0)
    else:
        y0, x0, y1, x1 = 0, 0, lab.shape[0] - 1, lab.shape[1] - 1
    m = max(4, int(0.15 * max(y1 - y0, x1 - x0)))
    y0, x0 = max(0, y0 - m), max(0, x0 - m)
    y1, x1 = min(lab.shape[0] - 1, y1 + m), min(lab.shape[1] - 1, x1 + m)
    panels = [("Ground truth", lab)] + [(titles.get(n, n), p) for n, p in zip(order, prd)]
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig = Figure(figsize=(3.2 * ncol, 3.4 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    cls_colors = ["red", "yellow", "cyan", "magenta", "orange"]

    def draw(ax: Any, seg: np.ndarray, is_gt: bool) -> None:
        ax.imshow(img, cmap="gray", interpolation="nearest")
        for c in range(1, k):
            if (lab == c).any():
                ax.contour(lab == c, levels=[0.5], colors="lime", linewidths=1.0)
            if not is_gt and (seg == c).any():
                color = cls_colors[(c - 1) % len(cls_colors)]
                ax.imshow(np.ma.masked_where(seg != c, np.ones_like(seg, dtype=float)),
                          cmap=matplotlib.colors.ListedColormap([color]), alpha=0.25, vmin=0, vmax=1,
                          interpolation="nearest")
                ax.contour(seg == c, levels=[0.5], colors=cls_colors[(c - 1) % len(cls_colors)],
                           linewidths=1.0)
        ax.set_xticks([])
        ax.set_yticks([])

    for i, (title, seg) in enumerate(panels):
        ax = axes[i // ncol, i % ncol]
        draw(ax, seg, i == 0)
        ax.set_title(title, fontsize=9)
        ins = ax.inset_axes([0.58, 0.58, 0.4, 0.4])
        draw(ins, seg, i == 0)
        ins.set_xlim(x0 - 0.5, x1 + 0.5)
        ins.set_ylim(y1 + 0.5, y0 - 0.5)
        for s in ins.spines.values():
            s.set_edgecolor("white")
        ax.indicate_inset_zoom(ins, edgecolor="white")
    for j in range(len(panels), nrow * ncol):
        axes[j // ncol, j % ncol].axis("off")
    fig.suptitle(f"Case {case_id}: ground truth (green contour) and prediction (red, shaded)")
    fig.tight_layout()
    return save_figure(fig, out_stem, formats)


def cd_diagram(ranks: dict[str, float], cd: float, titles: dict[str, str], out_stem: str | Path,
               formats: Sequence[str] = ("png", "pdf"), title: str | None = None) -> list[Path]:
    """The critical-difference diagram of Demšar (2006, Fig. 1): the mean rank of every loss on an axis
    (1 = best, on the left), the Nemenyi critical difference as a bar above it, and a thick line joining
    each maximal group of losses whose mean ranks lie within one critical difference (not told apart).

    Args:
        ranks: ``{arm: mean rank}`` (:func:`unifocal.study.statistics.mean_ranks`).
        cd: the critical difference (:func:`unifocal.study.statistics.nemenyi_cd`).
        titles: display names of the arms.
        out_stem: output path without extension.
        formats: file formats.
        title: a caption above the axis.
    """
    names = sorted(ranks, key=lambda n: ranks[n])
    k = len(names)
    lo, hi = 1, max(k, 2)
    fig = Figure(figsize=(7.5, 1.6 + 0.32 * k))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xlim(lo - 0.3, hi + 0.3)
    ax.set_ylim(-(((k + 1) // 2) * 0.55 + 0.7), 2.2)
    ax.axis("off")
    ax.hlines(0, lo, hi, color="black", lw=1)
    for r in range(lo, hi + 1):
        ax.vlines(r, 0, 0.15, color="black", lw=1)
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize=9)
    ax.hlines(1.3, lo, lo + cd, color="black", lw=1.5)
    ax.vlines([lo, lo + cd], 1.2, 1.4, color="black", lw=1.5)
    ax.text(lo + cd / 2, 1.5, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    half = (k + 1) // 2
    for i, n in enumerate(names):
        x = ranks[n]
        left = i < half
        row = -(i + 1) if left else -(k - i)
        y = row * 0.55 - 0.3
        xt = lo - 0.25 if left else hi + 0.25
        ax.plot([x, x, xt], [0, y, y], color="0.3", lw=0.8)
        ax.text(xt - 0.05 if left else xt + 0.05, y, f"{titles.get(n, n)} ({x:.2f})", ha="right" if left else "left",
                va="center", fontsize=9)
    # maximal cliques: runs of consecutive losses (by rank) spanning less than the critical difference
    cliques = []
    for i in range(k):
        j = i
        while j + 1 < k and ranks[names[j + 1]] - ranks[names[i]] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in cliques):
            cliques.append((i, j))
    for c, (i, j) in enumerate(cliques):
        y = -0.15 - 0.12 * (c + 1)
        ax.hlines(y, ranks[names[i]] - 0.03, ranks[names[j]] + 0.03, color="black", lw=3)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, out_stem, formats)
