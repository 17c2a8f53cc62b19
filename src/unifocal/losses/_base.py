"""One contract for every loss: the function states it, the module is derived from the function.

A loss is written once, as a function whose ``def`` states the public signature, the defaults and
the docstring::

    @loss_function(check=_check_unified, terms=_unified_terms)
    def unified_focal_loss(pred, target, delta=0.6, gamma=0.2, lambda_=0.5, **common) -> Tensor:
        \"\"\"Docstring.\"\"\"

:func:`loss_function` supplies the body: bind the arguments against that signature, run ``check``
on the loss's own parameters and :func:`~unifocal.losses._core.check_common` on the common keyword
arguments, then evaluate ``terms(prep, **params)``. The module class is derived from the function
(``class UnifiedFocalLoss(Loss, functional=unified_focal_loss)``): its ``__init__`` takes the same
parameters with the same defaults, runs the same checks at construction, and keeps every setting as
an attribute (``UnifiedFocalLoss().delta``); ``forward`` calls the function. Function and module
therefore accept and refuse the same arguments.

Evaluation dispatches here: logits with integer labels take the fused path
(:mod:`unifocal.losses._fused`), everything else (and everything under ``torch.compile``) the
autograd path (:func:`~unifocal.losses._core.evaluate`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from unifocal.losses._core import COMMON_DEFAULTS, Prepared, Terms, check_common, evaluate, prepare, reduce
from unifocal.losses._fused import fused_loss

F = TypeVar("F", bound=Callable[..., Tensor])


def describe(prep: Prepared, terms: Callable[..., Terms], params: Mapping[str, Any]) -> Terms:
    """The loss's description on ``prep``, with the background left out when ``include_background=False``."""
    t = terms(prep, **params)
    if prep.exclude_background:
        t = t.without_class(prep.roles()[0], prep.num_classes)
    return t


def compute(pred: Tensor, target: Tensor, terms: Callable[..., Terms], params: Mapping[str, Any],
            common: dict) -> Tensor:
    """Evaluate a loss described by ``terms(prep, **params)`` on validated ``common`` arguments.

    Inputs are prepared once (float32, autocast disabled so that every sum accumulates in float32
    under mixed precision); logits with integer labels take the fused path, except while
    ``torch.compile`` traces: the compiler fuses the plain formulation itself, and the fused path's
    backward (autograd on the per-class statistics) would split the graph.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        prep = prepare(pred, target, common)
        t = describe(prep, terms, params)
        if prep.kind == "logits" and prep.labels is not None and not torch.compiler.is_compiling():
            per_row = fused_loss(prep, t)
        else:
            per_row = evaluate(prep, t)
        return reduce(prep.unfold(per_row), common["reduction"])


class _Binder:
    """Binds ``(pred, target, *args, **kwargs)`` against a loss function's signature, fast and plainly.

    Written out rather than ``inspect.Signature.bind`` so that ``torch.compile`` traces it cheaply.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        sig = inspect.signature(fn)
        ps = list(sig.parameters.values())
        kinds = [p.kind for p in ps]
        if [p.name for p in ps[:2]] != ["pred", "target"] or kinds[-1] is not inspect.Parameter.VAR_KEYWORD \
                or any(k is not inspect.Parameter.POSITIONAL_OR_KEYWORD for k in kinds[2:-1]) \
                or any(p.default is inspect.Parameter.empty for p in ps[2:-1]):
            raise TypeError(f"internal: {fn.__name__} must read (pred, target, <params with defaults>, **common)")
        self.name = fn.__name__
        self.defaults: dict[str, Any] = {p.name: p.default for p in ps[2:-1]}
        self.names = tuple(self.defaults)

    def split(self, args: tuple, kwargs: dict) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(params, common)``: the loss's own parameters (defaults filled in) and the rest."""
        if len(args) > len(self.names):
            raise TypeError(f"{self.name}() takes at most {len(self.names)} parameters after pred and target "
                            f"({', '.join(self.names)}), got {len(args)} positional ones")
        params = dict(self.defaults)
        params.update(zip(self.names, args, strict=False))
        common = {}
        for k, v in kwargs.items():
            if k in self.defaults:
                if self.names.index(k) < len(args):
                    raise TypeError(f"{self.name}() got multiple values for argument {k!r}")
                params[k] = v
            else:
                common[k] = v
        return params, common


