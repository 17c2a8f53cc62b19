"""One template per loss (kornia style): smoke, shapes, gradcheck (test 5), stability (test 6),
errors (test 7) and property tests (test 8) of issue #2."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unifocal.losses import available_losses, get_loss

NAMES = available_losses()
# parameters under which every loss is evaluated in the stability tests: the defaults, plus a
# Tversky-enhancement exponent well below one where the loss has one.
STRESS = {"unified_focal": {"gamma": 0.5}, "asymmetric_focal_tversky": {"gamma": 0.5},
          "symmetric_focal_tversky": {"gamma": 0.5}, "symmetric_unified_focal": {"gamma": 0.5}}


def _finite_value_and_grad(loss, x, y):
    x = x.detach().clone().requires_grad_(True)
    v = loss(x, y)
    v.backward()
    return bool(torch.isfinite(v)) and bool(torch.isfinite(x.grad).all()), v.detach(), x.grad


# --- smoke and shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 1, 16), (2, 2, 8, 8), (1, 3, 4, 5, 6), (2, 4, 7, 9)])
def test_smoke_shapes(name, shape):
    x = torch.randn(shape)
    k = max(shape[1], 2)
    y = torch.randint(0, k, (shape[0], *shape[2:]))
    ok, v, g = _finite_value_and_grad(get_loss(name), x, y)
    assert ok and v.shape == () and g.shape == x.shape
    assert get_loss(name, reduction="none")(x, y).shape == (shape[0],)


# --- gradcheck (float64) -----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 3, 4), (2, 1, 5)])
def test_gradcheck(name, shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
    k = max(shape[1], 2)
    y = torch.randint(0, k, (shape[0], *shape[2:]), generator=gen)
    loss = get_loss(name)
    assert torch.autograd.gradcheck(lambda inp: loss(inp, y), (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["unified_focal", "dice", "focal"])
def test_gradcheck_probs_soft_target_and_ignore(name):
    gen = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64), 1).requires_grad_(True)
    soft = torch.softmax(torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64), 1)
    loss = get_loss(name, input="probs")
    assert torch.autograd.gradcheck(lambda inp: loss(inp, soft), (p,), eps=1e-7, atol=1e-5, rtol=1e-4)
    y = torch.randint(0, 3, (2, 4, 4), generator=gen)
    y[0, 0, :2] = 255
    x = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    loss = get_loss(name, ignore_index=255, batch=True)
    assert torch.autograd.gradcheck(lambda inp: loss(inp, y), (x,), eps=1e-6, atol=1e-5, rtol=1e-4)


# --- stability -------------------------------------------------------------------------------

def _stability_cases():
    y = torch.zeros(2, 8, 8, dtype=torch.long)
    y[0, 2:5, 2:5] = 1
    y[1, 4:7, 1:3] = 2
    onehot = torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).float()
    all_bg = torch.zeros_like(y)
    all_fg = torch.full_like(y, 1)
    gen = torch.Generator().manual_seed(0)
    return {
        "perfect-logits": (onehot * 30 - 15, y),
        "perfect-extreme-logits": (onehot * 2e4 - 1e4, y),
        "all-background-sample": (torch.randn(2, 3, 8, 8, generator=gen), all_bg),
        "all-foreground-sample": (torch.randn(2, 3, 8, 8, generator=gen), all_fg),
        "all-background-perfect": (torch.stack([torch.full((8, 8), 1e4), torch.full((8, 8), -1e4),
                                                torch.full((8, 8), -1e4)])[None].repeat(2, 1, 1, 1), all_bg),
        "class-absent-from-batch": (torch.randn(2, 3, 8, 8, generator=gen), torch.where(y == 2, 0, y)),
        "extreme-random-logits": (torch.randn(2, 3, 8, 8, generator=gen).sign() * 1e4, y),
        "wrong-confident": ((1 - onehot) * 2e4 - 1e4, y),
    }


@pytest.mark.parametrize("case", list(_stability_cases()))
@pytest.mark.parametrize("name", NAMES)
def test_stability_finite(name, case):
    x, y = _stability_cases()[case]
    for batch in (False, True):
        ok, v, _ = _finite_value_and_grad(get_loss(name, batch=batch, **STRESS.get(name, {})), x, y)
        assert ok, f"{name} {case} batch={batch}: value {float(v)}"


@pytest.mark.parametrize("name", ["unified_focal", "asymmetric_focal_tversky", "symmetric_unified_focal"])
def test_perfect_prediction_near_zero_loss_finite_gradient(name):
    y = torch.zeros(2, 8, 8, dtype=torch.long)
    y[:, 2:5, 2:5] = 1
    y[:, 5:7, 1:3] = 2  # every class present in every sample: 1 - TI is ~0 for all of them
    x = torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).float() * 30 - 15
    ok, v, g = _finite_value_and_grad(get_loss(name, gamma=0.5), x, y)
    assert ok and v.item() < 1e-5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_and_autocast(name, dtype):
    gen = torch.Generator().manual_seed(0)
    x32 = torch.randn(2, 3, 16, 16, generator=gen) * 4
    y = torch.randint(0, 3, (2, 16, 16), generator=gen)
    loss = get_loss(name)
    ok, v, g = _finite_value_and_grad(loss, x32.to(dtype), y)
    assert ok and v.dtype == torch.float32 and g.dtype == dtype
    ref = float(loss(x32.to(dtype).float(), y))  # same rounded logits, float32 arithmetic
    assert float(v) == pytest.approx(ref, rel=1e-5, abs=1e-6)
    conv = torch.nn.Conv2d(3, 3, 1)
    if dtype == torch.bfloat16:  # CPU autocast supports bfloat16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x32)
            assert out.dtype == torch.bfloat16
            v = loss(out, y)
        v.backward()
        assert torch.isfinite(v) and all(torch.isfinite(p.grad).all() for p in conv.parameters())


# --- errors ------------------------------------------------------------------------------------

def test_errors_name_the_problem():
    x = torch.randn(2, 3, 8, 8)
    y = torch.randint(0, 3, (2, 8, 8))
    loss = get_loss("unified_focal")
    with pytest.raises(ValueError, match="shape"):
        loss(x, y[:, :4])
    with pytest.raises(ValueError, match="label 3 is outside"):
        loss(x, torch.full_like(y, 3))
    with pytest.raises(ValueError, match="label -1 is outside"):
        loss(x, torch.full_like(y, -1))
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(x.clone().fill_(float("nan")), y)
    with pytest.raises(ValueError, match="NaN or Inf"):
        loss(torch.where(y.unsqueeze(1) == 1, float("inf"), x), y)
    with pytest.raises(ValueError, match="4 channels but pred has 3"):
        loss(x, torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="input must be one of"):
        get_loss("dice", input="softmax")
    with pytest.raises(ValueError, match="input='logits'"):
        get_loss("dice", input="probs")(x, y)
    with pytest.raises(ValueError, match="1-3 spatial dims"):
        loss(torch.randn(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction"):
        get_loss("focal", reduction="avg")
    with pytest.raises(ValueError, match="rare_classes"):
        get_loss("unified_focal", rare_classes=[5])(x, y)
    with pytest.raises(ValueError, match="delta has 2 entries but the input has 3 classes"):
        get_loss("unified_focal", delta=[0.5, 0.5])(x, y)


@pytest.mark.parametrize("name,params,match", [
    ("unified_focal", {"delta": 1.2}, "delta must lie in"),
    ("unified_focal", {"delta": [0.5, -0.1]}, "delta must lie in"),
    ("unified_focal", {"lambda_": -0.5}, "lambda_ must lie in"),
    ("unified_focal", {"gamma": 1.0}, "gamma must lie in"),
    ("unified_focal", {"gamma": -0.1}, "gamma must lie in"),
    ("unified_focal", {"gamma": float("nan")}, "gamma must lie in"),
    ("asymmetric_focal_tversky", {"gamma": 1.5}, "gamma must lie in"),
    ("focal", {"gamma": -1.0}, "gamma must lie in"),
    ("focal", {"alpha": 1.5}, "alpha must lie in"),
    ("focal_tversky", {"gamma": 0.0}, "gamma must lie in"),
    ("tversky", {"alpha": -0.1}, "alpha must lie in"),
    ("combo", {"alpha": 2.0}, "alpha must lie in"),
    ("hybrid_focal", {"lambda_": 1.1}, "lambda_ must lie in"),
    ("cross_entropy", {"weight": [1.0, -2.0]}, "weight must be"),
])
def test_bad_parameters_raise_at_construction(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_loss(name, **params)


# --- property tests (hypothesis) ---------------------------------------------------------------

@st.composite
def batches(draw):
    b = draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 2, 3]))
    n = draw(st.integers(4, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    x = torch.randn(b, c, n, generator=gen, dtype=torch.float64) * scale
    y = torch.randint(0, max(c, 2), (b, n), generator=gen)
    return x, y, seed


@settings(max_examples=25, deadline=None)
@given(batches(), st.sampled_from(NAMES))
def test_property_spatial_permutation_invariance(data, name):
    x, y, seed = data
    perm = torch.randperm(x.shape[-1], generator=torch.Generator().manual_seed(seed))
    loss = get_loss(name)
    assert float(loss(x[..., perm], y[..., perm])) == pytest.approx(float(loss(x, y)), rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(batches(), st.sampled_from(NAMES))
def test_property_per_sample_mode_is_mean_of_single_calls(data, name):
    x, y, _ = data
    loss = get_loss(name)
    singles = [float(loss(x[i:i + 1], y[i:i + 1])) for i in range(x.shape[0])]
    assert float(loss(x, y)) == pytest.approx(math.fsum(singles) / len(singles), rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(batches(), st.sampled_from([n for n in NAMES if n != "combo"]), st.booleans())
def test_property_non_negative(data, name, batch):
    x, y, _ = data
    assert float(get_loss(name, batch=batch)(x, y)) >= 0.0
