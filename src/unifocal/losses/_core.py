"""The shared core of every loss: input checks, log-probabilities, TP/FP/FN, and the two term kinds.

Everything a loss needs is computed once here (as MONAI's ``losses/utils.py`` does):

* :func:`prepare` validates ``pred``/``target`` and returns log-probabilities and probabilities
  ``(B, K, N)`` in float32 (``K = max(C, 2)``; a single-channel sigmoid output becomes two classes),
  with integer labels ``(B, N)`` kept as labels (no one-hot tensor is built) or soft targets ``(B, K, N)``.
* every loss describes itself as :class:`Terms`: ``coef · D + Σ mean_c R_i(TP, FP, FN)``, where ``D``
  is the one cross-entropy-type term, per position ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``
  averaged over the valid positions of each sample, and each ``R_i`` a Dice/Tversky-type term of the
  per-class statistics, e.g. ``(1 - TI_c)^{e_c}`` (:func:`focal_tversky_term`).
* :func:`evaluate` computes the terms by plain autograd (:func:`region_stats`,
  :func:`distribution_term`); the fused closed-form path for logits with integer labels lives in
  :mod:`unifocal.losses._fused`, which builds on this module (never the other way round).

The conventions behind every formula are stated in ``docs/losses.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor

from unifocal.spec import (
    POW_FLOOR,
    PROB_EPS,
    SUM_TOL,
    SUM_TOL_LOW_PRECISION,
    Classes,
    Terms,
    Tversky,
)


class CommonKwargs(TypedDict, total=False):
    """Keyword arguments every loss accepts (see :mod:`unifocal.losses.constants`)."""

    input: str
    multilabel: bool
    rare_classes: Sequence[int] | int | None
    background: int
    ignore_index: int | None
    include_background: bool
    batch: bool
    reduction: str
    smooth: float
    validate: bool
    complement: bool
    softmax: bool
    sigmoid: bool
    to_onehot_y: bool


@dataclass
class Prepared:
    """Validated, flattened inputs of one loss evaluation (float32, or float64 for float64 input).

    ``x`` holds the logits ``(B', K, N)`` (a single sigmoid channel already expanded to the two-class
    logits ``[0, z]``) or, for ``input="probs"``, the probabilities. ``logp`` and ``p`` are computed
    on first use: the fused fast path (:mod:`unifocal.losses._fused`) never needs them.

    With ``multilabel=True`` every channel is its own binary problem: channel ``c`` of sample ``b`` is
    row ``b·channels + c`` of ``B' = B·channels`` rows with ``K = 2``; otherwise ``channels == 1``.
    """

    x: Tensor               # (B', K, N) logits or probabilities
    labels: Tensor | None   # (B', N) int64 labels, ignored positions set to 0; None for soft targets
    soft: Tensor | None     # (B', K, N) soft / one-hot target; None for integer targets
    valid: Tensor | None    # (B', N) float mask, None when every position counts
    n_valid: Tensor         # (B',) number of valid positions (at least 1)
    kind: str               # "logits" or "probs"
    common: dict            # the validated common keyword arguments
    channels: int = 1       # channels folded into the rows (multilabel mode), else 1
    exclude_background: bool = False  # leave the background class out of every class sum and mean
    deferred: Deferred | None = None  # value checks left to the CPU kernel's pass over the data

    @property
    def num_classes(self) -> int:
        return self.x.shape[1]

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]

    @property
    def multilabel(self) -> bool:
        return bool(self.common["multilabel"])

    _logp: Tensor | None = field(default=None, repr=False)

    # computed on first use, cached by hand (functools.cached_property takes a lock torch.compile cannot trace)
    @property
    def logp(self) -> Tensor:
        if self._logp is None:
            if self.kind == "logits":
                self._logp = F.log_softmax(self.x, dim=1)
            else:
                self._logp = self.x.clamp(PROB_EPS, 1.0 - PROB_EPS).log()
        return self._logp

    @property
    def p(self) -> Tensor:
        return self.logp.exp() if self.kind == "logits" else self.x

    @property
    def classes(self) -> Classes:
        """The class roles of this input (:class:`unifocal.spec.Classes`)."""
        return Classes(self.num_classes, self.common)

    def tensor(self, values: Sequence[float]) -> Tensor:
        """``values`` as a tensor on the input's device and dtype (:func:`constant`: made once)."""
        return constant(values, self.x)

    def unfold(self, per_row: Tensor) -> Tensor:
        """Per-row losses ``(B',)`` to per-sample losses ``(B,)``: the mean over channels (multilabel)."""
        if self.channels == 1:
            return per_row
        return per_row.view(-1, self.channels).mean(1)


