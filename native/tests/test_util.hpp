// Test-only helpers shared by the he_native C++ tests: slow, obviously-correct maths.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "he_native/ntt.hpp"

namespace he_test {

using u64 = std::uint64_t;
using u128 = unsigned __int128;

inline u64 slow_mul_mod(u64 a, u64 b, u64 q) { return static_cast<u64>((u128)a * b % q); }

inline u64 slow_pow_mod(u64 b, u64 e, u64 q) {
    u64 r = 1 % q;
    b %= q;
    for (; e != 0; e >>= 1) {
        if (e & 1) r = slow_mul_mod(r, b, q);
        b = slow_mul_mod(b, b, q);
    }
    return r;
}

inline u64 slow_bit_reverse(u64 x, unsigned bits) {
    u64 r = 0;
    for (unsigned i = 0; i < bits; ++i) r |= ((x >> i) & 1) << (bits - 1 - i);
    return r;
}

inline unsigned log2_of(u64 n) {
    unsigned k = 0;
    while ((u64{1} << k) < n) ++k;
    return k;
}

/// O(n^2) negacyclic product: c = a * b mod (X^n + 1, q), 128-bit accumulation per term.
inline std::vector<u64> schoolbook_negacyclic(const std::vector<u64>& a, const std::vector<u64>& b,
                                              u64 q) {
    const std::size_t n = a.size();
    std::vector<u64> c(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            const u64 p = slow_mul_mod(a[i], b[j], q);
            const std::size_t k = i + j;
            if (k < n) {
                c[k] = static_cast<u64>(((u128)c[k] + p) % q);
            } else {  // X^n = -1
                c[k - n] = static_cast<u64>(((u128)c[k - n] + q - p) % q);
            }
        }
    }
    return c;
}

/// O(n^2) definition of the forward transform (ntt.hpp conventions):
/// A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i).
inline std::vector<u64> direct_forward_ntt(const std::vector<u64>& a, u64 psi, u64 q) {
    const std::size_t n = a.size();
    const unsigned log_n = log2_of(n);
    std::vector<u64> out(n, 0);
    for (std::size_t j = 0; j < n; ++j) {
        const u64 e = 2 * slow_bit_reverse(j, log_n) + 1;
        const u64 step = slow_pow_mod(psi, e, q);
        u64 w = 1, acc = 0;
        for (std::size_t i = 0; i < n; ++i) {
            acc = static_cast<u64>(((u128)acc + slow_mul_mod(a[i], w, q)) % q);
            w = slow_mul_mod(w, step, q);
        }
        out[j] = acc;
    }
    return out;
}

/// Largest NTT-friendly prime of `bits` bits for n, or 0 if none exists.
inline u64 ntt_prime_or_zero(unsigned bits, u64 n) {
    try {
        return he_native::find_ntt_primes(bits, n, 1).at(0);
    } catch (const std::invalid_argument&) {
        return 0;
    }
}

}  // namespace he_test
