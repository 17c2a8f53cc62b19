"""Every Keras loss agrees with its torch counterpart in float64: values and gradients, on random inputs.

The torch losses (:mod:`unifocal.losses`) define every convention and are themselves checked against
the authors' values, a float64 NumPy re-derivation and MONAI (``tests/losses``); agreement to float64
rounding here carries all of that over. Inputs are channels-first for torch and moved to the Keras
layout (channels-last by default) for Keras; gradients are moved back before comparing.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="compares with the torch losses")

import unifocal.keras as K  # noqa: E402
import unifocal.losses as L  # noqa: E402
from tests.keras._backend import value_and_grad  # noqa: E402

RTOL = 1e-10

# (id, pred shape (B, C, *spatial), target kind, input kind, common, extra parameters: "name.param" for
# one loss only, "param" for every loss that takes it). Most cases flatten to the same (2, 30, K) so
# that JAX's eager mode reuses its compiled operations.
CASES = [
    ("2d-3class-logits-labels", (2, 3, 6, 5), "labels", "logits", {}, {}),
    ("2d-3class-probs-onehot", (2, 3, 6, 5), "onehot", "probs", {}, {}),
    ("3d-3class-logits-labels-ch", (2, 3, 2, 3, 5), "labels_ch", "logits", {}, {}),
    ("3d-2class-probs-labels", (2, 2, 2, 3, 5), "labels", "probs", {}, {}),
    ("1d-3class-logits-onehot", (2, 3, 30), "onehot", "logits", {}, {}),
    ("2d-4class-logits-labels", (2, 4, 6, 5), "labels", "logits", {}, {}),
    ("2d-sigmoid-logits-labels", (2, 1, 6, 5), "labels", "logits", {}, {}),
    ("2d-sigmoid-probs-soft", (2, 1, 6, 5), "soft", "probs", {}, {}),
    ("rare-class-per-class-delta", (2, 3, 6, 5), "labels", "logits", {"rare_classes": [2]},
     {"delta": [0.3, 0.6, 0.8], "focal.alpha": [0.2, 0.3, 0.5], "weight": [0.5, 1.0, 2.0],
      "focal_alpha": [0.2, 0.3, 0.5]}),
    ("ignore-index", (2, 3, 6, 5), "labels_ignore", "logits", {"ignore_index": 255}, {}),
    ("ignore-index-probs", (2, 3, 6, 5), "labels_ignore", "probs", {"ignore_index": 255}, {}),
    ("batch-pooled", (2, 3, 6, 5), "labels", "logits", {"batch": True}, {"combo.beta": None}),
    ("background-1", (2, 3, 6, 5), "onehot", "logits", {"background": 1}, {}),
    ("absent-class", (2, 3, 6, 5), "labels_absent", "logits", {}, {}),
    ("channels-first", (2, 3, 6, 5), "labels", "logits", {"data_format": "channels_first"}, {}),
]

PARAMS_OF = {name: set(L.loss_defaults(name)) for name in L.available_losses()}


def _inputs(shape, target, kind, seed):
    rng = np.random.default_rng(seed)
    b, c, *spatial = shape
    k = max(c, 2)
    x = rng.normal(scale=2.0, size=shape)
    if kind == "probs":
        x = 1 / (1 + np.exp(-x)) if c == 1 else np.exp(x) / np.exp(x).sum(1, keepdims=True)
    labels = rng.integers(0, k, size=(b, *spatial))
    if target == "labels_absent":
        labels = np.where(labels == 2, 0, labels)  # class 2 absent from every sample
    if target == "labels_ignore":
        labels = np.where(rng.random(labels.shape) < 0.3, 255, labels)
    if target in ("labels", "labels_absent", "labels_ignore"):
        return x, labels, labels
    if target == "labels_ch":
        return x, labels[:, None], labels[..., None]
    if target == "soft":
        y = rng.random((b, 1, *spatial))
        return x, y, np.moveaxis(y, 1, -1)
    y = np.moveaxis(np.eye(k)[labels], -1, 1)  # one-hot (B, C, *spatial)
    return x, y, np.moveaxis(y, 1, -1)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_match_torch_float64(case):
    cid, shape, target, kind, common, extra = case
    x, y_torch, y_keras = _inputs(shape, target, kind, seed=len(cid))
    channels_first = common.get("data_format") == "channels_first"
    torch_common = {k: v for k, v in common.items() if k != "data_format"}
    x_keras = x if channels_first else np.moveaxis(x, 1, -1)
    if channels_first:
        y_keras = y_torch
    for name in L.available_losses():
        params = {k.removeprefix(f"{name}."): v for k, v in extra.items()
                  if k.removeprefix(f"{name}.") in PARAMS_OF[name]}
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.tensor(y_torch)
        ref = L.get_loss(name, input=kind, reduction="sum", **params, **torch_common)(xt, yt)
        ref.backward()
        fn = getattr(K, f"{name}_loss")
        value, grad = value_and_grad(
            lambda p, fn=fn, params=params: fn(y_keras, p, from_logits=kind == "logits", **params, **common), x_keras)
        grad = grad if channels_first else np.moveaxis(grad, -1, 1)
        assert value.dtype == np.float64, name
        np.testing.assert_allclose(value, ref.item(), rtol=RTOL, atol=1e-12, err_msg=f"{cid} {name} value")
        g_ref = xt.grad.numpy()
        assert np.isfinite(grad).all(), name
        np.testing.assert_allclose(grad, g_ref, rtol=1e-8, atol=1e-11 * max(np.abs(g_ref).max(), 1.0),
                                   err_msg=f"{cid} {name} gradient")


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None])
def test_keras_reduction_of_the_per_sample_losses(reduction):
    """The classes reduce the per-sample torch values as Keras defines ``reduction`` (and sample_weight)."""
    x, y, _ = _inputs((3, 3, 6, 5), "labels", "logits", seed=3)
    w = np.array([0.5, 1.0, 2.0])
    per_sample = L.unified_focal_loss(torch.tensor(x), torch.tensor(y), reduction="none").numpy()
    loss = K.UnifiedFocalLoss(from_logits=True, reduction=reduction, dtype="float64")
    got = np.asarray(loss(y, np.moveaxis(x, 1, -1), sample_weight=w))
    expect = {"sum_over_batch_size": (per_sample * w).mean(), "sum": (per_sample * w).sum(), None: per_sample * w}
    np.testing.assert_allclose(got, expect[reduction], rtol=1e-6)  # Keras's torch backend rounds the mean to f32
