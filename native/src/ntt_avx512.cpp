// he_native: AVX-512 negacyclic NTT in 64-bit lanes for any q < 2^62.
//
// Same pass structure as the IFMA tier (ntt_avx512_tables.hpp); only the
// modular multiplication differs. It is Shoup's product with W' =
// floor(W * 2^64 / q):
//
//     Q = floor(W' * Y / 2^64),   T = W*Y - Q*q  in [0, 2q)   (mod 2^64)
//
// AVX-512 has no 64x64 -> high-64 multiply, so Q is estimated from three
// 32x32 -> 64 vpmuludq products (the low halves of each lane are used as is,
// the high halves are moved down with a 32-bit shuffle), which under-estimates
// it by at most 2 and widens T to [0, 4q) (see Avx512Ops for how the lazy
// ranges absorb that); the two low products W*Y and Q*q are single vpmullq
// instructions (AVX-512DQ). Only AVX-512F/DQ instructions are used, so this
// tier runs on every AVX-512 CPU (HEXL uses a similar approximate quotient).
//
// Cost per vector of 8 butterflies: 20 instructions, of which each vpmullq is
// 3 uops; about 2.3x the IFMA butterfly on Sapphire Rapids.
#include "ntt_avx512_tables.hpp"  // first: it silences a GCC false positive in <immintrin.h>

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "he_native/ntt.hpp"

namespace he_native {
namespace {

using avx512_detail::AVX512Tables;

/// Move the high 32 bits of every 64-bit lane into its low 32 bits (the high
/// half is left holding the old low half; vpmuludq ignores it).
HE_AVX512_INLINE __m512i high_halves(__m512i x) { return _mm512_shuffle_epi32(x, _MM_PERM_CDAB); }

/// Butterfly policy of the 64-bit tier (interface in ntt_avx512_tables.hpp).
///
/// The quotient is approximated from three of the four 32x32 partial products
/// (the low x low product and the carries out of the two middle products are
/// dropped), Q' in [Q - 2, Q], so the Shoup remainder T = W*Y - Q'*q lies in
/// [0, 4q) instead of [0, 2q). That costs 5 fewer instructions than the exact
/// high product; the wider T is absorbed in one of two ways:
///   kWideRanges (q < 2^61, so 8q <= 2^64): lazy ranges twice as wide as Harvey's —
///     forward values in [0, 8q), inverse values in [0, 4q) — and T is used as is;
///   otherwise (2^61 <= q < 2^62): T is reduced to [0, 2q) and Harvey's ranges
///     ([0, 4q) forward, [0, 2q) inverse) are kept.
template <bool kWideRanges>
class Avx512Ops {
public:
    struct Root {
        __m512i w;     ///< root, < q
        __m512i wp;    ///< W' = floor(w * 2^64 / q)
        __m512i wp_h;  ///< W' >> 32 in the low half of each lane
    };

    Avx512Ops(const AVX512Tables& tb, bool inverse)
        : w_(inverse ? tb.inv_w.data() : tb.fwd_w.data()),
          wp_(inverse ? tb.inv_w64.data() : tb.fwd_w64.data()),
          q_(_mm512_set1_epi64(static_cast<long long>(tb.q))),
          q2_(_mm512_set1_epi64(static_cast<long long>(2 * tb.q))),
          q4_(_mm512_set1_epi64(static_cast<long long>(4 * tb.q))),
          n_inv_(bcast(tb.n_inv, tb.n_inv64)),
          w1_n_inv_(bcast(tb.inv_w1_n_inv, tb.inv_w1_n_inv64)) {}