# --- value checks: ValueError where reading a value is free, asynchronous assertions elsewhere -----

def _asynchronous(t: Tensor) -> bool:
    """Whether value checks on ``t`` assert asynchronously instead of reading the value.

    Reading a CPU tensor costs nothing, so on CPU the checks raise a ``ValueError`` at once. On CUDA,
    reading a value is a host synchronisation, and while ``torch.compile`` traces it would split the
    graph; there the check becomes ``torch._assert_async`` (``docs/losses.md``, "Input checks").
    Other devices (MPS, XPU, ...) read the value as on CPU.
    """
    return t.device.type == "cuda" or torch.compiler.is_compiling()


def _extrema(t: Tensor) -> tuple[Tensor, Tensor] | tuple[float, float]:
    """``(min, max)`` of ``t`` in one pass: Python numbers where reading them is free, else tensors."""
    lo, hi = torch.aminmax(t.detach())
    return (lo, hi) if _asynchronous(t) else (lo.item(), hi.item())


def _finite(lo: Tensor | float, hi: Tensor | float) -> Tensor | bool:
    """NaN and +-Inf show in the minimum or the maximum."""
    if isinstance(lo, Tensor):
        return torch.isfinite(lo) & torch.isfinite(hi)
    return math.isfinite(lo) and math.isfinite(hi)


def _require(ok: Tensor | bool, message: str, detail: Callable[[], str] | None = None) -> None:
    """Raise ``ValueError(message + detail())`` unless ``ok`` (a bool or a boolean tensor) is true.

    A tensor condition on CUDA, or while ``torch.compile`` traces, becomes ``torch._assert_async``
    (:func:`_asynchronous`): no host synchronisation and no graph break; a failure raises a
    ``RuntimeError`` (under ``torch.compile`` with this message; on CUDA as a device-side assertion
    at a later synchronisation, which leaves the CUDA context unusable).
    """
    if isinstance(ok, Tensor):
        if _asynchronous(ok):
            torch._assert_async(ok, message)
            return
        ok = bool(ok)
    if not ok:
        raise ValueError(message + (detail() if detail is not None else ""))


def _sum_tol(dtype: torch.dtype) -> float:
    return SUM_TOL if dtype in (torch.float32, torch.float64) else SUM_TOL_LOW_PRECISION


def _check_sums_to_one(v: Tensor, tol: float, what: str, hint: str) -> None:
    """Raise unless every position of ``v`` ``(B, C, ...)`` sums to one over ``C`` (within ``tol``)."""
    lo, hi = _extrema(v.sum(1))
    _require((lo >= 1.0 - tol) & (hi <= 1.0 + tol),
             f"{what} must sum to one over the {v.shape[1]} channels at every position; {hint}",
             lambda: f" (sums found in [{float(lo):.4g}, {float(hi):.4g}])")


_MULTILABEL_HINT = ("for multi-label (overlapping, multi-hot) targets or independent per-channel "
                    "probabilities pass multilabel=True (or MONAI's sigmoid=True); to leave positions out, "
                    "pass integer labels with ignore_index; validate=False skips this check")


