"""Every loss of :mod:`unifocal.losses` for Keras 3: functional forms and ``keras.losses.Loss`` classes.

Same names, parameters, defaults and conventions as the torch losses (``docs/losses.md``); the Keras
differences are the calling convention only: ``loss(y_true, y_pred)``, channels-last by default
(``data_format="channels_first"`` available), ``from_logits=False`` by default (probabilities, as
Keras's own losses) and Keras's ``reduction``. A functional form returns the per-sample loss
``(B,)``, as Keras's functional losses do; a class reduces it as Keras defines ``reduction``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import keras

from unifocal.keras._core import COMMON_DEFAULTS, check_common_keras, evaluate, prepare
from unifocal.spec import LOSSES as SPECS
from unifocal.spec import LossSpec, describe, lookup, unknown_keywords

_REDUCTION = "sum_over_batch_size"

#: Type annotations of the Keras common keyword arguments (for the generated signatures).
_ANNOTATIONS: dict[str, Any] = {"from_logits": bool, "data_format": str, "rare_classes": "Sequence[int] | None",
                                "background": int, "ignore_index": "int | None", "batch": bool, "smooth": float,
                                "validate": bool}
_KW = inspect.Parameter.KEYWORD_ONLY
_POS = inspect.Parameter.POSITIONAL_OR_KEYWORD
COMMON_PARAMETERS: tuple[inspect.Parameter, ...] = tuple(
    inspect.Parameter(k, _KW, default=v, annotation=_ANNOTATIONS[k]) for k, v in COMMON_DEFAULTS.items())


def _own(spec: LossSpec) -> list[inspect.Parameter]:
    return [inspect.Parameter(p.name, _POS, default=p.default, annotation=p.annotation) for p in spec.params]


def _args_doc(spec: LossSpec) -> str:
    lines = [f"    {p.name}: {p.help} (default ``{p.default!r}``)." for p in spec.params]
    lines.append("    **common: ``from_logits``, ``data_format``, ``rare_classes``, ``background``, ``ignore_index``, "
                 "``batch``, ``smooth``, ``validate`` (:mod:`unifocal.keras`).")
    return "\n".join(lines)


def _functional(spec: LossSpec) -> Callable[..., Any]:
    """The functional form ``f(y_true, y_pred, <params>, **common)`` of a loss described in :mod:`unifocal.spec`.

    It checks its parameters and the common keyword arguments, prepares the inputs once and returns the
    per-sample loss ``(B,)``.
    """
    owner = spec.function_name

    def loss(y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
        params, rest = spec.bind(args, kwargs, owner)
        common = check_common_keras(rest, f"{owner}()", params)
        spec.check(**params)
        prep = prepare(y_true, y_pred, common)
        return evaluate(prep, describe(spec.terms, prep.classes, params))

    loss.__name__ = loss.__qualname__ = owner
    loss.__module__ = __name__
    loss.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("y_true", _POS), inspect.Parameter("y_pred", _POS), *_own(spec), *COMMON_PARAMETERS])
    loss.__doc__ = (f"{spec.summary}\n\nThe Keras form of :func:`unifocal.losses.{owner}` (same parameters, "
                    f"defaults and conventions, ``docs/losses.md``); returns the per-sample loss ``(B,)``.\n\n"
                    f"Args:\n    y_true: labels ``(B, *spatial)`` / ``(B, *spatial, 1)`` or one-hot "
                    f"``(B, *spatial, C)`` (channels last).\n    y_pred: probabilities (or logits with "
                    f"``from_logits=True``) ``(B, *spatial, C)``.\n{_args_doc(spec)}\n")
    loss.spec = spec  # type: ignore[attr-defined]
    loss.check = spec.check  # type: ignore[attr-defined]
    return loss


class Loss(keras.losses.Loss):
    """Base of every Keras loss: stores validated parameters, calls the functional form, serialises.

    ``call`` returns the per-sample loss ``(B,)``; Keras applies ``sample_weight`` and ``reduction``
    (default ``"sum_over_batch_size"``: the mean over the batch, as the torch losses' ``"mean"``).
    ``dtype`` is the computation dtype (default ``keras.config.floatx()``, float32): float16 / bfloat16
    predictions of a mixed-precision model are cast to it, so every sum accumulates in float32.
    """

    functional: ClassVar[Callable[..., Any]]
    spec: ClassVar[LossSpec]
    loss_name: ClassVar[str] = ""

    def __init__(self, *args: Any, reduction: str | None = _REDUCTION, name: str | None = None, dtype: Any = None,
                 **kwargs: Any) -> None:
        spec, owner = type(self).spec, type(self).__name__
        params, common = spec.bind(args, kwargs, owner)
        super().__init__(name=name or f"{spec.name}_loss", reduction=reduction, dtype=dtype)
        self.common = check_common_keras(common, f"{owner}()", params)
        spec.check(**params)
        self.params = {k: list(v) if isinstance(v, list | tuple) else v for k, v in params.items()}

    def __getattr__(self, key: str) -> Any:  # the settings as attributes, as the torch modules: loss.delta
        for store in ("params", "common"):
            values = self.__dict__.get(store)
            if values is not None and key in values:
                return values[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return type(self).functional(y_true, y_pred, **self.params, **self.common)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dtype": self._dtype_policy.name, **self.params, **self.common}

    def __repr__(self) -> str:
        items = {**self.params, **{k: v for k, v in self.common.items() if v != COMMON_DEFAULTS.get(k)}}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in items.items()) + ")"


_EXAMPLE = """
Example:
    >>> import numpy as np
    >>> from unifocal.keras import {cls}
    >>> rng = np.random.default_rng(0)
    >>> y_pred = rng.dirichlet(np.ones(3), size=(2, 16, 16)).astype("float32")  # (B, H, W, C) probabilities
    >>> y_true = rng.integers(0, 3, size=(2, 16, 16))                           # labels (B, H, W)
    >>> bool(np.isfinite(float({cls}()(y_true, y_pred))))
    True
"""


def _class(spec: LossSpec, functional: Callable[..., Any]) -> type[Loss]:
    """The ``keras.losses.Loss`` class of a loss described in :mod:`unifocal.spec`, registered for saving."""
    doc = (f"Keras form of :func:`{spec.function_name}`: {spec.summary}\n\nArgs:\n{_args_doc(spec)}\n"
           f"    reduction: Keras's (default ``{_REDUCTION!r}``: the mean over the batch).\n"
           f"    name: Keras's (default ``'{spec.name}_loss'``).\n"
           f"    dtype: the computation dtype (default float32).\n" + _EXAMPLE.format(cls=spec.class_name))
    cls = type(spec.class_name, (Loss,), {"__doc__": doc, "__module__": __name__, "spec": spec,
                                          "functional": staticmethod(functional), "loss_name": spec.name})
    init_params = [inspect.Parameter("self", _POS), *_own(spec),
                   inspect.Parameter("reduction", _POS, default=_REDUCTION, annotation="str | None"),
                   inspect.Parameter("name", _POS, default=None, annotation="str | None"),
                   inspect.Parameter("dtype", _POS, default=None), *COMMON_PARAMETERS]

    def __init__(self: Loss, *args: Any, **kwargs: Any) -> None:
        Loss.__init__(self, *args, **kwargs)

    __init__.__signature__ = inspect.Signature(init_params, return_annotation=None)  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{spec.class_name}.__init__"
    cls.__init__ = __init__  # type: ignore[method-assign]
    return keras.saving.register_keras_serializable(package="unifocal")(cls)


_FUNCTIONS = {name: _functional(spec) for name, spec in SPECS.items()}
LOSSES: dict[str, type[Loss]] = {name: _class(spec, _FUNCTIONS[name]) for name, spec in SPECS.items()}

cross_entropy_loss = _FUNCTIONS["cross_entropy"]
focal_loss = _FUNCTIONS["focal"]
dice_loss = _FUNCTIONS["dice"]
tversky_loss = _FUNCTIONS["tversky"]
focal_tversky_loss = _FUNCTIONS["focal_tversky"]
combo_loss = _FUNCTIONS["combo"]
hybrid_focal_loss = _FUNCTIONS["hybrid_focal"]
asymmetric_focal_loss = _FUNCTIONS["asymmetric_focal"]
asymmetric_focal_tversky_loss = _FUNCTIONS["asymmetric_focal_tversky"]
unified_focal_loss = _FUNCTIONS["unified_focal"]
symmetric_focal_loss = _FUNCTIONS["symmetric_focal"]
symmetric_focal_tversky_loss = _FUNCTIONS["symmetric_focal_tversky"]
symmetric_unified_focal_loss = _FUNCTIONS["symmetric_unified_focal"]

CrossEntropyLoss = LOSSES["cross_entropy"]
FocalLoss = LOSSES["focal"]
DiceLoss = LOSSES["dice"]
TverskyLoss = LOSSES["tversky"]
FocalTverskyLoss = LOSSES["focal_tversky"]
ComboLoss = LOSSES["combo"]
HybridFocalLoss = LOSSES["hybrid_focal"]
AsymmetricFocalLoss = LOSSES["asymmetric_focal"]
AsymmetricFocalTverskyLoss = LOSSES["asymmetric_focal_tversky"]
UnifiedFocalLoss = LOSSES["unified_focal"]
SymmetricFocalLoss = LOSSES["symmetric_focal"]
SymmetricFocalTverskyLoss = LOSSES["symmetric_focal_tversky"]
SymmetricUnifiedFocalLoss = LOSSES["symmetric_unified_focal"]


__all__ = ["Loss", "available_losses", "get_loss", *(s.class_name for s in SPECS.values()),
           *(s.function_name for s in SPECS.values())]
if not all(name in globals() for name in __all__[3:]):  # pragma: no cover - a loss described, not named here
    raise ImportError("internal: unifocal.keras.losses lacks a module name for a loss of unifocal.spec.LOSSES")


def available_losses() -> list[str]:
    """Names accepted by :func:`get_loss` (the same as :func:`unifocal.losses.available_losses`)."""
    return list(LOSSES)


def get_loss(name: str, /, **params: Any) -> Loss:
    """Build a Keras loss by name, e.g. ``get_loss("unified_focal", delta=0.7, from_logits=True)``.

    Name matching is that of :func:`unifocal.losses.get_loss`; ``params`` may include Keras's ``name``,
    ``reduction`` and ``dtype``.

    Raises:
        ValueError: unknown name (with close matches) or a bad value.
        TypeError: an unknown parameter (:class:`unifocal.spec.UnknownArgumentError`).
    """
    spec = lookup(name)
    allowed = {*spec.defaults, *COMMON_DEFAULTS, "reduction", "name", "dtype"}
    unknown = set(params) - allowed
    if unknown:
        raise unknown_keywords(f"loss {spec.name!r}", unknown, allowed, {"input": "use from_logits= in Keras"})
    return LOSSES[spec.name](**params)
