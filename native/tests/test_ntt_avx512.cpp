// AVX-512 tiers against the reference tier: the IFMA kernels (q < 2^50) over n = 2..2^15
// x modulus widths 20..50 bits, the 64-bit-lane kernels (q < 2^62) over n = 2..2^15 x
// widths 20..62 bits, in both directions, with random, extreme and unaligned inputs, plus
// the extra tables (ntt_avx512_tables.hpp) and their cache under concurrent use.
// Every test skips itself (exit code 77 via the harness) on CPUs without the feature.
#include <thread>

#include "ntt_avx512_tables.hpp"
#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::get_ntt_tables;
using he_native::NTTTables;

namespace {

bool cpu_has_avx512() {
    const auto& f = he_native::cpu_features();
    return f.os_avx512 && f.avx512f && f.avx512dq && f.avx512vl;
}

bool cpu_has_avx512ifma() { return cpu_has_avx512() && he_native::cpu_features().avx512ifma; }

/// One AVX-512 kernel pair and the widest modulus it accepts.
struct Kernel {
    const char* name;
    void (*forward)(u64*, const NTTTables&);
    void (*inverse)(u64*, const NTTTables&);
    unsigned max_bits;  ///< q < 2^max_bits
    bool (*cpu_ok)();
};

const Kernel kIfma{"avx512ifma", he_native::forward_ntt_avx512ifma, he_native::inverse_ntt_avx512ifma,
                   50, cpu_has_avx512ifma};
const Kernel kAvx512{"avx512", he_native::forward_ntt_avx512, he_native::inverse_ntt_avx512, 62,
                     cpu_has_avx512};

void skip_unless_cpu(const Kernel& k) {
    if (!k.cpu_ok()) HE_SKIP(std::string("this CPU lacks the features of the ") + k.name + " tier");
}

/// Random values with the extremes q - 1 and 0 planted at both ends and in the middle.
std::vector<u64> test_input(u64 n, u64 q, std::mt19937_64& gen) {
    auto a = random_vector(n, q, gen);
    a[0] = q - 1;
    a[n - 1] = 0;
    a[n / 2] = q - 1;
    return a;
}

/// Forward and inverse against the reference, and the round trip, for one (n, q).
/// `offset` shifts the data by that many elements from a 64-byte boundary.
void check_against_reference(const Kernel& k, u64 n, u64 q, std::mt19937_64& gen,
                             std::size_t offset = 0) {
    const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
    const he_native::NTTTables& t = *t_ptr;
    const auto a = test_input(n, q, gen);
    auto ref = a;
    he_native::forward_ntt_reference(ref.data(), t);
    std::vector<u64> buf(n + 8);
    u64* fast = buf.data() + offset;
    std::copy(a.begin(), a.end(), fast);
    k.forward(fast, t);
    HE_CHECK(std::equal(ref.begin(), ref.end(), fast));
    k.inverse(fast, t);
    HE_CHECK(std::equal(a.begin(), a.end(), fast));

    // Inverse of an arbitrary NTT-domain vector (not the image of a forward call).
    const auto b = test_input(n, q, gen);
    auto ref_inv = b;
    he_native::inverse_ntt_reference(ref_inv.data(), t);
    std::copy(b.begin(), b.end(), fast);
    k.inverse(fast, t);
    HE_CHECK(std::equal(ref_inv.begin(), ref_inv.end(), fast));
}

void run_grid(const Kernel& k, unsigned min_bits, unsigned seed) {
    auto gen = rng(seed);
    int combos = 0;
    for (u64 n = 2; n <= 32768; n *= 2) {
        for (unsigned bits = min_bits; bits <= k.max_bits; ++bits) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            check_against_reference(k, n, q, gen);
            ++combos;
        }
    }
    HE_CHECK(combos > 15 * int(k.max_bits - min_bits));  // nearly every pair has a prime
}

