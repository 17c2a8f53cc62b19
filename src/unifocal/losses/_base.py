"""One contract for every loss: the function states it, the module is derived from the function.

A loss is written once, as a function whose ``def`` states its own parameters, their defaults and
the docstring, under the name of its framework-neutral description (:data:`unifocal.spec.LOSSES`)::

    @loss_function("unified_focal")
    def unified_focal_loss(pred, target, delta=0.6, gamma=0.2, lambda_=0.5, **common) -> Tensor:
        \"\"\"Docstring.\"\"\"

:func:`loss_function` checks, when the module is imported, that the ``def`` states exactly the
parameters and defaults of the description, and supplies the body: bind the arguments, run the
description's ``check`` on the loss's own parameters and :func:`unifocal.spec.check_common` on the
common keyword arguments, then evaluate the description's ``terms``. The function's signature
(``inspect.signature``, ``help()``) lists every keyword, the common ones included, with its default.
The module class is derived from the function (``class UnifiedFocalLoss(Loss,
functional=unified_focal_loss)``): its ``__init__`` takes the same arguments with the same defaults,
runs the same checks at construction, and keeps every setting as an attribute
(``UnifiedFocalLoss().delta``); ``forward`` calls the function. Function and module therefore accept
and refuse the same arguments; an unknown keyword is a ``TypeError``
(:class:`unifocal.spec.UnknownArgumentError`).

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

from unifocal.losses._core import Prepared, evaluate, prepare, reduce
from unifocal.losses._fused import fused_loss, kernel_serves
from unifocal.spec import (
    COMMON_ANNOTATIONS,
    COMMON_DEFAULTS,
    MONAI_KEYS,
    LossSpec,
    Terms,
    check_common,
    lookup,
)
from unifocal.spec import describe as describe_on

F = TypeVar("F", bound=Callable[..., Tensor])


def describe(prep: Prepared, terms: Callable[..., Terms], params: Mapping[str, Any]) -> Terms:
    """The loss's description on ``prep`` (background left out with ``include_background=False``,
    region terms of the region alone with MONAI's ``sigmoid=True``).

    Made once per (loss, settings, number of classes): the same :class:`Terms` object is returned for
    the same key, so that what the fused path derives from it is derived once too. Settings that cannot
    be a key (unhashable) are described anew every call.
    """
    try:
        key = (terms, prep.num_classes, prep.exclude_background, _frozen(prep.common), _frozen(params))
    except TypeError:
        return describe_on(terms, prep.classes, dict(params), exclude_background=prep.exclude_background)
    t = _DESCRIBED.get(key)
    if t is None:
        t = describe_on(terms, prep.classes, dict(params), exclude_background=prep.exclude_background)
        if len(_DESCRIBED) > 256:
            _DESCRIBED.clear()
        _DESCRIBED[key] = t
    return t


_DESCRIBED: dict[tuple, Terms] = {}


_PLAIN = (type(None), bool, int, float, str)


def _frozen(d: Mapping[str, Any]) -> tuple:
    """``d`` as a key of plain values only (numbers, strings, and lists / tuples of them): a tensor or
    an array hashes by identity, which a new object may reuse, so it is refused (``TypeError``)."""
    out = []
    for k, v in d.items():
        if isinstance(v, list | tuple):
            if not all(isinstance(e, _PLAIN) for e in v):
                raise TypeError(k)
            v = ("seq", *v)
        elif not isinstance(v, _PLAIN):
            raise TypeError(k)
        out.append((k, v))
    return tuple(out)


def compute(pred: Tensor, target: Tensor, terms: Callable[..., Terms], params: Mapping[str, Any],
            common: dict) -> Tensor:
    """Evaluate a loss described by ``terms(classes, **params)`` on validated ``common`` arguments.

    Inputs are prepared once (float32, autocast disabled so that every sum accumulates in float32
    under mixed precision); logits with integer labels take the fused path, except while
    ``torch.compile`` traces: the compiler fuses the plain formulation itself, and the fused path's
    backward (autograd on the per-class statistics) would split the graph.
    """
    if torch.is_autocast_enabled(pred.device.type):
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return _compute(pred, target, terms, params, common)
    return _compute(pred, target, terms, params, common)


def _compute(pred: Tensor, target: Tensor, terms: Callable[..., Terms], params: Mapping[str, Any],
             common: dict) -> Tensor:
    fused = not torch.compiler.is_compiling()
    prep = prepare(pred, target, common, defer_checks=fused and kernel_serves(pred))
    t = describe(prep, terms, params)
    if prep.kind == "logits" and prep.labels is not None and fused:
        return fused_loss(prep, t, common["reduction"])
    return reduce(prep.unfold(evaluate(prep, t)), common["reduction"])


#: The common keyword arguments as keyword-only parameters (MONAI's names default to ``None``: not given).
COMMON_PARAMETERS: tuple[inspect.Parameter, ...] = tuple(
    inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v, annotation=COMMON_ANNOTATIONS[k])
    for k, v in {**COMMON_DEFAULTS, **dict.fromkeys(MONAI_KEYS)}.items())


def _own_parameters(fn: Callable[..., Any], spec: LossSpec) -> list[inspect.Parameter]:
    """The parameters the ``def`` states after ``pred, target``, checked against the description."""
    ps = list(inspect.signature(fn).parameters.values())
    if [p.name for p in ps[:2]] != ["pred", "target"] or ps[-1].kind is not inspect.Parameter.VAR_KEYWORD:
        raise TypeError(f"internal: {fn.__name__} must read (pred, target, <params with defaults>, **common)")
    own = ps[2:-1]
    stated = {p.name: p.default for p in own}
    if stated != spec.defaults or fn.__name__ != spec.function_name:
        raise TypeError(f"internal: {fn.__name__}{tuple(stated.items())} disagrees with the description "
                        f"{spec.function_name}{tuple(spec.defaults.items())} in unifocal.spec.LOSSES")
    return own


def loss_function(name: str) -> Callable[[F], F]:
    """Give the loss function of the description ``name`` its body (see the module docstring)."""
    spec = lookup(name)

    def decorate(fn: F) -> F:
        own = _own_parameters(fn, spec)
        owner = fn.__name__

        @functools.wraps(fn)
        def wrapper(pred: Tensor, target: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            params, common = spec.bind(args, kwargs, owner)
            spec.check(**params)
            return compute(pred, target, spec.terms, params, check_common(common, f"{owner}()", params))

        sig = inspect.signature(fn)
        wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[*list(sig.parameters.values())[:2], *own, *COMMON_PARAMETERS])
        wrapper.spec = spec  # type: ignore[attr-defined]
        wrapper.check = spec.check  # type: ignore[attr-defined]
        wrapper.terms = spec.terms  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def parameters_of(fn: Callable[..., Tensor]) -> dict[str, Any]:
    """The loss's own parameters and their defaults, as the function's signature states them."""
    return fn.spec.defaults  # type: ignore[attr-defined]


_EXAMPLE = """

    Example:
        >>> import torch
        >>> from unifocal.losses import {cls}
        >>> loss = {cls}()
        >>> logits = torch.randn(2, 3, 16, 16, requires_grad=True)   # (B, C, H, W)
        >>> labels = torch.randint(0, 3, (2, 16, 16))                 # (B, H, W)
        >>> value = loss(logits, labels); value.backward()
        >>> value.shape, logits.grad.shape
        (torch.Size([]), torch.Size([2, 3, 16, 16]))
