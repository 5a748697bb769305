"""Latency layout (one sample per ciphertext, BSGS diagonal method) against numpy and torch.

Tolerances are derived from the parameters (see `_error_bound`): a fresh encryption or a
rescale leaves Gaussian noise of std ``n / 6 / 2^scale`` per slot (bounded with K = 12 std as in
tests/schemes/test_ckks.py), one rotation adds key-switching noise of std ``keyswitch`` (the
model of tests/schemes/test_ckks.py, heavy-tailed: bounded by 400 std), and each layer
propagates its input error through ``sum_f |W_of|`` (affine) or ``2 |v| e + e^2`` (square).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

import he_ml
from he_ml.errors import (
    DepthExhaustedError,
    ParameterError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from he_ml.ml.latency import LatencyModel, dense_matrix, encrypt_sample, galois_element

try:  # the model IR (he_ml.ml.ir) lands with the converters; the records have the same fields
    from he_ml.ml.ir import Activation, AvgPool2d, Conv2d, Dense, Flatten
except ImportError:  # pragma: no cover - only before the IR branch is merged
    @dataclass(frozen=True, eq=False)
    class Dense:  # type: ignore[no-redef]
        weight: np.ndarray
        bias: np.ndarray

    @dataclass(frozen=True, eq=False)
    class Conv2d:  # type: ignore[no-redef]
        weight: np.ndarray
        bias: np.ndarray
        stride: tuple
        padding: tuple
        input_shape: tuple

    @dataclass(frozen=True, eq=False)
    class AvgPool2d:  # type: ignore[no-redef]
        kernel: tuple
        stride: tuple
        padding: tuple
        input_shape: tuple
        count_include_pad: bool = True

    @dataclass(frozen=True, eq=False)
    class Flatten:  # type: ignore[no-redef]
        input_shape: tuple

    @dataclass(frozen=True, eq=False)
    class Activation:  # type: ignore[no-redef]
        kind: str
        name: str
        poly: object = None
        interval: tuple = None
        coefficients: np.ndarray = None

        @classmethod
        def square(cls):
            return cls("square", "square")

        @property
        def normalization(self):  # an "approximated" poly reads t = (x - mid) / half
            lo, hi = self.interval
            return 0.5 * (lo + hi), 0.5 * (hi - lo)

K_FRESH = 12      # std multiples for Gaussian fresh/rescale noise (test_ckks.fresh_error_bound)
K_ROTATION = 400  # std multiples for one rotation's heavy-tailed key-switching noise (test_ckks)


def _units(ctx) -> tuple[float, float]:
    """(fresh std, one-rotation key-switching std) per slot, in value units."""
    n, bits = ctx.poly_modulus_degree, ctx.coeff_mod_bit_sizes
    fresh = n / 6 / 2.0 ** ctx.scale_bits
    data = bits[:-1]
    keyswitch = math.sqrt(n / 2) * math.sqrt(len(data) * n) * 3.2 / math.sqrt(12) \
        * 2.0 ** (max(data) - bits[-1]) / 2.0 ** ctx.scale_bits
    return K_FRESH * fresh, K_ROTATION * keyswitch


def _error_bound(model: LatencyModel, ctx, X: np.ndarray) -> float:
    """Worst-case |encrypted - plaintext twin| over the outputs for the samples X.

    Affine stage: every weight multiplies an input that went through at most two rotations
    (baby, giant), so the propagated part is ``sum_f |W_of| (e_in + 2 r)``; every product's
    rescale adds ``f``; every rotation of a partial sum adds ``r`` and the rotate-and-add steps
    fold ``L / P_out`` slots into one output.  Square: ``2 |v| e + e^2 + f`` (relinearization
    noise is divided by the special prime, below one rescale).
    """
    f, r = _units(ctx)
    e = f  # fresh encryption
    x = X.reshape(X.shape[0], -1)
    for s in model._stages:
        if hasattr(s, "diagonals"):
            fold = s.period // s.out.period if s.mode == "contiguous" else 1
            prop = float(np.max(np.abs(s.weight).sum(axis=1))) * (e + 2 * r)
            local = fold * (len(s.diagonals) * f + (len(s.giant_steps) + len(s.sum_steps)) * r)
            e = prop + local
            x = x @ s.weight.T + s.bias
        elif s.kind == "scalar affine":  # a * x + k: the error scales by |a|, plus one rescale
            e = abs(s.a) * e + f
            x = s.plain(x)
        elif s.kind == "square":
            vmax = float(np.max(np.abs(x)))
            e = 2 * vmax * e + e * e + f
            x = x * x
        else:
            # polynomial: first-order propagation through max |p'| on the inputs' range, plus the
            # plan's own rescale noise (noise_gain units) and the relabelling of scales when terms
            # of different levels are added (relative |q / 2^scale - 1| per addition)
            poly = s.poly
            lo, hi = min(poly.interval[0], float(x.min()) - e), max(poly.interval[1], float(x.max()) + e)
            t = np.linspace(lo, hi, 4001)
            slope = float(np.max(np.abs(np.polynomial.polynomial.polyval(
                t, np.polynomial.polynomial.polyder(poly.coefficients)))))
            primes = ctx._primes[1:-1]  # the modulus chain (test-only peek, as in test_ckks)
            snap = max(abs(q / 2.0 ** ctx.scale_bits - 1.0) for q in primes)
            e = slope * e + (poly.noise_gain + 4) * f + (poly.degree + 1) * snap * poly.max_intermediate
            x = s.plain(x)
    return e


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20261205)


# ----------------------------------------------------------------------------- lowering (no HE)
@pytest.mark.parametrize("cin,cout,k,stride,pad,hw", [
    (1, 5, 5, 2, 0, (28, 28)), (2, 3, 3, 1, 1, (7, 9)), (3, 2, (3, 2), (2, 1), (1, 0), (8, 6)),
])
def test_conv_dense_matrix_equals_torch_conv2d(cin, cout, k, stride, pad, hw, rng):
    torch = pytest.importorskip("torch")
    kh, kw = (k, k) if isinstance(k, int) else k
    w = rng.normal(size=(cout, cin, kh, kw))
    b = rng.normal(size=cout)
    layer = Conv2d(w, b, stride, pad, (cin,) + hw)
    W, bias = dense_matrix(layer)
    x = rng.normal(size=(4, cin) + hw)
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                     stride=stride, padding=pad).numpy().reshape(4, -1)
    np.testing.assert_allclose(x.reshape(4, -1) @ W.T + bias, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("include_pad", [True, False])
def test_avgpool_dense_matrix_equals_torch(include_pad, rng):
    torch = pytest.importorskip("torch")
    layer = AvgPool2d((3, 3), (2, 2), (1, 1), (2, 7, 7), include_pad)
    W, bias = dense_matrix(layer)
    x = rng.normal(size=(3, 2, 7, 7))
    ref = torch.nn.functional.avg_pool2d(torch.tensor(x), 3, 2, 1, count_include_pad=include_pad)
    np.testing.assert_allclose(x.reshape(3, -1) @ W.T + bias, ref.numpy().reshape(3, -1), atol=1e-12)


def test_dense_matrix_agrees_with_ir_to_dense(rng):
    ir = pytest.importorskip("he_ml.ml.ir")
    for layer in (Conv2d(rng.normal(size=(2, 3, 3, 3)), rng.normal(size=2), 2, 1, (3, 9, 8)),
                  AvgPool2d(2, 2, 0, (3, 8, 8))):
        W1, b1 = dense_matrix(layer)
        W2, b2 = ir.to_dense(layer)
        assert np.array_equal(W1, W2) and np.array_equal(b1, b2)


def test_plan_is_sparse_for_cryptonets_conv(rng):
    """The scattered conv layout needs one diagonal per (tap, channel): 25 * 5, not ~1000."""
    conv = Conv2d(rng.normal(size=(5, 1, 5, 5)), rng.normal(size=5), 2, 0, (1, 28, 28))
    m = LatencyModel([conv, Activation.square(), Flatten((5, 12, 12)),
                      Dense(rng.normal(size=(100, 720)), np.zeros(100)), Activation.square(),
                      Dense(rng.normal(size=(10, 100)), np.zeros(10))], (1, 28, 28))
    st = [s for s in m.stages if s["kind"] == "affine"]
    assert [s["mode"] for s in st] == ["scattered", "contiguous", "contiguous"]
    assert [s["diagonals"] for s in st] == [125, 128, 16]
    assert m.depth == 5 and m.min_slots == 4096
    twin = m.plain(rng.uniform(0, 1, (3, 1, 28, 28)))
    assert twin.shape == (3, 10)


# ----------------------------------------------------------------------------- encrypted
@pytest.mark.parametrize("n_out,n_in", [(7, 30), (40, 5), (16, 16), (1, 13)])
def test_dense_bsgs_equals_numpy(n_out, n_in, rng):
    W = rng.normal(size=(n_out, n_in))
    b = rng.normal(size=n_out)
    m = LatencyModel([Dense(W, b)], (n_in,))
    ctx = m.context(input_abs_max=1.0)
    x = rng.uniform(-1, 1, n_in)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx.public_context(), x)))
    tol = _error_bound(m, ctx, x[None])
    assert out.shape == (n_out,)
    assert tol < 1e-2  # meaningful: a misplaced weight or rotation errs by O(0.1) on these O(1) values
    assert np.max(np.abs(out - (W @ x + b))) <= tol


def test_two_layer_square_network_equals_numpy(rng):
    W1, b1 = rng.normal(size=(20, 50)) * 0.2, rng.normal(size=20) * 0.1
    W2, b2 = rng.normal(size=(3, 20)) * 0.3, rng.normal(size=3) * 0.1
    m = LatencyModel([Dense(W1, b1), Activation.square(), Dense(W2, b2), Activation.square()], (50,))
    X = rng.uniform(-1, 1, (8, 50))
    ctx = m.context(X)
    assert m.depth == 4 and ctx.max_depth == 4
    for x in X[:2]:
        out = ctx.decrypt(m.decision_function(m.encrypt(ctx, x)))
        expect = (W2 @ (W1 @ x + b1) ** 2 + b2) ** 2
        assert np.max(np.abs(out - expect)) <= _error_bound(m, ctx, X)


def test_cnn_equals_torch_module(rng):
    """Conv (scattered layout) -> square -> flatten -> linear, against the torch module itself."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, stride=2, padding=1), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 4)).double()
    conv, lin = net[0], net[2]
    layers = [Conv2d(conv.weight.detach().numpy(), conv.bias.detach().numpy(), 2, 1, (1, 8, 8)),
              Activation.square(), Flatten((2, 4, 4)),
              Dense(lin.weight.detach().numpy(), lin.bias.detach().numpy())]
    m = LatencyModel(layers, (1, 8, 8))
    assert m.stages[0]["mode"] == "scattered"
    X = rng.uniform(0, 1, (6, 1, 8, 8))
    with torch.no_grad():
        ref = net[2](net[1](net[0](torch.tensor(X)) ** 2)).numpy()
    np.testing.assert_allclose(m.plain(X), ref, atol=1e-12)
    ctx = m.context(X)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx.public_context(), X[0])))
    assert np.max(np.abs(out - ref[0])) <= _error_bound(m, ctx, X)


