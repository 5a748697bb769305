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
    const he_native::NTTTablesPtr t2_ptr = get_ntt_tables(2, kHexlPrime);
    const he_native::NTTTables& t2 = *t2_ptr;
    HE_CHECK_EQ(t2.root_powers[0], 1ULL);
    HE_CHECK_EQ(t2.root_powers[1], 288794978602139552ULL);
    const he_native::NTTTablesPtr t4_ptr = get_ntt_tables(4, kHexlPrime);
    const he_native::NTTTables& t4 = *t4_ptr;
    HE_CHECK_EQ(t4.root_powers[0], 1ULL);
    HE_CHECK_EQ(t4.root_powers[1], 288794978602139552ULL);
    HE_CHECK_EQ(t4.root_powers[2], 178930308976060547ULL);
}

HE_TEST(psi_is_smallest_primitive_root_and_layouts_hold) {
    for (u64 n : {2ULL, 4ULL, 8ULL, 64ULL, 1024ULL, 4096ULL}) {
        for (unsigned bits : {20u, 31u, 45u, 50u, 55u, 60u, 61u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
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
                seen[th * primes.size() + k] = get_ntt_tables(n, primes[k]).get();
            }
        });
    }
    for (auto& th : threads) th.join();
    for (std::size_t k = 0; k < primes.size(); ++k) {
        const NTTTables* first = get_ntt_tables(n, primes[k]).get();
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

// ---- the byte-bounded LRU cache ----

namespace {
/// Restores the default budget and empties the cache when a test ends (pass or fail).
struct BudgetGuard {
    ~BudgetGuard() {
        he_native::set_ntt_table_cache_budget(he_native::kDefaultNTTTableCacheBytes);
        he_native::clear_ntt_table_cache();
    }
};

std::vector<u64> transformed(const NTTTables& t, const std::vector<u64>& x) {
    std::vector<u64> y = x;
    he_native::forward_ntt_scalar(y.data(), t);
    return y;
}
}  // namespace

HE_TEST(cache_bytes_stay_within_the_budget_and_evict_lru) {
    BudgetGuard guard;
    he_native::clear_ntt_table_cache();
    const u64 n = 4096;
    const auto primes = he_native::find_ntt_primes(50, n, 40);
    const std::size_t one = get_ntt_tables(n, primes[0])->bytes;
    HE_REQUIRE(one >= 4 * n * sizeof(u64));  // four n-entry tables at least
    he_native::set_ntt_table_cache_budget(3 * one + one / 2);  // room for 3 entries
    he_native::clear_ntt_table_cache();
    for (u64 q : primes) {
        const he_native::NTTTablesPtr t = get_ntt_tables(n, q);
        HE_CHECK_EQ(t->q, q);
        const auto st = he_native::ntt_table_cache_stats();
        HE_CHECK(st.bytes <= st.budget);
        HE_CHECK(st.entries <= 3);
    }
    auto st = he_native::ntt_table_cache_stats();
    HE_CHECK_EQ(st.entries, std::size_t{3});
    HE_CHECK_EQ(st.misses, std::uint64_t{40});
    HE_CHECK_EQ(st.evictions, std::uint64_t{37});
    // LRU: touching the oldest of the three keeps it when a new entry arrives.
    get_ntt_tables(n, primes[37]);
    get_ntt_tables(n, primes[0]);  // evicts primes[38]
    st = he_native::ntt_table_cache_stats();
    HE_CHECK_EQ(st.hits, std::uint64_t{1});
    get_ntt_tables(n, primes[37]);
    HE_CHECK_EQ(he_native::ntt_table_cache_stats().hits, std::uint64_t{2});
    get_ntt_tables(n, primes[38]);
    HE_CHECK_EQ(he_native::ntt_table_cache_stats().misses, std::uint64_t{42});
    // Shrinking the budget evicts at once.
    he_native::set_ntt_table_cache_budget(one);
    st = he_native::ntt_table_cache_stats();
    HE_CHECK_EQ(st.entries, std::size_t{1});
    HE_CHECK(st.bytes <= one);
}

HE_TEST(evicted_tables_stay_valid_for_their_holders) {
    BudgetGuard guard;
    const u64 n = 1024;
    const auto primes = he_native::find_ntt_primes(45, n, 6);
    std::vector<u64> x(n);
    for (u64 i = 0; i < n; ++i) x[i] = (i * i + 3) % primes[0];
    he_native::set_ntt_table_cache_budget(0);  // nothing is kept
    const he_native::NTTTablesPtr held = get_ntt_tables(n, primes[0]);
    for (u64 q : primes) get_ntt_tables(n, q);  // churn
    HE_CHECK_EQ(he_native::ntt_table_cache_stats().entries, std::size_t{0});
    HE_CHECK_EQ(he_native::ntt_table_cache_stats().bytes, std::size_t{0});
    // the held entry is intact (ASan would flag a use after free) and equals a fresh build
    const std::vector<u64> y = transformed(*held, x);
    const he_native::NTTTablesPtr fresh = get_ntt_tables(n, primes[0]);
    HE_CHECK(fresh.get() != held.get());
    HE_CHECK(transformed(*fresh, x) == y);
    HE_CHECK(fresh->root_powers == held->root_powers);
}

HE_TEST(entry_larger_than_the_budget_is_returned_but_not_kept) {
    BudgetGuard guard;
    he_native::clear_ntt_table_cache();
    const u64 small_n = 64, big_n = 8192;
    const u64 q_small = he_native::find_ntt_primes(40, small_n, 1)[0];
    const u64 q_big = he_native::find_ntt_primes(40, big_n, 1)[0];
    const std::size_t small_bytes = get_ntt_tables(small_n, q_small)->bytes;
    he_native::set_ntt_table_cache_budget(4 * small_bytes);
    const he_native::NTTTablesPtr big = get_ntt_tables(big_n, q_big);
    HE_CHECK_EQ(big->n, big_n);
    const auto st = he_native::ntt_table_cache_stats();
    HE_CHECK_EQ(st.entries, std::size_t{1});  // the small one stayed; the big one was not kept
    HE_CHECK_EQ(st.bytes, small_bytes);
}

HE_TEST(concurrent_lookups_under_eviction_pressure) {
    // 8 threads transform with 12 primes while the budget holds 2 entries: entries are
    // evicted while other threads use them. Every result must match the single-thread one
    // (and ASan/TSan-style bugs would show as crashes or wrong values).
    BudgetGuard guard;
    const u64 n = 2048;
    const auto primes = he_native::find_ntt_primes(48, n, 12);
    std::vector<std::vector<u64>> inputs, expected;
    for (std::size_t k = 0; k < primes.size(); ++k) {
        std::vector<u64> x(n);
        for (u64 i = 0; i < n; ++i) x[i] = (i * 2654435761u + k) % primes[k];
        expected.push_back(transformed(*get_ntt_tables(n, primes[k]), x));
        inputs.push_back(std::move(x));
    }
    const std::size_t one = get_ntt_tables(n, primes[0])->bytes;
    he_native::set_ntt_table_cache_budget(2 * one);
    std::vector<int> ok(8, 1);
    std::vector<std::thread> threads;
    for (int w = 0; w < 8; ++w) {
        threads.emplace_back([&, w] {
            for (int rep = 0; rep < 4; ++rep) {
                for (std::size_t i = 0; i < primes.size(); ++i) {
                    const std::size_t k = (i * 5 + static_cast<std::size_t>(w)) % primes.size();
                    const he_native::NTTTablesPtr t = get_ntt_tables(n, primes[k]);
                    std::vector<u64> y = inputs[k];
                    he_native::forward_ntt(y.data(), *t, he_native::select_tier(primes[k]));
                    if (y != expected[k]) ok[w] = 0;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    for (int w = 0; w < 8; ++w) HE_CHECK_EQ(ok[w], 1);
    const auto st = he_native::ntt_table_cache_stats();
    HE_CHECK(st.bytes <= 2 * one);
    HE_CHECK(st.evictions > 0);
}
