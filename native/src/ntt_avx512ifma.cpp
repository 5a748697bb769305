// he_native: AVX-512 IFMA negacyclic NTT for q < 2^50.
//
// Butterflies are Harvey's lazy ones (D. Harvey, "Faster arithmetic for
// number-theoretic transforms", J. Symb. Comp. 60, 2014, Alg. 4 and its
// Gentleman-Sande dual) with Shoup's multiplication carried out in 52-bit
// lanes by vpmadd52luq / vpmadd52huq:
//
//     W' = floor(W * 2^52 / q),  Q = floor(W' * Y / 2^52)         (madd52hi)
//     T  = W*Y - Q*q in [0, 2q)  for every Y < 2^52
//        = (lo52(W*Y) + lo52(Q * (2^52 - q))) mod 2^52            (2 x madd52lo, and)
//
// because W*Y/q - Q < Y/2^52 + 1 < 2. Values stay below 4q < 2^52 between
// layers, so every multiplier input fits the 52-bit IFMA operand. A vector of
// 8 forward butterflies is 8 instructions (the additions ride on the IFMA
// accumulators, see fwd_bf), an inverse one 9; on Sapphire Rapids IFMA issues
// on the same two ports as vector add/sub, so that count is the cost.
//
// Deviations from Intel HEXL's layout (same arithmetic family): two layers per
// memory pass (radix-4) for strides >= 16, and the four smallest strides in one
// register-resident pass whose lane layouts make every root a broadcast load
// (see ntt_avx512_tables.hpp), so no replicated root tables exist.
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

/// Butterfly policy of the IFMA tier (see ntt_avx512_tables.hpp for the
/// interface the pass skeletons expect).
class IfmaOps {
public:
    struct Root {
        __m512i w;   ///< root, < q
        __m512i wp;  ///< floor(w * 2^52 / q)
    };

    IfmaOps(const AVX512Tables& tb, bool inverse)
        : w_(inverse ? tb.inv_w.data() : tb.fwd_w.data()),
          wp_(inverse ? tb.inv_w52.data() : tb.fwd_w52.data()),
          q_(_mm512_set1_epi64(static_cast<long long>(tb.q))),
          q2_(_mm512_set1_epi64(static_cast<long long>(2 * tb.q))),
          neg_q_(_mm512_set1_epi64(static_cast<long long>((std::uint64_t{1} << 52) - tb.q))),
          mask52_(_mm512_set1_epi64(static_cast<long long>((std::uint64_t{1} << 52) - 1))),
          two_(_mm512_set1_epi64(2)),
          n_inv_{_mm512_set1_epi64(static_cast<long long>(tb.n_inv)),
                 _mm512_set1_epi64(static_cast<long long>(tb.n_inv52))},
          w1_n_inv_{_mm512_set1_epi64(static_cast<long long>(tb.inv_w1_n_inv)),
                    _mm512_set1_epi64(static_cast<long long>(tb.inv_w1_n_inv52))} {}

