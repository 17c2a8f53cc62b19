"""The shared core of every loss: input checks, log-probabilities, TP/FP/FN, and the two term kinds.

Everything a loss needs is computed once here (as MONAI's ``losses/utils.py`` does):

* :func:`prepare` validates ``pred``/``target`` and returns log-probabilities and probabilities
  ``(B, K, N)`` in float32 (``K = max(C, 2)``; a single-channel sigmoid output becomes two classes),
  with integer labels ``(B, N)`` kept as labels (no one-hot tensor is built) or soft targets ``(B, K, N)``.
* every loss describes itself as :class:`Terms`: ``coef · D + Σ R_i(TP, FP, FN)``, where ``D`` is
  the one cross-entropy-type term, per position ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)`` averaged
  over the valid positions of each sample, and each ``R_i`` a Dice/Tversky-type term of the
  per-class statistics, e.g. ``mean_c (1 - TI_c)^{e_c}`` (:func:`focal_tversky_term`).
* :func:`evaluate` computes the terms: the fused closed-form path (:mod:`unifocal.losses._fused`)
  for logits with integer labels, plain autograd (:func:`region_stats`, :func:`distribution_term`)
  otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor

from unifocal.losses.constants import DEFAULT_SMOOTH, INPUT_KINDS, POW_FLOOR, PROB_EPS, REDUCTIONS


class CommonKwargs(TypedDict, total=False):
    """Keyword arguments every loss accepts (see :mod:`unifocal.losses.constants`)."""

    input: str
    rare_classes: Sequence[int] | None
    background: int
    ignore_index: int | None
    batch: bool
    reduction: str
    smooth: float


COMMON_DEFAULTS: dict[str, object] = {
    "input": "logits", "rare_classes": None, "background": 0, "ignore_index": None,
    "batch": False, "reduction": "mean", "smooth": DEFAULT_SMOOTH,
}


def check_common(common: dict) -> dict:
    """Validate the common keyword arguments; returns them completed with defaults."""
    unknown = set(common) - set(COMMON_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown keyword argument(s) {sorted(unknown)}; common ones are {sorted(COMMON_DEFAULTS)}")
    c = {**COMMON_DEFAULTS, **common}
    if c["input"] not in INPUT_KINDS:
        raise ValueError(f"input must be one of {INPUT_KINDS}, got {c['input']!r}")
    if c["reduction"] not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {c['reduction']!r}")
    if not isinstance(c["background"], int) or isinstance(c["background"], bool) or c["background"] < 0:
        raise ValueError(f"background must be a non-negative class index, got {c['background']!r}")
    if c["ignore_index"] is not None and (not isinstance(c["ignore_index"], int) or isinstance(c["ignore_index"], bool)):
        raise ValueError(f"ignore_index must be an int or None, got {c['ignore_index']!r}")
    s = c["smooth"]
    if not isinstance(s, int | float) or not math.isfinite(s) or s < 0:
        raise ValueError(f"smooth must be a finite number >= 0, got {s!r}")
    if not isinstance(c["batch"], bool):
        raise ValueError(f"batch must be True or False, got {c['batch']!r}")
    rc = c["rare_classes"]
    if rc is not None:
        if isinstance(rc, int) and not isinstance(rc, bool):
            rc = [rc]
        try:
            rc = [int(r) for r in rc]
        except (TypeError, ValueError):
            raise ValueError(f"rare_classes must be a sequence of class indices, got {c['rare_classes']!r}") from None
        if any(r < 0 for r in rc) or len(set(rc)) != len(rc):
            raise ValueError(f"rare_classes must be distinct non-negative class indices, got {c['rare_classes']!r}")
        if c["background"] in rc:
            raise ValueError(f"rare_classes {rc} must not contain the background class {c['background']}")
        c["rare_classes"] = tuple(rc)
    return c


def check_unit(name: str, value: float | Sequence[float]) -> None:
    """Raise unless ``value`` (a number or a sequence of numbers) lies in [0, 1]."""
    vals = [value] if isinstance(value, int | float) else list(value)
    for v in vals:
        if not isinstance(v, int | float) or isinstance(v, bool) or not (0.0 <= float(v) <= 1.0):
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def check_range(name: str, value: float, low: float, high: float = math.inf, *,
                low_open: bool = False, high_open: bool = True, hint: str = "") -> None:
    """Raise unless ``low <= value <= high`` (ends open as requested)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}{hint}, got {value!r}")


