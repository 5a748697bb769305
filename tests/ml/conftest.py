"""Shared fixtures and test doubles for tests/ml.

`LevelTrackingArray` is *not* encryption and does not stand in for a crypto library: it is
a plaintext numpy array that applies the CKKS level-consumption rule of TenSEAL, so the
depth accounting of an evaluation plan can be checked exactly and cheaply.  Every
encrypted result is additionally checked against real CKKS in the tests that use the
``ckks_context`` fixtures.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import pytest

from he_ml.errors import DepthExhaustedError, UnsupportedOperationError


@dataclass
class OperationCounts:
    ciphertext_multiplications: int = 0
    plaintext_multiplications: int = 0
    additions: int = 0


@dataclass
class FakeSchemeContext:
    """Minimal stand-in for ``vector.context``: a scheme name and its capabilities."""

    name: str = "ckks"
    capabilities: frozenset = frozenset({"add", "mul_plain", "mul"})
    counts: OperationCounts = field(default_factory=OperationCounts)


class LevelTrackingArray:
    """Plaintext values plus TenSEAL's CKKS level rule (test double for plan accounting).

    Rule: ``*`` with another LevelTrackingArray or with *any* plaintext scalar/array
    consumes one level and the result sits at ``min(levels) - 1``; ``+``, ``-`` and
    negation consume nothing (the lower operand level wins).  Going below level 0 raises
    `DepthExhaustedError`, like a real CKKS backend out of primes.  ``level=None`` models
    a scheme without a level budget (BFV, Paillier).
    """

    __array_ufunc__ = None  # numpy must defer to our reflected operators

    def __init__(self, values, level: int | None, context: FakeSchemeContext) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.level = level
        self.context = context

    def _wrap(self, values, level):
        return LevelTrackingArray(values, level, self.context)

    @staticmethod
    def _min(a, b):
        return None if a is None or b is None else min(a, b)

    def __add__(self, other):
        self.context.counts.additions += 1
        if isinstance(other, LevelTrackingArray):
            return self._wrap(self.values + other.values, self._min(self.level, other.level))
        return self._wrap(self.values + np.asarray(other, dtype=np.float64), self.level)

    __radd__ = __add__

    def __sub__(self, other):
        self.context.counts.additions += 1
        if isinstance(other, LevelTrackingArray):
            return self._wrap(self.values - other.values, self._min(self.level, other.level))
        return self._wrap(self.values - np.asarray(other, dtype=np.float64), self.level)

    def __rsub__(self, other):
        return (-self) + other

    def __neg__(self):
        return self._wrap(-self.values, self.level)

    def __mul__(self, other):
        if isinstance(other, LevelTrackingArray):
            if "mul" not in self.context.capabilities:
                raise UnsupportedOperationError(f"{self.context.name}: no ciphertext x ciphertext")
            self.context.counts.ciphertext_multiplications += 1
            level = self._min(self.level, other.level)
            values = self.values * other.values
        else:
            if not isinstance(other, (numbers.Number, np.ndarray)):
                return NotImplemented
            self.context.counts.plaintext_multiplications += 1
            level = self.level
            values = self.values * np.asarray(other, dtype=np.float64)
        if level is not None:
            if level == 0:
                raise DepthExhaustedError("LevelTrackingArray: no level left for a multiplication")
            level -= 1
        return self._wrap(values, level)

    __rmul__ = __mul__


@pytest.fixture
def level_tracking():
    """Factory: ``level_tracking(values, level=10, scheme="ckks", capabilities=None)``."""

    def make(values, level=10, scheme="ckks", capabilities=None):
        caps = capabilities
        if caps is None:
            caps = {"ckks": {"add", "mul_plain", "mul"}, "bfv": {"add", "mul_plain", "mul"},
                    "paillier": {"add", "mul_plain"}}[scheme]
        ctx = FakeSchemeContext(name=scheme, capabilities=frozenset(caps))
        return LevelTrackingArray(values, level, ctx)

    return make


# --------------------------------------------------------------------------- real CKKS
def _ckks_class():
    """he_ml.CKKS, or skip when the scheme package is not importable (being written)."""
    try:
        from he_ml.schemes import CKKS  # noqa: F401 - resolved lazily by he_ml.schemes
        return CKKS
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("he_ml.schemes"):
            pytest.skip(f"he_ml.schemes CKKS backend not importable yet ({e.name})")
        raise


@pytest.fixture(scope="session")
def ckks_depth3():
    """CKKS with 3 levels: n = 16384, [60, 40, 40, 40, 60], scale 2^40 (240 bits > 218 of n=8192)."""
    cls = _ckks_class()
    return cls(poly_modulus_degree=16384, coeff_mod_bit_sizes=[60, 40, 40, 40, 60], scale_bits=40)


@pytest.fixture(scope="session")
def ckks_depth2_n8192():
    """The TenSEAL tutorial parameters: n = 8192, [60, 40, 40, 60], scale 2^40 (2 levels)."""
    cls = _ckks_class()
    return cls(poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60], scale_bits=40)


@pytest.fixture(scope="session")
def ckks_depth4():
    """CKKS with 4 levels: n = 16384, [60, 40, 40, 40, 40, 60], scale 2^40."""
    cls = _ckks_class()
    return cls(poly_modulus_degree=16384, coeff_mod_bit_sizes=[60, 40, 40, 40, 40, 60], scale_bits=40)


def _ckks_error_bound(model, X, ctx) -> float:
    """Worst-case CKKS error of ``model``'s encrypted scores on ``X``, propagated stage by stage.

    eta = 4 n / 2^scale_bits per operation: a fresh encryption's per-slot error has standard deviation
    n / (6 * 2^scale) and stays below 12 std = 2 n / 2^scale over many slots (measured, see
    tests/schemes/test_ckks.py); a rescale or relinearization adds about as much again (factor 2).
    Stages (first order, worst case over the data):
      linear:      e_out = max_o sum_j |W_oj| e_in + eta            (one rescale per output)
      square:      e_out = 2 max|x| e_in + e_in^2 + eta
      polynomial:  e_out = L e_in + (noise_gain + 1) eta + snap, L = max |p'| on the evaluated range
    where snap bounds the scale snapping of the polynomial evaluator: adding two ciphertexts whose
    scales differ by the ratio of rescaling primes to 2^scale_bits sets one scale to the other
    (documented in he_ml.CKKS), a relative error of at most delta = sum_l |q_l / 2^scale - 1| over the
    chain; applied to every addition of the plan on operands up to the plan's largest intermediate:
    snap = delta * additions * max_intermediate.
    """
    from he_ml.ml.model import _ActivationStage, _LinearStage
    eta = 4.0 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits
    primes = [float(q.value()) for q in ctx._seal.key_context_data().parms().coeff_modulus()[1:-1]]
    delta = sum(abs(q / 2.0 ** ctx.scale_bits - 1.0) for q in primes)
    x = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    e = eta
    for s in model._stages:
        if isinstance(s, _LinearStage):
            e = float(np.max(abs(s.matrix).sum(axis=1))) * e + eta
            x = (s.matrix @ x.T).T + s.bias
            continue
        a = s.activation
        if a.kind == "square":
            e = 2 * float(np.max(np.abs(x))) * e + e * e + eta
            x = x * x
        elif a.kind == "identity":
            pass
        else:
            lo, hi = float(np.min(x)) - e, float(np.max(x)) + e
            grid = np.linspace(lo, hi, 4001)
            L = float(np.max(np.abs(np.gradient(a.poly(grid), grid))))
            peak = [float(np.max(np.abs(x)))]
            y = a.poly.plan.run(x, observe=lambda v: peak.append(float(np.max(np.abs(v)))))
            snap = delta * a.poly.plan.additions * max(peak)
            e = L * e + (float(a.poly.noise_gain) + 1) * eta + snap
            x = y
    return e


@pytest.fixture
def ckks_error_bound():
    """The derived CKKS error bound of an EncryptedModel's scores, as a function (model, X, ctx)."""
    return _ckks_error_bound