def test_polynomial_activation_uses_the_evaluator(rng):
    """An IR "approximated" activation: the poly reads t = (x - mid) / half, folded into W1."""
    p = he_ml.ml.approximate(lambda t: np.tanh(3.0 * t - 1.0), degree=3, interval=(-1, 1))
    W1, W2 = rng.normal(size=(6, 10)) * 0.5, rng.normal(size=(2, 6))
    m = LatencyModel([Dense(W1, np.zeros(6)), Activation("approximated", "tanh", p, interval=(-2.0, 4.0)),
                      Dense(W2, np.zeros(2))], (10,))
    assert m.depth == 2 + p.depth
    X = rng.uniform(-1, 1, (5, 10))
    ctx = m.context(X)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx, X[0])))
    expect = W2 @ p((W1 @ X[0] - 1.0) / 3.0)  # mid 1, half 3
    np.testing.assert_allclose(m.plain(X[:1])[0], expect, atol=1e-12)
    tol = _error_bound(m, ctx, X)
    assert tol < 5e-2  # outputs are O(1); a wrong coefficient or level errs by O(0.1)
    assert np.max(np.abs(out - expect)) <= tol


def _poly_record(c, interval=(-4.0, 4.0)):
    from he_ml.ml.polynomial import PolynomialApproximation
    f = lambda x: np.polynomial.polynomial.polyval(x, c)  # noqa: E731
    poly = PolynomialApproximation.from_coefficients(c, interval, f)
    return Activation("polynomial", "polynomial", poly, interval=interval, coefficients=np.asarray(c))


