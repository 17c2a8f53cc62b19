"""Every loss of :mod:`unifocal.losses` for Keras 3: functional forms and ``keras.losses.Loss`` classes.

Same names, parameters, defaults and conventions as the torch losses (``docs/losses.md``); the Keras
differences are the calling convention only: ``loss(y_true, y_pred)``, channels-last by default
(``data_format="channels_first"`` available), ``from_logits=False`` by default (probabilities, as
Keras's own losses) and Keras's ``reduction``. A functional form returns the per-sample loss
``(B,)``, as Keras's functional losses do; a class reduces it as Keras defines ``reduction``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import keras

if TYPE_CHECKING:  # annotations are strings (PEP 563); typing.Unpack exists from Python 3.11 only
    from typing_extensions import Unpack

from unifocal.keras._core import (
    COMMON_DEFAULTS,
    Prepared,
    Terms,
    check_common_keras,
    class_mean,
    distribution_terms,
    evaluate,
    focal_tversky_term,
    prepare,
    region_terms,
    tversky_index,
)
from unifocal.losses.compound import check_combo, check_hybrid_focal, check_unified_focal
from unifocal.losses.distribution import check_cross_entropy, check_delta_gamma, check_focal
from unifocal.losses.region import check_delta_enhancement, check_dice, check_focal_tversky, check_tversky

Weights = float | Sequence[float] | None


class KerasCommonKwargs(TypedDict, total=False):
    """Keyword arguments every Keras loss accepts (see :mod:`unifocal.keras`)."""

    from_logits: bool
    data_format: str
    rare_classes: Sequence[int] | None
    background: int
    ignore_index: int | None
    batch: bool
    smooth: float
    validate: bool


def loss_function(check: Callable[..., None]) -> Callable[[Callable[..., Terms]], Callable[..., Any]]:
    """Turn ``core(prep, **params) -> Terms`` into a functional loss ``f(y_true, y_pred, **params)``.

    The functional loss validates its parameters with ``check`` (the torch loss's own check), prepares
    the inputs once and returns the per-sample loss ``(B,)``.
    """

    def decorate(core: Callable[..., Terms]) -> Callable[..., Any]:
        sig = inspect.signature(core)

        @functools.wraps(core)
        def wrapper(y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
            common = check_common_keras({k: kwargs.pop(k) for k in list(kwargs) if k in _COMMON_KEYS
                                         or k in ("input", "reduction")})
            try:
                bound = sig.bind(None, *args, **kwargs)
            except TypeError as e:
                raise ValueError(f"{core.__name__}: {e}") from None
            bound.apply_defaults()
            params = dict(list(bound.arguments.items())[1:])
            check(**params)
            prep = prepare(y_true, y_pred, common)
            return evaluate(prep, core(prep, **params))

        wrapper.__wrapped_core__ = core  # type: ignore[attr-defined]
        wrapper.check = check  # type: ignore[attr-defined]
        return wrapper

    return decorate


_COMMON_KEYS = frozenset(COMMON_DEFAULTS)


def _core(fn: Callable[..., Any]) -> Callable[..., Terms]:
    return fn.__wrapped_core__  # type: ignore[attr-defined]


# --- per-class vectors (as in unifocal.losses.distribution) --------------------------------------

def _focal_alpha(prep: Prepared, alpha: Weights) -> list[float] | None:
    if alpha is None:
        return None
    if isinstance(alpha, int | float):
        return prep.by_role(background=1.0 - alpha, rare=alpha, other=1.0 - alpha)
    return prep.class_vector("alpha", alpha)


def _delta_weights(prep: Prepared, delta: float | Sequence[float]) -> list[float]:
    d = prep.class_vector("delta", delta)
    w = [1.0 - v for v in d]
    for r in prep.roles()[1]:
        w[r] = d[r]
    return w


def _tversky_terms(prep: Prepared, fp_weight: Any, fn_weight: Any, exponent: list[float], clip: bool) -> Terms:
    s = prep.common["smooth"]

    def term(tp: Any, fp: Any, fn: Any) -> Any:
        return focal_tversky_term(tversky_index(tp, fp, fn, fp_weight, fn_weight, s), exponent)

    return region_terms(term, clip=clip)


def _delta_tversky_terms(prep: Prepared, delta: float | Sequence[float], exponent: list[float]) -> Terms:
    d = prep.class_vector("delta", delta)
    return _tversky_terms(prep, prep.const([1.0 - v for v in d]), prep.const(d), exponent, clip=True)


# --- functional forms ----------------------------------------------------------------------------

@loss_function(check_cross_entropy)
def cross_entropy_loss(prep: Prepared, weight: Sequence[float] | None = None) -> Terms:
    """Categorical cross entropy ``-Σ_c w_c g_c log p_c``, mean over (valid) positions, per sample.

    Example:
        >>> import numpy as np
        >>> y_pred = np.full((1, 4, 4, 2), 0.5, "float32"); y_true = np.zeros((1, 4, 4), "int32")
        >>> round(float(cross_entropy_loss(y_true, y_pred)[0]), 4)
        0.6931
    """
    return distribution_terms(None if weight is None else prep.class_vector("weight", weight), None)


@loss_function(check_focal)
def focal_loss(prep: Prepared, alpha: Weights = 0.25, gamma: float = 2.0) -> Terms:
    """Focal loss (Eq. 6/7): ``-Σ_c α_c (1 - p_c)^γ g_c log p_c``; scalar α weights rare classes, 1-α others."""
    return distribution_terms(_focal_alpha(prep, alpha), prep.class_vector("gamma", gamma))


@loss_function(check_delta_gamma)
def asymmetric_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2) -> Terms:
    """Asymmetric Focal loss (Eq. 17): background ``(1-δ)(1-p)^γ CE``, rare classes ``δ CE``."""
    return distribution_terms(_delta_weights(prep, delta), prep.by_role(background=gamma, rare=0.0, other=0.0))


@loss_function(check_delta_gamma)
def symmetric_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2) -> Terms:
    """Symmetric Focal loss (the authors' code): every class modulated by ``(1-p)^γ``."""
    return distribution_terms(_delta_weights(prep, delta), prep.class_vector("gamma", gamma))


@loss_function(check_dice)
def dice_loss(prep: Prepared) -> Terms:
    """Dice loss: ``mean_c (1 - DSC_c)``, background included."""
    return _tversky_terms(prep, 0.5, 0.5, [1.0] * prep.num_classes, clip=False)


@loss_function(check_tversky)
def tversky_loss(prep: Prepared, alpha: float = 0.3, beta: float = 0.7) -> Terms:
    """Tversky loss: ``mean_c (1 - TI_c)``, ``α`` on false positives, ``β`` on false negatives."""
    return _tversky_terms(prep, alpha, beta, [1.0] * prep.num_classes, clip=False)


@loss_function(check_focal_tversky)
def focal_tversky_loss(prep: Prepared, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4 / 3) -> Terms:
    """Focal Tversky loss (Eq. 12): ``mean_c (1 - TI_c)^{1/γ}``."""
    return _tversky_terms(prep, alpha, beta, [1.0 / gamma] * prep.num_classes, clip=True)


@loss_function(check_delta_enhancement)
def asymmetric_focal_tversky_loss(prep: Prepared, delta: float | Sequence[float] = 0.6,
                                  gamma: float = 0.2) -> Terms:
    """Asymmetric Focal Tversky loss (Eq. 19): background ``1 - TI``, rare classes ``(1 - TI)^{1-γ}``."""
    return _delta_tversky_terms(prep, delta, prep.by_role(background=1.0, rare=1.0 - gamma, other=1.0))


@loss_function(check_delta_enhancement)
def symmetric_focal_tversky_loss(prep: Prepared, delta: float | Sequence[float] = 0.6,
                                 gamma: float = 0.2) -> Terms:
    """Symmetric Focal Tversky loss (the authors' code): ``mean_c (1 - TI_c)^{1-γ}``."""
    return _delta_tversky_terms(prep, delta, prep.class_vector("exponent", 1.0 - gamma))


@loss_function(check_combo)
def combo_loss(prep: Prepared, alpha: float = 0.5, beta: float | None = 0.5) -> Terms:
    """Combo loss (Eq. 13/14): ``α·L_mCE - (1-α)·DSC`` (can be negative)."""
    w = None if beta is None else prep.by_role(background=1.0 - beta, rare=beta, other=1.0 - beta)
    s = prep.common["smooth"]

    def dsc(tp: Any, fp: Any, fn: Any) -> Any:
        return class_mean(tversky_index(tp, fp, fn, 0.5, 0.5, s))

    return distribution_terms(w, None, coef=alpha) + region_terms(dsc, scale=-(1.0 - alpha))


@loss_function(check_hybrid_focal)
def hybrid_focal_loss(prep: Prepared, lambda_: float = 0.5, focal_alpha: Weights = 0.25, focal_gamma: float = 2.0,
                      tversky_alpha: float = 0.3, tversky_beta: float = 0.7, tversky_gamma: float = 4 / 3) -> Terms:
    """Hybrid Focal loss (Eq. 15): ``λ·L_F + (1-λ)·L_FT``."""
    lf = _core(focal_loss)(prep, focal_alpha, focal_gamma)
    lft = _core(focal_tversky_loss)(prep, tversky_alpha, tversky_beta, tversky_gamma)
    return lambda_ * lf + (1.0 - lambda_) * lft


@loss_function(check_unified_focal)
def unified_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                       lambda_: float = 0.5) -> Terms:
    """Asymmetric Unified Focal loss (Eq. 20): ``λ·L_aF + (1-λ)·L_aFT``; λ weights the cross-entropy half.

    The authors' ``asym_unified_focal_loss(weight, delta, gamma)`` weights the Tversky half:
    their ``weight`` is ``1 - lambda_`` (``docs/keras.md`` has the whole migration table).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y_pred = rng.dirichlet(np.ones(3), size=(2, 16, 16)).astype("float32")  # (B, H, W, C)
        >>> y_true = rng.integers(0, 3, size=(2, 16, 16))
        >>> tuple(unified_focal_loss(y_true, y_pred).shape)
        (2,)
    """
    laf = _core(asymmetric_focal_loss)(prep, delta, gamma)
    laft = _core(asymmetric_focal_tversky_loss)(prep, delta, gamma)
    return lambda_ * laf + (1.0 - lambda_) * laft


@loss_function(check_unified_focal)
def symmetric_unified_focal_loss(prep: Prepared, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                                 lambda_: float = 0.5) -> Terms:
    """Symmetric Unified Focal loss (the authors' code): ``λ·L_sF + (1-λ)·L_sFT``."""
    lsf = _core(symmetric_focal_loss)(prep, delta, gamma)
    lsft = _core(symmetric_focal_tversky_loss)(prep, delta, gamma)
    return lambda_ * lsf + (1.0 - lambda_) * lsft


# --- keras.losses.Loss classes -------------------------------------------------------------------

class Loss(keras.losses.Loss):
    """Base of every Keras loss: stores validated parameters, calls the functional form, serialises.

    ``call`` returns the per-sample loss ``(B,)``; Keras applies ``sample_weight`` and ``reduction``
    (default ``"sum_over_batch_size"``: the mean over the batch, as the torch losses' ``"mean"``).
    ``dtype`` is the computation dtype (default ``keras.config.floatx()``, float32): float16 / bfloat16
    predictions of a mixed-precision model are cast to it, so every sum accumulates in float32.
    """

    functional: ClassVar[Callable[..., Any]]
    loss_name: ClassVar[str] = ""

    def __init__(self, params: dict[str, Any], common: dict[str, Any], reduction: str | None,
                 name: str | None, dtype: Any) -> None:
        super().__init__(name=name or f"{self.loss_name}_loss", reduction=reduction, dtype=dtype)
        self.common = check_common_keras(dict(common))
        self.params = dict(params)
        type(self).functional.check(**self.params)  # type: ignore[attr-defined]

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return type(self).functional(y_true, y_pred, **self.params, **self.common)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dtype": self._dtype_policy.name, **self.params, **self.common}

    def __repr__(self) -> str:
        items = {**self.params, **{k: v for k, v in self.common.items() if v != COMMON_DEFAULTS.get(k)}}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in items.items()) + ")"


