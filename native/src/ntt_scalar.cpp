// Optimised portable negacyclic NTT (no SIMD).
//
// D. Harvey, "Faster arithmetic for number-theoretic transforms", J. Symb. Comp. 60 (2014):
// butterflies with Shoup's precomputed-quotient multiplication and lazy reduction.
//   * Forward (Cooley-Tukey, Harvey Alg. 4): values live in [0, 4q) between stages. Each
//     butterfly first brings x into [0, 2q), computes T = w*y mod q only up to [0, 2q)
//     (valid for any 64-bit y) and outputs x + T and x - T + 2q, both in [0, 4q).
//   * Inverse (Gentleman-Sande): values live in [0, 2q). x + y is brought back to [0, 2q);
//     (x - y + 2q) in [0, 4q) is multiplied lazily by w^-1 into [0, 2q).
// Deviations from the paper, all to save passes over memory:
//   * the final correction to [0, q) is fused into the last forward stage;
//   * n^-1 is folded into the last inverse stage (x + y times n^-1, x - y times
//     n^-1 * psi^-bitrev(1)), together with the final correction;
//   * the stages run two at a time (radix-4 blocks of four values sharing three roots), so
//     every value is loaded and stored once per two stages; an odd stage count starts
//     (forward) or ends (inverse) with one radix-2 stage.
// q < 2^62 so that 4q < 2^64.
#include "he_native/ntt.hpp"
#include "modarith.hpp"

