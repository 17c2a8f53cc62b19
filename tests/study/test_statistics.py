"""Model-level statistics (``unifocal.study.statistics``) against scipy, Demšar (2006) and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from unifocal.study.results import Arm, RunResult
from unifocal.study.statistics import (
    Comparison,
    friedman,
    hierarchical_bootstrap,
    holm,
    mean_ranks,
    model_level,
    model_level_markdown,
    nemenyi_cd,
    nemenyi_q,
    networks_needed,
    noise_floor,
    power,
    verdict,
)


def _holm_by_definition(p, alpha):
    """Holm's procedure as a rejection rule at level alpha (Holm 1979): reject the sorted hypotheses
    while p_(i) <= alpha / (m - i)."""
    m = len(p)
    order = np.argsort(p)
    reject = np.zeros(m, bool)
    for i, j in enumerate(order):
        if p[j] <= alpha / (m - i):
            reject[j] = True
        else:
            break
    return reject


def test_holm_adjusted_p_rejects_exactly_as_the_procedure():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 8))
        adj = holm(p)
        for alpha in (0.01, 0.05, 0.1):
            np.testing.assert_array_equal(adj <= alpha, _holm_by_definition(p, alpha))
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm([0.02, float("nan"), 0.5])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.04) and out[2] == pytest.approx(0.5)


def test_mean_ranks_and_friedman_match_the_textbook_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 5))
    ranks = mean_ranks(x)
    per_row = np.array([stats.rankdata(-row) for row in x])
    np.testing.assert_allclose(ranks, per_row.mean(0))
    n, k = x.shape
    chi = 12 * n / (k * (k + 1)) * (np.sum(ranks**2) - k * (k + 1) ** 2 / 4)  # Demšar 2006, Eq. (1)
    got_chi, got_p = friedman(x)
    assert got_chi == pytest.approx(chi)
    assert got_p == pytest.approx(stats.chi2.sf(chi, k - 1))
    np.testing.assert_allclose(mean_ranks(np.array([[0.8, 0.8, 0.7]])), [1.5, 1.5, 3.0])  # ties: average
    with pytest.raises(ValueError, match=">= 3 losses"):
        friedman(x[:, :2])


@pytest.mark.parametrize("k,q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (7, 2.949),
                                 (8, 3.031), (9, 3.102), (10, 3.164)])
def test_nemenyi_q_is_demsar_table_5a(k, q):
    assert nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)


def test_nemenyi_cd_of_demsars_worked_example():
    # Demšar (2006), Section 3.2.4: four classifiers on 14 data sets, CD = 1.25 at alpha = 0.05
    assert nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)


def test_single_level_bootstrap_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(2)
    d = rng.normal(0.01, 0.05, size=120)
    est, lo, hi, p = hierarchical_bootstrap({(0, 0): d}, n_boot=8000, seed=3)
    ref = stats.bootstrap((d,), np.mean, n_resamples=8000, method="percentile", random_state=4).confidence_interval
    assert est == pytest.approx(d.mean())
    assert lo == pytest.approx(ref.low, abs=0.002) and hi == pytest.approx(ref.high, abs=0.002)
    assert (lo > 0) == (p < 0.05)


def test_fold_level_bootstrap_agrees_with_scipy_when_cases_do_not_vary():
    # every case of a network equal: only the folds vary, so the bootstrap is the one of the fold means
    fold_values = np.array([0.02, -0.01, 0.03, 0.00, 0.015])
    diffs = {(k, 0): np.full(50, v) for k, v in enumerate(fold_values)}
    est, lo, hi, _ = hierarchical_bootstrap(diffs, n_boot=8000, seed=5)
    ref = stats.bootstrap((fold_values,), np.mean, n_resamples=8000, method="percentile",
                          random_state=6).confidence_interval
    assert est == pytest.approx(fold_values.mean())
    assert lo == pytest.approx(ref.low, abs=0.002) and hi == pytest.approx(ref.high, abs=0.002)


def test_bootstrap_is_seeded_and_seeds_widen_it():
    rng = np.random.default_rng(7)
    one = {(k, 0): rng.normal(0.01, 0.05, 100) for k in range(5)}
    assert hierarchical_bootstrap(one, seed=1) == hierarchical_bootstrap(one, seed=1)
    # seed replicates that disagree on a fold add their spread to the interval
    noisy = dict(one)
    noisy[(0, 1)] = one[(0, 0)] + 0.2
    noisy[(0, 2)] = one[(0, 0)] - 0.2
    _, lo1, hi1, _ = hierarchical_bootstrap(one, seed=1)
    _, lo2, hi2, _ = hierarchical_bootstrap(noisy, seed=1)
    assert hi2 - lo2 > hi1 - lo1


def test_noise_floor_pools_within_fold_variance():
    a = {(0, 0): 0.70, (0, 1): 0.74, (0, 2): 0.72, (1, 0): 0.60}
    b = {(0, 0): 0.80, (0, 1): 0.78}
    fl = noise_floor([a])
    assert fl.sd == pytest.approx(np.std([0.70, 0.74, 0.72], ddof=1))
    assert (fl.networks, fl.folds) == (3, 1) and fl.range == pytest.approx(0.04)
    pooled = noise_floor([a, b])
    ss = np.sum((np.array([0.70, 0.74, 0.72]) - 0.72) ** 2) + np.sum((np.array([0.80, 0.78]) - 0.79) ** 2)
    assert pooled.sd == pytest.approx(math.sqrt(ss / 3))
    assert math.isnan(noise_floor([{(0, 0): 0.5, (1, 0): 0.6}]).sd)


def test_pair_floor_is_the_rms_of_the_two_losses_floors():
    from unifocal.study.statistics import NoiseFloor, pair_floor

    nan = float("nan")
    floors = {"a": NoiseFloor(0.03, 3, 1, 0.06), "b": NoiseFloor(0.04, 3, 1, 0.08), "c": NoiseFloor(nan, 0, 0, 0.0),
              "study": NoiseFloor(0.02, 9, 3, 0.1)}
    assert pair_floor(floors, "a", "b") == pytest.approx(math.sqrt((0.03**2 + 0.04**2) / 2))
    assert pair_floor(floors, "a", "c") == pytest.approx(0.03)
    assert pair_floor(floors, "c", "c") == pytest.approx(0.02)


def test_power_matches_a_simulated_t_test():
    delta, sd_fold, sd_seed, folds, seeds = 0.02, 0.01, 0.015, 5, 2
    rng = np.random.default_rng(8)
    n_sim = 20000
    true = delta + rng.normal(0, sd_fold, size=(n_sim, folds))
    noise = rng.normal(0, sd_seed * math.sqrt(2), size=(n_sim, folds, seeds)).mean(axis=2)
    d = true + noise
    tstat = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(folds))
    simulated = np.mean(np.abs(tstat) > stats.t.ppf(0.975, folds - 1))
    assert power(delta, sd_fold, sd_seed, folds, seeds) == pytest.approx(simulated, abs=0.015)
    assert power(0.0, sd_fold, sd_seed, folds, seeds) == pytest.approx(0.05, abs=1e-9)
    need = networks_needed(delta, sd_fold, sd_seed, seeds=(1, 3))
    assert need[3] <= need[1]
    assert power(delta, sd_fold, sd_seed, need[1], 1) >= 0.8 > power(delta, sd_fold, sd_seed, need[1] - 1, 1)


def test_verdict_vocabulary():
    c = Comparison("combo", "uf", 0.003, -0.010, 0.016, 0.6, 1.0, 7, 5)
    word, text = verdict(c, 0.01, titles={"combo": "Combo", "uf": "Unified Focal"})
    assert word == "indistinguishable"
    assert text.startswith("Combo and Unified Focal: indistinguishable, difference +0.003 [-0.010, +0.016]")
    sig = Comparison("focal", "uf", -0.15, -0.19, -0.11, 0.0002, 0.001, 7, 5)
    assert verdict(sig, 0.01)[0] == "lower"
    small = Comparison("dice", "uf", -0.005, -0.008, -0.002, 0.001, 0.004, 7, 5)
    assert verdict(small, 0.01)[0] == "within the noise floor"
    word, text = verdict(small, float("nan"))
    assert word == "lower" and "noise floor unmeasured" in text
    single = Comparison("dice", "uf", -0.05, -0.08, -0.02, 0.001, 0.004, 1, 1)
    word, text = verdict(single, 0.01)
    assert word == "one network" and "anecdote" in text


def _arm(name, loss, values):
    """An arm whose networks have the given per-case DSC arrays: ``{(fold, seed): array}``."""
    a = Arm(name, loss, {})
    for (k, s), v in values.items():
        cases = {"1": {f"f{k}_c{i}": {"dsc": float(x)} for i, x in enumerate(v)}}
        a.replicates[(k, s)] = RunResult(None, {}, {}, k, loss, {}, cases, s)
    return a


def test_model_level_end_to_end():
    rng = np.random.default_rng(9)
    base = {k: rng.uniform(0.5, 0.9, 30) for k in range(5)}
    keys = [(k, 0) for k in range(5)] + [(0, 1), (0, 2)]
    arms = {
        "uf": _arm("uf", "unified_focal", {(k, s): base[k] + 0.01 * s for k, s in keys}),
        "dice": _arm("dice", "dice", {(k, s): base[k] - 0.005 + 0.01 * s for k, s in keys}),
        "focal": _arm("focal", "focal", {(k, s): base[k] - 0.2 + 0.01 * s for k, s in keys}),
    }
    ml = model_level(arms, ["uf", "dice", "focal"], "uf", "1", n_boot=2000)
    assert ml.floors["study"].sd == pytest.approx(0.01)  # seeds 0, 1, 2 shift by 0.01 each: SD 0.01
    assert [c.other for c in ml.comparisons] == ["dice", "focal"]
    assert ml.comparisons[0].diff == pytest.approx(-0.005)
    assert ml.verdicts["focal"][0] == "lower"
    assert ml.verdicts["dice"][0] in ("within the noise floor", "indistinguishable")
    assert len(ml.blocks) == 7 and ml.ranks == {"uf": 1.0, "dice": 2.0, "focal": 3.0}
    assert ml.friedman is not None and ml.friedman[1] < 0.01
    assert ml.cd == pytest.approx(nemenyi_cd(3, 7))
    assert set(ml.power) == {0.01, 0.02} and all(0 <= v <= 1 for v in ml.power.values())
    assert ml.seeds_eff == pytest.approx(5 / (1 / 3 + 4))
    md = model_level_markdown(ml, {"uf": "Unified Focal", "dice": "Dice", "focal": "Focal"}, ["uf", "dice", "focal"])
    assert ml.seeds == {0: [0, 1, 2], 1: [0], 2: [0], 3: [0], 4: [0]}
    assert "Trained networks (the unit of these statistics): fold 0: seeds 0, 1, 2; folds 1, 2, 3, 4: seed 0." in md
    for needle in ("Noise floor", "Friedman test over the networks", "Verdicts:", "Focal lower than Unified Focal",
                   "power to detect"):
        assert needle in md


def test_ranks_of_every_permutation_sum_to_the_triangle_number():
    x = np.array(list(itertools.permutations([0.1, 0.2, 0.3, 0.4])))
    assert mean_ranks(x).sum() == pytest.approx(10.0)


def test_power_uses_the_comparisons_noise_floor_not_a_noisy_loss_pooled_in():
    """One loss with a large seed spread (as Focal on BUSI) inflates the study's pooled floor; the power lines
    use the median of the comparisons' pair floors, the floor each verdict is held to."""
    rng = np.random.default_rng(3)
    base = {k: rng.uniform(0.5, 0.9, 30) for k in range(5)}
    keys = [(k, 0) for k in range(5)] + [(0, 1), (0, 2)]
    shift = {"uf": 0.004, "dice": 0.006, "tversky": 0.004, "focal": 0.1}  # per-seed shift: SD = shift
    arms = {n: _arm(n, n, {(k, s): base[k] + d * s for k, s in keys}) for n, d in shift.items()}
    ml = model_level(arms, list(shift), "uf", "1", n_boot=500)
    rms = {n: np.sqrt((shift["uf"] ** 2 + shift[n] ** 2) / 2) for n in ("dice", "tversky", "focal")}
    assert ml.pair_floors == pytest.approx(rms)
    assert ml.power_floor == pytest.approx(float(np.median(list(rms.values()))))
    assert ml.floors["study"].sd > 2 * ml.power_floor  # the pooled floor, dominated by focal, is not used
    assert ml.power[0.02] == pytest.approx(power(0.02, ml.sd_fold, ml.power_floor, 5, ml.seeds_eff))
