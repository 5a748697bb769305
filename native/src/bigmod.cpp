// Batched big-integer modular exponentiation: input checks, tier dispatch and the Reference
// tier (64-bit limbs, Montgomery CIOS, one base at a time). See he_native/bigmod.hpp.
#include "he_native/bigmod.hpp"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "he_native/ntt.hpp"  // cpu_features(), tier_disabled_by_env()

namespace he_native {

using u64 = std::uint64_t;
using u128 = unsigned __int128;

namespace {

[[noreturn]] void fail(const std::string& m) { throw std::invalid_argument(m); }

std::size_t bit_length(const u64* x, std::size_t words) {
    for (std::size_t i = words; i-- > 0;) {
        if (x[i]) return 64 * i + (64 - static_cast<std::size_t>(__builtin_clzll(x[i])));
    }
    return 0;
}

/// a < b over `words` words (public values only: this branches).
bool less_than(const u64* a, const u64* b, std::size_t words) {
    for (std::size_t i = words; i-- > 0;) {
        if (a[i] != b[i]) return a[i] < b[i];
    }
    return false;
}

/// All-ones if x == y else 0, without a branch.
inline u64 ct_eq_mask(u64 x, u64 y) {
    const u64 d = x ^ y;
    return ((d | (0 - d)) >> 63) - 1;
}

/// -m^-1 mod 2^64 for odd m (Newton: each step doubles the correct low bits).
u64 neg_inverse_u64(u64 m) {
    u64 inv = m;  // correct to 3 bits for odd m
    for (int i = 0; i < 6; ++i) inv *= 2 - m * inv;
    return 0 - inv;
}

/// Montgomery product t = a b R^-1 mod n (R = 2^(64 words)), inputs and output in [0, n):
/// Koc-Acar-Kaliski CIOS, then a branch-free final subtraction. t: 2 words + 2 scratch words,
/// the result is left in t[0..words).
void mont_mul_ref(const u64* a, const u64* b, const u64* n, u64 n0, std::size_t words, u64* t) {
    std::memset(t, 0, (words + 2) * sizeof(u64));
    for (std::size_t i = 0; i < words; ++i) {
        u128 c = 0;
        for (std::size_t j = 0; j < words; ++j) {
            c = static_cast<u128>(a[j]) * b[i] + t[j] + (c >> 64);
            t[j] = static_cast<u64>(c);
        }
        c = static_cast<u128>(t[words]) + (c >> 64);
        t[words] = static_cast<u64>(c);
        t[words + 1] = static_cast<u64>(c >> 64);
        const u64 m = t[0] * n0;
        c = static_cast<u128>(m) * n[0] + t[0];
        for (std::size_t j = 1; j < words; ++j) {
            c = static_cast<u128>(m) * n[j] + t[j] + (c >> 64);
            t[j - 1] = static_cast<u64>(c);
        }
        c = static_cast<u128>(t[words]) + (c >> 64);
        t[words - 1] = static_cast<u64>(c);
        t[words] = t[words + 1] + static_cast<u64>(c >> 64);
    }
    // t < 2n: subtract n when t >= n, selecting by mask.
    u64 borrow = 0;
    u64* diff = t + words + 2;
    for (std::size_t j = 0; j < words; ++j) {
        const u128 s = static_cast<u128>(t[j]) - n[j] - borrow;
        diff[j] = static_cast<u64>(s);
        borrow = static_cast<u64>(s >> 64) & 1;
    }
    // t >= n  <=>  t[words] != 0 or no borrow
    const u64 keep_diff = 0 - ((t[words] != 0) | (borrow == 0));
    for (std::size_t j = 0; j < words; ++j) t[j] = (diff[j] & keep_diff) | (t[j] & ~keep_diff);
}

void modexp_reference(const u64* base, std::size_t words, const u64* exponent, std::size_t exp_bits,
                      const u64* n, const u64* r2, u64* out) {
    const u64 n0 = neg_inverse_u64(n[0]);
    const unsigned w = bigmod_detail::window_bits(exp_bits);
    const std::size_t entries = std::size_t{1} << w;
    std::vector<u64> table(entries * words), t(2 * words + 2), acc(words), sel(words), one(words, 0);
    one[0] = 1;
    mont_mul_ref(r2, one.data(), n, n0, words, t.data());  // R mod n
    std::memcpy(&table[0], t.data(), words * sizeof(u64));
    mont_mul_ref(base, r2, n, n0, words, t.data());  // base R mod n
    std::memcpy(&table[words], t.data(), words * sizeof(u64));
    for (std::size_t e = 2; e < entries; ++e) {
        mont_mul_ref(&table[(e - 1) * words], &table[words], n, n0, words, t.data());
        std::memcpy(&table[e * words], t.data(), words * sizeof(u64));
    }
    auto window = [&](std::size_t i) {  // bits [i w, i w + w) of the exponent; i is public
        u64 v = 0;
        for (unsigned k = 0; k < w; ++k) {
            const std::size_t bit = i * w + k;
            if (bit < exp_bits) v |= ((exponent[bit / 64] >> (bit % 64)) & 1) << k;
        }
        return v;
    };
    auto select = [&](u64 v, u64* dst) {  // every entry read, the match kept by mask
        std::memset(dst, 0, words * sizeof(u64));
        for (std::size_t e = 0; e < entries; ++e) {
            const u64 m = ct_eq_mask(e, v);
            for (std::size_t j = 0; j < words; ++j) dst[j] |= table[e * words + j] & m;
        }
    };
    const std::size_t nwin = (exp_bits + w - 1) / w;
    select(window(nwin - 1), acc.data());
    for (std::size_t i = nwin - 1; i-- > 0;) {
        for (unsigned k = 0; k < w; ++k) {
            mont_mul_ref(acc.data(), acc.data(), n, n0, words, t.data());
            std::memcpy(acc.data(), t.data(), words * sizeof(u64));
        }
        select(window(i), sel.data());
        mont_mul_ref(acc.data(), sel.data(), n, n0, words, t.data());
        std::memcpy(acc.data(), t.data(), words * sizeof(u64));
    }
    mont_mul_ref(acc.data(), one.data(), n, n0, words, t.data());  // out of Montgomery form
    std::memcpy(out, t.data(), words * sizeof(u64));
}

bool ifma_disabled_by_env() { return tier_disabled_by_env(NTTTier::AVX512IFMA); }

}  // namespace

namespace bigmod_detail {

unsigned window_bits(std::size_t exp_bits) {
    if (exp_bits <= 16) return 2;
    if (exp_bits <= 96) return 3;
    if (exp_bits <= 384) return 4;
    if (exp_bits <= 1536) return 5;
    return 6;
}

void r_squared_mod(const u64* n, std::size_t words, std::size_t r_bits, u64* out) {
    // x <- 2^(bits - 1) (< n: n is odd with its top bit there), then 2 r_bits - bits + 1
    // doublings mod n: x = 2^(2 r_bits) mod n. 2x < 2n, so one conditional subtraction per
    // doubling (selected by mask) keeps x in [0, n).
    const std::size_t bits = bit_length(n, words);
    std::vector<u64> x(words, 0), d(words);
    x[(bits - 1) / 64] = u64{1} << ((bits - 1) % 64);
    for (std::size_t it = bits - 1; it < 2 * r_bits; ++it) {
        u64 top = x[words - 1] >> 63;
        for (std::size_t j = words; j-- > 1;) x[j] = (x[j] << 1) | (x[j - 1] >> 63);
        x[0] <<= 1;
        u64 borrow = 0;
        for (std::size_t j = 0; j < words; ++j) {
            const u128 s = static_cast<u128>(x[j]) - n[j] - borrow;
            d[j] = static_cast<u64>(s);
            borrow = static_cast<u64>(s >> 64) & 1;
        }
        const u64 take = 0 - (top | (borrow ^ 1));
        for (std::size_t j = 0; j < words; ++j) x[j] = (d[j] & take) | (x[j] & ~take);
    }
    std::memcpy(out, x.data(), words * sizeof(u64));
}

}  // namespace bigmod_detail

const char* bigmod_tier_name(BigModTier tier) {
    return tier == BigModTier::AVX512IFMA ? "avx512ifma" : "reference";
}

bool bigmod_tier_supported(BigModTier tier) {
    if (tier == BigModTier::Reference) return true;
#if defined(HE_NATIVE_HAVE_AVX512)
    const CPUFeatures& f = cpu_features();
    return f.os_avx512 && f.avx512f && f.avx512ifma && !ifma_disabled_by_env();
#else
    return false;
#endif
}

BigModTier select_bigmod_tier() {
    return bigmod_tier_supported(BigModTier::AVX512IFMA) ? BigModTier::AVX512IFMA : BigModTier::Reference;
}

void modexp_batch(const u64* bases, std::size_t count, std::size_t words, const u64* exponent,
                  std::size_t exp_words, const u64* modulus, u64* out, BigModTier tier) {
    if (words == 0 || words > kBigModMaxBits / 64) {
        fail("modexp_batch: the modulus must have 1 to " + std::to_string(kBigModMaxBits / 64) +
             " 64-bit words (at most " + std::to_string(kBigModMaxBits) + " bits); got " + std::to_string(words));
    }
    if (modulus[words - 1] == 0) {
        fail("modexp_batch: the modulus's top word must be nonzero (pass exactly ceil(bits / 64) words); "
             "got a zero top word");
    }
    if ((modulus[0] & 1) == 0 || bit_length(modulus, words) < 2) {
        fail("modexp_batch: the modulus must be odd and >= 3; got an even modulus or 1");
    }
    if (exp_words > kBigModMaxExponentBits / 64) {
        fail("modexp_batch: the exponent must have at most " + std::to_string(kBigModMaxExponentBits / 64) +
             " 64-bit words; got " + std::to_string(exp_words));
    }
    for (std::size_t b = 0; b < count; ++b) {
        if (!less_than(bases + b * words, modulus, words)) {
            fail("modexp_batch: every base must be in [0, modulus); base " + std::to_string(b) +
                 " is not (reduce it mod the modulus first)");
        }
    }
    if (tier == BigModTier::AVX512IFMA && !bigmod_tier_supported(tier)) {
        fail("modexp_batch: tier 'avx512ifma' must be supported by this build and CPU (and not disabled by "
             "HE_ML_DISABLE_AVX512IFMA); got a machine without it");
    }
    if (count == 0) return;
    // The exponent's length in windows is its word count (public), never its value.
    const std::size_t exp_bits = 64 * exp_words;
    if (exp_bits == 0) {
        for (std::size_t b = 0; b < count; ++b) {
            std::memset(out + b * words, 0, words * sizeof(u64));
            out[b * words] = 1;
        }
        return;
    }
    if (tier == BigModTier::AVX512IFMA) {
        const std::size_t full = count / 8 * 8;
        if (full) bigmod_detail::modexp_batch_avx512ifma(bases, full, words, exponent, exp_bits, modulus, out);
        if (full < count) {  // pad the last group of 8 with base 0 (any value in range does)
            std::vector<u64> in(8 * words, 0), res(8 * words);
            std::memcpy(in.data(), bases + full * words, (count - full) * words * sizeof(u64));
            bigmod_detail::modexp_batch_avx512ifma(in.data(), 8, words, exponent, exp_bits, modulus, res.data());
            std::memcpy(out + full * words, res.data(), (count - full) * words * sizeof(u64));
        }
        return;
    }
    std::vector<u64> r2(words), res(words);
    bigmod_detail::r_squared_mod(modulus, words, 64 * words, r2.data());
    for (std::size_t b = 0; b < count; ++b) {
        modexp_reference(bases + b * words, words, exponent, exp_bits, modulus, r2.data(), res.data());
        std::memcpy(out + b * words, res.data(), words * sizeof(u64));
    }
}

#if !defined(HE_NATIVE_HAVE_AVX512)
namespace bigmod_detail {
void modexp_batch_avx512ifma(const u64*, std::size_t, std::size_t, const u64*, std::size_t, const u64*, u64*) {
    throw std::invalid_argument("modexp_batch: the avx512ifma tier is not compiled into this build");
}
}  // namespace bigmod_detail
#endif

}  // namespace he_native
