"""Calls without ``out=``: the compiled core allocates the result (from a pool of warm
buffers) and fuses the copy into the transform's first pass.

Every path (numba, each C++ tier) must give exactly the reference answer, leave the input
untouched, and return a fresh array that no later call writes into (the pool must never
hand out a buffer that a live array still uses).
"""
from __future__ import annotations

import gc

import numpy as np
import pytest
from native_testutil import need_cpp, prime, random_coeffs, skip_unless_tier_runs
from ntt_reference import minimal_psi_reference, ntt_fast_reference

from he_ml import native
from he_ml.errors import ParameterError

# n = 16: the AVX-512 first pass is the 16-element tail; 32: tail with the stride-16 layer;
# 64 / 4096: a radix-4 first pass (odd / even number of radix-4 layers before the tail).
SIZES = [2, 8, 16, 32, 64, 128, 4096]


def _schoolbook(a: list[int], b: list[int], q: int) -> list[int]:
    """Negacyclic product by definition: X^n = -1."""
    n = len(a)
    c = [0] * n
    for i in range(n):
        for j in range(n):
            k = i + j
            if k < n:
                c[k] += a[i] * b[j]
            else:
                c[k - n] -= a[i] * b[j]
    return [v % q for v in c]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bits", [45, 60])
def test_no_out_equals_reference_and_out_path(path, rng, n, bits):
    if (1 << bits) <= 4 * n:
        pytest.skip("no such prime")
    q = prime(bits, n)
    skip_unless_tier_runs(path, q)
    a = random_coeffs(rng, q, (3, n))
    a[0, 0] = q - 1
    kept = a.copy()
    psi = minimal_psi_reference(n, q)
    expected = np.array([ntt_fast_reference([int(v) for v in row], q, psi) for row in a],
                        dtype=np.uint64)
    for _ in range(3):  # first call: full validation; later calls: the shortcut
        fwd = native.ntt(a, q, tier=path)
        np.testing.assert_array_equal(fwd, expected)
        np.testing.assert_array_equal(a, kept)  # input never written
        assert fwd.dtype == np.uint64 and fwd.shape == a.shape and fwd.flags.c_contiguous
        assert fwd.flags.writeable and not np.shares_memory(fwd, a)
        back = native.intt(fwd, q, tier=path)
        np.testing.assert_array_equal(back, a)
        np.testing.assert_array_equal(fwd, expected)  # intt did not touch its input either
        out = np.empty_like(a)
        np.testing.assert_array_equal(native.ntt(a, q, tier=path, out=out), fwd)


def test_rns_no_out_equals_per_row(path, rng):
    n = 1024
    moduli = [prime(50, n, i) for i in range(3)]
    for q in moduli:
        skip_unless_tier_runs(path, q)
    a = np.stack([np.stack([random_coeffs(rng, q, n) for q in moduli]) for _ in range(2)])
    for _ in range(2):
        fwd = native.ntt_rns(a, moduli, tier=path)
        assert fwd.shape == (2, 3, n)
        for m in range(2):
            for i, q in enumerate(moduli):
                np.testing.assert_array_equal(fwd[m, i], native.ntt(a[m, i], q, tier=path))
        np.testing.assert_array_equal(native.intt_rns(fwd, moduli, tier=path), a)


def test_returned_arrays_never_share_a_pool_buffer(rng):
    need_cpp()
    with native.use_backend("cpp"):
        n, q = 4096, prime(50, 4096)
        a = random_coeffs(rng, q, (4, n))
        results = [native.ntt(a, q) for _ in range(20)]  # all alive at once
        snapshot = [r.copy() for r in results]
        for i, r in enumerate(results):
            for s in results[i + 1:]:
                assert not np.shares_memory(r, s)
        del results[::2]  # freed arrays go back to the pool ...
        gc.collect()
        fresh = [native.intt(native.ntt(a, q), q) for _ in range(10)]  # ... and are reused
        for r, s in zip(results, snapshot[1::2]):
            np.testing.assert_array_equal(r, s)  # live arrays untouched by the reuse
        for f in fresh:
            np.testing.assert_array_equal(f, a)