    HE_AVX512_INLINE Root root_bcast(std::uint64_t k) const { return bcast(w_[k], wp_[k]); }
    HE_AVX512_INLINE Root root_x2(std::uint64_t k) const {
        const __m512i wp = _mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wp_ + k)));
        return {_mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w_ + k))), wp,
                high_halves(wp)};
    }
    HE_AVX512_INLINE Root root_x4(std::uint64_t k) const {
        const __m512i wp = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp_ + k)));
        return {_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_ + k))), wp,
                high_halves(wp)};
    }
    HE_AVX512_INLINE Root root_x8(std::uint64_t k) const {
        const __m512i wp = _mm512_loadu_si512(wp_ + k);
        return {_mm512_loadu_si512(w_ + k), wp, high_halves(wp)};
    }

    /// Q' = y_h*w_h + (y_h*w_l >> 32) + (y_l*w_h >> 32), an under-estimate of
    /// Q = floor(Y * W' / 2^64) with Q - 2 <= Q' <= Q: the parts dropped from
    /// Y * W' (y_l*w_l and the low halves of the two middle products, shifted)
    /// sum to less than 3 * 2^64.
    HE_AVX512_INLINE static __m512i mulhi_approx(__m512i y, const Root& r) {
        const __m512i y_h = high_halves(y);
        const __m512i hl = _mm512_mul_epu32(y_h, r.wp);
        const __m512i lh = _mm512_mul_epu32(y, r.wp_h);
        const __m512i hh = _mm512_mul_epu32(y_h, r.wp_h);
        return _mm512_add_epi64(_mm512_add_epi64(hh, _mm512_srli_epi64(hl, 32)), _mm512_srli_epi64(lh, 32));
    }

    /// W * Y mod q for any 64-bit Y: in [0, 4q) if kWideRanges, else in [0, 2q).
    HE_AVX512_INLINE __m512i mul_lazy(__m512i y, const Root& r) const {
        const __m512i quot = mulhi_approx(y, r);
        const __m512i t = _mm512_sub_epi64(_mm512_mullo_epi64(r.w, y), _mm512_mullo_epi64(quot, q_));
        if constexpr (kWideRanges) {
            return t;
        } else {
            return reduce_once(t, q2_);
        }
    }

    /// [0, 2 bound) -> [0, bound) by one conditional subtraction (x - bound wraps
    /// to a huge value exactly when x < bound, so the unsigned min picks x then).
    HE_AVX512_INLINE static __m512i reduce_once(__m512i x, __m512i bound) {
        return _mm512_min_epu64(x, _mm512_sub_epi64(x, bound));
    }

    /// Cooley-Tukey: (X, Y) -> (X + WY, X - WY); with B = 4q (kWideRanges) or 2q,
    /// inputs and outputs in [0, 2B), T in [0, B).
    HE_AVX512_INLINE void fwd_bf(__m512i& x, __m512i& y, const Root& r) const {
        x = reduce_once(x, kWideRanges ? q4_ : q2_);
        fwd_bf_first(x, y, r);
    }

    /// fwd_bf for X already below B (the first layer, X in [0, q)): no reduction of X.
    HE_AVX512_INLINE void fwd_bf_first(__m512i& x, __m512i& y, const Root& r) const {
        const __m512i b = kWideRanges ? q4_ : q2_;
        const __m512i t = mul_lazy(y, r);
        y = _mm512_sub_epi64(_mm512_add_epi64(x, b), t);
        x = _mm512_add_epi64(x, t);
    }

    /// Gentleman-Sande: (X, Y) -> (X + Y, (X - Y) W); inputs and outputs in [0, B).
    HE_AVX512_INLINE void inv_bf(__m512i& x, __m512i& y, const Root& r) const {
        const __m512i b = kWideRanges ? q4_ : q2_;
        const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, b), y);  // (0, 2B)
        x = reduce_once(_mm512_add_epi64(x, y), b);
        y = mul_lazy(d, r);
    }

    /// inv_bf for X, Y in [0, q) (the first layer): X + Y < 2q <= B needs no reduction.
    HE_AVX512_INLINE void inv_bf_first(__m512i& x, __m512i& y, const Root& r) const {
        const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, q_), y);  // (0, 2q)
        x = _mm512_add_epi64(x, y);
        y = mul_lazy(d, r);
    }

    /// Last inverse layer (m = 1) with n^-1 folded in: outputs in [0, q).
    HE_AVX512_INLINE void inv_bf_last(__m512i& x, __m512i& y) const {
        const __m512i b = kWideRanges ? q4_ : q2_;
        const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, b), y);  // (0, 2B)
        const __m512i s = _mm512_add_epi64(x, y);                        // [0, 2B)
        x = to_canonical(mul_lazy(s, n_inv_));
        y = to_canonical(mul_lazy(d, w1_n_inv_));
    }

    /// Forward outputs [0, 2B) -> [0, q).
    HE_AVX512_INLINE __m512i reduce_out(__m512i x) const {
        if constexpr (kWideRanges) x = reduce_once(x, q4_);
        return reduce_once(reduce_once(x, q2_), q_);
    }

