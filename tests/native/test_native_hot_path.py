"""The repeated-call fast path of ntt / intt / ntt_rns / intt_rns.

Once a (moduli, n) pair has passed the full Python validation, later calls with
a uint64 C-contiguous array skip it and rely on the compiled layer's own checks.
These tests pin down that the shortcut gives the same answers as the full path
and that every bad input still raises the documented ParameterError — with the
moduli already validated, i.e. exactly when the shortcut is tried first.
"""
from __future__ import annotations

import numpy as np
import pytest
from native_testutil import need_cpp, prime, random_coeffs

from he_ml import native
from he_ml.errors import ParameterError

N = 64
MODULI = [prime(45, N, 0), prime(45, N, 1), prime(45, N, 2)]


@pytest.fixture
def cpp():
    need_cpp()
    with native.use_backend("cpp"):
        yield


def _batch(rng) -> np.ndarray:
    return np.stack([np.stack([random_coeffs(rng, q, N) for q in MODULI]) for _ in range(2)])


def _expected_forward(batch: np.ndarray) -> np.ndarray:
    with native.use_backend("numba"):
        return native.ntt_rns(batch, MODULI)


def test_repeated_calls_match_the_full_path(cpp, rng):
    batch = _batch(rng)
    expected = _expected_forward(batch)
    for _ in range(3):  # first call validates, the others take the shortcut
        np.testing.assert_array_equal(native.ntt_rns(batch, MODULI), expected)
        np.testing.assert_array_equal(native.intt_rns(expected, MODULI), batch)
    x = batch.copy()
    for _ in range(3):
        assert native.ntt_rns(x, MODULI, out=x) is x
        np.testing.assert_array_equal(x, expected)
        assert native.intt_rns(x, MODULI, out=x) is x
        np.testing.assert_array_equal(x, batch)
    # the same moduli as a tuple, and one row at a time through ntt / intt
    np.testing.assert_array_equal(native.ntt_rns(batch, tuple(MODULI)), expected)
    for i, q in enumerate(MODULI):
        for _ in range(2):
            row = batch[0, i].copy()
            np.testing.assert_array_equal(native.ntt(row, q), expected[0, i])
            assert native.ntt(row, q, out=row) is row
            np.testing.assert_array_equal(row, expected[0, i])
            assert native.intt(row, q, out=row) is row
            np.testing.assert_array_equal(row, batch[0, i])


def test_shortcut_is_taken_after_validation(cpp, rng, monkeypatch):
    batch = _batch(rng)
    expected = _expected_forward(batch)
    native.ntt_rns(batch.copy(), MODULI)  # validates (MODULI, N)

    def fail(*args, **kwargs):
        raise AssertionError("the full validation ran on a repeated call")

    monkeypatch.setattr(native._transforms, "_rns", fail)  # where ntt_rns looks it up
    x = batch.copy()
    native.ntt_rns(x, MODULI, out=x)
    np.testing.assert_array_equal(x, expected)


def test_bad_inputs_after_validation(cpp, rng):
    batch = _batch(rng)
    native.ntt_rns(batch.copy(), MODULI)  # validates (MODULI, N): the shortcut is tried next

    # a float equal to a validated modulus hashes alike; it is still refused
    with pytest.raises(ParameterError, match="moduli\\[1\\] must be an integer"):
        native.ntt_rns(batch, [MODULI[0], float(MODULI[1]), MODULI[2]])
    with pytest.raises(ParameterError, match="q must be an integer"):
        native.ntt(batch[0, 0].copy(), float(MODULI[0]))

    # coefficient >= q: reported with row and column, the array left untouched
    bad = batch.copy()
    bad[1, 2, 7] = MODULI[2]
    before = bad.copy()
    with pytest.raises(ParameterError, match="row 5, column 7"):
        native.ntt_rns(bad, MODULI, out=bad)
    np.testing.assert_array_equal(bad, before)
    with pytest.raises(ParameterError, match="in \\[0, q\\)"):
        native.intt_rns(bad, MODULI)

    # read-only in-place target
    ro = batch.copy()
    ro.flags.writeable = False
    with pytest.raises(ParameterError, match="writable"):
        native.ntt_rns(ro, MODULI, out=ro)

    # k rows that do not match len(moduli), even when they divide the row count
    with pytest.raises(ParameterError, match="k = len\\(moduli\\) = 3"):
        native.ntt_rns(np.zeros((3, 1, N), np.uint64), MODULI)

    # unknown or unusable tier
    with pytest.raises(ParameterError, match="tier must be one of"):
        native.ntt_rns(batch, MODULI, tier="fast")
    with pytest.raises(ParameterError, match="tier"):
        native.ntt_rns(batch, [prime(55, N)] * 3, tier="avx512ifma")


def test_views_and_other_dtypes_take_the_full_path(cpp, rng):
    batch = _batch(rng)
    expected = _expected_forward(batch)
    native.ntt_rns(batch.copy(), MODULI)  # validates (MODULI, N)
    # a strided view: transformed correctly (copied), never written through a reshape copy
    wide = np.zeros((2, 3, 2 * N), np.uint64)
    wide[:, :, ::2] = batch
    view = wide[:, :, ::2]
    np.testing.assert_array_equal(native.ntt_rns(view, MODULI), expected)
    np.testing.assert_array_equal(wide[:, :, ::2], batch)
    with pytest.raises(ParameterError, match="C-contiguous"):
        native.ntt_rns(view, MODULI, out=view)
    # int64 input converts losslessly
    np.testing.assert_array_equal(native.ntt_rns(batch.astype(np.int64), MODULI), expected)
    # a separate out array
    out = np.empty_like(batch)
    assert native.ntt_rns(batch, MODULI, out=out) is out
    np.testing.assert_array_equal(out, expected)
