// Batched modular exponentiation of big integers: out[b] = base[b]^e mod N for many bases,
// one shared odd modulus N (up to kBigModMaxBits bits) and one shared exponent e.
//
// This is the workload of a threshold-Paillier member (Damgard-Jurik / Shoup partial
// decryption c^(2 Delta s_i) mod n^2 over every ciphertext of a total) and of any
// "same key, many messages" RSA-style batch.
//
// Tiers (chosen at run time like the NTT tiers, see select_bigmod_tier):
//   * Reference  -- 64-bit limbs, Montgomery multiplication (CIOS) with unsigned __int128,
//                   one base at a time. Written for clarity; the test oracle in C++.
//   * AVX512IFMA -- 8 bases per zmm register, radix 2^52 limbs, almost-Montgomery
//                   multiplication with vpmadd52luq / vpmadd52huq (the multi-buffer technique
//                   of Intel IPP-crypto's mbx RSA and of Drucker-Gueron, "Fast modular squaring
//                   with AVX512IFMA", ITNG 2019; Gueron-Krasnov, "Accelerating big integer
//                   arithmetic using Intel IFMA extensions", ARITH 2016).
//
// Both tiers scan the exponent with a fixed window (every window costs w squarings and one
// multiplication, also for a zero window) and read the window's table entry by a masked
// select over ALL 2^w entries: no branch and no memory address depends on the exponent,
// so the exponent (a secret key share) does not leak through timing or cache footprint.
// The bases and the modulus are treated as public (their values steer nothing either,
// except the final conditional subtraction of the output, which is branch-free).
#pragma once

#include <cstddef>
#include <cstdint>

namespace he_native {

/// Largest modulus width the kernels accept (Paillier 4096 -> n^2 of 8192 bits).
inline constexpr std::size_t kBigModMaxBits = 8192;
/// Largest exponent width accepted (the cost is linear in it; 4x the widest modulus).
inline constexpr std::size_t kBigModMaxExponentBits = 4 * kBigModMaxBits;

enum class BigModTier { Reference, AVX512IFMA };

const char* bigmod_tier_name(BigModTier tier);

/// Compiled in && CPU has AVX-512F + IFMA with OS zmm support && not disabled by
/// HE_ML_DISABLE_AVX512IFMA (the NTT tiers' kill switch). Reference is always supported.
bool bigmod_tier_supported(BigModTier tier);

/// The fastest supported tier.
BigModTier select_bigmod_tier();

/// out[b*words .. (b+1)*words) = bases[b]^exponent mod modulus, for b in [0, count).
/// Numbers are little-endian arrays of 64-bit words.
///  @param bases     count*words words, every base in [0, modulus)
///  @param exponent  exp_words words (exp_words may be 0: exponent 0), < 2^kBigModMaxExponentBits
///  @param modulus   `words` words, odd, >= 3, top word nonzero, at most kBigModMaxBits bits
///  @param out       count*words words; may alias `bases` exactly (not partially)
/// Throws std::invalid_argument ("<what> must be X; got Y") on any violated precondition,
/// before writing anything. base^0 = 1 (also for base 0), as GMP's mpz_powm.
void modexp_batch(const std::uint64_t* bases, std::size_t count, std::size_t words,
                  const std::uint64_t* exponent, std::size_t exp_words,
                  const std::uint64_t* modulus, std::uint64_t* out, BigModTier tier);

namespace bigmod_detail {
/// The IFMA kernel, for `count` a multiple of 8; preconditions checked by modexp_batch.
void modexp_batch_avx512ifma(const std::uint64_t* bases, std::size_t count, std::size_t words,
                             const std::uint64_t* exponent, std::size_t exp_bits,
                             const std::uint64_t* modulus, std::uint64_t* out);
/// R^2 mod N for R = 2^r_bits (shift-and-subtract; the modulus is public).
void r_squared_mod(const std::uint64_t* modulus, std::size_t words, std::size_t r_bits,
                   std::uint64_t* out);
/// Window width for an exponent of exp_bits bits (fixed per call: depends on the length only).
unsigned window_bits(std::size_t exp_bits);
}  // namespace bigmod_detail

}  // namespace he_native
