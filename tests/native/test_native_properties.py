"""Property-based checks (Hypothesis) and concurrent use, on every implementation."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from native_testutil import need_cpp, prime
from ntt_reference import negacyclic_schoolbook

from he_ml import native

IMPLS = ["numba", "cpp"]


@st.composite
def _case(draw):
    log_n = draw(st.integers(1, 6))
    n = 1 << log_n
    bits = draw(st.integers(max(log_n + 3, 12), 62))
    q = prime(bits, n, draw(st.integers(0, 2)))
    coeff = st.one_of(st.integers(0, q - 1), st.sampled_from([0, 1, q - 1]))
    a = draw(st.lists(coeff, min_size=n, max_size=n))
    b = draw(st.lists(coeff, min_size=n, max_size=n))
    return q, a, b


@pytest.mark.parametrize("impl_name", IMPLS)
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=_case())
def test_polymul_and_round_trip_properties(impl_name, case):
    if impl_name == "cpp":
        need_cpp()
    q, a, b = case
    with native.use_backend(impl_name):
        x = np.array(a, dtype=np.uint64)
        y = np.array(b, dtype=np.uint64)
        assert native.intt(native.ntt(x, q), q).tolist() == a
        assert native.polymul(x, y, q).tolist() == negacyclic_schoolbook(a, b, q)
        # the product commutes and the NTT turns it into a pointwise product
        assert native.polymul(y, x, q).tolist() == native.polymul(x, y, q).tolist()
        lhs = native.ntt(native.polymul(x, y, q), q)
        rhs = native.pointwise_mul(native.ntt(x, q), native.ntt(y, q), q)
        assert lhs.tolist() == rhs.tolist()


@pytest.mark.parametrize("impl_name", IMPLS)
def test_concurrent_calls_agree(impl_name):
    """Kernels release the GIL and tables are built once under a lock: threads get the same bits."""
    if impl_name == "cpp":
        need_cpp()
    n = 2048
    moduli = [prime(50, n, i) for i in range(4)]
    rng = np.random.default_rng(9)
    inputs = [np.stack([rng.integers(0, q, size=n, dtype=np.uint64) for q in moduli])
              for _ in range(8)]
    with native.use_backend(impl_name):
        expected = [native.ntt_rns(x, moduli) for x in inputs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            got = list(pool.map(lambda x: native.ntt_rns(x, moduli), inputs))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