def test_pool_is_bounded_and_can_be_disabled(rng):
    need_cpp()
    raw = native._cpp_module
    with native.use_backend("cpp"):
        n, q = 4096, prime(50, 4096)
        a = random_coeffs(rng, q, (8, n))
        arrays = [native.ntt(a, q) for _ in range(40)]
        del arrays
        gc.collect()
        info = raw.output_pool_info()
        assert info["bytes"] <= info["budget"] and info["buffers"] <= 16
        raw.set_output_pool_budget(0)
        try:
            assert raw.output_pool_info()["bytes"] == 0
            np.testing.assert_array_equal(native.intt(native.ntt(a, q), q), a)
            assert raw.output_pool_info()["bytes"] == 0
        finally:
            raw.set_output_pool_budget(64 << 20)


@pytest.mark.parametrize("n", [4, 16, 64])
def test_polymul_and_pointwise_no_out(path, rng, n):
    q = prime(40, n)
    skip_unless_tier_runs(path, q)
    a, b = random_coeffs(rng, q, (2, n)), random_coeffs(rng, q, (2, n))
    for _ in range(2):
        c = native.polymul(a, b, q, tier=path)
        for r in range(2):
            assert c[r].tolist() == _schoolbook(a[r].tolist(), b[r].tolist(), q)
        out = np.empty_like(a)
        np.testing.assert_array_equal(native.polymul(a, b, q, tier=path, out=out), c)
    p = native.pointwise_mul(a, b, q)
    assert p.tolist() == ((a.astype(object) * b.astype(object)) % q).tolist()
    assert not np.shares_memory(p, a) and not np.shares_memory(p, b)


def test_no_out_errors_are_parameter_errors(impl, rng):
    n, q = 64, prime(50, 64)
    a = random_coeffs(rng, q, (3, n))
    native.ntt(a, q)  # validated: the next calls try the shortcut first
    bad = a.copy()
    bad[2, 5] = q
    with pytest.raises(ParameterError, match="row 2, column 5"):
        native.ntt(bad, q)
    with pytest.raises(ParameterError, match="row 2, column 5"):
        native.intt(bad, q)
    np.testing.assert_array_equal(bad[:2], a[:2])  # the failed call wrote nothing
    with pytest.raises(ParameterError, match="coefficients of b must be in"):
        native.polymul(a, bad, q)


@pytest.mark.parametrize("n", [2, 16, 64, 4096])
@pytest.mark.parametrize("shape", ["1d", "2d", "3d"])
def test_out_into_a_separate_array_equals_reference(path, rng, n, shape):
    """out= a separate array: the core transforms out of place (the copy fused into the
    first pass) instead of copying then transforming in place; the answer is the plain
    reference's on every path and shape, and the input is never written."""
    moduli = [prime(45, n, i) for i in range(2)]
    for q in moduli:
        skip_unless_tier_runs(path, q)
    psi = {q: minimal_psi_reference(n, q) for q in moduli}
    if shape == "1d":
        a, mods = random_coeffs(rng, moduli[0], n), moduli[:1]
    else:
        a = np.stack([random_coeffs(rng, q, n) for q in moduli])
        if shape == "3d":
            a = np.stack([a, a[::-1] % np.array(moduli, dtype=np.uint64)[:, None]])
        mods = moduli
    kept = a.copy()
    rows = a.reshape(-1, n)
    expected = np.array([ntt_fast_reference([int(v) for v in row], mods[i % len(mods)],
                                            psi[mods[i % len(mods)]])
                         for i, row in enumerate(rows)], dtype=np.uint64).reshape(a.shape)
    for _ in range(3):  # first call: full validation; later calls: the shortcut
        out, back = np.empty_like(a), np.empty_like(a)
        if shape == "1d":
            assert native.ntt(a, mods[0], tier=path, out=out) is out
            assert native.intt(out, mods[0], tier=path, out=back) is back
        else:
            assert native.ntt_rns(a, mods, tier=path, out=out) is out
            assert native.intt_rns(out, mods, tier=path, out=back) is back
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(back, kept)
        np.testing.assert_array_equal(a, kept)


