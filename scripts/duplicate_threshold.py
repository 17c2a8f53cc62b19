"""The table behind the near-duplicate threshold (docs/data.md, "How the threshold was chosen").

For every pair of lesion images of BUSI: the thumbnail correlation of ``unifocal.data.duplicates`` and
the Dice overlap of the two lesion masks (an independent witness: two copies of one scan have the same
lesion), binned by correlation.

Usage::

    python scripts/duplicate_threshold.py $UNIFOCAL_DATA/BUSI
"""

from __future__ import annotations

import sys

import numpy as np

from unifocal.data import load_dataset
from unifocal.data.duplicates import _area_resize, thumbnail, thumbnail_correlation

BINS = [(0.80, 0.85), (0.85, 0.90), (0.90, 0.92), (0.92, 0.95), (0.95, 0.97), (0.97, 0.98), (0.98, 0.99), (0.99, 1.0)]


def main(root: str) -> None:
    ds = load_dataset(root, layout="pairs", include="^(benign|malignant)_", cache=False)
    cases = [ds.original(c) for c in ds.ids]
    r = thumbnail_correlation(np.stack([thumbnail(c.image) for c in cases]))
    masks = np.stack([_area_resize(c.label.astype(float), 64) > 0.5 for c in cases])
    iu = np.triu_indices(len(cases), 1)
    corr = r[iu]
    print(f"{len(cases)} images, {corr.size} pairs")
    print("| Correlation | Pairs | Median mask Dice | Mask Dice > 0.5 |\n|---|--:|--:|--:|")
    for lo, hi in BINS:
        idx = np.flatnonzero((corr > lo) & (corr <= hi))
        a, b = masks[iu[0][idx]], masks[iu[1][idx]]
        inter = (a & b).sum(axis=(1, 2))
        dice = 2 * inter / np.maximum(a.sum(axis=(1, 2)) + b.sum(axis=(1, 2)), 1)
        label = f"> {lo:.2f}" if hi >= 1.0 else f"{lo:.2f}–{hi:.2f}"
        med = f"{np.median(dice):.2f}" if idx.size else "–"
        share = f"{np.mean(dice > 0.5):.0%}" if idx.size else "–"
        print(f"| {label} | {idx.size} | {med} | {share} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "BUSI")
