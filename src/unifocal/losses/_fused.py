"""The fused fast path for the common case: logits with integer labels.

Every loss of the family is ``coef · D + R(TP, FP, FN)`` (:class:`unifocal.losses._core.Terms`).
With integer labels both halves have a gradient of closed form in the probabilities, so one custom
autograd function computes the softmax once, keeps only ``p`` for the backward pass (as
``F.cross_entropy`` keeps its log-softmax), and writes the logit gradient in two passes:

* ``D``: per position ``f_t(p_t) = -w_t (1 - p_t)^{γ_t} log p_t`` depends on ``p_t`` alone, so
  ``∂D/∂x_j = c_n (δ_jt - p_j)`` with ``c_n = (v_n / n_b) · p_t f_t'(p_t)`` and
  ``p f'(p) = w (1 - p)^γ (γ p log p / (1 - p) - 1)``.
* ``R``: ``∂R/∂p_c(n) = v_n (A_c + B_c [t_n = c])`` with ``A = ∂R/∂ΣP``, ``B = ∂R/∂TP`` (through FP
  and FN), in closed form on the tiny ``(B, K)`` statistics for :class:`Tversky` terms
  (:func:`_closed_form`), by autograd on them for any other region function; through the softmax,
  ``∂R/∂x_j = p_j (G_j - Σ_c p_c G_c)``.

Hence ``∂L/∂x = p ⊙ (v·A - s - c) + onehot_t ⊙ (v·p_t B_t + c)`` with ``s = v (Σ_c p_c A_c + p_t B_t)``
(:class:`_FusedLoss`). Two classes take :class:`_FusedBinaryLoss`, where everything is a function of
the logit difference and the region terms are in closed form on four statistics per row
(:func:`_binary_closed_form`). On CPU a fresh large tensor costs first-touch page faults worth several
arithmetic passes, so both write in place wherever they can (``docs/benchmarks.md``).

On the CPU in float32 the same quantities come from the C kernel (:class:`_KernelLoss`,
:mod:`unifocal.losses._kernel`, ``docs/losses.md`` "The CPU kernel"): one pass forward, one backward,
with the per-row algebra in Python numbers for few rows (:func:`_closed_form_floats`); the two
PyTorch functions above serve CUDA, float64, and machines without a C compiler.
The tests check this path against the plain autograd path (:func:`unifocal.losses._core.evaluate`)
in float64 (the kernel in float32 against it, ``tests/losses/test_kernel.py``). The backward pass is not itself differentiable (``once_differentiable``): a second
derivative raises a clear error; one-hot targets take the autograd path, which has one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from unifocal.losses import _kernel
from unifocal.losses._core import (
    POW_FLOOR,
    Deferred,
    Prepared,
    Terms,
    Tversky,
    constant,
    pooled_stats,
    reduce,
    region_value,
    spread,
    tversky_denominator_tp,
    tversky_weights,
)

SECOND_DERIVATIVE_MESSAGE = (
    "unifocal's fused path (logits with integer labels) computes first derivatives only, and a second one "
    "was asked for (create_graph=True); pass a one-hot target, e.g. "
    "F.one_hot(labels, C).movedim(-1, 1).float(), to take the autograd path, which is twice differentiable")


def _first_derivative_only(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse ``create_graph=True`` with a clear error instead of a silently constant gradient."""

    @functools.wraps(backward)
    def wrapper(ctx: Any, *grads: Tensor) -> Any:
        if torch.is_grad_enabled():
            raise RuntimeError(SECOND_DERIVATIVE_MESSAGE)
        return backward(ctx, *grads)

    return wrapper


class _Masks:
    """Class masks ``m_c = [t = c]·v`` made one at a time in one scratch buffer.

    No one-hot tensor the size of the input is ever built: only the float labels and one ``(B, N)``
    buffer, which each :meth:`get` overwrites (use a mask before asking for the next).
    """

    def __init__(self, labels_f: Tensor, valid: Tensor | None) -> None:
        self.lf, self.valid = labels_f, valid
        self.buf = torch.empty_like(labels_f)

    def get(self, c: int) -> Tensor:
        m = torch.eq(self.lf, c, out=self.buf)
        return m.mul_(self.valid) if self.valid is not None else m


def _log_pt_from_p(x: Tensor, valid: Tensor | None) -> bool:
    """Whether the multi-class path takes ``log p_t = log(p_t)`` from a softmax (the CPU, no ignored
    positions) rather than from a log-softmax (:class:`_FusedLoss`)."""
    return valid is None and x.device.type == "cpu"


def _others_sum(ps: list[Tensor], c: int, out: Tensor) -> Tensor:
    """``Σ_{j≠c} p_j`` (= 1 - p_c without cancellation), floored at the smallest normal number."""
    others = [p for j, p in enumerate(ps) if j != c]
    out.copy_(others[0])
    for p in others[1:]:
        out.add_(p)
    return out.clamp_min_(torch.finfo(out.dtype).tiny)