def check_weights(name: str, value: Sequence[float]) -> None:
    """Raise unless ``value`` is a sequence of finite non-negative numbers."""
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of non-negative numbers, got {value!r}") from None
    if not vals or any(not math.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"{name} must be a sequence of non-negative numbers, got {value!r}")


@dataclass
class Prepared:
    """Validated, flattened inputs of one loss evaluation (float32, or float64 for float64 input).

    ``x`` holds the logits ``(B, K, N)`` (a single sigmoid channel already expanded to the two-class
    logits ``[0, z]``) or, for ``input="probs"``, the probabilities. ``logp`` and ``p`` are computed
    on first use: the fused fast path (:mod:`unifocal.losses._fused`) never needs them.
    """

    x: Tensor               # (B, K, N) logits or probabilities
    labels: Tensor | None   # (B, N) int64 labels, ignored positions set to 0; None for soft targets
    soft: Tensor | None     # (B, K, N) soft / one-hot target; None for integer targets
    valid: Tensor | None    # (B, N) float mask, None when every position counts
    n_valid: Tensor         # (B,) number of valid positions (at least 1)
    kind: str               # "logits" or "probs"
    common: dict            # the validated common keyword arguments

    @property
    def num_classes(self) -> int:
        return self.x.shape[1]

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @functools.cached_property
    def logp(self) -> Tensor:
        if self.kind == "logits":
            return F.log_softmax(self.x, dim=1)
        return self.x.clamp(PROB_EPS, 1.0 - PROB_EPS).log()

    @functools.cached_property
    def p(self) -> Tensor:
        return self.logp.exp() if self.kind == "logits" else self.x

    def roles(self) -> tuple[int, tuple[int, ...]]:
        """``(background, rare_classes)`` checked against the number of classes."""
        k = self.num_classes
        bg = self.common["background"]
        if bg >= k:
            raise ValueError(f"background class {bg} is outside [0, {k}) for {k} classes")
        rare = self.common["rare_classes"]
        if rare is None:
            rare = tuple(c for c in range(k) if c != bg)
        elif any(r >= k for r in rare):
            raise ValueError(f"rare_classes {list(rare)} contain a class outside [0, {k}) for {k} classes")
        return bg, tuple(rare)

    def class_vector(self, name: str, value: float | Sequence[float]) -> Tensor:
        """A per-class tensor ``(K,)`` from a scalar or a length-K sequence."""
        k = self.num_classes
        if isinstance(value, int | float):
            return torch.full((k,), float(value), device=self.x.device, dtype=self.x.dtype)
        vals = [float(v) for v in value]
        if len(vals) != k:
            raise ValueError(f"{name} has {len(vals)} entries but the input has {k} classes")
        return torch.tensor(vals, device=self.x.device, dtype=self.x.dtype)

    def by_role(self, background: float, rare: float, other: float) -> Tensor:
        """A per-class tensor ``(K,)`` taking one value for the background, rare and other classes."""
        bg, rare_cls = self.roles()
        v = torch.full((self.num_classes,), float(other), device=self.x.device, dtype=self.x.dtype)
        if rare_cls:
            v[list(rare_cls)] = float(rare)
        v[bg] = float(background)
        return v


def _as_label_map(target: Tensor, what: str) -> Tensor:
    if target.dtype == torch.bool:
        return target.long()
    if target.is_floating_point():
        if not torch.equal(target, target.round()):
            raise ValueError(f"{what}: a floating target of this shape is read as labels, but it has non-integer values")
        return target.long()
    return target.long()


