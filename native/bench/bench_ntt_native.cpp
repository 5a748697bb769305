// Micro-benchmark of the NTT tiers in C++ (no Python overhead).
//   bench_ntt_native [reps]   -> best-of-reps time per forward and per inverse transform
// Best-of rather than median: on a shared machine the minimum is the least disturbed run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "he_native/ntt.hpp"

using he_native::NTTTier;

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::atoi(argv[1]) : 200;
    std::mt19937_64 gen(1);
    std::printf("%6s %5s %-11s %12s %12s %10s\n", "n", "bits", "tier", "forward_us", "inverse_us",
                "ns/bfly");
    for (unsigned bits : {50u, 60u}) {
        for (std::uint64_t n : {4096ULL, 8192ULL, 16384ULL, 32768ULL}) {
            const std::uint64_t q = he_native::find_ntt_primes(bits, n, 1)[0];
            const he_native::NTTTablesPtr t_ptr = he_native::get_ntt_tables(n, q);
            const he_native::NTTTables& t = *t_ptr;
            std::vector<std::uint64_t> a(n);
            for (auto& x : a) x = gen() % q;
            for (NTTTier tier : {NTTTier::Scalar, NTTTier::AVX512, NTTTier::AVX512IFMA}) {
                if (!he_native::tier_supported(tier, q)) continue;
                double best_f = 1e30, best_i = 1e30;
                for (int r = 0; r < reps; ++r) {
                    auto t0 = std::chrono::steady_clock::now();
                    he_native::forward_ntt(a.data(), t, tier);
                    auto t1 = std::chrono::steady_clock::now();
                    he_native::inverse_ntt(a.data(), t, tier);
                    auto t2 = std::chrono::steady_clock::now();
                    best_f = std::min(best_f, std::chrono::duration<double, std::micro>(t1 - t0).count());
                    best_i = std::min(best_i, std::chrono::duration<double, std::micro>(t2 - t1).count());
                }
                const double butterflies = double(n) / 2 * double(t.log_n);
                std::printf("%6llu %5u %-11s %12.2f %12.2f %10.3f\n", (unsigned long long)n, bits,
                            he_native::tier_name(tier), best_f, best_i,
                            (best_f + best_i) * 1e3 / (2 * butterflies));
            }
        }
    }
    return 0;
}
