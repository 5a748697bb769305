// Input range check of the public entry points: is every coefficient below its modulus?
//
// The bindings run this on every call (always-on input validation, as SEAL and HEXL do
// for user data), so it sits on the hot path: a plain early-exit scan costs 10-25% of an
// IFMA transform at n = 4096. The AVX-512 scan (range_check_avx512.cpp) answers the
// common "all in range" case with one max-reduction; only a failing row is rescanned
// here to locate the first offender for the error message.
#include <algorithm>

#include "he_native/ntt.hpp"

namespace he_native {

std::size_t find_first_not_below_scalar(const std::uint64_t* a, std::size_t n, std::uint64_t q) {
    return static_cast<std::size_t>(std::find_if(a, a + n, [q](std::uint64_t x) { return x >= q; }) - a);
}

namespace {

/// AVX-512F compiled in && the CPU / OS have it && not switched off by
/// HE_ML_DISABLE_AVX512 (the kill switch of all 64-bit-lane AVX-512 code). Read once.
bool use_avx512_scan() {
#if defined(HE_NATIVE_HAVE_AVX512)
    static const bool use = [] {
        const CPUFeatures& f = cpu_features();
        return f.avx512f && f.os_avx512 && !tier_disabled_by_env(NTTTier::AVX512);
    }();
    return use;
#else
    return false;
#endif
}

}  // namespace

bool range_check_uses_avx512() { return use_avx512_scan(); }

std::size_t find_first_not_below(const std::uint64_t* a, std::size_t n, std::uint64_t q) {
#if defined(HE_NATIVE_HAVE_AVX512)
    if (use_avx512_scan()) {
        if (all_below_avx512(a, n, q)) return n;
        // rare path (the caller is about to raise): locate the offender exactly
    }
#endif
    return find_first_not_below_scalar(a, n, q);
}

}  // namespace he_native
