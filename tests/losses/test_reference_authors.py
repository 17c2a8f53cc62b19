"""Test 1 of issue #2: agreement with values computed by the authors' own Keras code.

Records: ``<reference>/authors_keras`` (TensorFlow 2.21, float32, probability input,
channels-last). Conventions mapped here: class axis moved to position 1; the authors' ``weight`` is
``1 - lambda_``; their Tversky ``delta`` weights false negatives (our ``beta``), ``1 - delta`` false
positives (our ``alpha``); their Focal Tversky ``gamma`` is our exponent ``1/gamma``; their scalar focal
``alpha`` scales every class; their Tversky-based asymmetric/symmetric functions smooth with 1e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unifocal.losses as L
from tests.authors_reference import _load, _records


def _channels_first(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, -1, 1)


def _ours(function: str, kw: dict, n_classes: int):
    """(callable(probs, onehot) -> loss, sign) implementing the authors' ``function(**kw)``."""
    def tv(delta, smooth=1e-6):
        return lambda p, y: L.tversky_loss(p, y, alpha=1 - delta, beta=delta, input="probs", smooth=smooth)

    if function == "dice_loss":
        return tv(kw.get("delta", 0.5)), 1.0
    if function == "tversky_loss":
        return tv(kw.get("delta", 0.7)), 1.0
    if function == "dice_coefficient":
        f = tv(kw.get("delta", 0.5))
        return (lambda p, y: 1.0 - f(p, y)), 1.0
    if function == "focal_tversky_loss":
        d, g = kw.get("delta", 0.7), kw.get("gamma", 0.75)
        return (lambda p, y: L.focal_tversky_loss(p, y, alpha=1 - d, beta=d, gamma=1 / g, input="probs")), 1.0
    if function == "focal_loss":
        a = kw.get("alpha")
        alpha = None if a is None else [a] * n_classes
        return (lambda p, y: L.focal_loss(p, y, alpha=alpha, gamma=kw.get("gamma_f", 2.0), input="probs")), 1.0
    if function == "combo_loss":
        return (lambda p, y: L.combo_loss(p, y, alpha=kw.get("alpha", 0.5), beta=kw.get("beta", 0.5),
                                          input="probs")), 1.0
    dg = {"delta": kw.get("delta", 0.7)}
    if function == "symmetric_focal_loss":
        return (lambda p, y: L.symmetric_focal_loss(p, y, gamma=kw.get("gamma", 2.0), input="probs", **dg)), 1.0
    if function == "asymmetric_focal_loss":
        return (lambda p, y: L.asymmetric_focal_loss(p, y, gamma=kw.get("gamma", 2.0), input="probs", **dg)), 1.0
    if function == "asymmetric_focal_tversky_loss":
        return (lambda p, y: L.asymmetric_focal_tversky_loss(p, y, gamma=kw.get("gamma", 0.75), input="probs",
                                                             smooth=1e-7, **dg)), 1.0
    if function == "symmetric_focal_tversky_loss":
        return (lambda p, y: L.symmetric_focal_tversky_loss(p, y, gamma=kw.get("gamma", 0.75), input="probs",
                                                            smooth=1e-7, **dg)), 1.0
    uf = {"asym_unified_focal_loss": L.unified_focal_loss, "sym_unified_focal_loss": L.symmetric_unified_focal_loss}
    if function in uf:
        fn = uf[function]
        w, d, g = kw.get("weight", 0.5), kw.get("delta", 0.6), kw.get("gamma", 0.5)
        return (lambda p, y: fn(p, y, delta=d, gamma=g, lambda_=1.0 - w, input="probs", smooth=1e-7)), 1.0
    raise KeyError(function)


@pytest.mark.parametrize("record", _records())
def test_matches_authors_keras(record):
    meta, arrays = _load()
    assert record is not None
    case = record["case"]
    y_true = torch.from_numpy(_channels_first(arrays[f"{case}__y_true"])).float()
    y_pred = torch.from_numpy(_channels_first(arrays[f"{case}__y_pred"])).float().requires_grad_(True)
    fn, _ = _ours(record["function"], record["kwargs"], y_true.shape[1])
    value = fn(y_pred, y_true)
    value.backward()
    ref = record["value"]
    v = value.item()
    assert abs(v - ref) <= 1e-5 * max(abs(ref), 1e-3), (v, ref)
    g_ref = _channels_first(arrays[record["grad"]])
    g = y_pred.grad.numpy()
    scale = np.abs(g_ref).max()
    err = np.abs(g - g_ref).max() / max(scale, 1e-12)
    assert err <= 1e-4, f"max gradient error relative to max |grad|: {err:.2e}"


def test_reference_covers_every_authors_function():
    meta, _ = _load()
    fns = {r["function"] for r in meta["records"]}
    for f in fns:
        _ours(f, {}, 2)  # raises KeyError for an authors' function we do not map
    assert len(meta["records"]) >= 100
