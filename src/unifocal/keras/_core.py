"""The shared core of the Keras losses, written with ``keras.ops`` only (JAX, TensorFlow, PyTorch).

It mirrors :mod:`unifocal.losses._core` term by term, so that both implementations agree to float64
precision:

* :func:`prepare` checks ``y_true`` / ``y_pred``, moves the class axis last and flattens to
  ``(B, N, K)`` (``K = max(C, 2)``: a one-channel sigmoid output becomes the two classes
  ``[1 - p, p]``), with a one-hot target ``(B, N, K)`` (integer labels are expanded in the graph,
  where XLA fuses the expansion into the sums), a validity mask for ``ignore_index`` and the number of
  valid positions per sample.
* a loss is described, for both frameworks, by :mod:`unifocal.spec` (:class:`~unifocal.spec.Terms`:
  ``coef · D + Σ_i scale_i · mean_c R_i(TP, FP, FN)``, one cross-entropy-type term ``D`` and
  Dice/Tversky-type terms of the per-class statistics); this module evaluates that description with
  ``keras.ops``: :func:`evaluate` returns the per-sample loss ``(B,)``, Keras's ``reduction`` reduces it.

Value checks (NaN, ranges, labels, channel layout) need concrete tensors: they run in eager execution
(the PyTorch backend, eager JAX/TensorFlow calls) and are skipped while a graph is traced
(``jax.jit``, ``tf.function``), where only the shape checks apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from unifocal.spec import (
    COMMON_DEFAULTS as SHARED_DEFAULTS,
)
from unifocal.spec import (
    POW_FLOOR,
    PROB_EPS,
    Classes,
    Terms,
    Tversky,
    check_shared,
    unknown_keywords,
)

DATA_FORMATS: tuple[str, ...] = ("channels_last", "channels_first")

#: The common keyword arguments of every Keras loss, with their defaults (``from_logits`` and
#: ``data_format`` replace the torch losses' ``input``; ``reduction`` is Keras's own).
#: The shared ones take their defaults from :data:`unifocal.spec.COMMON_DEFAULTS`.
SHARED: tuple[str, ...] = ("rare_classes", "background", "ignore_index", "batch", "smooth", "validate")
COMMON_DEFAULTS: dict[str, Any] = {
    "from_logits": False, "data_format": "channels_last", **{k: SHARED_DEFAULTS[k] for k in SHARED},
}
#: Names of the torch losses that Keras spells otherwise.
_KERAS_HINTS = {"input": "the Keras losses take from_logits=True/False instead of input=",
                "multilabel": "not ported to Keras yet", "include_background": "not ported to Keras yet"}

#: Tolerance of probabilities / one-hot targets summing to one over the class axis (and of the layout
#: check). Keras hands the loss float32 even for a float16 / bfloat16 model, so one tolerance that covers
#: low-precision softmax outputs (the torch losses use 1e-3, and 2e-2 for float16 / bfloat16 input).
_SUM_TOL = 2e-2


def check_common_keras(common: dict[str, Any], owner: str = "loss", params: Any = ()) -> dict[str, Any]:
    """Validate the common keyword arguments; returns them completed with defaults.

    The checks shared with the torch losses (``rare_classes``, ``background``, ``ignore_index``,
    ``batch``, ``smooth``) are :func:`unifocal.spec.check_shared` itself.

    Raises:
        UnknownArgumentError: an unknown keyword (a ``TypeError``; the message names it).
        ValueError: a bad value (the message names it).
    """
    unknown = set(common) - set(COMMON_DEFAULTS)
    if unknown:
        raise unknown_keywords(owner, unknown, (*params, *COMMON_DEFAULTS), _KERAS_HINTS)
    c = {**COMMON_DEFAULTS, **common}
    for key in ("from_logits", "validate"):
        if not isinstance(c[key], bool):
            raise ValueError(f"{key} must be True or False, got {c[key]!r}")
    if c["data_format"] not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {c['data_format']!r}")
    check_shared(c)
    if c["rare_classes"] is not None:
        c["rare_classes"] = list(c["rare_classes"])
    return c


# --- eager or traced --------------------------------------------------------------------------

def _in_symbolic_scope() -> bool:
    try:  # not part of Keras's public API; without it only the backend tests below apply
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope
    except ImportError:  # pragma: no cover
        return False
    return bool(in_symbolic_scope())


def is_concrete(x: Any) -> bool:
    """Whether ``x`` holds values now (eager execution), not a placeholder being traced into a graph."""
    if isinstance(x, np.ndarray):
        return True
    if _in_symbolic_scope():  # Keras building a model or a compiled loss on placeholder values
        return False
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly() and hasattr(x, "numpy")
    if backend == "torch":
        import torch

        return not torch.compiler.is_compiling() and getattr(x, "device", None) != torch.device("meta")
    return backend == "numpy"


def clip_closed(x: Any, lo: float, hi: float) -> Any:
    """``x`` clipped to ``[lo, hi]`` with gradient 1 on the closed interval, as ``torch.clamp`` and
    ``tf.clip_by_value`` (JAX's ``clip`` halves the gradient where ``x`` equals a bound)."""
    lo_t, hi_t = ops.cast(lo, x.dtype), ops.cast(hi, x.dtype)
    return ops.where(x < lo_t, lo_t, ops.where(x > hi_t, hi_t, x))


def _np(x: Any) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


# --- prepared inputs --------------------------------------------------------------------------

@dataclass
class Prepared:
    """Checked, flattened inputs of one loss evaluation (in the loss's dtype).

    ``x`` holds logits ``(B, N, K)`` (a single sigmoid channel already expanded to the two-class
    logits ``[0, z]``) or, with ``from_logits=False``, probabilities; ``g`` the one-hot / soft target
    ``(B, N, K)`` (zero at ignored positions); ``valid`` the ``(B, N)`` mask of counted positions or
    ``None``; ``n_valid`` ``(B,)`` the number of counted positions (at least 1).
    """

    x: Any
    g: Any
    valid: Any
    n_valid: Any
    num_classes: int
    common: dict
    _cache: dict = field(default_factory=dict)

    @property
    def from_logits(self) -> bool:
        return self.common["from_logits"]

    @property
    def logp(self) -> Any:
        if "logp" not in self._cache:
            if self.from_logits:
                self._cache["logp"] = ops.log_softmax(self.x, axis=-1)
            else:
                self._cache["logp"] = ops.log(clip_closed(self.x, PROB_EPS, 1.0 - PROB_EPS))
        return self._cache["logp"]

    @property
    def p(self) -> Any:
        if "p" not in self._cache:
            self._cache["p"] = ops.exp(self.logp) if self.from_logits else self.x
        return self._cache["p"]

    def const(self, values: Sequence[float]) -> Any:
        return ops.convert_to_tensor(np.asarray(values, dtype="float64"), dtype=self.x.dtype)

    @property
    def classes(self) -> Classes:
        """The class roles of this input (:class:`unifocal.spec.Classes`)."""
        return Classes(self.num_classes, self.common)


def _shape(x: Any) -> tuple:
    return tuple(None if d is None else int(d) for d in x.shape)


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _spatial_match(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _layout_hint(pred_shape: tuple, target_shape: tuple, data_format: str) -> str:
    """A hint when the target's spatial shape matches ``y_pred`` read in the other layout."""
    if data_format == "channels_last":
        other_spatial, other = pred_shape[2:], "channels_first"
    else:
        other_spatial, other = pred_shape[1:-1], "channels_last"
    t = target_shape[1:]
    cands = [t]
    if len(t) == len(other_spatial) + 1:  # labels with a channel axis, or a one-hot target
        cands += [t[1:], t[:-1]]
    if any(_spatial_match(c, other_spatial) for c in cands):
        return (f"; y_pred {_fmt(pred_shape)} looks {other} (its spatial axes match the target's when the "
                f"class axis is read {'first' if other == 'channels_first' else 'last'}): pass "
                f"data_format={other!r}")
    return ""


def prepare(y_true: Any, y_pred: Any, common: dict) -> Prepared:
    """Check and flatten ``y_true`` / ``y_pred`` (shapes: :mod:`unifocal.keras`)."""
    fmt = common["data_format"]
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    dtype = y_pred.dtype
    if "float" not in str(dtype):
        raise ValueError(f"y_pred must be a floating tensor of probabilities or logits, got dtype {dtype}")
    ps = _shape(y_pred)
    if not 3 <= len(ps) <= 5:
        raise ValueError(f"y_pred must have shape (B, *spatial, C) (channels_last) or (B, C, *spatial) "
                         f"(channels_first) with 1-3 spatial dims, got {_fmt(ps)}")
    if fmt == "channels_first":
        y_pred = ops.moveaxis(y_pred, 1, -1)
    shape = _shape(y_pred)
    spatial, c = shape[1:-1], shape[-1]
    if c is None or c < 1:
        raise ValueError(f"y_pred needs a known, positive number of classes on its class axis, got {_fmt(ps)}")
    k = max(c, 2)
    ts = _shape(y_true)
    eager = is_concrete(y_pred) and is_concrete(y_true)

    # --- target: labels (B, *spatial) / (B, *spatial, 1), or one-hot (B, *spatial, C) ----------------
    ii = common["ignore_index"]
    labels = soft = None
    if len(ts) == len(ps) - 1:
        if not (_spatial_match(ts[:1], ps[:1]) and _spatial_match(ts[1:], spatial)):
            raise ValueError(f"y_true shape {_fmt(ts)} does not match y_pred shape {_fmt(ps)} "
                             f"({fmt}): expected labels of shape {_fmt((ps[0], *spatial))}"
                             + _layout_hint(ps, ts, fmt))
        labels = y_true
    elif len(ts) == len(ps):
        if fmt == "channels_first":
            y_true = ops.moveaxis(y_true, 1, -1)
        tshape = _shape(y_true)
        if not (_spatial_match(tshape[:1], ps[:1]) and _spatial_match(tshape[1:-1], spatial)):
            raise ValueError(f"y_true shape {_fmt(ts)} does not match y_pred shape {_fmt(ps)} ({fmt})"
                             + _layout_hint(ps, ts, fmt))
        tc = tshape[-1]
        if tc == 1 and (c != 1 or ii is not None):
            labels = ops.squeeze(y_true, axis=-1)
        elif tc == c:
            soft = y_true
            if ii is not None:
                raise ValueError("ignore_index applies to integer label targets only, not one-hot / soft targets")
        else:
            raise ValueError(f"one-hot y_true has {tc} channels but y_pred has {c} classes "
                             f"(shapes {_fmt(ts)} and {_fmt(ps)}, {fmt})" + _layout_hint(ps, ts, fmt))
    else:
        raise ValueError(f"y_true must be labels (B, *spatial), (B, *spatial, 1) or one-hot (B, *spatial, C) "
                         f"for channels_last (class axis after B for channels_first); got {_fmt(ts)} for y_pred "
                         f"{_fmt(ps)}")

    x = y_pred
    if eager and common["validate"]:
        _check_values(x, labels, soft, c, k, common, ps, fmt)

    if common["from_logits"]:
        if c == 1:  # sigmoid(z) = softmax([0, z])[1]: the two-class logits
            x = ops.concatenate([ops.zeros_like(x), x], axis=-1)
    elif c == 1:
        x = ops.concatenate([1.0 - x, x], axis=-1)
    if None in spatial:  # unknown spatial size while tracing: keep the batch axis dynamic instead
        x = ops.reshape(x, (ops.shape(x)[0], -1, k))
    else:
        x = ops.reshape(x, (-1, math.prod(spatial), k))
    n = ops.shape(x)[1]

    valid = None
    if labels is not None:
        lab = ops.reshape(labels, ops.shape(x)[:2])
        if ii is not None:
            vmask = ops.not_equal(lab, ops.cast(ii, lab.dtype))
            valid = ops.cast(vmask, dtype)
            lab = ops.where(vmask, lab, ops.zeros_like(lab))
        g = ops.one_hot(ops.cast(lab, "int32"), k, dtype=dtype)
        if valid is not None:
            g = g * valid[..., None]
            n_valid = ops.maximum(ops.sum(valid, axis=1), ops.cast(1.0, dtype))
        else:
            n_valid = ops.ones_like(g[:, 0, 0]) * ops.cast(n, dtype)
    else:
        g = ops.cast(soft, dtype)
        if c == 1:
            g = ops.concatenate([1.0 - g, g], axis=-1)
        g = ops.reshape(g, ops.shape(x))
        n_valid = ops.ones_like(g[:, 0, 0]) * ops.cast(n, dtype)
    return Prepared(x, g, valid, n_valid, k, common)


def _scalars(*values: Any) -> list[float]:
    """Reductions computed where the tensors live, fetched to the host together (one transfer)."""
    return [float(v) for v in _np(ops.stack([ops.cast(v, "float32") for v in values]))]


def _sum_off(t: Any, axis: int) -> Any:
    """``max |Σ_axis t - 1|``: how far ``t`` is from summing to one over ``axis``."""
    return ops.max(ops.abs(ops.sum(t, axis=axis) - 1.0))


def _layout_off(t: Any, fmt: str) -> tuple[Any, Any]:
    """Distance from summing to one over the class axis, and over the other layout's class axis."""
    raw = ops.moveaxis(t, -1, 1) if fmt == "channels_first" else t  # as the caller gave it
    other_axis = 1 if fmt == "channels_last" else -1
    alt = _sum_off(raw, other_axis) if raw.shape[other_axis] >= 2 else ops.convert_to_tensor(np.inf)
    return _sum_off(t, -1), alt


def _layout_error(what: str, fmt: str, ps: tuple) -> ValueError:
    other = "channels_first" if fmt == "channels_last" else "channels_last"
    axis = 1 if fmt == "channels_last" else -1
    return ValueError(f"{what} {_fmt(ps)} sums to one over axis {axis}, not over the class axis of {fmt}: "
                      f"the inputs look {other}; pass data_format={other!r}")


def _check_values(x: Any, labels: Any, soft: Any, c: int, k: int, common: dict, ps: tuple, fmt: str) -> None:
    """Eager value checks: finiteness, ranges, label values, and a class axis read in the wrong layout.

    Only scalars leave the device (the reductions run where the tensors are).
    """
    xf = ops.cast(x, "float32")
    finite, lo, hi = _scalars(ops.all(ops.isfinite(xf)), ops.min(xf), ops.max(xf))
    if not finite:
        raise ValueError("y_pred contains NaN or Inf values")
    if not common["from_logits"]:
        if lo < 0 or hi > 1:
            raise ValueError(f"from_logits=False needs probabilities in [0, 1], got range [{lo}, {hi}]; "
                             "pass from_logits=True for raw network scores")
        if c >= 2:  # probabilities that sum to one along the other layout's class axis
            off, alt = _scalars(*_layout_off(xf, fmt))
            if off > _SUM_TOL and alt <= _SUM_TOL:
                raise _layout_error("y_pred (probabilities)", fmt, ps)
            if off > _SUM_TOL:
                raise ValueError(f"y_pred probabilities (from_logits=False) must sum to one over the class axis "
                                 f"of {fmt}; the largest deviation is {off:.3g}. Pass from_logits=True for logits")
    ii = common["ignore_index"]
    if labels is not None:
        lab = ops.cast(labels, "float64" if "64" in str(labels.dtype) else "float32")
        valid = ops.ones_like(lab, dtype="bool") if ii is None else ops.not_equal(lab, ops.cast(ii, lab.dtype))
        big = ops.cast(2 ** 24, lab.dtype)
        whole, lmin, lmax = _scalars(ops.all(ops.logical_and(ops.isfinite(lab), ops.equal(lab, ops.round(lab)))),
                                     ops.min(ops.where(valid, lab, big)), ops.max(ops.where(valid, lab, -big)))
        if not whole:
            raise ValueError("y_true of this shape is read as integer labels, but it has non-integer values "
                             "(one-hot targets need one channel per class)")
        if lmin < 2 ** 24 and (lmin < 0 or lmax >= k):
            bad = int(lmin) if lmin < 0 else int(lmax)
            raise ValueError(f"y_true label {bad} is outside [0, {k}) for {k} classes"
                             + ("" if ii is None else f" (ignore_index={ii})"))
        return
    g = ops.cast(soft, "float32")
    finite, glo, ghi, onehot = _scalars(ops.all(ops.isfinite(g)), ops.min(g), ops.max(g),
                                        ops.all(ops.equal(g, ops.round(g))))
    if not finite:
        raise ValueError("y_true contains NaN or Inf values")
    if glo < 0 or ghi > 1:
        raise ValueError(f"one-hot / soft y_true values must lie in [0, 1], got range [{glo}, {ghi}]")
    if c >= 2:
        off, alt = _scalars(*_layout_off(g, fmt))
        if onehot and off > _SUM_TOL and alt <= _SUM_TOL:  # one-hot (and so y_pred) in the other layout
            raise _layout_error("one-hot y_true", fmt, ps)
        if off > _SUM_TOL:
            raise ValueError(f"one-hot / soft y_true must sum to one over the class axis of {fmt}; the largest "
                             f"deviation is {off:.3g} (multi-hot targets are not supported by unifocal.keras)")


# --- TP / FP / FN ----------------------------------------------------------------------------------

def region_stats(prep: Prepared, clip: bool = False) -> tuple[Any, Any, Any]:
    """``(TP, FP, FN)`` per sample and class ``(B, K)`` (``(1, K)`` pooled when ``batch=True``).

    ``TP = Σ p·g``, ``FP = Σ p - TP``, ``FN = Σ g - TP`` over the valid positions. ``clip=True`` clips
    probabilities (``from_logits=False``) to ``[1e-7, 1 - 1e-7]`` first, as the authors' Focal Tversky
    family does; it changes nothing for logits.
    """
    p = prep.p
    if clip and not prep.from_logits:
        p = clip_closed(p, PROB_EPS, 1.0 - PROB_EPS)
    g = prep.g
    tp = ops.sum(p * g, axis=1)
    psum = ops.sum(p if prep.valid is None else p * prep.valid[..., None], axis=1)
    count = ops.sum(g, axis=1)
    fp, fn = psum - tp, count - tp
    if prep.common["batch"]:
        return (ops.sum(tp, axis=0, keepdims=True), ops.sum(fp, axis=0, keepdims=True),
                ops.sum(fn, axis=0, keepdims=True))
    return tp, fp, fn


def tversky_index(tp: Any, fp: Any, fn: Any, fp_weight: Any, fn_weight: Any, smooth: float) -> Any:
    """``TI = (TP + s) / (TP + w_FN·FN + w_FP·FP + s)``."""
    return (tp + smooth) / (tp + fn_weight * fn + fp_weight * fp + smooth)


def class_mean(x: Any) -> Any:
    """Mean over the last (class) axis, in ``x``'s dtype (Keras's JAX ``ops.mean`` rounds float64 to
    float32 precision)."""
    return ops.sum(x, axis=-1) / x.shape[-1]


def focal_tversky_term(ti: Any, exponent: Sequence[float]) -> Any:
    """``(1 - TI_c)^{e_c}`` per class, ``(B', K)``; ``1 - TI`` floored at 1e-12 (finite gradient at TI = 1)."""
    x = clip_closed(1.0 - ti, POW_FLOOR, math.inf)
    e = list(exponent)
    if all(v == 1.0 for v in e):
        return x
    et = ops.convert_to_tensor(np.asarray(e, dtype="float64"), dtype=ti.dtype)
    ones = ops.convert_to_tensor(np.asarray([v == 1.0 for v in e]))
    return ops.where(ones, x, ops.power(x, et))


def _per_class(v: float | Sequence[float], like: Any) -> Any:
    return float(v) if isinstance(v, int | float) else ops.convert_to_tensor(np.asarray(v, "float64"), like.dtype)


def tversky_value(term: Tversky, tp: Any, fp: Any, fn: Any) -> Any:
    """Per-class ``(1 - TI_c)^{e_c}`` (or ``TI_c``) of a :class:`~unifocal.spec.Tversky` term, ``(B', K)``."""
    ti = tversky_index(tp, fp, fn, _per_class(term.fp_weight, tp), _per_class(term.fn_weight, tp), term.smooth)
    return ti if term.exponent is None else focal_tversky_term(ti, term.exponent)


def _log1m_all(prep: Prepared) -> Any:
    """``log(1 - p_c)`` for every class, ``(B, N, K)``, computed stably."""
    if not prep.from_logits:
        return ops.log1p(-clip_closed(prep.p, PROB_EPS, 1.0 - PROB_EPS))
    logp, k = prep.logp, prep.num_classes
    if k == 2:
        return ops.flip(logp, axis=-1)
    return ops.stack([ops.logsumexp(ops.concatenate([logp[..., :c], logp[..., c + 1:]], axis=-1), axis=-1)
                      for c in range(k)], axis=-1)


def distribution_term(prep: Prepared, weight: list[float] | None, gamma: list[float] | None) -> Any:
    """Per-sample mean over valid positions of ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``, ``(B,)``.

    The modulation is ``exp(γ·log(1 - p))`` with ``log(1 - p)`` from a log-sum-exp of the other
    classes' log-probabilities: finite, with a finite gradient, even where ``p`` rounds to 1.
    """
    term = -(prep.g * prep.logp)
    if weight is not None:
        term = term * prep.const(weight)
    if gamma is not None and any(v != 0 for v in gamma):
        term = term * ops.exp(prep.const(gamma) * _log1m_all(prep))
    return ops.sum(term, axis=(1, 2)) / prep.n_valid


def evaluate(prep: Prepared, terms: Terms) -> Any:
    """Per-sample loss ``(B,)`` of the description ``terms`` (:class:`unifocal.spec.Terms`)."""
    out = ops.zeros_like(prep.n_valid)
    if terms.coef:
        out = out + terms.coef * distribution_term(prep, terms.weight, terms.gamma)
    for clip in (False, True):
        group = [r for r in terms.regions if r[2] == clip]
        if group:
            tp, fp, fn = region_stats(prep, clip=clip)
            for scale, term, _ in group:
                per_class = tversky_value(term, tp, fp, fn)
                if terms.classes is not None:
                    per_class = ops.take(per_class, np.asarray(terms.classes, "int32"), axis=-1)
                out = out + scale * class_mean(per_class)
    return out