_REDUCTION = "sum_over_batch_size"


def _register(cls: type[Loss]) -> type[Loss]:
    return keras.saving.register_keras_serializable(package="unifocal")(cls)


@_register
class CrossEntropyLoss(Loss):
    """Keras form of :func:`cross_entropy_loss`."""

    functional = staticmethod(cross_entropy_loss)
    loss_name = "cross_entropy"

    def __init__(self, weight: Sequence[float] | None = None, reduction: str | None = _REDUCTION,
                 name: str | None = None, dtype: Any = None, **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"weight": None if weight is None else list(weight)}, common, reduction, name, dtype)


@_register
class FocalLoss(Loss):
    """Keras form of :func:`focal_loss` (α=0.25, γ=2: the paper's settings)."""

    functional = staticmethod(focal_loss)
    loss_name = "focal"

    def __init__(self, alpha: Weights = 0.25, gamma: float = 2.0, reduction: str | None = _REDUCTION,
                 name: str | None = None, dtype: Any = None, **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"alpha": alpha if alpha is None or isinstance(alpha, int | float) else list(alpha),
                          "gamma": gamma}, common, reduction, name, dtype)


class _DeltaGamma(Loss):
    def __init__(self, delta: float | Sequence[float] = 0.6, gamma: float = 0.2, reduction: str | None = _REDUCTION,
                 name: str | None = None, dtype: Any = None, **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"delta": _seq(delta), "gamma": gamma}, common, reduction, name, dtype)