def test_out_errors_into_a_separate_array(impl, rng):
    n = 64
    q = prime(50, n)
    a = random_coeffs(rng, q, (3, n))
    native.ntt(a, q, out=np.empty_like(a))  # validated: the next calls try the shortcut first
    bad = a.copy()
    bad[2, 5] = q
    before = bad.copy()
    for fn in (native.ntt, native.intt):
        with pytest.raises(ParameterError, match="row 2, column 5"):
            fn(bad, q, out=np.empty_like(bad))
        np.testing.assert_array_equal(bad, before)  # the input is never written
    # out overlapping the input without being it: refused, input untouched
    buf = np.concatenate([a.reshape(-1), np.zeros(n, np.uint64)])
    src, dst = buf[:3 * n].reshape(3, n), buf[n:].reshape(3, n)
    kept = src.copy()
    with pytest.raises(ParameterError, match="overlap"):
        native.ntt(src, q, out=dst)
    np.testing.assert_array_equal(src, kept)
    # following the advice (a fresh array) works
    fresh = np.empty_like(src)
    np.testing.assert_array_equal(native.ntt(src, q, out=fresh), native.ntt(a, q))
    # wrong shape, dtype, read-only out
    with pytest.raises(ParameterError, match="shape"):
        native.ntt(a, q, out=np.empty((2, n), np.uint64))
    with pytest.raises(ParameterError, match="uint64"):
        native.ntt(a, q, out=np.empty((3, n), np.int64))
    ro = np.empty_like(a)
    ro.flags.writeable = False
    with pytest.raises(ParameterError, match="writable"):
        native.ntt(a, q, out=ro)


@pytest.mark.parametrize("n", [8192, 16384, 32768])
@pytest.mark.parametrize("bits", [50, 60])
def test_large_rings_every_tier_and_form_equals_numba(rng, n, bits):
    """The sizes of issue 10's target: every compiled tier, called without out=, with out=
    a separate array and in place, gives the numba fallback's answer bit for bit (the
    reference tier and numba are checked against the plain Python reference at the smaller
    sizes above and in test_native_ntt.py)."""
    need_cpp()
    moduli = [prime(bits, n, i) for i in range(3)]
    x = np.stack([np.stack([random_coeffs(rng, q, n) for q in moduli]) for _ in range(2)])
    b = np.stack([np.stack([random_coeffs(rng, q, n) for q in moduli]) for _ in range(2)])
    with native.use_backend("numba"):
        fwd, inv = native.ntt_rns(x, moduli), native.intt_rns(x, moduli)
        prod = native.polymul_rns(x, b, moduli)
    kept = x.copy()
    with native.use_backend("cpp"):
        for tier in ["auto", *native.available_tiers(moduli[0])]:
            for fn, expected in ((native.ntt_rns, fwd), (native.intt_rns, inv)):
                np.testing.assert_array_equal(fn(x, moduli, tier=tier), expected, err_msg=tier)
                out = np.empty_like(x)
                np.testing.assert_array_equal(fn(x, moduli, tier=tier, out=out), expected)
                y = x.copy()
                np.testing.assert_array_equal(fn(y, moduli, tier=tier, out=y), expected)
            np.testing.assert_array_equal(native.polymul_rns(x, b, moduli, tier=tier), prod)
            np.testing.assert_array_equal(native.ntt(x[1, 2], moduli[2], tier=tier), fwd[1, 2])
            np.testing.assert_array_equal(
                native.polymul(x[0, 1], b[0, 1], moduli[1], tier=tier), prod[0, 1])
    np.testing.assert_array_equal(x, kept)


@pytest.mark.parametrize("n", [64, 4096, 16384])
def test_arrays_at_every_offset_from_a_cache_line(path, rng, n):
    """numpy's large arrays start 16 bytes past a cache line; the AVX-512 kernels then work
    in an aligned buffer of their own. Views starting 0..7 elements past a 64-byte boundary,
    as input, as out= and in place, all give the reference (numba) answer."""
    q = prime(50, n)
    skip_unless_tier_runs(path, q)
    x = random_coeffs(rng, q, n)
    with native.use_backend("numba"):
        expected = native.ntt(x, q)
    buf_in, buf_out = np.zeros(n + 16, np.uint64), np.zeros(n + 16, np.uint64)

    def at(buf, k):  # a C-contiguous view k elements past a 64-byte boundary
        start = (-buf.__array_interface__["data"][0] % 64) // 8 + k
        return buf[start:start + n]

    for k_in in (0, 1, 2, 5):
        for k_out in (0, 2, 7):
            src, dst = at(buf_in, k_in), at(buf_out, k_out)
            src[:] = x
            np.testing.assert_array_equal(native.ntt(src, q, tier=path, out=dst), expected)
            np.testing.assert_array_equal(native.intt(dst, q, tier=path, out=src), x)
            np.testing.assert_array_equal(native.ntt(src, q, tier=path), expected)
            assert native.ntt(src, q, tier=path, out=src) is src
            np.testing.assert_array_equal(src, expected)
