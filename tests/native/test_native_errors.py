"""Every bad input raises ParameterError (a ValueError) with a message that says what and why."""
from __future__ import annotations

import numpy as np
import pytest
from native_testutil import prime

from he_ml import native
from he_ml.errors import ParameterError

N = 16
Q = prime(40, N)  # valid NTT prime for n = 16
GOOD = np.arange(N, dtype=np.uint64)


def _bad_ntt_cases():
    q62 = prime(62, N)
    return [
        # (description, a, q, message fragment)
        ("n not a power of two", np.zeros(12, np.uint64), Q, "power of two"),
        ("n too small", np.zeros(1, np.uint64), Q, "power of two in [2, 65536]"),
        ("n too large", np.zeros(131072, np.uint64), 0, "power of two in [2, 65536]"),
        ("q composite", GOOD, 3201, "must be prime"),  # 3201 = 3 * 11 * 97 = 1 mod 32
        ("q prime power", GOOD, 97 * 97 * 97 * 97, "must be prime"),  # 97^4 = 1 mod 32
        ("q not 1 mod 2n", GOOD, 1000003, "1 mod 2n"),
        ("q too wide", GOOD, (1 << 62) + 1, "2^62"),
        ("q too wide 64", GOOD, (1 << 64) - 59, "2^62"),
        ("q negative", GOOD, -Q, "2 < q"),
        ("q float", GOOD, float(Q), "must be an integer"),
        ("q bool", GOOD, True, "must be an integer"),
        ("coefficient == q", np.full(N, Q, np.uint64), Q, "in [0, q)"),
        ("coefficient > q", np.array([0] * 15 + [q62], np.uint64), Q, "row 0, column 15"),
        ("float dtype", np.arange(N, dtype=np.float64), Q, "floating point dtype float64"),
        ("float list", [0.5] * N, Q, "float64"),
        ("complex dtype", np.zeros(N, np.complex128), Q, "complex"),
        ("bool dtype", np.zeros(N, bool), Q, "boolean"),
        ("negative ints", np.arange(N, dtype=np.int64) - 3, Q, "non-negative"),
        ("negative list", [-1] + [0] * (N - 1), Q, "non-negative"),
        ("object too large", np.array([1 << 70] + [0] * (N - 1), dtype=object), Q, "[0, 2^64)"),
        ("object negative", np.array([-5] + [0] * (N - 1), dtype=object), Q, "[0, 2^64)"),
        ("object string", np.array(["1"] * N, dtype=object), Q, "str"),
        ("string dtype", np.array(["1"] * N), Q, "dtype <U1"),
        ("ragged list", [[1, 2], [3]], Q, "ragged"),
        ("3-D for one q", np.zeros((2, 2, N), np.uint64), Q, "shape (n,) or (rows, n)"),
        ("0-D", np.uint64(3), Q, "shape (n,) or (rows, n)"),
    ]


@pytest.mark.parametrize("case", _bad_ntt_cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("fn", [native.ntt, native.intt], ids=["ntt", "intt"])
def test_bad_ntt_input(impl, fn, case):
    _, a, q, fragment = case
    with pytest.raises(ParameterError, match=None) as info:
        fn(a, q)
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value), str(info.value)


def test_message_says_what_was_given_and_what_to_do(impl):
    with pytest.raises(ParameterError) as info:
        native.ntt(GOOD, 1000003)
    msg = str(info.value)
    assert "got q = 1000003" in msg and "find_primes" in msg
    with pytest.raises(ParameterError) as info:
        native.ntt(np.arange(12, dtype=np.uint64), Q)
    assert "got n = 12" in str(info.value) and "Pad" in str(info.value)


def test_bad_tier(impl):
    with pytest.raises(ParameterError, match="tier must be one of"):
        native.ntt(GOOD, Q, tier="fast")
    with pytest.raises(ParameterError, match="tier must be one of"):
        native.polymul(GOOD, GOOD, Q, tier=None)
    if impl == "numba":
        with pytest.raises(ParameterError, match="numba fallback"):
            native.ntt(GOOD, Q, tier="scalar")
    else:
        q60 = prime(60, N)
        if "avx512ifma" in native.available_tiers(prime(49, N)):
            with pytest.raises(ParameterError, match="cannot run for q"):
                native.ntt(np.zeros(N, np.uint64), q60, tier="avx512ifma")


