"""Test 3 of issue #2: an independent float64 NumPy re-derivation on random inputs.

Covers multi-class, 3D, ``ignore_index``, ``rare_classes``, per-class δ and ``batch=True``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from tests.losses import numpy_reference as ref
from unifocal.losses import available_losses, get_loss

SETTINGS = {
    "2d-binary": dict(shape=(3, 2, 12, 10), common={}),
    "2d-binary-sigmoid": dict(shape=(3, 1, 12, 10), common={}),
    "2d-4class": dict(shape=(2, 4, 10, 9), common={}),
    "3d-3class": dict(shape=(2, 3, 5, 6, 7), common={}),
    "1d-3class": dict(shape=(2, 3, 40), common={}),
    "ignore-index": dict(shape=(2, 3, 8, 8), common={"ignore_index": 255}),
    "rare-class-2-only": dict(shape=(2, 3, 8, 8), common={"rare_classes": [2]}),
    "background-2": dict(shape=(2, 3, 8, 8), common={"background": 2}),
    "batch-pooled": dict(shape=(3, 3, 8, 8), common={"batch": True}),
    "batch-pooled-ignore-3d": dict(shape=(2, 3, 4, 5, 6), common={"batch": True, "ignore_index": -1}),
    "smooth-1": dict(shape=(2, 2, 8, 8), common={"smooth": 1.0}),
}

PARAMS = {
    "cross_entropy": [{}, {"weight": [0.2, 1.0, 3.0, 0.5]}],
    "focal": [{}, {"alpha": None, "gamma": 0.5}, {"alpha": [0.1, 0.5, 0.9, 0.3], "gamma": 1.5}],
    "dice": [{}],
    "tversky": [{}, {"alpha": 0.8, "beta": 0.4}],
    "focal_tversky": [{}, {"gamma": 0.7}],
    "combo": [{}, {"alpha": 0.3, "beta": 0.8}, {"beta": None}],
    "hybrid_focal": [{}, {"lambda_": 0.2, "focal_gamma": 1.0}],
    "asymmetric_focal": [{}, {"delta": [0.4, 0.7, 0.9, 0.6], "gamma": 0.5}],
    "asymmetric_focal_tversky": [{}, {"delta": [0.3, 0.8, 0.6, 0.5], "gamma": 0.5}],
    "unified_focal": [{}, {"delta": 0.8, "gamma": 0.4, "lambda_": 0.3}, {"delta": [0.5, 0.9, 0.7, 0.6]}],
    "symmetric_focal": [{}, {"delta": 0.3, "gamma": 2.0}],
    "symmetric_focal_tversky": [{}, {"delta": 0.7, "gamma": 0.5}],
    "symmetric_unified_focal": [{}, {"delta": [0.4, 0.6, 0.8, 0.5], "gamma": 0.3, "lambda_": 0.7}],
}


def _fit_params(params: dict, k: int) -> dict:
    """Cut per-class sequences in PARAMS to the number of classes."""
    return {key: (v[:k] if isinstance(v, list) else v) for key, v in params.items()}


def _case(shape, common, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2.0
    k = max(shape[1], 2)
    bg = common.get("background", 0)
    # imbalanced labels: mostly background, a few of each other class
    u = torch.rand((shape[0], *shape[2:]), generator=gen)
    labels = torch.full(u.shape, bg, dtype=torch.long)
    others = [c for c in range(k) if c != bg]
    for i, c in enumerate(others):
        labels[(u > 0.9 - 0.07 * i) & (u <= 0.97 - 0.07 * i)] = c
    if "ignore_index" in common:
        labels[torch.rand(u.shape, generator=gen) < 0.1] = common["ignore_index"]
    return x, labels


def test_every_loss_is_covered():
    assert set(PARAMS) == set(available_losses())


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", list(PARAMS))
def test_matches_float64_numpy(name, setting):
    cfg = SETTINGS[setting]
    shape, common = cfg["shape"], cfg["common"]
    k = max(shape[1], 2)
    x, labels = _case(shape, common, seed=zlib.crc32(f"{name}-{setting}".encode()) % 10_000)
    for i, params in enumerate(PARAMS[name]):
        params = _fit_params(params, k)
        if any(isinstance(v, list) and len(v) < k for v in params.values()):
            continue
        ours = float(get_loss(name, **params, **common)(x, labels))
        theirs = ref.loss(name, x.numpy(), labels.numpy(), params, common)
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), f"{name} params#{i} {params}"


@pytest.mark.parametrize("name", list(PARAMS))
def test_one_hot_target_equals_label_target(name):
    x, labels = _case((2, 3, 6, 7), {}, seed=3)
    onehot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).double()
    loss = get_loss(name)
    assert float(loss(x, onehot)) == pytest.approx(float(loss(x, labels)), rel=1e-10)
    assert float(loss(x, labels.unsqueeze(1))) == pytest.approx(float(loss(x, labels)), rel=1e-12)


@pytest.mark.parametrize("name", list(PARAMS))
def test_sigmoid_single_channel_equals_two_channel_softmax(name):
    """C == 1 is the two classes [1 - p, p]: logits z equal two-class logits [0, z]."""
    x, labels = _case((2, 1, 6, 7), {}, seed=5)
    two = torch.cat([torch.zeros_like(x), x], dim=1)
    loss = get_loss(name)
    assert float(loss(x, labels)) == pytest.approx(float(loss(two, labels)), rel=1e-10)


def test_reduction_none_and_sum():
    x, labels = _case((4, 3, 6, 6), {}, seed=9)
    per = get_loss("unified_focal", reduction="none")(x, labels)
    assert per.shape == (4,)
    assert float(per.mean()) == pytest.approx(float(get_loss("unified_focal")(x, labels)), rel=1e-12)
    assert float(per.sum()) == pytest.approx(float(get_loss("unified_focal", reduction="sum")(x, labels)), rel=1e-12)
    expected = [ref.loss("unified_focal", x[i:i + 1].numpy(), labels[i:i + 1].numpy(), {}, {}) for i in range(4)]
    np.testing.assert_allclose(per.numpy(), expected, rtol=1e-9)