def prepare(pred: Tensor, target: Tensor, common: dict) -> Prepared:
    """Validate and flatten ``pred`` / ``target`` (see :mod:`unifocal.losses.constants` for shapes)."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValueError(f"pred and target must be torch tensors, got {type(pred).__name__} and {type(target).__name__}")
    if not pred.is_floating_point():
        raise ValueError(f"pred must be a floating tensor of logits or probabilities, got dtype {pred.dtype}")
    if not 3 <= pred.ndim <= 5:
        raise ValueError(f"pred must have shape (B, C, *spatial) with 1-3 spatial dims, got {tuple(pred.shape)}")
    kind = common["input"]
    b, c = pred.shape[:2]
    spatial = tuple(pred.shape[2:])
    if c < 1:
        raise ValueError(f"pred has no channels: shape {tuple(pred.shape)}")
    k = max(c, 2)
    # float64 stays float64 (gradcheck, re-derivations); every other dtype is computed in float32
    x = pred if pred.dtype == torch.float64 else pred.float()
    lo, hi = torch.aminmax(x.detach())  # one pass, no temporary: NaN and +-Inf show in min or max
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        raise ValueError("pred contains NaN or Inf values")

    # --- target -------------------------------------------------------------------------------
    labels = soft = None
    if target.ndim == pred.ndim - 1:
        if tuple(target.shape) != (b, *spatial):
            raise ValueError(f"target shape {tuple(target.shape)} does not match pred shape {tuple(pred.shape)}: "
                             f"expected labels of shape {(b, *spatial)}")
        labels = _as_label_map(target, "target")
    elif target.ndim == pred.ndim:
        if target.shape[0] != b or tuple(target.shape[2:]) != spatial:
            raise ValueError(f"target shape {tuple(target.shape)} does not match pred shape {tuple(pred.shape)}")
        tc = target.shape[1]
        if tc == 1 and not (c == 1 and target.is_floating_point()):
            labels = _as_label_map(target[:, 0], "target")
        elif tc == c:
            g = target.to(x.dtype)
            glo, ghi = torch.aminmax(g)
            if not (math.isfinite(float(glo)) and math.isfinite(float(ghi))):
                raise ValueError("target contains NaN or Inf values")
            if glo < 0 or ghi > 1:
                raise ValueError(f"one-hot / soft target values must lie in [0, 1], got range [{float(glo)}, {float(ghi)}]")
            soft = torch.cat([1.0 - g, g], dim=1) if c == 1 else g
            if common["ignore_index"] is not None:
                raise ValueError("ignore_index applies to integer label targets only, not one-hot / soft targets")
        else:
            raise ValueError(f"one-hot target has {tc} channels but pred has {c} classes")
    else:
        raise ValueError(f"target must have shape (B, *spatial), (B, 1, *spatial) or (B, C, *spatial); "
                         f"got {tuple(target.shape)} for pred {tuple(pred.shape)}")

    valid = None
    n = math.prod(spatial)
    n_valid = torch.full((b,), float(n), device=x.device, dtype=x.dtype)
    if labels is not None:
        labels = labels.reshape(b, n)
        ii = common["ignore_index"]
        if ii is not None:
            vmask = labels != ii
            if not bool(vmask.all()):
                valid = vmask.to(x.dtype)
                n_valid = valid.sum(1).clamp_min(1.0)
                labels = labels.masked_fill(~vmask, 0)
        if labels.numel():
            llo, lhi = torch.aminmax(labels)
            if llo < 0 or lhi >= k:
                bad = int(llo) if llo < 0 else int(lhi)
                raise ValueError(f"target label {bad} is outside [0, {k}) for {k} classes"
                                 + ("" if ii is None else f" (ignore_index={ii})"))
    else:
        soft = soft.reshape(b, k, n)

    if kind == "logits":
        if c == 1:  # sigmoid(z) = softmax([0, z])[1]: the two-class logits
            x = torch.cat([torch.zeros_like(x), x], dim=1)
    else:
        if lo < 0 or hi > 1:
            raise ValueError(f"input='probs' needs probabilities in [0, 1], got range [{float(lo)}, {float(hi)}]; "
                             "pass input='logits' for raw network scores")
        if c == 1:
            x = torch.cat([1.0 - x, x], dim=1)
    return Prepared(x.reshape(b, k, n), labels, soft, valid, n_valid, kind, common)


# --- TP / FP / FN ---------------------------------------------------------------------------------

def region_stats(prep: Prepared, clip: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, FP, FN)`` per sample and class, ``(B, K)``, or ``(1, K)`` pooled when ``batch=True``.

    ``TP = Σ p·g``, ``FN = Σ (1-p)·g = Σ g - TP``, ``FP = Σ p·(1-g) = Σ p - TP`` over valid positions.
    ``clip=True`` clips probabilities given with ``input="probs"`` to ``[1e-7, 1 - 1e-7]`` first, as the
    authors' Focal Tversky family does (their Dice and Tversky losses do not); it changes nothing for logits.
    """
    p, b, k = prep.p, prep.batch_size, prep.num_classes
    if clip and prep.kind == "probs":
        p = p.clamp(PROB_EPS, 1.0 - PROB_EPS)
    if prep.labels is not None:
        lab = prep.labels
        pt = p.gather(1, lab.unsqueeze(1)).squeeze(1)
        if prep.valid is not None:
            pt = pt * prep.valid
            psum = torch.einsum("bkn,bn->bk", p, prep.valid)
        else:
            psum = p.sum(-1)
        count = label_counts(prep)
        tp = torch.zeros(b, k, device=p.device, dtype=p.dtype).scatter_add(1, lab, pt)
    else:
        g = prep.soft
        tp = (p * g).sum(-1)
        count = g.sum(-1)
        psum = p.sum(-1)
    return pool(prep, tp, psum - tp, count - tp)


