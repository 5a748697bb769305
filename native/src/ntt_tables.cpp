// Construction and caching of the per-(n, q) NTT tables. Layouts are documented on
// NTTTables in he_native/ntt.hpp.
#include <cstddef>
#include <list>
#include <new>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "he_native/ntt.hpp"
#include "modarith.hpp"
#if defined(HE_NATIVE_HAVE_AVX512)
#include "ntt_avx512_tables.hpp"
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define HE_NATIVE_HAVE_MMAP 1
#endif

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

std::shared_ptr<NTTTables> build_tables(u64 n, u64 q) {
    auto t = std::make_shared<NTTTables>();
    t->n = n;
    t->log_n = log2_exact(n);
    t->q = q;
    t->psi = minimal_primitive_root(n, q);
    t->psi_inv = inv_mod_prime(t->psi, q);
    const unsigned log_n = static_cast<unsigned>(t->log_n);

    // Forward: root_powers[i] = psi^bitrev(i). Walk i in natural order of the exponent.
    t->root_powers.assign(n, 0);
    TableVector inv_bitrev(n);  // inv_bitrev[i] = psi^-bitrev(i)
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

    const auto vec = [](const TableVector& v) { return v.capacity() * sizeof(u64); };
    t->bytes = sizeof(NTTTables) + vec(t->root_powers) + vec(t->root_powers_shoup) +
               vec(t->inv_root_powers) + vec(t->inv_root_powers_shoup);
#if defined(HE_NATIVE_HAVE_AVX512)
    // Built now, when an AVX-512 tier can run for q, so the entry's size is known when it
    // enters the cache and the kernels find the tables without a second lookup.
    if (tier_supported(NTTTier::AVX512IFMA, q) || tier_supported(NTTTier::AVX512, q)) {
        std::shared_ptr<const avx512_detail::AVX512Tables> simd =
            avx512_detail::build_avx512_tables(*t);
        t->bytes += avx512_detail::avx512_tables_bytes(*simd);
        t->simd = std::move(simd);
    }
#endif
    return t;
}

/// The process-wide table cache: least-recently-used entries are evicted so that the sum
/// of NTTTables::bytes never exceeds the budget. Evicting only drops the cache's reference;
/// callers holding an NTTTablesPtr keep using their tables safely.
class TableCache {
public:
    NTTTablesPtr find(u64 n, u64 q) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = index_.find(Key{n, q});
        if (it == index_.end()) return nullptr;
        lru_.splice(lru_.begin(), lru_, it->second);  // now the most recent
        ++hits_;
        return *it->second;
    }

    /// Inserts freshly built tables (or returns the entry another thread inserted first).
    NTTTablesPtr insert(NTTTablesPtr built) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++misses_;
        const Key key{built->n, built->q};
        auto it = index_.find(key);
        if (it != index_.end()) {  // lost a race: keep the cached one
            lru_.splice(lru_.begin(), lru_, it->second);
            return *it->second;
        }
        if (built->bytes > budget_) return built;  // too big to keep: the caller owns it
        lru_.push_front(built);
        index_.emplace(key, lru_.begin());
        bytes_ += built->bytes;
        evict_to(budget_);
        return built;
    }

    void set_budget(std::size_t budget) {
        std::lock_guard<std::mutex> lock(mutex_);
        budget_ = budget;
        evict_to(budget_);
    }

    void clear() {
        std::lock_guard<std::mutex> lock(mutex_);
        evict_to(0);
        hits_ = misses_ = evictions_ = 0;
    }

    NTTTableCacheStats stats() {
        std::lock_guard<std::mutex> lock(mutex_);
        NTTTableCacheStats s;
        s.entries = lru_.size();
        s.bytes = bytes_;
        s.budget = budget_;
        s.hits = hits_;
        s.misses = misses_;
        s.evictions = evictions_;
        return s;
    }

private:
    struct Key {
        u64 n, q;
        bool operator==(const Key& o) const { return n == o.n && q == o.q; }
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const {
            return std::hash<u64>()(k.q ^ (k.n * 0x9E3779B97F4A7C15ULL));
        }
    };
    using List = std::list<NTTTablesPtr>;

    void evict_to(std::size_t limit) {  // mutex held
        while (bytes_ > limit && !lru_.empty()) {
            const NTTTablesPtr& victim = lru_.back();
            bytes_ -= victim->bytes;
            index_.erase(Key{victim->n, victim->q});
            lru_.pop_back();  // freed here unless a caller still holds it
            ++evictions_;
        }
    }

    std::mutex mutex_;
    List lru_;  // front: most recently used
    std::unordered_map<Key, List::iterator, KeyHash> index_;
    std::size_t bytes_ = 0;
    std::size_t budget_ = kDefaultNTTTableCacheBytes;
    std::uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
};

TableCache& table_cache() {
    static TableCache* cache = new TableCache();  // never destroyed: usable during exit
    return *cache;
}

constexpr std::size_t kMmapMinBytes = std::size_t{64} << 10;
constexpr std::size_t kStorageAlign = 64;

}  // namespace

void* table_storage_allocate(std::size_t bytes) {
#if defined(HE_NATIVE_HAVE_MMAP)
    if (bytes >= kMmapMinBytes) {
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        return p;  // page aligned
    }
#endif
    return ::operator new(bytes, std::align_val_t{kStorageAlign});
}

void table_storage_free(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
#if defined(HE_NATIVE_HAVE_MMAP)
    if (bytes >= kMmapMinBytes) {
        munmap(p, bytes);
        return;
    }
#endif
    (void)bytes;
    ::operator delete(p, std::align_val_t{kStorageAlign});
}

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

NTTTablesPtr get_ntt_tables(u64 n, u64 q) {
    if (NTTTablesPtr hit = table_cache().find(n, q)) return hit;
    // Validate and build outside the lock (a 65536-point table takes milliseconds) so other
    // lookups are not blocked; if two threads race, the first insertion wins.
    validate_ntt_parameters(n, q);
    return table_cache().insert(build_tables(n, q));
}

void set_ntt_table_cache_budget(std::size_t bytes) { table_cache().set_budget(bytes); }

NTTTableCacheStats ntt_table_cache_stats() { return table_cache().stats(); }

void clear_ntt_table_cache() { table_cache().clear(); }

}  // namespace he_native