class _FusedLoss(torch.autograd.Function):
    """Three or more classes: one softmax buffer ``(B, K, N)``, kept for the backward pass.

    On the CPU without ignored positions (and for losses without a distribution term) it is a softmax,
    and ``log p_t = log(p_t)``, exact while ``p_t`` is a normal number (checked once per call: reading a
    value costs nothing on the CPU; below it, ``x_t - logsumexp(x)``). Elsewhere it is a log-softmax that
    each class makes ``p`` in place, ``log p_t = Σ_c m_c log p_c`` being read first. One pass over the
    classes reads each class mask ``m_c = [t = c]·v`` once: ``p_t = Σ_c m_c p_c``, the class weight at
    the target, and the region statistics ``Σg_c``, ``TP_c``, ``ΣP_c``. ``1 - p_c`` of a modulated class is
    the sum of the other probabilities (no cancellation).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, labels: Tensor, valid: Tensor | None, n_valid: Tensor,
                terms: Terms, closed: tuple | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        b, k, _ = x.shape
        coef, regions = bool(terms.coef), bool(terms.regions)
        # log p_t as log(p_t) where that is exact: on the CPU (reading a value there costs nothing) without
        # ignored positions, checked below for probabilities under the smallest normal number; else from
        # the log-softmax, whose buffer each class then makes p in place
        from_p = coef and _log_pt_from_p(x, valid)
        p = torch.softmax(x, 1) if from_p or not coef else torch.log_softmax(x, 1)
        ps = list(p.unbind(1))
        lf = labels.to(x.dtype)
        masks = _Masks(lf, valid)
        gam = list(terms.gamma) if terms.modulated else [0.0] * k
        mod_classes = [c for c in range(k) if gam[c] != 0.0]
        wv = list(terms.weight) if coef and terms.weight is not None else None
        # the class weights fold into the modulation with one modulated class c, positive weights and
        # every other class sharing one weight: w_t (1-p)^γ = exp(log w_ref + m_c (γ log q + log(w_c/w_ref)))
        fold = (wv is not None and len(mod_classes) == 1 and min(wv) > 0
                and len(set(wv[:mod_classes[0]] + wv[mod_classes[0] + 1:])) == 1)
        w_t: Tensor | float | None = None
        if wv is not None and not fold:
            ref = max(set(wv), key=wv.count)  # classes sharing the commonest weight cost nothing
            w_t = ref if all(v == ref for v in wv) else torch.full_like(lf, ref)
        logpt = torch.zeros_like(lf) if coef and not from_p else None
        pt = torch.zeros_like(lf)  # p_t (0 at ignored positions)
        scratch = torch.empty_like(lf) if regions or from_p else None  # products to sum; then log p_t
        tp_l, count_l, psum_l = [], [], []
        for c in range(k):
            m_c = masks.get(c)
            if logpt is not None:
                logpt.addcmul_(m_c, ps[c])
                ps[c].exp_()
            pt.addcmul_(m_c, ps[c])
            if isinstance(w_t, Tensor) and wv[c] != ref:
                w_t.add_(m_c, alpha=wv[c] - ref)
            if regions:
                count_l.append(m_c.sum(-1))
                tp_l.append(torch.mul(m_c, ps[c], out=scratch).sum(-1))
                psum_l.append(ps[c].sum(-1) if valid is None else torch.mul(ps[c], valid, out=scratch).sum(-1))
        dist = h = None
        if from_p:
            if not pt.numel() or float(pt.min()) >= torch.finfo(pt.dtype).tiny:
                logpt = torch.log(pt, out=scratch)
            else:  # a probability under the smallest normal number: log p_t = x_t - logsumexp(x)
                logpt = torch.mul(masks.get(0), x[:, 0])
                for c in range(1, k):
                    logpt.addcmul_(masks.get(c), x[:, c])
                logpt.sub_(torch.logsumexp(x, 1))
        if coef:
            q = torch.empty_like(lf)
            h = torch.mul(pt, logpt)
            weighted = False
            if len(mod_classes) == 1:
                # the asymmetric case: one modulated class c (the background). With q = 1 - p_c as
                # the sum of the other probabilities (no cancellation), h = p f'(p)/w is
                # (1-p)^γ (γ p log p / (1-p) - 1) at c's positions and -1 elsewhere.
                (c,) = mod_classes
                _others_sum(ps, c, q)
                m_c = masks.get(c)
                h.div_(q).mul_(m_c).mul_(gam[c]).sub_(1.0)
                if fold:
                    w_ref = wv[1 if c == 0 else 0]
                    mod = q.log_().mul_(gam[c]).add_(math.log(wv[c] / w_ref)).mul_(m_c)
                    mod.add_(math.log(w_ref)).exp_()
                    weighted = True
                else:
                    mod = q.log_().mul_(m_c).mul_(gam[c]).exp_()
            elif mod_classes:  # several modulated classes (the symmetric losses)
                log_mod = torch.zeros_like(pt)
                q_t = torch.zeros_like(pt)  # 1 - p_t where t is modulated, 1 elsewhere
                g_t = torch.zeros_like(pt)
                in_s = torch.zeros_like(pt)
                for c in mod_classes:
                    _others_sum(ps, c, q)
                    m_c = masks.get(c)
                    q_t.addcmul_(m_c, q)  # exact: no 1 + (q - 1) round trip
                    g_t.add_(m_c, alpha=gam[c])
                    in_s.add_(m_c)
                    log_mod.addcmul_(m_c, q.log_(), value=gam[c])
                q_t.add_(in_s.neg_().add_(1.0))  # + 0 where modulated, + 1 elsewhere
                mod = log_mod.exp_()
                h.div_(q_t).mul_(g_t).sub_(1.0)
            else:
                mod = None
                h.fill_(-1.0)
            if mod is not None:
                h.mul_(mod)
                f = mod.mul_(logpt)  # = -f
            else:
                f = logpt  # = -f
            if w_t is not None and not weighted:
                f = f.mul_(w_t)
                h.mul_(w_t)
            if valid is not None:
                h.mul_(valid)  # (f is already 0 at ignored positions: logpt is)
            dist = f.sum(-1).div_(n_valid).mul_(-terms.coef)
        tp = psum = count = None
        if regions:
            tp, count, psum = torch.stack(tp_l, 1), torch.stack(count_l, 1), torch.stack(psum_l, 1)
        ctx.save_for_backward(p, lf, pt, valid, n_valid, h)
        ctx.terms, ctx.k = terms, k
        return _outputs(ctx, x, dist, tp, psum, count, closed)

    @staticmethod
    @_first_derivative_only
    @once_differentiable
    def backward(ctx: Any, g_dist: Tensor | None, dtp: Tensor | None, dps: Tensor | None,
                 _g_count: Tensor | None) -> tuple[Tensor | None, ...]:
        if ctx.closed is not None and g_dist is not None:
            dtp, dps = _closed_form_grads(ctx, g_dist)
        k = ctx.k
        p, lf, pt, valid, n_valid, h = ctx.saved_tensors
        ps = list(p.unbind(1))
        masks = _Masks(lf, valid)
        terms: Terms = ctx.terms
        # u: subtracted from every class's p-weighted gradient; e: added at the target class
        if h is not None and g_dist is not None:
            scale = (g_dist * (terms.coef / n_valid)).unsqueeze(1)
        else:
            h = scale = None
        if h is None and dtp is None and dps is None:
            return None, None, None, None, None, None
        if dtp is not None or dps is not None:
            dtp = dtp if dtp is not None else torch.zeros_like(dps)
            dps = dps if dps is not None else torch.zeros_like(dtp)
            e = torch.zeros_like(pt)
            for c, col in enumerate(dtp.unsqueeze(-1).unbind(1)):
                e.addcmul_(masks.get(c), col)
            e.mul_(pt)  # v·p_t·B_t (the masks carry v)
            if h is not None:
                e.addcmul_(h, scale)
            cols = dps.unsqueeze(-1).unbind(1)
            u = torch.mul(ps[0], cols[0])
            for p_c, col in zip(ps[1:], cols[1:], strict=True):
                u.addcmul_(p_c, col)
            if valid is not None:
                u.mul_(valid)
            u.add_(e)
            grad = torch.mul(p, dps.unsqueeze(2))  # p ⊙ A, then ⊙ v, then - p ⊙ u: all classes at once
            if valid is not None:
                grad.mul_(valid.unsqueeze(1))
            grad.addcmul_(p, u.unsqueeze(1), value=-1.0)
        else:
            e = h * scale
            grad = torch.mul(p, e.unsqueeze(1)).neg_()
        for c in range(k):
            grad[:, c].addcmul_(masks.get(c), e)
        return grad, None, None, None, None, None


def _outputs(ctx: Any, x: Tensor, dist: Tensor | None, tp: Tensor | None, psum: Tensor | None,
             count: Tensor | None, closed: tuple | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four outputs of a fused function: the loss per row, then ``(TP, ΣP, Σg)``.

    With ``closed`` (every region term a :class:`Tversky`) the region terms are added here in closed
    form (:func:`_closed_form`) and the statistics are returned for inspection only; otherwise the
    first output is the distribution term and the caller adds the region terms by autograd. Missing
    outputs are zeros, marked non-differentiable.
    """
    b, k = x.shape[0], x.shape[1]
    ctx.closed = None
    if closed is not None and tp is not None:
        region, a_tp, a_ps = _closed_form(tp, psum, count, *closed)
        ctx.closed, ctx.rows = (a_tp, a_ps, closed[2]), b
        dist = region if dist is None else dist.add_(region)
        out = [dist, tp, psum, count]
        ctx.mark_non_differentiable(tp, psum, count)
        return tuple(out)  # type: ignore[return-value]
    out = [dist if dist is not None else x.new_zeros(b)]
    out += [tp, psum, count] if tp is not None else [x.new_zeros(b, k) for _ in range(3)]
    ctx.mark_non_differentiable(*[t for t, given in zip(out, (dist, tp, psum, None), strict=True) if given is None])
    return tuple(out)  # type: ignore[return-value]


