// modexp_batch, both tiers: against a 128-bit square-and-multiply for one-word moduli, against
// Fermat's little theorem for Mersenne primes 2^521-1 .. 2^4253-1 (a^(p-1) = 1, a^p = a), the
// IFMA tier against the reference for random odd moduli of 64..8192 bits with batch sizes that
// are and are not multiples of 8, the edge bases 0, 1, N-1, exponent 0 / no words, exact
// aliasing of out and bases, and every input check (thrown before anything is written).
// The Python tests compare both tiers with gmpy2.powmod as well.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "he_native/bigmod.hpp"
#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::BigModTier;

namespace {

std::vector<BigModTier> tiers() {
    std::vector<BigModTier> t{BigModTier::Reference};
    if (he_native::bigmod_tier_supported(BigModTier::AVX512IFMA)) t.push_back(BigModTier::AVX512IFMA);
    return t;
}

std::vector<u64> random_below(std::mt19937_64& g, const std::vector<u64>& n) {
    // Uniform-ish in [0, n): random words with the top word below n's top word.
    std::vector<u64> x(n.size());
    for (auto& w : x) w = g();
    x.back() = n.back() > 1 ? g() % n.back() : 0;
    return x;
}

std::vector<u64> mersenne(unsigned p) {  // 2^p - 1
    std::vector<u64> m((p + 63) / 64, ~u64{0});
    if (p % 64) m.back() = (u64{1} << (p % 64)) - 1;
    return m;
}

std::vector<u64> run(const std::vector<u64>& bases, const std::vector<u64>& e, const std::vector<u64>& n,
                     BigModTier t) {
    const std::size_t w = n.size(), count = bases.size() / w;
    std::vector<u64> out(bases.size(), 0xDEADBEEF);
    he_native::modexp_batch(bases.data(), count, w, e.data(), e.size(), n.data(), out.data(), t);
    return out;
}

}  // namespace

HE_TEST(one_word_moduli_match_int128_square_and_multiply) {
    auto g = rng(1);
    for (BigModTier t : tiers()) {
        for (int trial = 0; trial < 40; ++trial) {
            u64 q = (g() >> (g() % 60)) | 1;
            if (q < 3) q = 3;
            const std::size_t count = 1 + g() % 11;
            std::vector<u64> bases(count);
            for (auto& b : bases) b = g() % q;
            bases[0] = 0;
            if (count > 1) bases[1] = q - 1;
            const u64 e = g() >> (g() % 64);
            const std::vector<u64> out = run(bases, {e}, {q}, t);
            for (std::size_t b = 0; b < count; ++b) HE_CHECK_EQ(out[b], slow_pow_mod(bases[b], e, q));
        }
    }
}

HE_TEST(mersenne_primes_satisfy_fermat) {
    auto g = rng(2);
    for (unsigned p : {521u, 607u, 1279u, 2203u, 4253u}) {
        const std::vector<u64> n = mersenne(p);
        const std::size_t w = n.size();
        std::vector<u64> pm1 = n;
        pm1[0] -= 1;  // p - 1 (n is odd, so no borrow)
        for (BigModTier t : tiers()) {
            if (t == BigModTier::Reference && p > 2300) continue;  // slow under sanitizers; IFMA covers it
            const std::size_t count = 9;
            std::vector<u64> bases(count * w);
            for (std::size_t b = 0; b < count; ++b) {
                const std::vector<u64> x = random_below(g, n);
                std::memcpy(&bases[b * w], x.data(), w * sizeof(u64));
            }
            std::memset(&bases[0], 0, w * sizeof(u64));
            bases[w] = 1;
            for (std::size_t j = 1; j < w; ++j) bases[w + j] = 0;
            std::memcpy(&bases[2 * w], pm1.data(), w * sizeof(u64));
            const std::vector<u64> fermat = run(bases, pm1, n, t);   // a^(p-1)
            const std::vector<u64> self = run(bases, n, n, t);       // a^p
            for (std::size_t b = 0; b < count; ++b) {
                for (std::size_t j = 0; j < w; ++j) {
                    const u64 want = b == 0 ? 0 : (j == 0 ? 1 : 0);
                    HE_CHECK_EQ(fermat[b * w + j], want);
                    HE_CHECK_EQ(self[b * w + j], bases[b * w + j]);
                }
            }
        }
    }
}

