// he_native: negacyclic NTT over Z_q[X]/(X^n + 1).
//
// Conventions (shared by every tier, the numba fallback and the tests):
//   * n is a power of two, 2 <= n <= 65536; q is prime, q < 2^62, q == 1 (mod 2n).
//   * psi is the *smallest* primitive 2n-th root of unity mod q (psi^n == q - 1).
//   * forward NTT output is in bit-reversed order:
//         A[j] = sum_i a[i] * psi^((2*bitrev(j) + 1) * i)  (mod q),  bitrev over log2(n) bits.
//   * inverse NTT takes that order back to natural coefficient order; intt(ntt(a)) == a.
//   * all public entry points take and return values in [0, q).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace he_native {

namespace avx512_detail {
struct AVX512Tables;  // private to the AVX-512 tiers (native/src/ntt_avx512_tables.hpp)
}

/// Raw storage of the tables: 64-byte aligned; blocks of 64 KiB and more are mapped
/// straight from the OS (mmap) and unmapped when freed, so memory released by the table
/// cache's evictions really leaves the process instead of fragmenting malloc's heap (with
/// glibc's adaptive mmap threshold, 300 evicted n = 65536 entries left ~190 MiB of heap
/// behind on top of a 256 MiB budget).
void* table_storage_allocate(std::size_t bytes);
void table_storage_free(void* p, std::size_t bytes) noexcept;

template <class T>
struct TableAllocator {
    using value_type = T;
    TableAllocator() = default;
    template <class U>
    TableAllocator(const TableAllocator<U>&) noexcept {}
    T* allocate(std::size_t count) {
        return static_cast<T*>(table_storage_allocate(count * sizeof(T)));
    }
    void deallocate(T* p, std::size_t count) noexcept { table_storage_free(p, count * sizeof(T)); }
    template <class U>
    bool operator==(const TableAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const TableAllocator<U>&) const noexcept { return false; }
};

/// A table of n 64-bit entries (see table_storage_allocate).
using TableVector = std::vector<std::uint64_t, TableAllocator<std::uint64_t>>;

/// Precomputed tables for one (n, q). Built once, cached (see get_ntt_tables), immutable
/// afterwards (safe to share between threads); alive while a NTTTablesPtr holds them.
/// Layout invariants:
///   root_powers[i]        = psi^bitrev(i)           (i in [0, n), bit-reversed order, [0] == 1)
///   root_powers_shoup[i]  = floor(root_powers[i] * 2^64 / q)
///   inv_root_powers       = inverse roots in the order the inverse (Gentleman-Sande)
///                           butterflies consume them (the layout Intel HEXL uses):
///                           [0] == 1 (unused); then for each stage, h = n/2, n/4, ..., 1
///                           butterfly groups (butterfly distance t = n/(2h) = 1, 2, ..., n/2),
///                           the h roots psi^-bitrev(h + i), i = 0..h-1, consecutively, i.e.
///                             inv_root_powers[n + 1 - 2h + i] = psi^-bitrev(h + i)
///                           (bitrev over log2(n) bits). Group i of that stage is
///                           a[2ti .. 2ti+2t) and its butterfly is
///                             (x, y) -> (x + y, (x - y) * psi^-bitrev(h + i)).
///                           A counter starting at 1 and incremented once per group walks it.
///   inv_root_powers_shoup = floor(inv_root_powers[i] * 2^64 / q)
///   n_inv                 = n^-1 mod q, n_inv_shoup = floor(n_inv * 2^64 / q)
///   Forward (Cooley-Tukey) uses root_powers the same way: stage with m groups
///   (m = 1, 2, ..., n/2, distance t = n/(2m)), group i is a[2ti .. 2ti+2t) and its
///   butterfly is (x, y) -> (x + w*y, x - w*y) with w = root_powers[m + i].
///   All tables have exactly n entries.
struct NTTTables {
    std::uint64_t n = 0;
    std::uint64_t log_n = 0;
    std::uint64_t q = 0;
    std::uint64_t psi = 0;          ///< smallest primitive 2n-th root of unity
    std::uint64_t psi_inv = 0;
    TableVector root_powers;
    TableVector root_powers_shoup;
    TableVector inv_root_powers;
    TableVector inv_root_powers_shoup;
    std::uint64_t n_inv = 0;
    std::uint64_t n_inv_shoup = 0;
    /// Extra tables of the AVX-512 tiers, built together with these when an AVX-512 tier
    /// can run for q on this CPU (else null; the kernels then build a temporary copy).
    /// Owned here so that the cache's byte budget and eviction cover them too.
    std::shared_ptr<const avx512_detail::AVX512Tables> simd;
    /// Bytes this entry holds (all tables, SIMD ones included): what the cache charges.
    std::size_t bytes = 0;
};

