// AVX-512 IFMA tier of modexp_batch: 8 bases at once, one per 64-bit lane of a zmm register.
//
// Numbers are held in radix 2^52: limb j of the 8 lanes is one __m512i, so a K-limb number
// for 8 bases is K registers' worth of memory. vpmadd52luq / vpmadd52huq multiply the low 52
// bits of two lanes and add the low / high 52 bits of the 104-bit product to a 64-bit
// accumulator: the 12 spare bits per accumulator absorb up to 4096 additions before a carry
// must be propagated, so a whole Montgomery product runs without carry chains and carries are
// resolved once at its end (the "redundant representation" of Gueron-Krasnov, ARITH 2016,
// and Drucker-Gueron, ITNG 2019; the multi-buffer layout of Intel IPP-crypto's mbx RSA).
//
// Almost-Montgomery multiplication (AMM): R = 2^(52 K) with R > 4N, inputs in [0, 2N),
// output (a b + y N) / R in [0, 2N) -- no conditional subtraction inside the exponentiation
// (Gueron, "Efficient software implementations of modular exponentiation", J. Cryptogr. Eng.
// 2012, Sect. 4). One leaves Montgomery form with AMM(x, 1), which lands in [0, N].
//
// Constant time in the exponent: fixed-window scan (w squarings and one multiplication per
// window, also a zero one), table entries read by a masked blend over every entry.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "he_native/bigmod.hpp"

// std::vector<__m512i> is 64-byte aligned (C++17 aligned new); GCC only notes that the type's
// may_alias attribute does not take part in the template argument. GCC 12's avx512fintrin.h
// trips -Wmaybe-uninitialized on its own _mm512_undefined placeholders.
#pragma GCC diagnostic ignored "-Wignored-attributes"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace he_native {
namespace bigmod_detail {

namespace {

using u64 = std::uint64_t;
constexpr u64 kMask52 = (u64{1} << 52) - 1;

/// 52-bit limb j of the little-endian 64-bit-word number x (bits beyond `words` are zero).
inline u64 limb52(const u64* x, std::size_t words, std::size_t j) {
    const std::size_t bit = 52 * j, w = bit / 64, s = bit % 64;
    if (w >= words) return 0;
    u64 v = x[w] >> s;
    if (s > 12 && w + 1 < words) v |= x[w + 1] << (64 - s);
    return v & kMask52;
}

struct Kernel {
    std::size_t K;             // limbs of 52 bits, R = 2^(52 K) > 4 N
    std::vector<u64> n52;      // modulus limbs (shared by the lanes: broadcast at use)
    u64 n0;                    // -N^-1 mod 2^52
    std::vector<__m512i> t;    // 2K + 2 accumulators
    std::vector<__m512i> apad; // K + 4: a copy of amm's first operand between two zero limbs each side
    std::vector<u64> npad;     // K + 4: the modulus limbs likewise