void run_extremes(const Kernel& k, std::initializer_list<unsigned> widths) {
    for (u64 n : {2ULL, 4ULL, 8ULL, 16ULL, 32ULL, 64ULL, 4096ULL}) {
        for (unsigned bits : widths) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            std::vector<std::vector<u64>> inputs;
            for (u64 fill : {u64{0}, u64{1}, q - 1, q / 2}) inputs.emplace_back(n, fill);
            std::vector<u64> alternating(n);
            for (u64 i = 0; i < n; ++i) alternating[i] = (i % 2 == 0) ? q - 1 : 0;
            inputs.push_back(alternating);
            for (const auto& a : inputs) {
                auto ref = a, fast = a;
                he_native::forward_ntt_reference(ref.data(), t);
                k.forward(fast.data(), t);
                HE_CHECK(ref == fast);
                k.inverse(fast.data(), t);
                HE_CHECK(fast == a);
                auto inv_ref = a, inv_fast = a;
                he_native::inverse_ntt_reference(inv_ref.data(), t);
                k.inverse(inv_fast.data(), t);
                HE_CHECK(inv_ref == inv_fast);
            }
        }
    }
}

}  // namespace

// ---- IFMA tier (q < 2^50) ----

HE_TEST(avx512ifma_matches_reference_on_grid) {
    skip_unless_cpu(kIfma);
    run_grid(kIfma, 20, 11);
}

HE_TEST(avx512ifma_extreme_inputs) {
    skip_unless_cpu(kIfma);
    // 50 bits: 4q is just below 2^52, the IFMA operand width.
    run_extremes(kIfma, {20u, 30u, 49u, 50u});
}

HE_TEST(avx512ifma_widest_primes_and_largest_n) {
    skip_unless_cpu(kIfma);
    auto gen = rng(12);
    for (u64 n : {16ULL, 65536ULL}) {
        for (u64 q : he_native::find_ntt_primes(50, n, 3)) check_against_reference(kIfma, n, q, gen);
    }
}

HE_TEST(avx512ifma_unaligned_data) {
    skip_unless_cpu(kIfma);
    auto gen = rng(13);
    for (std::size_t offset : {1u, 3u, 7u}) {
        for (u64 n : {16ULL, 32ULL, 1024ULL, 8192ULL}) {
            check_against_reference(kIfma, n, ntt_prime_or_zero(45, n), gen, offset);
        }
    }
}

HE_TEST(avx512ifma_rejects_wide_modulus) {
    skip_unless_cpu(kIfma);
    const u64 q = ntt_prime_or_zero(51, 1024);
    const he_native::NTTTablesPtr t_ptr = get_ntt_tables(1024, q);
    const he_native::NTTTables& t = *t_ptr;
    std::vector<u64> a(1024, 1);
    HE_CHECK_THROWS(he_native::forward_ntt_avx512ifma(a.data(), t), std::invalid_argument,
                    "must be below 2^50");
    HE_CHECK_THROWS(he_native::inverse_ntt_avx512ifma(a.data(), t), std::invalid_argument,
                    "must be below 2^50");
    HE_CHECK(a == std::vector<u64>(1024, 1));  // untouched
}

// ---- 64-bit-lane tier (q < 2^62) ----

HE_TEST(avx512_matches_reference_on_grid) {
    skip_unless_cpu(kAvx512);
    run_grid(kAvx512, 20, 21);
}

HE_TEST(avx512_extreme_inputs) {
    skip_unless_cpu(kAvx512);
    // 61 bits: the widest moduli of the wide-lazy-range variant (8q <= 2^64);
    // 62 bits: Harvey ranges with 4q just below 2^64.
    run_extremes(kAvx512, {20u, 50u, 60u, 61u, 62u});
}

HE_TEST(avx512_widest_primes_and_largest_n) {
    skip_unless_cpu(kAvx512);
    auto gen = rng(22);
    for (u64 n : {16ULL, 65536ULL}) {
        for (unsigned bits : {61u, 62u}) {
            for (u64 q : he_native::find_ntt_primes(bits, n, 3)) check_against_reference(kAvx512, n, q, gen);
        }
    }
}

HE_TEST(avx512_unaligned_data) {
    skip_unless_cpu(kAvx512);
    auto gen = rng(23);
    for (std::size_t offset : {1u, 5u}) {
        for (u64 n : {16ULL, 64ULL, 2048ULL}) {
            for (unsigned bits : {40u, 61u, 62u}) {
                check_against_reference(kAvx512, n, ntt_prime_or_zero(bits, n), gen, offset);
            }
        }
    }
}

// ---- tables and cache ----