def test_quadratic_activation_costs_one_level_like_a_square(rng):
    """c2 x^2 + c1 x + c0 = c2 (x + s)^2 + k: the shift and c2, k fold into the affine layers."""
    c = [0.3, 0.5, 0.25]  # make_he_friendly's "quadratic" activation (trained coefficients)
    W1, b1 = rng.normal(size=(12, 20)) * 0.3, rng.normal(size=12) * 0.1
    W2, b2 = rng.normal(size=(3, 12)), rng.normal(size=3)
    m = LatencyModel([Dense(W1, b1), _poly_record(c), Dense(W2, b2), _poly_record([0.0, 2.0])], (20,))
    assert m.depth == 3  # dense, square, dense; the degree-1 activation folds into the last layer
    X = rng.uniform(-1, 1, (6, 20))
    h = X @ W1.T + b1
    expect = 2.0 * ((0.3 + 0.5 * h + 0.25 * h ** 2) @ W2.T + b2)
    np.testing.assert_allclose(m.plain(X), expect, atol=1e-12)
    ctx = m.context(X)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx, X[0])))
    assert np.max(np.abs(out - expect[0])) <= _error_bound(m, ctx, X)


def test_activation_only_model_uses_scalar_stages(rng):
    """A quadratic with no affine layer around it: the shift is free, c2 costs a level."""
    m = LatencyModel([_poly_record([1.0, 1.0, 0.5])], (5,))
    assert m.depth == 2 and m.rotation_steps == ()
    x = rng.uniform(-1, 1, 5)
    ctx = m.context(x[None])
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx, x)))
    assert np.max(np.abs(out - (1.0 + x + 0.5 * x ** 2))) <= _error_bound(m, ctx, x[None])


