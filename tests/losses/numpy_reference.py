"""An independent float64 NumPy re-derivation of every loss, written from the conventions of docs/losses.md.

Deliberately naive: one-hot targets, explicit per-class loops, FP computed as Σ p·(1-g) directly
(the library computes Σ p - TP and never builds a one-hot tensor).
"""

from __future__ import annotations

import numpy as np


def probs(x: np.ndarray, kind: str = "logits") -> np.ndarray:
    """(B, C, N) -> (B, K, N) probabilities."""
    if kind == "probs":
        p = x if x.shape[1] > 1 else np.concatenate([1 - x, x], axis=1)
        return p
    if x.shape[1] == 1:
        s = 1.0 / (1.0 + np.exp(-x))
        return np.concatenate([1 - s, s], axis=1)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def onehot(labels: np.ndarray, k: int, ignore_index=None) -> tuple[np.ndarray, np.ndarray]:
    """labels (B, N) -> one-hot (B, K, N), valid mask (B, N)."""
    valid = np.ones(labels.shape) if ignore_index is None else (labels != ignore_index).astype(float)
    g = np.zeros((labels.shape[0], k, labels.shape[1]))
    for c in range(k):
        g[:, c] = (labels == c) * valid
    return g, valid


def roles(k, background=0, rare=None):
    rare = [c for c in range(k) if c != background] if rare is None else list(rare)
    other = [c for c in range(k) if c != background and c not in rare]
    return background, rare, other


def stats(p, g, valid, batch=False):
    v = valid[:, None, :]
    tp = (p * g * v).sum(-1)
    fp = (p * (1 - g) * v).sum(-1)
    fn = ((1 - p) * g * v).sum(-1)
    if batch:
        tp, fp, fn = tp.sum(0, keepdims=True), fp.sum(0, keepdims=True), fn.sum(0, keepdims=True)
    return tp, fp, fn


def vec(v, k):
    return np.full(k, float(v)) if np.isscalar(v) else np.asarray(v, dtype=float)


def dist(p, g, valid, w, gam):
    """Per-sample mean over valid positions of Σ_c w_c (1-p_c)^γ_c (-g_c log p_c)."""
    b, k, _ = p.shape
    out = np.zeros(b)
    for i in range(b):
        tot = 0.0
        for c in range(k):
            tot += (w[c] * (1 - p[i, c]) ** gam[c] * (-g[i, c] * np.log(p[i, c])) * valid[i]).sum()
        out[i] = tot / max(valid[i].sum(), 1)
    return out


def region(ti, e, b):
    r = np.mean((1 - ti) ** e[None, :], axis=1)
    return np.broadcast_to(r, (b,)) if r.shape[0] == 1 else r


def loss(name: str, x: np.ndarray, labels: np.ndarray, params: dict, common: dict) -> float:
    """Mean-reduced loss ``name`` for logits x (B, C, *sp) and integer labels (B, *sp)."""
    b = x.shape[0]
    xf = x.reshape(b, x.shape[1], -1)
    p = probs(xf)
    k = p.shape[1]
    g, valid = onehot(labels.reshape(b, -1), k, common.get("ignore_index"))
    bg, rare, other = roles(k, common.get("background", 0), common.get("rare_classes"))
    s = common.get("smooth", 1e-6)
    batch = common.get("batch", False)
    tp, fp, fn = stats(p, g, valid, batch)

    def ti(fp_w, fn_w):
        return (tp + s) / (tp + fn_w * fn + fp_w * fp + s)

    def by_role(vb, vr, vo):
        v = np.full(k, float(vo))
        v[rare] = vr
        v[bg] = vb
        return v

    def delta_w(d):
        d = vec(d, k)
        w = 1 - d
        w[rare] = d[rare]
        return w

    zeros = np.zeros(k)
    if name == "cross_entropy":
        w = np.ones(k) if params.get("weight") is None else vec(params["weight"], k)
        per = dist(p, g, valid, w, zeros)
    elif name == "focal":
        a = params.get("alpha", 0.25)
        w = np.ones(k) if a is None else (by_role(1 - a, a, 1 - a) if np.isscalar(a) else vec(a, k))
        per = dist(p, g, valid, w, vec(params.get("gamma", 2.0), k))
    elif name in ("dice", "tversky", "focal_tversky"):
        a, bt = (0.5, 0.5) if name == "dice" else (params.get("alpha", 0.3), params.get("beta", 0.7))
        e = 1.0 / params.get("gamma", 4 / 3) if name == "focal_tversky" else 1.0
        per = region(ti(a, bt), vec(e, k), b)
    elif name in ("asymmetric_focal", "symmetric_focal", "asymmetric_focal_tversky", "symmetric_focal_tversky",
                  "unified_focal", "symmetric_unified_focal"):
        d, gm = params.get("delta", 0.6), params.get("gamma", 0.2)
        lam = params.get("lambda_", 0.5)
        sym = name.startswith("symmetric")
        gam_f = vec(gm, k) if sym else by_role(gm, 0.0, 0.0)
        e = vec(1 - gm, k) if sym else by_role(1.0, 1 - gm, 1.0)
        dv = vec(d, k)
        f = dist(p, g, valid, delta_w(d), gam_f)
        t = region(ti(1 - dv, dv), e, b)
        per = {"asymmetric_focal": f, "symmetric_focal": f, "asymmetric_focal_tversky": t,
               "symmetric_focal_tversky": t}.get(name)
        if per is None:
            per = lam * f + (1 - lam) * t
    elif name == "combo":
        a, bt = params.get("alpha", 0.5), params.get("beta", 0.5)
        w = np.ones(k) if bt is None else by_role(1 - bt, bt, 1 - bt)
        ce = dist(p, g, valid, w, zeros)
        dsc = np.broadcast_to(ti(0.5, 0.5).mean(1), (b,))
        per = a * ce - (1 - a) * dsc
    elif name == "hybrid_focal":
        lam = params.get("lambda_", 0.5)
        lf = loss("focal", x, labels, {"alpha": params.get("focal_alpha", 0.25),
                                       "gamma": params.get("focal_gamma", 2.0)}, common)
        lft = loss("focal_tversky", x, labels, {"alpha": params.get("tversky_alpha", 0.3),
                                                "beta": params.get("tversky_beta", 0.7),
                                                "gamma": params.get("tversky_gamma", 4 / 3)}, common)
        return lam * lf + (1 - lam) * lft
    else:
        raise KeyError(name)
    return float(np.mean(per))