def _seq(v: Any) -> Any:
    return v if v is None or isinstance(v, int | float) else list(v)


@_register
class AsymmetricFocalLoss(_DeltaGamma):
    """Keras form of :func:`asymmetric_focal_loss` (Eq. 17; δ=0.6, γ=0.2)."""

    functional = staticmethod(asymmetric_focal_loss)
    loss_name = "asymmetric_focal"


@_register
class SymmetricFocalLoss(_DeltaGamma):
    """Keras form of :func:`symmetric_focal_loss`."""

    functional = staticmethod(symmetric_focal_loss)
    loss_name = "symmetric_focal"


@_register
class AsymmetricFocalTverskyLoss(_DeltaGamma):
    """Keras form of :func:`asymmetric_focal_tversky_loss` (Eq. 19; δ=0.6, γ=0.2)."""

    functional = staticmethod(asymmetric_focal_tversky_loss)
    loss_name = "asymmetric_focal_tversky"


@_register
class SymmetricFocalTverskyLoss(_DeltaGamma):
    """Keras form of :func:`symmetric_focal_tversky_loss`."""

    functional = staticmethod(symmetric_focal_tversky_loss)
    loss_name = "symmetric_focal_tversky"


@_register
class DiceLoss(Loss):
    """Keras form of :func:`dice_loss`."""

    functional = staticmethod(dice_loss)
    loss_name = "dice"

    def __init__(self, reduction: str | None = _REDUCTION, name: str | None = None, dtype: Any = None,
                 **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({}, common, reduction, name, dtype)


@_register
class TverskyLoss(Loss):
    """Keras form of :func:`tversky_loss` (α=0.3 on FP, β=0.7 on FN)."""

    functional = staticmethod(tversky_loss)
    loss_name = "tversky"

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, reduction: str | None = _REDUCTION,
                 name: str | None = None, dtype: Any = None, **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"alpha": alpha, "beta": beta}, common, reduction, name, dtype)


