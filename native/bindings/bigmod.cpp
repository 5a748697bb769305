// Binding of the batched big-integer modular exponentiation (he_native/bigmod.hpp) into
// he_ml._native. The Python API is he_ml.native.bigmod, which converts Python ints to word
// arrays and back; here the arrays are checked (always on), the GIL is released around the
// kernel, and std::invalid_argument surfaces as ValueError (re-raised as he_ml.errors there).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "he_native/bigmod.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using u64 = std::uint64_t;

namespace {

using Words2D = nb::ndarray<const u64, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using Words1D = nb::ndarray<const u64, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using OutWords = nb::ndarray<nb::numpy, u64, nb::ndim<2>, nb::c_contig>;

he_native::BigModTier parse_bigmod_tier(const std::string& tier) {
    if (tier == "auto") return he_native::select_bigmod_tier();
    if (tier == "reference") return he_native::BigModTier::Reference;
    if (tier == "avx512ifma") return he_native::BigModTier::AVX512IFMA;
    throw std::invalid_argument("tier must be 'auto', 'reference' or 'avx512ifma'; got '" + tier + "'");
}

OutWords modexp_batch(Words2D bases, Words1D exponent, Words1D modulus, const std::string& tier) {
    const std::size_t count = bases.shape(0), words = bases.shape(1);
    if (modulus.shape(0) != words) {
        throw std::invalid_argument("modulus must have as many words as each base (bases.shape[1] = " +
                                    std::to_string(words) + "); got " + std::to_string(modulus.shape(0)));
    }
    const he_native::BigModTier t = parse_bigmod_tier(tier);
    // Output no larger than the input, which already exists: the size is bounded by the caller's.
    u64* out = new u64[count * words > 0 ? count * words : 1];
    nb::capsule owner(out, [](void* p) noexcept { delete[] static_cast<u64*>(p); });
    {
        nb::gil_scoped_release release;
        he_native::modexp_batch(bases.data(), count, words, exponent.data(), exponent.shape(0), modulus.data(),
                                out, t);
    }
    return OutWords(out, {count, words}, owner);
}

}  // namespace

void register_bigmod(nb::module_& m) {
    m.def("modexp_batch", &modexp_batch, "bases"_a.noconvert(), "exponent"_a.noconvert(),
          "modulus"_a.noconvert(), "tier"_a = "auto",
          "out[b] = bases[b]^exponent mod modulus; (count, words) uint64 little-endian words in and out, "
          "exponent and modulus 1-D uint64 words (modulus odd, >= 3, top word nonzero, <= 8192 bits; "
          "bases < modulus). Constant time in the exponent's value (its word count is public).");
    m.def("bigmod_tier", []() { return std::string(he_native::bigmod_tier_name(he_native::select_bigmod_tier())); },
          "The modexp_batch tier 'auto' runs on this machine ('avx512ifma' or 'reference').");
    m.def("bigmod_tier_supported",
          [](const std::string& tier) { return he_native::bigmod_tier_supported(parse_bigmod_tier(tier)); },
          "tier"_a, "Whether modexp_batch can run `tier` here (compiled, CPU, kill switch).");
}
