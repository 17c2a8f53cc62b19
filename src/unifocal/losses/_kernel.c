/* unifocal's fused CPU kernel: the loss family on logits with integer labels, float32.
 *
 * Built on first use by unifocal.losses._kernel with the system C compiler and loaded with ctypes
 * (docs/losses.md, "The CPU kernel"). The work is cut into chunks of at most `chunk` positions of one
 * row (chunk ci covers row ci / per_row); each entry point takes a range [c0, c1) of chunks, so that
 * chunks can run on several threads and the per-chunk sums are added in a fixed order whatever the
 * number of threads.
 *
 *   uf_forward:  with class weights and exponents wg = [w_0..w_{K-1}, g_0..g_{K-1}],
 *                per position the softmax p, log p_t, the distribution term
 *                f = v w_t (1 - p_t)^g_t (-log p_t) and its logit-gradient coefficient
 *                c = v p_t f'(p_t) = v w_t (1 - p_t)^g_t (g_t p_t log p_t / (1 - p_t) - 1);
 *                per chunk the sums [sum f, TP_c, sum_n v p_c, sum_n v [t = c]] (c = 0..K-1), then the
 *                input checks [sum x * 0 (NaN if a logit is not finite), min t, max t].
 *   uf_backward: the logit gradient
 *                grad_j = p_j (v A_j - S - k c) + [t = j] (v p_t B_t + k c),
 *                S = v (sum_c p_c A_c + p_t B_t),
 *                with per row [k, A_0..A_{K-1}, B_0..B_{K-1}] in `coeffs`: k the factor of c,
 *                A = dL/d(sum P) and B = dL/dTP per class (read only with regions_on);
 *                the softmax is recomputed (nothing of size K x N is kept between the two calls).
 *
 * v is the valid-position mask (1 where absent). 1 - p_t is the sum of the other probabilities (no
 * cancellation) and log p_t = (x_t - m) - log(sum_c e^{x_c - m}) (exact for any finite logits).
 * exp and log are Cephes' single-precision polynomials (about 1 ulp), written so that the loops over
 * positions vectorise without -ffast-math; sums are taken per block of BLK positions in float and
 * accumulated in double.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLK 256
#define FLT_TINY 1.17549435e-38f
#define SERIES_CUTOFF 1e-4f

static inline float as_float(int32_t i) {
    float f;
    __builtin_memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t as_int(float f) {
    int32_t i;
    __builtin_memcpy(&i, &f, sizeof i);
    return i;
}

/* e^x for x <= 88, flushed to e^-87.3 below that (a softmax term under 1e-38); NaN stays NaN. */
static inline float v_exp(float x0) {
    float x = x0 > -87.3f ? x0 : -87.3f; /* NaN -> -87.3: no undefined conversion below */
    x = x < 88.0f ? x : 88.0f;
    /* round to the nearest integer: adding and removing 1.5 * 2^23 (round-to-nearest mode) */
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    int32_t k = (int32_t)kf;
    float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float y = p * as_float((int32_t)((uint32_t)(k + 127) << 23));
    return x0 == x0 ? y : x0;
}

/* log x for a positive normal x. */
static inline float v_log(float x) {
    int32_t xi = as_int(x);
    int32_t e = ((xi >> 23) & 0xff) - 126;
    float m = as_float((xi & 0x007fffff) | 0x3f000000);
    int32_t small = m < 0.70710678118654752f;
    e -= small;
    m = small ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    float fe = (float)e;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    return m + y + 0.693359375f * fe;
}

/* The softmax of one block: m = max_c x_c, E[c] = e^{x_c - m}, s_t = e^{x_t - m}, so = the sum of
 * the others, xt = x_t - m; labels as int32. */
