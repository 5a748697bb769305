// he_ml._native: the raw Python binding of the he_native core. The public, documented
// Python API (he_ml.native) wraps this module; here we only check user input (always on),
// release the GIL around kernels and translate C++ errors (std::invalid_argument becomes
// ValueError). Arrays are used in place, never copied: anything that would need a
// conversion (dtype, layout) is rejected instead.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
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

/// Checks dtype uint64, the number of dimensions (in [min_ndim, max_ndim]) and C-contiguity.
template <class Array>
void check_uint64_c_contiguous(const Array& a, const char* name, size_t min_ndim,
                               size_t max_ndim) {
    if (a.dtype() != nb::dtype<u64>()) {
        fail(std::string(name) + " must be a uint64 array; got dtype " + dtype_name(a));
    }
    const size_t ndim = a.ndim();
    if (ndim < min_ndim || ndim > max_ndim) {
        fail(std::string(name) + " must be " +
             (min_ndim == max_ndim ? std::to_string(min_ndim)
                                   : std::to_string(min_ndim) + "- to " + std::to_string(max_ndim)) +
             "-D; got shape " + shape_of(a));
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

/// Parsed, validated view of (rows, n) arrays and their moduli: row i uses
/// moduli[i % k] (k = moduli.shape[0] divides rows), so RNS callers pass their k moduli
/// once instead of a per-row copy.
struct Rows {
    size_t rows = 0;
    size_t n = 0;
    size_t k = 0;
    const u64* moduli = nullptr;
    std::vector<he_native::NTTTablesPtr> tables;  // one per modulus, held for the call
    u64 modulus(size_t row) const { return moduli[row % k]; }
    const he_native::NTTTables& table(size_t row) const { return *tables[row % k]; }
};

/// Validates shapes and every (n, moduli[i]); the validation result is the cached table
/// lookup, so repeated calls with the same moduli cost a map lookup, not a primality test.
/// `first` is (rows, n), or with max_ndim 3 also (n,) or (m, k, n): a C-contiguous array
/// of any of these shapes is the (rows, n) array of its rows (rows = product of the
/// leading axes), so the Python layer needs no reshape.
template <class Array>
Rows check_rows(const Array& first, const char* first_name, const InArray& moduli,
                size_t min_ndim = 2, size_t max_ndim = 2) {
    check_uint64_c_contiguous(first, first_name, min_ndim, max_ndim);
    check_uint64_c_contiguous(moduli, "moduli", 1, 1);
    Rows r;
    const size_t ndim = first.ndim();
    r.n = first.shape(ndim - 1);
    r.rows = 1;
    for (size_t i = 0; i + 1 < ndim; ++i) r.rows *= first.shape(i);
    r.k = moduli.shape(0);
    r.moduli = static_cast<const u64*>(moduli.data());
    if (r.k == 0 ? r.rows != 0 : r.rows % r.k != 0) {
        fail("moduli must have shape (k,) with k dividing the number of rows of " +
             std::string(first_name) + " (" + std::to_string(r.rows) +
             "; row i uses moduli[i % k]); got shape " + shape_of(moduli));
    }
    if (r.rows == 0) return r;
    if (r.n < he_native::kMinN || r.n > he_native::kMaxN || (r.n & (r.n - 1)) != 0) {
        fail(std::string(first_name) + ".shape[-1] (n) must be a power of two in [2, 65536]; got " +
             std::to_string(r.n));
    }
    r.tables.resize(r.k);
    for (size_t i = 0; i < r.k; ++i) {
        const u64 q = r.moduli[i];
        if (i > 0 && q == r.moduli[i - 1]) {  // repeated modulus: no second lookup
            r.tables[i] = r.tables[i - 1];
            continue;
        }
        try {
            r.tables[i] = he_native::get_ntt_tables(r.n, q);
        } catch (const std::invalid_argument& e) {
            fail("moduli[" + std::to_string(i) + "] is not usable with n = " + std::to_string(r.n) +
                 ": " + e.what());
        }
    }
    return r;
}

template <class ArrayA, class ArrayB>
void check_same_shape(const ArrayA& a, const char* a_name, const ArrayB& b, const char* b_name) {
    check_uint64_c_contiguous(b, b_name, a.ndim(), a.ndim());
    for (size_t i = 0; i < a.ndim(); ++i) {
        if (a.shape(i) != b.shape(i)) {
            fail(std::string(b_name) + " must have the shape of " + a_name + ", " + shape_of(a) +
                 "; got " + shape_of(b));
        }
    }
}

/// Every coefficient below its row's modulus (one pass; reports the first offender).
/// Always on, so it uses the AVX-512 scan where the CPU has it (see range_check.cpp).
void check_coefficients(const u64* data, const Rows& r, const char* name) {
    for (size_t i = 0; i < r.rows; ++i) {
        const u64 q = r.modulus(i);
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

/// The tier each modulus (row i: entry i % k) runs: auto dispatch, or the explicit tier
/// if it is usable for q here.
std::vector<NTTTier> resolve_tiers(const std::string& tier_name, const Rows& r) {
    const std::optional<NTTTier> requested = parse_tier(tier_name);
    std::vector<NTTTier> tiers(r.k);
    for (size_t i = 0; i < r.k && r.rows > 0; ++i) {
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

// ---- output arrays ------------------------------------------------------------------
//
// A fresh numpy array per call is the API's convenient form (`ntt(a, q)` without out=),
// but above glibc's mmap threshold every malloc/free pair maps and unmaps pages, and the
// first touch of each page then costs a page fault: at n = 8192 with 6 rows that doubled
// the time of a forward + inverse pair. OutputPool keeps a few recently freed buffers
// (bounded by bytes) and hands them out again, already mapped and warm in cache.

/// Each buffer is kAlign bytes of header (its data size, read back when numpy frees the
/// array) followed by the data, so the data is 64-byte aligned.
class OutputPool {
public:
    static constexpr std::size_t kAlign = 64;
    static constexpr std::size_t kMaxBuffers = 16;

    /// A buffer of at least `bytes` data bytes; returns its base (header) address.
    void* take(std::size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            for (std::size_t i = free_.size(); i-- > 0;) {  // most recently returned first
                if (data_bytes(free_[i]) == bytes) {
                    void* base = free_[i];
                    free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
                    held_ -= bytes;
                    return base;
                }
            }
        }
        void* base = ::operator new(kAlign + bytes, std::align_val_t{kAlign});
        *static_cast<std::size_t*>(base) = bytes;
        return base;
    }

    /// Called by the array's owner capsule when numpy frees the array.
    void give_back(void* base) noexcept {
        const std::size_t bytes = data_bytes(base);
        std::vector<void*> drop;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (bytes > 0 && bytes <= budget_) {
                while (!free_.empty() &&
                       (held_ + bytes > budget_ || free_.size() >= kMaxBuffers)) {
                    held_ -= data_bytes(free_.front());  // the least recently returned
                    drop.push_back(free_.front());
                    free_.erase(free_.begin());
                }
                free_.push_back(base);
                held_ += bytes;
            } else {
                drop.push_back(base);
            }
        }
        for (void* p : drop) ::operator delete(p, std::align_val_t{kAlign});
    }

    /// Sets the byte budget of idle buffers (0: free every array's memory at once).
    void set_budget(std::size_t budget) {
        std::vector<void*> drop;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            budget_ = budget;
            while (!free_.empty() && held_ > budget_) {
                held_ -= data_bytes(free_.front());
                drop.push_back(free_.front());
                free_.erase(free_.begin());
            }
        }
        for (void* p : drop) ::operator delete(p, std::align_val_t{kAlign});
    }

    nb::dict info() {
        std::lock_guard<std::mutex> lock(mutex_);
        nb::dict d;
        d["buffers"] = free_.size();
        d["bytes"] = held_;
        d["budget"] = budget_;
        return d;
    }

private:
    static std::size_t data_bytes(void* base) { return *static_cast<std::size_t*>(base); }

    std::mutex mutex_;
    std::vector<void*> free_;  // idle buffers, oldest first
    std::size_t held_ = 0;     // data bytes of the idle buffers
    std::size_t budget_ = std::size_t{64} << 20;
};

OutputPool& output_pool() {
    static OutputPool* pool = new OutputPool();  // never destroyed: arrays may outlive exit
    return *pool;
}

using OutArray = nb::ndarray<nb::numpy, u64, nb::c_contig>;

/// Uninitialised uint64 numpy array of the given shape (ndim <= 3) from the pool; the
/// caller fills every element.
OutArray allocate_like(size_t ndim, const size_t* shape) {
    size_t count = 1;
    for (size_t i = 0; i < ndim; ++i) count *= shape[i];
    void* base = output_pool().take(count * sizeof(u64));
    nb::capsule owner(base, [](void* p) noexcept { output_pool().give_back(p); });
    return OutArray(static_cast<char*>(base) + OutputPool::kAlign, ndim, shape, owner);
}

template <class Array>
OutArray allocate_like(const Array& a) {
    size_t shape[3] = {0, 0, 0};
    for (size_t i = 0; i < a.ndim(); ++i) shape[i] = a.shape(i);
    return allocate_like(a.ndim(), shape);
}

void transform_rows(u64* data, const Rows& r, const std::vector<NTTTier>& tiers, bool forward) {
    for (size_t i = 0; i < r.rows; ++i) {
        u64* row = data + i * r.n;
        const size_t m = i % r.k;
        if (forward) {
            he_native::forward_ntt(row, *r.tables[m], tiers[m]);
        } else {
            he_native::inverse_ntt(row, *r.tables[m], tiers[m]);
        }
    }
}

void transform(InOutArray a, InArray moduli, const std::string& tier, bool forward) {
    const Rows r = check_rows(a, "a", moduli);
    const std::vector<NTTTier> tiers = resolve_tiers(tier, r);
    u64* data = static_cast<u64*>(a.data());
    nb::gil_scoped_release release;
    check_coefficients(data, r, "a");
    transform_rows(data, r, tiers, forward);
}

/// Row by row, the range check of `src` and the out-of-place transform into `dst` (whose
/// first pass reads `src` and writes `dst`, so there is no separate copy sweep) run back to
/// back while the row is in L1/L2. `src` is never written; on a failed check the rows of
/// `dst` before the offending one are already written.
void transform_rows_out_of_place(const u64* src, u64* dst, const Rows& r,
                                 const std::vector<NTTTier>& tiers, bool forward) {
    nb::gil_scoped_release release;
    for (size_t i = 0; i < r.rows; ++i) {
        const u64* in_row = src + i * r.n;
        u64* out_row = dst + i * r.n;
        const size_t bad = he_native::find_first_not_below(in_row, r.n, r.modulus(i));
        if (bad != r.n) {
            fail("a coefficients must be < the row's modulus q = " +
                 std::to_string(r.modulus(i)) + "; got a[" + std::to_string(i) + ", " +
                 std::to_string(bad) + "] = " + std::to_string(in_row[bad]) +
                 " (reduce mod q first)");
        }
        const size_t m = i % r.k;  // copy fused into the kernel's first pass
        if (forward) {
            he_native::forward_ntt(in_row, out_row, *r.tables[m], tiers[m]);
        } else {
            he_native::inverse_ntt(in_row, out_row, *r.tables[m], tiers[m]);
        }
    }
}

/// The transform of `a` ((n,), (rows, n) or (m, k, n)) into a new array of its shape; `a`
/// is only read, and a failed check discards the new array.
OutArray transform_copy(InArray a, InArray moduli, const std::string& tier, bool forward) {
    const Rows r = check_rows(a, "a", moduli, 1, 3);
    const std::vector<NTTTier> tiers = resolve_tiers(tier, r);
    OutArray out = allocate_like(a);
    transform_rows_out_of_place(static_cast<const u64*>(a.data()), out.data(), r, tiers, forward);
    return out;
}

/// The transform of `a` into `out` (same shape, (n,), (rows, n) or (m, k, n)). `out` is `a`
/// itself (in place: every coefficient is checked before anything is written, so a failed
/// check leaves `a` unchanged) or an array that does not overlap it (out of place, the
/// copy fused into the first pass; `a` is never written, `out` is unspecified after a
/// failed check).
void transform_into(InArray a, InOutArray out, InArray moduli, const std::string& tier,
                    bool forward) {
    const Rows r = check_rows(a, "a", moduli, 1, 3);
    check_same_shape(a, "a", out, "out");
    const std::vector<NTTTier> tiers = resolve_tiers(tier, r);
    const u64* src = static_cast<const u64*>(a.data());
    u64* dst = static_cast<u64*>(out.data());
    if (static_cast<const void*>(src) == static_cast<const void*>(dst)) {
        nb::gil_scoped_release release;
        check_coefficients(dst, r, "a");
        transform_rows(dst, r, tiers, forward);
        return;
    }
    check_no_partial_overlap(dst, src, r.rows * r.n * sizeof(u64), "a");
    transform_rows_out_of_place(src, dst, r, tiers, forward);
}

void pointwise_mul_into(const Rows& r, const u64* pa, const u64* pb, u64* po) {
    check_coefficients(pa, r, "a");
    check_coefficients(pb, r, "b");
    for (size_t i = 0; i < r.rows; ++i) {
        he_native::pointwise_mul_mod(pa + i * r.n, pb + i * r.n, po + i * r.n, r.n, r.modulus(i));
    }
}

void polymul_into(const Rows& r, const std::vector<NTTTier>& tiers, const u64* pa, const u64* pb,
                  u64* po) {
    check_coefficients(pa, r, "a");
    check_coefficients(pb, r, "b");
    for (size_t i = 0; i < r.rows; ++i) {
        const size_t m = i % r.k;
        he_native::polymul_negacyclic(pa + i * r.n, pb + i * r.n, po + i * r.n, *r.tables[m],
                                      tiers[m]);
    }
}

/// `out` given: written in place (checked like an input) and returned; `out` None: a new
/// array is returned.
nb::object binary_op(InArray a, InArray b, std::optional<InOutArray> out, InArray moduli,
                     const std::optional<std::string>& tier) {
    const Rows r = check_rows(a, "a", moduli);
    check_same_shape(a, "a", b, "b");
    const std::vector<NTTTier> tiers = tier ? resolve_tiers(*tier, r) : std::vector<NTTTier>();
    const u64* pa = static_cast<const u64*>(a.data());
    const u64* pb = static_cast<const u64*>(b.data());
    if (out) {
        check_same_shape(a, "a", *out, "out");
        const size_t bytes = r.rows * r.n * sizeof(u64);
        check_no_partial_overlap(out->data(), pa, bytes, "a");
        check_no_partial_overlap(out->data(), pb, bytes, "b");
        u64* po = static_cast<u64*>(out->data());
        {
            nb::gil_scoped_release release;
            if (tier) polymul_into(r, tiers, pa, pb, po); else pointwise_mul_into(r, pa, pb, po);
        }
        return nb::cast(*out);
    }
    OutArray res = allocate_like(a);
    u64* po = res.data();
    {
        nb::gil_scoped_release release;
        if (tier) polymul_into(r, tiers, pa, pb, po); else pointwise_mul_into(r, pa, pb, po);
    }
    return nb::cast(res);
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

void register_bigmod(nb::module_& m);  // native/bindings/bigmod.cpp

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
    m.def("forward_ntt_copy",
          [](InArray a, InArray moduli, const std::string& tier) {
              return transform_copy(a, moduli, tier, true);
          },
          "a"_a, "moduli"_a, "tier"_a = "auto",
          "forward_ntt of a ((n,), (rows, n) or (m, k, n)) into a new array of its shape; a is "
          "only read.");
    m.def("inverse_ntt_copy",
          [](InArray a, InArray moduli, const std::string& tier) {
              return transform_copy(a, moduli, tier, false);
          },
          "a"_a, "moduli"_a, "tier"_a = "auto",
          "inverse_ntt into a new array of a's shape; a is only read.");
    m.def("forward_ntt_into",
          [](InArray a, InOutArray out, InArray moduli, const std::string& tier) {
              transform_into(a, out, moduli, tier, true);
          },
          "a"_a, "out"_a, "moduli"_a, "tier"_a = "auto",
          "forward_ntt of a ((n,), (rows, n) or (m, k, n)) written into out (a itself, or an "
          "array of a's shape not overlapping it); a is only read unless out is a.");
    m.def("inverse_ntt_into",
          [](InArray a, InOutArray out, InArray moduli, const std::string& tier) {
              transform_into(a, out, moduli, tier, false);
          },
          "a"_a, "out"_a, "moduli"_a, "tier"_a = "auto",
          "inverse_ntt of a written into out; see forward_ntt_into.");
    m.def("pointwise_mul",
          [](InArray a, InArray b, std::optional<InOutArray> out, InArray moduli) {
              return binary_op(a, b, std::move(out), moduli, std::nullopt);
          },
          "a"_a, "b"_a, "out"_a.none(), "moduli"_a,
          "out[i] = a[i] * b[i] mod moduli[i % k], element-wise on (rows, n) uint64 arrays; "
          "out=None returns a new array, else out (which may be a or b) is written and returned.");
    m.def("polymul",
          [](InArray a, InArray b, std::optional<InOutArray> out, InArray moduli,
             const std::string& tier) {
              return binary_op(a, b, std::move(out), moduli, tier);
          },
          "a"_a, "b"_a, "out"_a.none(), "moduli"_a, "tier"_a = "auto",
          "out[i] = a[i] * b[i] in Z_q[X]/(X^n + 1) with q = moduli[i % k], row by row; "
          "out=None returns a new array.");
    m.def("set_table_cache_budget", &he_native::set_ntt_table_cache_budget, "bytes"_a,
          "Byte budget of the NTT table cache (LRU); 0 disables caching.");
    m.def("table_cache_info",
          []() {
              const he_native::NTTTableCacheStats st = he_native::ntt_table_cache_stats();
              nb::dict d;
              d["entries"] = st.entries;
              d["bytes"] = st.bytes;
              d["budget"] = st.budget;
              d["hits"] = st.hits;
              d["misses"] = st.misses;
              d["evictions"] = st.evictions;
              return d;
          },
          "Entries, bytes, budget and hit/miss/eviction counters of the NTT table cache.");
    m.def("clear_table_cache", &he_native::clear_ntt_table_cache,
          "Drop every cached NTT table (arrays in use keep theirs) and reset the counters.");
    m.def("set_output_pool_budget", [](size_t bytes) { output_pool().set_budget(bytes); },
          "bytes"_a, "Bytes of freed output arrays kept for reuse (0: none).");
    m.def("output_pool_info", []() { return output_pool().info(); },
          "Idle buffers, their bytes and the budget of the output-array pool.");
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
    m.def("psi", [](u64 n, u64 q) { return he_native::get_ntt_tables(n, q)->psi; }, "n"_a, "q"_a,
          "The smallest primitive 2n-th root of unity mod q used by the transforms.");
    register_bigmod(m);
}