#: ``[n, ΣP_1, TP_1, Σg_1]`` to ``[TP_0, TP_1, ΣP_0, ΣP_1, Σg_0, Σg_1]``, row-major ``(4, 6)``:
#: ``TP_0 = n - ΣP_1 - Σg_1 + TP_1``, ``ΣP_0 = n - ΣP_1``, ``Σg_0 = n - Σg_1`` (the statistics a custom
#: region function receives).
_BINARY_STATS = (1.0, 0.0, 1.0, 0.0, 1.0, 0.0,
                 -1.0, 0.0, -1.0, 1.0, 0.0, 0.0,
                 1.0, 1.0, 0.0, 0.0, 0.0, 0.0,
                 -1.0, 0.0, 0.0, 0.0, -1.0, 1.0)

#: ``u = [n, ΣP_1, TP_1, Σg_1]`` to ``[TP_0, TP_1, E, F]``, row-major ``(4, 4)``, with ``E = ΣP_1 - TP_1``
#: (``FP_1 = FN_0``) and ``F = Σg_1 - TP_1`` (``FN_1 = FP_0``): two classes have four statistics, not six.
_BINARY_TEF = (1.0, 0.0, 0.0, 0.0,
               -1.0, 0.0, 1.0, 0.0,
               1.0, 1.0, -1.0, -1.0,
               -1.0, 0.0, 0.0, 1.0)

def _by_class_(t: Tensor, m1: Tensor, v0: float, v1: float) -> Tensor:
    """``t · v_t`` in place, ``v_t = v0 + (v1 - v0)·m1`` the value of each position's class (two classes)."""
    if v0 == v1:
        return t.mul_(v0)
    if v0 == 0.0:
        return t.mul_(m1).mul_(v1)
    return t.addcmul_(t, m1, value=(v1 - v0) / v0).mul_(v0)


def _per_class(v: float | tuple[float, ...], k: int = 2) -> list[float]:
    return [float(v)] * k if isinstance(v, float | int) else [float(e) for e in v]


