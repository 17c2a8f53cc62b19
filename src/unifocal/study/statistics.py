"""Model-level statistics of a loss comparison: the trained network is the unit, not the case.

A study trains each loss on every fold, with one or more seeds per fold. The cases validated by one
network are not independent draws (they share its weights), so the statistics here treat the
*network* (one fold, one seed) as the unit of replication (``docs/study.md``, "Statistics"):

* **Noise floor** (:func:`noise_floor`, :func:`pair_floor`): the standard deviation, across seeds on the same fold, of a
  network's mean validation DSC, pooled over folds (and over losses for the study's floor): how much
  retraining the same loss on the same data moves the result. A difference between losses smaller
  than this is not a finding, whatever its p-value.
* **Hierarchical bootstrap** (:func:`hierarchical_bootstrap`) of the mean difference between two
  losses: resample folds, then seeds within each drawn fold, then validation cases within each drawn
  network, all with replacement (the two losses' values stay paired on fold, seed and case); percentile
  interval and a two-sided bootstrap p-value.
* **Holm** step-down correction (:func:`holm`) of the p-values of the comparisons with the reference.
* **Friedman** test over blocks (the networks every loss has, one value per loss: its mean DSC) with
  the **Nemenyi** critical difference of the mean ranks (:func:`nemenyi_cd`), Demšar (2006), and the
  critical-difference diagram (:func:`unifocal.study.figures.cd_diagram`).
* **Power** (:func:`power`, :func:`networks_needed`): the chance that a study of ``F`` folds × ``S``
  seeds detects a difference ``δ`` given the measured seed noise (of a comparison: the median of the
  comparisons' pair floors) and fold-to-fold variation.

Verdicts (:func:`verdict`) are written from these numbers in a fixed vocabulary, so that a report never
says more than its statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "VERDICTS",
    "Comparison",
    "ModelLevel",
    "NoiseFloor",
    "friedman",
    "hierarchical_bootstrap",
    "holm",
    "mean_ranks",
    "model_level",
    "model_level_markdown",
    "nemenyi_cd",
    "nemenyi_q",
    "networks_needed",
    "noise_floor",
    "pair_floor",
    "power",
    "verdict",
]

#: The fixed vocabulary of a verdict (:func:`verdict`).
VERDICTS: tuple[str, ...] = ("higher", "lower", "indistinguishable", "within the noise floor", "one network")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): sort ascending, multiply the i-th smallest
    (0-based) by ``m - i``, make the sequence non-decreasing, cap at 1. NaN stays NaN and does not
    count in ``m``."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def mean_ranks(blocks: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Mean rank of each column over the rows (rank 1 = best in a row; ties get the average rank),
    on the unrounded values.

    Args:
        blocks: ``(n_blocks, k)`` values, one row per block (network), one column per loss.
        higher_is_better: rank the highest value first (DSC).
    """
    x = np.asarray(blocks, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"mean_ranks: expected (n_blocks >= 1, k) values, got shape {x.shape}")
    return stats.rankdata(-x if higher_is_better else x, axis=1).mean(axis=0)


