// Pointwise products and negacyclic polynomial multiplication against O(n^2) schoolbook.
#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::NTTTier;

namespace {

std::vector<NTTTier> runnable_tiers(u64 q) {
    std::vector<NTTTier> tiers;
    for (NTTTier t : {NTTTier::Reference, NTTTier::Scalar, NTTTier::AVX512IFMA, NTTTier::AVX512}) {
        if (he_native::tier_supported(t, q)) tiers.push_back(t);
    }
    return tiers;
}

}  // namespace

HE_TEST(pointwise_mul_matches_128bit_remainder) {
    auto gen = rng(5);
    for (unsigned bits : {4u, 20u, 32u, 33u, 50u, 52u, 60u, 61u, 62u}) {
        const u64 q = ntt_prime_or_zero(bits, 2);
        HE_REQUIRE(q != 0);
        const std::size_t n = 4099;  // not a power of two: pointwise works on any length
        auto a = random_vector(n, q, gen);
        auto b = random_vector(n, q, gen);
        a[0] = b[0] = q - 1;  // (q-1)^2, the largest product
        a[1] = 0;
        a[2] = q - 1;
        b[2] = 1;
        std::vector<u64> out(n);
        he_native::pointwise_mul_mod(a.data(), b.data(), out.data(), n, q);
        long bad = 0;
        for (std::size_t i = 0; i < n; ++i) bad += out[i] != slow_mul_mod(a[i], b[i], q);
        HE_CHECK_EQ(bad, 0L);
        he_native::pointwise_mul_mod(a.data(), b.data(), a.data(), n, q);  // out aliases a
        HE_CHECK(a == out);
    }
}

HE_TEST(polymul_matches_schoolbook_on_every_tier) {
    auto gen = rng(6);
    for (u64 n = 2; n <= 512; n *= 2) {
        for (unsigned bits : {20u, 36u, 49u, 50u, 55u, 61u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const auto a = random_vector(n, q, gen);
            const auto b = random_vector(n, q, gen);
            const auto expected = schoolbook_negacyclic(a, b, q);
            for (NTTTier tier : runnable_tiers(q)) {
                std::vector<u64> out(n);
                he_native::polymul_negacyclic(a.data(), b.data(), out.data(), n, q, tier);
                HE_CHECK(out == expected);
            }
        }
    }
}

HE_TEST(polymul_known_small_products) {
    // (1 + X) * (1 + X) = 1 + 2X + X^2, and X^(n-1) * X = X^n = -1 in Z_q[X]/(X^n + 1).
    const u64 n = 4, q = 73;
    std::vector<u64> a = {1, 1, 0, 0}, out(n);
    he_native::polymul_negacyclic(a.data(), a.data(), out.data(), n, q, NTTTier::Scalar);
    HE_CHECK((out == std::vector<u64>{1, 2, 1, 0}));
    std::vector<u64> x3 = {0, 0, 0, 1}, x1 = {0, 1, 0, 0};
    he_native::polymul_negacyclic(x3.data(), x1.data(), out.data(), n, q, NTTTier::Scalar);
    HE_CHECK((out == std::vector<u64>{q - 1, 0, 0, 0}));
}

HE_TEST(polymul_output_may_alias_inputs) {
    auto gen = rng(7);
    const u64 n = 256;
    const u64 q = ntt_prime_or_zero(60, n);
    const auto a = random_vector(n, q, gen);
    const auto b = random_vector(n, q, gen);
    const auto expected = schoolbook_negacyclic(a, b, q);
    auto a1 = a;
    he_native::polymul_negacyclic(a1.data(), b.data(), a1.data(), n, q, NTTTier::Scalar);
    HE_CHECK(a1 == expected);
    auto b1 = b;
    he_native::polymul_negacyclic(a.data(), b1.data(), b1.data(), n, q, NTTTier::Scalar);
    HE_CHECK(b1 == expected);
    auto sq = a;
    he_native::polymul_negacyclic(sq.data(), sq.data(), sq.data(), n, q, NTTTier::Scalar);
    HE_CHECK(sq == schoolbook_negacyclic(a, a, q));
}

HE_TEST(polymul_large_n_against_reference_tier) {
    auto gen = rng(8);
    const u64 n = 16384;
    for (unsigned bits : {30u, 50u, 61u}) {
        const u64 q = ntt_prime_or_zero(bits, n);
        const auto a = random_vector(n, q, gen);
        const auto b = random_vector(n, q, gen);
        std::vector<u64> ref(n), fast(n);
        he_native::polymul_negacyclic(a.data(), b.data(), ref.data(), n, q, NTTTier::Reference);
        he_native::polymul_negacyclic(a.data(), b.data(), fast.data(), n, q, he_native::select_tier(q));
        HE_CHECK(ref == fast);
        // spot-check a few coefficients of the reference tier against the definition
        for (std::size_t k : {std::size_t{0}, std::size_t{1}, n / 2, n - 1}) {
            u128 acc = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t j = (k + n - i) % n;
                const u64 p = slow_mul_mod(a[i], b[j], q);
                acc = (acc + (i <= k ? p : q - p)) % q;  // wrap-around terms carry X^n = -1
            }
            HE_CHECK_EQ(ref[k], static_cast<u64>(acc));
        }
    }
}