def _binary_closed_form(u: Tensor, regions: list, classes: list[int] | None,
                        pool: tuple[bool, int]) -> tuple[Tensor, Tensor]:
    """Region terms of two classes in closed form on ``u = [n, ΣP_1, TP_1, Σg_1]`` per row ``(B', 4)``.

    ``[TP_0, TP_1, E, F] = u @ _BINARY_TEF`` (differences formed explicitly, so that a perfect prediction,
    ``E = F = 0``, gives ``TI = 1`` exactly, as on the autograd path), then for every :class:`Tversky`
    term ``[N_0, N_1, D_0, D_1] = s + [TP_0, TP_1, E, F] @ M`` with ``N_c = TP_c``,
    ``D_0 = TP_0 + w_FN,0·E + w_FP,0·F``, ``D_1 = TP_1 + w_FP,1·E + w_FN,1·F``; ``TI = N / D``. The
    gradient of ``R`` in ``(N, D)`` is ``(G / D, -G·TI / D)`` with ``G = ∂R/∂TI`` (class weight and term
    scale included), taken back to ``u`` by one product with ``(T @ M)ᵀ``. The constant matrices of a
    description are made once per device and dtype (:func:`_binary_plan`).

    Returns the per-row value ``(B',)`` (pooled values spread to their rows with ``batch=True``) and
    ``∂/∂u`` of the per-row (or pooled) value, ``(B'', 4)``: only its columns 1 and 2 (``ΣP_1``,
    ``TP_1``) reach the probabilities.
    """
    batch, channels = pool
    rows = u.shape[0]
    if batch:
        u = u.view(-1, channels, 4).sum(0)
    tef_m, terms_plan = _binary_plan(regions, classes, u)
    tef = u.matmul(tef_m)
    value = du = None
    for smooth, m, tm, w, exponent, coef in terms_plan:
        nd = torch.addmm(smooth, tef, m)
        n, d = nd.split(2, 1)
        ti = torch.div(n, d)
        if exponent is None:
            r, g = ti, coef
        else:
            x = torch.rsub(ti, 1.0)
            ok = x >= POW_FLOOR
            xc = x.clamp_min_(POW_FLOOR)
            if isinstance(exponent, float) and exponent == 1.0:
                r = xc
                g = ok.to(ti.dtype).mul_(coef)
            else:
                r = xc.pow(exponent)
                g = r.div(xc).mul_(ok).mul_(coef)
        v = r.matmul(w)
        value = v if value is None else value.add_(v)
        gn = g / d
        dd = torch.cat([gn, gn * ti], 1).matmul(tm)  # (∂/∂N, ∂/∂D) @ (T @ M)ᵀ: ∂/∂u of this term
        du = dd if du is None else du.add_(dd)
    return spread(value, rows), du


def _binary_plan(regions: list, classes: list[int] | None, like: Tensor) -> tuple[Tensor, list[tuple]]:
    """The constants of :func:`_binary_closed_form` for ``regions``, made once per (regions, classes,
    device, dtype): ``_BINARY_TEF`` and, per term, ``(s, M, (T @ M)ᵀ, class weights, exponent, ∂R/∂TI
    factor)`` (the exponent a number when every class shares it, the factor a number when it is shared)."""
    key = (id(regions), tuple(classes) if classes is not None else None, like.device, like.dtype)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is regions:
        return hit[1]
    cls = [0.5, 0.5] if classes is None else [1.0 / len(classes) if c in classes else 0.0 for c in range(2)]
    out = []
    for scale, term, _ in regions:
        wfp, wfn = _per_class(term.fp_weight), _per_class(term.fn_weight)
        m = (1.0, 0.0, 1.0, 0.0,
             0.0, 1.0, 0.0, 1.0,
             0.0, 0.0, wfn[0], wfp[1],
             0.0, 0.0, wfp[0], wfn[1])
        w = [c * scale for c in cls]
        if term.exponent is None:
            exponent, coef = None, _number_or_vector(w, like)
        else:
            e = [float(v) for v in term.exponent]
            exponent = e[0] if len(set(e)) == 1 else constant(e, like)
            coef = _number_or_vector([-wc * ec for wc, ec in zip(w, e, strict=True)], like)
        out.append((constant((term.smooth,), like), constant(m, like).view(4, 4),
                    constant(_binary_tm(m), like).view(4, 4), constant(w, like), exponent, coef))
    plan = (constant(_BINARY_TEF, like).view(4, 4), out)
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[key] = (regions, plan)  # the regions object itself is kept, so that its id is not reused
    return plan


_PLANS: dict[tuple, tuple] = {}


@functools.lru_cache(maxsize=64)
def _binary_tm(m: tuple[float, ...]) -> tuple[float, ...]:
    """``(T @ M)ᵀ`` with the second half of the rows negated (``∂/∂D`` enters as ``-G·TI/D``), row-major."""
    t = [_BINARY_TEF[4 * i:4 * i + 4] for i in range(4)]
    mm = [m[4 * i:4 * i + 4] for i in range(4)]
    tm = [[sum(t[i][j] * mm[j][c] for j in range(4)) for c in range(4)] for i in range(4)]  # (4 u, 4 nd)
    # rows of the result: the 4 columns of [N, D] (N_0, N_1, D_0, D_1); D's rows negated
    return tuple((-1.0 if r >= 2 else 1.0) * tm[i][r] for r in range(4) for i in range(4))


