// he_ml._native: the raw Python binding of the he_native core. The public, documented
// Python API (he_ml.native) wraps this module; here we only check user input (always on),
// release the GIL around kernels and translate C++ errors (std::invalid_argument becomes
// ValueError). Arrays are used in place, never copied: anything that would need a
// conversion (dtype, layout) is rejected instead.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "he_native/ntt.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using he_native::NTTTier;
using u64 = std::uint64_t;

namespace {

using InOutArray = nb::ndarray<nb::device::cpu>;         // written in place: must be writable
using InArray = nb::ndarray<nb::ro, nb::device::cpu>;    // read only

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

template <class Array>
std::string shape_of(const Array& a) {
    std::string s = "(";
    for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class Array>
std::string dtype_name(const Array& a) {
    const nb::dlpack::dtype d = a.dtype();
    const char* kind = d.code == static_cast<uint8_t>(nb::dlpack::dtype_code::UInt)    ? "uint"
                       : d.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Int)   ? "int"
                       : d.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) ? "float"
                       : d.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bool)  ? "bool"
                                                                                       : "other";
    return std::string(kind) + std::to_string(d.bits);
}

/// Checks dtype uint64, the number of dimensions and C-contiguity.
template <class Array>
void check_uint64_c_contiguous(const Array& a, const char* name, size_t ndim) {
    if (a.dtype() != nb::dtype<u64>()) {
        fail(std::string(name) + " must be a uint64 array; got dtype " + dtype_name(a));
    }
    if (a.ndim() != ndim) {
        fail(std::string(name) + " must be " + std::to_string(ndim) + "-D; got shape " + shape_of(a));
    }
    if (a.size() == 0) return;  // nothing is read or written
    // C order: unit stride in the last axis, row stride n (a stride is irrelevant where the
    // axis has length 1).
    int64_t expected = 1;
    for (size_t k = ndim; k-- > 0;) {
        if (a.shape(k) > 1 && a.stride(k) != expected) {
            std::string strides = "(";
            for (size_t i = 0; i < ndim; ++i) strides += (i ? ", " : "") + std::to_string(a.stride(i));
            fail(std::string(name) + " must be C-contiguous (row-major); got element strides " +
                 strides + (ndim == 1 ? ",)" : ")") + " (use numpy.ascontiguousarray)");
        }
        expected *= static_cast<int64_t>(a.shape(k));
    }
}

/// Parsed, validated view of (rows, n) arrays and their per-row moduli.
struct Rows {
    size_t rows = 0;
    size_t n = 0;
    const u64* moduli = nullptr;
    std::vector<const he_native::NTTTables*> tables;  // one per row
};

/// Validates shapes and every (n, moduli[i]); the validation result is the cached table
/// lookup, so repeated calls with the same moduli cost a map lookup, not a primality test.
template <class Array>
Rows check_rows(const Array& first, const char* first_name, const InArray& moduli) {
    check_uint64_c_contiguous(first, first_name, 2);
    check_uint64_c_contiguous(moduli, "moduli", 1);
    Rows r;
    r.rows = first.shape(0);
    r.n = first.shape(1);
    r.moduli = static_cast<const u64*>(moduli.data());
    if (moduli.shape(0) != r.rows) {
        fail("moduli must have shape (rows,) = (" + std::to_string(r.rows) + ",), one modulus per "
             "row of " + first_name + "; got shape " + shape_of(moduli));
    }
    if (r.rows == 0) return r;
    if (r.n < he_native::kMinN || r.n > he_native::kMaxN || (r.n & (r.n - 1)) != 0) {
        fail(std::string(first_name) + ".shape[1] (n) must be a power of two in [2, 65536]; got " +
             std::to_string(r.n));
    }
    r.tables.resize(r.rows, nullptr);
    for (size_t i = 0; i < r.rows; ++i) {
        const u64 q = r.moduli[i];
        try {
            r.tables[i] = &he_native::get_ntt_tables(r.n, q);
        } catch (const std::invalid_argument& e) {
            fail("moduli[" + std::to_string(i) + "] is not usable with n = " + std::to_string(r.n) +
                 ": " + e.what());
        }
    }
    return r;
}

template <class ArrayA, class ArrayB>
void check_same_shape(const ArrayA& a, const char* a_name, const ArrayB& b, const char* b_name) {
    check_uint64_c_contiguous(b, b_name, 2);
    if (a.shape(0) != b.shape(0) || a.shape(1) != b.shape(1)) {
        fail(std::string(b_name) + " must have the shape of " + a_name + ", " + shape_of(a) +
             "; got " + shape_of(b));
    }
}

