"""Backend-specific helpers of the Keras tests: gradients and tensors of the active backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

BACKEND = keras.backend.backend()


def value_and_grad(fn: Callable[[Any], Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn(x)`` (a scalar or any tensor, summed) and its gradient with respect to ``x``, as NumPy."""
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        xt = jnp.asarray(x)
        v, g = jax.value_and_grad(lambda t: jnp.sum(fn(t)))(xt)
        return np.asarray(v), np.asarray(g)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            v = tf.reduce_sum(fn(xt))
        return v.numpy(), tape.gradient(v, xt).numpy()
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        v = fn(xt).sum()
        v.backward()
        return v.detach().numpy(), xt.grad.numpy()
    raise NotImplementedError(BACKEND)


def tensor(x: np.ndarray, dtype: str | None = None) -> Any:
    return keras.ops.convert_to_tensor(x, dtype=dtype)
