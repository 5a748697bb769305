// Tables: psi is the smallest primitive 2n-th root, documented layouts, Shoup companions,
// caching and thread safety, parameter validation.
#include <stdexcept>
#include <thread>

#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::get_ntt_tables;
using he_native::NTTTables;

namespace {
constexpr u64 kHexlPrime = 0xffffffffffc0001ULL;  // 60-bit prime used by SEAL and HEXL tests
}

HE_TEST(published_root_powers) {
    // Published in Intel HEXL's test/test-ntt.cpp (NTT.Powers) and SEAL's NTTTables tests.
    const NTTTables& t2 = get_ntt_tables(2, kHexlPrime);
    HE_CHECK_EQ(t2.root_powers[0], 1ULL);
    HE_CHECK_EQ(t2.root_powers[1], 288794978602139552ULL);
    const NTTTables& t4 = get_ntt_tables(4, kHexlPrime);
    HE_CHECK_EQ(t4.root_powers[0], 1ULL);
    HE_CHECK_EQ(t4.root_powers[1], 288794978602139552ULL);
    HE_CHECK_EQ(t4.root_powers[2], 178930308976060547ULL);
}

HE_TEST(psi_is_smallest_primitive_root_and_layouts_hold) {
    for (u64 n : {2ULL, 4ULL, 8ULL, 64ULL, 1024ULL, 4096ULL}) {
        for (unsigned bits : {20u, 31u, 45u, 50u, 55u, 60u, 61u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const NTTTables& t = get_ntt_tables(n, q);
            HE_CHECK_EQ(t.n, n);
            HE_CHECK_EQ(t.q, q);
            HE_CHECK_EQ(u64{1} << t.log_n, n);
            // primitive: psi^n = -1 (so its order is exactly 2n)
            HE_REQUIRE(slow_pow_mod(t.psi, n, q) == q - 1);
            // smallest: the primitive 2n-th roots are exactly psi^k for odd k
            u64 smallest = q;
            for (u64 k = 1; k < 2 * n; k += 2) {
                const u64 r = slow_pow_mod(t.psi, k, q);
                if (r < smallest) smallest = r;
            }
            HE_CHECK_EQ(t.psi, smallest);
            HE_CHECK_EQ(slow_mul_mod(t.psi, t.psi_inv, q), 1ULL);
            HE_CHECK_EQ(slow_mul_mod(t.n_inv, n, q), 1ULL);
            HE_CHECK_EQ(t.n_inv_shoup, static_cast<u64>(((u128)t.n_inv << 64) / q));
            HE_REQUIRE(t.root_powers.size() == n && t.inv_root_powers.size() == n);
            HE_REQUIRE(t.root_powers_shoup.size() == n && t.inv_root_powers_shoup.size() == n);
            const unsigned log_n = log2_of(n);
            long bad = 0;
            for (u64 i = 0; i < n; ++i) {
                bad += t.root_powers[i] != slow_pow_mod(t.psi, slow_bit_reverse(i, log_n), q);
                bad += t.root_powers_shoup[i] != static_cast<u64>(((u128)t.root_powers[i] << 64) / q);
                bad += t.inv_root_powers_shoup[i] !=
                       static_cast<u64>(((u128)t.inv_root_powers[i] << 64) / q);
            }
            HE_CHECK_EQ(t.inv_root_powers[0], 1ULL);
            // documented: inv_root_powers[n + 1 - 2h + i] = psi^-bitrev(h + i)
            for (u64 h = n / 2; h >= 1; h /= 2) {
                for (u64 i = 0; i < h; ++i) {
                    const u64 e = slow_bit_reverse(h + i, log_n);
                    const u64 expected = slow_pow_mod(t.psi_inv, e, q);
                    bad += t.inv_root_powers[n + 1 - 2 * h + i] != expected;
                }
            }
            HE_CHECK_EQ(bad, 0L);
        }
    }
}

HE_TEST(cache_returns_stable_references_across_threads) {
    const u64 n = 2048;
    const auto primes = he_native::find_ntt_primes(50, n, 4);
    std::vector<const NTTTables*> seen(8 * primes.size(), nullptr);
    std::vector<std::thread> threads;
    for (int th = 0; th < 8; ++th) {
        threads.emplace_back([&, th] {
            for (std::size_t k = 0; k < primes.size(); ++k) {
                seen[th * primes.size() + k] = &get_ntt_tables(n, primes[k]);
            }
        });
    }
    for (auto& th : threads) th.join();
    for (std::size_t k = 0; k < primes.size(); ++k) {
        const NTTTables* first = &get_ntt_tables(n, primes[k]);
        HE_CHECK_EQ(first->q, primes[k]);
        for (int th = 0; th < 8; ++th) HE_CHECK(seen[th * primes.size() + k] == first);
    }
}

HE_TEST(invalid_parameters_are_rejected_with_clear_messages) {
    using std::invalid_argument;
    HE_CHECK_THROWS(get_ntt_tables(3, 97), invalid_argument, "n must be a power of two in [2, 65536]; got 3");
    HE_CHECK_THROWS(get_ntt_tables(1, 97), invalid_argument, "got 1");
    HE_CHECK_THROWS(get_ntt_tables(0, 97), invalid_argument, "got 0");
    HE_CHECK_THROWS(get_ntt_tables(131072, 97), invalid_argument, "got 131072");
    HE_CHECK_THROWS(get_ntt_tables(8, 96), invalid_argument, "q must be == 1 mod 2n = 16");
    HE_CHECK_THROWS(get_ntt_tables(8, 17 * 113), invalid_argument, "q must be prime; got 1921");
    HE_CHECK_THROWS(get_ntt_tables(8, 1), invalid_argument, "q must be prime");
    HE_CHECK_THROWS(get_ntt_tables(2, (u64{1} << 62) + 1), invalid_argument, "q must be < 2^62");
    HE_CHECK_THROWS(get_ntt_tables(2, ~u64{0}), invalid_argument, "q must be < 2^62");
    HE_CHECK_THROWS(get_ntt_tables(4, 0xffffffffffc0001ULL - 2), invalid_argument, "1 mod 2n");
}