@pytest.mark.parametrize("fn", [native.polymul, native.pointwise_mul],
                         ids=["polymul", "pointwise_mul"])
def test_bad_binary_input(impl, fn):
    with pytest.raises(ParameterError, match="same shape"):
        fn(np.zeros((2, N), np.uint64), np.zeros((3, N), np.uint64), Q)
    with pytest.raises(ParameterError, match="power of two"):
        fn(np.zeros(N, np.uint64), np.zeros(2 * N - 2, np.uint64), Q)
    with pytest.raises(ParameterError, match="coefficients of b must be in"):
        fn(GOOD, np.full(N, Q, np.uint64), Q)
    with pytest.raises(ParameterError, match="floating point"):
        fn(GOOD, GOOD.astype(np.float32), Q)


def test_bad_out(impl):
    with pytest.raises(ParameterError, match="uint64"):
        native.ntt(GOOD, Q, out=np.empty(N, np.int64))
    with pytest.raises(ParameterError, match="shape"):
        native.ntt(GOOD, Q, out=np.empty(2 * N, np.uint64))
    with pytest.raises(ParameterError, match="C-contiguous"):
        native.ntt(GOOD, Q, out=np.empty((N, 2), np.uint64)[:, 0])
    ro = np.empty(N, np.uint64)
    ro.flags.writeable = False
    with pytest.raises(ParameterError, match="writable"):
        native.ntt(GOOD, Q, out=ro)
    a = GOOD.copy()
    with pytest.raises(ParameterError, match="overlap"):
        native.polymul(a, GOOD, Q, out=a)  # polymul's output may not alias an input
    buf = np.zeros(2 * N, np.uint64)
    with pytest.raises(ParameterError, match="overlap"):
        native.ntt(buf[:N], Q, out=buf[N // 2: N // 2 + N])


def test_bad_rns_input(impl):
    moduli = [prime(40, N, 0), prime(40, N, 1)]
    a = np.zeros((2, N), np.uint64)
    with pytest.raises(ParameterError, match="k = len\\(moduli\\) = 3"):
        native.ntt_rns(a, moduli + [prime(40, N, 2)])
    with pytest.raises(ParameterError, match="single integer"):
        native.polymul_rns(a, a, moduli[0])
    with pytest.raises(ParameterError, match="at least one modulus"):
        native.ntt_rns(np.zeros((0, N), np.uint64), [])
    with pytest.raises(ParameterError, match="prime"):
        native.intt_rns(a, [moduli[0], 3201])
    with pytest.raises(ParameterError, match="moduli\\[1\\] must be an integer"):
        native.ntt_rns(a, [moduli[0], 2.5])
    bad = np.zeros((2, N), np.uint64)
    bad[1, 3] = moduli[1]  # row 1 is checked against its own modulus
    with pytest.raises(ParameterError, match="row 1, column 3"):
        native.ntt_rns(bad, moduli)
    with pytest.raises(ParameterError, match="same shape"):
        native.polymul_rns(a, np.zeros((2, 2, N), np.uint64), moduli)


def test_bad_find_primes(impl):
    with pytest.raises(ParameterError, match="bits must be in"):
        native.find_primes(63, 1024, 1)
    with pytest.raises(ParameterError, match="bits must be in"):
        native.find_primes(1, 2, 1)
    with pytest.raises(ParameterError, match="power of two"):
        native.find_primes(30, 1000, 1)
    with pytest.raises(ParameterError, match="count must be at least 1"):
        native.find_primes(30, 1024, 0)
    with pytest.raises(ParameterError, match="fewer primes or more bits"):
        native.find_primes(12, 1024, 1)  # only 2049 = 3 * 683 is 1 mod 2048 in [2^11, 2^12)
    with pytest.raises(ParameterError, match="must be an integer"):
        native.find_primes(30.0, 1024, 1)


def test_bad_misc(impl):
    with pytest.raises(ParameterError, match="2\\^64"):
        native.is_prime(1 << 64)
    with pytest.raises(ParameterError, match="must be an integer"):
        native.is_prime(7.0)
    with pytest.raises(ParameterError, match="1 mod 2n"):
        native.psi(1024, 97)
    with pytest.raises(ParameterError, match="2 < q < 2\\^62"):
        native.backend(1 << 62)
    with pytest.raises(ParameterError, match="'cpp', 'numba' or 'auto'"):
        native.use_backend("gpu")
