"""The thin ``nn.Module`` shell shared by every loss, and the functional entry-point wrapper."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Unpack

import torch
from torch import Tensor, nn

from unifocal.losses._core import COMMON_DEFAULTS as _DEFAULTS
from unifocal.losses._core import CommonKwargs, Prepared, Terms, check_common, evaluate, prepare, reduce


def loss_function(fn: Callable[..., Terms]) -> Callable[..., Tensor]:
    """Turn ``fn(prep, **params) -> Terms`` (the loss's description) into a public functional loss.

    The wrapper validates the common keyword arguments, prepares the inputs once (float32, autocast
    disabled so that every sum accumulates in float32 under mixed precision) and reduces over the batch.
    """

    @functools.wraps(fn)
    def wrapper(pred: Tensor, target: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        common = {k: kwargs.pop(k) for k in list(kwargs) if k in _COMMON_KEYS}
        common = check_common(common)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            prep = prepare(pred, target, common)
            per_sample = evaluate(prep, fn(prep, *args, **kwargs))
            return reduce(per_sample, common["reduction"])

    wrapper.__wrapped_core__ = fn  # type: ignore[attr-defined]
    return wrapper


_COMMON_KEYS = frozenset(_DEFAULTS)


class Loss(nn.Module):
    """Base of every loss module: stores validated parameters and calls the functional form.

    Subclasses set ``functional`` and pass their own parameters to ``__init__``; ``check`` validates
    them at construction so that a bad value fails before any training starts.
    """

    functional: ClassVar[Callable[..., Tensor]]
    name: ClassVar[str] = ""

    def __init__(self, params: dict[str, Any], common: dict[str, Any]) -> None:
        super().__init__()
        self.common = check_common(dict(common))
        self.params = dict(params)
        self.check(**self.params)

    @staticmethod
    def check(**params: Any) -> None:  # pragma: no cover - overridden
        """Validate this loss's own parameters (raises ``ValueError``)."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return type(self).functional(pred, target, **self.params, **self.common)

    def extra_repr(self) -> str:
        items = {**self.params, **{k: v for k, v in self.common.items() if v != _DEFAULTS.get(k)}}
        return ", ".join(f"{k}={v!r}" for k, v in items.items())


class DeltaGammaLoss(Loss):
    """Shell of the losses parameterised by ``(delta, gamma)`` alone (the Unified Focal components)."""

    def __init__(self, delta: float | Sequence[float] = 0.6, gamma: float = 0.2,
                 **common: Unpack[CommonKwargs]) -> None:
        super().__init__({"delta": delta, "gamma": gamma}, common)


def core_of(fn: Callable[..., Tensor]) -> Callable[..., Terms]:
    """The description ``(prep, **params) -> Terms`` behind a functional loss."""
    return fn.__wrapped_core__  # type: ignore[attr-defined]


__all__ = ["DeltaGammaLoss", "Loss", "Prepared", "Terms", "core_of", "loss_function"]
