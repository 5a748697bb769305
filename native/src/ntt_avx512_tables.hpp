// he_native: tables and shared pass skeletons for the AVX-512 NTT tiers.
//
// Private header of ntt_avx512ifma.cpp (compiled with -mavx512f -mavx512dq
// -mavx512vl -mavx512ifma) and ntt_avx512.cpp (the same without -mavx512ifma:
// the 64-bit tier must not depend on IFMA). The SIMD part is compiled only
// when __AVX512F__ is defined, so tests built with baseline flags can include
// it to check the tables.
//
// What lives here
// ---------------
//   * AVX512Tables: per-(n, q) tables the SIMD kernels need beyond NTTTables
//     (52-bit Shoup factors for IFMA, inverse roots in forward index order with
//     64- and 52-bit Shoup factors, n^-1 folded into the last inverse layer),
//     built from NTTTables::root_powers together with the portable tables and
//     owned by them (NTTTables::simd), so the table cache's byte budget covers
//     both.
//   * The pass skeletons, written once and instantiated with a butterfly
//     policy (IFMA 52-bit in ntt_avx512ifma.cpp, 64-bit lanes in ntt_avx512.cpp):
//     radix-4 passes (two layers per sweep over memory) for the strides >= 16,
//     and a register-resident pass over 16-element blocks for the strides
//     8, 4, 2, 1 (forward "tail" / inverse "head"), which also takes stride 16
//     when the number of layers of stride >= 16 is odd, so that no radix-2
//     sweep is ever needed.
//
// Notation. Layer m (m = 1, 2, 4, ..., n/2) has m groups of 2t = n/m elements;
// group i pairs a[j] with a[j + t] for j in [2it, 2it + t) and uses the root
// w[m + i] where w[k] = psi^bitrev(k) (NTTTables::root_powers). The forward
// transform runs m = 1 .. n/2 with Cooley-Tukey butterflies, the inverse runs
// m = n/2 .. 1 with Gentleman-Sande butterflies and the roots iw[k] = w[k]^-1
// (each inverse butterfly undoes the forward one up to a factor 2; the factors
// accumulate to n, removed by folding n^-1 into the last layer, m = 1).
//
// Lane layouts of the tail pass. A 16-element block e0..e15 is loaded as two
// vectors v0 = e0..e7, v1 = e8..e15. Stride 8 pairs (v0, v1) directly. For the
// strides 4, 2, 1 the block is re-shuffled so that lane k of X and lane k of Y
// always hold a butterfly pair, with the layouts chosen so that every root
// vector is a plain (broadcast) load from w[] and every re-shuffle is the same
// two-source "perfect shuffle" P(x, y) = (x0 y0 x1 y1 x2 y2 x3 y3 | x4 y4 ...):
//     stride 4: X = e0 e8  e1 e9  e2 e10 e3 e11   roots (w[m+2b], w[m+2b+1]) x 4
//               Y = e4 e12 e5 e13 e6 e14 e7 e15   -> 128-bit broadcast load
//     stride 2: X = e0 e4 e8 e12 e1 e5 e9 e13     roots w[m+4b .. m+4b+3] x 2
//               Y = e2 e6 e10 e14 e3 e7 e11 e15   -> 256-bit broadcast load
//     stride 1: X = e0 e2 .. e14, Y = e1 e3 .. e15 roots w[m+8b .. m+8b+7]
// Each arrow (natural -> s4 -> s2 -> s1 -> natural) is (P_lo(X, Y), P_hi(X, Y)),
// two vpermt2q; the inverse walks the same chain backwards with the inverse
// shuffle (evens, odds). So three layers cost 8 shuffles per 16 elements and
// no replicated root tables are needed.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports -Wmaybe-uninitialized inside the AVX-512 intrinsic headers
// (their _mm512_undefined_epi32() placeholder; GCC bug 105593): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <tuple>
#include <vector>

#include "he_native/ntt.hpp"

