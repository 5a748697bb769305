// Reference negacyclic NTT, written for clarity rather than performance.
//
// Textbook in-place transforms over Z_q[X]/(X^n + 1) (Longa & Naehrig 2016, "Speeding up
// the Number Theoretic Transform for Faster Ideal Lattice-Based Cryptography", Alg. 1 and
// 2): Cooley-Tukey forward with natural-order input and bit-reversed output; Gentleman-
// Sande inverse undoing it stage by stage. Every product is reduced by a 128-bit division,
// every sum and difference fully into [0, q). The optimised tiers are tested against this.
#include "he_native/ntt.hpp"
#include "modarith.hpp"

namespace he_native {

using detail::mul_mod_slow;
using detail::u64;

namespace {
u64 add_mod(u64 x, u64 y, u64 q) { return (x + y) % q; }        // x, y < q < 2^62
u64 sub_mod(u64 x, u64 y, u64 q) { return (x + q - y) % q; }
}  // namespace

void forward_ntt_reference(u64* a, const NTTTables& t) {
    const u64 n = t.n;
    const u64 q = t.q;
    // Stage with m groups of butterflies at distance len = n / (2m); group i uses
    // psi^bitrev(m + i), which folds the negacyclic twist psi^j into the transform.
    for (u64 m = 1, len = n / 2; m < n; m *= 2, len /= 2) {
        for (u64 i = 0; i < m; ++i) {
            const u64 w = t.root_powers[m + i];
            for (u64 j = 2 * i * len; j < 2 * i * len + len; ++j) {
                const u64 x = a[j];
                const u64 wy = mul_mod_slow(w, a[j + len], q);
                a[j] = add_mod(x, wy, q);
                a[j + len] = sub_mod(x, wy, q);
            }
        }
    }
}

void inverse_ntt_reference(u64* a, const NTTTables& t) {
    const u64 n = t.n;
    const u64 q = t.q;
    u64 root_index = 1;  // inv_root_powers is stored in consumption order
    for (u64 h = n / 2, len = 1; h >= 1; h /= 2, len *= 2) {
        for (u64 i = 0; i < h; ++i) {
            const u64 w = t.inv_root_powers[root_index++];  // psi^-bitrev(h + i)
            for (u64 j = 2 * i * len; j < 2 * i * len + len; ++j) {
                const u64 x = a[j];
                const u64 y = a[j + len];
                a[j] = add_mod(x, y, q);
                a[j + len] = mul_mod_slow(sub_mod(x, y, q), w, q);
            }
        }
    }
    // Each stage doubled the values; divide by n once at the end.
    for (u64 j = 0; j < n; ++j) a[j] = mul_mod_slow(a[j], t.n_inv, q);
}

}  // namespace he_native