# ----------------------------------------------------------------------------- rotation keys
def test_rotation_keys_are_exactly_the_needed_steps(rng):
    W = rng.normal(size=(5, 40))
    m = LatencyModel([Dense(W, np.zeros(5))], (40,))
    ctx = m.context(input_abs_max=1.0)
    assert set(ctx.rotation_steps_available) == set(m.galois_elements(ctx.poly_modulus_degree))
    assert len(ctx.rotation_steps_available) == len(m.rotation_steps)
    before = ctx.rotation_steps_available
    pub = he_ml.load_context(ctx.public_context().to_bytes())  # what a server holds
    x = rng.uniform(-1, 1, 40)
    out = ctx.decrypt(ctx.ciphertext_from_bytes(m.decision_function(m.encrypt(pub, x)).to_bytes()))
    assert np.max(np.abs(out - W @ x)) <= _error_bound(m, ctx, x[None])
    assert ctx.rotation_steps_available == before  # nothing generated on the fly


def test_pow2_rotation_keys_compose_every_step(rng):
    W = rng.normal(size=(6, 50))
    m = LatencyModel([Dense(W, np.zeros(6))], (50,))
    ctx = m.context(input_abs_max=1.0, rotation_keys="pow2")
    n = ctx.poly_modulus_degree
    pow2 = {galois_element(sg * (1 << e), n) for e in range(int(math.log2(n // 2))) for sg in (1, -1)}
    assert set(ctx.rotation_steps_available) == pow2
    assert not m.galois_elements(n) <= pow2  # some steps really are composed
    x = rng.uniform(-1, 1, 50)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx.public_context(), x)))
    # a composed rotation is up to log2(slots) key switches: charge each rotation that many
    f, r = _units(ctx)
    hops = int(math.log2(n // 2))
    s = m._stages[0]
    tol = float(np.max(np.abs(W).sum(axis=1))) * (f + 2 * hops * r) + (s.period // s.out.period) * (
        len(s.diagonals) * f + (len(s.giant_steps) + len(s.sum_steps)) * hops * r)
    assert np.max(np.abs(out - W @ x)) <= tol
    with pytest.raises(ParameterError, match="rotation_keys"):
        m.context(input_abs_max=1.0, rotation_keys="some")


def test_galois_element_matches_seal():
    for step in (1, 5, 100, 2047):
        ctx = he_ml.CKKS(None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[39, 30, 39],
                         scale_bits=30, rotations=[step], relin_keys=False)
        assert ctx.rotation_steps_available == (galois_element(step, 4096),)


def test_missing_rotation_keys_raise_and_the_advice_works(rng):
    W = rng.normal(size=(3, 12))
    m = LatencyModel([Dense(W, np.zeros(3))], (12,))
    p = m.parameters(input_abs_max=1.0)
    ctx = he_ml.CKKS(None, poly_modulus_degree=p["poly_modulus_degree"],
                     coeff_mod_bit_sizes=p["coeff_mod_bit_sizes"], scale_bits=p["scale_bits"])
    x = rng.uniform(-1, 1, 12)
    with pytest.raises(UnsupportedOperationError, match="enable_rotations"):
        m.decision_function(m.encrypt(ctx, x))
    ctx.enable_rotations(m.rotation_steps)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx, x)))
    assert np.max(np.abs(out - W @ x)) <= _error_bound(m, ctx, x[None])


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors(rng):
    m = LatencyModel([Dense(rng.normal(size=(2, 6)), np.zeros(2)), Activation.square()], (6,))
    ctx = m.context(input_abs_max=1.0)
    with pytest.raises(ShapeMismatchError, match=r"shape \(6,\)"):
        m.encrypt(ctx, np.zeros(7))
    with pytest.raises(ShapeMismatchError, match="one at a time"):
        m.encrypt(ctx, np.zeros((3, 6)))
    with pytest.raises(ShapeMismatchError, match=r"\(n, 6\)"):
        m.plain(np.zeros((2, 5)))
    with pytest.raises(ParameterError, match="EncryptedVector"):
        m.decision_function(np.zeros(6))
    with pytest.raises(ShapeMismatchError, match="one full ciphertext"):
        m.decision_function(ctx.encrypt(np.zeros(6)))
    with pytest.raises(ParameterError, match="input_abs_max"):
        m.context()
    with pytest.raises(ShapeMismatchError, match="expects 6 inputs"):
        LatencyModel([Dense(np.ones((2, 6)), np.zeros(2))], (5,))
    with pytest.raises(UnsupportedOperationError, match="supported: Dense"):
        LatencyModel([object()], (5,))
    with pytest.raises(ShapeMismatchError, match="does not fit one ciphertext"):
        LatencyModel([Dense(np.ones((1, 20000)), np.zeros(1))], (20000,))