@_register
class FocalTverskyLoss(Loss):
    """Keras form of :func:`focal_tversky_loss` (α=0.3, β=0.7, γ=4/3)."""

    functional = staticmethod(focal_tversky_loss)
    loss_name = "focal_tversky"

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 4 / 3,
                 reduction: str | None = _REDUCTION, name: str | None = None, dtype: Any = None,
                 **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"alpha": alpha, "beta": beta, "gamma": gamma}, common, reduction, name, dtype)


@_register
class ComboLoss(Loss):
    """Keras form of :func:`combo_loss` (α = β = 0.5)."""

    functional = staticmethod(combo_loss)
    loss_name = "combo"

    def __init__(self, alpha: float = 0.5, beta: float | None = 0.5, reduction: str | None = _REDUCTION,
                 name: str | None = None, dtype: Any = None, **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"alpha": alpha, "beta": beta}, common, reduction, name, dtype)


@_register
class HybridFocalLoss(Loss):
    """Keras form of :func:`hybrid_focal_loss` (Eq. 15)."""

    functional = staticmethod(hybrid_focal_loss)
    loss_name = "hybrid_focal"

    def __init__(self, lambda_: float = 0.5, focal_alpha: Weights = 0.25, focal_gamma: float = 2.0,
                 tversky_alpha: float = 0.3, tversky_beta: float = 0.7, tversky_gamma: float = 4 / 3,
                 reduction: str | None = _REDUCTION, name: str | None = None, dtype: Any = None,
                 **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"lambda_": lambda_, "focal_alpha": _seq(focal_alpha), "focal_gamma": focal_gamma,
                          "tversky_alpha": tversky_alpha, "tversky_beta": tversky_beta,
                          "tversky_gamma": tversky_gamma}, common, reduction, name, dtype)