def label_counts(prep: Prepared) -> Tensor:
    """Number of valid positions of each class per sample, ``(B, K)``, without a one-hot tensor."""
    b, k, lab = prep.batch_size, prep.num_classes, prep.labels
    offs = (lab + torch.arange(b, device=lab.device).unsqueeze(1) * k).reshape(-1)
    w = None if prep.valid is None else prep.valid.reshape(-1)
    return torch.bincount(offs, weights=w, minlength=b * k).view(b, k).to(prep.x.dtype)


def pool(prep: Prepared, tp: Tensor, fp: Tensor, fn: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Sum the statistics over the batch when ``batch=True``."""
    if prep.common["batch"]:
        return tp.sum(0, keepdim=True), fp.sum(0, keepdim=True), fn.sum(0, keepdim=True)
    return tp, fp, fn


def tversky_index(tp: Tensor, fp: Tensor, fn: Tensor, fp_weight: Tensor | float, fn_weight: Tensor | float,
                  smooth: float) -> Tensor:
    """``TI = (TP + s) / (TP + w_FN·FN + w_FP·FP + s)`` (Eq. 18 with the spec's convention 1)."""
    return (tp + smooth) / (tp + fn_weight * fn + fp_weight * fp + smooth)


def focal_tversky_term(ti: Tensor, exponent: Tensor) -> Tensor:
    """``mean_c (1 - TI_c)^{e_c}``, ``(B',)``.

    ``1 - TI`` is floored at ``POW_FLOOR`` so that a perfect prediction has a finite gradient for
    exponents below one (the derivative of ``x**e`` at 0 is infinite for ``e < 1``).
    """
    x = (1.0 - ti).clamp_min(POW_FLOOR)
    return torch.where(exponent == 1.0, x, x.pow(exponent)).mean(-1)


# --- the description of a loss: one distribution term plus region terms ------------------------

RegionFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass
class Terms:
    """A loss as ``coef · D(weight, gamma) + Σ_i scale_i · R_i(TP, FP, FN)`` per sample.

    ``D`` is the mean over valid positions of ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)`` (every
    cross-entropy-type term of the paper); each ``R_i`` maps ``(TP, FP, FN)`` ``(B', K)`` to ``(B',)``
    (every Dice-type term). ``clip`` marks region terms that clip ``input="probs"`` (authors' parity).
    """

    coef: float = 0.0
    weight: Tensor | None = None
    gamma: Tensor | None = None
    regions: list[tuple[float, RegionFn, bool]] = field(default_factory=list)

    def __mul__(self, s: float) -> Terms:
        return Terms(self.coef * s, self.weight, self.gamma, [(a * s, f, c) for a, f, c in self.regions])

    __rmul__ = __mul__

    def __add__(self, other: Terms) -> Terms:
        if self.coef and other.coef:
            raise ValueError("internal: a loss may hold one distribution term only")
        d = self if self.coef else other
        return Terms(d.coef, d.weight, d.gamma, self.regions + other.regions)

    @property
    def modulated(self) -> bool:
        return self.coef != 0 and self.gamma is not None and bool((self.gamma != 0).any())

    def region_value(self, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor | None:
        out = None
        for scale, fn_, _ in self.regions:
            v = scale * fn_(tp, fp, fn)
            out = v if out is None else out + v
        return out


def distribution_terms(weight: Tensor | None, gamma: Tensor | None, coef: float = 1.0) -> Terms:
    return Terms(coef=coef, weight=weight, gamma=gamma)


def region_terms(fn: RegionFn, clip: bool = False, scale: float = 1.0) -> Terms:
    return Terms(regions=[(scale, fn, clip)])


# --- evaluation --------------------------------------------------------------------------------

_FUSED = [True]


@contextlib.contextmanager
def fused_path(enabled: bool) -> Iterator[None]:
    """Enable or disable the fused fast path inside a ``with`` block (tests compare the two paths)."""
    old = _FUSED[0]
    _FUSED[0] = enabled
    try:
        yield
    finally:
        _FUSED[0] = old


def evaluate(prep: Prepared, terms: Terms, fused: bool | None = None) -> Tensor:
    """Per-sample loss ``(B,)`` of ``terms``.

    Logits with integer labels take the fused path (:mod:`unifocal.losses._fused`: one softmax, the
    gradient in closed form); everything else, and ``fused=False``, the plain autograd path below.
    """
    fused = _FUSED[0] if fused is None else fused
    if fused and prep.kind == "logits" and prep.labels is not None:
        from unifocal.losses._fused import fused_loss

        return fused_loss(prep, terms)
    b = prep.batch_size
    out = torch.zeros(b, device=prep.x.device, dtype=prep.x.dtype)
    if terms.coef:
        out = out + terms.coef * distribution_term(prep, terms.weight, terms.gamma if terms.modulated else None)
    for clip in (False, True):
        group = [r for r in terms.regions if r[2] == clip]
        if group:
            r = Terms(regions=group).region_value(*region_stats(prep, clip=clip))
            out = out + r.expand(b)
    return out


# --- cross-entropy-type terms (autograd path) ---------------------------------------------------

def _log1m_target(prep: Prepared) -> Tensor:
    """``log(1 - p_t)`` at the target class of each position, ``(B, N)``, computed stably."""
    lab = prep.labels.unsqueeze(1)
    if prep.kind == "probs":
        return torch.log1p(-prep.p.gather(1, lab).squeeze(1).clamp(PROB_EPS, 1.0 - PROB_EPS))
    if prep.num_classes == 2:
        return prep.logp.gather(1, 1 - lab).squeeze(1)
    others = prep.logp.scatter(1, lab, float("-inf"))
    return torch.logsumexp(others, dim=1)


def _log1m_all(prep: Prepared) -> Tensor:
    """``log(1 - p_c)`` for every class, ``(B, K, N)``, computed stably."""
    if prep.kind == "probs":
        return torch.log1p(-prep.p.clamp(PROB_EPS, 1.0 - PROB_EPS))
    if prep.num_classes == 2:
        return prep.logp.flip(1)
    k = prep.num_classes
    return torch.stack([torch.logsumexp(torch.cat([prep.logp[:, :c], prep.logp[:, c + 1:]], 1), 1)
                        for c in range(k)], dim=1)


def distribution_term(prep: Prepared, weight: Tensor | None, gamma: Tensor | None) -> Tensor:
    """Per-sample mean over valid positions of ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``, ``(B,)``.

    ``weight=None`` means 1 for every class; ``gamma=None`` means no modulation. The modulation is
    ``exp(γ·log(1 - p))`` with ``log(1 - p)`` from the logits, finite for any finite logits and with a
    finite gradient even where ``p`` rounds to 1.
    """
    if prep.labels is not None:
        lab = prep.labels
        term = -prep.logp.gather(1, lab.unsqueeze(1)).squeeze(1)
        if weight is not None:
            term = term * torch.take(weight, lab)
        if gamma is not None:
            term = term * torch.exp(torch.take(gamma, lab) * _log1m_target(prep))
        if prep.valid is not None:
            term = term * prep.valid
        return term.sum(-1) / prep.n_valid
    term = -(prep.soft * prep.logp)
    if weight is not None:
        term = term * weight.view(1, -1, 1)
    if gamma is not None:
        term = term * torch.exp(gamma.view(1, -1, 1) * _log1m_all(prep))
    return term.sum((1, 2)) / prep.n_valid


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """Reduce a per-sample loss ``(B,)`` over the batch."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
