"""Dataset summary in the form of the paper's Table 1 (cases, sizes, spacings, class fractions).

Computed on the original cases (before preprocessing), so the figures describe the data as
published.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from unifocal.data.dataset import SegmentationDataset


def summarize(dataset: SegmentationDataset, ids: Sequence[str] | None = None, *,
              progress: bool = False) -> dict[str, Any]:
    """Statistics of ``dataset`` (or of the cases ``ids``) in their original geometry.

    Args:
        dataset: The dataset.
        ids: Cases to include (default all).
        progress: Show a progress bar.

    Returns:
        A dict with ``name``, ``layout``, ``cases``, ``spatial_dims``, ``in_channels``,
        ``shape`` / ``spacing`` (``min``, ``median``, ``max`` per axis), ``excluded`` and
        ``classes``: per class ``mean_pct`` (mean over cases of the per-case percentage of
        pixels/voxels), ``pooled_pct`` (percentage of all pixels/voxels) and ``cases_present``;
        ``per_case``: ``{id: [fraction per class]}``.
    """
    ids = list(ids) if ids is not None else list(dataset.ids)
    k = dataset.num_classes
    shapes, spacings, fractions, counts = [], [], [], np.zeros(k, dtype=np.int64)
    it = ids
    if progress:
        it = tqdm(ids, desc="summary")
    per_case = {}
    for cid in it:
        case = dataset.original(cid)
        c = np.bincount(case.label.ravel(), minlength=k)[:k].astype(np.int64)
        counts += c
        fr = c / max(1, case.label.size)
        fractions.append(fr)
        per_case[cid] = fr.tolist()
        shapes.append(list(case.label.shape))
        spacings.append([float(s) for s in case.meta.get("spacing", [1.0] * case.label.ndim)])
    fr = np.asarray(fractions)
    total = counts.sum()

    def stats(a: list[list[float]]) -> dict[str, list[float]]:
        arr = np.asarray(a, dtype=float)
        return {"min": arr.min(0).tolist(), "median": np.median(arr, 0).tolist(), "max": arr.max(0).tolist()}

    classes = {}
    for j, name in enumerate(dataset.class_names):
        classes[name] = {"mean_pct": float(100 * fr[:, j].mean()), "pooled_pct": float(100 * counts[j] / total),
                         "cases_present": int((fr[:, j] > 0).sum())}
    return {"name": dataset.name, "layout": dataset.layout, "cases": len(ids),
            "spatial_dims": dataset.spatial_dims, "in_channels": dataset.in_channels,
            "shape": stats(shapes), "spacing": stats(spacings), "classes": classes,
            "excluded": dict(dataset.excluded), "per_case": per_case}


def _fmt_axes(v: list[float], digits: int = 0) -> str:
    return " x ".join(f"{x:.{digits}f}" for x in v)


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table like the paper's Table 1, one row per class."""
    s = summary
    sh, sp = s["shape"], s["spacing"]
    lines = [
        f"Dataset: {s['name']}  (layout {s['layout']}, {s['spatial_dims']}D, {s['in_channels']} channel(s))",
        f"Cases: {s['cases']}" + (f"  (excluded: {len(s['excluded'])})" if s["excluded"] else ""),
        f"Image size (median): {_fmt_axes(sh['median'])}   min {_fmt_axes(sh['min'])}   max {_fmt_axes(sh['max'])}",
        f"Spacing (median):    {_fmt_axes(sp['median'], 3)}   min {_fmt_axes(sp['min'], 3)}   "
        f"max {_fmt_axes(sp['max'], 3)}",
        "",
        f"{'class':<20} {'mean % per case':>16} {'% of all pixels':>16} {'cases present':>14}",
    ]
    for name, c in s["classes"].items():
        lines.append(f"{name:<20} {c['mean_pct']:>16.3f} {c['pooled_pct']:>16.3f} {c['cases_present']:>14d}")
    fg_mean = sum(c["mean_pct"] for n, c in list(s["classes"].items())[1:])
    bg_mean = next(iter(s["classes"].values()))["mean_pct"]
    lines += ["", f"Foreground / background (mean % per case): {fg_mean:.2f} / {bg_mean:.2f}"]
    return "\n".join(lines)
