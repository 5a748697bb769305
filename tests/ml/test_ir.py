"""The model IR and its numpy interpreter against torch (every layer type, random inputs)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from he_ml.errors import ParameterError, ShapeMismatchError  # noqa: E402
from he_ml.ml.ir import (  # noqa: E402
    Activation, AvgPool2d, Conv2d, Dense, Flatten, ModelIR, apply_linear_plain, fuse_linear, run_plain,
    to_dense, to_sparse,
)
from he_ml.ml.model import build_activation  # noqa: E402

# float64 on both sides: differences are summation-order rounding, ~1e-15 relative per term;
# 1e-10 leaves room for a few hundred terms of magnitude ~10.
TOL = 1e-10

CONV_CASES = [  # (c, h, w, oc, k, stride, padding)
    (1, 28, 28, 5, 5, 2, 1),
    (2, 7, 9, 3, 3, 1, 1),
    (3, 6, 6, 4, 2, 2, 0),
    (1, 5, 5, 2, (3, 1), (1, 2), (1, 0)),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch_and_dense_form(case):
    c, h, w, oc, k, s, p = case
    rng = np.random.default_rng(1)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.normal(size=(4, c, h, w))
    W = rng.normal(size=(oc, c, kh, kw))
    b = rng.normal(size=oc)
    layer = Conv2d(W, b, s, p, (c, h, w))
    ref = F.conv2d(torch.tensor(x), torch.tensor(W), torch.tensor(b), stride=s, padding=p).numpy()
    assert layer.output_shape == ref.shape[1:]
    np.testing.assert_allclose(apply_linear_plain(layer, x), ref, atol=TOL)
    Wd, bd = to_dense(layer)
    np.testing.assert_allclose(x.reshape(4, -1) @ Wd.T + bd, ref.reshape(4, -1), atol=TOL)


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_avgpool_matches_torch(k, s, p, include_pad):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 7, 8))
    layer = AvgPool2d(k, s, p, (2, 7, 8), include_pad)
    ref = F.avg_pool2d(torch.tensor(x), k, s, p, count_include_pad=include_pad).numpy()
    np.testing.assert_allclose(apply_linear_plain(layer, x), ref, atol=TOL)
    M, bd = to_sparse(layer)
    np.testing.assert_allclose((M @ x.reshape(3, -1).T).T + bd, ref.reshape(3, -1), atol=TOL)


def test_dense_flatten_and_fusion():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 2, 3, 3))
    conv = Conv2d(rng.normal(size=(2, 2, 2, 2)), rng.normal(size=2), 1, 0, (2, 3, 3))
    flat = Flatten(conv.output_shape)
    dense = Dense(rng.normal(size=(4, 8)), rng.normal(size=4))
    ir = ModelIR((conv, flat, dense), (2, 3, 3), "regression")
    ref = F.linear(torch.flatten(F.conv2d(torch.tensor(x), torch.tensor(conv.weight), torch.tensor(conv.bias)), 1),
                   torch.tensor(dense.weight), torch.tensor(dense.bias)).numpy()
    np.testing.assert_allclose(run_plain(ir, x), ref, atol=TOL)
    fused = fuse_linear([conv, flat, dense])
    np.testing.assert_allclose(x.reshape(5, -1) @ fused.weight.T + fused.bias, ref, atol=TOL)


@pytest.mark.parametrize("name,fn", [("relu", F.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
                                     ("gelu", F.gelu)])
def test_activation_exact_and_twin(name, fn):
    rng = np.random.default_rng(4)
    x = rng.normal(scale=3.0, size=(50, 6))
    act = build_activation(name, x, 7)
    np.testing.assert_allclose(act.exact(x), fn(torch.tensor(x)).numpy(), atol=1e-12)
    # the twin is the polynomial: within its measured max_error on the interval (grid-measured,
    # 100 001 points; between grid points a degree-7 polynomial can exceed it by a hair: 1 %)
    assert np.max(np.abs(act.twin(x) - act.exact(x))) <= act.max_error * 1.01
    lo, hi = act.interval
    assert hi == pytest.approx(1.2 * np.max(np.abs(x)))
    assert lo == -hi


def test_square_and_polynomial_kinds():
    x = np.linspace(-2, 2, 9).reshape(1, -1)
    assert np.array_equal(Activation.square().twin(x), x * x)
    assert Activation.square().depth == 1 and Activation.identity().depth == 0
    with pytest.raises(ParameterError, match="needs its polynomial"):
        Activation("polynomial", "polynomial", coefficients=[0, 1, 1])
    with pytest.raises(ParameterError, match="kind must be one of"):
        Activation("cubic", "x")


def test_shape_errors():
    rng = np.random.default_rng(5)
    with pytest.raises(ShapeMismatchError, match="bias must have 3"):
        Dense(rng.normal(size=(3, 2)), np.zeros(2))
    with pytest.raises(ShapeMismatchError, match="input channels"):
        Conv2d(rng.normal(size=(2, 3, 2, 2)), np.zeros(2), 1, 0, (1, 4, 4))
    with pytest.raises(ShapeMismatchError, match="expects 5 inputs"):
        ModelIR((Dense(np.ones((2, 5)), np.zeros(2)),), (4,), "regression")
    with pytest.raises(ShapeMismatchError, match="1 output"):
        ModelIR((Dense(np.ones((2, 4)), np.zeros(2)),), (4,), "binary")
    with pytest.raises(ParameterError, match="finite"):
        Dense(np.array([[np.nan]]), np.zeros(1))
    with pytest.raises(ParameterError, match="linear layer"):
        to_dense(Activation.square())
    ir = ModelIR((Dense(np.ones((1, 4)), np.zeros(1)),), (4,), "binary", classes_=np.array([0, 1]))
    with pytest.raises(ShapeMismatchError, match=r"\(n, 4\)"):
        run_plain(ir, np.ones((3, 5)))
