// Deterministic primality test for 64-bit integers and NTT-friendly prime search.
#include <stdexcept>
#include <string>

#include "he_native/ntt.hpp"
#include "modarith.hpp"

namespace he_native {
namespace {

using detail::mul_mod_slow;
using detail::pow_mod;
using detail::u64;

/// The first twelve primes. Miller-Rabin with these bases is deterministic for every
/// n < 3.3 * 10^24 > 2^64 (Sorenson & Webster 2015, psi_12), so no 64-bit composite
/// passes all of them.
constexpr u64 kWitnesses[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};

/// One strong-probable-prime round: n odd > 2, n - 1 = d * 2^s with d odd, a in [2, n-2].
bool strong_probable_prime(u64 n, u64 d, unsigned s, u64 a) {
    u64 x = pow_mod(a, d, n);
    if (x == 1 || x == n - 1) return true;
    for (unsigned r = 1; r < s; ++r) {
        x = mul_mod_slow(x, x, n);
        if (x == n - 1) return true;
    }
    return false;
}

}  // namespace

bool is_prime_u64(u64 n) {
    if (n < 2) return false;
    // Trial division by the witnesses also settles every n <= 37 and every n divisible by
    // a witness, which guarantees each remaining base a satisfies 2 <= a <= n - 2.
    for (u64 p : kWitnesses) {
        if (n % p == 0) return n == p;
    }
    u64 d = n - 1;
    unsigned s = 0;
    while ((d & 1) == 0) {
        d >>= 1;
        ++s;
    }
    for (u64 a : kWitnesses) {
        if (!strong_probable_prime(n, d, s, a)) return false;
    }
    return true;
}

std::vector<u64> find_ntt_primes(unsigned bits, u64 n, std::size_t count) {
    if (n < kMinN || n > kMaxN || (n & (n - 1)) != 0) {
        throw std::invalid_argument("n must be a power of two in [2, 65536]; got " +
                                    std::to_string(n));
    }
    unsigned log_n = 0;
    while ((u64{1} << log_n) < n) ++log_n;
    // The largest candidate 2^bits - 2n + 1 has `bits` bits only if 2n <= 2^(bits-1).
    const unsigned min_bits = log_n + 2;
    if (bits < min_bits || bits > kMaxModulusBits) {
        throw std::invalid_argument("bits must be in [" + std::to_string(min_bits) +
                                    ", 62] for n = " + std::to_string(n) + "; got " +
                                    std::to_string(bits));
    }
    constexpr std::size_t kMaxCount = 65536;
    if (count < 1 || count > kMaxCount) {
        throw std::invalid_argument("count must be in [1, 65536]; got " + std::to_string(count));
    }
    // Candidates q = k * 2n + 1 with 2^(bits-1) <= q < 2^bits, largest first. 2n divides
    // 2^bits, so the largest is 2^bits - 2n + 1.
    const u64 step = 2 * n;
    const u64 lower = u64{1} << (bits - 1);
    std::vector<u64> primes;
    primes.reserve(count);
    for (u64 q = (u64{1} << bits) - step + 1; q >= lower && primes.size() < count; q -= step) {
        if (is_prime_u64(q)) primes.push_back(q);
    }
    if (primes.size() < count) {
        throw std::invalid_argument(
            "count must be at most the number of " + std::to_string(bits) +
            "-bit primes q == 1 mod " + std::to_string(step) + ", which is " +
            std::to_string(primes.size()) + "; got " + std::to_string(count) +
            " (use more bits or a smaller n)");
    }
    return primes;
}

}  // namespace he_native