static void block_softmax(const float *restrict x, const int64_t *restrict t, int64_t N, int64_t K,
                          int64_t L, float *restrict E, int32_t *restrict ti, float *restrict m,
                          float *restrict st, float *restrict so, float *restrict xt) {
    for (int64_t i = 0; i < L; i++) {
        ti[i] = (int32_t)t[i];
        m[i] = x[i];
        st[i] = 0.0f;
        so[i] = 0.0f;
        xt[i] = 0.0f;
    }
    for (int64_t c = 1; c < K; c++) {
        const float *restrict xc = x + c * N;
        for (int64_t i = 0; i < L; i++) m[i] = xc[i] > m[i] ? xc[i] : m[i];
    }
    for (int64_t c = 0; c < K; c++) {
        const float *restrict xc = x + c * N;
        float *restrict ec = E + c * BLK;
        int32_t cc = (int32_t)c;
#pragma omp simd
        for (int64_t i = 0; i < L; i++) {
            float d = xc[i] - m[i];
            float e = v_exp(d);
            ec[i] = e;
            int32_t hit = ti[i] == cc; /* selects, not products: 0 * -inf (a logit 1e38 below the
                                          largest) would be NaN */
            st[i] = hit ? e : st[i];
            xt[i] = hit ? d : xt[i];
            so[i] = hit ? so[i] : so[i] + e;
        }
    }
}

static void row_chunk(int64_t ci, int64_t N, int64_t chunk, int64_t *b, int64_t *n0, int64_t *n1) {
    int64_t per_row = (N + chunk - 1) / chunk;
    *b = ci / per_row;
    *n0 = (ci % per_row) * chunk;
    *n1 = *n0 + chunk < N ? *n0 + chunk : N;
}

/* Two classes: everything is a function of a = +-(x_1 - x_0), the logit difference signed towards the
 * target: with e = e^{-|a|}, p_t = 1 / (1 + e) or e / (1 + e), q = 1 - p_t the other one,
 * log p_t = min(a, 0) - log(1 + e) and log q = log p_t - a, exactly; one exp and one log per position
 * instead of the general path's three and two. */
static void binary_prologue(const float *restrict xb, const int64_t *restrict tb, const float *restrict vb,
                            int64_t N, int64_t L, int32_t *restrict ti, float *restrict a, float *restrict ee,
                            float *restrict pt, float *restrict q, float *restrict vv) {
#pragma omp simd
    for (int64_t i = 0; i < L; i++) {
        int32_t t1 = (int32_t)tb[i];
        ti[i] = t1;
        float z = xb[N + i] - xb[i];
        float ai = t1 == 1 ? z : -z;
        float e = v_exp(ai < 0.0f ? ai : -ai);
        float inv = 1.0f / (1.0f + e);
        a[i] = ai;
        ee[i] = e;
        pt[i] = ai >= 0.0f ? inv : e * inv;
        q[i] = ai >= 0.0f ? e * inv : inv;
    }
    if (vb)
        for (int64_t i = 0; i < L; i++) vv[i] = vb[i];
    else
        for (int64_t i = 0; i < L; i++) vv[i] = 1.0f;
}

