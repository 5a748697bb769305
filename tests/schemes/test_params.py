"""Security table, presets and the planner (plan -> context -> measured precision)."""
from __future__ import annotations

import numpy as np
import pytest

import he_ml
from he_ml.errors import InsecureParametersError, ParameterError
from he_ml.schemes.params import (
    CKKS_PRESETS,
    HE_STANDARD_MAX_BITS,
    check_security,
    max_coeff_bits,
    plan,
    security_bits,
)


def test_table_matches_seal():
    import tenseal.sealapi as sa  # test-only cross-check against the library that enforces it
    for n, row in HE_STANDARD_MAX_BITS.items():
        assert sa.CoeffModulus.MaxBitCount(n, sa.SEC_LEVEL_TYPE.TC128) == row[128]
        assert sa.CoeffModulus.MaxBitCount(n, sa.SEC_LEVEL_TYPE.TC192) == row[192]
        assert sa.CoeffModulus.MaxBitCount(n, sa.SEC_LEVEL_TYPE.TC256) == row[256]


def test_security_bits():
    assert security_bits(8192, 218) == 128
    assert security_bits(8192, 150) == 192
    assert security_bits(8192, 100) == 256
    assert security_bits(8192, 219) < 128
    assert security_bits(4096, 218) == 64
    assert max_coeff_bits(32768) == 881
    with pytest.raises(InsecureParametersError, match="at most 218 bits"):
        check_security("ckks", 8192, [60, 60, 60, 60], allow_insecure=False)
    assert check_security("ckks", 8192, [60, 60, 60, 60], allow_insecure=True) < 128
    with pytest.raises(ParameterError, match="poly_modulus_degree"):
        security_bits(1000, 20)


def test_plan_ckks_fits_and_explains():
    p = plan(depth=3, precision_bits=20)
    assert p.scheme == "ckks" and p.depth == 3
    assert sum(p.coeff_mod_bit_sizes) <= HE_STANDARD_MAX_BITS[p.poly_modulus_degree][128]
    assert len(p.coeff_mod_bit_sizes) == 3 + 2
    assert p.expected_precision_bits >= 20
    for word in ("ring size", "modulus chain", "scale", "precision", "kB"):
        assert word in p.explanation
    assert str(p) == p.explanation
    with pytest.raises(AttributeError):
        p.depth = 4  # frozen


def test_plan_refuses_what_cannot_fit():
    with pytest.raises(ParameterError, match=r"no CKKS parameters fit depth 30.*60-bit prime limit"):
        plan(depth=30, precision_bits=40)
    with pytest.raises(ParameterError, match=r"no CKKS parameters fit depth 30.*> 881 allowed"):
        plan(depth=30, precision_bits=20)
    with pytest.raises(ParameterError, match="precision_bits"):
        plan(depth=1, precision_bits=0)
    with pytest.raises(ParameterError, match="scheme must be"):
        plan(scheme="paillier")
    with pytest.raises(ParameterError, match="60"):
        plan(scheme="bfv", max_value=2.0 ** 70)


def test_plan_context_measured_precision():
    """The planned context meets the stated precision after the planned depth (measured)."""
    p = plan(depth=2, precision_bits=20, values=100, max_value=1)
    ctx = p.context()
    assert ctx.max_depth == 2 and ctx.scale_bits == p.scale_bits
    r = np.random.default_rng(3)
    a = r.uniform(-1, 1, 100)
    x = ctx.encrypt(a)
    out = ctx.decrypt((x * x) * x)
    err = np.max(np.abs(out - a ** 3))
    assert err <= 2.0 ** -p.expected_precision_bits
    assert ctx.decrypt(x).size == 100


def test_plan_bfv():
    p = plan(depth=2, scheme="bfv", max_value=1000)
    assert p.plain_modulus_bits >= 11 and p.depth == 2
    ctx = p.context()
    assert ctx.max_depth >= 2
    x = ctx.encrypt([10, -10])
    np.testing.assert_array_equal(ctx.decrypt(x * x * 5), [500, 500])
    assert "plain modulus" in p.explanation


def test_presets_documented():
    for name, preset in CKKS_PRESETS.items():
        assert preset.name == name and preset.purpose
    assert he_ml.plan is plan
