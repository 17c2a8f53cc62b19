"""bf16 parity: do networks trained under bfloat16 autocast score like the float32 ones, above the noise?

    python scripts/bf16_parity.py results/busi_grouped results/busi_grouped_bf16

Reads two study folders that hold the same losses on the same split, one trained in float32, one with
``--amp`` (bfloat16 autocast on the CPU; stage ``busi_bf16`` of ``scripts/reproduce_converged_study.sh``),
and writes ``parity.md`` into the second. The networks are paired by (fold, seed): the same seed gives the
same initialisation and the same order of batches, so the pair differs in precision only. For every loss
present in both: the mean DSC of each precision's networks, the difference bf16 − float32 with the
hierarchical bootstrap interval of the study report (folds, then seeds, then cases), Holm over the
losses, and the verdict of :func:`unifocal.study.statistics.verdict` against the comparison's noise floor
(the root mean square of the two precisions' seed-to-seed SDs). bf16 may become a CPU study default only
when no loss is "higher" or "lower".
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from unifocal._atomic import atomic_write_text
from unifocal.study.results import collect_runs, foreground_classes, group_arms
from unifocal.study.statistics import (
    Comparison,
    hierarchical_bootstrap,
    holm,
    noise_floor,
    pair_floor,
    verdict,
)


def _by_loss(root: Path) -> dict:
    return {arm.loss: arm for arm in group_arms(collect_runs(root)).values()}


def parity(fp32_root: Path, bf16_root: Path, n_boot: int = 4000) -> str:
    fp32, bf16 = _by_loss(fp32_root), _by_loss(bf16_root)
    losses = [n for n in bf16 if n in fp32]
    if not losses:
        raise SystemExit(f"no loss is in both {fp32_root} and {bf16_root}")
    (cls, *_) = foreground_classes([fp32[n] for n in losses])
    rows, raw = [], []
    for n in losses:
        a, b = fp32[n], bf16[n]
        keys = sorted(set(a.replicates) & set(b.replicates))
        diffs = {}
        for key in keys:
            ca, cb = a.replicates[key].cases.get(cls, {}), b.replicates[key].cases.get(cls, {})
            ids = sorted(i for i in set(ca) & set(cb)
                         if math.isfinite(ca[i]["dsc"]) and math.isfinite(cb[i]["dsc"]))
            diffs[key] = np.array([cb[i]["dsc"] - ca[i]["dsc"] for i in ids])
        floors = {"fp32": noise_floor([a.network_means(cls, "dsc")]),
                  "bf16": noise_floor([b.network_means(cls, "dsc")])}
        est, lo, hi, p = hierarchical_bootstrap(diffs, n_boot=n_boot)
        raw.append((n, est, lo, hi, p, len(diffs), len({k for k, _ in diffs}), pair_floor(floors, "fp32", "bf16")))
        rows.append((n, a.network_means(cls, "dsc"), b.network_means(cls, "dsc"), floors))
    adj = holm([r[4] for r in raw])
    lines = ["| Loss | float32 networks (fold, seed): mean DSC | bf16 networks | seed SD float32 / bf16 | "
             "Δ bf16 − float32 [95% CI] | Holm p | noise floor | verdict |", "|---|---|---|:-:|:-:|:-:|:-:|---|"]
    words = []
    for (n, est, lo, hi, p, nets, folds, floor), pa, (_, ma, mb, fl) in zip(raw, adj, rows, strict=True):
        c = Comparison(f"{n} (bf16)", f"{n} (float32)", est, lo, hi, p, float(pa), nets, folds)
        word, _ = verdict(c, floor)
        words.append(word)
        fmt = lambda m: ", ".join(f"{k}/{s}: {v:.3f}" for (k, s), v in sorted(m.items()))  # noqa: E731
        lines.append(f"| {n} | {fmt(ma)} | {fmt(mb)} | {fl['fp32'].sd:.3f} / {fl['bf16'].sd:.3f} | "
                     f"{est:+.3f} [{lo:+.3f}, {hi:+.3f}] | {pa:.2g} | {floor:.3f} | {word} |")
    allowed = all(w not in ("higher", "lower") for w in words)
    lines += ["", f"Networks paired by (fold, seed); class {cls}; hierarchical bootstrap ({n_boot} replicates) over "
              "folds, seeds and cases; Holm over the losses; verdicts as in the study report. "
              + ("bf16 is allowed as a CPU study default: no loss scores higher or lower under bf16."
                 if allowed else "bf16 is **not** allowed as a CPU study default: a loss scores differently.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32", type=Path)
    ap.add_argument("bf16", type=Path)
    ap.add_argument("--n-boot", type=int, default=4000)
    args = ap.parse_args()
    text = parity(args.fp32, args.bf16, args.n_boot)
    atomic_write_text(args.bf16 / "parity.md", text)
    print(text)


if __name__ == "__main__":
    main()