static void binary_forward(const float *xb, const int64_t *tb, const float *vb, int64_t N, int64_t L,
                           const float *w, const float *g, int32_t coef_on, int32_t regions_on, double *acc,
                           float *restrict co, float *buf) {
    int32_t *ti = (int32_t *)buf;
    float *a = buf + BLK, *ee = a + BLK, *pt = ee + BLK, *q = pt + BLK, *vv = q + BLK;
    binary_prologue(xb, tb, vb, N, L, ti, a, ee, pt, q, vv);
    if (coef_on) {
        float w0 = w[0], w1 = w[1], g0 = g[0], g1 = g[1];
        float fsum = 0.0f;
#pragma omp simd reduction(+ : fsum)
        for (int64_t i = 0; i < L; i++) {
            float ai = a[i], p = pt[i], qi = q[i];
            /* log(1 + e) = log(u) e / (u - 1) with u = 1 + e rounded (Goldberg) */
            float e = ee[i];
            float u = 1.0f + e;
            float um1 = u - 1.0f;
            float l1p = um1 == 0.0f ? e : v_log(u) * (e / um1);
            float lp = (ai < 0.0f ? ai : 0.0f) - l1p;
            int32_t one = ti[i] == 1;
            float wt = one ? w1 : w0, gm = one ? g1 : g0;
            float mod = gm != 0.0f ? v_exp(gm * (lp - ai)) : 1.0f;
            float ratio = qi < SERIES_CUTOFF ? -(1.0f + qi * (0.5f + qi * (1.0f / 3.0f))) : lp / qi;
            float c = vv[i] * wt * mod;
            fsum += -c * lp;
            co[i] = c * (gm * p * ratio - 1.0f);
        }
        acc[0] += (double)fsum;
    }
    if (regions_on) {
        float tp0 = 0.0f, tp1 = 0.0f, ps0 = 0.0f, ps1 = 0.0f, cn0 = 0.0f, cn1 = 0.0f;
#pragma omp simd reduction(+ : tp0, tp1, ps0, ps1, cn0, cn1)
        for (int64_t i = 0; i < L; i++) {
            int32_t one = ti[i] == 1;
            float v = vv[i], pv = pt[i] * v, qv = q[i] * v;
            float p1 = one ? pv : qv, p0 = one ? qv : pv;
            ps0 += p0;
            ps1 += p1;
            tp0 += one ? 0.0f : p0;
            tp1 += one ? p1 : 0.0f;
            cn0 += one ? 0.0f : v;
            cn1 += one ? v : 0.0f;
        }
        acc[1] += (double)tp0;
        acc[2] += (double)tp1;
        acc[3] += (double)ps0;
        acc[4] += (double)ps1;
        acc[5] += (double)cn0;
        acc[6] += (double)cn1;
    }
}

/* The gradient at the target is q (v p_t (A_t - A_o + B_t) + k c) (o the other class), at the other class
 * its negative (a softmax gradient sums to zero over the classes). */
static void binary_backward(const float *xb, const int64_t *tb, const float *vb, int64_t N, int64_t L,
                            const float *restrict cb, float k, const float *Ab, const float *Bb,
                            float *restrict g0, float *restrict g1, float *buf) {
    int32_t *ti = (int32_t *)buf;
    float *a = buf + BLK, *ee = a + BLK, *pt = ee + BLK, *q = pt + BLK, *vv = q + BLK;
    binary_prologue(xb, tb, vb, N, L, ti, a, ee, pt, q, vv);
    float a0 = Ab ? Ab[0] : 0.0f, a1 = Ab ? Ab[1] : 0.0f, b0 = Ab ? Bb[0] : 0.0f, b1 = Ab ? Bb[1] : 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < L; i++) {
        int32_t one = ti[i] == 1;
        float r = one ? a1 - a0 + b1 : a0 - a1 + b0;
        float kc = cb ? k * cb[i] : 0.0f;
        float tg = q[i] * (vv[i] * pt[i] * r + kc);
        g0[i] = one ? -tg : tg;
        g1[i] = one ? tg : -tg;
    }
}