    /// r = AMM(a, b) for 8 lanes; a, b, r: K normalized limbs (< 2^52), values < 2N.
    /// r may alias a or b (a is copied and the product is built in t first).
    ///
    /// Operand scanning, two rows (b_i, b_{i+1}) per pass over the accumulators: position
    /// i + j takes lo(a_j b_i), lo(n_j y_i), hi(a_{j-1} b_i), hi(n_{j-1} y_i) and the same for
    /// row i + 1 shifted by one -- 8 multiply-adds per load/store of t, in one chain that starts
    /// from its own load, so positions are independent and the loop is bound by the multiply-add
    /// throughput rather than by loads, stores or the front end. a and n are padded with two
    /// zero limbs on each side so every position runs the same 8 multiply-adds.
    void amm(__m512i* r, const __m512i* a, const __m512i* b) {
        const __m512i zero = _mm512_setzero_si512();
        const __m512i n0v = _mm512_set1_epi64(static_cast<long long>(n0));
        const __m512i mask = _mm512_set1_epi64(static_cast<long long>(kMask52));
        __m512i* tt = t.data();
        __m512i* ap = apad.data() + 2;   // ap[-2..K+1], zero outside 0..K-1
        const u64* np = npad.data() + 2;
        for (std::size_t j = 0; j < K; ++j) ap[j] = a[j];
        for (std::size_t j = 0; j < 2 * K + 2; ++j) tt[j] = zero;
        auto bc = [np](std::ptrdiff_t j) { return _mm512_set1_epi64(static_cast<long long>(np[j])); };
        std::size_t i = 0;
        for (; i + 1 < K; i += 2) {
            const __m512i b0 = b[i], b1 = b[i + 1];
            // Position i: complete once a_0 b_i is in; y0 zeroes it mod 2^52.
            __m512i x = _mm512_madd52lo_epu64(tt[i], ap[0], b0);
            const __m512i y0 = _mm512_madd52lo_epu64(zero, x, n0v);
            x = _mm512_madd52lo_epu64(x, bc(0), y0);
            // Position i + 1: row i's terms, the carry, then a_0 b_{i+1}; y1 zeroes it.
            __m512i x1 = _mm512_add_epi64(tt[i + 1], _mm512_srli_epi64(x, 52));
            x1 = _mm512_madd52lo_epu64(x1, ap[1], b0);
            x1 = _mm512_madd52lo_epu64(x1, bc(1), y0);
            x1 = _mm512_madd52hi_epu64(x1, ap[0], b0);
            x1 = _mm512_madd52hi_epu64(x1, bc(0), y0);
            x1 = _mm512_madd52lo_epu64(x1, ap[0], b1);
            const __m512i y1 = _mm512_madd52lo_epu64(zero, x1, n0v);
            x1 = _mm512_madd52lo_epu64(x1, bc(0), y1);
            tt[i + 2] = _mm512_add_epi64(tt[i + 2], _mm512_srli_epi64(x1, 52));
            // a_{j-1}, a_{j-2}, n_{j-1}, n_{j-2} rotate through registers: one load and one
            // broadcast per position (the loop is otherwise bound by loads, not multiply-adds)
            __m512i a1 = ap[1], a2 = ap[0], n_1 = bc(1), n_2 = bc(0);
#pragma GCC unroll 3
            for (std::size_t j = 2; j < K + 2; ++j) {
                const std::ptrdiff_t jj = static_cast<std::ptrdiff_t>(j);
                const __m512i a0 = ap[jj], n_0 = bc(jj);
                __m512i v = _mm512_madd52lo_epu64(tt[i + j], a0, b0);
                v = _mm512_madd52lo_epu64(v, n_0, y0);
                v = _mm512_madd52hi_epu64(v, a1, b0);
                v = _mm512_madd52hi_epu64(v, n_1, y0);
                v = _mm512_madd52lo_epu64(v, a1, b1);
                v = _mm512_madd52lo_epu64(v, n_1, y1);
                v = _mm512_madd52hi_epu64(v, a2, b1);
                tt[i + j] = _mm512_madd52hi_epu64(v, n_2, y1);
                a2 = a1;
                a1 = a0;
                n_2 = n_1;
                n_1 = n_0;
            }
        }
        if (i < K) {  // odd K: the last row alone
            const __m512i b0 = b[i];
            __m512i x = _mm512_madd52lo_epu64(tt[i], ap[0], b0);
            const __m512i y0 = _mm512_madd52lo_epu64(zero, x, n0v);
            x = _mm512_madd52lo_epu64(x, bc(0), y0);
            tt[i + 1] = _mm512_add_epi64(tt[i + 1], _mm512_srli_epi64(x, 52));
            for (std::size_t j = 1; j < K + 1; ++j) {
                const std::ptrdiff_t jj = static_cast<std::ptrdiff_t>(j);
                __m512i v = _mm512_madd52lo_epu64(tt[i + j], ap[jj], b0);
                v = _mm512_madd52lo_epu64(v, bc(jj), y0);
                v = _mm512_madd52hi_epu64(v, ap[jj - 1], b0);
                tt[i + j] = _mm512_madd52hi_epu64(v, bc(jj - 1), y0);
            }
        }
        // Result (t_K .. t_{2K-1}) in redundant form: propagate the carries once.
        __m512i c = zero;
        for (std::size_t j = 0; j < K; ++j) {
            const __m512i v = _mm512_add_epi64(tt[K + j], c);
            r[j] = _mm512_and_si512(v, mask);
            c = _mm512_srli_epi64(v, 52);
        }
    }

