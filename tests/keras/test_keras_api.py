"""The Keras conventions of :mod:`unifocal.keras`: the names and defaults of the framework-neutral
description (:mod:`unifocal.spec`, shared with the torch losses), serialisation, clear errors (including a class axis read in the wrong layout), finite values and
gradients in the hard cases, mixed precision, and traced (compiled) execution.
"""

from __future__ import annotations

import importlib.util
import inspect

import keras
import numpy as np
import pytest

import unifocal.keras as K
from tests.keras._backend import BACKEND, value_and_grad
from unifocal import spec

NAMES = spec.available_losses()
KERAS_ONLY = {"self", "reduction", "name", "dtype", "common"}
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _probs(shape, seed=0, axis=-1):
    x = np.random.default_rng(seed).normal(size=shape)
    e = np.exp(x - x.max(axis, keepdims=True))
    return (e / e.sum(axis, keepdims=True)).astype("float32")


def _labels(shape, k, seed=1):
    return np.random.default_rng(seed).integers(0, k, size=shape)


# --- names, parameters, defaults -----------------------------------------------------------------

def test_same_losses_as_the_description():
    assert K.available_losses() == NAMES
    for name in NAMES:
        assert callable(getattr(K, f"{name}_loss")), name
        assert type(K.get_loss(name)).__name__ == spec.LOSSES[name].class_name
        assert getattr(K, spec.LOSSES[name].class_name) is type(K.get_loss(name))


@pytest.mark.skipif(not HAS_TORCH, reason="compares with the torch losses")
def test_same_losses_as_torch():
    import unifocal.losses as L

    for name in NAMES:
        assert type(K.get_loss(name)).__name__ == type(L.get_loss(name)).__name__
        assert L.loss_defaults(name) == spec.loss_defaults(name)


@pytest.mark.parametrize("name", NAMES)
def test_same_parameters_and_defaults_as_the_description(name):
    """The signatures (classes and functions) list every keyword with the description's defaults."""
    sig = inspect.signature(type(K.get_loss(name)))
    ours = {p.name: p.default for p in sig.parameters.values()
            if p.name not in KERAS_ONLY and p.kind is p.POSITIONAL_OR_KEYWORD}
    assert ours == spec.loss_defaults(name)
    common = {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert common == K.losses.COMMON_DEFAULTS and {"from_logits", "ignore_index", "smooth"} <= set(common)
    assert sig.parameters["reduction"].default == "sum_over_batch_size"
    fsig = inspect.signature(getattr(K, f"{name}_loss"))
    assert list(fsig.parameters)[:2] == ["y_true", "y_pred"]
    assert {p.name: p.default for p in list(fsig.parameters.values())[2:]
            if p.kind is p.POSITIONAL_OR_KEYWORD} == spec.loss_defaults(name)
    assert spec.LOSSES[name].summary in type(K.get_loss(name)).__doc__
    loss = K.get_loss(name)
    for k, v in spec.loss_defaults(name).items():  # settings as attributes, as the torch modules
        assert getattr(loss, k) == v


def test_keras_needs_no_torch():
    """unifocal.keras (and the description it shares with the torch losses) imports no torch."""
    import subprocess
    import sys

    code = ("import os, sys; os.environ['KERAS_BACKEND'] = 'jax'; import unifocal.keras, unifocal.spec; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keyword_is_a_type_error(name):
    y_true, y_pred = _labels((2, 6, 5), 3), _probs((2, 6, 5, 3))
    for call in (lambda: K.get_loss(name, not_a_setting=1), lambda: type(K.get_loss(name))(not_a_setting=1),
                 lambda: getattr(K, f"{name}_loss")(y_true, y_pred, not_a_setting=1)):
        with pytest.raises(TypeError, match="not_a_setting") as info:
            call()
        assert isinstance(info.value, spec.UnknownArgumentError)
    with pytest.raises(TypeError, match="from_logits"):
        K.get_loss(name, input="logits")


def test_get_loss_names_as_torch():
    assert isinstance(K.get_loss("Unified-Focal loss"), K.UnifiedFocalLoss)
    with pytest.raises(ValueError, match="did you mean unified_focal"):
        K.get_loss("unified_focl")


# --- serialisation ---------------------------------------------------------------------------------

CONFIGURED = {
    "cross_entropy": {"weight": [0.2, 1.0, 3.0]},
    "focal": {"alpha": [0.1, 0.4, 0.5], "gamma": 1.5},
    "dice": {},
    "tversky": {"alpha": 0.4, "beta": 0.6},
    "focal_tversky": {"gamma": 1.5},
    "combo": {"alpha": 0.3, "beta": None},
    "hybrid_focal": {"lambda_": 0.3, "focal_alpha": None},
    "asymmetric_focal": {"delta": [0.4, 0.7, 0.8]},
    "asymmetric_focal_tversky": {"gamma": 0.5},
    "unified_focal": {"delta": 0.7, "gamma": 0.4, "lambda_": 0.2},
    "symmetric_focal": {"gamma": 0.5},
    "symmetric_focal_tversky": {"delta": 0.5},
    "symmetric_unified_focal": {"lambda_": 0.8},
}


@pytest.mark.parametrize("name", NAMES)
def test_serialise_round_trip(name):
    loss = K.get_loss(name, **CONFIGURED[name], from_logits=True, rare_classes=[2], ignore_index=255,
                      reduction="sum", name="custom")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss)
    assert again.get_config() == loss.get_config()
    assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype("float32")
    y = _labels((2, 6, 5), 3)
    y[0, 0, :2] = 255
    assert float(again(y, x)) == pytest.approx(float(loss(y, x)), rel=1e-6)
    assert keras.saving.get_registered_object("unifocal>" + type(loss).__name__) is type(loss)


def test_saved_model_restores_the_loss(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 1, activation="softmax")])
    model.compile(optimizer="sgd", loss=K.UnifiedFocalLoss(delta=0.7, rare_classes=[2], ignore_index=255))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, K.UnifiedFocalLoss)
    assert loaded.loss.get_config() == model.loss.get_config()


