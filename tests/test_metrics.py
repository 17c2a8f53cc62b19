"""unifocal.metrics against scikit-learn-style direct definitions and scipy's t interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from unifocal.metrics import case_metrics, hard_prediction, mean_ci


def test_case_metrics_against_direct_sets():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, (20, 30))
    tgt = rng.integers(0, 3, (20, 30))
    m = case_metrics(pred, tgt, classes=[1, 2])
    for c in (1, 2):
        p, t = set(zip(*np.nonzero(pred == c))), set(zip(*np.nonzero(tgt == c)))
        inter = len(p & t)
        assert m[c]["dsc"] == pytest.approx(2 * inter / (len(p) + len(t)))
        assert m[c]["precision"] == pytest.approx(inter / len(p))
        assert m[c]["recall"] == pytest.approx(inter / len(t))


def test_empty_conventions():
    z = np.zeros((4, 4), int)
    one = z.copy()
    one[1, 1] = 1
    both_empty = case_metrics(z, z, [1])[1]
    assert both_empty["dsc"] == 1 and both_empty["precision"] == 1 and both_empty["recall"] == 1
    missed = case_metrics(z, one, [1])[1]  # structure present, nothing predicted
    assert missed["dsc"] == 0 and missed["recall"] == 0 and missed["precision"] == 1
    false_alarm = case_metrics(one, z, [1])[1]  # nothing there, something predicted
    assert false_alarm["dsc"] == 0 and false_alarm["precision"] == 0 and false_alarm["recall"] == 1
    nan = case_metrics(z, z, [1], zero_division=float("nan"))[1]
    assert math.isnan(nan["dsc"])


def test_mean_ci_matches_scipy_t_interval():
    x = [0.61, 0.72, 0.58, 0.80, 0.69]
    r = mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert r.low == pytest.approx(lo) and r.high == pytest.approx(hi) and r.n == 5
    assert mean_ci([0.5, float("nan"), 0.7]).n == 2
    assert math.isnan(mean_ci([0.5]).half_width)
    with pytest.raises(ValueError, match="confidence"):
        mean_ci(x, confidence=95)


def test_hard_prediction_binary_and_multiclass():
    logits = torch.tensor([[[[-1.0, 0.5]]]])  # (1, 1, 1, 2) sigmoid
    assert hard_prediction(logits).tolist() == [[[0, 1]]]
    probs = torch.tensor([[[[0.2, 0.7]]]])
    assert hard_prediction(probs, input="probs").tolist() == [[[0, 1]]]
    multi = torch.randn(2, 4, 5, 5)
    assert torch.equal(hard_prediction(multi), multi.argmax(1))