/// Shared ownership of immutable tables: the cache may evict an entry at any time, and
/// the entry is freed when the last holder lets go, so keep the pointer for as long as
/// the tables are used (e.g. for a whole batch of transforms).
using NTTTablesPtr = std::shared_ptr<const NTTTables>;

/// Supported transform sizes and modulus width (q < 2^kMaxModulusBits keeps 4q < 2^64,
/// the headroom of the lazy butterflies).
inline constexpr std::uint64_t kMinN = 2;
inline constexpr std::uint64_t kMaxN = 65536;
inline constexpr unsigned kMaxModulusBits = 62;

/// Checks that (n, q) is valid for a negacyclic NTT: n a power of two in [kMinN, kMaxN],
/// q < 2^62, q prime, q == 1 (mod 2n). Throws std::invalid_argument with a message of the
/// form "<what> must be X; got Y" otherwise.
void validate_ntt_parameters(std::uint64_t n, std::uint64_t q);

/// Tables for (n, q), built on first use and kept in a process-wide LRU cache bounded by
/// bytes (see set_ntt_table_cache_budget). Thread-safe: concurrent callers share one mutex
/// for the lookup; tables are built outside it. Throws like validate_ntt_parameters.
NTTTablesPtr get_ntt_tables(std::uint64_t n, std::uint64_t q);

/// Default byte budget of the table cache: 256 MiB, i.e. about 50 primes at n = 65536
/// with the AVX-512 IFMA tables (5 MiB each), or 100 at n = 32768.
inline constexpr std::size_t kDefaultNTTTableCacheBytes = std::size_t{256} << 20;

/// Sets the byte budget of the table cache and evicts least-recently-used entries until
/// the cache fits. 0 disables caching (every lookup builds tables, which the caller owns).
/// An entry larger than the budget is returned to the caller but not kept.
void set_ntt_table_cache_budget(std::size_t bytes);

/// Counters of the table cache (a consistent snapshot).
struct NTTTableCacheStats {
    std::size_t entries = 0;
    std::size_t bytes = 0;      ///< sum of NTTTables::bytes over the cached entries
    std::size_t budget = 0;     ///< bytes <= budget at all times
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;   ///< lookups that built tables
    std::uint64_t evictions = 0;
};
NTTTableCacheStats ntt_table_cache_stats();

/// Drops every cached entry (holders keep theirs alive) and resets the counters.
void clear_ntt_table_cache();

/// Which kernel family runs.
enum class NTTTier { Reference, Scalar, AVX512IFMA, AVX512 };

const char* tier_name(NTTTier tier);

/// CPU features relevant to the tiers, detected once (cpuid + xgetbv).
/// os_avx512: the OS saves opmask and zmm state (XCR0 bits 5-7 and 1-2 set).
struct CPUFeatures {
    bool avx2 = false;
    bool avx512f = false;
    bool avx512dq = false;
    bool avx512vl = false;
    bool avx512bw = false;
    bool avx512ifma = false;
    bool os_avx512 = false;
};
const CPUFeatures& cpu_features();

/// True if the tier's kernels are compiled into this library (Reference and Scalar always).
bool tier_compiled(NTTTier tier);

/// True if the environment kill switch for the tier is set (read once at first use):
/// HE_ML_DISABLE_AVX512IFMA / HE_ML_DISABLE_AVX512 set to anything except "", "0",
/// "false", "no", "off". Reference and Scalar cannot be disabled.
bool tier_disabled_by_env(NTTTier tier);

/// Tier that `Auto` dispatch picks for modulus q on this CPU with the current
/// environment kill switches (HE_ML_DISABLE_AVX512IFMA, HE_ML_DISABLE_AVX512).
NTTTier select_tier(std::uint64_t q);

