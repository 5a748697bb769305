"""Fixtures for the native-core tests: every public-API test runs on every path.

A *path* is (implementation, tier): the numba fallback, and the compiled core
with automatic dispatch and with each tier forced. Paths that cannot run here
(no compiled module, CPU without the feature) skip themselves with the reason.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ntt_reference, native_testutil

from native_testutil import need_cpp

from he_ml import native

KAT_PATH = Path(__file__).resolve().parents[1] / "data" / "ntt_kat.json"

# (implementation, tier); ids read like "numba", "cpp-auto", "cpp-avx512ifma"
PATHS = [
    ("numba", "auto"),
    ("cpp", "auto"),
    ("cpp", "reference"),
    ("cpp", "scalar"),
    ("cpp", "avx512ifma"),
    ("cpp", "avx512"),
]
PATH_IDS = ["numba" if impl == "numba" else f"cpp-{tier}" for impl, tier in PATHS]


@pytest.fixture(params=PATHS, ids=PATH_IDS)
def path(request):
    """Switch to one implementation for the test; yield the tier to pass as ``tier=``."""
    impl, tier = request.param
    if impl == "cpp":
        need_cpp()
    with native.use_backend(impl):
        yield tier


@pytest.fixture(params=["numba", "cpp"])
def impl(request):
    """Switch to one implementation (automatic tier) for the test."""
    if request.param == "cpp":
        need_cpp()
    with native.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    """Seeded generator for test data (never for keys or noise)."""
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def kat():
    """Known-answer vectors from tests/data/ntt_kat.json."""
    return json.loads(KAT_PATH.read_text())
