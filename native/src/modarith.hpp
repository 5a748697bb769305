// Private modular-arithmetic helpers shared by the he_native sources (not installed).
//
// Every helper states its input and output range. q is always < 2^62, so 4q fits in a
// 64-bit word; that headroom is what the lazy (Harvey) butterflies rely on.
#pragma once

#include <algorithm>
#include <cstdint>

namespace he_native::detail {

using u64 = std::uint64_t;
using u128 = unsigned __int128;

/// High 64 bits of the 128-bit product a*b.
inline u64 mul_hi(u64 a, u64 b) { return static_cast<u64>((static_cast<u128>(a) * b) >> 64); }

/// a*b mod q by 128-bit division. Any a, b < 2^64; q > 0. Slow and obviously right:
/// used by the reference tier, table construction and prime testing only.
inline u64 mul_mod_slow(u64 a, u64 b, u64 q) {
    return static_cast<u64>((static_cast<u128>(a) * b) % q);
}

/// base^exp mod q (square and multiply). q > 0.
inline u64 pow_mod(u64 base, u64 exp, u64 q) {
    u64 result = 1 % q;
    base %= q;
    while (exp != 0) {
        if (exp & 1) result = mul_mod_slow(result, base, q);
        base = mul_mod_slow(base, base, q);
        exp >>= 1;
    }
    return result;
}

/// Inverse of a mod prime q (Fermat). a in [1, q).
inline u64 inv_mod_prime(u64 a, u64 q) { return pow_mod(a, q - 2, q); }

/// Shoup companion of w: floor(w * 2^64 / q). Requires w < q.
inline u64 shoup_companion(u64 w, u64 q) {
    return static_cast<u64>((static_cast<u128>(w) << 64) / q);
}

/// Shoup multiplication (V. Shoup, NTL; Harvey 2014, Alg. 2): w*y mod q up to one q,
/// i.e. result in [0, 2q) and congruent to w*y. y: any 64-bit value; w < q;
/// w_shoup = shoup_companion(w, q); q < 2^63.
inline u64 mul_shoup_lazy(u64 y, u64 w, u64 w_shoup, u64 q) {
    const u64 quot = mul_hi(y, w_shoup);
    return y * w - quot * q;  // exact result < 2q, so the wrap-around mod 2^64 cancels
}

/// x - m if x >= m, else x. As an unsigned minimum (when x < m, x - m wraps around to a
/// value above x) GCC reliably emits cmp + cmov; the ternary form was sometimes compiled to
/// a data-dependent branch, which mispredicts half the time on uniform data.
inline u64 sub_if_ge(u64 x, u64 m) { return std::min(x, x - m); }

/// Barrett constant floor(2^128 / q) as (hi, lo) words; q >= 2, not a power of two
/// (true for every odd prime), so the quotient fits in 128 bits.
struct Barrett128 {
    u64 hi = 0;
    u64 lo = 0;
    explicit Barrett128(u64 q) {
        // 2^128 / q = (2^128 - 1) / q when q does not divide 2^128 (q odd, q > 1).
        const u128 r = ~static_cast<u128>(0) / q;
        hi = static_cast<u64>(r >> 64);
        lo = static_cast<u64>(r);
    }
};

/// a*b mod q by Barrett reduction of the 128-bit product. a, b < q < 2^62; result in [0, q).
/// The quotient estimate floor(z * floor(2^128/q) / 2^128) is at most one below floor(z/q)
/// because z < 2^128, so a single conditional subtraction finishes the reduction.
inline u64 mul_mod_barrett(u64 a, u64 b, u64 q, const Barrett128& r) {
    const u128 z = static_cast<u128>(a) * b;
    const u64 z0 = static_cast<u64>(z);
    const u64 z1 = static_cast<u64>(z >> 64);
    // floor(z * r / 2^128) = z1*r1 + floor((z0*r1 + z1*r0 + hi(z0*r0)) / 2^64)
    const u128 mid = static_cast<u128>(z0) * r.hi + static_cast<u128>(z1) * r.lo + mul_hi(z0, r.lo);
    const u64 quot = z1 * r.hi + static_cast<u64>(mid >> 64);
    return sub_if_ge(z0 - quot * q, q);
}

/// Bit reversal of x over `bits` bits.
inline u64 bit_reverse(u64 x, unsigned bits) {
    u64 r = 0;
    for (unsigned i = 0; i < bits; ++i) {
        r = (r << 1) | (x & 1);
        x >>= 1;
    }
    return r;
}

}  // namespace he_native::detail