    /// r = AMM(a, a) with the symmetric half skipped: the cross products a_i a_j (i < j) once,
    /// doubled, plus the squares a_i^2, then the Montgomery reduction -- K^2 + 2K^2 multiply-adds
    /// instead of 4K^2 (the squaring of Drucker-Gueron 2019, Sect. 3). Both passes take two
    /// rows at a time like amm. Same contract as amm; r may alias a.
    void asqr(__m512i* r, const __m512i* a) {
        const __m512i zero = _mm512_setzero_si512();
        const __m512i n0v = _mm512_set1_epi64(static_cast<long long>(n0));
        const __m512i mask = _mm512_set1_epi64(static_cast<long long>(kMask52));
        __m512i* tt = t.data();
        __m512i* ap = apad.data() + 2;
        const u64* np = npad.data() + 2;
        for (std::size_t j = 0; j < K; ++j) ap[j] = a[j];
        for (std::size_t j = 0; j < 2 * K + 2; ++j) tt[j] = zero;
        auto bc = [np](std::ptrdiff_t j) { return _mm512_set1_epi64(static_cast<long long>(np[j])); };
        // Cross products, rows i and i + 1: row i puts lo(a_i a_j) at i + j and hi at i + j + 1 for
        // j > i. Positions 2i+1 .. 2i+3 hold the rows' first terms; from 2i+4 on every position
        // takes the same four (a_K = a_{K+1} = 0 by the padding).
        for (std::size_t i = 0; i + 1 < K; i += 2) {
            const __m512i a0 = ap[i], a1 = ap[i + 1];
            tt[2 * i + 1] = _mm512_madd52lo_epu64(tt[2 * i + 1], a1, a0);
            __m512i v = _mm512_madd52lo_epu64(tt[2 * i + 2], ap[i + 2], a0);
            tt[2 * i + 2] = _mm512_madd52hi_epu64(v, a1, a0);
            v = _mm512_madd52lo_epu64(tt[2 * i + 3], ap[i + 3], a0);
            v = _mm512_madd52hi_epu64(v, ap[i + 2], a0);
            tt[2 * i + 3] = _mm512_madd52lo_epu64(v, ap[i + 2], a1);
            __m512i a_1 = ap[i + 3], a_2 = ap[i + 2];  // a_{j-1}, a_{j-2}, rotated through registers
#pragma GCC unroll 3
            for (std::size_t j = i + 4; j < K + 2; ++j) {
                const __m512i a_0 = ap[j];
                __m512i w = _mm512_madd52lo_epu64(tt[i + j], a_0, a0);
                w = _mm512_madd52hi_epu64(w, a_1, a0);
                w = _mm512_madd52lo_epu64(w, a_1, a1);
                tt[i + j] = _mm512_madd52hi_epu64(w, a_2, a1);
                a_2 = a_1;
                a_1 = a_0;
            }
        }
        // Double, add the squares a_i^2 (lo at 2i, hi at 2i + 1).
        for (std::size_t i = 0; i < K; ++i) {
            const __m512i ai = ap[i];
            tt[2 * i] = _mm512_madd52lo_epu64(_mm512_slli_epi64(tt[2 * i], 1), ai, ai);
            tt[2 * i + 1] = _mm512_madd52hi_epu64(_mm512_slli_epi64(tt[2 * i + 1], 1), ai, ai);
        }
        // Montgomery reduction, two rows per pass (y_i zeroes position i mod 2^52).
        std::size_t i = 0;
        for (; i + 1 < K; i += 2) {
            __m512i x = tt[i];
            const __m512i y0 = _mm512_madd52lo_epu64(zero, x, n0v);
            x = _mm512_madd52lo_epu64(x, bc(0), y0);
            __m512i x1 = _mm512_add_epi64(tt[i + 1], _mm512_srli_epi64(x, 52));
            x1 = _mm512_madd52lo_epu64(x1, bc(1), y0);
            x1 = _mm512_madd52hi_epu64(x1, bc(0), y0);
            const __m512i y1 = _mm512_madd52lo_epu64(zero, x1, n0v);
            x1 = _mm512_madd52lo_epu64(x1, bc(0), y1);
            tt[i + 2] = _mm512_add_epi64(tt[i + 2], _mm512_srli_epi64(x1, 52));
            __m512i n_1 = bc(1), n_2 = bc(0);  // n_{j-1}, n_{j-2}, rotated through registers
#pragma GCC unroll 3
            for (std::size_t j = 2; j < K + 2; ++j) {
                const __m512i n_0 = bc(static_cast<std::ptrdiff_t>(j));
                __m512i w = _mm512_madd52lo_epu64(tt[i + j], n_0, y0);
                w = _mm512_madd52hi_epu64(w, n_1, y0);
                w = _mm512_madd52lo_epu64(w, n_1, y1);
                tt[i + j] = _mm512_madd52hi_epu64(w, n_2, y1);
                n_2 = n_1;
                n_1 = n_0;
            }
        }
        if (i < K) {  // odd K: the last row alone
            __m512i x = tt[i];
            const __m512i y0 = _mm512_madd52lo_epu64(zero, x, n0v);
            x = _mm512_madd52lo_epu64(x, bc(0), y0);
            tt[i + 1] = _mm512_add_epi64(tt[i + 1], _mm512_srli_epi64(x, 52));
            for (std::size_t j = 1; j < K + 1; ++j) {
                const std::ptrdiff_t jj = static_cast<std::ptrdiff_t>(j);
                const __m512i w = _mm512_madd52lo_epu64(tt[i + j], bc(jj), y0);
                tt[i + j] = _mm512_madd52hi_epu64(w, bc(jj - 1), y0);
            }
        }
        __m512i c = zero;
        for (std::size_t j = 0; j < K; ++j) {
            const __m512i v = _mm512_add_epi64(tt[K + j], c);
            r[j] = _mm512_and_si512(v, mask);
            c = _mm512_srli_epi64(v, 52);
        }
    }
};

}  // namespace

void modexp_batch_avx512ifma(const u64* bases, std::size_t count, std::size_t words, const u64* exponent,
                             std::size_t exp_bits, const u64* modulus, u64* out) {
    std::size_t mod_bits = 64 * words;
    while (mod_bits > 0 && !((modulus[(mod_bits - 1) / 64] >> ((mod_bits - 1) % 64)) & 1)) --mod_bits;
    Kernel k;
    k.K = (mod_bits + 2 + 51) / 52;  // 52 K >= bits + 2, so R >= 4 * 2^bits > 4 N
    const std::size_t K = k.K;
    k.n52.resize(K);
    for (std::size_t j = 0; j < K; ++j) k.n52[j] = limb52(modulus, words, j);
    {
        u64 inv = modulus[0];
        for (int it = 0; it < 6; ++it) inv *= 2 - modulus[0] * inv;  // N^-1 mod 2^64
        k.n0 = (0 - inv) & kMask52;
    }
    k.t.resize(2 * K + 2);
    k.apad.assign(K + 4, _mm512_setzero_si512());
    k.npad.assign(K + 4, 0);
    for (std::size_t j = 0; j < K; ++j) k.npad[j + 2] = k.n52[j];

    const unsigned w = window_bits(exp_bits);
    const std::size_t entries = std::size_t{1} << w;
    std::vector<u64> r2(words);
    r_squared_mod(modulus, words, 52 * K, r2.data());
    std::vector<__m512i> r2v(K), onev(K), table(entries * K), acc(K), sel(K);
    for (std::size_t j = 0; j < K; ++j) {
        r2v[j] = _mm512_set1_epi64(static_cast<long long>(limb52(r2.data(), words, j)));
        onev[j] = _mm512_set1_epi64(j == 0 ? 1 : 0);
    }
    auto window = [&](std::size_t i) {  // bits [i w, i w + w) of the exponent; the position is public
        u64 v = 0;
        for (unsigned b = 0; b < w; ++b) {
            const std::size_t bit = i * w + b;
            if (bit < exp_bits) v |= ((exponent[bit / 64] >> (bit % 64)) & 1) << b;
        }
        return v;
    };
    std::vector<__mmask8> hit(entries);
    auto select = [&](u64 v, __m512i* dst) {  // every entry read; the match kept by an opmask
        const __m512i want = _mm512_set1_epi64(static_cast<long long>(v));
        for (std::size_t e = 0; e < entries; ++e) {
            hit[e] = _mm512_cmpeq_epi64_mask(_mm512_set1_epi64(static_cast<long long>(e)), want);
        }
        for (std::size_t j = 0; j < K; ++j) {  // limb by limb: the selection stays in a register
            __m512i acc_j = _mm512_setzero_si512();
            for (std::size_t e = 0; e < entries; ++e) acc_j = _mm512_mask_mov_epi64(acc_j, hit[e], table[e * K + j]);
            dst[j] = acc_j;
        }
    };
    const std::size_t nwin = (exp_bits + w - 1) / w;
    std::vector<u64> lanes(8 * K), res(8 * K);
    for (std::size_t g = 0; g < count; g += 8) {
        // Gather 8 bases into limb-major order: lanes[j * 8 + l] = limb j of base g + l.
        for (std::size_t l = 0; l < 8; ++l) {
            for (std::size_t j = 0; j < K; ++j) lanes[j * 8 + l] = limb52(bases + (g + l) * words, words, j);
        }
        __m512i* base1 = &table[K];
        for (std::size_t j = 0; j < K; ++j) base1[j] = _mm512_loadu_si512(&lanes[j * 8]);
        k.amm(&table[0], r2v.data(), onev.data());  // R mod N (Montgomery 1)
        k.amm(base1, base1, r2v.data());              // base R mod N
        for (std::size_t e = 2; e < entries; ++e) k.amm(&table[e * K], &table[(e - 1) * K], base1);
        select(window(nwin - 1), acc.data());
        for (std::size_t i = nwin - 1; i-- > 0;) {
            for (unsigned s = 0; s < w; ++s) k.asqr(acc.data(), acc.data());
            select(window(i), sel.data());
            k.amm(acc.data(), acc.data(), sel.data());
        }
        k.amm(acc.data(), acc.data(), onev.data());  // out of Montgomery form: in [0, N]
        for (std::size_t j = 0; j < K; ++j) _mm512_storeu_si512(&res[j * 8], acc[j]);
        // Back to 64-bit words, then subtract N from the one value that can equal it (base 0 mod N)
        // by mask. The output is the public result; no branch on it anyway.
        for (std::size_t l = 0; l < 8; ++l) {
            u64* o = out + (g + l) * words;
            std::memset(o, 0, words * sizeof(u64));
            for (std::size_t j = 0; j < K; ++j) {
                const u64 v = res[j * 8 + l];
                const std::size_t bit = 52 * j, wi = bit / 64, s = bit % 64;
                if (wi < words) o[wi] |= v << s;
                if (s > 12 && wi + 1 < words) o[wi + 1] |= v >> (64 - s);
            }
            u64 diff_or = 0;
            for (std::size_t j = 0; j < words; ++j) diff_or |= o[j] ^ modulus[j];
            const u64 is_n = ((diff_or | (0 - diff_or)) >> 63) - 1;  // all ones iff o == N
            for (std::size_t j = 0; j < words; ++j) o[j] &= ~is_n;
        }
    }
    // Best-effort scrub of the window-dependent state (a compiler may drop stores to memory that
    // is freed next; the table of base powers and the result are not secret).
    std::memset(static_cast<void*>(sel.data()), 0, K * sizeof(__m512i));
    std::memset(static_cast<void*>(hit.data()), 0, entries * sizeof(__mmask8));
}

}  // namespace bigmod_detail
}  // namespace he_native
