#!/usr/bin/env bash
# Builds the he_native C++ core and its tests with AddressSanitizer + UndefinedBehaviorSanitizer
# and runs them through ctest. Exits nonzero if the build or any test fails.
#
#   native/run_native_tests.sh [build-dir]      (default: build/native-asan)
#
# Environment: HE_NATIVE_SANITIZE=OFF to run the tests without sanitizers (faster),
#              JOBS (default 2) for the build parallelism.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build_dir="${1:-$root/build/native-asan}"
sanitize="${HE_NATIVE_SANITIZE:-ON}"
jobs="${JOBS:-2}"

if ! command -v cmake >/dev/null 2>&1; then
  echo "run_native_tests.sh: cmake must be on PATH; got none (pip install cmake ninja)" >&2
  exit 2
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

cmake -S "$root" -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHE_NATIVE_BUILD_TESTS=ON \
  -DHE_NATIVE_BUILD_PYTHON=OFF \
  -DHE_NATIVE_SANITIZE="$sanitize"
cmake --build "$build_dir" -j "$jobs"

# halt_on_error + the -fno-sanitize-recover build flag make any finding fail the test.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"
