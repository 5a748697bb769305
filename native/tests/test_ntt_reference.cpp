// Reference tier: published known-answer vectors, the O(n^2) definition, round trips.
#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;
using he_native::get_ntt_tables;

namespace {

struct KnownAnswer {
    u64 q;
    std::vector<u64> input;
    std::vector<u64> forward;  // bit-reversed order, smallest primitive 2n-th root
};

// Published vectors: Intel HEXL test/test-ntt.cpp (INSTANTIATE_TEST_SUITE_P
// DegreeModulusInputOutput) and Microsoft SEAL native/tests/seal/util/ntt.cpp
// (NegacyclicNTT: q = 0xffffffffffc0001, n = 2, {1, 1}).
const std::vector<KnownAnswer>& known_answers() {
    static const std::vector<KnownAnswer> v = {
        {0xffffffffffc0001ULL, {1, 1}, {288794978602139553ULL, 864126526004445282ULL}},
        {0xffffffffffc0001ULL, {0, 0}, {0, 0}},
        {0xffffffffffc0001ULL, {1, 0}, {1, 1}},
        {281474976710897ULL, {1, 1}, {19842761023586ULL, 261632215687313ULL}},
        {113, {94, 109, 11, 18}, {82, 2, 81, 98}},
        {281474976710897ULL,
         {281474976710765ULL, 49, 281474976710643ULL, 275},
         {12006376116355ULL, 216492038983166ULL, 272441922811203ULL, 62009615510542ULL}},
        {113, {59, 50, 98, 50}, {1, 2, 3, 4}},
        {73, {2, 1, 1, 1}, {17, 41, 36, 60}},
        {16417, {31, 21, 15, 34}, {1611, 14407, 14082, 2858}},
        {4194353, {4127, 9647, 1987, 5410}, {1478161, 3359347, 222964, 3344742}},
        {4194353, {1, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1}},
        {4194353,
         {1, 1, 0, 0, 0, 0, 0, 0},
         {132171, 4062184, 2675172, 1519183, 462763, 3731592, 1824324, 2370031}},
        {769,
         {401, 203, 221, 352, 487, 151, 405, 356, 343, 424, 635, 757, 457, 280, 624, 353,
          496, 353, 624, 280, 457, 757, 635, 424, 343, 356, 405, 151, 487, 352, 221, 203},
         {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
          17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}},
    };
    return v;
}

}  // namespace

HE_TEST(known_answer_vectors) {
    for (const auto& kat : known_answers()) {
        const he_native::NTTTablesPtr t_ptr = get_ntt_tables(kat.input.size(), kat.q);
        const he_native::NTTTables& t = *t_ptr;
        auto a = kat.input;
        he_native::forward_ntt_reference(a.data(), t);
        HE_CHECK(a == kat.forward);
        // the vector also follows from the convention's definition
        HE_CHECK(direct_forward_ntt(kat.input, t.psi, kat.q) == kat.forward);
        he_native::inverse_ntt_reference(a.data(), t);
        HE_CHECK(a == kat.input);
    }
}

HE_TEST(hexl_60bit_vector_follows_from_psi) {
    // n = 2: A[0] = a0 + psi a1, A[1] = a0 - psi a1 with psi = 288794978602139552.
    const u64 q = 0xffffffffffc0001ULL;
    const u64 psi = 288794978602139552ULL;
    HE_CHECK_EQ(get_ntt_tables(2, q)->psi, psi);
    HE_CHECK_EQ(1 + psi, 288794978602139553ULL);
    HE_CHECK_EQ(q + 1 - psi, 864126526004445282ULL);
}

HE_TEST(forward_matches_definition) {
    auto gen = rng(1);
    for (u64 n = 2; n <= 256; n *= 2) {
        for (unsigned bits : {17u, 30u, 49u, 60u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            const auto a = random_vector(n, q, gen);
            auto fast = a;
            he_native::forward_ntt_reference(fast.data(), t);
            HE_CHECK(fast == direct_forward_ntt(a, t.psi, q));
        }
    }
}

HE_TEST(round_trip) {
    auto gen = rng(2);
    for (u64 n = 2; n <= 32768; n *= 2) {
        for (unsigned bits : {20u, 40u, 50u, 61u, 62u}) {
            const u64 q = ntt_prime_or_zero(bits, n);
            if (q == 0) continue;
            const he_native::NTTTablesPtr t_ptr = get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            const auto a = random_vector(n, q, gen);
            auto b = a;
            he_native::forward_ntt_reference(b.data(), t);
            for (u64 x : b) HE_REQUIRE(x < q);
            he_native::inverse_ntt_reference(b.data(), t);
            HE_CHECK(a == b);
        }
    }
}