def test_huge_layers_are_refused_before_allocating(rng):
    conv = Conv2d(np.ones((16, 3, 3, 3)), np.zeros(16), 1, 0, (3, 128, 128))
    with pytest.raises(ShapeMismatchError, match="throughput layout"):
        dense_matrix(conv)  # 254016 x 49152 entries: refused from the shapes alone
    with pytest.raises(ShapeMismatchError, match="throughput layout"):
        LatencyModel([Dense(np.ones((4200, 4000)), np.zeros(4200))], (4000,))


def test_activation_after_activation_normalizes_in_place(rng):
    """No affine layer before the polynomial: (x - mid) / half costs one level there."""
    p = he_ml.ml.approximate(lambda t: np.tanh(2.0 * t), degree=3, interval=(-1, 1))
    W = rng.normal(size=(4, 8)) * 0.3
    act = Activation("approximated", "tanh", p, interval=(-3.0, 5.0))
    m = LatencyModel([Dense(W, np.zeros(4)), Activation.square(), act], (8,))
    assert m.depth == 1 + 1 + 1 + p.depth
    X = rng.uniform(-1, 1, (4, 8))
    expect = p(((X[0] @ W.T) ** 2 - 1.0) / 4.0)
    np.testing.assert_allclose(m.plain(X[:1])[0], expect, atol=1e-12)
    ctx = m.context(X)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx, X[0])))
    # error after the square: bound of the two first stages; the scalar affine map divides it by
    # half = 4 and adds one rescale; then the polynomial's slope (<= sum k |c_k| on [-1, 1]) and noise
    f, r = _units(ctx)
    two = LatencyModel([Dense(W, np.zeros(4)), Activation.square()], (8,))
    e = _error_bound(two, ctx, X) / 4.0 + f
    slope = float(np.sum(np.abs(p.coefficients) * np.arange(len(p.coefficients))))
    primes = ctx._primes[1:-1]
    snap = max(abs(q / 2.0 ** ctx.scale_bits - 1.0) for q in primes)
    tol = slope * e + (p.noise_gain + 4) * f + (p.degree + 1) * snap * p.max_intermediate
    assert np.max(np.abs(out - expect)) <= tol