HE_TEST(ifma_matches_reference_on_random_moduli) {
    if (!he_native::bigmod_tier_supported(BigModTier::AVX512IFMA)) HE_SKIP("no AVX-512 IFMA here");
    auto g = rng(3);
    for (unsigned bits : {64u, 100u, 511u, 520u, 1024u, 1500u, 2048u, 3072u, 6144u, 8192u}) {
        std::vector<u64> n((bits + 63) / 64);
        for (auto& w : n) w = g();
        if (bits % 64) n.back() &= (u64{1} << (bits % 64)) - 1;
        n.back() |= u64{1} << ((bits - 1) % 64);
        n[0] |= 1;
        const std::size_t w = n.size();
        const std::size_t count = bits >= 6144 ? 3 : 1 + g() % 17;
        const unsigned ebits = bits >= 6144 ? 96 : 1 + static_cast<unsigned>(g() % bits);
        std::vector<u64> e((ebits + 63) / 64);
        for (auto& x : e) x = g();
        if (ebits % 64) e.back() &= (u64{1} << (ebits % 64)) - 1;
        std::vector<u64> bases(count * w);
        for (std::size_t b = 0; b < count; ++b) {
            const std::vector<u64> x = random_below(g, n);
            std::memcpy(&bases[b * w], x.data(), w * sizeof(u64));
        }
        std::memcpy(&bases[(count - 1) * w], n.data(), w * sizeof(u64));
        bases[(count - 1) * w] -= 1;  // N - 1
        HE_CHECK(run(bases, e, n, BigModTier::AVX512IFMA) == run(bases, e, n, BigModTier::Reference));
    }
}

HE_TEST(exponent_zero_and_aliasing) {
    auto g = rng(4);
    std::vector<u64> n = {g() | 1, g() | (u64{1} << 63)};
    for (BigModTier t : tiers()) {
        std::vector<u64> bases = {0, 0, 5, 7};
        std::vector<u64> zero_words(3, 0);
        const std::vector<u64> a = run(bases, zero_words, n, t);
        const std::vector<u64> b = run(bases, {}, n, t);
        const std::vector<u64> one = {1, 0, 1, 0};
        HE_CHECK(a == one);
        HE_CHECK(b == one);
        std::vector<u64> in = {3, 0, 5, 7};
        const std::vector<u64> want = run(in, {65537}, n, t);
        he_native::modexp_batch(in.data(), 2, 2, std::vector<u64>{65537}.data(), 1, n.data(), in.data(), t);
        HE_CHECK(in == want);
    }
}

HE_TEST(bad_inputs_throw_before_writing) {
    std::vector<u64> out(4, 42);
    const std::vector<u64> e = {3};
    const std::vector<u64> odd = {11, 1}, even = {10, 1}, zero_top = {11, 0};
    const std::vector<u64> ok_bases = {2, 0, 3, 0}, big_base = {2, 0, 11, 1};
    auto call = [&](const std::vector<u64>& b, const std::vector<u64>& n, std::size_t words) {
        he_native::modexp_batch(b.data(), b.size() / 2, words, e.data(), 1, n.data(), out.data(),
                                BigModTier::Reference);
        return 0;
    };
    HE_CHECK_THROWS(call(ok_bases, even, 2), std::invalid_argument, "odd");
    HE_CHECK_THROWS(call(ok_bases, zero_top, 2), std::invalid_argument, "top word");
    HE_CHECK_THROWS(call(big_base, odd, 2), std::invalid_argument, "base 1");
    HE_CHECK_THROWS(call(ok_bases, odd, 0), std::invalid_argument, "64-bit words");
    const std::vector<u64> one = {1};
    HE_CHECK_THROWS(he_native::modexp_batch(one.data(), 1, 1, e.data(), 1, one.data(), out.data(),
                                            BigModTier::Reference),
                    std::invalid_argument, ">= 3");
    std::vector<u64> long_e(he_native::kBigModMaxExponentBits / 64 + 1, 1);
    HE_CHECK_THROWS(he_native::modexp_batch(ok_bases.data(), 2, 2, long_e.data(), long_e.size(), odd.data(),
                                            out.data(), BigModTier::Reference),
                    std::invalid_argument, "exponent");
    HE_CHECK(out == std::vector<u64>(4, 42));
}