#define HE_AVX512_INLINE inline __attribute__((always_inline))

namespace he_native::avx512_detail {

// ---------------------------------------------------------------------------
// Scalar helpers used only while building tables and for tiny n.
// ---------------------------------------------------------------------------

HE_AVX512_INLINE std::uint64_t mulmod_u64(std::uint64_t a, std::uint64_t b, std::uint64_t q) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(a) * b) % q);
}

inline std::uint64_t powmod_u64(std::uint64_t base, std::uint64_t e, std::uint64_t q) {
    std::uint64_t r = 1 % q;
    base %= q;
    while (e != 0) {
        if (e & 1) r = mulmod_u64(r, base, q);
        base = mulmod_u64(base, base, q);
        e >>= 1;
    }
    return r;
}

/// floor(w * 2^bits / q) for w < q, bits in {52, 64}.
inline std::uint64_t shoup_factor(std::uint64_t w, std::uint64_t q, unsigned bits) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(w) << bits) / q);
}

inline std::uint64_t bit_reverse(std::uint64_t x, std::uint64_t log_n) {
    std::uint64_t r = 0;
    for (std::uint64_t b = 0; b < log_n; ++b) {
        r = (r << 1) | ((x >> b) & 1);
    }
    return r;
}

/// 64-byte aligned (cache-line) storage, mapped from the OS when large: see
/// he_native::TableAllocator.
using AlignedU64 = TableVector;

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

/// Extra tables of the AVX-512 tiers for one (n, q, psi). Immutable once built.
///
/// Layout invariants (k in [0, n); index k is the root of layer m, group i
/// with k = m + i, exactly as in NTTTables::root_powers):
///   fwd_w[k]    = psi^bitrev(k)                       (copy of root_powers)
///   fwd_w52[k]  = floor(fwd_w[k] * 2^52 / q)          (only if q < 2^50)
///   fwd_w64[k]  = floor(fwd_w[k] * 2^64 / q)
///   inv_w[k]    = psi^-bitrev(k) = fwd_w[k]^-1 mod q
///   inv_w52[k], inv_w64[k]: the same Shoup factors for inv_w
///   n_inv* = n^-1 and its factors; inv_w1_n_inv* = inv_w[1] * n^-1 and its factors
///   (both used by the last inverse layer, m = 1, which also removes the 1/n).
struct AVX512Tables {
    std::uint64_t n = 0;
    std::uint64_t log_n = 0;
    std::uint64_t q = 0;
    std::uint64_t psi = 0;
    bool has_52bit = false;  ///< q < 2^50: the *_52 tables are filled
    AlignedU64 fwd_w, fwd_w52, fwd_w64;
    AlignedU64 inv_w, inv_w52, inv_w64;
    std::uint64_t n_inv = 0, n_inv52 = 0, n_inv64 = 0;
    std::uint64_t inv_w1_n_inv = 0, inv_w1_n_inv52 = 0, inv_w1_n_inv64 = 0;
};

/// The largest modulus the IFMA tier accepts: 4q must fit in 52 bits.
inline constexpr std::uint64_t kIfmaModulusBound = std::uint64_t{1} << 50;
/// The largest modulus the 64-bit tier accepts: 4q must fit in 64 bits.
inline constexpr std::uint64_t kAvx512ModulusBound = std::uint64_t{1} << 62;

/// Builds the AVX-512 tables from t's portable tables. Defined in ntt_avx512_tables.cpp,
/// which is compiled with baseline flags: table building is scalar code and must run (and
/// be linked) without any instruction the CPU might lack, whichever kernel TU calls it.
std::unique_ptr<AVX512Tables> build_avx512_tables(const NTTTables& t);

/// Bytes held by tb's vectors (what the table cache charges for them).
std::size_t avx512_tables_bytes(const AVX512Tables& tb);