namespace he_native {

using detail::mul_shoup_lazy;
using detail::shoup_companion;
using detail::sub_if_ge;
using detail::u64;

namespace {

/// Forward CT butterfly: x, y in [0, 4q) -> x + w*y, x - w*y in [0, 4q) (mod q).
inline void fwd_butterfly(u64& x, u64& y, u64 w, u64 ws, u64 q, u64 two_q) {
    const u64 xr = sub_if_ge(x, two_q);
    const u64 t = mul_shoup_lazy(y, w, ws, q);
    x = xr + t;
    y = xr - t + two_q;
}

/// Inverse GS butterfly: x, y in [0, 2q) -> x + y, (x - y) * w in [0, 2q) (mod q).
inline void inv_butterfly(u64& x, u64& y, u64 w, u64 ws, u64 two_q, u64 q) {
    const u64 sum = sub_if_ge(x + y, two_q);
    const u64 diff = x - y + two_q;
    x = sum;
    y = mul_shoup_lazy(diff, w, ws, q);
}

/// [0, 4q) -> [0, q).
inline u64 reduce_4q(u64 x, u64 q, u64 two_q) { return sub_if_ge(sub_if_ge(x, two_q), q); }

/// One forward stage with m groups at distance len (radix-2).
void forward_stage_radix2(u64* a, u64 m, u64 len, const u64* w, const u64* ws, u64 q) {
    const u64 two_q = 2 * q;
    for (u64 i = 0; i < m; ++i) {
        u64* __restrict x = a + 2 * i * len;
        u64* __restrict y = x + len;
        const u64 wi = w[m + i];
        const u64 wsi = ws[m + i];
        for (u64 j = 0; j < len; ++j) fwd_butterfly(x[j], y[j], wi, wsi, q, two_q);
    }
}

/// Forward stages m and 2m fused (len = distance of stage m, len >= 4). Block i holds
/// a[2 i len .. 2 (i+1) len); stage m pairs its halves with root w[m + i], stage 2m then
/// pairs the quarters within each half with w[2m + 2i] and w[2m + 2i + 1].
void forward_stages_radix4(u64* a, u64 m, u64 len, const u64* w, const u64* ws, u64 q) {
    const u64 two_q = 2 * q;
    const u64 quarter = len / 2;
    for (u64 i = 0; i < m; ++i) {
        u64* __restrict a0 = a + 2 * i * len;
        u64* __restrict a1 = a0 + quarter;
        u64* __restrict a2 = a1 + quarter;
        u64* __restrict a3 = a2 + quarter;
        const u64 w1 = w[m + i], ws1 = ws[m + i];
        const u64 w2 = w[2 * m + 2 * i], ws2 = ws[2 * m + 2 * i];
        const u64 w3 = w[2 * m + 2 * i + 1], ws3 = ws[2 * m + 2 * i + 1];
        for (u64 j = 0; j < quarter; ++j) {
            u64 x0 = a0[j], x1 = a1[j], x2 = a2[j], x3 = a3[j];
            fwd_butterfly(x0, x2, w1, ws1, q, two_q);
            fwd_butterfly(x1, x3, w1, ws1, q, two_q);
            fwd_butterfly(x0, x1, w2, ws2, q, two_q);
            fwd_butterfly(x2, x3, w3, ws3, q, two_q);
            a0[j] = x0;
            a1[j] = x1;
            a2[j] = x2;
            a3[j] = x3;
        }
    }
}

/// The last two forward stages (m = n/4 and n/2; distances 2 and 1) on blocks of four
/// consecutive values, with the final correction to [0, q) fused in.
void forward_last_two_stages(u64* a, u64 n, const u64* w, const u64* ws, u64 q) {
    const u64 two_q = 2 * q;
    const u64 m = n / 4;
    for (u64 i = 0; i < m; ++i) {
        u64* __restrict b = a + 4 * i;
        u64 x0 = b[0], x1 = b[1], x2 = b[2], x3 = b[3];
        fwd_butterfly(x0, x2, w[m + i], ws[m + i], q, two_q);
        fwd_butterfly(x1, x3, w[m + i], ws[m + i], q, two_q);
        fwd_butterfly(x0, x1, w[2 * m + 2 * i], ws[2 * m + 2 * i], q, two_q);
        fwd_butterfly(x2, x3, w[2 * m + 2 * i + 1], ws[2 * m + 2 * i + 1], q, two_q);
        b[0] = reduce_4q(x0, q, two_q);
        b[1] = reduce_4q(x1, q, two_q);
        b[2] = reduce_4q(x2, q, two_q);
        b[3] = reduce_4q(x3, q, two_q);
    }
}

/// Inverse stage with h groups at distance len (radix-2), roots from `idx` on.
void inverse_stage_radix2(u64* a, u64 h, u64 len, const u64* w, const u64* ws, u64 idx, u64 q) {
    const u64 two_q = 2 * q;
    for (u64 i = 0; i < h; ++i) {
        u64* __restrict x = a + 2 * i * len;
        u64* __restrict y = x + len;
        const u64 wi = w[idx + i];
        const u64 wsi = ws[idx + i];
        for (u64 j = 0; j < len; ++j) inv_butterfly(x[j], y[j], wi, wsi, two_q, q);
    }
}

/// Inverse stages h (distance len) and h/2 (distance 2 len) fused; roots of stage h start
/// at idx, those of stage h/2 at idx + h. Block i of stage h/2 covers four quarters of
/// length len: stage h pairs (0,1) with root 2i and (2,3) with root 2i+1, stage h/2 pairs
/// (0,2) and (1,3) with root i.
void inverse_stages_radix4(u64* a, u64 h, u64 len, const u64* w, const u64* ws, u64 idx,
                           u64 q) {
    const u64 two_q = 2 * q;
    const u64 blocks = h / 2;
    for (u64 i = 0; i < blocks; ++i) {
        u64* __restrict a0 = a + 4 * i * len;
        u64* __restrict a1 = a0 + len;
        u64* __restrict a2 = a1 + len;
        u64* __restrict a3 = a2 + len;
        const u64 w1 = w[idx + 2 * i], ws1 = ws[idx + 2 * i];
        const u64 w2 = w[idx + 2 * i + 1], ws2 = ws[idx + 2 * i + 1];
        const u64 w3 = w[idx + h + i], ws3 = ws[idx + h + i];
        for (u64 j = 0; j < len; ++j) {
            u64 x0 = a0[j], x1 = a1[j], x2 = a2[j], x3 = a3[j];
            inv_butterfly(x0, x1, w1, ws1, two_q, q);
            inv_butterfly(x2, x3, w2, ws2, two_q, q);
            inv_butterfly(x0, x2, w3, ws3, two_q, q);
            inv_butterfly(x1, x3, w3, ws3, two_q, q);
            a0[j] = x0;
            a1[j] = x1;
            a2[j] = x2;
            a3[j] = x3;
        }
    }
}

/// The first two inverse stages (h = n/2, n/4; distances 1 and 2) on blocks of four
/// consecutive values. Input in [0, 2q) (in particular [0, q)).
void inverse_first_two_stages(u64* a, u64 n, const u64* w, const u64* ws, u64 q) {
    const u64 two_q = 2 * q;
    const u64 h = n / 2;
    for (u64 i = 0; i < h / 2; ++i) {
        u64* __restrict b = a + 4 * i;
        u64 x0 = b[0], x1 = b[1], x2 = b[2], x3 = b[3];
        inv_butterfly(x0, x1, w[1 + 2 * i], ws[1 + 2 * i], two_q, q);
        inv_butterfly(x2, x3, w[2 + 2 * i], ws[2 + 2 * i], two_q, q);
        inv_butterfly(x0, x2, w[1 + h + i], ws[1 + h + i], two_q, q);
        inv_butterfly(x1, x3, w[1 + h + i], ws[1 + h + i], two_q, q);
        b[0] = x0;
        b[1] = x1;
        b[2] = x2;
        b[3] = x3;
    }
}

/// Last inverse stage (h = 1, distance n/2) with n^-1 folded in and the result in [0, q).
void inverse_last_stage(u64* a, const NTTTables& t) {
    const u64 q = t.q;
    const u64 two_q = 2 * q;
    const u64 half = t.n / 2;
    const u64 n_inv = t.n_inv;
    const u64 n_inv_s = t.n_inv_shoup;
    // n^-1 * psi^-bitrev(1): the single root of this stage, pre-multiplied by n^-1.
    const u64 w = detail::mul_mod_slow(t.inv_root_powers[t.n - 1], n_inv, q);
    const u64 w_s = shoup_companion(w, q);
    u64* __restrict x = a;
    u64* __restrict y = a + half;
    for (u64 j = 0; j < half; ++j) {
        const u64 xj = x[j];
        const u64 yj = y[j];
        x[j] = sub_if_ge(mul_shoup_lazy(xj + yj, n_inv, n_inv_s, q), q);
        y[j] = sub_if_ge(mul_shoup_lazy(xj - yj + two_q, w, w_s, q), q);
    }
}

}  // namespace

void forward_ntt_scalar(u64* a, const NTTTables& t) {
    const u64 n = t.n;
    const u64 q = t.q;
    const u64* w = t.root_powers.data();
    const u64* ws = t.root_powers_shoup.data();
    if (n == 2) {
        const u64 two_q = 2 * q;
        fwd_butterfly(a[0], a[1], w[1], ws[1], q, two_q);
        a[0] = reduce_4q(a[0], q, two_q);
        a[1] = reduce_4q(a[1], q, two_q);
        return;
    }
    // Stages m = 1, 2, ..., n/2 (log n of them); the last two are fused with the final
    // correction, the rest are taken two at a time after an optional single stage.
    u64 m = 1;
    u64 len = n / 2;
    if (t.log_n % 2 == 1) {
        forward_stage_radix2(a, m, len, w, ws, q);
        m *= 2;
        len /= 2;
    }
    for (; len > 2; m *= 4, len /= 4) forward_stages_radix4(a, m, len, w, ws, q);
    forward_last_two_stages(a, n, w, ws, q);
}

void inverse_ntt_scalar(u64* a, const NTTTables& t) {
    const u64 n = t.n;
    const u64 q = t.q;
    const u64* w = t.inv_root_powers.data();
    const u64* ws = t.inv_root_powers_shoup.data();
    // Stages h = n/2, ..., 2 precede the final h = 1 stage. The first two are done on
    // consecutive blocks of four, the rest two at a time, an odd one out radix-2.
    if (n == 4) inverse_stage_radix2(a, 2, 1, w, ws, 1, q);
    if (n <= 4) {
        inverse_last_stage(a, t);
        return;
    }
    inverse_first_two_stages(a, n, w, ws, q);
    u64 h = n / 8;
    u64 len = 4;
    u64 idx = 1 + n / 2 + n / 4;  // roots consumed so far: 1 + n/2 + n/4
    for (; h >= 4; h /= 4, len *= 4) {
        inverse_stages_radix4(a, h, len, w, ws, idx, q);
        idx += h + h / 2;
    }
    if (h == 2) {
        inverse_stage_radix2(a, h, len, w, ws, idx, q);
    }
    inverse_last_stage(a, t);
}

}  // namespace he_native