int uf_forward(const float *x, const int64_t *t, const float *valid, int64_t B, int64_t K, int64_t N,
               const float *wg, int32_t coef_on, int32_t regions_on, int64_t chunk, int64_t c0, int64_t c1,
               double *partial, float *cout) {
    (void)B;
    const float *w = wg, *g = wg + K;
    float *buf = (float *)malloc(sizeof(float) * (size_t)(K * BLK + 12 * BLK));
    if (!buf) return 1;
    float *E = buf, *m = E + K * BLK, *st = m + BLK, *so = st + BLK, *xt = so + BLK, *wt = xt + BLK;
    float *gt = wt + BLK, *inv = gt + BLK, *vv = inv + BLK;
    int32_t *ti = (int32_t *)(vv + BLK);
    const int64_t S = 4 + 3 * K;
    for (int64_t ci = c0; ci < c1; ci++) {
        int64_t b, n0, n1;
        row_chunk(ci, N, chunk, &b, &n0, &n1);
        double *acc = partial + ci * S;
        for (int64_t j = 0; j < S; j++) acc[j] = 0.0;
        int64_t lo = t[b * N + n0], hi = lo;
        for (int64_t n = n0; n < n1; n += BLK) {
            int64_t L = n1 - n < BLK ? n1 - n : BLK;
            const float *xb = x + b * K * N + n;
            const int64_t *tb = t + b * N + n;
            /* the input checks: x * 0 is NaN for a NaN or infinite logit; the smallest and largest label */
            float bad = 0.0f;
            for (int64_t c = 0; c < K; c++) {
                const float *restrict xc = xb + c * N;
#pragma omp simd reduction(+ : bad)
                for (int64_t i = 0; i < L; i++) bad += xc[i] * 0.0f;
            }
            acc[S - 3] += (double)bad;
#pragma omp simd reduction(min : lo) reduction(max : hi)
            for (int64_t i = 0; i < L; i++) {
                lo = tb[i] < lo ? tb[i] : lo;
                hi = tb[i] > hi ? tb[i] : hi;
            }
            if (K == 2) {
                binary_forward(xb, tb, valid ? valid + b * N + n : NULL, N, L, w, g, coef_on, regions_on, acc,
                               coef_on ? cout + b * N + n : NULL, buf);
                continue;
            }
            block_softmax(xb, tb, N, K, L, E, ti, m, st, so, xt);
            for (int64_t i = 0; i < L; i++) {
                float s = st[i] + so[i];
                inv[i] = 1.0f / s;
                vv[i] = valid ? valid[b * N + n + i] : 1.0f;
            }
            if (coef_on) {
                for (int64_t i = 0; i < L; i++) {
                    wt[i] = w[0];
                    gt[i] = g[0];
                }
                for (int64_t c = 1; c < K; c++) {
                    float wc = w[c], gc = g[c];
                    int32_t cc = (int32_t)c;
                    for (int64_t i = 0; i < L; i++) {
                        int32_t hit = ti[i] == cc;
                        wt[i] = hit ? wc : wt[i];
                        gt[i] = hit ? gc : gt[i];
                    }
                }
                float fsum = 0.0f;
                float *restrict co = cout + b * N + n;
#pragma omp simd reduction(+ : fsum)
                for (int64_t i = 0; i < L; i++) {
                    float s = st[i] + so[i];
                    float p = st[i] * inv[i];
                    float q = so[i] * inv[i];
                    q = q < FLT_TINY ? FLT_TINY : q;
                    /* log s = log(1 + (s - 1)); when p_t is the largest probability (e_t = 1) the addend is
                       the sum of the others, and log(1 + y) = log(u) y / (u - 1) with u = 1 + y rounded keeps
                       its relative precision (Goldberg); otherwise y / (u - 1) = 1 */
                    float y = st[i] == 1.0f ? so[i] : s - 1.0f;
                    float um1 = s - 1.0f;
                    float ls = um1 == 0.0f ? y : v_log(s) * (y / um1);
                    float lp = xt[i] - ls;
                    float gm = gt[i];
                    float mod = gm != 0.0f ? v_exp(gm * v_log(q)) : 1.0f;
                    float ratio = q < SERIES_CUTOFF ? -(1.0f + q * (0.5f + q * (1.0f / 3.0f))) : lp / q;
                    float a = vv[i] * wt[i] * mod;
                    fsum += -a * lp;
                    co[i] = a * (gm * p * ratio - 1.0f);
                }
                acc[0] += (double)fsum;
            }
            if (regions_on) {
                for (int64_t c = 0; c < K; c++) {
                    const float *restrict ec = E + c * BLK;
                    int32_t cc = (int32_t)c;
                    float tp = 0.0f, ps = 0.0f, cn = 0.0f;
#pragma omp simd reduction(+ : tp, ps, cn)
                    for (int64_t i = 0; i < L; i++) {
                        float pv = ec[i] * inv[i] * vv[i];
                        int32_t hit = ti[i] == cc;
                        ps += pv;
                        tp += hit ? pv : 0.0f;
                        cn += hit ? vv[i] : 0.0f;
                    }
                    acc[1 + c] += (double)tp;
                    acc[1 + K + c] += (double)ps;
                    acc[1 + 2 * K + c] += (double)cn;
                }
            }
        }
        acc[S - 2] = (double)lo;
        acc[S - 1] = (double)hi;
    }
    free(buf);
    return 0;
}

