"""NTT: known answers, every path against the pure-Python reference, round trips."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from native_testutil import (
    need_cpp,
    prime,
    random_coeffs,
    skip_unless_tier_runs,
)
from ntt_reference import (
    intt_fast_reference,
    minimal_psi_reference,
    ntt_definition,
    ntt_fast_reference,
)

from he_ml import native

WIDTHS = [20, 30, 40, 49, 50, 55, 60, 61, 62]
SMALL_N = [2, 4, 8, 16, 32, 64, 128, 256, 1024]
# larger n only at a few widths (the Python reference is O(n log n) big-int work)
LARGE_GRID = [(4096, 30), (4096, 50), (4096, 61), (8192, 49), (8192, 60), (32768, 50),
              (32768, 61)]
GRID = [(n, bits) for n in SMALL_N for bits in WIDTHS if (1 << bits) > 4 * n] + LARGE_GRID


@functools.cache
def _reference_case(n: int, bits: int) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(q, input, expected forward) for one grid point; shared by every path."""
    q = prime(bits, n)
    rng = np.random.default_rng(n * 1000 + bits)
    a = [int(v) for v in random_coeffs(rng, q, n)]
    a[0] = q - 1  # always include the extreme value
    expected = ntt_fast_reference(a, q, minimal_psi_reference(n, q))
    return q, tuple(a), tuple(expected)


# --------------------------------------------------------------------------
# The reference itself
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n,bits", [(2, 20), (4, 62), (8, 30), (16, 50), (32, 61), (64, 40)])
def test_fast_reference_matches_definition(n, bits):
    q = prime(bits, n)
    p = minimal_psi_reference(n, q)
    a = [int(v) for v in random_coeffs(np.random.default_rng(bits), q, n)]
    forward = ntt_definition(a, q, p)
    assert ntt_fast_reference(a, q, p) == forward
    assert intt_fast_reference(forward, q, p) == a


# --------------------------------------------------------------------------
# Known-answer vectors
# --------------------------------------------------------------------------
def test_kat_published_psi(kat, impl):
    for entry in kat["published_psi"]:
        assert native.psi(entry["n"], entry["q"]) == entry["psi"]
        assert minimal_psi_reference(entry["n"], entry["q"]) == entry["psi"]


def test_kat_published_vectors(kat, path):
    """Intel HEXL's published vectors, incl. q = 0xffffffffffc0001, n = 2, input {1, 1}."""
    assert any(e["q"] == 0xFFFFFFFFFFC0001 and e["input"] == [1, 1] for e in kat["published"])
    for entry in kat["published"]:
        q = entry["q"]
        if path != "auto" and path not in native.available_tiers(q):
            continue
        a = np.array(entry["input"], dtype=np.uint64)
        forward = native.ntt(a, q, tier=path)
        assert forward.tolist() == entry["forward"], entry
        assert native.intt(forward, q, tier=path).tolist() == entry["input"]


def test_kat_generated_vectors(kat, path):
    for entry in kat["generated"]:
        n, q = entry["n"], entry["q"]
        if path != "auto" and path not in native.available_tiers(q):
            continue
        assert native.psi(n, q) == entry["psi"]
        forward = native.ntt(np.array(entry["input"], dtype=np.uint64), q, tier=path)
        assert forward.tolist() == entry["forward"]
        back = native.intt(forward, q, tier=path)
        assert back.tolist() == entry["input"]


def test_kat_reference_reproduces_vectors(kat):
    """The pure-Python definition reproduces every stored vector (guards the data file)."""
    for entry in kat["published"] + kat["generated"]:
        n, q = entry["n"], entry["q"]
        assert ntt_definition(entry["input"], q, minimal_psi_reference(n, q)) == entry["forward"]


# --------------------------------------------------------------------------
# Grid: every path against the reference
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n,bits", GRID, ids=[f"n{n}-q{b}" for n, b in GRID])
def test_forward_and_inverse_match_reference(path, n, bits):
    q, a, expected = _reference_case(n, bits)
    skip_unless_tier_runs(path, q)
    x = np.array(a, dtype=np.uint64)
    forward = native.ntt(x, q, tier=path)
    assert forward.dtype == np.uint64 and forward.shape == (n,)
    np.testing.assert_array_equal(forward, np.array(expected, dtype=np.uint64))
    np.testing.assert_array_equal(x, np.array(a, dtype=np.uint64))  # input untouched
    np.testing.assert_array_equal(native.intt(forward, q, tier=path), x)


