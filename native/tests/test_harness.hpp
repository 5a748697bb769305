// Minimal self-contained test harness for the he_native C++ tests (no external deps).
//
//   HE_TEST(name) { HE_CHECK(cond); HE_CHECK_EQ(a, b); HE_REQUIRE(cond); HE_SKIP("why"); }
//
// Each test executable includes this header once; it supplies main(), which runs every
// registered test (or only those whose name contains argv[1]) and returns 0 if all
// passed, 1 if any failed, 77 (ctest SKIP_RETURN_CODE) if every test skipped itself.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace he_test {

struct TestCase {
    const char* name;
    std::function<void()> body;
};

inline std::vector<TestCase>& registry() {
    static std::vector<TestCase> tests;
    return tests;
}

struct Registrar {
    Registrar(const char* name, std::function<void()> body) {
        registry().push_back({name, std::move(body)});
    }
};

struct State {
    long failures = 0;       // in the current test
    long total_checks = 0;
};
inline State& state() {
    static State s;
    return s;
}

struct RequireFailed {};
struct Skipped {
    std::string reason;
};

inline void report_failure(const char* file, int line, const std::string& what) {
    ++state().failures;
    if (state().failures <= 10) std::fprintf(stderr, "  %s:%d: FAILED: %s\n", file, line, what.c_str());
}

template <class A, class B>
std::string describe_eq(const char* ea, const char* eb, const A& a, const B& b) {
    std::ostringstream os;
    os << ea << " == " << eb << "  (" << a << " vs " << b << ")";
    return os.str();
}

/// Deterministic generator for test data (fixed seed per test unless overridden).
inline std::mt19937_64 rng(std::uint64_t seed = 20240601) { return std::mt19937_64(seed); }

inline std::vector<std::uint64_t> random_vector(std::size_t n, std::uint64_t bound,
                                                std::mt19937_64& gen) {
    std::uniform_int_distribution<std::uint64_t> dist(0, bound - 1);
    std::vector<std::uint64_t> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

}  // namespace he_test

#define HE_TEST_CONCAT_(a, b) a##b
#define HE_TEST_CONCAT(a, b) HE_TEST_CONCAT_(a, b)
#define HE_TEST(name)                                                                  \
    static void name();                                                                \
    static ::he_test::Registrar HE_TEST_CONCAT(he_test_registrar_, name)(#name, name); \
    static void name()

#define HE_CHECK(cond)                                                                   \
    do {                                                                                 \
        ++::he_test::state().total_checks;                                               \
        if (!(cond)) ::he_test::report_failure(__FILE__, __LINE__, #cond);               \
    } while (0)

#define HE_CHECK_EQ(a, b)                                                                \
    do {                                                                                 \
        ++::he_test::state().total_checks;                                               \
        const auto he_a_ = (a); /* by value: (a) may refer into a temporary */                                                         \
        const auto he_b_ = (b);                                                         \
        if (!(he_a_ == he_b_))                                                           \
            ::he_test::report_failure(__FILE__, __LINE__,                                \
                                      ::he_test::describe_eq(#a, #b, he_a_, he_b_));     \
    } while (0)

/// Like HE_CHECK but stops the current test on failure.
#define HE_REQUIRE(cond)                                                                 \
    do {                                                                                 \
        ++::he_test::state().total_checks;                                               \
        if (!(cond)) {                                                                   \
            ::he_test::report_failure(__FILE__, __LINE__, #cond);                        \
            throw ::he_test::RequireFailed{};                                            \
        }                                                                                \
    } while (0)

/// Checks that `expr` throws `exc_type` whose what() contains `needle`.
#define HE_CHECK_THROWS(expr, exc_type, needle)                                          \
    do {                                                                                 \
        ++::he_test::state().total_checks;                                               \
        bool he_thrown_ = false;                                                         \
        try {                                                                            \
            (void)(expr);                                                                \
        } catch (const exc_type& e) {                                                    \
            he_thrown_ = true;                                                           \
            if (std::strstr(e.what(), needle) == nullptr)                                \
                ::he_test::report_failure(__FILE__, __LINE__,                            \
                                          std::string("message of ") + #expr +           \
                                              " lacks '" + needle + "': " + e.what());   \
        }                                                                                \
        if (!he_thrown_)                                                                 \
            ::he_test::report_failure(__FILE__, __LINE__,                                \
                                      std::string(#expr) + " did not throw " #exc_type); \
    } while (0)

#define HE_SKIP(reason) throw ::he_test::Skipped{reason}

int main(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : nullptr;
    int failed = 0, passed = 0, skipped = 0;
    for (const auto& t : he_test::registry()) {
        if (filter != nullptr && std::strstr(t.name, filter) == nullptr) continue;
        he_test::state().failures = 0;
        std::fprintf(stderr, "[ RUN  ] %s\n", t.name);
        bool skip = false;
        try {
            t.body();
        } catch (const he_test::RequireFailed&) {
        } catch (const he_test::Skipped& s) {
            skip = true;
            std::fprintf(stderr, "[ SKIP ] %s: %s\n", t.name, s.reason.c_str());
        } catch (const std::exception& e) {
            he_test::report_failure(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
        }
        if (skip) {
            ++skipped;
        } else if (he_test::state().failures != 0) {
            ++failed;
            std::fprintf(stderr, "[ FAIL ] %s (%ld failed checks)\n", t.name, he_test::state().failures);
        } else {
            ++passed;
            std::fprintf(stderr, "[  OK  ] %s\n", t.name);
        }
    }
    std::fprintf(stderr, "%d passed, %d failed, %d skipped (%ld checks)\n", passed, failed,
                 skipped, he_test::state().total_checks);
    if (failed != 0) return 1;
    if (passed == 0 && skipped > 0) return 77;
    if (passed == 0) return 1;  // a filter that matched nothing is an error, not a pass
    return 0;
}
