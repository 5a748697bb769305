// Construction and caching of the per-(n, q) NTT tables. Layouts are documented on
// NTTTables in he_native/ntt.hpp.
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "he_native/ntt.hpp"
#include "modarith.hpp"

namespace he_native {
namespace {

using detail::bit_reverse;
using detail::inv_mod_prime;
using detail::mul_mod_slow;
using detail::pow_mod;
using detail::shoup_companion;
using detail::u64;

unsigned log2_exact(u64 n) {
    unsigned k = 0;
    while ((u64{1} << k) < n) ++k;
    return k;
}

/// Smallest primitive 2n-th root of unity mod prime q (q == 1 mod 2n).
/// Any x^((q-1)/2n) is a 2n-th root; it is primitive iff its n-th power is -1. The
/// primitive 2n-th roots are then exactly r^k for odd k, and we take the least of them,
/// so the choice is canonical (the same rule SEAL and HEXL use).
u64 minimal_primitive_root(u64 n, u64 q) {
    const u64 two_n = 2 * n;
    const u64 cofactor = (q - 1) / two_n;
    u64 r = 0;
    for (u64 x = 2; x < q; ++x) {
        const u64 candidate = pow_mod(x, cofactor, q);
        if (pow_mod(candidate, n, q) == q - 1) {
            r = candidate;
            break;
        }
    }
    if (r == 0) throw std::logic_error("no primitive 2n-th root found although q == 1 mod 2n");
    const u64 r_squared = mul_mod_slow(r, r, q);
    u64 best = r;
    u64 power = r;  // r^k for odd k
    for (u64 k = 3; k < two_n; k += 2) {
        power = mul_mod_slow(power, r_squared, q);
        if (power < best) best = power;
    }
    return best;
}

std::unique_ptr<NTTTables> build_tables(u64 n, u64 q) {
    auto t = std::make_unique<NTTTables>();
    t->n = n;
    t->log_n = log2_exact(n);
    t->q = q;
    t->psi = minimal_primitive_root(n, q);
    t->psi_inv = inv_mod_prime(t->psi, q);
    const unsigned log_n = static_cast<unsigned>(t->log_n);

    // Forward: root_powers[i] = psi^bitrev(i). Walk i in natural order of the exponent.
    t->root_powers.assign(n, 0);
    std::vector<u64> inv_bitrev(n);  // inv_bitrev[i] = psi^-bitrev(i)
    u64 power = 1;
    u64 inv_power = 1;
    for (u64 e = 0; e < n; ++e) {
        const u64 i = bit_reverse(e, log_n);
        t->root_powers[i] = power;
        inv_bitrev[i] = inv_power;
        power = mul_mod_slow(power, t->psi, q);
        inv_power = mul_mod_slow(inv_power, t->psi_inv, q);
    }

    // Inverse: consumption order of the Gentleman-Sande stages h = n/2, n/4, ..., 1.
    t->inv_root_powers.assign(n, 0);
    t->inv_root_powers[0] = 1;
    u64 idx = 1;
    for (u64 h = n / 2; h >= 1; h /= 2) {
        for (u64 i = 0; i < h; ++i) t->inv_root_powers[idx++] = inv_bitrev[h + i];
    }

    t->root_powers_shoup.resize(n);
    t->inv_root_powers_shoup.resize(n);
    for (u64 i = 0; i < n; ++i) {
        t->root_powers_shoup[i] = shoup_companion(t->root_powers[i], q);
        t->inv_root_powers_shoup[i] = shoup_companion(t->inv_root_powers[i], q);
    }
    t->n_inv = inv_mod_prime(n % q, q);
    t->n_inv_shoup = shoup_companion(t->n_inv, q);
    return t;
}

}  // namespace

void validate_ntt_parameters(u64 n, u64 q) {
    if (n < kMinN || n > kMaxN || (n & (n - 1)) != 0) {
        throw std::invalid_argument("n must be a power of two in [2, 65536]; got " +
                                    std::to_string(n));
    }
    if (q >> kMaxModulusBits != 0) {
        throw std::invalid_argument("q must be < 2^62; got " + std::to_string(q));
    }
    if (q % (2 * n) != 1) {
        throw std::invalid_argument("q must be == 1 mod 2n = " + std::to_string(2 * n) +
                                    "; got q = " + std::to_string(q) + " (q mod 2n = " +
                                    std::to_string(q % (2 * n)) + ")");
    }
    if (!is_prime_u64(q)) {
        throw std::invalid_argument("q must be prime; got " + std::to_string(q));
    }
}

const NTTTables& get_ntt_tables(u64 n, u64 q) {
    // Fast path: the last tables this thread used (the common case is many rows or calls
    // with the same (n, q)). Entries are never freed, so the pointer stays valid.
    thread_local const NTTTables* last = nullptr;
    if (last != nullptr && last->n == n && last->q == q) return *last;

    static std::mutex mutex;
    static std::map<std::pair<u64, u64>, std::unique_ptr<NTTTables>> cache;
    {
        std::lock_guard<std::mutex> lock(mutex);
        auto it = cache.find({n, q});
        if (it != cache.end()) {
            last = it->second.get();
            return *last;
        }
    }
    // Validate and build outside the lock (a 65536-point table takes milliseconds); if two
    // threads race, the first insertion wins and the other result is discarded.
    validate_ntt_parameters(n, q);
    auto built = build_tables(n, q);
    std::lock_guard<std::mutex> lock(mutex);
    auto [it, inserted] = cache.emplace(std::make_pair(n, q), std::move(built));
    last = it->second.get();
    return *last;
}

}  // namespace he_native