/// Every coefficient below its row's modulus (one pass; reports the first offender).
/// Always on, so it uses the AVX-512 scan where the CPU has it (see range_check.cpp).
void check_coefficients(const u64* data, const Rows& r, const char* name) {
    for (size_t i = 0; i < r.rows; ++i) {
        const u64 q = r.moduli[i];
        const u64* row = data + i * r.n;
        const size_t bad = he_native::find_first_not_below(row, r.n, q);
        if (bad != r.n) {
            fail(std::string(name) + " coefficients must be < the row's modulus q = " +
                 std::to_string(q) + "; got " + name + "[" + std::to_string(i) + ", " +
                 std::to_string(bad) + "] = " + std::to_string(row[bad]) +
                 " (reduce mod q first)");
        }
    }
}

/// `out` may be exactly an input (in place) but must not partially overlap it.
void check_no_partial_overlap(const void* out, const void* in, size_t bytes, const char* in_name) {
    const auto* o = static_cast<const char*>(out);
    const auto* i = static_cast<const char*>(in);
    if (o != i && o < i + bytes && i < o + bytes) {
        fail(std::string("out must either be ") + in_name + " itself or not overlap it; got a "
             "partially overlapping view");
    }
}

std::optional<NTTTier> parse_tier(const std::string& name) {
    if (name == "auto") return std::nullopt;
    for (NTTTier t : {NTTTier::Reference, NTTTier::Scalar, NTTTier::AVX512IFMA, NTTTier::AVX512}) {
        if (name == he_native::tier_name(t)) return t;
    }
    fail("tier must be one of 'auto', 'reference', 'scalar', 'avx512ifma', 'avx512'; got '" +
         name + "'");
}

/// The tier each row runs: auto dispatch, or the explicit tier if it is usable for q here.
std::vector<NTTTier> resolve_tiers(const std::string& tier_name, const Rows& r) {
    const std::optional<NTTTier> requested = parse_tier(tier_name);
    std::vector<NTTTier> tiers(r.rows);
    for (size_t i = 0; i < r.rows; ++i) {
        const u64 q = r.moduli[i];
        if (!requested) {
            tiers[i] = he_native::select_tier(q);
        } else if (he_native::tier_supported(*requested, q)) {
            tiers[i] = *requested;
        } else {
            fail("tier must be available for every modulus on this machine; got '" + tier_name +
                 "', which is not for moduli[" + std::to_string(i) + "] = " + std::to_string(q) +
                 " (it needs to be compiled in, supported by the CPU, not disabled by "
                 "HE_ML_DISABLE_* and, for avx512ifma, q < 2^50; use tier='auto')");
        }
    }
    return tiers;
}

void transform(InOutArray a, InArray moduli, const std::string& tier, bool forward) {
    const Rows r = check_rows(a, "a", moduli);
    const std::vector<NTTTier> tiers = resolve_tiers(tier, r);
    u64* data = static_cast<u64*>(a.data());
    nb::gil_scoped_release release;
    check_coefficients(data, r, "a");
    for (size_t i = 0; i < r.rows; ++i) {
        u64* row = data + i * r.n;
        if (forward) {
            he_native::forward_ntt(row, *r.tables[i], tiers[i]);
        } else {
            he_native::inverse_ntt(row, *r.tables[i], tiers[i]);
        }
    }
}

void pointwise_mul(InArray a, InArray b, InOutArray out, InArray moduli) {
    const Rows r = check_rows(a, "a", moduli);
    check_same_shape(a, "a", b, "b");
    check_same_shape(a, "a", out, "out");
    const size_t bytes = r.rows * r.n * sizeof(u64);
    check_no_partial_overlap(out.data(), a.data(), bytes, "a");
    check_no_partial_overlap(out.data(), b.data(), bytes, "b");
    const u64* pa = static_cast<const u64*>(a.data());
    const u64* pb = static_cast<const u64*>(b.data());
    u64* po = static_cast<u64*>(out.data());
    nb::gil_scoped_release release;
    check_coefficients(pa, r, "a");
    check_coefficients(pb, r, "b");
    for (size_t i = 0; i < r.rows; ++i) {
        he_native::pointwise_mul_mod(pa + i * r.n, pb + i * r.n, po + i * r.n, r.n, r.moduli[i]);
    }
}