def test_encrypt_sample_layout_is_the_replicated_padded_sample(rng):
    ctx = he_ml.CKKS(None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[39, 30, 39], scale_bits=30)
    x = rng.uniform(-1, 1, (2, 3, 2))  # 12 values -> period 16, 128 copies
    got = ctx.decrypt(encrypt_sample(ctx, x))
    expect = np.tile(np.r_[x.ravel(), np.zeros(4)], ctx.slot_count // 16)
    assert np.max(np.abs(got - expect)) <= _units(ctx)[0]
    with pytest.raises(ShapeMismatchError, match="needs 4096 slots"):
        encrypt_sample(ctx, np.zeros(2049))
    with pytest.raises(UnsupportedOperationError, match="CKKS"):
        encrypt_sample(he_ml.BFV("sum"), x)


def test_too_shallow_or_too_small_context_is_refused(rng):
    W = rng.normal(size=(2, 6))
    m = LatencyModel([Dense(W, np.zeros(2)), Activation.square(), Dense(np.ones((1, 2)), np.zeros(1))], (6,))
    shallow = he_ml.CKKS(None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[39, 30, 39], scale_bits=30,
                         rotations=list(m.rotation_steps))
    with pytest.raises(DepthExhaustedError, match="model.context"):
        m.decision_function(m.encrypt(shallow, np.zeros(6)))
    big = LatencyModel([Dense(np.ones((1, 3000)), np.zeros(1))], (3000,))
    with pytest.raises(ShapeMismatchError, match="needs 4096 slots"):
        big.encrypt(shallow, np.zeros(3000))
    ctx = m.context(input_abs_max=1.0)  # the advice: a planned context runs it
    x = rng.uniform(-1, 1, 6)
    out = ctx.decrypt(m.decision_function(m.encrypt(ctx, x)))
    assert np.max(np.abs(out - m.plain(x[None])[0])) <= _error_bound(m, ctx, x[None])


# ----------------------------------------------------------------------------- magnitude bounds
def _all_slots(ctx, v):
    """Decrypt every slot of a latency result (replicas and slots outside the layout too)."""
    from he_ml.schemes.base import EncryptedVector
    return ctx.decrypt(EncryptedVector(ctx, v.chunks, (ctx.slot_count,), dict(v.meta)))


def test_stated_bounds_hold_on_every_slot_and_the_worst_case_input_runs(rng):
    """The adversarial input x = sign(W[o]) reaches the row-sum bound; the plan must admit it,
    and the bound the result carries must cover every slot while staying near the true maximum
    (interval arithmetic over the BSGS sums would be several times larger)."""
    W, b = rng.normal(size=(7, 30)), rng.normal(size=7)
    m = LatencyModel([Dense(W, b)], (30,))
    ctx = m.context(input_abs_max=1.0)
    true_max = float(np.max(np.abs(W).sum(axis=1) + np.abs(b)))
    o = int(np.argmax(np.abs(W).sum(axis=1) + np.abs(b)))
    x = np.sign(W[o]) * np.sign(b[o])           # |y_o| = sum_f |W_of| + |b_o|, |x| = 1
    out = m.decision_function(m.encrypt(ctx, x))
    slots = _all_slots(ctx, out)
    assert abs(abs(slots[o]) - true_max) <= _error_bound(m, ctx, x[None])
    assert np.max(np.abs(slots)) <= out.bound
    s = m._stages[0]
    interval = sum(float(np.max(np.abs(d))) for d in s.diagonals.values()) * 2 ** len(s.sum_steps)
    assert true_max <= out.bound <= 1.05 * true_max < interval


def test_stated_bounds_hold_through_a_conv_network(rng):
    """Scattered conv layout, square, dense: every slot of the result within its public bound."""
    conv = Conv2d(rng.normal(size=(2, 1, 3, 3)) * 0.5, rng.normal(size=2) * 0.1, 2, 1, (1, 8, 8))
    m = LatencyModel([conv, Activation.square(), Flatten((2, 4, 4)),
                      Dense(rng.normal(size=(4, 32)) * 0.2, rng.normal(size=4) * 0.1)], (1, 8, 8))
    X = rng.uniform(0, 1, (4, 1, 8, 8))
    ctx = m.context(X)
    out = m.decision_function(m.encrypt(ctx, X[1]))
    assert np.max(np.abs(_all_slots(ctx, out))) <= out.bound
    assert np.max(np.abs(ctx.decrypt(out) - m.plain(X[1:2])[0])) <= _error_bound(m, ctx, X)


def test_inputs_above_the_planned_bound_are_refused_and_the_advice_works(rng):
    from he_ml.errors import EncodingOverflowError
    W = rng.normal(size=(7, 30))
    m = LatencyModel([Dense(W, np.zeros(7)), Activation.square()], (30,))
    ctx = m.context(input_abs_max=1.0)
    x = np.sign(W[0]) * 4.0  # declared bound 4: the square's bound grows 16-fold
    with pytest.raises(EncodingOverflowError, match=r"input_abs_max=4"):
        m.decision_function(m.encrypt(ctx, x))
    ctx4 = m.context(input_abs_max=4.0)
    out = ctx4.decrypt(m.decision_function(m.encrypt(ctx4, x)))
    assert np.max(np.abs(out - (W @ x) ** 2)) <= _error_bound(m, ctx4, x[None])


# ------------------------------------------------------- outputs whose padding holds copies
def _latency_output(rng, ctx=None):
    W, b = rng.normal(size=(5, 40)) * 0.05, rng.normal(size=5) * 0.1
    m = LatencyModel([Dense(W, b)], (40,))
    if ctx is None:  # a context with levels to spare (the planned one has none)
        ctx = he_ml.CKKS("inference", rotations="sum")
        ctx.enable_rotations(m.rotation_steps)
    x = rng.uniform(-1, 1, 40)
    return m, ctx, x, m.decision_function(m.encrypt(ctx.public_context(), x)), W @ x + b


def test_reductions_of_a_latency_output_ignore_the_copies_in_its_padding(rng):
    """The latency layout leaves copies of the outputs in the other slots; sum/mean must not count them.

    Tolerance: each output is within the model's error bound e; the reduction adds the mask
    product's rounding (one fresh unit f per slot) and log2(slots) rotate-and-add steps of one
    key-switching unit r each, for every one of the 5 outputs: 5 (e + f) + log2(slots) r.
    """
    m, ctx, x, out, ref = _latency_output(rng)
    assert out.padding_dirty
    f, r = _units(ctx)
    tol = 5 * (_error_bound(m, ctx, x[None]) + f) + math.log2(ctx.slot_count) * r
    assert tol < 1e-2  # meaningful: counting the copies errs by O(1) on these values
    # the hazard is real: a plain slot-sum of these ciphertexts counts the copies
    raw = ctx.decrypt(ctx._op_sum(out))[0]
    assert abs(raw - ref.sum()) > 100 * tol
    assert abs(ctx.decrypt(out.sum())[0] - ref.sum()) <= tol
    assert abs(ctx.decrypt(out.mean())[0] - ref.mean()) <= tol / 5 + f
    # carried through arithmetic, indexing and reshapes (conservatively: masking twice is harmless)
    derived = (2.0 * out + 1.0)[0:5].reshape(5).with_bound(10.0)
    assert derived.padding_dirty
    assert abs(ctx.decrypt(derived.sum())[0] - (2 * ref + 1).sum()) <= 2 * tol + 5 * f
    # dot multiplies by zero-padded weights first: already exact without masking
    w = np.arange(5.0)
    assert abs(ctx.decrypt(out.dot(w))[0] - ref @ w) <= float(np.sum(w)) * tol


def test_reducing_a_latency_output_without_a_spare_level_is_refused_with_advice_that_works(rng):
    W = rng.normal(size=(5, 40)) * 0.05
    m = LatencyModel([Dense(W, np.zeros(5))], (40,))
    ctx = m.context(input_abs_max=1.0)  # planned to the last level: nothing left for the mask
    x = rng.uniform(-1, 1, 40)
    out = m.decision_function(m.encrypt(ctx.public_context(), x))
    with pytest.raises(UnsupportedOperationError, match="Decrypt the outputs"):
        out.sum()
    # the advice: decrypt, then reduce in plaintext
    tol = 5 * _error_bound(m, ctx, x[None])
    assert abs(float(np.sum(ctx.decrypt(out))) - float(np.sum(W @ x))) <= tol