/// A 64-byte aligned buffer of at least n entries owned by the calling thread (grown on
/// demand, at most kMaxN entries = 512 KiB, freed at thread exit), where the pass skeletons
/// run their intermediate passes when the caller's array is not 64-byte aligned (see
/// forward_ntt_passes). Defined in ntt_avx512_tables.cpp (baseline flags).
std::uint64_t* aligned_work_buffer(std::size_t n);

/// True if p is 64-byte (cache-line) aligned: every 64-byte vector access then stays within
/// one cache line.
inline bool is_cache_line_aligned(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % 64 == 0;
}

/// The AVX-512 tables of t for the duration of one kernel call: t.simd when the cache built
/// them with t (the normal case, no lookup at all), else a temporary copy built into
/// `scratch` (tables made outside get_ntt_tables, or an AVX-512 tier switched off by the
/// environment but called directly).
inline const AVX512Tables& avx512_tables_for(const NTTTables& t,
                                            std::unique_ptr<AVX512Tables>& scratch) {
    if (t.simd) return *t.simd;
    scratch = build_avx512_tables(t);
    return *scratch;
}

// ---------------------------------------------------------------------------
// Plain transforms for n < 16 (too short for the 16-element tail pass).
// Exact arithmetic, outputs in [0, q).
// ---------------------------------------------------------------------------

inline void forward_ntt_small(std::uint64_t* a, const AVX512Tables& tb) {
    const std::uint64_t n = tb.n, q = tb.q;
    for (std::uint64_t m = 1, t = n / 2; m < n; m *= 2, t /= 2) {
        for (std::uint64_t i = 0; i < m; ++i) {
            const std::uint64_t w = tb.fwd_w[m + i];
            for (std::uint64_t j = 2 * i * t; j < 2 * i * t + t; ++j) {
                const std::uint64_t x = a[j];
                const std::uint64_t wy = mulmod_u64(w, a[j + t], q);
                a[j] = x + wy >= q ? x + wy - q : x + wy;
                a[j + t] = x >= wy ? x - wy : x + q - wy;
            }
        }
    }
}

inline void inverse_ntt_small(std::uint64_t* a, const AVX512Tables& tb) {
    const std::uint64_t n = tb.n, q = tb.q;
    for (std::uint64_t m = n / 2, t = 1; m >= 1; m /= 2, t *= 2) {
        for (std::uint64_t i = 0; i < m; ++i) {
            const std::uint64_t w = tb.inv_w[m + i];
            for (std::uint64_t j = 2 * i * t; j < 2 * i * t + t; ++j) {
                const std::uint64_t x = a[j], y = a[j + t];
                a[j] = x + y >= q ? x + y - q : x + y;
                a[j + t] = mulmod_u64(x >= y ? x - y : x + q - y, w, q);
            }
        }
    }
    for (std::uint64_t j = 0; j < n; ++j) a[j] = mulmod_u64(a[j], tb.n_inv, q);
}

}  // namespace he_native::avx512_detail

#if defined(__AVX512F__)
#include <immintrin.h>