def _as_label_map(target: Tensor, validate: bool) -> Tensor:
    if target.is_floating_point() and validate:
        _require(torch.eq(target, target.round()).all(),
                 "a floating target of this shape is read as labels, but it has non-integer values; pass "
                 "integer labels, or a one-hot / soft target with one channel per class")
    return target if target.dtype == torch.int64 else target.long()


@dataclass(frozen=True)
class Deferred:
    """Value checks of :func:`prepare` left to a later pass over the data (the CPU kernel's forward pass,
    which reads every logit and label anyway): finiteness of the logits, the label range ``[0, k)``."""

    k: int
    ignore_index: int | None

    def raise_if_bad(self, bad: float, lo: float, hi: float) -> None:
        """``bad``: ``Σ x·0`` (NaN if a logit is not finite); ``lo``/``hi``: the extreme labels."""
        _require(bad == 0.0, _NONFINITE_PRED)
        _check_label_range(lo, hi, self.k, self.ignore_index)

    def run(self, prep: Prepared) -> None:
        """The same checks by PyTorch reductions (when the kernel does not take the input after all)."""
        if prep.x.numel():
            _require(_finite(*_extrema(prep.x)), _NONFINITE_PRED)
        if prep.labels is not None and prep.labels.numel():
            _check_label_range(*_extrema(prep.labels), self.k, self.ignore_index)


_NONFINITE_PRED = "pred contains NaN or Inf values"


def _check_label_range(lo: Tensor | float, hi: Tensor | float, k: int, ignore_index: int | None) -> None:
    """Labels in ``[0, k)``, from their extrema (tensors: asynchronous where :func:`_require` says)."""
    ign = "" if ignore_index is None else f" (ignore_index={ignore_index})"
    _require((lo >= 0) & (hi < k), f"target labels must lie in [0, {k}) for {k} classes{ign}",
             lambda: f": target label {int(lo) if lo < 0 else int(hi)} is outside")