private:
    /// A product from mul_lazy, [0, 4q) or [0, 2q), -> [0, q).
    HE_AVX512_INLINE __m512i to_canonical(__m512i x) const {
        if constexpr (kWideRanges) x = reduce_once(x, q2_);
        return reduce_once(x, q_);
    }

    HE_AVX512_INLINE static Root bcast(std::uint64_t w, std::uint64_t wp) {
        return {_mm512_set1_epi64(static_cast<long long>(w)), _mm512_set1_epi64(static_cast<long long>(wp)),
                _mm512_set1_epi64(static_cast<long long>(wp >> 32))};
    }

    const std::uint64_t* w_;
    const std::uint64_t* wp_;
    __m512i q_, q2_, q4_;
    Root n_inv_, w1_n_inv_;
};

/// Moduli below this use the wide lazy ranges (8q must not exceed 2^64).
constexpr std::uint64_t kWideRangeModulusBound = std::uint64_t{1} << 61;

/// The kernels' precondition, checked once per call (cheap next to a transform):
/// the lazy ranges need 4q < 2^64.
void check_modulus(const NTTTables& t) {
    if (t.q >= avx512_detail::kAvx512ModulusBound) {
        throw std::invalid_argument("avx512 NTT: modulus q must be below 2^62; got q = " +
                                    std::to_string(t.q));
    }
}

}  // namespace

void forward_ntt_avx512(const std::uint64_t* in, std::uint64_t* a, const NTTTables& t) {
    check_modulus(t);
    std::unique_ptr<AVX512Tables> scratch;
    const AVX512Tables& tb = avx512_detail::avx512_tables_for(t, scratch);
    if (tb.n < 16) {
        if (in != a) std::memcpy(a, in, tb.n * sizeof(std::uint64_t));
        avx512_detail::forward_ntt_small(a, tb);
        return;
    }
    if (tb.q < kWideRangeModulusBound) {
        avx512_detail::forward_ntt_passes(a, in, tb.n, tb.log_n, Avx512Ops<true>(tb, /*inverse=*/false));
    } else {
        avx512_detail::forward_ntt_passes(a, in, tb.n, tb.log_n, Avx512Ops<false>(tb, /*inverse=*/false));
    }
}

void inverse_ntt_avx512(const std::uint64_t* in, std::uint64_t* a, const NTTTables& t) {
    check_modulus(t);
    std::unique_ptr<AVX512Tables> scratch;
    const AVX512Tables& tb = avx512_detail::avx512_tables_for(t, scratch);
    if (tb.n < 16) {
        if (in != a) std::memcpy(a, in, tb.n * sizeof(std::uint64_t));
        avx512_detail::inverse_ntt_small(a, tb);
        return;
    }
    if (tb.q < kWideRangeModulusBound) {
        avx512_detail::inverse_ntt_passes(a, in, tb.n, tb.log_n, Avx512Ops<true>(tb, /*inverse=*/true));
    } else {
        avx512_detail::inverse_ntt_passes(a, in, tb.n, tb.log_n, Avx512Ops<false>(tb, /*inverse=*/true));
    }
}

void forward_ntt_avx512(std::uint64_t* a, const NTTTables& t) { forward_ntt_avx512(a, a, t); }

void inverse_ntt_avx512(std::uint64_t* a, const NTTTables& t) { inverse_ntt_avx512(a, a, t); }

}  // namespace he_native