namespace he_native::avx512_detail {

// ---------------------------------------------------------------------------
// Pass skeletons (only in translation units compiled with AVX-512 enabled; the
// tables above are plain C++ so that tests can inspect them).
// `Ops` is a butterfly policy with
//   using Root = ...;        a root and its Shoup factor(s), in registers
//   Root root_bcast(k)       w[k] in all lanes       (w = forward or inverse
//   Root root_x2(k)          (w[k], w[k+1]) x 4       roots, fixed when the
//   Root root_x4(k)          (w[k .. k+3]) x 2        policy object is made)
//   Root root_x8(k)          w[k .. k+7]
//   void fwd_bf(X, Y, Root)   Cooley-Tukey, lazy: values stay in the policy's
//                             forward range (e.g. Harvey's [0, 4q))
//   void inv_bf(X, Y, Root)   Gentleman-Sande, lazy (e.g. [0, 2q))
//   void fwd_bf_first(X, Y, Root)  fwd_bf for canonical X (the first layer)
//   void inv_bf_first(X, Y, Root)  inv_bf for canonical X, Y (the first layer)
//   void inv_bf_last(X, Y)    layer m = 1 with n^-1 folded in, outputs in [0, q)
//   __m512i reduce_out(v)     forward range -> [0, q)
// Inputs in [0, q) lie inside every policy's ranges.
// ---------------------------------------------------------------------------

HE_AVX512_INLINE __m512i load(const std::uint64_t* p) { return _mm512_loadu_si512(p); }
HE_AVX512_INLINE void store(std::uint64_t* p, __m512i v) { _mm512_storeu_si512(p, v); }

/// Index vectors of the perfect shuffle P and its inverse (see file header).
struct ShuffleIdx {
    __m512i lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    __m512i hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
};

HE_AVX512_INLINE void shuffle_fwd(__m512i& x, __m512i& y, const ShuffleIdx& s) {
    const __m512i nx = _mm512_permutex2var_epi64(x, s.lo, y);
    y = _mm512_permutex2var_epi64(x, s.hi, y);
    x = nx;
}

HE_AVX512_INLINE void shuffle_inv(__m512i& x, __m512i& y, const ShuffleIdx& s) {
    const __m512i nx = _mm512_permutex2var_epi64(x, s.even, y);
    y = _mm512_permutex2var_epi64(x, s.odd, y);
    x = nx;
}

/// Forward layers m and 2m in one pass (radix-4): stride t = n / (2m) >= 16.
/// A group of layer m is four quarters A B C D of h = t/2 elements; layer m
/// pairs (A, C), (B, D), layer 2m pairs (A, B) and (C, D).
/// kFirst: layer m is the transform's first (m = 1), whose inputs are canonical.
/// The pass reads from `in` and writes to `a` (in == a: in place; otherwise the pass also
/// copies, which is how the out-of-place transforms avoid a separate copy sweep).
template <bool kFirst, class Ops>
HE_AVX512_INLINE void fwd_radix4_pass(std::uint64_t* a, const std::uint64_t* in, std::uint64_t m,
                                      std::uint64_t t, const Ops& ops) {
    const std::uint64_t h = t / 2;
    for (std::uint64_t i = 0; i < m; ++i) {
        const auto w1 = ops.root_bcast(m + i);
        const auto w2a = ops.root_bcast(2 * m + 2 * i);
        const auto w2b = ops.root_bcast(2 * m + 2 * i + 1);
        std::uint64_t* pa = a + 2 * i * t;
        std::uint64_t* pb = pa + h;
        std::uint64_t* pc = pa + t;
        std::uint64_t* pd = pc + h;
        const std::uint64_t* ia = in + 2 * i * t;
        for (std::uint64_t j = 0; j < h; j += 8) {
            __m512i A = load(ia + j), B = load(ia + h + j), C = load(ia + t + j), D = load(ia + t + h + j);
            if constexpr (kFirst) {
                ops.fwd_bf_first(A, C, w1);
                ops.fwd_bf_first(B, D, w1);
            } else {
                ops.fwd_bf(A, C, w1);
                ops.fwd_bf(B, D, w1);
            }
            ops.fwd_bf(A, B, w2a);
            ops.fwd_bf(C, D, w2b);
            store(pa + j, A);
            store(pb + j, B);
            store(pc + j, C);
            store(pd + j, D);
        }
    }
}

/// Forward strides (16,) 8, 4, 2, 1 on the K 16-element blocks b0 .. b0+K-1,
/// then the final reduction to [0, q). With kStride16 (K even) the stride-16
/// layer n/32 runs first on each pair of neighbouring blocks. The K blocks are
/// advanced in lockstep: one block alone is a serial chain of four butterflies
/// and four shuffles (~60 cycles of latency); interleaving K of them keeps both
/// vector ports busy.
template <int K, bool kStride16, class Ops>
HE_AVX512_INLINE void fwd_tail_blocks(std::uint64_t* a, const std::uint64_t* in, std::uint64_t n,
                                      std::uint64_t b0, const Ops& ops, const ShuffleIdx& s) {
    const std::uint64_t m16 = n / 32, m8 = n / 16, m4 = n / 8, m2 = n / 4, m1 = n / 2;
    __m512i X[K], Y[K];
    for (int k = 0; k < K; ++k) {
        X[k] = load(in + 16 * (b0 + k));
        Y[k] = load(in + 16 * (b0 + k) + 8);
    }
    if constexpr (kStride16) {
        static_assert(K % 2 == 0, "the stride-16 layer pairs neighbouring blocks");
        for (int k = 0; k < K; k += 2) {
            const auto w = ops.root_bcast(m16 + (b0 + k) / 2);
            ops.fwd_bf(X[k], X[k + 1], w);
            ops.fwd_bf(Y[k], Y[k + 1], w);
        }
    }
    for (int k = 0; k < K; ++k) ops.fwd_bf(X[k], Y[k], ops.root_bcast(m8 + b0 + k));
    for (int k = 0; k < K; ++k) shuffle_fwd(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) ops.fwd_bf(X[k], Y[k], ops.root_x2(m4 + 2 * (b0 + k)));
    for (int k = 0; k < K; ++k) shuffle_fwd(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) ops.fwd_bf(X[k], Y[k], ops.root_x4(m2 + 4 * (b0 + k)));
    for (int k = 0; k < K; ++k) shuffle_fwd(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) ops.fwd_bf(X[k], Y[k], ops.root_x8(m1 + 8 * (b0 + k)));
    for (int k = 0; k < K; ++k) shuffle_fwd(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) {
        store(a + 16 * (b0 + k), ops.reduce_out(X[k]));
        store(a + 16 * (b0 + k) + 8, ops.reduce_out(Y[k]));
    }
}

/// Blocks advanced in lockstep by the tail / head passes (measured: 4 beats 2 and 6).
inline constexpr int kTailBlocks = 4;

/// Forward tail over the whole array (n >= 16; n >= 32 with kStride16).
template <bool kStride16, class Ops>
HE_AVX512_INLINE void fwd_tail_pass(std::uint64_t* a, const std::uint64_t* in, std::uint64_t n,
                                    const Ops& ops) {
    const ShuffleIdx s;
    const std::uint64_t blocks = n / 16;  // a power of two
    if (blocks < kTailBlocks) {
        if constexpr (kStride16) {
            fwd_tail_blocks<2, true>(a, in, n, 0, ops, s);
        } else {
            for (std::uint64_t b = 0; b < blocks; ++b) fwd_tail_blocks<1, false>(a, in, n, b, ops, s);
        }
        return;
    }
    for (std::uint64_t b = 0; b < blocks; b += kTailBlocks) {
        fwd_tail_blocks<kTailBlocks, kStride16>(a, in, n, b, ops, s);
    }
}

/// Forward transform driver (n >= 16). The layers of stride >= 16 number
/// log2(n) - 4; if that is odd the tail pass also does stride 16, so that the
/// rest pairs up exactly into radix-4 passes (no radix-2 pass, which would
/// cost a full extra sweep over memory for one layer).
/// The first pass reads `in` (== a for in place), the tail pass writes `a`.
/// The radix-4 passes in between run on `a` when it is 64-byte aligned, else on
/// the thread's aligned work buffer: numpy's large arrays start 16 bytes past a
/// cache line, where every 64-byte access of every pass straddles two lines
/// (measured 13-25 % slower on the IFMA tier at n >= 4096); this way only the
/// first pass's loads and the tail's stores do.
template <class Ops>
HE_AVX512_INLINE void forward_ntt_passes(std::uint64_t* a, const std::uint64_t* in, std::uint64_t n,
                                         std::uint64_t log_n, const Ops& ops) {
    const bool tail_takes_stride16 = (log_n - 4) % 2 == 1;
    const std::uint64_t last_radix4_t = tail_takes_stride16 ? 64 : 32;  // smallest upper stride pair (t, t/2)
    std::uint64_t m = 1, t = n / 2;
    std::uint64_t* work = a;
    if (t >= last_radix4_t) {
        if (!is_cache_line_aligned(a)) work = aligned_work_buffer(n);
        fwd_radix4_pass<true>(work, in, m, t, ops);
        in = work;
        m *= 4;
        t /= 4;
    }
    for (; t >= last_radix4_t; m *= 4, t /= 4) fwd_radix4_pass<false>(work, work, m, t, ops);
    if (tail_takes_stride16) {
        fwd_tail_pass<true>(a, in, n, ops);
    } else {
        fwd_tail_pass<false>(a, in, n, ops);
    }
}

/// Inverse strides 1, 2, 4, 8 (, 16) on the K 16-element blocks b0 .. b0+K-1,
/// advanced in lockstep (see fwd_tail_blocks); with kStride16 (K even) the
/// stride-16 layer n/32 then runs on each pair of neighbouring blocks. The
/// last layer of the pass takes n^-1 if it is the transform's last (m = 1).
template <int K, bool kStride16, class Ops>
HE_AVX512_INLINE void inv_head_blocks(std::uint64_t* a, const std::uint64_t* in, std::uint64_t n,
                                      std::uint64_t b0, const Ops& ops, const ShuffleIdx& s) {
    const std::uint64_t m16 = n / 32, m8 = n / 16, m4 = n / 8, m2 = n / 4, m1 = n / 2;
    __m512i X[K], Y[K];
    for (int k = 0; k < K; ++k) {
        X[k] = load(in + 16 * (b0 + k));
        Y[k] = load(in + 16 * (b0 + k) + 8);
    }
    for (int k = 0; k < K; ++k) shuffle_inv(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) ops.inv_bf_first(X[k], Y[k], ops.root_x8(m1 + 8 * (b0 + k)));
    for (int k = 0; k < K; ++k) shuffle_inv(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) ops.inv_bf(X[k], Y[k], ops.root_x4(m2 + 4 * (b0 + k)));
    for (int k = 0; k < K; ++k) shuffle_inv(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) ops.inv_bf(X[k], Y[k], ops.root_x2(m4 + 2 * (b0 + k)));
    for (int k = 0; k < K; ++k) shuffle_inv(X[k], Y[k], s);
    for (int k = 0; k < K; ++k) {
        if (m8 == 1) {
            ops.inv_bf_last(X[k], Y[k]);
        } else {
            ops.inv_bf(X[k], Y[k], ops.root_bcast(m8 + b0 + k));
        }
    }
    if constexpr (kStride16) {
        static_assert(K % 2 == 0, "the stride-16 layer pairs neighbouring blocks");
        for (int k = 0; k < K; k += 2) {
            if (m16 == 1) {
                ops.inv_bf_last(X[k], X[k + 1]);
                ops.inv_bf_last(Y[k], Y[k + 1]);
            } else {
                const auto w = ops.root_bcast(m16 + (b0 + k) / 2);
                ops.inv_bf(X[k], X[k + 1], w);
                ops.inv_bf(Y[k], Y[k + 1], w);
            }
        }
    }
    for (int k = 0; k < K; ++k) {
        store(a + 16 * (b0 + k), X[k]);
        store(a + 16 * (b0 + k) + 8, Y[k]);
    }
}

/// Inverse head over the whole array (n >= 16; n >= 32 with kStride16).
template <bool kStride16, class Ops>
HE_AVX512_INLINE void inv_head_pass(std::uint64_t* a, const std::uint64_t* in, std::uint64_t n,
                                    const Ops& ops) {
    const ShuffleIdx s;
    const std::uint64_t blocks = n / 16;  // a power of two
    if (blocks < kTailBlocks) {
        if constexpr (kStride16) {
            inv_head_blocks<2, true>(a, in, n, 0, ops, s);
        } else {
            for (std::uint64_t b = 0; b < blocks; ++b) inv_head_blocks<1, false>(a, in, n, b, ops, s);
        }
        return;
    }
    for (std::uint64_t b = 0; b < blocks; b += kTailBlocks) {
        inv_head_blocks<kTailBlocks, kStride16>(a, in, n, b, ops, s);
    }
}

/// Inverse layers m and m/2 in one pass (radix-4), stride of layer m t >= 16.
/// A group of layer m/2 is four quarters A B C D of t elements; layer m pairs
/// (A, B) and (C, D), layer m/2 pairs (A, C), (B, D). Reads `in`, writes `a`
/// (in == a: in place).
template <class Ops, bool kLast>
HE_AVX512_INLINE void inv_radix4_pass(std::uint64_t* a, const std::uint64_t* in, std::uint64_t m,
                                      std::uint64_t t, const Ops& ops) {
    const std::uint64_t groups = m / 2;
    for (std::uint64_t i = 0; i < groups; ++i) {
        const auto w1a = ops.root_bcast(m + 2 * i);
        const auto w1b = ops.root_bcast(m + 2 * i + 1);
        const auto w2 = ops.root_bcast(groups + i);
        std::uint64_t* pa = a + 4 * i * t;
        std::uint64_t* pb = pa + t;
        std::uint64_t* pc = pb + t;
        std::uint64_t* pd = pc + t;
        const std::uint64_t* ia = in + 4 * i * t;
        for (std::uint64_t j = 0; j < t; j += 8) {
            __m512i A = load(ia + j), B = load(ia + t + j), C = load(ia + 2 * t + j),
                    D = load(ia + 3 * t + j);
            ops.inv_bf(A, B, w1a);
            ops.inv_bf(C, D, w1b);
            if constexpr (kLast) {
                ops.inv_bf_last(A, C);
                ops.inv_bf_last(B, D);
            } else {
                ops.inv_bf(A, C, w2);
                ops.inv_bf(B, D, w2);
            }
            store(pa + j, A);
            store(pb + j, B);
            store(pc + j, C);
            store(pd + j, D);
        }
    }
}

/// Inverse transform driver (n >= 16): head pass (strides 1 .. 8, and 16 when
/// the number of layers of stride >= 16 is odd), then radix-4 passes; the last
/// one (m = 2, layers 2 and 1: the sequence of m always ends there) folds in n^-1.
/// The head pass reads `in` (== a for in place), the last pass writes `a`; the
/// passes in between run on `a` or, when `a` is not 64-byte aligned, on the
/// thread's aligned work buffer (see forward_ntt_passes).
template <class Ops>
HE_AVX512_INLINE void inverse_ntt_passes(std::uint64_t* a, const std::uint64_t* in, std::uint64_t n,
                                         std::uint64_t log_n, const Ops& ops) {
    const bool head_takes_stride16 = (log_n - 4) % 2 == 1;
    std::uint64_t m = head_takes_stride16 ? n / 64 : n / 32;  // of the first radix-4 pass
    std::uint64_t t = head_takes_stride16 ? 32 : 16;
    // Without radix-4 passes (m < 2) the head pass is the whole transform and writes `a`.
    std::uint64_t* work = (m >= 2 && !is_cache_line_aligned(a)) ? aligned_work_buffer(n) : a;
    if (head_takes_stride16) {
        inv_head_pass<true>(work, in, n, ops);
    } else {
        inv_head_pass<false>(work, in, n, ops);
    }
    for (; m >= 2; m /= 4, t *= 4) {
        if (m == 2) {
            inv_radix4_pass<Ops, true>(a, work, m, t, ops);
        } else {
            inv_radix4_pass<Ops, false>(work, work, m, t, ops);
        }
    }
}

}  // namespace he_native::avx512_detail
#endif  // __AVX512F__
