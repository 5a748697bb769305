// AVX-512F scan for range_check.cpp (compiled with -mavx512f only).
//
// max(a[0..n)) < q  <=>  every a[i] < q. Four independent vpmaxuq accumulators
// hide the instruction latency, so the loop runs at the load rate (two 64-byte
// loads per cycle from L1), about 4x the scalar early-exit scan. There is no
// early exit: valid input, the case that matters for speed, is read to the end
// anyway.
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positive inside <immintrin.h> (_mm512_undefined_epi32(); GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include "he_native/ntt.hpp"

namespace he_native {

bool all_below_avx512(const std::uint64_t* a, std::size_t n, std::uint64_t q) {
    __m512i m0 = _mm512_setzero_si512(), m1 = m0, m2 = m0, m3 = m0;
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_epu64(m0, _mm512_loadu_si512(a + i));
        m1 = _mm512_max_epu64(m1, _mm512_loadu_si512(a + i + 8));
        m2 = _mm512_max_epu64(m2, _mm512_loadu_si512(a + i + 16));
        m3 = _mm512_max_epu64(m3, _mm512_loadu_si512(a + i + 24));
    }
    for (; i + 8 <= n; i += 8) m0 = _mm512_max_epu64(m0, _mm512_loadu_si512(a + i));
    if (i < n) {
        // the last n - i < 8 elements; masked-off lanes read nothing and count as 0
        const __mmask8 tail = static_cast<__mmask8>((1u << (n - i)) - 1);
        m1 = _mm512_max_epu64(m1, _mm512_maskz_loadu_epi64(tail, a + i));
    }
    const __m512i m = _mm512_max_epu64(_mm512_max_epu64(m0, m1), _mm512_max_epu64(m2, m3));
    return _mm512_cmpge_epu64_mask(m, _mm512_set1_epi64(static_cast<long long>(q))) == 0;
}

}  // namespace he_native
