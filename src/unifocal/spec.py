"""The framework-neutral description of every loss: parameters, defaults, checks, class roles, terms.

This module imports neither torch nor Keras (nor NumPy): it is what :mod:`unifocal.losses` (PyTorch)
and :mod:`unifocal.keras` (Keras 3) share, written once.

* :data:`LOSSES` — the registry: for each loss its name, its own parameters with their defaults
  (:class:`Param`), the check of those parameters and the function that describes the loss as
  :class:`Terms`. The torch functions state the same parameters in their ``def`` (checked against
  this table when the module is imported); the Keras functions and classes take their signatures
  from it.
* :data:`COMMON` — the keyword arguments every torch loss accepts, with their defaults and MONAI's
  spellings; :func:`check_common` validates them (the Keras losses check the ones they share through
  it).
* :class:`Classes` — the class roles of one input (background, rare classes, per-class numbers).
* :class:`Terms` / :class:`Tversky` — a loss as ``coef · D + Σ_i scale_i · mean_c R_i``: one
  cross-entropy-type term ``D`` (per position ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)``, averaged
  over the valid positions of a sample) and Dice/Tversky-type terms of the per-class TP/FP/FN. Each
  framework evaluates the same description with its own operations.

The conventions behind every formula are stated in ``docs/losses.md``.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# --- constants --------------------------------------------------------------------------------

InputKind = Literal["logits", "probs"]
Reduction = Literal["mean", "sum", "none"]
INPUT_KINDS: tuple[str, ...] = ("logits", "probs")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

#: Keras' ``K.epsilon()``: the clipping bound of the probability path.
PROB_EPS: float = 1e-7
#: Default additive smoothing of Dice/Tversky ratios (the authors' ``smooth=1e-6``).
DEFAULT_SMOOTH: float = 1e-6
#: Floor under ``1 - TI`` before a power with exponent below one, so that a perfect prediction keeps a
#: finite gradient (the derivative of ``x**e`` at ``x = 0`` is infinite for ``e < 1``).
POW_FLOOR: float = 1e-12
#: Largest deviation from one accepted for class probabilities or one-hot / soft targets summed over
#: the channels (float32 / float64 inputs, then float16 / bfloat16 inputs).
SUM_TOL: float = 1e-3
SUM_TOL_LOW_PRECISION: float = 2e-2

#: The paper's seven compared losses (Tables 3-5), with the paper's settings as the registry defaults.
PAPER_LOSSES: tuple[str, ...] = (
    "focal", "dice", "tversky", "focal_tversky", "combo", "hybrid_focal", "unified_focal",
)

Weights = float | Sequence[float] | None
PerClass = float | Sequence[float]


class UnknownArgumentError(TypeError, ValueError):
    """An unknown keyword argument: a ``TypeError``, as Python, kornia, MONAI and smp raise.

    Also a ``ValueError``, so that code written against earlier versions (which raised ``ValueError``)
    keeps catching it.
    """


def _close(key: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- the common keyword arguments -------------------------------------------------------------

#: The common keyword arguments of every torch loss and their defaults (the one place they are written).
COMMON_DEFAULTS: dict[str, Any] = {
    "input": "logits", "multilabel": False, "rare_classes": None, "background": 0, "ignore_index": None,
    "include_background": True, "batch": False, "reduction": "mean", "smooth": DEFAULT_SMOOTH,
    "validate": True, "complement": True,
}
#: MONAI's names, accepted and translated (``docs/losses.md``, "MONAI dialect"); default ``None``: not given.
MONAI_KEYS: tuple[str, ...] = ("softmax", "sigmoid", "to_onehot_y")

#: Type annotations of the common keyword arguments (for the generated signatures).
COMMON_ANNOTATIONS: dict[str, Any] = {
    "input": InputKind, "multilabel": bool, "rare_classes": Sequence[int] | int | None, "background": int,
    "ignore_index": int | None, "include_background": bool, "batch": bool, "reduction": Reduction,
    "smooth": float, "validate": bool, "complement": bool,
    "softmax": bool | None, "sigmoid": bool | None, "to_onehot_y": bool | None,
}

#: Parameter names of MONAI's and the authors' losses that are not ours, with what to use instead.
FOREIGN_NAMES: dict[str, str] = {
    "weight": "MONAI's AsymmetricUnifiedFocalLoss(weight=...) is unifocal.losses.monai.AsymmetricUnifiedFocalLoss "
              "(its weight is not lambda_: docs/losses.md, 'Parameter mapping')",
    "num_classes": "the number of classes is read from pred; MONAI's AsymmetricUnifiedFocalLoss(num_classes=...) "
                   "is unifocal.losses.monai.AsymmetricUnifiedFocalLoss",
    "use_softmax": "MONAI's use_softmax is softmax=True here",
    "smooth_nr": "one smoothing for numerator and denominator: smooth=",
    "smooth_dr": "one smoothing for numerator and denominator: smooth=",
}


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def unknown_keywords(owner: str, unknown: Iterable[str], accepted: Iterable[str],
                     hints_by_name: dict[str, str] | None = None) -> UnknownArgumentError:
    """The error for keyword arguments a loss does not take, with a hint for each."""
    accepted = sorted(set(accepted))
    known = {**FOREIGN_NAMES, **(hints_by_name or {})}
    hints = []
    for k in sorted(unknown):
        hint = known.get(k)
        hints.append(f"{k!r} ({hint})" if hint else f"{k!r}{_close(k, accepted)}")
    return UnknownArgumentError(f"{owner} got unexpected keyword argument(s) {', '.join(hints)}. "
                                f"Accepted: {', '.join(accepted)}")


def check_common(common: dict, owner: str = "loss", params: Iterable[str] = ()) -> dict:
    """Validate the common keyword arguments; returns them completed with defaults, MONAI's names translated.

    The result holds the keys of :data:`COMMON_DEFAULTS` plus ``to_onehot_y`` (``None``: either kind of
    target). ``owner`` and ``params`` (the loss's own parameter names) word the error for an unknown keyword.

    Raises:
        UnknownArgumentError: an unknown keyword (a ``TypeError``).
        ValueError: a bad value (the message names it).
    """
    unknown = set(common) - set(COMMON_DEFAULTS) - set(MONAI_KEYS)
    if unknown:
        raise unknown_keywords(owner, unknown, (*params, *COMMON_DEFAULTS, *MONAI_KEYS))
    c = {**COMMON_DEFAULTS, **{k: v for k, v in common.items() if k not in MONAI_KEYS}}
    for key in ("multilabel", "include_background", "validate", "complement"):  # batch: check_shared
        if not _is_bool(c[key]):
            raise ValueError(f"{key} must be True or False, got {c[key]!r}")
    _translate_monai(common, c)
    if c["input"] not in INPUT_KINDS:
        raise ValueError(f"input must be one of {INPUT_KINDS}, got {c['input']!r}")
    if c["reduction"] not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {c['reduction']!r}")
    check_shared(c)
    if c["multilabel"] and (c["rare_classes"] is not None or c["background"] != 0):
        raise ValueError("rare_classes and background do not apply with multilabel=True: every channel is its "
                         "own binary problem (outside the region: background role; inside: rare role); "
                         "leave them at their defaults")
    return c


def check_shared(c: dict) -> None:
    """Check (and normalise in place) the settings every framework shares: ``rare_classes``,
    ``background``, ``ignore_index``, ``batch``, ``smooth``."""
    if not _is_bool(c["batch"]):
        raise ValueError(f"batch must be True or False, got {c['batch']!r}")
    if not isinstance(c["background"], int) or _is_bool(c["background"]) or c["background"] < 0:
        raise ValueError(f"background must be a non-negative class index, got {c['background']!r}")
    if c["ignore_index"] is not None and (not isinstance(c["ignore_index"], int) or _is_bool(c["ignore_index"])):
        raise ValueError(f"ignore_index must be an int or None, got {c['ignore_index']!r}")
    s = c["smooth"]
    if not isinstance(s, int | float) or _is_bool(s) or not math.isfinite(s) or s < 0:
        raise ValueError(f"smooth must be a finite number >= 0, got {s!r}")
    rc = c["rare_classes"]
    if rc is not None:
        if isinstance(rc, int) and not _is_bool(rc):
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


def _translate_monai(given: dict, c: dict) -> None:
    """MONAI's ``softmax`` / ``sigmoid`` / ``to_onehot_y`` onto ``input`` / ``multilabel`` / target kind.

    ``sigmoid=True`` is MONAI's meaning: one sigmoid per channel, and a region term (Dice, Tversky) of
    the region alone (``multilabel=True, complement=False``); ``multilabel=True`` alone keeps the
    authors' two-class convention (each channel's region term averaged with its complement's).
    """
    for key in MONAI_KEYS:
        if key in given and given[key] is not None and not _is_bool(given[key]):
            raise ValueError(f"{key} must be True or False, got {given[key]!r}")
    softmax, sigmoid = given.get("softmax"), given.get("sigmoid")
    c["to_onehot_y"] = given.get("to_onehot_y")
    if softmax is None and sigmoid is None:
        return
    if softmax and sigmoid:
        raise ValueError("softmax=True and sigmoid=True are exclusive (as in MONAI); pass one of them")
    kind, multilabel = ("probs", c["multilabel"]) if not (softmax or sigmoid) else ("logits", bool(sigmoid))
    if "input" in given and given["input"] != kind:
        raise ValueError(f"input={given['input']!r} contradicts softmax={softmax!r}, sigmoid={sigmoid!r} "
                         f"(MONAI's spelling of input={kind!r}); pass one spelling only")
    if "multilabel" in given and given["multilabel"] != multilabel:
        raise ValueError(f"multilabel={given['multilabel']!r} contradicts sigmoid={sigmoid!r} (sigmoid=True is "
                         "multilabel=True, softmax=True multilabel=False); pass one spelling only")
    c["input"], c["multilabel"] = kind, multilabel
    if sigmoid:
        if given.get("complement") is True:
            raise ValueError("complement=True contradicts sigmoid=True (MONAI's region-only Dice); pass "
                             "multilabel=True for the authors' two-class convention")
        c["complement"] = False


# --- value checks of the loss parameters -------------------------------------------------------

def check_unit(name: str, value: PerClass) -> None:
    """Raise unless ``value`` (a number or a sequence of numbers) lies in [0, 1]."""
    if isinstance(value, int | float):
        vals = [value]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        vals = list(value)
    else:
        raise ValueError(f"{name} must be a number in [0, 1] or a sequence of them, got {value!r}")
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
        if isinstance(value, str) or any(isinstance(v, bool) for v in value):
            raise TypeError
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of non-negative numbers, got {value!r}") from None
    if not vals or any(not math.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"{name} must be a sequence of non-negative numbers, got {value!r}")


def check_cross_entropy(weight: Sequence[float] | None) -> None:
    if weight is not None:
        check_weights("weight", weight)


def check_focal(alpha: Weights, gamma: float, prefix: str = "") -> None:
    """``prefix`` names the parameters as a compound loss spells them (``focal_alpha``)."""
    if isinstance(alpha, int | float) and not isinstance(alpha, bool):
        check_unit(f"{prefix}alpha", alpha)
    elif alpha is not None:
        check_weights(f"{prefix}alpha", alpha)
    check_range(f"{prefix}gamma", gamma, 0.0)


def check_delta_gamma(delta: PerClass, gamma: float) -> None:
    check_unit("delta", delta)
    check_range("gamma", gamma, 0.0)


def check_dice() -> None:
    """The Dice loss has no parameters of its own."""


def check_tversky(alpha: float, beta: float, prefix: str = "") -> None:
    """``prefix`` names the parameters as a compound loss spells them (``tversky_alpha``)."""
    check_range(f"{prefix}alpha", alpha, 0.0)
    check_range(f"{prefix}beta", beta, 0.0)
    if float(alpha) + float(beta) <= 0:
        raise ValueError(f"{prefix}alpha + {prefix}beta must be positive, got {prefix}alpha={alpha!r}, "
                         f"{prefix}beta={beta!r}")


def check_focal_tversky(alpha: float, beta: float, gamma: float, prefix: str = "") -> None:
    check_tversky(alpha, beta, prefix)
    check_range(f"{prefix}gamma", gamma, 0.0, low_open=True, hint=" (the exponent is 1/gamma)")


def check_delta_enhancement(delta: PerClass, gamma: float) -> None:
    check_unit("delta", delta)
    check_range("gamma", gamma, 0.0, 1.0, hint=" (the enhancement exponent 1-gamma must be positive)")


def check_combo(alpha: float, beta: float | None) -> None:
    check_range("alpha", alpha, 0.0, 1.0, high_open=False)
    if beta is not None:
        check_range("beta", beta, 0.0, 1.0, high_open=False)


def check_hybrid_focal(lambda_: float, focal_alpha: Weights, focal_gamma: float, tversky_alpha: float,
                       tversky_beta: float, tversky_gamma: float) -> None:
    check_range("lambda_", lambda_, 0.0, 1.0, high_open=False)
    check_focal(focal_alpha, focal_gamma, prefix="focal_")
    check_focal_tversky(tversky_alpha, tversky_beta, tversky_gamma, prefix="tversky_")


def check_unified_focal(delta: PerClass, gamma: float, lambda_: float) -> None:
    check_delta_gamma(delta, gamma)
    check_delta_enhancement(delta, gamma)
    check_range("lambda_", lambda_, 0.0, 1.0, high_open=False)


# --- class roles of one input -------------------------------------------------------------------

@dataclass(frozen=True)
class Classes:
    """The classes of one input: their number, the background and rare roles, per-class numbers.

    ``num_classes`` is ``K = max(C, 2)`` (a single sigmoid channel is the two classes ``[1 - p, p]``);
    with ``multilabel=True`` every channel is the same binary problem, ``K = 2``.
    """

    num_classes: int
    common: dict

    @property
    def multilabel(self) -> bool:
        return bool(self.common.get("multilabel", False))

    @property
    def smooth(self) -> float:
        return float(self.common["smooth"])

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

    def class_vector(self, name: str, value: PerClass) -> tuple[float, ...]:
        """Per-class numbers ``(K,)`` from a scalar or a length-K sequence."""
        k = self.num_classes
        if isinstance(value, int | float):
            return (float(value),) * k
        if self.multilabel:
            raise ValueError(f"{name}={list(value)!r}: per-class sequences do not apply with multilabel=True, "
                             "where every channel is the same binary problem; pass a scalar (or call the loss "
                             "on each channel)")
        vals = tuple(float(v) for v in value)
        if len(vals) != k:
            raise ValueError(f"{name} has {len(vals)} entries but the input has {k} classes")
        return vals

    def by_role(self, background: float, rare: float, other: float) -> tuple[float, ...]:
        """Per-class numbers ``(K,)`` taking one value for the background, rare and other classes."""
        bg, rare_cls = self.roles()
        return tuple(float(background) if c == bg else float(rare) if c in rare_cls else float(other)
                     for c in range(self.num_classes))


# --- the description of a loss -------------------------------------------------------------------

@dataclass(frozen=True)
class Tversky:
    """A Tversky-type region term per class: ``(1 - TI_c)^{e_c}``, or ``TI_c`` itself (``exponent=None``).

    ``TI = (TP + s) / (TP + w_FN·FN + w_FP·FP + s)`` (Eq. 18 with δ on false negatives, ``docs/losses.md``).
    Weights are a number or one per class; ``1 - TI`` is floored at :data:`POW_FLOOR` before the power.
    """

    fp_weight: float | tuple[float, ...]
    fn_weight: float | tuple[float, ...]
    exponent: tuple[float, ...] | None
    smooth: float

    def denominator_tp(self) -> float | tuple[float, ...]:
        """``1 - w_FN - w_FP``, the coefficient of ``TP`` in the denominator (a number or one per class)."""
        if isinstance(self.fp_weight, float | int) and isinstance(self.fn_weight, float | int):
            return 1.0 - float(self.fn_weight) - float(self.fp_weight)
        k = len(self.fp_weight) if not isinstance(self.fp_weight, float | int) else len(self.fn_weight)
        fp = self.fp_weight if not isinstance(self.fp_weight, float | int) else (self.fp_weight,) * k
        fn = self.fn_weight if not isinstance(self.fn_weight, float | int) else (self.fn_weight,) * k
        return tuple(1.0 - a - b for a, b in zip(fn, fp, strict=True))


#: A region term: a :class:`Tversky` description, or (torch only) any function
#: ``(TP, FP, FN) (B', K) -> (B', K)`` per class.
Region = Any


@dataclass
class Terms:
    """A loss as ``coef · D(weight, gamma) + Σ_i scale_i · mean_c R_i(TP, FP, FN)_c`` per row.

    ``D`` is the mean over valid positions of ``Σ_c w_c (1 - p_c)^{γ_c} (-g_c log p_c)`` (every
    cross-entropy-type term of the paper); each ``R_i`` gives per-class values from the per-class
    ``(TP, FP, FN)``, averaged over ``classes`` (``None``: all) (every Dice-type term). ``clip`` marks
    region terms that clip probabilities (authors' parity). ``weight`` and ``gamma`` are per-class
    numbers (``None``: 1, and no modulation).
    """

    coef: float = 0.0
    weight: tuple[float, ...] | None = None
    gamma: tuple[float, ...] | None = None
    regions: list[tuple[float, Region, bool]] = field(default_factory=list)
    classes: list[int] | None = None

    def __mul__(self, s: float) -> Terms:
        return Terms(self.coef * s, self.weight, self.gamma, [(a * s, f, c) for a, f, c in self.regions],
                     self.classes)

    __rmul__ = __mul__

    def __add__(self, other: Terms) -> Terms:
        if self.coef and other.coef:
            raise ValueError("internal: a loss may hold one distribution term only")
        d = self if self.coef else other
        return Terms(d.coef, d.weight, d.gamma, self.regions + other.regions, self.classes)

    @property
    def modulated(self) -> bool:
        return self.coef != 0 and self.gamma is not None and any(g != 0 for g in self.gamma)

    def without_class(self, c: int, num_classes: int) -> Terms:
        """The same loss with class ``c`` left out of ``D``'s class sum and of the region class means."""
        w = list(self.weight) if self.weight is not None else [1.0] * num_classes
        w[c] = 0.0
        keep = [j for j in range(num_classes) if j != c and (self.classes is None or j in self.classes)]
        return Terms(self.coef, tuple(w), self.gamma, list(self.regions), keep)

    def regions_of(self, keep: Sequence[int]) -> Terms:
        """The same loss with the region class means over ``keep`` only (``D`` unchanged)."""
        cls = [j for j in keep if self.classes is None or j in self.classes]
        return Terms(self.coef, self.weight, self.gamma, list(self.regions), cls)


def distribution_terms(weight: Sequence[float] | None, gamma: Sequence[float] | None,
                       coef: float = 1.0) -> Terms:
    return Terms(coef=coef, weight=None if weight is None else tuple(weight),
                 gamma=None if gamma is None else tuple(gamma))


def region_terms(fn: Region, clip: bool = False, scale: float = 1.0) -> Terms:
    return Terms(regions=[(scale, fn, clip)])


def describe(terms: Callable[..., Terms], classes: Classes, params: dict[str, Any], *,
             exclude_background: bool = False) -> Terms:
    """A loss's :class:`Terms` on ``classes``, with the settings that act on every loss applied.

    ``exclude_background`` (``include_background=False``) leaves the background class out; in
    multi-label mode with ``complement=False`` (MONAI's ``sigmoid=True``) the region terms keep the
    region alone (class 1 of each channel's two-class problem).
    """
    t = terms(classes, **params)
    if exclude_background:
        t = t.without_class(classes.roles()[0], classes.num_classes)
    if classes.multilabel and not classes.common.get("complement", True):
        t = t.regions_of([1])
    return t


# --- per-class numbers and the description of every loss ---------------------------------------

def focal_alpha(cls: Classes, alpha: Weights) -> tuple[float, ...] | None:
    """Class weights of the Focal loss: a scalar α weights the rare classes, 1-α the others (Lin et al.)."""
    if alpha is None:
        return None
    if isinstance(alpha, int | float):
        return cls.by_role(background=1.0 - alpha, rare=alpha, other=1.0 - alpha)
    return cls.class_vector("alpha", alpha)


def delta_weights(cls: Classes, delta: PerClass) -> tuple[float, ...]:
    """Class weights ``δ_r`` for rare classes and ``1 - δ_c`` for the background and other classes."""
    d = cls.class_vector("delta", delta)
    _, rare = cls.roles()
    return tuple(d[c] if c in rare else 1.0 - d[c] for c in range(len(d)))


def tversky_terms(cls: Classes, fp_weight: PerClass, fn_weight: PerClass, exponent: Sequence[float],
                  clip: bool) -> Terms:
    """The shared path: ``(1 - TI_c)^{e_c}`` with ``TI = (TP+s) / (TP + w_FN·FN + w_FP·FP + s)``."""
    wfp = float(fp_weight) if isinstance(fp_weight, float | int) else tuple(float(w) for w in fp_weight)
    wfn = float(fn_weight) if isinstance(fn_weight, float | int) else tuple(float(w) for w in fn_weight)
    return region_terms(Tversky(wfp, wfn, tuple(float(e) for e in exponent), cls.smooth), clip=clip)


def delta_tversky_terms(cls: Classes, delta: PerClass, exponent: Sequence[float]) -> Terms:
    """``TI_c`` with ``δ_c`` on false negatives and ``1 - δ_c`` on false positives (``docs/losses.md``, convention 1)."""
    d = cls.class_vector("delta", delta)
    return tversky_terms(cls, [1.0 - v for v in d], list(d), exponent, clip=True)


def cross_entropy_terms(cls: Classes, weight: Sequence[float] | None) -> Terms:
    return distribution_terms(None if weight is None else cls.class_vector("weight", weight), None)


def focal_terms(cls: Classes, alpha: Weights, gamma: float) -> Terms:
    return distribution_terms(focal_alpha(cls, alpha), cls.class_vector("gamma", gamma))


def asymmetric_focal_terms(cls: Classes, delta: PerClass, gamma: float) -> Terms:
    return distribution_terms(delta_weights(cls, delta), cls.by_role(background=gamma, rare=0.0, other=0.0))


def symmetric_focal_terms(cls: Classes, delta: PerClass, gamma: float) -> Terms:
    return distribution_terms(delta_weights(cls, delta), cls.class_vector("gamma", gamma))


def dice_terms(cls: Classes) -> Terms:
    return tversky_terms(cls, 0.5, 0.5, cls.class_vector("exponent", 1.0), clip=False)


def tversky_loss_terms(cls: Classes, alpha: float, beta: float) -> Terms:
    return tversky_terms(cls, float(alpha), float(beta), cls.class_vector("exponent", 1.0), clip=False)


def focal_tversky_terms(cls: Classes, alpha: float, beta: float, gamma: float) -> Terms:
    return tversky_terms(cls, float(alpha), float(beta), cls.class_vector("exponent", 1.0 / gamma), clip=True)


def asymmetric_focal_tversky_terms(cls: Classes, delta: PerClass, gamma: float) -> Terms:
    return delta_tversky_terms(cls, delta, cls.by_role(background=1.0, rare=1.0 - gamma, other=1.0))


def symmetric_focal_tversky_terms(cls: Classes, delta: PerClass, gamma: float) -> Terms:
    return delta_tversky_terms(cls, delta, cls.class_vector("exponent", 1.0 - gamma))


def combo_terms(cls: Classes, alpha: float, beta: float | None) -> Terms:
    w = None if beta is None else cls.by_role(background=1.0 - beta, rare=beta, other=1.0 - beta)
    dsc = Tversky(0.5, 0.5, None, cls.smooth)  # the Dice coefficient itself
    return distribution_terms(w, None, coef=alpha) + region_terms(dsc, scale=-(1.0 - alpha))


def hybrid_focal_terms(cls: Classes, lambda_: float, focal_alpha: Weights, focal_gamma: float,
                       tversky_alpha: float, tversky_beta: float, tversky_gamma: float) -> Terms:
    lf = focal_terms(cls, focal_alpha, focal_gamma)
    lft = focal_tversky_terms(cls, tversky_alpha, tversky_beta, tversky_gamma)
    return lambda_ * lf + (1.0 - lambda_) * lft


def unified_focal_terms(cls: Classes, delta: PerClass, gamma: float, lambda_: float) -> Terms:
    return lambda_ * asymmetric_focal_terms(cls, delta, gamma) \
        + (1.0 - lambda_) * asymmetric_focal_tversky_terms(cls, delta, gamma)


def symmetric_unified_focal_terms(cls: Classes, delta: PerClass, gamma: float, lambda_: float) -> Terms:
    return lambda_ * symmetric_focal_terms(cls, delta, gamma) \
        + (1.0 - lambda_) * symmetric_focal_tversky_terms(cls, delta, gamma)


# --- the registry -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One parameter of a loss: its name, default, type annotation and a line of help."""

    name: str
    default: Any
    annotation: Any
    help: str


@dataclass(frozen=True)
class LossSpec:
    """Everything about one loss that does not depend on the framework."""

    name: str
    class_name: str
    summary: str
    params: tuple[Param, ...]
    check: Callable[..., None]
    terms: Callable[..., Terms]

    @property
    def function_name(self) -> str:
        return f"{self.name}_loss"

    @property
    def defaults(self) -> dict[str, Any]:
        """The parameters and their defaults (a new dict: the caller may change it)."""
        return dict(self._defaults)

    @functools.cached_property
    def _defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    @functools.cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def bind(self, args: tuple, kwargs: dict, owner: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(params, rest)``: the loss's own parameters (positional or keyword, defaults filled in) and
        the other keyword arguments, unchecked. Raises ``TypeError`` as Python does for a bad call."""
        names = self._names
        if not args and not kwargs:
            return dict(self._defaults), {}
        owner = owner or self.function_name
        if len(args) > len(names):
            raise TypeError(f"{owner}() takes at most {len(names)} parameters of its own ({', '.join(names)}), "
                            f"got {len(args)} positional ones")
        params = dict(self._defaults)
        params.update(zip(names, args, strict=False))
        rest = {}
        for k, v in kwargs.items():
            if k in params:
                if names.index(k) < len(args):
                    raise TypeError(f"{owner}() got multiple values for argument {k!r}")
                params[k] = v
            else:
                rest[k] = v
        return params, rest


_PER_CLASS = " (a number, or one per class)"
_DELTA = Param("delta", 0.6, PerClass, "weight of false negatives (and of rare-class cross entropy) in [0, 1]"
               + _PER_CLASS)

LOSSES: dict[str, LossSpec] = {s.name: s for s in (
    LossSpec("cross_entropy", "CrossEntropyLoss", "Categorical cross entropy -Σ_c w_c g_c log p_c.",
             (Param("weight", None, Sequence[float] | None, "optional per-class weights"),),
             check_cross_entropy, cross_entropy_terms),
    LossSpec("focal", "FocalLoss", "Focal loss (Eq. 6/7): -Σ_c α_c (1 - p_c)^γ g_c log p_c.",
             (Param("alpha", 0.25, Weights, "scalar: weight of the rare classes (1 - α the others); "
                                            "a sequence: one weight per class; None: 1"),
              Param("gamma", 2.0, float, "focusing exponent, >= 0")),
             check_focal, focal_terms),
    LossSpec("dice", "DiceLoss", "Dice loss: mean_c (1 - DSC_c), soft DSC = 2TP / (2TP + FP + FN).",
             (), check_dice, dice_terms),
    LossSpec("tversky", "TverskyLoss", "Tversky loss: mean_c (1 - TI_c), TI = TP / (TP + α·FP + β·FN).",
             (Param("alpha", 0.3, float, "weight of false positives, >= 0"),
              Param("beta", 0.7, float, "weight of false negatives, >= 0")),
             check_tversky, tversky_loss_terms),
    LossSpec("focal_tversky", "FocalTverskyLoss", "Focal Tversky loss (Eq. 12): mean_c (1 - TI_c)^{1/γ}.",
             (Param("alpha", 0.3, float, "weight of false positives, >= 0"),
              Param("beta", 0.7, float, "weight of false negatives, >= 0"),
              Param("gamma", 4 / 3, float, "the exponent is 1/γ; γ > 0")),
             check_focal_tversky, focal_tversky_terms),
    LossSpec("combo", "ComboLoss", "Combo loss (Eq. 13/14): α·L_mCE - (1-α)·DSC (can be negative).",
             (Param("alpha", 0.5, float, "weight of the cross-entropy half, in [0, 1]"),
              Param("beta", 0.5, float | None, "weight of rare-class cross entropy in [0, 1], or None")),
             check_combo, combo_terms),
    LossSpec("hybrid_focal", "HybridFocalLoss", "Hybrid Focal loss (Eq. 15): λ·L_F + (1-λ)·L_FT.",
             (Param("lambda_", 0.5, float, "weight of the Focal half, in [0, 1]"),
              Param("focal_alpha", 0.25, Weights, "alpha of the Focal loss"),
              Param("focal_gamma", 2.0, float, "gamma of the Focal loss"),
              Param("tversky_alpha", 0.3, float, "alpha of the Focal Tversky loss"),
              Param("tversky_beta", 0.7, float, "beta of the Focal Tversky loss"),
              Param("tversky_gamma", 4 / 3, float, "gamma of the Focal Tversky loss")),
             check_hybrid_focal, hybrid_focal_terms),
    LossSpec("asymmetric_focal", "AsymmetricFocalLoss",
             "Asymmetric Focal loss (Eq. 17): background (1-δ)(1-p)^γ CE, rare classes δ CE.",
             (_DELTA, Param("gamma", 0.2, float, "background suppression exponent, >= 0")),
             check_delta_gamma, asymmetric_focal_terms),
    LossSpec("asymmetric_focal_tversky", "AsymmetricFocalTverskyLoss",
             "Asymmetric Focal Tversky loss (Eq. 19): background 1 - TI, rare classes (1 - TI)^{1-γ}.",
             (_DELTA, Param("gamma", 0.2, float, "enhancement, in [0, 1)")),
             check_delta_enhancement, asymmetric_focal_tversky_terms),
    LossSpec("unified_focal", "UnifiedFocalLoss",
             "Asymmetric Unified Focal loss (Eq. 20): λ·L_aF + (1-λ)·L_aFT; λ weights the cross-entropy half.",
             (_DELTA, Param("gamma", 0.2, float, "in [0, 1): background suppression and rare-class enhancement"),
              Param("lambda_", 0.5, float, "weight of the cross-entropy half, in [0, 1]")),
             check_unified_focal, unified_focal_terms),
    LossSpec("symmetric_focal", "SymmetricFocalLoss",
             "Symmetric Focal loss (the authors' code): every class modulated by (1-p)^γ.",
             (_DELTA, Param("gamma", 0.2, float, "focusing exponent, >= 0")),
             check_delta_gamma, symmetric_focal_terms),
    LossSpec("symmetric_focal_tversky", "SymmetricFocalTverskyLoss",
             "Symmetric Focal Tversky loss (the authors' code): mean_c (1 - TI_c)^{1-γ}.",
             (_DELTA, Param("gamma", 0.2, float, "enhancement, in [0, 1)")),
             check_delta_enhancement, symmetric_focal_tversky_terms),
    LossSpec("symmetric_unified_focal", "SymmetricUnifiedFocalLoss",
             "Symmetric Unified Focal loss (the authors' code): λ·L_sF + (1-λ)·L_sFT.",
             (_DELTA, Param("gamma", 0.2, float, "in [0, 1)"),
              Param("lambda_", 0.5, float, "weight of the cross-entropy half, in [0, 1]")),
             check_unified_focal, symmetric_unified_focal_terms),
)}


def available_losses() -> list[str]:
    """Names of every loss (the same for :mod:`unifocal.losses` and :mod:`unifocal.keras`)."""
    return list(LOSSES)


def lookup(name: str) -> LossSpec:
    """The loss called ``name`` (case, ``-`` / space for ``_`` and a ``_loss`` suffix are forgiven).

    Raises:
        ValueError: unknown name; the message lists close matches and every name.
    """
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_").removesuffix("_loss")
    if key not in LOSSES:
        close = difflib.get_close_matches(key, LOSSES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown loss {name!r}{hint} Available: {', '.join(LOSSES)}")
    return LOSSES[key]


def loss_defaults(name: str) -> dict[str, Any]:
    """The loss's own parameters and their defaults (the common keyword arguments excluded)."""
    return lookup(name).defaults


__all__ = [
    "COMMON_DEFAULTS", "LOSSES", "MONAI_KEYS", "PAPER_LOSSES", "Classes", "LossSpec", "Param", "Terms", "Tversky",
    "UnknownArgumentError", "available_losses", "check_common", "describe", "lookup", "loss_defaults",
]