int uf_backward(const float *x, const int64_t *t, const float *valid, int64_t B, int64_t K, int64_t N,
                const float *cin, const float *coeffs, int32_t regions_on, int64_t chunk, int64_t c0,
                int64_t c1, float *grad) {
    (void)B;
    float *buf = (float *)malloc(sizeof(float) * (size_t)(K * BLK + 14 * BLK));
    if (!buf) return 1;
    float *E = buf, *m = E + K * BLK, *st = m + BLK, *so = st + BLK, *xt = so + BLK, *inv = xt + BLK;
    float *u = inv + BLK, *uo = u + BLK, *at = uo + BLK, *bt = at + BLK, *vv = bt + BLK, *tg = vv + BLK;
    int32_t *ti = (int32_t *)(tg + BLK);
    for (int64_t ci = c0; ci < c1; ci++) {
        int64_t b, n0, n1;
        row_chunk(ci, N, chunk, &b, &n0, &n1);
        const float *row = coeffs + b * (1 + 2 * K);
        const float *Ab = regions_on ? row + 1 : NULL, *Bb = row + 1 + K;
        float k = row[0];
        for (int64_t n = n0; n < n1; n += BLK) {
            int64_t L = n1 - n < BLK ? n1 - n : BLK;
            const float *xb = x + b * K * N + n;
            if (K == 2) {
                binary_backward(xb, t + b * N + n, valid ? valid + b * N + n : NULL, N, L,
                                cin ? cin + b * N + n : NULL, k, Ab, Bb, grad + b * K * N + n,
                                grad + b * K * N + N + n, buf);
                continue;
            }
            block_softmax(xb, t + b * N + n, N, K, L, E, ti, m, st, so, xt);
            for (int64_t i = 0; i < L; i++) {
                inv[i] = 1.0f / (st[i] + so[i]);
                vv[i] = valid ? valid[b * N + n + i] : 1.0f;
                u[i] = 0.0f;
                uo[i] = 0.0f;
                at[i] = 0.0f;
                bt[i] = 0.0f;
            }
            if (Ab) {
                /* u = sum_c e_c A_c, uo = the same over c != t, at = A_t, bt = B_t */
                for (int64_t c = 0; c < K; c++) {
                    const float *restrict ec = E + c * BLK;
                    float ac = Ab[c], bc = Bb[c];
                    int32_t cc = (int32_t)c;
                    for (int64_t i = 0; i < L; i++) {
                        int32_t hit = ti[i] == cc;
                        float ea = ec[i] * ac;
                        u[i] += ea;
                        uo[i] += hit ? 0.0f : ea;
                        at[i] = hit ? ac : at[i];
                        bt[i] = hit ? bc : bt[i];
                    }
                }
            }
            /* u := S + k c with S = v (sum_c p_c A_c + p_t B_t); the target class's gradient in the form
               p_t v (A_t q - sum_{c != t} p_c A_c + B_t q) + k c q with q = 1 - p_t as the sum of the
               others, which keeps its relative precision where p_t is near 1 */
            const float *restrict cb = cin ? cin + b * N + n : NULL;
            for (int64_t i = 0; i < L; i++) {
                float pt = st[i] * inv[i];
                float q = so[i] * inv[i];
                float kc = cb ? k * cb[i] : 0.0f;
                u[i] = vv[i] * (u[i] * inv[i] + pt * bt[i]) + kc;
                tg[i] = pt * vv[i] * ((at[i] + bt[i]) * q - uo[i] * inv[i]) + kc * q;
            }
            for (int64_t c = 0; c < K; c++) {
                const float *restrict ec = E + c * BLK;
                float *restrict gc = grad + b * K * N + c * N + n;
                float ac = Ab ? Ab[c] : 0.0f;
                int32_t cc = (int32_t)c;
                for (int64_t i = 0; i < L; i++) {
                    float gv = ec[i] * inv[i] * (vv[i] * ac - u[i]);
                    gc[i] = ti[i] == cc ? tg[i] : gv;
                }
            }
        }
    }
    free(buf);
    return 0;
}