# --- errors --------------------------------------------------------------------------------------

def test_channels_first_prediction_given_as_channels_last():
    y_pred = _probs((2, 3, 16, 12), axis=1)  # (B, C, H, W)
    y_true = _labels((2, 16, 12), 3)
    with pytest.raises(ValueError, match=r"looks channels_first.*data_format='channels_first'"):
        K.UnifiedFocalLoss()(y_true, y_pred)
    assert np.isfinite(float(K.UnifiedFocalLoss(data_format="channels_first")(y_true, y_pred)))


def test_channels_last_prediction_given_as_channels_first():
    y_pred = _probs((2, 16, 12, 3))
    y_true = _labels((2, 16, 12), 3)
    with pytest.raises(ValueError, match=r"looks channels_last.*data_format='channels_last'"):
        K.UnifiedFocalLoss(data_format="channels_first")(y_true, y_pred)


def test_channel_count_disagreeing_with_one_hot_target():
    y_pred = _probs((2, 3, 16, 12), axis=1)  # channels-first probabilities
    onehot_last = np.eye(3)[_labels((2, 16, 12), 3)]  # (B, H, W, C)
    with pytest.raises(ValueError, match=r"does not match.*looks channels_first"):
        K.DiceLoss()(onehot_last, y_pred)
    with pytest.raises(ValueError, match="one-hot y_true has 4 channels but y_pred has 3 classes"):
        K.DiceLoss()(np.eye(4)[_labels((2, 6, 5), 4)], _probs((2, 6, 5, 3)))
    y_true = np.moveaxis(onehot_last, -1, 1)  # one-hot (B, C, H, W)
    # same shapes, both channels-first: the probabilities sum to one over axis 1, not the last axis
    with pytest.raises(ValueError, match="data_format='channels_first'"):
        K.DiceLoss()(y_true, y_pred)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"delta": 1.5}, "delta must lie in"),
    ({"gamma": 1.0}, r"gamma must lie in \[0.0, 1.0\)"),
    ({"input": "logits"}, "from_logits=True/False instead of input="),
    ({"from_logits": "yes"}, "from_logits must be True or False"),
    ({"data_format": "NHWC"}, "data_format must be one of"),
    ({"rare_classes": [0]}, "must not contain the background"),
    ({"reduction": "mean_over_pixels"}, "reduction"),
])
def test_bad_parameters_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        K.UnifiedFocalLoss(**kwargs)


def test_bad_values_are_named():
    y_pred = _probs((2, 6, 5, 3))
    with pytest.raises(ValueError, match="label 3 is outside"):
        K.DiceLoss()(np.full((2, 6, 5), 3), y_pred)
    with pytest.raises(ValueError, match="pass from_logits=True"):
        K.DiceLoss()(_labels((2, 6, 5), 3), y_pred * 3 - 1)
    with pytest.raises(ValueError, match="non-integer values"):
        K.DiceLoss()(np.full((2, 6, 5), 0.5), y_pred)
    with pytest.raises(ValueError, match="must sum to one over the class axis"):
        K.DiceLoss()(_labels((2, 6, 5), 3), y_pred * 0.5)
    with pytest.raises(ValueError, match="soft y_true must sum to one"):
        K.DiceLoss()(np.ones((2, 6, 5, 3)), y_pred)  # multi-hot
    assert np.isfinite(float(K.DiceLoss(validate=False)(_labels((2, 6, 5), 3), y_pred * 0.5)))
    with pytest.raises(ValueError, match="NaN"):
        K.DiceLoss(from_logits=True)(_labels((2, 6, 5), 3), np.full((2, 6, 5, 3), np.nan, "float32"))
    with pytest.raises(ValueError, match=r"rare_classes .* outside"):
        K.UnifiedFocalLoss(rare_classes=[5])(_labels((2, 6, 5), 3), y_pred)


