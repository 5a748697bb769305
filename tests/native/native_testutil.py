"""Test-only helpers shared by the native-core tests (imported by conftest and tests)."""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from ntt_reference import is_prime_reference

from he_ml import native

__all__ = ["CPP_AVAILABLE", "CPP_SKIP_REASON", "NATIVE_REQUIRED", "need_cpp", "prime", "random_coeffs",
           "skip_unless_tier_runs"]

CPP_AVAILABLE = native._cpp_module is not None
CPP_SKIP_REASON = f"compiled module he_ml._native not importable ({native._CPP_IMPORT_ERROR})"
# CI sets HE_ML_REQUIRE_NATIVE=1: there a missing compiled module fails the C++ tests
# instead of skipping them, so a broken build cannot pass as "numba only".
NATIVE_REQUIRED = os.environ.get("HE_ML_REQUIRE_NATIVE", "") not in ("", "0")


def need_cpp() -> None:
    """Skip (or, under HE_ML_REQUIRE_NATIVE=1, fail) when the compiled module is missing."""
    if CPP_AVAILABLE:
        return
    if NATIVE_REQUIRED:
        pytest.fail(f"HE_ML_REQUIRE_NATIVE is set but the {CPP_SKIP_REASON[0].lower()}"
                    f"{CPP_SKIP_REASON[1:]}")
    pytest.skip(CPP_SKIP_REASON)


def skip_unless_tier_runs(tier: str, q: int) -> None:
    """Skip when ``tier`` is forced but cannot run for ``q`` on this machine/build."""
    if tier != "auto" and tier not in native.available_tiers(q):
        pytest.skip(f"tier {tier} cannot run for a {q.bit_length()}-bit modulus here "
                    f"(available: {native.available_tiers(q)})")


@functools.cache
def prime(bits: int, n: int, index: int = 0) -> int:
    """The index-th largest prime of `bits` bits with q == 1 mod 2n (pure-Python search)."""
    q = (1 << bits) - 1
    q -= (q - 1) % (2 * n)
    found = -1
    while q >= 1 << (bits - 1):
        if is_prime_reference(q):
            found += 1
            if found == index:
                return q
        q -= 2 * n
    raise ValueError(f"fewer than {index + 1} primes of {bits} bits for n = {n}")


def random_coeffs(rng: np.random.Generator, q: int, shape) -> np.ndarray:
    """Uniform uint64 values in [0, q) (seeded test data)."""
    return rng.integers(0, q, size=shape, dtype=np.uint64)
