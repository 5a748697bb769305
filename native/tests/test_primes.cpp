// Deterministic Miller-Rabin and the NTT-friendly prime search.
#include <algorithm>

#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::find_ntt_primes;
using he_native::is_prime_u64;

HE_TEST(agrees_with_sieve_below_2_20) {
    const std::size_t limit = 1 << 20;
    std::vector<bool> composite(limit, false);
    composite[0] = composite[1] = true;
    for (std::size_t p = 2; p * p < limit; ++p) {
        if (!composite[p]) {
            for (std::size_t k = p * p; k < limit; k += p) composite[k] = true;
        }
    }
    long bad = 0;
    for (std::size_t k = 0; k < limit; ++k) bad += is_prime_u64(k) == composite[k];
    HE_CHECK_EQ(bad, 0L);
}

HE_TEST(known_large_primes) {
    for (u64 p : {2147483647ULL,               // 2^31 - 1
                  4294967291ULL,               // largest 32-bit prime
                  2305843009213693951ULL,      // 2^61 - 1
                  0xffffffffffc0001ULL,        // SEAL/HEXL test prime
                  18446744073709551557ULL,     // largest 64-bit prime, 2^64 - 59
                  1000000000000000003ULL}) {
        HE_CHECK(is_prime_u64(p));
    }
}

HE_TEST(strong_pseudoprimes_and_carmichael_numbers_are_composite) {
    for (u64 c : {
             2047ULL,                  // strong pseudoprime to base 2
             1373653ULL,               // to bases 2, 3
             25326001ULL,              // to bases 2, 3, 5
             3215031751ULL,            // to bases 2, 3, 5, 7
             2152302898747ULL,         // to bases 2..11
             3474749660383ULL,         // to bases 2..13
             341550071728321ULL,       // to bases 2..17
             3825123056546413051ULL,   // to bases 2..23 (also 2..31 fail only at 37)
             561ULL, 1105ULL, 1729ULL, 2465ULL, 2821ULL, 6601ULL, 8911ULL,  // Carmichael
             9999109081ULL,            // Carmichael
             4611686014132420609ULL,   // (2^31 - 1)^2
             18446744030759878681ULL,  // 4294967291^2, a square near 2^64
             18446743979220271189ULL,  // 4294967279 * 4294967291
             18446744073709551615ULL,  // 2^64 - 1
             0ULL, 1ULL, 4ULL, 1ULL << 62}) {
        HE_CHECK(!is_prime_u64(c));
    }
}

HE_TEST(find_ntt_primes_properties) {
    for (u64 n : {2ULL, 1024ULL, 8192ULL, 65536ULL}) {
        for (unsigned bits : {30u, 40u, 50u, 60u, 62u}) {
            const std::size_t count = 5;
            const auto primes = find_ntt_primes(bits, n, count);
            HE_REQUIRE(primes.size() == count);
            for (std::size_t i = 0; i < count; ++i) {
                const u64 q = primes[i];
                HE_CHECK(is_prime_u64(q));
                HE_CHECK_EQ(q % (2 * n), 1ULL);
                HE_CHECK(q >= (u64{1} << (bits - 1)) && q < (u64{1} << bits));  // exactly `bits` bits
                if (i > 0) HE_CHECK(q < primes[i - 1]);  // distinct, largest first
            }
            // no admissible prime was skipped: every candidate above the last is listed
            for (u64 c = (u64{1} << bits) - 2 * n + 1; c > primes.back(); c -= 2 * n) {
                if (is_prime_u64(c)) HE_CHECK(std::find(primes.begin(), primes.end(), c) != primes.end());
            }
        }
    }
    // well-known NTT primes: 12289 = 3 * 2^12 + 1 is the largest 14-bit prime == 1 mod 2048
    HE_CHECK_EQ(find_ntt_primes(14, 1024, 1).at(0), 12289ULL);
    // the smallest admissible width has the single candidate 2n + 1
    HE_CHECK((find_ntt_primes(3, 2, 1) == std::vector<u64>{5}));
    HE_CHECK((find_ntt_primes(5, 8, 1) == std::vector<u64>{17}));
}

HE_TEST(find_ntt_primes_rejects_bad_arguments) {
    using std::invalid_argument;
    HE_CHECK_THROWS(find_ntt_primes(40, 3, 1), invalid_argument, "n must be a power of two");
    HE_CHECK_THROWS(find_ntt_primes(40, 131072, 1), invalid_argument, "got 131072");
    HE_CHECK_THROWS(find_ntt_primes(63, 1024, 1), invalid_argument, "bits must be in [12, 62]");
    HE_CHECK_THROWS(find_ntt_primes(11, 1024, 1), invalid_argument, "got 11");
    HE_CHECK_THROWS(find_ntt_primes(40, 1024, 70000), invalid_argument, "count must be in [1, 65536]");
    HE_CHECK_THROWS(find_ntt_primes(40, 1024, 0), invalid_argument, "count must be in [1, 65536]; got 0");
    // 11 bits for n = 512 (only candidate 1025 = 5^2 * 41): none exists
    HE_CHECK_THROWS(find_ntt_primes(11, 512, 1), invalid_argument, "which is 0; got 1");
    // 14-bit candidates == 1 mod 2048: 14337 = 3^5 * 59, 12289 (prime), 10241 = 7^2 * 11 * 19,
    // 8193 = 3 * 2731 -> exactly one prime
    HE_CHECK_THROWS(find_ntt_primes(14, 1024, 2), invalid_argument, "which is 1; got 2");
}