@_register
class UnifiedFocalLoss(Loss):
    """Keras form of :func:`unified_focal_loss` (Eq. 20; δ=0.6, γ=0.2, λ=0.5: the paper's optimum).

    Example:
        >>> import keras
        >>> from unifocal.keras import UnifiedFocalLoss
        >>> loss = UnifiedFocalLoss()                      # channels-last probabilities (softmax output)
        >>> model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(3, 3, padding="same",
        ...                           activation="softmax")])
        >>> model.compile(optimizer="adam", loss=loss)    # targets: integer labels (B, H, W)
    """

    functional = staticmethod(unified_focal_loss)
    loss_name = "unified_focal"

    def __init__(self, delta: float | Sequence[float] = 0.6, gamma: float = 0.2, lambda_: float = 0.5,
                 reduction: str | None = _REDUCTION, name: str | None = None, dtype: Any = None,
                 **common: Unpack[KerasCommonKwargs]) -> None:
        super().__init__({"delta": _seq(delta), "gamma": gamma, "lambda_": lambda_}, common, reduction, name, dtype)


@_register
class SymmetricUnifiedFocalLoss(UnifiedFocalLoss):
    """Keras form of :func:`symmetric_unified_focal_loss`."""

    functional = staticmethod(symmetric_unified_focal_loss)
    loss_name = "symmetric_unified_focal"


LOSSES: dict[str, type[Loss]] = {
    cls.loss_name: cls
    for cls in (CrossEntropyLoss, FocalLoss, DiceLoss, TverskyLoss, FocalTverskyLoss, ComboLoss, HybridFocalLoss,
                AsymmetricFocalLoss, AsymmetricFocalTverskyLoss, UnifiedFocalLoss, SymmetricFocalLoss,
                SymmetricFocalTverskyLoss, SymmetricUnifiedFocalLoss)
}


def available_losses() -> list[str]:
    """Names accepted by :func:`get_loss` (the same as :func:`unifocal.losses.available_losses`)."""
    return list(LOSSES)


def get_loss(name: str, /, **params: Any) -> Loss:
    """Build a Keras loss by name, e.g. ``get_loss("unified_focal", delta=0.7, from_logits=True)``.

    Name matching is that of :func:`unifocal.losses.get_loss`; ``params`` may include Keras's ``name``.

    Raises:
        ValueError: unknown name (with close matches) or a bad value.
    """
    from unifocal.losses.registry import _lookup

    return LOSSES[_lookup(name).name](**params)
