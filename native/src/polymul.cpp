// Element-wise products mod q and negacyclic polynomial multiplication through the NTT.
#include <vector>

#include "he_native/ntt.hpp"
#include "modarith.hpp"

namespace he_native {

using detail::u64;

void pointwise_mul_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
    const detail::Barrett128 ratio(q);
    for (std::size_t i = 0; i < n; ++i) out[i] = detail::mul_mod_barrett(a[i], b[i], q, ratio);
}

void polymul_negacyclic(const u64* a, const u64* b, u64* out, std::size_t n, u64 q,
                        NTTTier tier) {
    const NTTTablesPtr tables = get_ntt_tables(n, q);  // held for the whole product
    polymul_negacyclic(a, b, out, *tables, tier);
}

void polymul_negacyclic(const u64* a, const u64* b, u64* out, const NTTTables& t, NTTTier tier) {
    const std::size_t n = t.n;
    const u64 q = t.q;
    // Per-thread scratch for the transform of b, grown on demand and reused across calls.
    thread_local std::vector<u64> scratch;
    if (scratch.size() < n) scratch.resize(n);
    u64* b_hat = scratch.data();
    // Out-of-place transforms: the copies ride on the kernels' first pass (AVX-512 tiers).
    forward_ntt(b, b_hat, t, tier);  // b first: out may alias b
    forward_ntt(a, out, t, tier);    // a == out is the in-place form
    // In the NTT domain the negacyclic product is the element-wise product (both operands
    // are in the same bit-reversed order, which the inverse transform expects).
    pointwise_mul_mod(out, b_hat, out, n, q);
    inverse_ntt(out, t, tier);
}

}  // namespace he_native