def friedman(blocks: np.ndarray) -> tuple[float, float]:
    """Friedman's test that ``k`` losses rank alike over ``n`` blocks: ``(chi-square, p)``
    (:func:`scipy.stats.friedmanchisquare`, with its tie correction).

    Raises:
        ValueError: fewer than 3 losses or 2 blocks.
    """
    x = np.asarray(blocks, dtype=float)
    if x.ndim != 2 or x.shape[1] < 3 or x.shape[0] < 2:
        raise ValueError(f"the Friedman test needs >= 3 losses and >= 2 blocks, got shape {x.shape}")
    res = stats.friedmanchisquare(*x.T)
    return float(res.statistic), float(res.pvalue)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """The Nemenyi test's critical value ``q_alpha`` for ``k`` losses: the studentized range quantile
    (infinite degrees of freedom) over sqrt(2) (Demšar 2006, Table 5a: 2.343 for k = 3 ... 3.164 for
    k = 10 at alpha = 0.05)."""
    if k < 2:
        raise ValueError(f"the Nemenyi test needs >= 2 losses, got {k}")
    return float(stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """The critical difference of mean ranks, ``q_alpha * sqrt(k (k + 1) / (6 n))`` (Demšar 2006, Eq. 3
    of Section 3.2.2): two losses whose mean ranks over ``n`` blocks differ by less are not told apart."""
    if n < 1:
        raise ValueError(f"the critical difference needs >= 1 block, got {n}")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def hierarchical_bootstrap(diffs: Mapping[tuple[int, int], np.ndarray], n_boot: int = 4000, seed: int = 0,
                           confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean paired difference with a hierarchical bootstrap interval over folds, seeds and cases.

    The estimate is the mean over folds of the mean over that fold's seeds of the mean per-case
    difference (every fold weighs the same, as in the table's mean over folds). A bootstrap replicate
    draws the folds with replacement, then, independently for every drawn fold, its seeds with
    replacement, then, for every drawn network, its cases with replacement, and takes the same mean.

    Args:
        diffs: ``{(fold, seed): per-case differences}`` (loss minus reference, paired on the cases).
        n_boot: bootstrap replicates.
        seed: seed of the resampling (the same call gives the same interval).
        confidence: of the percentile interval.

    Returns:
        ``(estimate, low, high, p)``: ``p`` is the two-sided bootstrap p-value
        ``min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` (with ``1/(n_boot + 1)`` as the smallest value).

    Raises:
        ValueError: no network, or a network without cases.
    """
    folds: dict[int, list[np.ndarray]] = {}
    for (k, _s), d in sorted(diffs.items()):
        d = np.asarray(d, dtype=float)
        d = d[np.isfinite(d)]
        if d.size == 0:
            raise ValueError(f"network (fold {k}, seed {_s}) has no paired case")
        folds.setdefault(k, []).append(d)
    if not folds:
        raise ValueError("hierarchical_bootstrap: no network to resample")
    keys = sorted(folds)
    estimate = float(np.mean([np.mean([d.mean() for d in folds[k]]) for k in keys]))
    rng = np.random.default_rng(seed)
    n_f = len(keys)
    total = np.zeros(n_boot)
    picks = rng.integers(0, n_f, size=(n_boot, n_f))  # the drawn folds of every replicate
    for j in range(n_f):  # draw position j: an independent inner resample for every position
        value = np.zeros(n_boot)
        for fi, k in enumerate(keys):
            rows = np.flatnonzero(picks[:, j] == fi)
            if rows.size == 0:
                continue
            nets = folds[k]
            seed_pick = rng.integers(0, len(nets), size=(rows.size, len(nets)))
            acc = np.zeros(rows.size)
            for si in range(len(nets)):
                d = nets[si]
                case_means = d[rng.integers(0, d.size, size=(rows.size, d.size))].mean(axis=1)
                acc += (seed_pick == si).sum(axis=1) * case_means
            value[rows] = acc / len(nets)
        total += value
    boot = total / n_f
    a = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(boot, [a, 1.0 - a]))
    p = min(1.0, 2.0 * min(np.mean(boot <= 0.0), np.mean(boot >= 0.0)))
    return estimate, low, high, float(max(p, 1.0 / (n_boot + 1)))


@dataclass(frozen=True)
class NoiseFloor:
    """Seed-to-seed spread of one loss (or of the study, pooled over losses).

    Attributes:
        sd: pooled within-fold standard deviation of the networks' mean DSC across seeds (NaN when no
            fold has two seeds).
        networks: networks used (in folds with two or more seeds).
        folds: folds with two or more seeds.
        range: largest max - min over seeds within one fold.
    """

    sd: float
    networks: int
    folds: int
    range: float


def noise_floor(values: Sequence[Mapping[tuple[int, int], float]]) -> NoiseFloor:
    """Pool the within-fold seed variance of one or more losses.

    Args:
        values: for each loss, ``{(fold, seed): network mean DSC}``.

    Returns:
        The pooled ``sqrt(sum (x - fold mean)^2 / sum (seeds - 1))`` over every (loss, fold) with two or
        more seeds.
    """
    ss, dof, nets, folds, rng = 0.0, 0, 0, 0, 0.0
    for per in values:
        by_fold: dict[int, list[float]] = {}
        for (k, _s), v in per.items():
            if math.isfinite(v):
                by_fold.setdefault(k, []).append(float(v))
        for vs in by_fold.values():
            if len(vs) < 2:
                continue
            x = np.array(vs)
            ss += float(((x - x.mean()) ** 2).sum())
            dof += len(vs) - 1
            nets += len(vs)
            folds += 1
            rng = max(rng, float(x.max() - x.min()))
    return NoiseFloor(math.sqrt(ss / dof) if dof else float("nan"), nets, folds, rng)


def power(delta: float, sd_fold: float, sd_seed: float, folds: int, seeds: int = 1, alpha: float = 0.05) -> float:
    """Power of a two-sided paired comparison of two losses over ``folds`` folds × ``seeds`` seeds.

    The mean difference over folds has standard error ``sqrt(sd_fold^2 / F + 2 sd_seed^2 / (F S))``
    (``sd_fold``: how much the true difference varies from fold to fold; ``sd_seed``: the noise floor,
    counted twice since both losses are retrained). The folds are the independent unit, so the test is a
    t-test with ``F - 1`` degrees of freedom: power = P(|T'| > t_{1-alpha/2, F-1}) with ``T'`` noncentral t
    of noncentrality ``delta / SE``.

    Raises:
        ValueError: fewer than 2 folds, or no seed.
    """
    if folds < 2 or seeds < 1:
        raise ValueError(f"power needs >= 2 folds and >= 1 seed, got {folds} folds, {seeds} seeds")
    se = math.sqrt(sd_fold**2 / folds + 2.0 * sd_seed**2 / (folds * seeds))
    if se == 0:
        return 1.0 if delta != 0 else alpha
    df = folds - 1
    crit = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    nc = abs(delta) / se
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def networks_needed(delta: float, sd_fold: float, sd_seed: float, target: float = 0.8, alpha: float = 0.05,
                    seeds: Sequence[int] = (1, 2, 3, 5), max_folds: int = 100) -> dict[int, int | None]:
    """For each number of seeds per fold, the fewest folds (repeated cross-validation: 5 per repeat of
    a 5-fold split) whose :func:`power` reaches ``target``; ``None`` when ``max_folds`` do not."""
    out: dict[int, int | None] = {}
    for s in seeds:
        out[s] = next((f for f in range(2, max_folds + 1)
                       if power(delta, sd_fold, sd_seed, f, s, alpha) >= target), None)
    return out


@dataclass(frozen=True)
class Comparison:
    """One loss against the reference, at the network level.

    Attributes:
        other: the loss compared.
        reference: the reference loss.
        diff: mean difference (other - reference) over folds of the mean over seeds and cases.
        low: lower end of the hierarchical bootstrap interval.
        high: upper end.
        p: two-sided bootstrap p-value.
        p_holm: Holm-adjusted over the comparisons of the report.
        networks: paired networks (fold, seed) behind it.
        folds: folds behind it.
    """

    other: str
    reference: str
    diff: float
    low: float
    high: float
    p: float
    p_holm: float
    networks: int
    folds: int


def verdict(c: Comparison, floor: float, alpha: float = 0.05, titles: Mapping[str, str] | None = None,
            digits: int = 3) -> tuple[str, str]:
    """The verdict on a comparison, as ``(word, sentence)`` with ``word`` in :data:`VERDICTS`.

    * ``higher`` / ``lower``: Holm-adjusted p < alpha and the difference is at least the noise floor;
    * ``within the noise floor``: Holm-adjusted p < alpha, but a retrained network of the same loss moves
      by more than the difference (or the floor is unmeasured: NaN counts as no floor);
    * ``indistinguishable``: otherwise;
    * ``one network``: the comparison rests on a single network per loss (one fold, one seed): its
      interval resamples only that network's cases, so it says nothing about retraining; an anecdote.

    An unmeasured noise floor (no fold with two seeds) is said in the sentence.
    """
    t = titles or {}
    a, b = t.get(c.other, c.other), t.get(c.reference, c.reference)
    f = f"{{:+.{digits}f}}"
    span = f"{f.format(c.diff)} [{f.format(c.low)}, {f.format(c.high)}]"
    if c.networks < 2:
        word = "one network"
        text = (f"{a} vs {b}: one network each, an anecdote; difference {span} over the cases of that "
                "network, which says nothing about retraining")
    elif not c.p_holm < alpha:
        word = "indistinguishable"
        text = f"{a} and {b}: indistinguishable, difference {span}"
    elif math.isfinite(floor) and abs(c.diff) < floor:
        word = "within the noise floor"
        text = (f"{a} vs {b}: within the noise floor, difference {span} is smaller than the seed-to-seed "
                f"spread {floor:.{digits}f}")
    else:
        word = "higher" if c.diff > 0 else "lower"
        text = f"{a} {word} than {b}: difference {span}" + ("" if math.isfinite(floor) else
                                                             ", noise floor unmeasured")
    nets = f"{c.networks} network{'s' if c.networks != 1 else ''} over {c.folds} fold{'s' if c.folds != 1 else ''}"
    return word, f"{text} (Holm p = {c.p_holm:.2g}; {nets})"


# -- from the arms of a report -------------------------------------------------------------------


@dataclass
class ModelLevel:
    """The model-level statistics of one class of a report (:func:`model_level`).

    Attributes:
        cls: the class.
        floors: per loss, its :class:`NoiseFloor`; ``study``: pooled over the losses.
        comparisons: each loss against the reference (Holm over these).
        verdicts: ``{loss: (word, sentence)}``.
        blocks: the networks ``(fold, seed)`` every loss has (the Friedman blocks).
        ranks: mean rank of each loss over ``blocks`` (unrounded; 1 = best).
        friedman: ``(chi-square, p)``, or ``None`` with fewer than 3 losses or 2 blocks.
        cd: Nemenyi critical difference at ``alpha`` (``None`` as ``friedman``).
        sd_fold: fold-to-fold spread of the true differences (median over the comparisons).
        power: ``{delta: power of this study}``.
        needed: ``{delta: {seeds: folds needed for 80% power}}``.
        seeds_eff: harmonic mean of the seeds per fold (the study's ``S`` in :func:`power`).
        n_folds: folds of the study.
        seeds: ``{fold: [seeds]}``, every seed any loss has on the fold.
        pair_floors: ``{loss: the noise floor of its comparison with the reference}`` (:func:`pair_floor`).
        power_floor: the seed noise of the power lines: the median of the comparisons' pair floors (the
            floor each verdict is held to), or the study's floor where no pair floor is measured.
    """

    cls: str
    floors: dict[str, NoiseFloor]
    comparisons: list[Comparison]
    verdicts: dict[str, tuple[str, str]]
    blocks: list[tuple[int, int]]
    ranks: dict[str, float]
    friedman: tuple[float, float] | None
    cd: float | None
    sd_fold: float
    power: dict[float, float]
    needed: dict[float, dict[int, int | None]]
    seeds_eff: float
    n_folds: int
    seeds: dict[int, list[int]]
    pair_floors: dict[str, float]
    power_floor: float


def pair_floor(floors: Mapping[str, NoiseFloor], a: str, b: str) -> float:
    """The noise floor of a comparison of losses ``a`` and ``b``: the root mean square of their own
    seed-to-seed SDs (one alone where only one is measured), else the study's pooled floor
    (``floors["study"]``). Losses differ in how much they move between seeds (a loss that sometimes
    fails to learn moves a lot), so a comparison is held to the spread of the two losses it compares."""
    own = [floors[n].sd for n in (a, b) if n in floors and math.isfinite(floors[n].sd)]
    if own:
        return math.sqrt(sum(v * v for v in own) / len(own))
    return floors["study"].sd if "study" in floors else float("nan")


def _paired_network_diffs(ref, other, cls: str, metric: str) -> dict[tuple[int, int], np.ndarray]:
    out = {}
    for key in sorted(set(ref.replicates) & set(other.replicates)):
        a = ref.replicates[key].cases.get(cls, {})
        b = other.replicates[key].cases.get(cls, {})
        ids = sorted(i for i in set(a) & set(b) if math.isfinite(a[i][metric]) and math.isfinite(b[i][metric]))
        if ids:
            out[key] = np.array([b[i][metric] - a[i][metric] for i in ids])
    return out


def model_level(arms: Mapping[str, object], order: Sequence[str], reference: str | None, cls: str,
                metric: str = "dsc", alpha: float = 0.05, n_boot: int = 4000, seed: int = 0,
                deltas: Sequence[float] = (0.01, 0.02)) -> ModelLevel:
    """Every statistic of the module docstring for one class of a study's arms.

    Args:
        arms: ``{name: Arm}`` (:func:`unifocal.study.results.group_arms`).
        order: the losses in table order.
        reference: the loss the others are compared with (``None``: no comparison).
        cls: the class.
        metric: ``dsc`` (or ``precision``, ``recall``).
        alpha: level of the tests and of the Nemenyi critical difference.
        n_boot: bootstrap replicates.
        seed: seed of the bootstrap.
        deltas: the differences the power lines are about.
    """
    nets = {n: arms[n].network_means(cls, metric) for n in order}
    floors = {n: noise_floor([nets[n]]) for n in order}
    floors["study"] = noise_floor([nets[n] for n in order])
    comps: list[Comparison] = []
    diffs: dict[str, dict[tuple[int, int], np.ndarray]] = {}  # per compared loss, its paired differences
    if reference is not None:
        raw = []
        for n in order:
            if n == reference:
                continue
            d = _paired_network_diffs(arms[reference], arms[n], cls, metric)
            if not d:
                continue
            diffs[n] = d
            est, lo, hi, p = hierarchical_bootstrap(d, n_boot=n_boot, seed=seed)
            raw.append((n, est, lo, hi, p, len(d), len({k for k, _ in d})))
        adj = holm([r[4] for r in raw])
        comps = [Comparison(n, reference, est, lo, hi, p, float(pa), nn, nf)
                 for (n, est, lo, hi, p, nn, nf), pa in zip(raw, adj)]
    floor = floors["study"].sd
    pair = {c.other: pair_floor(floors, c.reference, c.other) for c in comps}
    verdicts = {c.other: verdict(c, pair[c.other], alpha) for c in comps}
    blocks = sorted(set.intersection(*(set(arms[n].replicates) for n in order))) if order else []
    ranks: dict[str, float] = {}
    fried = cd = None
    if blocks:
        x = np.array([[nets[n][b] for n in order] for b in blocks])
        if np.all(np.isfinite(x)):
            ranks = dict(zip(order, (float(v) for v in mean_ranks(x))))
            if len(order) >= 3 and len(blocks) >= 2:
                fried = friedman(x)
                cd = nemenyi_cd(len(order), len(blocks), alpha)
    # fold-to-fold spread of the true difference: var(fold-level differences) minus the seed noise in them,
    # (σ_a² + σ_b²) / S = 2·pair² / S with the comparison's own pair floor (the study's where unmeasured)
    sd_fold_est = []
    for c in comps:
        own = pair[c.other] if math.isfinite(pair[c.other]) else floor
        seed_var = own**2 if math.isfinite(own) else 0.0
        by_fold: dict[int, list[float]] = {}
        for (k, _s), v in diffs[c.other].items():
            by_fold.setdefault(k, []).append(float(v.mean()))
        if len(by_fold) >= 2:
            fold_means = np.array([np.mean(v) for v in by_fold.values()])
            noise = np.mean([2.0 * seed_var / len(v) for v in by_fold.values()])
            sd_fold_est.append(math.sqrt(max(0.0, float(fold_means.var(ddof=1)) - noise)))
    sd_fold = float(np.median(sd_fold_est)) if sd_fold_est else float("nan")
    seeds_per_fold: dict[int, int] = {}
    seed_sets: dict[int, set[int]] = {}
    for n in order:
        for k, s in arms[n].seeds.items():
            seeds_per_fold[k] = max(seeds_per_fold.get(k, 0), len(s))
            seed_sets.setdefault(k, set()).update(s)
    n_folds = len(seeds_per_fold)
    seeds_eff = (n_folds / sum(1.0 / s for s in seeds_per_fold.values())) if seeds_per_fold else float("nan")
    measured = [v for v in pair.values() if math.isfinite(v)]
    power_floor = float(np.median(measured)) if measured else floor
    pw: dict[float, float] = {}
    need: dict[float, dict[int, int | None]] = {}
    if math.isfinite(power_floor) and math.isfinite(sd_fold) and n_folds >= 2:
        for dlt in deltas:
            pw[dlt] = power(dlt, sd_fold, power_floor, n_folds, seeds_eff, alpha)
            need[dlt] = networks_needed(dlt, sd_fold, power_floor, alpha=alpha)
    return ModelLevel(cls, floors, comps, verdicts, blocks, ranks, fried, cd, sd_fold, pw, need, seeds_eff, n_folds,
                      {k: sorted(v) for k, v in sorted(seed_sets.items())}, pair, power_floor)


def model_level_markdown(ml: ModelLevel, titles: Mapping[str, str], order: Sequence[str], metric_title: str = "DSC",
                         alpha: float = 0.05, digits: int = 3, class_title: str | None = None) -> str:
    """The report section of :func:`model_level`: noise floor, comparisons with verdicts, Friedman and
    Nemenyi, power."""
    f = f"{{:.{digits}f}}"
    s = f"{{:+.{digits}f}}"
    head = f" ({class_title})" if class_title else ""
    by_seeds: dict[tuple[int, ...], list[int]] = {}
    for k, sds in ml.seeds.items():
        by_seeds.setdefault(tuple(sds), []).append(k)
    nets = "; ".join(f"fold{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}: seed{'s' if len(sd) > 1 else ''} "
                     f"{', '.join(map(str, sd))}" for sd, ks in by_seeds.items())
    out = [f"Trained networks (the unit of these statistics): {nets}.", "", f"### Noise floor{head}", "",
           "| Loss | Networks | Folds with ≥ 2 seeds | Seed-to-seed SD | Largest spread in a fold |",
           "|---|:-:|:-:|:-:|:-:|"]
    for n in [*order, "study"]:
        fl = ml.floors[n]
        name = "**All losses (the study's noise floor)**" if n == "study" else titles.get(n, n)
        out.append(f"| {name} | {fl.networks} | {fl.folds} | " + (f.format(fl.sd) if math.isfinite(fl.sd) else "–")
                   + f" | {f.format(fl.range) if fl.folds else '–'} |")
    floor = ml.floors["study"].sd
    out += ["", f"Seed-to-seed SD: the standard deviation of a network's mean validation {metric_title} across "
            "training seeds on the same fold, pooled over folds (and over losses in the last row). "
            + ("No fold has two seeds: the noise floor is unmeasured; run the study with --seeds 0,1,2 on one "
               "fold at least." if not math.isfinite(floor) else ""), ""]
    if ml.comparisons:
        ref = ml.comparisons[0].reference
        out += [f"### Against {titles.get(ref, ref)}{head}", "",
                f"| Loss | Δ mean {metric_title} | 95% CI (hierarchical bootstrap) | p (bootstrap) | p (Holm) | "
                "Networks / folds | Verdict |",
                "|---|:-:|:-:|:-:|:-:|:-:|---|"]
        for c in ml.comparisons:
            out.append(f"| {titles.get(c.other, c.other)} | {s.format(c.diff)} | [{s.format(c.low)}, "
                       f"{s.format(c.high)}] | {c.p:.2g} | {c.p_holm:.2g} | {c.networks} / {c.folds} | "
                       f"{ml.verdicts[c.other][0]} |")
        out += ["", f"Δ: the loss minus {titles.get(ref, ref)}, mean over folds of the mean over the fold's seeds "
                "and validation cases. CI and p: hierarchical bootstrap (folds, then seeds, then cases, with "
                f"replacement); Holm over the {len(ml.comparisons)} comparisons. Verdict: higher / lower when the "
                f"Holm p < {alpha:g} and |Δ| is at least the noise floor of the pair (the root mean square of "
                "the two losses' seed-to-seed SDs; the study's where neither is measured)"
                + "; within the noise floor when only the first holds; indistinguishable otherwise; one network "
                "when a loss has a single network (an anecdote: its interval resamples only that network's "
                "cases).", "",
                "Verdicts:", ""]
        out += [f"- {verdict(c, ml.pair_floors[c.other], alpha, titles, digits)[1]}" for c in ml.comparisons]
        out.append("")
    if ml.ranks:
        ranked = sorted(order, key=lambda n: ml.ranks[n])
        out += [f"### Ranks over networks{head}", "",
                "Mean rank over the " + str(len(ml.blocks)) + " networks (fold, seed) every loss has (1 = best, "
                "unrounded values): " + ", ".join(f"{titles.get(n, n)} {ml.ranks[n]:.2f}" for n in ranked) + "."]
        if ml.friedman is not None and ml.cd is not None:
            chi, p = ml.friedman
            top = ranked[0]
            apart = [n for n in ranked[1:] if ml.ranks[n] - ml.ranks[top] > ml.cd]
            out += ["", f"Friedman test over the networks: χ² = {chi:.2f}, p = {p:.2g}. Nemenyi critical difference "
                    f"(α = {alpha:g}): {ml.cd:.2f} ranks. "
                    + (f"Losses whose mean rank is more than the critical difference behind {titles.get(top, top)}: "
                       + ", ".join(titles.get(n, n) for n in apart) + "." if apart and p < alpha else
                       "No two losses are told apart by their ranks." if not p < alpha else
                       f"No loss is more than the critical difference behind {titles.get(top, top)}.")]
        out.append("")
    if ml.power:
        out += [f"### Power{head}", "",
                f"With {ml.n_folds} folds and {ml.seeds_eff:.2g} seeds per fold (harmonic mean), the fold-to-fold "
                f"spread of the true difference ({f.format(ml.sd_fold)}, median over the comparisons) and the seed "
                f"noise of a comparison ({f.format(ml.power_floor)}: the median of the comparisons' noise floors, "
                f"each the root mean square of its two losses' seed-to-seed SDs), this study had "
                + " and ".join(f"{ml.power[d]:.0%} power to detect a {metric_title} difference of {d:g}"
                               for d in ml.power)
                + f" (two-sided, α = {alpha:g} per comparison, before Holm). Folds needed for 80% power, by seeds per "
                "fold: "
                + "; ".join(f"Δ = {d:g}: " + ", ".join(f"{sd} seed{'s' if sd > 1 else ''} → "
                                                       + (str(nf) if nf is not None else "> 100")
                                                       for sd, nf in ml.needed[d].items())
                            for d in ml.needed) + ".", ""]
    elif ml.comparisons:
        out += [f"### Power{head}", "", "Power unknown: it needs the noise floor (two seeds on a fold) and two or "
                "more folds.", ""]
    return "\n".join(out)