/// Forward / inverse transforms on one polynomial of length t.n, in place,
/// input and output in [0, q). `tier` must be valid for q (checked by the caller
/// through tier_supported()); an uncompiled tier throws std::invalid_argument.
void forward_ntt(std::uint64_t* a, const NTTTables& t, NTTTier tier);
void inverse_ntt(std::uint64_t* a, const NTTTables& t, NTTTier tier);
/// Out-of-place forms: out = NTT(in) (resp. the inverse) with in only read; in == out is
/// the in-place transform, any other overlap is not allowed. The AVX-512 tiers fuse the
/// copy into their first pass over memory; the scalar and reference tiers copy first.
void forward_ntt(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t, NTTTier tier);
void inverse_ntt(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t, NTTTier tier);
/// compiled in && CPU has it && not disabled by the environment && q within the tier's
/// range (IFMA: q < 2^50; AVX512, Scalar, Reference: q < 2^62).
bool tier_supported(NTTTier tier, std::uint64_t q);

// ---- kernels, by tier (names state the output range) ----
void forward_ntt_reference(std::uint64_t* a, const NTTTables& t);
void inverse_ntt_reference(std::uint64_t* a, const NTTTables& t);
void forward_ntt_scalar(std::uint64_t* a, const NTTTables& t);   // Harvey lazy inside, [0, q) out
void inverse_ntt_scalar(std::uint64_t* a, const NTTTables& t);
#if defined(HE_NATIVE_HAVE_AVX512)
void forward_ntt_avx512ifma(std::uint64_t* a, const NTTTables& t);  // q < 2^50
void inverse_ntt_avx512ifma(std::uint64_t* a, const NTTTables& t);
void forward_ntt_avx512(std::uint64_t* a, const NTTTables& t);      // any q < 2^62
void inverse_ntt_avx512(std::uint64_t* a, const NTTTables& t);
// out-of-place forms (in only read; in == out allowed)
void forward_ntt_avx512ifma(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t);
void inverse_ntt_avx512ifma(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t);
void forward_ntt_avx512(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t);
void inverse_ntt_avx512(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t);
#endif

// ---- element-wise and polynomial operations ----
/// out[i] = a[i] * b[i] mod q; a, b in [0, q); q < 2^62 odd; out may alias a or b.
void pointwise_mul_mod(const std::uint64_t* a, const std::uint64_t* b, std::uint64_t* out,
                       std::size_t n, std::uint64_t q);
/// Negacyclic product out = a * b mod (X^n + 1, q); a, b in [0, q); (n, q) valid for
/// get_ntt_tables. out may alias a and/or b (inputs are copied before use).
void polymul_negacyclic(const std::uint64_t* a, const std::uint64_t* b, std::uint64_t* out,
                        std::size_t n, std::uint64_t q, NTTTier tier);
/// The same with tables the caller already holds (no cache lookup).
void polymul_negacyclic(const std::uint64_t* a, const std::uint64_t* b, std::uint64_t* out,
                        const NTTTables& t, NTTTier tier);

// ---- input checks ----
/// Index of the first a[i] >= q in a[0, n), or n if every element is below q.
/// Runs the AVX-512 scan when range_check_uses_avx512(), else the scalar one; both
/// give the same answer for every input.
std::size_t find_first_not_below(const std::uint64_t* a, std::size_t n, std::uint64_t q);
/// The portable early-exit scan (what find_first_not_below falls back to).
std::size_t find_first_not_below_scalar(const std::uint64_t* a, std::size_t n, std::uint64_t q);
/// AVX-512F compiled in, supported by the CPU and OS, and HE_ML_DISABLE_AVX512 unset.
bool range_check_uses_avx512();
#if defined(HE_NATIVE_HAVE_AVX512)
/// True iff every a[i] < q, i in [0, n) (any n, including 0). AVX-512F only: call it
/// only when range_check_uses_avx512().
bool all_below_avx512(const std::uint64_t* a, std::size_t n, std::uint64_t q);
#endif

// ---- number theory ----
bool is_prime_u64(std::uint64_t q);  ///< deterministic Miller-Rabin for all 64-bit q
/// `count` distinct primes of exactly `bits` bits with q == 1 mod 2n, largest first
/// (scanning down from 2^bits - 2n + 1 in steps of 2n). n: power of two in [2, 65536];
/// bits in [log2(n) + 2, 62] (below that no candidate has `bits` bits); count in [1, 65536].
/// Throws std::invalid_argument on bad arguments or when fewer than `count` such primes exist.
std::vector<std::uint64_t> find_ntt_primes(unsigned bits, std::uint64_t n, std::size_t count);

}  // namespace he_native