@pytest.mark.parametrize("n", [2, 8, 256, 4096, 65536])
@pytest.mark.parametrize("bits", [21, 49, 50, 51, 59, 62])
def test_round_trip(path, rng, n, bits):
    if (1 << bits) <= 4 * n:
        pytest.skip("no such prime")
    q = prime(bits, n)
    skip_unless_tier_runs(path, q)
    a = random_coeffs(rng, q, (3, n))
    a[0, :] = q - 1
    a[1, :] = 0
    forward = native.ntt(a, q, tier=path)
    assert np.all(forward < q)
    np.testing.assert_array_equal(native.intt(forward, q, tier=path), a)
    # the inverse is also a left inverse: ntt(intt(x)) == x
    np.testing.assert_array_equal(native.ntt(native.intt(a, q, tier=path), q, tier=path), a)


def test_batch_equals_rows(path, rng):
    n, q = 512, prime(50, 512)
    skip_unless_tier_runs(path, q)
    a = random_coeffs(rng, q, (5, n))
    batch = native.ntt(a, q, tier=path)
    for r in range(5):
        np.testing.assert_array_equal(batch[r], native.ntt(a[r], q, tier=path))


def test_linearity_and_delta(impl):
    """ntt is linear, and the NTT of 1 (delta at 0) is all ones."""
    n, q = 64, prime(40, 64)
    one = np.zeros(n, dtype=np.uint64)
    one[0] = 1
    np.testing.assert_array_equal(native.ntt(one, q), np.ones(n, dtype=np.uint64))
    rng = np.random.default_rng(3)
    a, b = random_coeffs(rng, q, n), random_coeffs(rng, q, n)
    s = ((a.astype(object) + b.astype(object)) % q).astype(np.uint64)
    lhs = native.ntt(s, q).astype(object)
    rhs = (native.ntt(a, q).astype(object) + native.ntt(b, q).astype(object)) % q
    assert lhs.tolist() == rhs.tolist()


# --------------------------------------------------------------------------
# In place, out=, zero copy, dtype conversion
# --------------------------------------------------------------------------
def test_out_and_in_place(impl, rng):
    n, q = 256, prime(60, 256)
    a = random_coeffs(rng, q, (2, n))
    expected = native.ntt(a, q)
    out = np.empty_like(a)
    assert native.ntt(a, q, out=out) is out
    np.testing.assert_array_equal(out, expected)
    b = a.copy()
    assert native.ntt(b, q, out=b) is b  # in place
    np.testing.assert_array_equal(b, expected)
    assert native.intt(b, q, out=b) is b
    np.testing.assert_array_equal(b, a)


def test_lossless_dtype_conversion(impl):
    n, q = 8, prime(30, 8)
    ref = native.ntt(np.arange(n, dtype=np.uint64), q)
    for a in (np.arange(n, dtype=np.int64), np.arange(n, dtype=np.uint8),
              np.arange(n, dtype=">u8"),  # big-endian uint64 is converted, not reinterpreted
              np.arange(n, dtype=np.int32), list(range(n)), np.array(list(range(n)), dtype=object)):
        np.testing.assert_array_equal(native.ntt(a, q), ref)
    # strided (non-contiguous) input is accepted and gives the same result
    wide = np.zeros((n, 2), dtype=np.uint64)
    wide[:, 0] = np.arange(n)
    np.testing.assert_array_equal(native.ntt(wide[:, 0], q), ref)
    # numpy integer modulus
    np.testing.assert_array_equal(native.ntt(np.arange(n, dtype=np.uint64), np.uint64(q)), ref)


def test_python_int_list_at_top_of_range(impl):
    """A plain list of Python ints near 2^62 converts exactly (no float detour)."""
    q = prime(62, 4)
    a = [q - 1, q - 2, 2**61 + 1, 0]
    forward = native.ntt(a, q)
    assert forward.dtype == np.uint64
    assert native.intt(forward, q).tolist() == a


# --------------------------------------------------------------------------
# numba vs C++, bit for bit
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n,bits", [(2, 62), (16, 20), (1024, 49), (4096, 50), (8192, 60),
                                    (16384, 61), (65536, 55)])
def test_numba_equals_cpp(n, bits):
    need_cpp()
    q = prime(bits, n)
    a = random_coeffs(np.random.default_rng(n + bits), q, (2, n))
    with native.use_backend("numba"):
        f_numba = native.ntt(a, q)
        i_numba = native.intt(a, q)
    with native.use_backend("cpp"):
        for tier in native.available_tiers(q):
            np.testing.assert_array_equal(native.ntt(a, q, tier=tier), f_numba, err_msg=tier)
            np.testing.assert_array_equal(native.intt(a, q, tier=tier), i_numba, err_msg=tier)


def test_empty_batch(impl):
    q = prime(40, 8)
    assert native.ntt(np.zeros((0, 8), np.uint64), q).shape == (0, 8)
    assert native.polymul_rns(np.zeros((0, 2, 8), np.uint64), np.zeros((0, 2, 8), np.uint64),
                              [q, q]).shape == (0, 2, 8)