def prepare(pred: Tensor, target: Tensor, common: dict, defer_checks: bool = False) -> Prepared:
    """Validate and flatten ``pred`` / ``target`` (see :mod:`unifocal.losses.constants` for shapes).

    With ``defer_checks`` (the caller's CPU kernel will read the data anyway) the finiteness of logits
    and the range of integer labels are not checked here but recorded as :class:`Deferred`: the caller
    must run them (``Prepared.deferred``). Logits with a soft target are checked here as always.
    """
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValueError(f"pred and target must be torch tensors, got {type(pred).__name__} and {type(target).__name__}")
    if not pred.is_floating_point():
        raise ValueError(f"pred must be a floating tensor of logits or probabilities, got dtype {pred.dtype}")
    if not 3 <= pred.ndim <= 5:
        raise ValueError(f"pred must have shape (B, C, *spatial) with 1-3 spatial dims, got {tuple(pred.shape)}")
    if pred.shape[1] < 1:
        raise ValueError(f"pred has no channels: shape {tuple(pred.shape)}")
    # include_background=False: multi-label mode drops the first channel (MONAI's meaning), except for a
    # single channel, where (as in every other mode) the background class is left out of the sums
    exclude_background = not common["include_background"] and (not common["multilabel"] or pred.shape[1] == 1)
    if common["multilabel"]:
        pred, target, channels = _fold_channels(pred, target, common)
    else:
        channels = 1
    validate = common["validate"]
    kind = common["input"]
    b, c = pred.shape[:2]
    spatial = tuple(pred.shape[2:])
    k = max(c, 2)
    # float64 stays float64 (gradcheck, re-derivations); every other dtype is computed in float32
    x = pred if pred.dtype in (torch.float32, torch.float64) else pred.float()
    defer = validate and defer_checks and kind == "logits"
    if validate and x.numel() and not defer:
        lo, hi = _extrema(x)  # one pass, no temporary
        _require(_finite(lo, hi), _NONFINITE_PRED)
        if kind == "probs":
            _require((lo >= 0) & (hi <= 1), "input='probs' needs probabilities in [0, 1]; pass input='logits' "
                     "for raw network scores", lambda: f" (got range [{float(lo)}, {float(hi)}])")
            if c > 1:
                _check_sums_to_one(x, _sum_tol(pred.dtype), "input='probs' probabilities", _MULTILABEL_HINT)

    # --- target -------------------------------------------------------------------------------
    to_onehot_y = common["to_onehot_y"]
    labels = soft = None
    if target.ndim == pred.ndim - 1:
        if tuple(target.shape) != (b, *spatial):
            raise ValueError(f"target shape {tuple(target.shape)} does not match pred shape {tuple(pred.shape)}: "
                             f"expected labels of shape {(b, *spatial)}")
        if to_onehot_y is False and c > 1:
            raise ValueError(f"to_onehot_y=False expects a one-hot target of shape {(b, c, *spatial)}, got labels "
                             f"{tuple(target.shape)}; pass to_onehot_y=True")
        labels = _as_label_map(target, validate)
    elif target.ndim == pred.ndim:
        if target.shape[0] != b or tuple(target.shape[2:]) != spatial:
            raise ValueError(f"target shape {tuple(target.shape)} does not match pred shape {tuple(pred.shape)}")
        tc = target.shape[1]
        if tc == 1 and not (c == 1 and target.is_floating_point()):
            if to_onehot_y is False and c > 1:
                raise ValueError(f"to_onehot_y=False expects a one-hot target of shape {(b, c, *spatial)}, got "
                                 f"labels {tuple(target.shape)}; pass to_onehot_y=True")
            labels = _as_label_map(target[:, 0], validate)
        elif tc == c:
            if to_onehot_y and c > 1:
                raise ValueError(f"to_onehot_y=True expects labels of shape {(b, 1, *spatial)}, got a target with "
                                 f"{tc} channels; pass to_onehot_y=False for a one-hot target")
            g = target.to(x.dtype)
            if validate and g.numel():
                glo, ghi = _extrema(g)
                _require(_finite(glo, ghi), "target contains NaN or Inf values")
                _require((glo >= 0) & (ghi <= 1), "one-hot / soft target values must lie in [0, 1]",
                         lambda: f" (got range [{float(glo)}, {float(ghi)}])")
                if c > 1:
                    _check_sums_to_one(g, _sum_tol(target.dtype) if target.is_floating_point() else 0.0,
                                       "a one-hot / soft target", _MULTILABEL_HINT)
            soft = torch.cat([1.0 - g, g], dim=1) if c == 1 else g
            if common["ignore_index"] is not None:
                raise ValueError("ignore_index applies to integer label targets only, not one-hot / soft targets; "
                                 "pass a bool or integer target to use it")
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
            valid = vmask.to(x.dtype)
            n_valid = valid.sum(1).clamp_min(1.0)
            labels = labels.masked_fill(~vmask, 0)
        if validate and labels.numel() and not defer:
            _check_label_range(*_extrema(labels), k, ii)
    else:
        soft = soft.reshape(b, k, n)
        if defer and x.numel():  # a soft target: nothing to defer to
            _require(_finite(*_extrema(x)), _NONFINITE_PRED)
            defer = False

    if c == 1:  # sigmoid(z) = softmax([0, z])[1]: the two-class logits; probabilities [1 - p, p]
        x = torch.cat([torch.zeros_like(x), x], dim=1) if kind == "logits" else torch.cat([1.0 - x, x], dim=1)
    return Prepared(x.reshape(b, k, n), labels, soft, valid, n_valid, kind, common, channels, exclude_background,
                    Deferred(k, common["ignore_index"]) if defer else None)