def loss_function(check: Callable[..., None], terms: Callable[..., Terms]) -> Callable[[F], F]:
    """Give a loss function its body (see the module docstring).

    Args:
        check: validates the loss's own parameters, called as ``check(**params)`` on every call
            (raises ``ValueError``).
        terms: ``terms(prep, **params) -> Terms``, the loss's description.
    """

    def decorate(fn: F) -> F:
        binder = _Binder(fn)

        @functools.wraps(fn)
        def wrapper(pred: Tensor, target: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            params, common = binder.split(args, kwargs)
            check(**params)
            return compute(pred, target, terms, params, check_common(common))

        wrapper.binder = binder  # type: ignore[attr-defined]
        wrapper.check = check  # type: ignore[attr-defined]
        wrapper.terms = terms  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def parameters_of(fn: Callable[..., Tensor]) -> dict[str, Any]:
    """The loss's own parameters and their defaults, as the function's signature states them."""
    return dict(fn.binder.defaults)  # type: ignore[attr-defined]


class Loss(nn.Module):
    """Base of every loss module, derived from its function: ``class X(Loss, functional=x_loss)``.

    The derived ``__init__`` has the function's own parameters (same names, same defaults) plus the
    common keyword arguments, checks them at construction, and stores every setting as an attribute
    (the loss's parameters, then ``input``, ``multilabel``, ``rare_classes``, ``background``,
    ``ignore_index``, ``include_background``, ``batch``, ``reduction``, ``smooth``, ``validate``,
    ``to_onehot_y``; MONAI's ``softmax`` / ``sigmoid`` stored as the ``input`` / ``multilabel``
    they stand for). ``forward(pred, target)`` calls the function with those settings.
    """

    functional: ClassVar[Callable[..., Tensor]]
    name: ClassVar[str] = ""
    parameter_names: ClassVar[tuple[str, ...]] = ()
    common_names: ClassVar[tuple[str, ...]] = (*COMMON_DEFAULTS, "to_onehot_y")

    def __init_subclass__(cls, functional: Callable[..., Tensor] | None = None, name: str | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if functional is None:
            return
        binder: _Binder = functional.binder  # type: ignore[attr-defined]
        cls.functional = staticmethod(functional)
        cls.name = name if name is not None else functional.__name__.removesuffix("_loss")
        cls.parameter_names = binder.names

        def __init__(self: Loss, *args: Any, **kwargs: Any) -> None:
            nn.Module.__init__(self)
            params, common = binder.split(args, kwargs)
            functional.check(**params)  # type: ignore[attr-defined]
            common = check_common(common)
            for k, v in {**params, **common}.items():
                setattr(self, k, list(v) if isinstance(v, list | tuple) else v)

        sig = inspect.signature(functional)
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[self_param, *list(sig.parameters.values())[2:]], return_annotation=None)
        __init__.__doc__ = f"Build the loss; arguments as for :func:`{functional.__name__}`."
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[method-assign]

    def settings(self) -> dict[str, Any]:
        """Every setting (the loss's parameters and the common keyword arguments) as keyword arguments."""
        return {k: getattr(self, k) for k in (*self.parameter_names, *self.common_names)}

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return type(self).functional(pred, target, **self.settings())

    def extra_repr(self) -> str:
        items = {k: getattr(self, k) for k in self.parameter_names}
        items.update({k: getattr(self, k) for k in self.common_names
                      if getattr(self, k) != COMMON_DEFAULTS.get(k)})
        return ", ".join(f"{k}={v!r}" for k, v in items.items())


__all__ = ["Loss", "compute", "loss_function", "parameters_of"]
