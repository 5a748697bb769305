"""find_primes checks its documented limits before searching or allocating (both backends).

Issue 10: the numba fallback's ``find_primes(2, 2, 10**9)`` allocated a 10**9-entry array
and died with MemoryError; the C++ binding raised TypeError for counts past 64 bits.
"""
from __future__ import annotations

import pytest

from he_ml import native
from he_ml.errors import ParameterError


@pytest.mark.parametrize("bits,n,count,match", [
    (2, 2, 10**9, "bits must be in \\[3, 62\\] for n = 2"),
    (40, 2, 10**9, "count must be at most 65536"),
    (40, 2, 2**70, "count must be at most 65536"),
    (40, 2, 10**400, "count must be at most 65536"),
    (40, 2, 65537, "count must be at most 65536"),
    (17, 65536, 1, "bits must be in \\[18, 62\\] for n = 65536"),
    (63, 8, 1, "bits must be in \\[5, 62\\]"),
    (18, 65536, 3, "at most the 1 candidates"),
    (12, 1024, 0, "count must be at least 1"),
    (40, 3, 1, "power of two"),
    (40, 2**17, 1, "power of two"),
])
def test_limits_checked_first(impl, bits, n, count, match):
    with pytest.raises(ParameterError, match=match) as info:
        native.find_primes(bits, n, count)
    assert not isinstance(info.value, (MemoryError, OverflowError, TypeError))
    assert "Ask for" in str(info.value) or "power of two" in str(info.value) \
        or "at least 1" in str(info.value)


def test_following_the_advice_works(impl):
    with pytest.raises(ParameterError, match="fewer primes or more bits"):
        native.find_primes(12, 1024, 2)  # one candidate only: 2^12 - 2048 + 1 = 2049 = 3 * 683
    assert native.find_primes(14, 1024, 1) == [12289]  # more bits, as advised
    assert len(native.find_primes(40, 2, 65536)) == 65536  # the documented maximum count


def test_numba_raw_function_validates_before_allocating():
    from he_ml.native import _numba

    for bits, n, count in [(2, 2, 10**9), (40, 2, 10**9), (40, 2, 0)]:
        with pytest.raises(ValueError, match="must be in"):
            _numba.find_primes(bits, n, count)