def _fold_channels(pred: Tensor, target: Tensor, common: dict) -> tuple[Tensor, Tensor, int]:
    """Multilabel mode: ``(B, C, ...)`` to ``(B·C, 1, ...)`` binary problems (row ``b·C + c``)."""
    b, c = pred.shape[:2]
    spatial = tuple(pred.shape[2:])
    if c == 1 and target.ndim == pred.ndim - 1:
        target = target.unsqueeze(1)
    if tuple(target.shape) != tuple(pred.shape):
        raise ValueError(f"multilabel=True needs a multi-hot target of the shape of pred {tuple(pred.shape)} "
                         f"(one channel per region), got {tuple(target.shape)}")
    if common["to_onehot_y"]:
        raise ValueError("to_onehot_y=True does not apply to multi-label targets (already one channel per "
                         "region); leave it unset or False")
    if not common["include_background"] and c > 1:
        pred, target, c = pred[:, 1:], target[:, 1:], c - 1
    if target.dtype == torch.bool:
        target = target.to(torch.uint8)
    return pred.reshape(b * c, 1, *spatial), target.reshape(b * c, 1, *spatial), c


# --- TP / FP / FN ---------------------------------------------------------------------------------

def region_stats(prep: Prepared, clip: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, ΣP, Σg)`` per row and class, ``(B', K)``, over valid positions.

    ``FP = ΣP - TP`` and ``FN = Σg - TP`` (:func:`pooled_stats`). ``clip=True`` clips probabilities
    given with ``input="probs"`` to ``[1e-7, 1 - 1e-7]`` first, as the authors' Focal Tversky family
    does (their Dice and Tversky losses do not); it changes nothing for logits.
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
    return tp, psum, count


def label_counts(prep: Prepared) -> Tensor:
    """Number of valid positions of each class per row, ``(B', K)``, without a one-hot tensor.

    ``scatter_add`` rather than ``bincount``, whose output size depends on the data (a graph break
    under ``torch.compile``).
    """
    b, k, lab = prep.batch_size, prep.num_classes, prep.labels
    w = prep.valid if prep.valid is not None else torch.ones_like(lab, dtype=prep.x.dtype)
    return torch.zeros(b, k, device=lab.device, dtype=prep.x.dtype).scatter_add(1, lab, w)


def pooled_stats(tp: Tensor, psum: Tensor, count: Tensor, batch: bool, channels: int
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """``(TP, FP, FN)`` from ``(TP, ΣP, Σg)``, summed over the batch when ``batch=True``.

    Rows are ``b·channels + c``: pooling sums over ``b`` for each channel, giving ``(channels, K)``.
    """
    fp, fn = psum - tp, count - tp
    if batch:
        k = tp.shape[1]
        return tuple(t.view(-1, channels, k).sum(0) for t in (tp, fp, fn))  # type: ignore[return-value]
    return tp, fp, fn


def spread(region: Tensor, rows: int) -> Tensor:
    """A region value per row ``(B',)`` from per-row or pooled (per-channel) values."""
    return region if region.shape[0] == rows else region.repeat(rows // region.shape[0])


def constant(values: Sequence[float], like: Tensor) -> Tensor:
    """``values`` as a tensor on ``like``'s device and dtype, made once per (values, device, dtype).

    The per-class numbers of a loss are the same on every call; building them anew costs a host-to-
    device copy (and on CPU a few microseconds) per call. Under ``torch.compile`` they are built in
    the graph as before; outside inference mode, so that a constant first made during validation can
    be saved for backward later.
    """
    if torch.compiler.is_compiling():
        return torch.tensor(list(values), device=like.device, dtype=like.dtype)
    key = (tuple(float(v) for v in values), like.device, like.dtype)
    t = _CONSTANTS.get(key)
    if t is None:
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        with torch.inference_mode(False):
            t = _CONSTANTS[key] = torch.tensor(list(key[0]), device=like.device, dtype=like.dtype)
    return t


_CONSTANTS: dict[tuple, Tensor] = {}


def tversky_index(tp: Tensor, fp: Tensor, fn: Tensor, fp_weight: Tensor | float, fn_weight: Tensor | float,
                  smooth: float) -> Tensor:
    """``TI = (TP + s) / (TP + w_FN·FN + w_FP·FP + s)`` (Eq. 18 with δ on false negatives, ``docs/losses.md``)."""
    return (tp + smooth) / (tp + fn_weight * fn + fp_weight * fp + smooth)


def focal_tversky_term(ti: Tensor, exponent: Sequence[float]) -> Tensor:
    """``(1 - TI_c)^{e_c}`` per class, ``(B', K)``.

    ``1 - TI`` is floored at ``POW_FLOOR`` so that a perfect prediction has a finite gradient for
    exponents below one (the derivative of ``x**e`` at 0 is infinite for ``e < 1``). (``x**1`` is
    ``x`` exactly, so classes with exponent 1 need no separate branch.)
    """
    x = (1.0 - ti).clamp_min(POW_FLOOR)
    if all(e == 1.0 for e in exponent):
        return x
    if len(set(exponent)) == 1:
        return x.pow(exponent[0])
    return x.pow(constant(exponent, ti))


def _number_or_constant(v: float | Sequence[float], like: Tensor) -> Tensor | float:
    """A number as is; per-class numbers as a constant tensor, or one number when they are all equal."""
    if isinstance(v, float | int):
        return float(v)
    if len(set(v)) == 1:
        return float(v[0])
    return constant(v, like)


def tversky_weights(term: Tversky, like: Tensor) -> tuple[Tensor | float, Tensor | float]:
    """``(w_FP, w_FN)`` of a :class:`~unifocal.spec.Tversky` term: numbers, or constants ``(K,)`` by class."""
    return _number_or_constant(term.fp_weight, like), _number_or_constant(term.fn_weight, like)


def tversky_denominator_tp(term: Tversky, like: Tensor) -> Tensor | float:
    """``1 - w_FN - w_FP``, the coefficient of ``TP`` in the denominator (a number or a constant per class)."""
    return _number_or_constant(term.denominator_tp(), like)


def tversky_value(term: Tversky, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    """Per-class ``(1 - TI_c)^{e_c}`` (or ``TI_c``) of a :class:`~unifocal.spec.Tversky` term, ``(B', K)``."""
    wfp, wfn = tversky_weights(term, tp)
    ti = tversky_index(tp, fp, fn, wfp, wfn, term.smooth)
    return ti if term.exponent is None else focal_tversky_term(ti, term.exponent)


#: ``(TP, FP, FN)`` ``(B', K)`` to a per-class value ``(B', K)``; the class mean is taken by the caller.
RegionFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def region_value(terms: Terms, tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor | None:
    """``Σ_i scale_i · mean_c R_i`` per row of the region terms of ``terms`` (``None`` without any)."""
    out = None
    for scale, fn_, _ in terms.regions:
        per_class = tversky_value(fn_, tp, fp, fn) if isinstance(fn_, Tversky) else fn_(tp, fp, fn)
        if terms.classes is not None:
            per_class = per_class[:, terms.classes]
        v = scale * per_class.mean(-1)
        out = v if out is None else out + v
    return out


# --- evaluation (plain autograd) ------------------------------------------------------------------

def evaluate(prep: Prepared, terms: Terms) -> Tensor:
    """Per-row loss ``(B',)`` of ``terms`` by plain autograd (any input; the reference of the fused path)."""
    b = prep.batch_size
    out = torch.zeros(b, device=prep.x.device, dtype=prep.x.dtype)
    if terms.coef:
        weight = None if terms.weight is None else prep.tensor(terms.weight)
        gamma = prep.tensor(terms.gamma) if terms.modulated else None
        out = out + terms.coef * distribution_term(prep, weight, gamma)
    for clip in (False, True):
        group = [r for r in terms.regions if r[2] == clip]
        if group:
            stats = pooled_stats(*region_stats(prep, clip=clip), prep.common["batch"], prep.channels)
            r = region_value(Terms(regions=group, classes=terms.classes), *stats)
            out = out + spread(r, b)
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
    """Per-row mean over valid positions of ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``, ``(B',)``.

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