    // Roots of the direction chosen at construction.
    HE_AVX512_INLINE Root root_bcast(std::uint64_t k) const {
        return {_mm512_set1_epi64(static_cast<long long>(w_[k])),
                _mm512_set1_epi64(static_cast<long long>(wp_[k]))};
    }
    HE_AVX512_INLINE Root root_x2(std::uint64_t k) const {
        return {_mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w_ + k))),
                _mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wp_ + k)))};
    }
    HE_AVX512_INLINE Root root_x4(std::uint64_t k) const {
        return {_mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w_ + k))),
                _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp_ + k)))};
    }
    HE_AVX512_INLINE Root root_x8(std::uint64_t k) const {
        return {_mm512_loadu_si512(w_ + k), _mm512_loadu_si512(wp_ + k)};
    }

    /// W * Y mod q in [0, 2q), for Y < 2^52 (Shoup, 52-bit).
    HE_AVX512_INLINE __m512i mul_lazy(__m512i y, const Root& r) const {
        const __m512i zero = _mm512_setzero_si512();
        const __m512i quot = _mm512_madd52hi_epu64(zero, r.wp, y);
        __m512i t = _mm512_madd52lo_epu64(zero, r.w, y);
        t = _mm512_madd52lo_epu64(t, quot, neg_q_);
        return _mm512_and_si512(t, mask52_);
    }

    /// [0, 2 bound) -> [0, bound) by one conditional subtraction (x - bound wraps
    /// to a huge value exactly when x < bound, so the unsigned min picks x then).
    HE_AVX512_INLINE static __m512i reduce_once(__m512i x, __m512i bound) {
        return _mm512_min_epu64(x, _mm512_sub_epi64(x, bound));
    }

    /// Cooley-Tukey: (X, Y) -> (X + WY, X - WY); inputs and outputs in [0, 4q).
    /// The additions ride on the IFMA accumulators: with X in [0, 2q),
    ///   X' = (X + lo52(W*Y) + lo52(Q*(2^52 - q))) mod 2^52 = X + T    (X + T < 4q < 2^52)
    ///   Y' = (2q + lo52(2*X)) - X' = X + 2q - T
    /// so the butterfly is 8 vector instructions (sub, min, 5 IFMA/and, sub).
    HE_AVX512_INLINE void fwd_bf(__m512i& x, __m512i& y, const Root& r) const {
        x = reduce_once(x, q2_);
        fwd_bf_first(x, y, r);
    }

    /// fwd_bf without the reduction of X, for X already in [0, 2q) (the first
    /// layer, whose inputs are canonical).
    HE_AVX512_INLINE void fwd_bf_first(__m512i& x, __m512i& y, const Root& r) const {
        const __m512i quot = _mm512_madd52hi_epu64(_mm512_setzero_si512(), r.wp, y);
        const __m512i twice_x_plus_2q = _mm512_madd52lo_epu64(q2_, x, two_);
        __m512i sum = _mm512_madd52lo_epu64(x, r.w, y);
        sum = _mm512_and_si512(_mm512_madd52lo_epu64(sum, quot, neg_q_), mask52_);
        y = _mm512_sub_epi64(twice_x_plus_2q, sum);
        x = sum;
    }

    /// Gentleman-Sande: (X, Y) -> (X + Y, (X - Y) W); inputs and outputs in [0, 2q).
    HE_AVX512_INLINE void inv_bf(__m512i& x, __m512i& y, const Root& r) const {
        const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, q2_), y);  // (0, 4q)
        x = reduce_once(_mm512_add_epi64(x, y), q2_);
        y = mul_lazy(d, r);
    }

    /// inv_bf for X, Y in [0, q) (the first layer): X + Y < 2q needs no reduction.
    HE_AVX512_INLINE void inv_bf_first(__m512i& x, __m512i& y, const Root& r) const {
        const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, q_), y);  // (0, 2q)
        x = _mm512_add_epi64(x, y);
        y = mul_lazy(d, r);
    }

    /// Last inverse layer (m = 1) with n^-1 folded in: outputs in [0, q).
    HE_AVX512_INLINE void inv_bf_last(__m512i& x, __m512i& y) const {
        const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, q2_), y);  // (0, 4q)
        const __m512i s = _mm512_add_epi64(x, y);                         // [0, 4q)
        x = reduce_once(mul_lazy(s, n_inv_), q_);
        y = reduce_once(mul_lazy(d, w1_n_inv_), q_);
    }

    /// Forward outputs [0, 4q) -> [0, q).
    HE_AVX512_INLINE __m512i reduce_out(__m512i x) const {
        return reduce_once(reduce_once(x, q2_), q_);
    }

private:
    const std::uint64_t* w_;
    const std::uint64_t* wp_;
    __m512i q_, q2_, neg_q_, mask52_, two_;
    Root n_inv_, w1_n_inv_;
};

/// The kernels' precondition, checked once per call (cheap next to a transform):
/// the lazy ranges need 4q < 2^52.
void check_modulus(const NTTTables& t) {
    if (t.q >= avx512_detail::kIfmaModulusBound) {
        throw std::invalid_argument("avx512ifma NTT: modulus q must be below 2^50; got q = " +
                                    std::to_string(t.q) + "; use the avx512 or scalar tier");
    }
}

}  // namespace

void forward_ntt_avx512ifma(const std::uint64_t* in, std::uint64_t* a, const NTTTables& t) {
    check_modulus(t);
    std::unique_ptr<AVX512Tables> scratch;
    const AVX512Tables& tb = avx512_detail::avx512_tables_for(t, scratch);
    if (tb.n < 16) {
        if (in != a) std::memcpy(a, in, tb.n * sizeof(std::uint64_t));
        avx512_detail::forward_ntt_small(a, tb);
        return;
    }
    const IfmaOps ops(tb, /*inverse=*/false);
    avx512_detail::forward_ntt_passes(a, in, tb.n, tb.log_n, ops);
}

void inverse_ntt_avx512ifma(const std::uint64_t* in, std::uint64_t* a, const NTTTables& t) {
    check_modulus(t);
    std::unique_ptr<AVX512Tables> scratch;
    const AVX512Tables& tb = avx512_detail::avx512_tables_for(t, scratch);
    if (tb.n < 16) {
        if (in != a) std::memcpy(a, in, tb.n * sizeof(std::uint64_t));
        avx512_detail::inverse_ntt_small(a, tb);
        return;
    }
    const IfmaOps ops(tb, /*inverse=*/true);
    avx512_detail::inverse_ntt_passes(a, in, tb.n, tb.log_n, ops);
}

void forward_ntt_avx512ifma(std::uint64_t* a, const NTTTables& t) { forward_ntt_avx512ifma(a, a, t); }

void inverse_ntt_avx512ifma(std::uint64_t* a, const NTTTables& t) { inverse_ntt_avx512ifma(a, a, t); }

}  // namespace he_native
