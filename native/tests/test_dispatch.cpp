// Tier selection rules, tier names, every runnable tier against the reference, and the
// environment kill switches (the `kill_switch` tests run in a ctest entry that sets them).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::NTTTier;

namespace {
const NTTTier kAllTiers[] = {NTTTier::Reference, NTTTier::Scalar, NTTTier::AVX512IFMA,
                             NTTTier::AVX512};
bool env_set(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}
}  // namespace

HE_TEST(tier_names) {
    HE_CHECK(std::strcmp(he_native::tier_name(NTTTier::Reference), "reference") == 0);
    HE_CHECK(std::strcmp(he_native::tier_name(NTTTier::Scalar), "scalar") == 0);
    HE_CHECK(std::strcmp(he_native::tier_name(NTTTier::AVX512IFMA), "avx512ifma") == 0);
    HE_CHECK(std::strcmp(he_native::tier_name(NTTTier::AVX512), "avx512") == 0);
}

HE_TEST(selection_rules) {
    const auto& f = he_native::cpu_features();
    HE_CHECK(he_native::tier_compiled(NTTTier::Reference));
    HE_CHECK(he_native::tier_compiled(NTTTier::Scalar));
#if defined(HE_NATIVE_HAVE_AVX512)
    HE_CHECK(he_native::tier_compiled(NTTTier::AVX512IFMA));
#else
    HE_CHECK(!he_native::tier_compiled(NTTTier::AVX512IFMA));
    HE_CHECK(!he_native::tier_compiled(NTTTier::AVX512));
#endif
    for (unsigned bits = 2; bits <= 62; ++bits) {
        const u64 q = (u64{1} << bits) - 1;  // the widest value of each width
        HE_CHECK(he_native::tier_supported(NTTTier::Scalar, q));
        HE_CHECK(he_native::tier_supported(NTTTier::Reference, q));
        const NTTTier chosen = he_native::select_tier(q);
        HE_CHECK(he_native::tier_supported(chosen, q));
        HE_CHECK(chosen != NTTTier::Reference);
        if (bits > 50) HE_CHECK(chosen != NTTTier::AVX512IFMA);  // IFMA needs q < 2^50
        if (he_native::tier_supported(NTTTier::AVX512IFMA, q)) HE_CHECK(chosen == NTTTier::AVX512IFMA);
        if (he_native::tier_supported(NTTTier::AVX512IFMA, q)) HE_CHECK(f.avx512ifma && f.os_avx512);
        if (he_native::tier_supported(NTTTier::AVX512, q)) HE_CHECK(f.avx512f && f.os_avx512);
    }
    for (NTTTier t : kAllTiers) HE_CHECK(!he_native::tier_supported(t, u64{1} << 62));
}

HE_TEST(cpu_features_are_consistent) {
    const auto& f = he_native::cpu_features();
    HE_CHECK(&f == &he_native::cpu_features());  // detected once
    if (f.avx512ifma) HE_CHECK(f.avx512f);
    if (f.avx512vl) HE_CHECK(f.avx512f);
    std::fprintf(stderr, "  cpu: avx2=%d avx512f=%d dq=%d vl=%d bw=%d ifma=%d os_avx512=%d\n",
                 f.avx2, f.avx512f, f.avx512dq, f.avx512vl, f.avx512bw, f.avx512ifma, f.os_avx512);
}

