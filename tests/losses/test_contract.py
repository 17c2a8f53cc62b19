"""One contract, whichever way a loss is called: function and module accept and refuse the same arguments."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import unifocal.losses as L
from unifocal.losses import available_losses, get_loss, loss_defaults
from unifocal.losses.registry import LOSSES
from unifocal.spec import COMMON_DEFAULTS, UnknownArgumentError
from unifocal.spec import LOSSES as SPECS

NAMES = available_losses()
# values tried for every parameter of every loss: each is accepted or refused by the function, and
# the module must do the same
PROBES = [-3.0, -0.1, 0.0, 0.2, 0.5, 0.99, 1.0, 1.5, 1.7, 4 / 3, float("nan"), float("inf"), None, "x", True,
          [0.5, 0.5], [0.2, -1.0]]
COMMON_PROBES = {"input": ["logits", "probs", "softmax"], "reduction": ["mean", "none", "avg"],
                 "smooth": [0.0, 1.0, -1.0, float("nan")], "batch": [True, "yes"], "multilabel": [True, 1],
                 "include_background": [False, None], "validate": [False, 0], "rare_classes": [[1], [0], [-1], "a"],
                 "background": [1, -1, 1.5], "ignore_index": [255, "x"], "softmax": [True, "y"],
                 "sigmoid": [True], "to_onehot_y": [True, 2]}


def _data(c=2):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, c, 6, 6, generator=gen, dtype=torch.float64)
    return x, torch.randint(0, max(c, 2), (2, 6, 6), generator=gen)


def _outcome(call):
    try:
        return "ok", call()
    except ValueError as e:
        return "ValueError", str(e)


def _both(fn, cls, x, y, kw):
    """(function outcome, module outcome) of the same arguments."""
    return _outcome(lambda: fn(x, y, **kw)), _outcome(lambda: cls(**kw)(x, y))


@pytest.mark.parametrize("name", NAMES)
def test_function_and_module_have_one_signature(name):
    cls = LOSSES[name]
    fn = cls.functional
    fsig = inspect.signature(fn)
    msig = inspect.signature(cls)
    assert list(fsig.parameters)[:2] == ["pred", "target"]  # the real public signature, not (prep, ...)
    assert list(fsig.parameters.values())[2:] == list(msig.parameters.values())
    own = [p for p in list(fsig.parameters.values())[2:] if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert loss_defaults(name) == {p.name: p.default for p in own} == SPECS[name].defaults
    # every common keyword is in the signature, keyword-only, with its default (help() and IDEs show them)
    common = {p.name: p.default for p in fsig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert common == {**COMMON_DEFAULTS, "softmax": None, "sigmoid": None, "to_onehot_y": None}
    assert {"reduction", "ignore_index", "include_background", "softmax"} <= set(msig.parameters)
    # the class docstring states the equation, the arguments and an example
    assert SPECS[name].summary in cls.__doc__
    assert "Args:" in cls.__doc__ and "Example:" in cls.__doc__
    assert fn is getattr(L, f"{name}_loss") and cls is type(get_loss(name))
    module = cls()
    for k, v in loss_defaults(name).items():  # settings are attributes, with the function's defaults
        assert getattr(module, k) == v
    assert module.reduction == "mean" and module.input == "logits" and module.multilabel is False


@pytest.mark.parametrize("name", NAMES)
def test_function_and_module_accept_and_refuse_the_same_parameters(name):
    x, y = _data()
    fn, cls = LOSSES[name].functional, LOSSES[name]
    tried = 0
    for key in loss_defaults(name):
        for value in PROBES:
            f, m = _both(fn, cls, x, y, {key: value})
            assert f[0] == m[0], f"{name}({key}={value!r}): function {f}, module {m}"
            if f[0] == "ok":
                assert torch.equal(f[1], m[1])
                assert getattr(cls(**{key: value}), key) == (list(value) if isinstance(value, list) else value)
            else:
                assert f[1] == m[1] and key in f[1]  # the same message, naming the parameter
                with pytest.raises(ValueError):
                    cls(**{key: value})  # the module refuses at construction, before any data
            tried += 1
    for key, values in COMMON_PROBES.items():
        for value in values:
            yy = torch.nn.functional.one_hot(y, 2).movedim(-1, 1).to(x.dtype) if key == "sigmoid" else y
            f, m = _both(fn, cls, x, yy, {key: value})
            assert f[0] == m[0], f"{name}({key}={value!r}): function {f}, module {m}"
            if f[0] == "ok":
                assert torch.equal(f[1], m[1])
            else:
                assert f[1] == m[1]
    assert tried == len(loss_defaults(name)) * len(PROBES)


@pytest.mark.parametrize("name,params", [
    ("unified_focal", {"gamma": 1.5}), ("unified_focal", {"delta": 1.7}), ("unified_focal", {"lambda_": -3}),
    ("hybrid_focal", {"focal_gamma": -1}), ("hybrid_focal", {"tversky_gamma": 0}), ("focal", {"alpha": 2.0}),
])
def test_functional_api_checks_parameters(name, params):
    """The functional API refuses what the module refuses (they used to differ)."""
    x, y = _data()
    with pytest.raises(ValueError, match=next(iter(params))):
        getattr(L, f"{name}_loss")(x, y, **params)
    with pytest.raises(ValueError, match=next(iter(params))):
        get_loss(name, **params)


def test_positional_parameters_and_errors():
    x, y = _data()
    assert torch.equal(L.unified_focal_loss(x, y, 0.7, 0.3, 0.4), L.unified_focal_loss(x, y, delta=0.7, gamma=0.3,
                                                                                        lambda_=0.4))
    assert torch.equal(L.UnifiedFocalLoss(0.7, 0.3, 0.4)(x, y), L.unified_focal_loss(x, y, 0.7, 0.3, 0.4))
    with pytest.raises(TypeError, match="at most 3"):
        L.unified_focal_loss(x, y, 0.7, 0.3, 0.4, 0.1)
    with pytest.raises(TypeError, match="multiple values"):
        L.UnifiedFocalLoss(0.7, delta=0.6)
    with pytest.raises(TypeError, match="did you mean 'reduction'"):
        L.dice_loss(x, y, reductoin="sum")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keyword_is_a_type_error_everywhere(name):
    """As Python, kornia, MONAI and smp: TypeError (UnknownArgumentError, also a ValueError for old callers)."""
    x, y = _data()
    calls = [lambda: LOSSES[name](not_a_setting=1), lambda: LOSSES[name].functional(x, y, not_a_setting=1),
             lambda: get_loss(name, not_a_setting=1)]
    for call in calls:
        with pytest.raises(TypeError, match="not_a_setting") as info:
            call()
        assert isinstance(info.value, UnknownArgumentError) and isinstance(info.value, ValueError)


def test_monai_names_of_the_unified_focal_loss_point_to_the_monai_constructor():
    with pytest.raises(TypeError, match=r"unifocal\.losses\.monai\.AsymmetricUnifiedFocalLoss") as info:
        L.UnifiedFocalLoss(weight=0.5, num_classes=2)
    assert "rare_classes" not in str(info.value).split("Accepted")[0]  # no misleading 'did you mean'


def test_class_tree_says_is_a_not_code_reuse():
    assert not isinstance(L.SymmetricFocalLoss(), L.AsymmetricFocalLoss)
    assert not isinstance(L.TverskyLoss(), L.DiceLoss)
    assert not isinstance(L.SymmetricUnifiedFocalLoss(), L.UnifiedFocalLoss)
    assert all(cls.__bases__ == (L.Loss,) for cls in LOSSES.values())


def test_module_attributes_drive_the_module_and_repr_shows_them():
    x, y = _data(3)
    m = L.UnifiedFocalLoss(delta=0.7, reduction="sum")
    assert (m.delta, m.gamma, m.lambda_, m.reduction) == (0.7, 0.2, 0.5, "sum")
    assert "delta=0.7" in repr(m) and "reduction='sum'" in repr(m)
    m.gamma = 0.4  # a changed attribute is used (and checked) by the next call
    assert torch.equal(m(x, y), L.unified_focal_loss(x, y, delta=0.7, gamma=0.4, reduction="sum"))
    m.gamma = 1.5
    with pytest.raises(ValueError, match="gamma"):
        m(x, y)


def test_no_import_cycle_and_no_dead_switches():
    import unifocal.losses._core as core
    import unifocal.losses._fused as fused

    src = inspect.getsource(core)
    assert "_fused" not in src.replace("unifocal.losses._fused`", "")  # the docstring may name it
    assert "fused" not in inspect.signature(core.evaluate).parameters
    assert not hasattr(core, "_FUSED") and not hasattr(core, "fused_path") and not hasattr(fused, "_pooled")
    assert math.isclose(float(L.dice_loss(*_data())), float(L.DiceLoss()(*_data())))
