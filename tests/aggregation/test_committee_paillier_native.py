"""Threshold-Paillier share decryption through he_ml.native.bigmod on every backend here,
against the per-ciphertext GMP oracle, and a full committee round with each backend forced."""
from __future__ import annotations

import numpy as np
import pytest

from he_ml.aggregation import GradientAggregator, combine, partial_decrypt
from he_ml.errors import ParameterError
from he_ml.aggregation import committee_paillier as cp
from he_ml.aggregation.committee import insecure_tiny_committee
from he_ml.native.bigmod import backends


@pytest.fixture(scope="module")
def committee():
    return insecure_tiny_committee("paillier", 5, 3)


@pytest.mark.parametrize("backend", backends())
def test_partial_exponentiate_many_matches_gmp_oracle(committee, backend):
    share = committee.shares[1]
    n = share._payload["n"]
    n2 = n * n
    rng = np.random.default_rng(3)
    chunks = [int.from_bytes(rng.bytes(n2.bit_length() // 8 + 8), "big") % n2 for _ in range(11)] + [1, n2 - 1]
    got = cp.partial_exponentiate_many(chunks, share._payload["s"], 5, n, backend=backend)
    want = [int(cp.partial_exponentiate(c, share._payload["s"], 5, n2)) for c in chunks]
    assert got == want


def test_exponent_bound_covers_every_share(committee):
    n = committee.shares[0]._payload["n"]
    bound = cp.partial_exponent_bits(n, 5)
    for s in committee.shares:
        assert (2 * cp.delta(5) * s._payload["s"]).bit_length() <= bound
    # and it is tight to within the few bits n m < n^2 / 4 leaves: no needless work
    assert bound <= 2 * n.bit_length() - 2 + (2 * cp.delta(5)).bit_length() + 1


def test_committee_round_with_process_pool(committee):
    """processes=2 (GMP path when IFMA is absent; ignored with IFMA): same exact sum."""
    pub = committee.public_context()
    agg = GradientAggregator(pub)
    rng = np.random.default_rng(5)
    data = rng.uniform(-1, 1, size=(4, 300))
    total = agg.sum(agg.encrypt(row) for row in data)
    parts = [partial_decrypt(s, total, processes=2) for s in committee.shares[:3]]
    got = combine(pub, total, parts)
    # fixed point with 24 fractional bits: each value rounds by <= 2^-25, 4 clients
    assert np.max(np.abs(got - data.sum(axis=0))) <= 4 * 2.0 ** -25


def test_processes_must_be_a_positive_int(committee):
    agg = GradientAggregator(committee.public_context())
    total = agg.sum([agg.encrypt(np.zeros(3))])
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ParameterError, match="processes must be an int"):
            partial_decrypt(committee.shares[0], total, processes=bad)
    assert len(partial_decrypt(committee.shares[0], total, processes=1).to_bytes()) > 0