HE_TEST(every_supported_tier_matches_reference) {
    auto gen = rng(9);
    for (u64 n : {2ULL, 4ULL, 8ULL, 16ULL, 32ULL, 1024ULL, 8192ULL}) {
        for (unsigned bits : {20u, 35u, 49u, 50u, 51u, 60u, 61u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = he_native::get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            const auto a = random_vector(n, q, gen);
            auto ref = a;
            he_native::forward_ntt(ref.data(), t, NTTTier::Reference);
            for (NTTTier tier : kAllTiers) {
                if (!he_native::tier_supported(tier, q)) continue;
                auto b = a;
                he_native::forward_ntt(b.data(), t, tier);
                HE_CHECK(b == ref);
                he_native::inverse_ntt(b.data(), t, tier);
                HE_CHECK(b == a);
            }
        }
    }
}

HE_TEST(out_of_place_transforms_match_in_place_and_keep_the_input) {
    // n = 16 / 32: the AVX-512 first pass is the tail; 64, 128, 4096: a radix-4 first pass
    // (odd and even numbers of radix-4 layers). The input buffer must stay untouched.
    auto gen = rng(17);
    for (u64 n : {2ULL, 8ULL, 16ULL, 32ULL, 64ULL, 128ULL, 4096ULL}) {
        for (unsigned bits : {35u, 49u, 60u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = he_native::get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            const auto a = random_vector(n, q, gen);
            auto ref = a;
            he_native::forward_ntt(ref.data(), t, NTTTier::Reference);
            for (NTTTier tier : kAllTiers) {
                if (!he_native::tier_supported(tier, q)) continue;
                const auto in = a;
                std::vector<u64> out(n, ~u64{0});
                he_native::forward_ntt(in.data(), out.data(), t, tier);
                HE_CHECK(out == ref);
                HE_CHECK(in == a);
                std::vector<u64> back(n, ~u64{0});
                he_native::inverse_ntt(out.data(), back.data(), t, tier);
                HE_CHECK(back == a);
                HE_CHECK(out == ref);
                auto same = a;  // in == out is the in-place transform
                he_native::forward_ntt(same.data(), same.data(), t, tier);
                HE_CHECK(same == ref);
            }
        }
    }
}

HE_TEST(transforms_on_arrays_not_aligned_to_a_cache_line) {
    // numpy's large arrays start 16 bytes past a cache line; the AVX-512 kernels then run
    // their intermediate passes in an aligned per-thread buffer. Every offset of input and
    // output (0..7 elements past a 64-byte boundary), in place and out of place, forward and
    // inverse, must give the reference answer; n covers no radix-4 pass (16, 32), one (64,
    // 128) and many, with both parities of the radix-4 layer count.
    auto gen = rng(23);
    for (u64 n : {16ULL, 32ULL, 64ULL, 128ULL, 1024ULL, 8192ULL, 65536ULL}) {
        for (unsigned bits : {49u, 60u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = he_native::get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            const auto a = random_vector(n, q, gen);
            auto ref = a;
            he_native::forward_ntt(ref.data(), t, NTTTier::Reference);
            // one 64-byte aligned block per buffer, with 8 elements of slack for the offsets
            const auto aligned = [](std::vector<u64>& v) {
                u64* p = v.data();
                while (reinterpret_cast<std::uintptr_t>(p) % 64 != 0) ++p;
                return p;
            };
            std::vector<u64> in_buf(n + 16), out_buf(n + 16);
            for (NTTTier tier : {NTTTier::AVX512IFMA, NTTTier::AVX512, NTTTier::Scalar}) {
                if (!he_native::tier_supported(tier, q)) continue;
                for (u64 in_off : {0ULL, 1ULL, 2ULL, 7ULL}) {
                    for (u64 out_off : {0ULL, 2ULL, 3ULL}) {
                        u64* in = aligned(in_buf) + in_off;
                        u64* out = aligned(out_buf) + out_off;
                        std::copy(a.begin(), a.end(), in);
                        he_native::forward_ntt(in, out, t, tier);
                        HE_CHECK(std::equal(ref.begin(), ref.end(), out));
                        HE_CHECK(std::equal(a.begin(), a.end(), in));
                        he_native::inverse_ntt(out, in, t, tier);  // out of place back
                        HE_CHECK(std::equal(a.begin(), a.end(), in));
                        he_native::forward_ntt(in, t, tier);  // in place, misaligned
                        HE_CHECK(std::equal(ref.begin(), ref.end(), in));
                        he_native::inverse_ntt(in, t, tier);
                        HE_CHECK(std::equal(a.begin(), a.end(), in));
                    }
                }
            }
        }
    }
}

HE_TEST(uncompiled_tier_throws) {
#if defined(HE_NATIVE_HAVE_AVX512)
    HE_SKIP("AVX-512 kernels are compiled into this build");
#else
    const he_native::NTTTablesPtr t_ptr = he_native::get_ntt_tables(8, 17);
    const he_native::NTTTables& t = *t_ptr;
    std::vector<u64> a(8, 1);
    HE_CHECK_THROWS(he_native::forward_ntt(a.data(), t, NTTTier::AVX512IFMA), std::invalid_argument,
                    "tier must be compiled into this build; got 'avx512ifma'");
#endif
}

HE_TEST(kill_switch_env) {
    const bool no_ifma = env_set("HE_ML_DISABLE_AVX512IFMA");
    const bool no_avx512 = env_set("HE_ML_DISABLE_AVX512");
    if (!no_ifma && !no_avx512) HE_SKIP("kill switches not set (ctest entry test_dispatch_kill_switch sets them)");
    HE_CHECK_EQ(he_native::tier_disabled_by_env(NTTTier::AVX512IFMA), no_ifma);
    HE_CHECK_EQ(he_native::tier_disabled_by_env(NTTTier::AVX512), no_avx512);
    HE_CHECK(!he_native::tier_disabled_by_env(NTTTier::Scalar));
    const u64 q49 = ntt_prime_or_zero(49, 1024), q60 = ntt_prime_or_zero(60, 1024);
    if (no_ifma) HE_CHECK(!he_native::tier_supported(NTTTier::AVX512IFMA, q49));
    if (no_avx512) HE_CHECK(!he_native::tier_supported(NTTTier::AVX512, q60));
    if (no_ifma && no_avx512) {
        HE_CHECK(he_native::select_tier(q49) == NTTTier::Scalar);
        HE_CHECK(he_native::select_tier(q60) == NTTTier::Scalar);
    }
}
