"""Pure integer tests of he_ml.encoding (fixed point + slot packing); no cryptography involved."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from he_ml.encoding import (
    PackedEncoding,
    SlotLayout,
    encode_multiplier,
    encode_multipliers,
    from_fixed,
    quantization_error,
    to_fixed,
)
from he_ml.errors import EncodingOverflowError, ParameterError

LAYOUT = SlotLayout(slot_bits=20, digits=9, slots=5)
CAP = (1 << 19) - 1
slot_values = st.integers(min_value=-CAP, max_value=CAP)


# ---------------------------------------------------------------- fixed point
@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(0, 40))
def test_fixed_point_round_trip_error_is_at_most_half_ulp(x, f):
    ints = to_fixed(np.array([x]), f)
    back = from_fixed(ints, f)[0]
    # rounding to the nearest multiple of 2^-f errs by at most 2^-(f+1); decoding is exact
    # here because |int| < 2^53 or the division is correctly rounded (relative 2^-53 slack).
    assert abs(back - x) <= quantization_error(f) + abs(x) * 2.0**-52


def test_fixed_point_integers_are_exact_even_beyond_int64():
    ints = to_fixed(np.array([3, -7, 2**40], dtype=np.int64), 40)
    assert ints == [3 << 40, -7 << 40, 2**80]
    assert all(isinstance(v, int) for v in ints)
    big = to_fixed(np.array([1.5e18, -2.5]), 30)
    assert big == [int(1.5e18) << 30, -(5 << 29)]
    np.testing.assert_array_equal(from_fixed(big, 30), [1.5e18, -2.5])


def test_fixed_point_float_overflow_is_reported():
    with pytest.raises(OverflowError):
        to_fixed(np.array([1e300]), 200)


@pytest.mark.parametrize("c, expected", [(2.0, (2, 0)), (0.5, (1, 1)), (-0.75, (-3, 2)), (7, (7, 0)),
                                         (0.0, (0, 0))])
def test_encode_multiplier_uses_fewest_exact_bits(c, expected):
    assert encode_multiplier(c, 24) == expected


def test_encode_multiplier_rounds_at_max_bits():
    c_int, j = encode_multiplier(0.1, 10)
    assert j == 10 and c_int == round(0.1 * 1024)
    assert abs(c_int / 2**j - 0.1) <= 2.0**-11


def test_encode_multipliers_share_one_exponent():
    ints, j = encode_multipliers(np.array([0.5, 0.25, 3.0]), 24)
    assert j == 2 and ints == [2, 1, 12]
    ints, j = encode_multipliers(np.array([1, -4], dtype=np.int64), 24)
    assert (ints, j) == ([1, -4], 0)


# ---------------------------------------------------------------- slot layout
@settings(max_examples=200, deadline=None)
@given(st.lists(slot_values, min_size=1, max_size=9))
def test_pack_unpack_round_trip_signed(values):
    m = LAYOUT.pack(values)
    assert LAYOUT.unpack(m, len(values)) == values


def test_pack_boundaries_and_overflow():
    assert LAYOUT.unpack(LAYOUT.pack([CAP, -CAP, 0, -1, 1]), 5) == [CAP, -CAP, 0, -1, 1]
    with pytest.raises(EncodingOverflowError, match="does not fit a 20-bit signed slot"):
        LAYOUT.pack([CAP + 1])
    with pytest.raises(EncodingOverflowError, match="does not fit"):
        LAYOUT.pack([-CAP - 1])
    with pytest.raises(EncodingOverflowError, match="9 digits"):
        LAYOUT.pack([0] * 10)


def test_unpack_detects_overflowed_digits():
    m = LAYOUT.pack([CAP, 0, 0])
    # one more unit in slot 0 reaches 2^19: as a balanced digit it becomes -2^19 -> rejected
    with pytest.raises(EncodingOverflowError, match="outside the"):
        LAYOUT.unpack(m + 1, 3)
    # beyond all 9 digits
    with pytest.raises(EncodingOverflowError, match="does not decode"):
        LAYOUT.unpack(1 << (20 * 9 + 1), 3)
    with pytest.raises(EncodingOverflowError, match="does not decode"):
        LAYOUT.unpack(-(1 << (20 * 9 + 1)), 3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-(1 << 17) + 1, (1 << 17) - 1), min_size=5, max_size=5),
       st.lists(st.integers(-(1 << 17) + 1, (1 << 17) - 1), min_size=5, max_size=5),
       st.integers(-3, 3))
def test_packing_is_linear(a, b, c):
    # |c*a + b| <= 4*(2^17 - 1) < 2^19 - 1: within the slot, so packing commutes with + and *c
    pa, pb = LAYOUT.pack(a), LAYOUT.pack(b)
    assert LAYOUT.unpack(c * pa + pb, 5) == [c * x + y for x, y in zip(a, b)]
    assert LAYOUT.unpack(-pa, 5) == [-x for x in a]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-(1 << 8), 1 << 8), min_size=1, max_size=5),
       st.lists(st.integers(-(1 << 8), 1 << 8), min_size=5, max_size=5))
def test_reversed_weight_product_puts_inner_product_in_digit_k_minus_1(v, w):
    # every digit of the product sums <= 5 terms of |v w| <= 2^16: fits 2^19
    w = w[:len(v)]
    prod = LAYOUT.pack(v) * LAYOUT.reversed_weights(w)
    digits = LAYOUT.unpack(prod, LAYOUT.digits)
    assert digits[LAYOUT.slots - 1] == sum(a * b for a, b in zip(v, w))


def test_centered_lift_mod_odd_modulus_recovers_negative_packings():
    n = (1 << 200) + 235  # odd; 9 digits * 20 bits = 180 bits < 199
    vals = [-5, 7, -CAP, CAP, 0]
    m = LAYOUT.pack(vals) % n
    lifted = m - n if m > n // 2 else m
    assert LAYOUT.unpack(lifted, 5) == vals


# ---------------------------------------------------------------- encoding parameters
def test_slot_width_formula_reserves_declared_headroom():
    enc = PackedEncoding(3070, precision_bits=24, max_value=8.0, max_additions=100, multiplier_bits=0,
                         max_reduction_terms=1, layout="dense")
    F = 8 * 2**24
    assert enc.fresh_bound == F
    lay = enc.slot_layout
    assert lay.slot_bits == 1 + (F * 100 * 1).bit_length()
    assert 100 * F <= lay.cap  # max_additions fresh values always fit
    assert lay.slots == lay.digits == 3070 // lay.slot_bits


def test_product_layout_leaves_room_for_the_polynomial_product():
    enc = PackedEncoding(3070)
    lay = enc.slot_layout
    assert 2 * lay.slots - 1 <= lay.digits
    F = math.ceil(1024 * 2**24)
    assert lay.slot_bits == 1 + (F * 1024 * 2**32 * (4096 + lay.slots)).bit_length()
    dense = PackedEncoding(3070, layout="dense")
    assert dense.slot_count >= 2 * enc.slot_count - 1


def test_slots_override_and_impossible_parameters():
    assert PackedEncoding(3070, slots=1).slot_count == 1
    with pytest.raises(ParameterError, match="slots=500 does not fit"):
        PackedEncoding(3070, slots=500)
    with pytest.raises(ParameterError, match="offers only 100 bits"):
        PackedEncoding(100, precision_bits=60)
    with pytest.raises(ParameterError, match="max_value must be a positive finite"):
        PackedEncoding(3070, max_value=float("inf"))
    with pytest.raises(ParameterError, match="layout must be one of"):
        PackedEncoding(3070, layout="sparse")
    with pytest.raises(ParameterError, match="max_additions must be >= 1"):
        PackedEncoding(3070, max_additions=0)


def test_encoding_dict_round_trip_and_strict_keys():
    enc = PackedEncoding(2046, precision_bits=20, max_value=3.5, layout="dense", slots=7)
    assert PackedEncoding.from_dict(enc.to_dict()) == enc
    with pytest.raises(ParameterError, match="exactly the keys"):
        PackedEncoding.from_dict({**enc.to_dict(), "extra": 1})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-8.0, 8.0, allow_nan=False), min_size=1, max_size=300),
       st.integers(8, 30))
def test_encode_chunks_round_trip_within_quantization_error(values, f):
    enc = PackedEncoding(1022, precision_bits=f, max_value=8.0, max_additions=4, multiplier_bits=0,
                         max_reduction_terms=1, layout="dense")
    x = np.array(values)
    ms = enc.encode_chunks(x)
    assert len(ms) == -(-x.size // enc.slot_count)
    np.testing.assert_allclose(enc.decode_chunks(ms, x.size, f), x, rtol=0, atol=quantization_error(f))


def test_range_check_at_the_boundary():
    enc = PackedEncoding(1022, max_value=2.0, layout="dense")
    enc.check_range(np.array([2.0, -2.0]))
    with pytest.raises(EncodingOverflowError, match=r"flat index 1 .*max_value=2.0"):
        enc.check_range(np.array([0.0, -2.0000001]))
    with pytest.raises(EncodingOverflowError, match="outside the declared range"):
        enc.check_range(np.array([3], dtype=np.int64))


def test_decode_rejects_digits_beyond_the_vector():
    enc = PackedEncoding(1022, max_value=2.0, layout="dense")
    lay = enc.slot_layout
    m = lay.pack([1, 2, 3])
    with pytest.raises(EncodingOverflowError, match="non-zero digits beyond its 2 values"):
        enc.decode_chunks([m], 2, 0)


@pytest.mark.parametrize("max_value,bits,ok", [(1e308, 24, False), (2.0 ** 1000, 24, False),
                                                (2.0 ** 1000, 23, True), (1e300, 24, True)])
def test_max_value_times_fixed_point_beyond_a_double_is_a_parameter_error(max_value, bits, ok):
    # max_value * 2**precision_bits overflowing a double raised OverflowError (math.ldexp) before
    if ok:
        PackedEncoding(usable_bits=3070, max_value=max_value, precision_bits=bits)
    else:
        with pytest.raises(ParameterError, match="finite double"):
            PackedEncoding(usable_bits=3070, max_value=max_value, precision_bits=bits)
