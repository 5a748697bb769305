"""Session-scoped CKKS/BFV contexts shared by the scheme tests (key generation is the slow part).

Fixture names say scheme and preset; tests that generate rotation keys lazily do so on their
own context copies only when they check key bookkeeping (see test_ckks.py).
"""
from __future__ import annotations

import pytest

import he_ml


@pytest.fixture(scope="session")
def ckks_light():
    """CKKS preset "light": n = 8192, chain [60, 40, 40, 60], scale 2^40, depth 2."""
    return he_ml.CKKS("light")


@pytest.fixture(scope="session")
def ckks_sum():
    """CKKS preset "sum": n = 8192, chain [60, 40, 60], depth 1, no relinearization keys."""
    return he_ml.CKKS("sum")


@pytest.fixture(scope="session")
def bfv_sum():
    """BFV preset "sum": n = 8192, 30-bit plain modulus, no relinearization keys."""
    return he_ml.BFV("sum")


@pytest.fixture(scope="session")
def bfv_inference():
    """BFV preset "inference": n = 8192, 30-bit plain modulus, 10 fractional bits, estimated depth 3."""
    return he_ml.BFV("inference")