class _FusedBinaryLoss(torch.autograd.Function):
    """Two classes: everything is a function of the logit difference ``z = x_1 - x_0``.

    With ``a = ±z`` signed towards the target, ``log p_t = log σ(a)`` (``softplus(a, β=-1)``, exact for
    any finite ``a``), ``log(1 - p_t) = log p_t - a`` exactly, ``p_t = σ(a)``, and
    ``d/da [-w (1-p)^γ log p] = w (1-p)^γ (γ p log p + p - 1)``: no division anywhere. The region terms need
    only ``u = [n, ΣP_1, TP_1, Σg_1]`` per row (class 0 follows from it, :func:`_binary_closed_form`), and
    their gradient in ``p_1`` is ``v·∂R/∂ΣP_1 + m_1·∂R/∂TP_1``, times ``σ'(z) = p_t (1 - p_t)``. The logit
    gradient is ``(-∂/∂z, ∂/∂z)``. Without pooling (``batch=False``) the whole ``∂(row loss)/∂z`` is formed in
    the forward pass and the backward pass only scales it by the incoming gradient of each row.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, labels: Tensor, valid: Tensor | None, n_valid: Tensor,
                terms: Terms, closed: tuple | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # five (B, N) buffers, everything else in place: on CPU a fresh large tensor costs first-touch
        # page faults worth several arithmetic passes
        ctx.set_materialize_grads(False)
        b, _, n = x.shape
        x0, x1 = x.unbind(1)
        z = torch.sub(x1, x0)
        m1 = labels.to(x.dtype)  # ignored positions carry label 0, so m1 is already 0 there
        d_dz = dist = u = dp = None
        tp = psum = count = None
        dp_from_pt = False
        if terms.regions:
            dp = torch.sigmoid(z)  # p_1
            s1 = dp.sum(-1) if valid is None else torch.linalg.vecdot(dp, valid)
            if terms.coef:  # z is needed below: p_1 gives way to TP_1's products, σ'(z) comes from p_t
                t1 = dp.mul_(m1).sum(-1)
                dp_from_pt = True
            else:  # z is free: the products go to its buffer
                t1 = torch.mul(dp, m1, out=z).sum(-1)
                dp.addcmul_(dp, dp, value=-1.0)  # σ'(z) = p_1 (1 - p_1)
            u = torch.stack([n_valid, s1, t1, m1.sum(-1)], 1)  # [n, ΣP_1, TP_1, Σg_1]
            if closed is None:  # a custom region function: the statistics as outputs, autograd on them
                stats = u.matmul(constant(_BINARY_STATS, u).view(4, 6))
                tp, psum, count = stats[:, 0:2], stats[:, 2:4], stats[:, 4:6]
        if terms.coef:
            a = z.neg_().addcmul_(z, m1, value=-2.0)  # -z + 2 z m_1: the logit signed towards the target
            lp = torch.ops.aten.softplus.out(a, -1.0, _threshold(x), out=torch.empty_like(a))  # log p_t
            pt = torch.sigmoid(a, out=torch.empty_like(a))
            if dp_from_pt:
                torch.addcmul(pt, pt, pt, value=-1.0, out=dp)  # σ'(z) = p_t (1 - p_t)
            w0, w1 = terms.weight if terms.weight is not None else (1.0, 1.0)
            fold = min(w0, w1) > 0  # w_t = w_0 · exp(m_1 log(w_1 / w_0)), folded into the modulation
            g0, g1 = terms.gamma if terms.modulated else (0.0, 0.0)
            mod = None
            if terms.modulated:
                mod = _by_class_(torch.sub(lp, a, out=a), m1, g0, g1)  # log (1 - p_t)^γ_t, in a's buffer
                if fold and w0 != w1:
                    mod.add_(m1, alpha=math.log(w1 / w0))
                mod.exp_()  # (w_t / w_0) (1 - p_t)^γ_t
            elif fold and w0 != w1:
                mod = torch.mul(m1, (w1 - w0) / w0, out=a).add_(1.0)  # w_t / w_0
            if not fold:  # a class weight of zero: w_t itself, and the scalar factor 1
                w_t = torch.mul(m1, w1 - w0, out=a if mod is None else torch.empty_like(a)).add_(w0)
                mod = w_t if mod is None else mod.mul_(w_t)
                w0 = 1.0
            if valid is not None:
                mod = valid if mod is None else mod.mul_(valid)
            # d/da = h = mod (γ_t p_t log p_t + p_t - 1) = γ_t p_t (mod log p_t) + mod (p_t - 1), in p_t's buffer;
            # mod log p_t in log p_t's own (no product buffer: on CPU a fresh one costs page faults)
            if mod is None:
                neg_f = lp.sum(-1)
                h = pt.sub_(1.0)
            else:
                ml = lp.mul_(mod)  # (w_t/w_0)(1-p_t)^γ log p_t
                neg_f = ml.sum(-1)
                if g0 or g1:
                    _by_class_(ml, m1, g0, g1).mul_(pt)  # γ_t p_t mod log p_t
                    h = pt.sub_(1.0).mul_(mod).add_(ml)
                else:
                    h = pt.sub_(1.0).mul_(mod)
            d_dz = h.addcmul_(h, m1, value=-2.0)  # -h·sign, sign = 2 m_1 - 1
            if valid is None and n:  # n_valid is n everywhere: numbers, no tensor operations
                dist = neg_f.mul_(-terms.coef * w0 / n)
                d_dz.mul_(-terms.coef * w0 / n)
            else:
                dist = neg_f.div_(n_valid).mul_(-terms.coef * w0)
                d_dz.mul_((n_valid.reciprocal() * (-terms.coef * w0)).unsqueeze(1))
        ctx.shape, ctx.closed_grads = x.shape, None
        if closed is not None and u is not None:
            region, du = _binary_closed_form(u, *closed)
            dist = region if dist is None else dist.add_(region)
            alpha, beta = du[:, 1:2], du[:, 2:3]
            if not closed[2][0]:  # per row: the whole ∂(row loss)/∂z now, in dp's buffer
                w = m1.mul_(beta)  # m_1 is not needed any more
                w.add_(alpha) if valid is None else w.addcmul_(valid, alpha)
                gz = dp.mul_(w)
                d_dz = gz if d_dz is None else d_dz.add_(gz)
                dp = None
            else:
                ctx.closed_grads = (alpha, beta, closed[2][1])
        ctx.save_for_backward(d_dz, dp, m1 if dp is not None else None, valid if dp is not None else None)
        if dist is None:
            dist = x.new_zeros(b)
            ctx.mark_non_differentiable(dist)
        if tp is None:  # the loss alone (every region term in closed form, or none)
            return dist
        ctx.mark_non_differentiable(count)
        return dist, tp, psum, count

    @staticmethod
    @_first_derivative_only
    @once_differentiable
    def backward(ctx: Any, g_dist: Tensor | None, *stats: Tensor | None) -> tuple[Tensor | None, ...]:
        dtp, dps = stats[:2] if stats else (None, None)
        d_dz, dp, m1, valid = ctx.saved_tensors
        alpha = beta = None
        if ctx.closed_grads is not None and g_dist is not None:  # pooled region terms
            a0, b0, channels = ctx.closed_grads
            go = g_dist.view(-1, channels).sum(0).unsqueeze(1)
            reps = g_dist.shape[0] // channels
            alpha, beta = (a0 * go).repeat(reps, 1), (b0 * go).repeat(reps, 1)
        elif dtp is not None or dps is not None:  # a custom region function
            dtp = dtp if dtp is not None else torch.zeros_like(dps)
            dps = dps if dps is not None else torch.zeros_like(dtp)
            alpha = (dps[:, 1] - dps[:, 0] - dtp[:, 0]).unsqueeze(1)
            beta = (dtp[:, 1] + dtp[:, 0]).unsqueeze(1)
        if g_dist is None:
            d_dz = None
        if d_dz is None and alpha is None:
            return None, None, None, None, None, None
        grad = torch.empty(ctx.shape, dtype=(d_dz if d_dz is not None else dp).dtype,
                           device=(d_dz if d_dz is not None else dp).device)
        dz = grad[:, 1]  # everything is accumulated in place in the output buffer
        if alpha is not None:
            if valid is None:
                torch.addcmul(alpha, m1, beta, out=dz)
            else:
                torch.mul(valid, alpha, out=dz).addcmul_(m1, beta)
            dz.mul_(dp)
            if d_dz is not None:
                dz.addcmul_(d_dz, g_dist.unsqueeze(1))
        else:
            torch.mul(d_dz, g_dist.unsqueeze(1), out=dz)
        torch.neg(dz, out=grad[:, 0])
        return grad, None, None, None, None, None


def _threshold(x: Tensor) -> float:
    """``softplus``'s switch to the identity, where ``log(1 + e^{-a})`` is below the dtype's resolution."""
    return 40.0 if x.dtype == torch.float64 else 20.0


def _closed_form(tp: Tensor, psum: Tensor, count: Tensor, regions: list, classes: list[int] | None,
                 pool: tuple[bool, int]) -> tuple[Tensor, Tensor, Tensor]:
    """``Σ_i scale_i · mean_c R_i`` per row for :class:`Tversky` terms, with its gradient coefficients.

    With ``N = TP + s``, ``D = TP + w_FN·FN + w_FP·FP + s`` (``FP = ΣP - TP``, ``FN = Σg - TP``) and
    ``TI = N / D``: ``∂TI/∂TP = (1 - TI·(1 - w_FN - w_FP)) / D`` and ``∂TI/∂ΣP = -TI·w_FP / D``; for
    ``R = max(1 - TI, floor)^e``, ``∂R/∂TI = -e·max(1 - TI, floor)^{e-1}`` where ``1 - TI >= floor``
    (the clamp passes no gradient below it, as ``clamp_min`` does), and ``∂R/∂TI = 1`` for ``R = TI``.
    Returns the per-row value ``(B',)`` and ``(∂/∂TP, ∂/∂ΣP)`` of the (pooled, with ``batch=True``)
    statistics; :func:`_closed_form_grads` scales them by the incoming gradient. This replaces some
    sixty small autograd operations per call, the fixed cost that dominates small inputs.
    """
    batch, channels = pool
    rows, k = tp.shape
    if batch:
        tp, psum, count = (t.view(-1, channels, k).sum(0) for t in (tp, psum, count))
    cls = [1.0 / k] * k if classes is None else [1.0 / len(classes) if c in classes else 0.0 for c in range(k)]
    value = a_tp = a_ps = None
    for scale, term, _ in regions:
        wfp, wfn = tversky_weights(term, tp)
        # D = TP + w_FN (Σg - TP) + w_FP (ΣP - TP) + s, exactly as tversky_index (a perfect
        # prediction gives TI = 1 exactly, as on the autograd path)
        n = tp + term.smooth
        d = _add_scaled(n, count - tp, wfn)
        d = _add_scaled(d, psum - tp, wfp, inplace=True)
        ti = n.div_(d)
        weights_c = [w * scale for w in cls]  # the class mean and the term's scale, per class
        if term.exponent is None:
            r, g = ti, _number_or_vector(weights_c, ti)
        else:
            x = torch.rsub(ti, 1.0)
            ok = x >= POW_FLOOR
            xc = x.clamp_min_(POW_FLOOR)
            e_vals = term.exponent
            # ∂R/∂TI · class weight = -e · xc^{e-1} · w_c where unclamped
            coef = _number_or_vector([-w * e for w, e in zip(weights_c, e_vals, strict=True)], ti)
            if all(e == 1.0 for e in e_vals):
                r = xc
                g = ok.to(ti.dtype).mul_(coef)
            else:
                r = xc.pow(e_vals[0] if len(set(e_vals)) == 1 else constant(e_vals, ti))
                g = r.div(xc).mul_(ok).mul_(coef)
        v = r.matmul(constant(weights_c, ti))
        value = v if value is None else value.add_(v)
        # g·∂TI/∂TP = g/D · (1 - TI·c1); g·∂TI/∂ΣP = -g/D · TI·w_FP, with c1 = 1 - w_FN - w_FP
        g = d.reciprocal_().mul_(g)
        gt = g * ti
        c1 = tversky_denominator_tp(term, tp)
        dtp = g.sub_(gt, alpha=c1) if isinstance(c1, float) else g.sub_(gt.mul(c1))
        dps = gt.mul_(-wfp) if isinstance(wfp, float) else gt.mul_(wfp).neg_()
        a_tp = dtp if a_tp is None else a_tp.add_(dtp)
        a_ps = dps if a_ps is None else a_ps.add_(dps)
    return spread(value, rows), a_tp, a_ps


def _add_scaled(a: Tensor, b: Tensor, w: Tensor | float, inplace: bool = False) -> Tensor:
    """``a + w·b`` for a number or a per-class tensor ``w`` (one operation for a number)."""
    if isinstance(w, float):
        return a.add_(b, alpha=w) if inplace else torch.add(a, b, alpha=w)
    return a.addcmul_(b, w) if inplace else torch.addcmul(a, b, w)


def _number_or_vector(values: list[float], like: Tensor) -> Tensor | float:
    """One number when the per-class values are all equal, else a constant ``(K,)`` tensor."""
    return values[0] if len(set(values)) == 1 else constant(values, like)


def _closed_form_grads(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(∂L/∂TP, ∂L/∂ΣP)`` per row ``(B', K)`` from the coefficients of :func:`_closed_form`.

    (The two-class function keeps ``[α, β]`` in the first slot and ``None`` in the second.)
    """
    a_tp, a_ps, (batch, channels) = ctx.closed
    if batch:
        go = grad_out.view(-1, channels).sum(0).unsqueeze(1)
        reps = ctx.rows // channels
        return (a_tp * go).repeat(reps, 1), None if a_ps is None else (a_ps * go).repeat(reps, 1)
    go = grad_out.unsqueeze(1)
    return a_tp * go, None if a_ps is None else a_ps * go


class _KernelLoss(torch.autograd.Function):
    """Any number of classes, float32 on the CPU: the fused kernel (:mod:`unifocal.losses._kernel`).

    The forward pass is one kernel call: the per-row sums ``[Σ v f, TP_c, ΣP_c, Σg_c]`` (in float64)
    and the coefficient ``c = v p_t f_t'(p_t)`` per position (``D``'s logit gradient is
    ``c·(δ_jt - p_j)/n_b``); the backward pass is another, which recomputes the softmax from the logits
    instead of keeping ``p``. With every region term a :class:`Tversky` and few rows (the fixed cost
    of small inputs) the per-row algebra is done in Python numbers (:func:`_closed_form_floats`) and
    the function returns the loss alone; otherwise it is :class:`_FusedLoss`'s (:func:`_outputs`).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, labels: Tensor, valid: Tensor | None, n_valid: Tensor, terms: Terms,
                closed: tuple | None, lib: Any, deferred: Deferred | None, factor: float | None
                ) -> Tensor | tuple[Tensor, Tensor, Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        b, k, n = x.shape
        coef, regions = bool(terms.coef), bool(terms.regions)
        wg = constant((terms.weight if terms.weight is not None else (1.0,) * k)
                      + (terms.gamma if terms.modulated else (0.0,) * k), x)
        sums, c, checks = _kernel.forward(lib, x, labels, valid, wg, coef, regions)
        if deferred is not None:  # the checks of prepare(), from the kernel's pass over the data
            deferred.raise_if_bad(*checks)
        ctx.save_for_backward(x, labels, valid, c, n_valid)
        ctx.terms, ctx.lib, ctx.n, ctx.floats = terms, lib, n, None
        if (closed is not None and isinstance(sums, list)
                and b * k * max(1, len(terms.regions)) <= _FLOAT_CLOSED_FORM_MAX):
            rows = sums
            cf = _closed_form_floats(rows, k, *closed) if regions else ([0.0] * b, None, None)
            if cf is not None:
                value, a_tp, a_ps = cf
                counts = [float(n)] * b if valid is None else n_valid.tolist()
                if coef:
                    value = [v + terms.coef * r[0] / m for v, r, m in zip(value, rows, counts, strict=True)]
                ctx.floats, ctx.factor = (a_tp, a_ps, closed[2], counts), factor
                if factor is not None:  # the reduction too: a scalar
                    return torch.tensor(math.fsum(value) * factor, dtype=x.dtype, device=x.device)
                return torch.tensor(value, dtype=x.dtype, device=x.device)
        s = (torch.tensor(sums, dtype=torch.float64, device=x.device)[:, :1 + 3 * k] if isinstance(sums, list)
             else sums).to(x.dtype)
        dist = tp = psum = count = None
        if coef:
            dist = s[:, 0].mul(terms.coef / n) if valid is None and n else s[:, 0].div(n_valid).mul_(terms.coef)
        if regions:
            tp, psum, count = s[:, 1:1 + k], s[:, 1 + k:1 + 2 * k], s[:, 1 + 2 * k:]
        return _outputs(ctx, x, dist, tp, psum, count, closed)

    @staticmethod
    @_first_derivative_only
    @once_differentiable
    def backward(ctx: Any, g_dist: Tensor | None, *stats: Tensor | None) -> tuple[Tensor | None, ...]:
        x, labels, valid, c, n_valid = ctx.saved_tensors
        b, k, _ = x.shape
        terms = ctx.terms
        if ctx.floats is not None:
            if g_dist is None:
                return None, None, None, None, None, None, None, None, None
            g = [float(g_dist) * ctx.factor] * b if ctx.factor is not None else g_dist.tolist()
            coeffs = _row_coefficients(g, terms.coef, *ctx.floats, k)
            return (_kernel.backward(ctx.lib, x, labels, valid, c, torch.tensor(coeffs, dtype=x.dtype, device=x.device),
                                     ctx.floats[0] is not None), None, None, None, None, None, None, None, None)
        dtp, dps = stats[:2] if stats else (None, None)
        if ctx.closed is not None and g_dist is not None:
            dtp, dps = _closed_form_grads(ctx, g_dist)
        k_row = None
        if c is not None and g_dist is not None:
            k_row = g_dist * (terms.coef / ctx.n) if valid is None and ctx.n else g_dist.div(n_valid).mul_(terms.coef)
        regions = dtp is not None or dps is not None
        if k_row is None and not regions:
            return None, None, None, None, None, None, None, None, None
        cols = [(k_row if k_row is not None else x.new_zeros(b)).unsqueeze(1)]
        if regions:
            cols += [dps if dps is not None else torch.zeros_like(dtp), dtp if dtp is not None else torch.zeros_like(dps)]
        else:  # the kernel reads rows of 1 + 2K numbers
            cols.append(x.new_zeros(b, 2 * k))
        coeffs = torch.cat([t.to(x.dtype) for t in cols], 1)
        grad = _kernel.backward(ctx.lib, x, labels, valid, c if k_row is not None else None, coeffs, regions)
        return grad, None, None, None, None, None, None, None, None


#: Up to this many (row, class, region term) entries the per-row algebra of :class:`_KernelLoss` is done
#: in Python numbers: about 1 µs each, against some twenty tensor operations of 2 µs each.
_FLOAT_CLOSED_FORM_MAX = 32


def _closed_form_floats(stats: list[list[float]], k: int, regions: list, classes: list[int] | None,
                        pool: tuple[bool, int]) -> tuple[list[float], list[list[float]], list[list[float]]] | None:
    """:func:`_closed_form` in Python numbers on the kernel's sums ``[Σf, TP_c, ΣP_c, Σg_c]`` per row.

    Returns the region value per row and ``(∂/∂TP, ∂/∂ΣP)`` per row (per pooled row with ``batch=True``),
    or ``None`` if a denominator is zero (the tensor form then gives the IEEE result).
    """
    batch, channels = pool
    rows = len(stats)
    if batch:
        stats = [[sum(col) for col in zip(*stats[ch::channels], strict=True)] for ch in range(channels)]
    cls = [1.0 / k] * k if classes is None else [1.0 / len(classes) if c in classes else 0.0 for c in range(k)]
    m = len(stats)
    value = [0.0] * m
    a_tp = [[0.0] * k for _ in range(m)]
    a_ps = [[0.0] * k for _ in range(m)]
    for scale, term, _ in regions:
        wfp, wfn = _per_class(term.fp_weight, k), _per_class(term.fn_weight, k)
        exps = None if term.exponent is None else [float(e) for e in term.exponent]
        smooth = float(term.smooth)
        for r, row in enumerate(stats):
            for c in range(k):
                tp, ps, cnt = row[1 + c], row[1 + k + c], row[1 + 2 * k + c]
                num = tp + smooth
                d = num + wfn[c] * (cnt - tp) + wfp[c] * (ps - tp)
                if d == 0.0:
                    return None
                ti = num / d
                w = cls[c] * scale
                if exps is None:
                    v, g = ti, w
                else:
                    xc = max(1.0 - ti, POW_FLOOR)
                    v = xc ** exps[c]
                    g = -w * exps[c] * v / xc if 1.0 - ti >= POW_FLOOR else 0.0
                value[r] += v * w
                g /= d
                gt = g * ti
                a_tp[r][c] += g - gt * (1.0 - wfn[c] - wfp[c])
                a_ps[r][c] -= gt * wfp[c]
    return value * (rows // m), a_tp, a_ps


def _row_coefficients(g: list[float], coef: float, a_tp: list[list[float]] | None, a_ps: list[list[float]] | None,
                      pool: tuple[bool, int], counts: list[float], k: int) -> list[list[float]]:
    """Per row ``[k_b, ∂L/∂ΣP_c, ∂L/∂TP_c]`` for :func:`unifocal.losses._kernel.backward` from the incoming
    gradient ``g`` of each row (pooled region terms take the sum over the rows of their channel)."""
    batch, channels = pool
    rows = len(g)
    if a_tp is None:
        return [[gb * coef / m] + [0.0] * (2 * k) for gb, m in zip(g, counts, strict=True)]
    if batch:
        go = [sum(g[ch::channels]) for ch in range(channels)]
        scale = [go[r % channels] for r in range(rows)]
        src = [r % channels for r in range(rows)]
    else:
        scale, src = g, range(rows)
    return [[g[r] * coef / counts[r]] + [a * scale[r] for a in a_ps[s]] + [a * scale[r] for a in a_tp[s]]
            for r, s in zip(range(rows), src, strict=True)]


def kernel_serves(pred: Tensor) -> bool:
    """Whether logits ``pred`` with integer labels take the CPU kernel: on the CPU, computed in float32
    (every floating dtype but float64), with the kernel built."""
    return pred.device.type == "cpu" and pred.dtype != torch.float64 and _kernel.library() is not None


def fused_loss(prep: Prepared, terms: Terms, reduction: str | None = None) -> Tensor:
    """The loss for logits with integer labels (see the module docstring): per row ``(B',)``, or with
    ``reduction`` (``"mean"``, ``"sum"``, ``"none"``) per sample and reduced as the loss's ``reduction``.

    The region terms of the tiny ``(B', K)`` statistics ``(TP, ΣP, Σg)`` are differentiated in closed
    form inside the fused function when they are all :class:`Tversky` terms (every loss of the
    library); a custom region function is plain autograd on the statistics the function returns,
    whose gradients then reach the fused backward pass as ``(∂R/∂TP, ∂R/∂ΣP)``.
    """
    pool = (bool(prep.common["batch"]), prep.channels)
    closed = all(isinstance(f, Tversky) for _, f, _ in terms.regions)
    args = (prep.x, prep.labels, prep.valid, prep.n_valid, terms,
            (terms.regions, terms.classes, pool) if closed else None)
    lib = _kernel.library() if prep.x.dtype == torch.float32 and prep.x.device.type == "cpu" else None
    if lib is None and prep.deferred is not None:
        prep.deferred.run(prep)
    if lib is not None:
        valid = prep.valid.contiguous() if prep.valid is not None else None
        # "mean" over samples is the mean over rows (every sample has `channels` rows); "sum" over samples
        # is the sum over rows over `channels`: the kernel's function may reduce in Python numbers
        factor = {"mean": 1.0 / max(prep.batch_size, 1), "sum": 1.0 / prep.channels}.get(reduction or "none")
        out = _KernelLoss.apply(prep.x.contiguous(), prep.labels.contiguous(), valid, *args[3:], lib,
                                prep.deferred, factor)
        if isinstance(out, Tensor):
            if out.ndim == 0:
                return out  # reduced already
            return out if reduction is None else reduce(prep.unfold(out), reduction)
        if closed or not terms.regions:
            return _reduced(prep, out[0], reduction)
        value, tp, psum, count = out
    elif prep.num_classes == 2:
        out = _FusedBinaryLoss.apply(*args)
        if closed or not terms.regions:
            return _reduced(prep, out, reduction)
        value, tp, psum, count = out
    else:
        value, tp, psum, count = _FusedLoss.apply(*args)
        if closed:
            return _reduced(prep, value, reduction)
    region = spread(region_value(terms, *pooled_stats(tp, psum, count, *pool)), prep.batch_size)
    return _reduced(prep, value + region if terms.coef else region, reduction)


def _reduced(prep: Prepared, per_row: Tensor, reduction: str | None) -> Tensor:
    return per_row if reduction is None else reduce(prep.unfold(per_row), reduction)
