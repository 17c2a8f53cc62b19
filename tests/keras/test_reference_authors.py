"""The authors' Keras values (all records of ``authors_keras``) reproduced by :mod:`unifocal.keras`.

The records are the authors' own layout: channels-last probabilities, one-hot targets, float32. The
mapping from the authors' functions to ours is the one of ``tests/losses/test_reference_authors.py``
(their ``weight`` is ``1 - lambda_``; their Tversky ``delta`` is our ``beta`` / FN weight; their Focal
Tversky ``gamma`` is our exponent ``1/gamma``; their scalar focal ``alpha`` scales every class; their
asymmetric/symmetric Tversky functions smooth with 1e-7), written here as (name, parameters) so that
one table drives both frameworks; :func:`test_mapping_is_the_torch_tests_mapping` checks that.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import unifocal.keras as K
from tests.authors_reference import _load, _records
from tests.keras._backend import value_and_grad


def authors_to_unifocal(function: str, kw: dict, n_classes: int) -> tuple[str, dict, bool]:
    """``(loss name, parameters, complement)`` of the authors' ``function(**kw)``.

    ``complement`` marks ``dice_coefficient``: the authors' coefficient is ``1 - loss``.
    """
    if function in ("dice_loss", "tversky_loss", "dice_coefficient"):
        d = kw.get("delta", 0.7 if function == "tversky_loss" else 0.5)
        return "tversky", {"alpha": 1 - d, "beta": d}, function == "dice_coefficient"
    if function == "focal_tversky_loss":
        d, g = kw.get("delta", 0.7), kw.get("gamma", 0.75)
        return "focal_tversky", {"alpha": 1 - d, "beta": d, "gamma": 1 / g}, False
    if function == "focal_loss":
        a = kw.get("alpha")
        return "focal", {"alpha": None if a is None else [a] * n_classes, "gamma": kw.get("gamma_f", 2.0)}, False
    if function == "combo_loss":
        # the authors weight class 0 (background) by beta and class 1 by 1 - beta; ours weights the
        # rare class by beta. The records use beta = 0.5 and None, where the two readings coincide.
        b = kw.get("beta", 0.5)
        return "combo", {"alpha": kw.get("alpha", 0.5), "beta": None if b is None else 1.0 - b}, False
    dg = {"delta": kw.get("delta", 0.7)}
    if function in ("symmetric_focal_loss", "asymmetric_focal_loss"):
        return function.removesuffix("_loss"), {**dg, "gamma": kw.get("gamma", 2.0)}, False
    if function in ("asymmetric_focal_tversky_loss", "symmetric_focal_tversky_loss"):
        return function.removesuffix("_loss"), {**dg, "gamma": kw.get("gamma", 0.75), "smooth": 1e-7}, False
    uf = {"asym_unified_focal_loss": "unified_focal", "sym_unified_focal_loss": "symmetric_unified_focal"}
    if function in uf:
        return uf[function], {"delta": kw.get("delta", 0.6), "gamma": kw.get("gamma", 0.5),
                              "lambda_": 1.0 - kw.get("weight", 0.5), "smooth": 1e-7}, False
    raise KeyError(function)


def _keras_loss(record: dict, n_classes: int):
    name, params, complement = authors_to_unifocal(record["function"], record["kwargs"], n_classes)
    loss = K.get_loss(name, **params)  # defaults: channels-last probabilities, as the authors' code

    def fn(y_true, y_pred):
        v = loss(y_true, y_pred)
        return 1.0 - v if complement else v

    return fn


@pytest.mark.parametrize("record", _records())
def test_matches_authors_keras(record):
    meta, arrays = _load()
    assert record is not None
    case = record["case"]
    y_true = arrays[f"{case}__y_true"]
    y_pred = arrays[f"{case}__y_pred"]
    fn = _keras_loss(record, y_true.shape[-1])
    value, grad = value_and_grad(lambda p: fn(y_true, p), y_pred)
    ref = record["value"]
    assert value.dtype == np.float32
    assert abs(float(value) - ref) <= 1e-5 * max(abs(ref), 1e-3), (float(value), ref)
    g_ref = arrays[record["grad"]]
    err = np.abs(grad - g_ref).max() / max(np.abs(g_ref).max(), 1e-12)
    assert err <= 1e-4, f"max gradient error relative to max |grad|: {err:.2e}"


def test_mapping_is_the_torch_tests_mapping():
    """Our (name, parameters) table gives exactly the torch tests' values on every record."""
    torch = pytest.importorskip("torch")
    import unifocal.losses as L
    from tests.losses.test_reference_authors import _ours

    meta, arrays = _load()
    for rec in meta["records"]:
        y_true = torch.from_numpy(np.moveaxis(arrays[f"{rec['case']}__y_true"], -1, 1)).double()
        y_pred = torch.from_numpy(np.moveaxis(arrays[f"{rec['case']}__y_pred"], -1, 1)).double()
        k = y_true.shape[1]
        name, params, complement = authors_to_unifocal(rec["function"], rec["kwargs"], k)
        ours = float(L.get_loss(name, input="probs", **params)(y_pred, y_true))
        ours = 1.0 - ours if complement else ours
        fn, _ = _ours(rec["function"], rec["kwargs"], k)
        assert ours == pytest.approx(float(fn(y_pred, y_true)), rel=1e-12, abs=1e-14), \
            f"{rec['function']} {json.dumps(rec['kwargs'])}"


def test_every_record_is_mapped():
    meta, _ = _load()
    assert len(meta["records"]) == 139
    for rec in meta["records"]:
        authors_to_unifocal(rec["function"], rec["kwargs"], 2)