HE_TEST(avx512_tables_invariants) {
    // The cache builds the AVX-512 tables together with the portable ones (NTTTables::simd)
    // whenever an AVX-512 tier can run for q on this CPU.
    skip_unless_cpu(kAvx512);
    for (u64 n : {2ULL, 16ULL, 1024ULL}) {
        for (unsigned bits : {30u, 49u, 60u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            HE_REQUIRE(t.simd != nullptr);
            const auto& tb = *t.simd;
            HE_CHECK_EQ(tb.n, n);
            HE_CHECK_EQ(tb.q, q);
            HE_CHECK_EQ(tb.psi, t.psi);
            HE_CHECK_EQ(tb.has_52bit, q < (u64{1} << 50));
            HE_CHECK_EQ(slow_mul_mod(tb.n_inv, n, q), u64{1});
            HE_CHECK_EQ(tb.inv_w1_n_inv, slow_mul_mod(tb.inv_w[1], tb.n_inv, q));
            for (u64 k = 0; k < n; ++k) {
                HE_CHECK_EQ(tb.fwd_w[k], t.root_powers[k]);
                HE_CHECK_EQ(slow_mul_mod(tb.fwd_w[k], tb.inv_w[k], q), u64{1});
                HE_CHECK_EQ(tb.fwd_w64[k], static_cast<u64>(((u128)tb.fwd_w[k] << 64) / q));
                HE_CHECK_EQ(tb.inv_w64[k], static_cast<u64>(((u128)tb.inv_w[k] << 64) / q));
                if (tb.has_52bit) {
                    HE_CHECK_EQ(tb.fwd_w52[k], static_cast<u64>(((u128)tb.fwd_w[k] << 52) / q));
                    HE_CHECK_EQ(tb.inv_w52[k], static_cast<u64>(((u128)tb.inv_w[k] << 52) / q));
                }
            }
            // 64-byte alignment of the rows (the allocator's promise).
            HE_CHECK_EQ(reinterpret_cast<std::uintptr_t>(tb.fwd_w.data()) % 64, std::uintptr_t{0});
            // Cached: the same object on every lookup, and charged to the entry's bytes.
            HE_CHECK(get_ntt_tables(n, q)->simd.get() == &tb);
            HE_CHECK(t.bytes >= 4 * n * sizeof(u64) + he_native::avx512_detail::avx512_tables_bytes(tb));
            // Tables built outside the cache (no simd member) still transform correctly.
            he_native::NTTTables bare = t;
            bare.simd.reset();
            std::vector<u64> x(n), y(n);
            for (u64 i = 0; i < n; ++i) x[i] = y[i] = (i * 7919u + 13u) % q;
            he_native::forward_ntt_avx512(x.data(), t);
            he_native::forward_ntt_avx512(y.data(), bare);
            HE_CHECK(x == y);
        }
    }
}

HE_TEST(avx512_concurrent_first_use) {
    // Threads race to build the (not yet cached) tables of the same and of different
    // (n, q) while transforming; every result must match the reference.
    const bool ifma = cpu_has_avx512ifma();
    if (!cpu_has_avx512()) HE_SKIP("this CPU lacks AVX-512F/DQ/VL");
    struct Job {
        u64 n, q;
        std::vector<u64> input, expected;
    };
    std::vector<Job> jobs;
    auto gen = rng(31);
    for (u64 n : {512ULL, 2048ULL, 8192ULL}) {
        for (u64 q : he_native::find_ntt_primes(ifma ? 47 : 58, n, 2)) {
            Job j{n, q, test_input(n, q, gen), {}};
            j.expected = j.input;
            he_native::forward_ntt_reference(j.expected.data(), *get_ntt_tables(n, q));
            jobs.push_back(std::move(j));
        }
    }
    std::vector<int> ok(8, 1);
    std::vector<std::thread> threads;
    for (int w = 0; w < 8; ++w) {
        threads.emplace_back([&, w] {
            for (int rep = 0; rep < 3; ++rep) {
                for (std::size_t i = 0; i < jobs.size(); ++i) {
                    const Job& j = jobs[(i + w) % jobs.size()];
                    const he_native::NTTTablesPtr t_ptr = get_ntt_tables(j.n, j.q);
                    const he_native::NTTTables& t = *t_ptr;
                    auto v = j.input;
                    if (ifma) {
                        he_native::forward_ntt_avx512ifma(v.data(), t);
                    } else {
                        he_native::forward_ntt_avx512(v.data(), t);
                    }
                    if (v != j.expected) ok[w] = 0;
                    he_native::inverse_ntt_avx512(v.data(), t);
                    if (v != j.input) ok[w] = 0;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    for (int w = 0; w < 8; ++w) HE_CHECK_EQ(ok[w], 1);
}
