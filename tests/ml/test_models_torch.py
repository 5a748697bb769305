"""from_torch and make_he_friendly: encrypted networks against the torch modules themselves."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import he_ml  # noqa: E402
from he_ml.errors import ParameterError, UnsupportedOperationError  # noqa: E402
from he_ml.ml import ClientAidedRefresh, encrypt_features, from_torch  # noqa: E402
from he_ml.ml.torch import PolyActivation, Square, make_he_friendly  # noqa: E402


def _torch_out(net, X):
    with torch.no_grad():
        return net.eval()(torch.as_tensor(X, dtype=torch.float32)).double().numpy().reshape(len(X), -1)


def _randomize_bn(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return net


# float32 forward in torch vs float64 IR: relative rounding ~6e-8 per operation over a few hundred terms
TORCH_TOL = 1e-5

NETWORKS = {
    "conv-bn-square-pool-dense": lambda: nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), Square(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(12, 3)),
    "conv-nopad-quadratic-dense-bn": lambda: nn.Sequential(
        nn.Conv2d(2, 2, (3, 2), stride=(1, 2)), PolyActivation([0.1, 0.5, 0.2]), nn.Flatten(), nn.Linear(24, 5),
        nn.BatchNorm1d(5), Square(), nn.Linear(5, 2)),
    "pool-first-cubic": lambda: nn.Sequential(
        nn.AvgPool2d(2, stride=2, padding=1, count_include_pad=False), nn.Flatten(), nn.Linear(32, 4),
        PolyActivation([0.0, 1.0, 0.1, -0.05]), nn.Linear(4, 3)),
}
INPUT_SHAPES = {"conv-bn-square-pool-dense": (1, 8, 8), "conv-nopad-quadratic-dense-bn": (2, 6, 7),
                "pool-first-cubic": (2, 6, 6)}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_layer_type_encrypted_matches_torch(name, ckks_error_bound):
    torch.manual_seed(0)
    net = _randomize_bn(NETWORKS[name](), 1)
    X = np.random.default_rng(2).normal(size=(40,) + INPUT_SHAPES[name])
    model = from_torch(net, X_calibration=X)
    ref = _torch_out(net, X)
    # the converter is exact (polynomial and square activations are exact): IR == torch
    np.testing.assert_allclose(model.plain_scores(X, exact=True).reshape(len(X), -1), ref,
                               atol=TORCH_TOL * max(1, np.max(np.abs(ref))))
    ctx = model.context()
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X)))  # images (n, c, h, w)
    assert scores.shape == ref.shape
    assert np.max(np.abs(scores - model.plain_scores(X))) <= ckks_error_bound(model, X, ctx)
    assert np.max(np.abs(scores - ref)) <= ckks_error_bound(model, X, ctx) + TORCH_TOL * max(1, np.max(np.abs(ref)))


def test_quadratic_activation_costs_one_level():
    net = nn.Sequential(nn.Linear(4, 3), PolyActivation([0.3, -0.7, 0.25]), nn.Linear(3, 2))
    model = from_torch(net, X_calibration=np.random.default_rng(0).normal(size=(20, 4)))
    assert model.depth == 3  # linear, (x + s)^2, linear with a and the constant folded in
    cubic = nn.Sequential(nn.Linear(4, 3), PolyActivation([0.3, -0.7, 0.25, 0.1]), nn.Linear(3, 2))
    assert from_torch(cubic, X_calibration=np.random.default_rng(0).normal(size=(20, 4))).depth == 1 + 2 + 1


@pytest.mark.parametrize("act,name", [(nn.ReLU, "relu"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"),
                                      (nn.GELU, "gelu")])
def test_approximated_activations_within_their_error(act, name, ckks_error_bound):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(5, 6), act(), nn.Linear(6, 2))
    X = np.random.default_rng(4).normal(size=(60, 5))
    model = from_torch(net, X_calibration=X, degree=7)
    a = [s.activation for s in model._stages if hasattr(s, "activation")][0]
    assert a.name == name and a.poly.degree == 7
    ctx = model.context()
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X)))
    ref = _torch_out(net, X)
    # polynomial error through the output layer (|W2| row sums) + CKKS noise + float32 rounding
    W2 = net[2].weight.detach().double().numpy()
    bound = np.max(np.abs(W2).sum(axis=1)) * a.max_error * 1.01 + ckks_error_bound(model, X, ctx) + TORCH_TOL
    assert np.max(np.abs(scores - ref)) <= bound


class _Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 5 * 5, 3)

    def forward(self, x):
        x = self.conv(x)
        x = x * x
        x = x.view(x.size(0), -1)
        return self.fc(torch.relu(x) if False else x)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) + x


def test_plain_module_with_a_chain_forward_is_traced(ckks_error_bound):
    torch.manual_seed(5)
    net = _Chain()
    X = np.random.default_rng(6).normal(size=(16, 1, 5, 5))
    model = from_torch(net, X_calibration=X)
    assert model.depth == 3
    np.testing.assert_allclose(model.plain_scores(X, exact=True), _torch_out(net, X), atol=TORCH_TOL * 10)


def test_unsupported_layers_and_structures_are_named():
    X = np.random.default_rng(7).normal(size=(4, 2, 6, 6))
    cases = [
        (nn.Sequential(nn.Conv2d(2, 2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2)), "MaxPool2d"),
        (nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten()), "groups=1"),
        (nn.Sequential(nn.Flatten(), nn.Linear(72, 2), nn.Softplus()), "Softplus"),
        (_Residual(), "straight chain"),
    ]
    for net, match in cases:
        with pytest.raises(UnsupportedOperationError, match=match) as info:
            from_torch(net, X_calibration=X if not isinstance(net, _Residual) else X.reshape(4, -1)[:, :4])
        assert "Supported layers: Linear, Conv2d" in str(info.value)
    with pytest.raises(UnsupportedOperationError, match="Flatten"):
        from_torch(nn.Sequential(nn.Linear(6, 2)), X_calibration=X)  # Linear on images needs Flatten


def test_needs_calibration_or_shape():
    net = nn.Sequential(nn.Conv2d(1, 1, 2), nn.Flatten(), nn.Linear(9, 2))
    with pytest.raises(ParameterError, match="input shape"):
        from_torch(net)
    model = from_torch(net, input_shape=(1, 4, 4))  # exact model: no interval to calibrate
    assert model.depth == 1
    with pytest.raises(ParameterError, match="X_calibration"):
        from_torch(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    with pytest.raises(he_ml.errors.NotFittedError, match="calibrate"):
        model.context()


def test_linear_torch_model_runs_on_bfv():
    torch.manual_seed(8)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.BatchNorm1d(3))
    _randomize_bn(net, 9)
    X = np.random.default_rng(10).normal(size=(30, 1, 4, 4))
    model = from_torch(net, X_calibration=X)
    assert model.is_linear
    ctx = model.context("bfv")
    enc = encrypt_features(ctx, X)
    scores = ctx.decrypt(model.decision_function(enc))
    W = model._stages[0].matrix.toarray()
    f, wb = enc.fixed_point_bits, model.bfv_weight_bits_
    tol = np.max(np.abs(W).sum(axis=1)) * 2.0 ** -(f + 1) + np.max(np.abs(X).reshape(30, -1).sum(axis=1)) \
        * 2.0 ** -(wb + 1) + 2.0 ** -(f + wb) + TORCH_TOL
    assert np.max(np.abs(scores - _torch_out(net, X))) <= tol


def test_too_deep_for_any_ring_offers_refresh_and_refresh_works(ckks_error_bound):
    torch.manual_seed(11)
    layers = []
    for _ in range(5):
        layers += [nn.Linear(3, 3), nn.Tanh()]
    net = nn.Sequential(*layers, nn.Linear(3, 2))
    X = np.random.default_rng(12).normal(size=(20, 3))
    model = from_torch(net, X_calibration=X, degree=31)  # 5 x (1 + 5) + 1 = 31 levels
    assert model.depth == 31
    with pytest.raises(ParameterError, match=r"needs depth 31.*refresh=True"):
        model.context()
    ctx = model.context(refresh=True)  # only the deepest stage (5 levels) must fit
    assert ctx.max_depth >= 5
    refresh = ClientAidedRefresh(ctx)
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X), refresh=refresh))
    assert refresh.calls > 0
    # every refresh re-encrypts (fresh noise): the bound of one segment applies per segment, and the
    # errors of earlier segments are carried like input errors; the whole-chain bound covers both
    assert np.max(np.abs(scores - model.plain_scores(X))) <= ckks_error_bound(model, X, ctx)


@pytest.mark.slow
def test_make_he_friendly_recovers_accuracy_on_digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    tr, te = idx[:1400], idx[1400:]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 32),
                        nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X[tr], dtype=torch.float32), torch.tensor(y[tr])
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(net(Xt), yt).backward()
        opt.step()
    base = np.mean(np.argmax(_torch_out(net, X[te]), 1) == y[te])
    friendly = make_he_friendly(net, X[tr], y[tr], epochs=15, lr=3e-3)
    assert not any(isinstance(m, nn.ReLU) for m in friendly.modules())
    acc = np.mean(np.argmax(_torch_out(friendly, X[te]), 1) == y[te])
    assert acc >= base - 0.03, (acc, base)
    model = from_torch(friendly, X_calibration=X[tr])
    assert model.depth == 5  # conv, (x+s)^2, dense (a and k folded in), (x+s)^2, dense
    ctx = model.context()
    scores = ctx.decrypt(model.decision_function(encrypt_features(ctx, X[te])))
    agree = np.mean(model.predict_from_scores(scores) == np.argmax(_torch_out(friendly, X[te]), 1))
    assert agree >= 0.99


def test_make_he_friendly_validates_and_swaps():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    X = np.random.default_rng(13).normal(size=(32, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    sq = make_he_friendly(net, X, y, epochs=1, activation="square")
    assert isinstance(sq[1], Square) and isinstance(net[1], nn.ReLU)  # the original is untouched
    quad = make_he_friendly(net, X, y, epochs=0)
    # epochs=0: the quadratic is the least-squares fit of relu on [-R, R], R = 1.2 max |input|
    with torch.no_grad():
        h = net[0](torch.tensor(X)).abs().max().item() * 1.2
    grid = np.linspace(-h, h, 2001)
    fit = np.polynomial.polynomial.polyfit(grid, np.maximum(grid, 0), 2)
    np.testing.assert_allclose(quad[1].coefficients.detach().numpy(), fit, rtol=1e-4, atol=1e-5)
    with pytest.raises(ParameterError, match="activation must be"):
        make_he_friendly(net, X, y, activation="cube")
    with pytest.raises(ParameterError, match="no ReLU"):
        make_he_friendly(nn.Sequential(nn.Linear(4, 2)), X, y)


def test_final_softmax_or_sigmoid_is_left_to_the_client():
    torch.manual_seed(14)
    X = np.random.default_rng(15).normal(size=(30, 4))
    body = nn.Sequential(nn.Linear(4, 3))
    model = from_torch(nn.Sequential(body, nn.Softmax(dim=1)), X_calibration=X)
    assert model.task == "multiclass" and model.depth == 1
    np.testing.assert_allclose(model.proba_from_scores(model.plain_scores(X)),
                               _torch_out(nn.Sequential(body, nn.Softmax(dim=1)), X), atol=1e-6)
    binary = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    model = from_torch(binary, X_calibration=X, task="binary")
    assert model.task == "binary" and model.depth == 1
    np.testing.assert_allclose(model.proba_from_scores(model.plain_scores(X))[:, 1], _torch_out(binary, X)[:, 0],
                               atol=1e-6)


def test_batch_norm_without_a_linear_layer_before_it_becomes_a_free_affine_layer():
    torch.manual_seed(16)
    X1 = np.random.default_rng(17).normal(size=(20, 4))
    net1 = _randomize_bn(nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2)), 18)
    X2 = np.random.default_rng(19).normal(size=(20, 2, 4, 4))
    net2 = _randomize_bn(nn.Sequential(nn.Conv2d(2, 2, 3), Square(), nn.BatchNorm2d(2), nn.Flatten(),
                                       nn.Linear(8, 3)), 20)
    for net, X, depth in ((net1, X1, 1), (net2, X2, 3)):
        model = from_torch(net, X_calibration=X)
        assert model.depth == depth  # the diagonal layer fuses with the next linear layer
        np.testing.assert_allclose(model.plain_scores(X, exact=True).reshape(len(X), -1), _torch_out(net, X),
                                   atol=TORCH_TOL * 10)