"""


class Loss(nn.Module):
    """Base of every loss module, derived from its function: ``class X(Loss, functional=x_loss)``.

    The derived ``__init__`` has the function's own parameters (same names, same defaults) plus the
    common keyword arguments, checks them at construction, and stores every setting as an attribute
    (the loss's parameters, then ``input``, ``multilabel``, ``rare_classes``, ``background``,
    ``ignore_index``, ``include_background``, ``batch``, ``reduction``, ``smooth``, ``validate``,
    ``complement``, ``to_onehot_y``; MONAI's ``softmax`` / ``sigmoid`` stored as the ``input`` /
    ``multilabel`` / ``complement`` they stand for). ``forward(pred, target)`` calls the function with those settings.
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
        spec: LossSpec = functional.spec  # type: ignore[attr-defined]
        cls.functional = staticmethod(functional)
        cls.name = name if name is not None else spec.name
        cls.parameter_names = tuple(spec.defaults)
        owner = cls.__name__

        def __init__(self: Loss, *args: Any, **kwargs: Any) -> None:
            nn.Module.__init__(self)
            params, common = spec.bind(args, kwargs, owner)
            spec.check(**params)
            common = check_common(common, f"{owner}()", params)
            for k, v in {**params, **common}.items():
                setattr(self, k, list(v) if isinstance(v, list | tuple) else v)

        sig = inspect.signature(functional)
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[self_param, *list(sig.parameters.values())[2:]], return_annotation=None)
        __init__.__doc__ = f"Build the loss; arguments as for :func:`{functional.__name__}`."
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[method-assign]
        # the class docstring states what the function's does (equation, defaults, arguments), and an example
        head = (cls.__doc__ or f"Module form of :func:`{functional.__name__}`.").strip()
        body = inspect.cleandoc(functional.__doc__ or "")
        example = "" if "Example:" in body else inspect.cleandoc(_EXAMPLE.format(cls=cls.__name__))
        cls.__doc__ = "\n\n".join(part for part in (head, spec.summary, body, example) if part)

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
