// Runtime tier selection: compiled in && CPU has it (detected once) && not switched off by
// the environment (read once) && the modulus fits the tier; otherwise fall through to the
// portable scalar path.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "he_native/ntt.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HE_NATIVE_X86 1
#endif

namespace he_native {
namespace {

#if defined(HE_NATIVE_X86)
/// XCR0 via xgetbv, in inline assembly so this file needs no -mxsave.
std::uint64_t read_xcr0() {
    std::uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<std::uint64_t>(hi) << 32) | lo;
}
#endif

CPUFeatures detect_cpu_features() {
    CPUFeatures f;
#if defined(HE_NATIVE_X86)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx = (ecx >> 28) & 1;
    if (!osxsave) return f;  // no xgetbv: the OS manages no extended state
    const std::uint64_t xcr0 = read_xcr0();
    const bool os_avx = (xcr0 & 0x6) == 0x6;     // XMM and YMM state
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
    f.avx2 = avx && os_avx && ((ebx >> 5) & 1);
    f.avx512f = (ebx >> 16) & 1;
    f.avx512dq = (ebx >> 17) & 1;
    f.avx512ifma = (ebx >> 21) & 1;
    f.avx512bw = (ebx >> 30) & 1;
    f.avx512vl = (ebx >> 31) & 1;
    f.os_avx512 = os_zmm;
#endif
    return f;
}

bool env_flag_set(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr) return false;
    for (const char* off : {"", "0", "false", "FALSE", "False", "no", "NO", "off", "OFF"}) {
        if (std::strcmp(v, off) == 0) return false;
    }
    return true;
}

struct EnvSwitches {
    bool disable_ifma = env_flag_set("HE_ML_DISABLE_AVX512IFMA");
    bool disable_avx512 = env_flag_set("HE_ML_DISABLE_AVX512");
};

const EnvSwitches& env_switches() {
    static const EnvSwitches switches;
    return switches;
}

bool cpu_has(NTTTier tier) {
    const CPUFeatures& f = cpu_features();
    const bool base = f.os_avx512 && f.avx512f && f.avx512dq && f.avx512vl;
    switch (tier) {
        case NTTTier::AVX512IFMA: return base && f.avx512ifma;
        case NTTTier::AVX512: return base;
        default: return true;
    }
}

constexpr std::uint64_t kIFMAModulusBound = std::uint64_t{1} << 50;  // 4q < 2^52
constexpr std::uint64_t kModulusBound = std::uint64_t{1} << kMaxModulusBits;

[[noreturn]] [[maybe_unused]] void throw_not_compiled(NTTTier tier) {
    throw std::invalid_argument(std::string("tier must be compiled into this build; got '") +
                                tier_name(tier) + "'");
}

}  // namespace

const CPUFeatures& cpu_features() {
    static const CPUFeatures features = detect_cpu_features();
    return features;
}

const char* tier_name(NTTTier tier) {
    switch (tier) {
        case NTTTier::Reference: return "reference";
        case NTTTier::Scalar: return "scalar";
        case NTTTier::AVX512IFMA: return "avx512ifma";
        case NTTTier::AVX512: return "avx512";
    }
    return "unknown";
}

bool tier_compiled(NTTTier tier) {
#if defined(HE_NATIVE_HAVE_AVX512)
    (void)tier;
    return true;
#else
    return tier == NTTTier::Reference || tier == NTTTier::Scalar;
#endif
}

bool tier_disabled_by_env(NTTTier tier) {
    switch (tier) {
        case NTTTier::AVX512IFMA: return env_switches().disable_ifma;
        case NTTTier::AVX512: return env_switches().disable_avx512;
        default: return false;
    }
}

bool tier_supported(NTTTier tier, std::uint64_t q) {
    const std::uint64_t bound = tier == NTTTier::AVX512IFMA ? kIFMAModulusBound : kModulusBound;
    return q < bound && tier_compiled(tier) && cpu_has(tier) && !tier_disabled_by_env(tier);
}

NTTTier select_tier(std::uint64_t q) {
    if (tier_supported(NTTTier::AVX512IFMA, q)) return NTTTier::AVX512IFMA;
    if (tier_supported(NTTTier::AVX512, q)) return NTTTier::AVX512;
    return NTTTier::Scalar;
}

void forward_ntt(std::uint64_t* a, const NTTTables& t, NTTTier tier) {
    switch (tier) {
        case NTTTier::Reference: forward_ntt_reference(a, t); return;
        case NTTTier::Scalar: forward_ntt_scalar(a, t); return;
#if defined(HE_NATIVE_HAVE_AVX512)
        case NTTTier::AVX512IFMA: forward_ntt_avx512ifma(a, t); return;
        case NTTTier::AVX512: forward_ntt_avx512(a, t); return;
#else
        default: throw_not_compiled(tier);
#endif
    }
}

void inverse_ntt(std::uint64_t* a, const NTTTables& t, NTTTier tier) {
    switch (tier) {
        case NTTTier::Reference: inverse_ntt_reference(a, t); return;
        case NTTTier::Scalar: inverse_ntt_scalar(a, t); return;
#if defined(HE_NATIVE_HAVE_AVX512)
        case NTTTier::AVX512IFMA: inverse_ntt_avx512ifma(a, t); return;
        case NTTTier::AVX512: inverse_ntt_avx512(a, t); return;
#else
        default: throw_not_compiled(tier);
#endif
    }
}

void forward_ntt(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t, NTTTier tier) {
    switch (tier) {
#if defined(HE_NATIVE_HAVE_AVX512)
        case NTTTier::AVX512IFMA: forward_ntt_avx512ifma(in, out, t); return;
        case NTTTier::AVX512: forward_ntt_avx512(in, out, t); return;
#endif
        default:
            if (in != out) std::memcpy(out, in, t.n * sizeof(std::uint64_t));
            forward_ntt(out, t, tier);
    }
}

void inverse_ntt(const std::uint64_t* in, std::uint64_t* out, const NTTTables& t, NTTTier tier) {
    switch (tier) {
#if defined(HE_NATIVE_HAVE_AVX512)
        case NTTTier::AVX512IFMA: inverse_ntt_avx512ifma(in, out, t); return;
        case NTTTier::AVX512: inverse_ntt_avx512(in, out, t); return;
#endif
        default:
            if (in != out) std::memcpy(out, in, t.n * sizeof(std::uint64_t));
            inverse_ntt(out, t, tier);
    }
}

}  // namespace he_native