void polymul(InArray a, InArray b, InOutArray out, InArray moduli, const std::string& tier) {
    const Rows r = check_rows(a, "a", moduli);
    check_same_shape(a, "a", b, "b");
    check_same_shape(a, "a", out, "out");
    const size_t bytes = r.rows * r.n * sizeof(u64);
    check_no_partial_overlap(out.data(), a.data(), bytes, "a");
    check_no_partial_overlap(out.data(), b.data(), bytes, "b");
    const std::vector<NTTTier> tiers = resolve_tiers(tier, r);
    const u64* pa = static_cast<const u64*>(a.data());
    const u64* pb = static_cast<const u64*>(b.data());
    u64* po = static_cast<u64*>(out.data());
    nb::gil_scoped_release release;
    check_coefficients(pa, r, "a");
    check_coefficients(pb, r, "b");
    for (size_t i = 0; i < r.rows; ++i) {
        he_native::polymul_negacyclic(pa + i * r.n, pb + i * r.n, po + i * r.n, r.n, r.moduli[i],
                                      tiers[i]);
    }
}

void check_modulus_width(u64 q) {
    if (q >> he_native::kMaxModulusBits != 0) fail("q must be < 2^62; got " + std::to_string(q));
}

nb::dict cpu_features() {
    const auto& f = he_native::cpu_features();
    nb::dict d;
    d["avx2"] = f.avx2;
    d["avx512f"] = f.avx512f;
    d["avx512dq"] = f.avx512dq;
    d["avx512vl"] = f.avx512vl;
    d["avx512bw"] = f.avx512bw;
    d["avx512ifma"] = f.avx512ifma;
    d["os_avx512"] = f.os_avx512;
    return d;
}

std::vector<std::string> compiled_tiers() {
    std::vector<std::string> names;
    for (NTTTier t : {NTTTier::Reference, NTTTier::Scalar, NTTTier::AVX512IFMA, NTTTier::AVX512}) {
        if (he_native::tier_compiled(t)) names.emplace_back(he_native::tier_name(t));
    }
    return names;
}

}  // namespace

NB_MODULE(_native, m) {
    m.doc() = "Raw binding of the he_native C++ NTT core; use he_ml.native instead.";
    m.attr("__version__") = HE_ML_VERSION;

    m.def("forward_ntt",
          [](InOutArray a, InArray moduli, const std::string& tier) { transform(a, moduli, tier, true); },
          "a"_a, "moduli"_a, "tier"_a = "auto",
          "In-place forward negacyclic NTT of each row of a (rows, n) uint64 array, row i mod "
          "moduli[i]; output in bit-reversed order.");
    m.def("inverse_ntt",
          [](InOutArray a, InArray moduli, const std::string& tier) { transform(a, moduli, tier, false); },
          "a"_a, "moduli"_a, "tier"_a = "auto",
          "In-place inverse of forward_ntt, row by row.");
    m.def("pointwise_mul", &pointwise_mul, "a"_a, "b"_a, "out"_a, "moduli"_a,
          "out[i] = a[i] * b[i] mod moduli[i], element-wise on (rows, n) uint64 arrays.");
    m.def("polymul", &polymul, "a"_a, "b"_a, "out"_a, "moduli"_a, "tier"_a = "auto",
          "out[i] = a[i] * b[i] in Z_q[X]/(X^n + 1) with q = moduli[i], row by row.");
    m.def("find_primes", &he_native::find_ntt_primes, "bits"_a, "n"_a, "count"_a,
          "`count` distinct `bits`-bit primes q == 1 mod 2n, largest first.");
    m.def("is_prime", &he_native::is_prime_u64, "q"_a, "Deterministic Miller-Rabin for 64-bit q.");
    m.def("select_tier",
          [](u64 q) {
              check_modulus_width(q);
              return std::string(he_native::tier_name(he_native::select_tier(q)));
          },
          "q"_a, "The tier 'auto' runs for modulus q on this machine.");
    m.def("tier_supported",
          [](const std::string& tier, u64 q) {
              const std::optional<NTTTier> t = parse_tier(tier);
              if (q >> he_native::kMaxModulusBits != 0) return false;
              return !t || he_native::tier_supported(*t, q);
          },
          "tier"_a, "q"_a, "Whether `tier` can run for modulus q on this machine.");
    m.def("compiled_tiers", &compiled_tiers, "Tiers compiled into this build.");
    m.def("cpu_features", &cpu_features, "CPU features detected at load (cpuid/xgetbv).");
    m.def("psi", [](u64 n, u64 q) { return he_native::get_ntt_tables(n, q).psi; }, "n"_a, "q"_a,
          "The smallest primitive 2n-th root of unity mod q used by the transforms.");
}
