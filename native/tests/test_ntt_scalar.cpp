// Scalar tier against the reference tier over the full grid n = 2..2^15 x widths 20..61
// bits (plus 62), random and extreme inputs, in both directions.
#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::get_ntt_tables;

namespace {

/// Random values plus the extremes 0 and q - 1 at the ends.
std::vector<u64> test_input(u64 n, u64 q, std::mt19937_64& gen) {
    auto a = random_vector(n, q, gen);
    a[0] = q - 1;
    a[n - 1] = 0;
    return a;
}

void check_against_reference(u64 n, u64 q, std::mt19937_64& gen) {
    const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
    const he_native::NTTTables& t = *t_ptr;
    // forward
    const auto a = test_input(n, q, gen);
    auto ref = a, fast = a;
    he_native::forward_ntt_reference(ref.data(), t);
    he_native::forward_ntt_scalar(fast.data(), t);
    HE_CHECK(ref == fast);
    // inverse of an arbitrary NTT-domain vector
    const auto b = test_input(n, q, gen);
    auto ref_inv = b, fast_inv = b;
    he_native::inverse_ntt_reference(ref_inv.data(), t);
    he_native::inverse_ntt_scalar(fast_inv.data(), t);
    HE_CHECK(ref_inv == fast_inv);
    // round trip
    he_native::inverse_ntt_scalar(fast.data(), t);
    HE_CHECK(fast == a);
}

}  // namespace

HE_TEST(scalar_matches_reference_on_grid) {
    auto gen = rng(3);
    int combos = 0;
    for (u64 n = 2; n <= 32768; n *= 2) {
        for (unsigned bits = 20; bits <= 62; ++bits) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            check_against_reference(n, q, gen);
            ++combos;
        }
    }
    HE_CHECK(combos > 600);  // nearly every (n, width) pair has a prime
}

HE_TEST(scalar_extreme_inputs) {
    for (u64 n : {2ULL, 4ULL, 8ULL, 16ULL, 4096ULL}) {
        for (unsigned bits : {30u, 50u, 61u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            for (u64 fill : {u64{0}, u64{1}, q - 1, q / 2}) {
                std::vector<u64> a(n, fill);
                auto ref = a, fast = a;
                he_native::forward_ntt_reference(ref.data(), t);
                he_native::forward_ntt_scalar(fast.data(), t);
                HE_CHECK(ref == fast);
                he_native::inverse_ntt_scalar(fast.data(), t);
                HE_CHECK(fast == a);
                auto inv_ref = a, inv_fast = a;
                he_native::inverse_ntt_reference(inv_ref.data(), t);
                he_native::inverse_ntt_scalar(inv_fast.data(), t);
                HE_CHECK(inv_ref == inv_fast);
            }
        }
    }
}

HE_TEST(largest_prime_below_2_62) {
    // The lazy butterflies rely on 4q < 2^64; the widest admissible primes exercise it.
    auto gen = rng(4);
    for (u64 n : {2ULL, 1024ULL, 65536ULL}) {
        for (u64 q : he_native::find_ntt_primes(62, n, 3)) check_against_reference(n, q, gen);
    }
}
