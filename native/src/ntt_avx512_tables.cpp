// Construction of the AVX-512 tiers' extra tables (layouts in ntt_avx512_tables.hpp).
//
// Compiled with baseline flags on purpose: this is scalar code shared by the IFMA and the
// 64-bit AVX-512 kernels. Were it an inline function in the header (as it once was), each
// kernel TU would emit its own copy compiled with that TU's -mavx512* flags and the linker
// would keep an arbitrary one, so the 64-bit tier could end up running table code built
// with -mavx512ifma on a CPU without IFMA.
#include "ntt_avx512_tables.hpp"

namespace he_native::avx512_detail {

std::unique_ptr<AVX512Tables> build_avx512_tables(const NTTTables& t) {
    auto out = std::make_unique<AVX512Tables>();
    const std::uint64_t n = t.n;
    const std::uint64_t q = t.q;
    out->n = n;
    out->log_n = t.log_n;
    out->q = q;
    // psi = w[bitrev(1)] = w[n/2]; derived from the table the kernels use so
    // that forward and inverse always agree with root_powers.
    out->psi = t.root_powers[n / 2];
    out->has_52bit = q < kIfmaModulusBound;

    out->fwd_w.assign(t.root_powers.begin(), t.root_powers.end());
    out->fwd_w64.resize(n);
    out->inv_w.resize(n);
    out->inv_w64.resize(n);
    if (out->has_52bit) {
        out->fwd_w52.resize(n);
        out->inv_w52.resize(n);
    }
    // psi^-1 = psi^(2n - 1); powers psi^-j in natural order, then bit-reversed.
    const std::uint64_t psi_inv = powmod_u64(out->psi, 2 * n - 1, q);
    AlignedU64 inv_pow(n);
    inv_pow[0] = 1;
    for (std::uint64_t j = 1; j < n; ++j) inv_pow[j] = mulmod_u64(inv_pow[j - 1], psi_inv, q);
    for (std::uint64_t k = 0; k < n; ++k) {
        const std::uint64_t w = out->fwd_w[k];
        const std::uint64_t iw = inv_pow[bit_reverse(k, t.log_n)];
        out->inv_w[k] = iw;
        out->fwd_w64[k] = shoup_factor(w, q, 64);
        out->inv_w64[k] = shoup_factor(iw, q, 64);
        if (out->has_52bit) {
            out->fwd_w52[k] = shoup_factor(w, q, 52);
            out->inv_w52[k] = shoup_factor(iw, q, 52);
        }
    }
    out->n_inv = powmod_u64(n % q, q - 2, q);  // q prime
    out->inv_w1_n_inv = mulmod_u64(out->inv_w[1 % n], out->n_inv, q);
    out->n_inv64 = shoup_factor(out->n_inv, q, 64);
    out->inv_w1_n_inv64 = shoup_factor(out->inv_w1_n_inv, q, 64);
    if (out->has_52bit) {
        out->n_inv52 = shoup_factor(out->n_inv, q, 52);
        out->inv_w1_n_inv52 = shoup_factor(out->inv_w1_n_inv, q, 52);
    }
    return out;
}

std::uint64_t* aligned_work_buffer(std::size_t n) {
    struct Buffer {
        std::uint64_t* data = nullptr;
        std::size_t size = 0;
        ~Buffer() { ::operator delete(data, std::align_val_t{64}); }
    };
    thread_local Buffer buffer;
    if (buffer.size < n) {
        std::uint64_t* grown = static_cast<std::uint64_t*>(
            ::operator new(n * sizeof(std::uint64_t), std::align_val_t{64}));
        ::operator delete(buffer.data, std::align_val_t{64});
        buffer.data = grown;
        buffer.size = n;
    }
    return buffer.data;
}

std::size_t avx512_tables_bytes(const AVX512Tables& tb) {
    const auto vec = [](const AlignedU64& v) { return v.capacity() * sizeof(std::uint64_t); };
    return sizeof(AVX512Tables) + vec(tb.fwd_w) + vec(tb.fwd_w52) + vec(tb.fwd_w64) +
           vec(tb.inv_w) + vec(tb.inv_w52) + vec(tb.inv_w64);
}

}  // namespace he_native::avx512_detail
