// The coefficient range check of the bindings: the AVX-512 scan (when it runs here) and
// the scalar scan against a plain loop, for every length 0..70 and the transform sizes,
// with the offender at every kind of position (first, each lane of the masked tail,
// inside the unrolled body) and at the boundary values q - 1, q, 2^64 - 1.
#include <cstdint>
#include <limits>
#include <vector>

#include "test_harness.hpp"
#include "test_util.hpp"

using namespace he_test;

namespace {

std::size_t first_not_below_plain(const std::vector<u64>& a, std::size_t n, u64 q) {
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] >= q) return i;
    }
    return n;
}

void check_all_paths(const std::vector<u64>& a, std::size_t n, u64 q) {
    const std::size_t expected = first_not_below_plain(a, n, q);
    HE_CHECK_EQ(he_native::find_first_not_below_scalar(a.data(), n, q), expected);
    HE_CHECK_EQ(he_native::find_first_not_below(a.data(), n, q), expected);
#if defined(HE_NATIVE_HAVE_AVX512)
    if (he_native::range_check_uses_avx512()) {
        HE_CHECK_EQ(he_native::all_below_avx512(a.data(), n, q), expected == n);
    }
#endif
}

std::vector<std::size_t> lengths() {
    std::vector<std::size_t> ns;
    for (std::size_t n = 0; n <= 70; ++n) ns.push_back(n);
    for (std::size_t n = 128; n <= 65536; n *= 4) ns.push_back(n);
    return ns;
}

}  // namespace

HE_TEST(range_check_in_range_rows) {
    std::mt19937_64 gen(11);
    for (u64 q : {u64{2}, u64{97}, (u64{1} << 50) - 27, (u64{1} << 62) - 57}) {
        for (std::size_t n : lengths()) {
            std::vector<u64> a(n);
            for (auto& x : a) x = gen() % q;
            if (n > 0) a[n - 1] = q - 1;  // the largest valid value
            check_all_paths(a, n, q);
        }
    }
}

HE_TEST(range_check_finds_the_first_offender) {
    std::mt19937_64 gen(12);
    const u64 q = (u64{1} << 50) - 27;
    for (std::size_t n : lengths()) {
        if (n == 0) continue;
        std::vector<std::size_t> positions = {0, n - 1, n / 2};
        if (n > 8) positions.push_back(n - 8 + gen() % 8);  // in the masked tail or last vector
        if (n > 40) positions.push_back(33);                // inside the unrolled body
        for (std::size_t pos : positions) {
            for (u64 bad : {q, q + 1, std::numeric_limits<u64>::max()}) {
                std::vector<u64> a(n);
                for (auto& x : a) x = gen() % q;
                a[pos] = bad;
                check_all_paths(a, n, q);
                // a second, later offender must not change the answer
                if (pos + 1 < n) {
                    a[n - 1] = bad;
                    check_all_paths(a, n, q);
                }
            }
        }
    }
}

HE_TEST(range_check_does_not_read_past_the_end) {
    // Exactly-sized heap blocks: AddressSanitizer (run_native_tests.sh) flags any read past
    // n, including by the masked tail load.
    for (std::size_t n = 1; n <= 40; ++n) {
        std::vector<u64> a(n, 5);
        a.shrink_to_fit();
        check_all_paths(a, n, 6);
        check_all_paths(a, n, 5);
    }
}
