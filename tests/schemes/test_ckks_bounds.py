"""CKKS magnitude tracking: a public bound per vector, checked against the modulus before each op.

Representable bound (he_ml/schemes/ckks.py, CKKS._setup_bounds): a result at chain index l must
satisfy |x| * 2^scale_bits < Q_l / 2 with Q_l = q_0 ... q_l (15/16 of that is the limit).
Tolerances: a fresh encryption has per-slot error ~ n / (6 * 2^scale_bits) (std), the maximum over
the slots stays below 12 std = 2n / 2^scale_bits =: unit; every product or rescale of values of
magnitude <= M adds about M * unit, so a circuit of k operations on values <= M is within
~ k * M^depth * unit; we allow 64x that (heavy tails of the rotation noise).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import he_ml
from he_ml.errors import EncodingOverflowError
from he_ml.schemes import ckks as ckks_mod
from he_ml.schemes import ckks_linear

rng = np.random.default_rng(2024)


@pytest.fixture(scope="module")
def light():
    """n = 8192, chain [60, 40, 40, 60], scale 2^40: level limits 2^19 (l=0), 2^59 (l=1), 2^99 (l=2)."""
    return he_ml.CKKS("light", rotations="sum")


def unit(ctx) -> float:
    return 2.0 * ctx.poly_modulus_degree / 2.0 ** ctx.scale_bits


def _parse_plan(message: str) -> dict:
    m = re.search(r"he_ml\.plan\(depth=(\d+), max_value=([0-9.e+]+|2\.0 \*\* \d+)\)\.context\(\)", message)
    assert m, message
    mv = m.group(2)
    value = 2.0 ** int(mv.split("**")[1]) if "**" in mv else float(mv)
    return {"depth": int(m.group(1)), "max_value": value}


def test_cube_of_3e5_raises_before_running(light, monkeypatch):
    x = light.encrypt(np.array([3e5]))
    sq = x * x  # 9e10 at chain index 1: representable (limit ~2^59 / 2^... = 5e17)
    assert np.isclose(light.decrypt(sq)[0], 9e10, rtol=1e-6)
    calls = []
    real = ckks_mod._SEALContext._evaluate
    monkeypatch.setattr(ckks_mod._SEALContext, "_evaluate",
                        lambda self, *a, **k: calls.append(a[0]) or real(self, *a, **k))
    with pytest.raises(EncodingOverflowError, match=r"at level 0 this context represents only") as e:
        sq * x
    assert calls == []  # refused before SEAL computed anything
    assert "he_ml.plan(" in str(e.value)
    monkeypatch.undo()
    # the attack on correctness this prevents: with the check defeated, 2.7e16 decrypts to garbage
    wrong = light.decrypt(sq.with_bound(1.0) * x.with_bound(1.0))[0]
    assert abs(wrong - 2.7e16) > 1e15


def test_hint_without_a_plan_is_followed(light):
    """(3e5)^3 fits no parameter set: scale the inputs as told, use the largest plan, rescale."""
    x = 3e5
    v = light.encrypt(np.array([x]))
    with pytest.raises(EncodingOverflowError) as e:
        (v * v) * v
    msg = str(e.value)
    plan = _parse_plan(msg)
    k = int(re.search(r"shrinks by at least 2\^(\d+)", msg).group(1))
    s = -(-k // 3)  # three factors: each scaled by 2^-s shrinks the product by 2^(3s) >= 2^k
    ctx = he_ml.plan(**plan).context()
    y = ctx.encrypt(np.array([x / 2 ** s]))
    got = ctx.decrypt((y * y) * y)[0] * 2.0 ** (3 * s)
    # relative error ~ a few units at the plan's scale (values <= max_value after scaling)
    assert abs(got / x ** 3 - 1) < 64 * unit(ctx)


def test_hint_with_a_plan_is_followed(light):
    v = light.encrypt(np.array([100.0, -37.5]))  # bound 128: cube bound 2^21 > 2^19 at level 0
    with pytest.raises(EncodingOverflowError, match="larger first prime") as e:
        (v * v) * v
    ctx = he_ml.plan(**_parse_plan(str(e.value))).context()
    x = np.array([100.0, -37.5])
    y = ctx.encrypt(x)
    got = ctx.decrypt((y * y) * y)
    assert np.allclose(got, x ** 3, rtol=0, atol=64 * unit(ctx) * 1e6)


def test_input_hint_is_followed():
    ctx = he_ml.CKKS("sum")  # |x| < 2^19
    with pytest.raises(EncodingOverflowError, match="larger first prime") as e:
        ctx.encrypt(np.array([1e6, 2.0]))
    fit = he_ml.plan(**_parse_plan(str(e.value))).context()
    assert np.allclose(fit.decrypt(fit.encrypt(np.array([1e6, 2.0]))), [1e6, 2.0],
                       atol=64 * unit(fit) * 1e6)


def test_each_operation_propagates_the_bound(light):
    a = np.array([0.75, -1.5, 0.25, 1.0])
    x, y = light.encrypt(a), light.encrypt(a / 4)
    assert x.bound == 2.0 and y.bound == 0.5  # smallest powers of two >= max |values|
    w = np.array([0.5, -2.0, 1.0, 3.0])
    expect = {
        "add": ((x + y).bound, 2.5), "sub": ((x - y).bound, 2.5), "neg": ((-x).bound, 2.0),
        "add_plain": ((x + w).bound, 5.0), "mul_plain": ((x * w).bound, 6.0),
        "mul_int": ((x * 3).bound, 6.0), "mul": ((x * y).bound, 1.0), "sum": (x.sum().bound, 8.0),
        "dot": (x.dot(w).bound, 2.0 * 6.5),
    }
    for op, (got, want) in expect.items():
        assert got == pytest.approx(want), op
    full = light.encrypt(rng.uniform(-1, 1, light.slot_count))
    assert full.rotate(5).bound == full.bound
    assert light.encrypt(a, bound=3.0).bound == 3.0


def test_random_circuits_match_numpy_and_bounds_hold(light):
    tol_unit = unit(light)
    for trial in range(6):
        a, b = rng.uniform(-2, 2, 16), rng.uniform(-2, 2, 16)
        x, y = light.encrypt(a), light.encrypt(b)
        pa, pb = a.copy(), b.copy()
        ops = rng.choice(["add", "sub", "mul", "mul_plain", "add_plain", "neg"], size=4)
        depth = 0
        for op in ops:
            if op in ("mul", "mul_plain") and depth >= light.max_depth:
                op = "add"
            if op == "add":
                x, pa = x + y, pa + pb
            elif op == "sub":
                x, pa = x - y, pa - pb
            elif op == "neg":
                x, pa = -x, -pa
            elif op == "add_plain":
                c = rng.uniform(-1, 1, 16)
                x, pa = x + c, pa + c
            elif op == "mul_plain":
                c = rng.uniform(-1, 1, 16)
                x, pa, depth = x * c, pa * c, depth + 1
            else:
                x, pa, depth = x * y, pa * pb, depth + 1
            assert x.bound >= np.max(np.abs(pa))  # the tracked bound really bounds the values
        got = light.decrypt(x)
        magnitude = max(1.0, float(np.max(np.abs(pa))), 4.0) ** 2
        assert np.max(np.abs(got - pa)) <= 64 * len(ops) * magnitude * tol_unit, (trial, list(ops))


def test_bounds_travel_with_the_bytes(light):
    v = light.encrypt(np.array([3.0, -7.0])) * light.encrypt(np.array([1.0, 1.0]))
    back = light.ciphertext_from_bytes(v.to_bytes())
    assert back.bound == v.bound == 8.0
    with pytest.raises(EncodingOverflowError):
        (back * 1e6) * 1e6  # 8e12 at level 0 > 2^19: the loaded bound is enforced


def test_polynomial_evaluation_tracks_and_tightens_the_bound(light):
    from he_ml.ml import approximate

    p = approximate("sigmoid", degree=3, interval=(-4.0, 4.0))
    x = np.linspace(-3.5, 3.5, 12)
    out = p.evaluate(light.encrypt(x))
    cheb = np.polynomial.chebyshev.poly2cheb(np.asarray(p.coefficients_t))
    assert out.bound <= np.sum(np.abs(cheb)) * (1 + 1e-9)
    assert out.bound >= np.max(np.abs(p(x)))
    assert np.max(np.abs(light.decrypt(out) - p(x))) <= 64 * 8 * unit(light) * (p.noise_gain + 4)
    # inputs whose public bound leaves the interval keep the (larger) interval-arithmetic bound
    wide = p.evaluate(light.encrypt(np.array([8.0, -8.0])))
    assert wide.bound > np.sum(np.abs(cheb))


def test_polynomial_with_huge_coefficients_raises_before_running(light):
    from he_ml.ml.polynomial import PolynomialApproximation

    p = PolynomialApproximation.from_coefficients([0.0, 0.0, 1e4 + 0.5], (-1.0, 1.0), lambda t: (1e4 + 0.5) * t * t)
    v = light.encrypt(np.array([0.5, -0.25])) * 1000  # bound 500, outside the interval
    # a non-integer factor costs a level: 10000.5 * x^2 could reach 2.5e9 at level 0, where only |x| < 2^19 * 15/16 is representable
    with pytest.raises(EncodingOverflowError, match="tracked bound"):
        p.evaluate(v)


def test_bound_property_is_in_value_units_on_every_scheme(light):
    pa = he_ml.Paillier(1024, allow_insecure=True)  # small key: speed; the encoding is the same
    v = pa.encrypt(np.array([1.5, -2.0]))
    assert v.bound == pa.max_value and (v * 0.5).bound == pa.max_value / 2 and (v + v).bound == 2 * pa.max_value
    bfv = he_ml.BFV("sum")
    assert bfv.encrypt(np.array([5, -3])).bound == 8
    with pytest.raises(he_ml.errors.UnsupportedOperationError):
        v.with_bound(1.0)
    assert light.encrypt(np.array([0.3])).with_bound(0.5).bound == 0.5
    assert light.encrypt(np.array([0.3])).with_bound(7.0).bound == 0.5  # never raised above the tracked one


def test_linear_map_tracks_a_bound_per_output_and_refuses_before_computing(light, monkeypatch):
    """linear_map (EncryptedModel's fused layers): |y_o| <= |b_o| + sum_j |W[o, j]| bound(x_j)."""
    from scipy import sparse
    cols = [np.array([0.75, -1.5, 0.25]), np.array([3.0, -0.5, 1.0]), np.array([0.1, 0.2, -0.3])]
    xs = [light.encrypt(c) for c in cols]
    assert [x.bound for x in xs] == [2.0, 4.0, 0.5]
    W = np.array([[0.5, -2.0, 0.0], [0.0, 0.0, 4.0], [1.5, 0.25, -1.0]])
    b = np.array([1.0, -0.5, 0.0])
    m = sparse.csr_matrix(W)
    outs = ckks_linear.linear_map(light, xs, m.indptr, m.indices, m.data, b)
    want = np.abs(b) + np.abs(W) @ np.array([2.0, 4.0, 0.5])
    assert [o.bound for o in outs] == pytest.approx(list(want))
    assert all(o.level == xs[0].level - 1 for o in outs)
    plain = W @ np.stack(cols) + b[:, None]
    # one fresh error per input (x |w|), the rounding of the weights and one rescale: 4 units each
    for o, p, wrow in zip(outs, plain, W):
        assert np.max(np.abs(light.decrypt(o) - p)) <= 4 * unit(light) * (np.sum(np.abs(wrow)) + 1)
        assert np.all(np.abs(p) <= o.bound)
    # the bounds travel with the bytes (the n_jobs workers return outputs as bytes)
    assert light.ciphertext_from_bytes(outs[2].to_bytes()).bound == pytest.approx(want[2])
    # at level 0 the limit is 15/16 * 2^19 = 491520: a weight of 2^18 on output 1 (bound 2.5) needs
    # 655360 -> refused before SEAL computes anything (the evaluator is never touched)
    deep = [x * 1 for x in outs]  # integer scalar: same level; one more linear layer ends at level 0
    assert deep[1].level == 1 and deep[1].bound == pytest.approx(2.5)

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"SEAL evaluator used ({name}) before the bound check")

    big = sparse.csr_matrix(np.array([[0.0, 2.0 ** 18, 0.0]]))
    ok = sparse.csr_matrix(np.array([[0.0, 2.0 ** 17, 0.0]]))  # 327680 < 491520 fits
    assert ckks_linear.linear_map(light, deep, ok.indptr, ok.indices, ok.data, np.zeros(1))[0].bound \
        == pytest.approx(2.5 * 2.0 ** 17)
    monkeypatch.setattr(light, "_evaluator", Untouchable())
    with pytest.raises(EncodingOverflowError, match=r"linear layer \(output 0 of 1\).*at level 0"):
        ckks_linear.linear_map(light, deep, big.indptr, big.indices, big.data, np.zeros(1))