# --- hard cases -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_finite_at_perfect_prediction_and_absent_class(name):
    labels = _labels((2, 6, 5), 2)  # class 2 absent everywhere
    perfect_probs = np.eye(3)[labels].astype("float32")
    perfect_logits = (perfect_probs * 2e4 - 1e4).astype("float32")
    for x, logits in ((perfect_probs, False), (perfect_logits, True)):
        loss = K.get_loss(name, from_logits=logits)
        value, grad = value_and_grad(lambda p, loss=loss: loss(labels, p), x)
        assert np.isfinite(value) and np.isfinite(grad).all(), (name, logits)


def test_ignore_index_one_channel_sigmoid_3d():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 3, 4, 5, 1)).astype("float32")  # 3D, one sigmoid channel
    y = rng.integers(0, 2, size=(2, 3, 4, 5, 1)).astype("float32")
    y_ignored = y.copy()
    y_ignored[:, 0] = 255
    loss = K.UnifiedFocalLoss(from_logits=True, ignore_index=255)
    if HAS_TORCH:
        import torch

        import unifocal.losses as L

        ref = L.unified_focal_loss(torch.tensor(np.moveaxis(z, -1, 1)), torch.tensor(y_ignored[..., 0]).long(),
                                   ignore_index=255)
        assert float(loss(y_ignored, z)) == pytest.approx(float(ref), rel=1e-5)
    # the ignored slice takes no part: the same as the loss on the remaining slices
    kept = float(K.UnifiedFocalLoss(from_logits=True)(y[:, 1:], z[:, 1:]))
    assert float(loss(y_ignored, z)) == pytest.approx(kept, rel=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_predictions_are_computed_in_float32(dtype):
    y_pred = keras.ops.cast(_probs((2, 16, 16, 3)), dtype)
    y_true = _labels((2, 16, 16), 3)
    value = K.UnifiedFocalLoss()(y_true, y_pred)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    exact = K.UnifiedFocalLoss()(y_true, keras.ops.cast(y_pred, "float32"))
    assert float(value) == float(exact)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_training_step_under_mixed_precision_policy(policy):
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3, padding="same"),
                                  keras.layers.Conv2D(3, 1)])  # logits in the low precision
        x = np.random.default_rng(0).normal(size=(4, 16, 16, 1)).astype("float32")
        assert keras.backend.standardize_dtype(model(x).dtype) == policy.removeprefix("mixed_")
        model.compile(optimizer="adam", loss=K.UnifiedFocalLoss(from_logits=True))
        loss = model.train_on_batch(x, _labels((4, 16, 16), 3))
        assert np.isfinite(loss)
    finally:
        keras.config.set_dtype_policy(old)


def test_traced_execution_matches_eager():
    """Inside a compiled graph the value checks are skipped; the value is the same."""
    y_true, y_pred = _labels((2, 6, 5), 3), _probs((2, 6, 5, 3))
    loss = K.HybridFocalLoss()
    eager = float(loss(y_true, y_pred))
    if BACKEND == "jax":
        import jax

        traced = float(jax.jit(lambda t, p: loss(t, p))(y_true, y_pred))
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        traced = float(tf.function(lambda t, p: loss(t, p))(y_true, y_pred))
    else:
        pytest.skip("the torch backend runs eagerly")
    assert traced == pytest.approx(eager, rel=1e-6)


def test_cross_entropy_equals_keras_own():
    """An independent reference: Keras's own cross entropies (same sample sizes, so mean of means)."""
    y = _labels((2, 6, 5), 3)
    z = np.random.default_rng(2).normal(size=(2, 6, 5, 3)).astype("float32")
    ours = float(K.CrossEntropyLoss(from_logits=True)(y, z))
    assert ours == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, z)), rel=1e-5)
    p = _probs((2, 6, 5, 3))
    ours = float(K.CrossEntropyLoss()(np.eye(3)[y], p))
    assert ours == pytest.approx(float(keras.losses.CategoricalCrossentropy()(np.eye(3)[y], p)), rel=1e-5)


@pytest.mark.skipif(not HAS_TORCH, reason="the rest of unifocal needs torch")
def test_nothing_else_imports_keras():
    import subprocess
    import sys

    code = ("import sys, unifocal.cli, unifocal.losses, unifocal.training, unifocal.study, unifocal.data; "
            "assert 'keras' not in sys.modules, sorted(m for m in sys.modules if 'keras' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
