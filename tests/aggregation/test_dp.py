"""Tests of he_ml.aggregation.dp: exact samplers, clipping, calibration, accounting.

The noise comes from the OS CSPRNG and cannot be seeded, so statistical tests
use acceptance bounds whose false-alarm probability is below ~1e-6 (5-sigma
intervals, chi-square p-value threshold 1e-6); test *data* uses seeded numpy
generators.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction
from importlib.metadata import version

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from he_ml.aggregation import dp
from he_ml.errors import HEError, ParameterError, ShapeMismatchError

P_VALUE_FLOOR = 1e-6  # chi-square tests fail by chance with probability 1e-6
Z_BOUND = 5.0  # 5-sigma bounds: false alarm ~ 6e-7 per check


# -- exact reference distributions -----------------------------------------


def discrete_gaussian_pmf(sigma_squared: float, support: np.ndarray) -> np.ndarray:
    """P(Y = y) of N_Z(0, sigma^2) on ``support``, normalised over a range of 40 sigma."""
    width = int(40 * math.sqrt(sigma_squared)) + 40
    ks = np.arange(-width, width + 1, dtype=np.float64)
    norm = math.fsum(np.exp(-(ks**2) / (2 * sigma_squared)))
    return np.exp(-(support.astype(np.float64) ** 2) / (2 * sigma_squared)) / norm


def discrete_gaussian_variance(sigma_squared: float) -> float:
    width = int(40 * math.sqrt(sigma_squared)) + 40
    ks = np.arange(-width, width + 1, dtype=np.float64)
    pmf = discrete_gaussian_pmf(sigma_squared, ks)
    return math.fsum(pmf * ks**2)


def discrete_laplace_pmf(scale: int, support: np.ndarray) -> np.ndarray:
    r = math.exp(-1.0 / scale)
    return (1 - r) / (1 + r) * r ** np.abs(support).astype(np.float64)


def chi_square_p_value(samples: np.ndarray, pmf, cut: int) -> float:
    """Chi-square goodness of fit with bins -cut..cut and the two tails merged."""
    support = np.arange(-cut, cut + 1)
    expected = pmf(support) * samples.size
    observed = np.array([np.count_nonzero(samples == k) for k in support], dtype=np.float64)
    tail_expected = samples.size - expected.sum()
    tail_observed = samples.size - observed.sum()
    expected = np.append(expected, tail_expected)
    observed = np.append(observed, tail_observed)
    if tail_expected < 5:  # fold a negligible tail into the outermost bins' test
        expected, observed = expected[:-1], observed[:-1]
        expected *= observed.sum() / expected.sum()
    return float(stats.chisquare(observed, expected).pvalue)


def assert_mean_and_variance(samples: np.ndarray, variance: float, mean: float = 0.0) -> None:
    """5-sigma bounds on the sample mean and the sample variance of ~Gaussian draws."""
    n = samples.size
    sample_mean = float(np.mean(samples))
    assert abs(sample_mean - mean) <= Z_BOUND * math.sqrt(variance / n), (sample_mean, variance, n)
    # Var(s^2) = 2 sigma^4 / (n - 1) for Gaussian data; discrete Gaussians with
    # sigma >= 1 have kurtosis within 1e-3 of it.
    sample_var = float(np.var(samples, ddof=1))
    assert abs(sample_var - variance) <= Z_BOUND * variance * math.sqrt(2.0 / (n - 1)), (sample_var, variance)


# -- samplers ----------------------------------------------------------------


@pytest.mark.parametrize("sigma_squared", [1, 3, Fraction(5, 2), Fraction(1, 4), 40])
def test_discrete_gaussian_matches_pmf(sigma_squared):
    samples = dp.discrete_gaussian(sigma_squared, 60_000)
    assert samples.dtype == np.int64 and samples.shape == (60_000,)
    cut = int(3.5 * math.sqrt(float(sigma_squared))) + 1
    p = chi_square_p_value(samples, lambda s: discrete_gaussian_pmf(float(sigma_squared), s), cut)
    assert p > P_VALUE_FLOOR


@pytest.mark.parametrize("sigma_squared", [10**6, 2**40 + 12345])
def test_discrete_gaussian_mean_and_variance_large_sigma(sigma_squared):
    samples = dp.discrete_gaussian(sigma_squared, 200_000).astype(np.float64)
    assert_mean_and_variance(samples, float(sigma_squared))


def test_discrete_gaussian_small_sigma_variance_below_sigma_squared():
    # CKS 2020 Prop. 2: Var(N_Z(0, s^2)) < s^2; for s^2 = 1/4 it is about 0.213.
    exact = discrete_gaussian_variance(0.25)
    assert exact < 0.25
    samples = dp.discrete_gaussian(Fraction(1, 4), 100_000).astype(np.float64)
    # Bernoulli-like data: use the exact variance of y^2 for the bound.
    sq = samples**2
    assert abs(sq.mean() - exact) <= Z_BOUND * sq.std() / math.sqrt(sq.size)


def test_discrete_gaussian_shape_and_empty():
    assert dp.discrete_gaussian(9, (3, 4, 5)).shape == (3, 4, 5)
    assert dp.discrete_gaussian(9, 0).shape == (0,)
    assert dp.discrete_gaussian(9, (2, 0)).shape == (2, 0)


def test_discrete_gaussian_is_symmetric_and_unbiased_over_chunks():
    # Larger than one internal chunk (2**17) so the chunk loop is exercised.
    samples = dp.discrete_gaussian(4, 300_000).astype(np.float64)
    assert_mean_and_variance(samples, discrete_gaussian_variance(4.0))


@pytest.mark.parametrize("scale", [1, 3, 50])
def test_discrete_laplace_matches_pmf(scale):
    samples = dp.discrete_laplace(scale, 60_000)
    cut = 4 * scale + 2
    assert chi_square_p_value(samples, lambda s: discrete_laplace_pmf(scale, s), cut) > P_VALUE_FLOOR


def test_reference_sampler_matches_pmf():
    samples = np.array([dp._discrete_gaussian_reference(Fraction(2)) for _ in range(4_000)])
    assert chi_square_p_value(samples, lambda s: discrete_gaussian_pmf(2.0, s), 5) > P_VALUE_FLOOR


def test_exact_fallback_path_matches_pmf(monkeypatch):
    # A filter margin of 1 makes the float filter give up on most comparisons,
    # sending them to the exact lazy-bit comparison.
    calls = {"n": 0}
    original = dp._uniform_less_than_exact

    def counting(*args):
        calls["n"] += 1
        return original(*args)

    monkeypatch.setattr(dp, "_FILTER_MARGIN", 1.0)
    monkeypatch.setattr(dp, "_uniform_less_than_exact", counting)
    samples = dp.discrete_gaussian(3, 20_000)
    assert calls["n"] > 5_000
    assert chi_square_p_value(samples, lambda s: discrete_gaussian_pmf(3.0, s), 7) > P_VALUE_FLOOR


def test_uniform_less_than_exact_decides_clear_cells_and_splits_straddling_ones():
    one = 1 << dp._U_BITS
    # Cell [5, 6)/2^52 against 7/2^52: always below; against 5/2^52: never.
    assert dp._uniform_less_than_exact(5, 1, 7, one)
    assert not dp._uniform_less_than_exact(5, 1, 5, one)
    # k scales U: 2 * [5, 6)/2^52 = [10, 12)/2^52 against 11/2^52 straddles at its middle.
    hits = sum(dp._uniform_less_than_exact(5, 2, 11, one) for _ in range(4_000))
    assert abs(hits - 2_000) <= Z_BOUND * math.sqrt(4_000 * 0.25)
    # Against 5.25/2^52 the cell [5, 6) is below with probability 1/4.
    hits = sum(dp._uniform_less_than_exact(5, 1, 21, 4 * one) for _ in range(4_000))
    assert abs(hits - 1_000) <= Z_BOUND * math.sqrt(4_000 * 0.25 * 0.75)


def test_bernoulli_exp_neg_reference_probability():
    gamma = Fraction(7, 5)
    n = 6_000
    hits = sum(dp._bernoulli_exp_neg_reference(gamma) for _ in range(n))
    p = math.exp(-1.4)
    assert abs(hits - n * p) <= Z_BOUND * math.sqrt(n * p * (1 - p))


def test_gaussian_accept_far_tail_uses_reference_path():
    # |y| beyond the int64 range of the vectorised path: acceptance exp(-huge) = 0.
    p, q = 4, 1
    t = dp._laplace_scale_for(Fraction(p, q))
    y = np.array([0, 2**61, -(2**61)], dtype=np.int64)
    accepted = dp._gaussian_accept(y, p, q, t)
    assert not accepted[1] and not accepted[2]


def test_no_numpy_random_or_random_module(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("numpy.random / random used for DP noise")

    for name in ["default_rng", "random", "rand", "randn", "randint", "normal", "laplace", "RandomState",
                 "Generator", "uniform", "integers", "choice", "bytes", "seed"]:
        if hasattr(np.random, name):
            monkeypatch.setattr(np.random, name, forbidden)
    for name in ["random", "gauss", "normalvariate", "getrandbits", "randrange", "randint", "uniform"]:
        monkeypatch.setattr(random, name, forbidden)
    token_calls = {"n": 0}
    token_bytes = dp.secrets.token_bytes

    def counting_token_bytes(n):
        token_calls["n"] += 1
        return token_bytes(n)

    monkeypatch.setattr(dp.secrets, "token_bytes", counting_token_bytes)
    dp.discrete_gaussian(10, 1000)
    dp.discrete_laplace(3, 1000)
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, num_clients=4)
    dp.privatize_client_update({"w": np.ones(10)}, cfg)
    central = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central")
    dp.add_central_noise(np.ones(10), central)
    assert token_calls["n"] > 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (0, "must be positive"),
        (-3, "must be positive"),
        (True, "positive int or fractions.Fraction"),
        ("4", "positive int or fractions.Fraction"),
        (float("nan"), "finite"),
        (0.1, "p, q < 2\\*\\*52"),
        (2**52, "p, q < 2\\*\\*52"),
    ],
)
def test_discrete_gaussian_rejects_bad_sigma_squared(bad, match):
    with pytest.raises(ParameterError, match=match):
        dp.discrete_gaussian(bad, 3)


@pytest.mark.parametrize("bad", [-1, (2, -1), "x", 2.5])
def test_samplers_reject_bad_size(bad):
    with pytest.raises(ParameterError, match="size"):
        dp.discrete_gaussian(4, bad)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, 2**52])
def test_discrete_laplace_rejects_bad_scale(bad):
    with pytest.raises(ParameterError, match="scale must be an integer"):
        dp.discrete_laplace(bad, 3)


def test_float_sigma_squared_exact_value_accepted():
    assert dp.discrete_gaussian(2.5, 4).shape == (4,)


# -- clipping ---------------------------------------------------------------


def test_clip_l2_array_scales_down_and_keeps_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 11)) * 10
    clipped, norm = dp.clip_l2(x, 2.5)
    assert norm == pytest.approx(np.linalg.norm(x), rel=1e-14)
    assert clipped.shape == x.shape and clipped.dtype == np.float64
    assert np.linalg.norm(clipped) <= 2.5
    assert np.linalg.norm(clipped) == pytest.approx(2.5, rel=1e-12)
    np.testing.assert_allclose(clipped, x * (2.5 / np.linalg.norm(x)), rtol=1e-12)


def test_clip_l2_leaves_small_update_unchanged():
    x = np.array([[0.1, -0.2], [0.05, 0.0]])
    clipped, norm = dp.clip_l2(x, 1.0)
    np.testing.assert_array_equal(clipped, x)
    assert norm == pytest.approx(np.linalg.norm(x))


def test_clip_l2_dict_uses_global_norm():
    rng = np.random.default_rng(2)
    update = {"w": rng.normal(size=(4, 3)), "b": rng.normal(size=3), "s": np.float64(3.0)}
    flat = np.concatenate([np.ravel(v) for v in update.values()])
    clipped, norm = dp.clip_l2(update, 1.0)
    assert list(clipped) == ["w", "b", "s"]
    assert norm == pytest.approx(np.linalg.norm(flat), rel=1e-14)
    flat_clipped = np.concatenate([np.ravel(v) for v in clipped.values()])
    assert np.linalg.norm(flat_clipped) <= 1.0
    np.testing.assert_allclose(flat_clipped, flat / np.linalg.norm(flat), rtol=1e-12)
    assert clipped["w"].shape == (4, 3) and clipped["s"].shape == ()


@pytest.mark.parametrize("seed", range(20))
def test_clip_l2_norm_never_exceeds_bound(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rng.integers(1, 500)) * 10.0 ** rng.integers(-5, 6)
    c = float(10.0 ** rng.uniform(-3, 3))
    clipped, _ = dp.clip_l2(x, c)
    assert dp._global_norm([clipped]) <= c


def test_clip_l2_huge_values_do_not_overflow():
    clipped, norm = dp.clip_l2(np.array([3e200, 4e200]), 1.0)
    assert norm == pytest.approx(5e200)
    np.testing.assert_allclose(clipped, [0.6, 0.8])


def test_clip_l2_integer_input_and_zero():
    clipped, norm = dp.clip_l2(np.array([3, 4]), 10.0)
    assert clipped.dtype == np.float64 and norm == 5.0
    clipped, norm = dp.clip_l2(np.zeros(3), 1.0)
    assert norm == 0.0 and not clipped.any()


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_clip_l2_rejects_non_finite_and_names_key(bad_value):
    update = {"layer1.weight": np.ones(3), "layer2.bias": np.array([1.0, bad_value])}
    with pytest.raises(ParameterError, match=r"update\['layer2.bias'\] contains 1 NaN/inf"):
        dp.clip_l2(update, 1.0)
    with pytest.raises(ParameterError, match=r"update contains 1 NaN/inf value\(s\) out of 2"):
        dp.clip_l2(np.array([bad_value, 0.0]), 1.0)


def test_clip_l2_error_paths():
    with pytest.raises(ParameterError, match="clip_norm must be finite and > 0; got 0.0"):
        dp.clip_l2(np.ones(2), 0.0)
    with pytest.raises(ParameterError, match="clip_norm must be finite"):
        dp.clip_l2(np.ones(2), float("inf"))
    with pytest.raises(ParameterError, match="clip_norm must be a real number"):
        dp.clip_l2(np.ones(2), "1")
    with pytest.raises(ParameterError, match="empty dict"):
        dp.clip_l2({}, 1.0)
    with pytest.raises(ParameterError, match=r"update\['a'\] must be a real numeric array; got dtype complex128"):
        dp.clip_l2({"a": np.ones(2, dtype=complex)}, 1.0)
    with pytest.raises(ParameterError, match="got dtype object"):
        dp.clip_l2(np.array([1, "x"], dtype=object), 1.0)
    # ParameterError is also a ValueError, as the error contract promises.
    with pytest.raises(ValueError):
        dp.clip_l2(np.array([np.nan]), 1.0)


# -- configuration ------------------------------------------------------------


def test_config_defaults_and_grid():
    cfg = dp.DPConfig(clip_norm=2.0, noise_multiplier=1.1, num_clients=100)
    assert cfg.mode == "distributed" and cfg.resolution == 2.0 * 2**-16
    assert cfg.grid_norm_squared == 2**32
    assert cfg.sigma == pytest.approx(2.2)
    # S_c = ceil(z^2 L / n), computed exactly.
    assert cfg.client_variance_grid == math.ceil(Fraction(1.1) ** 2 * 2**32 / 100)
    assert cfg.noise_std(1000) >= cfg.sigma
    assert cfg.noise_std(1000) == pytest.approx(cfg.sigma, rel=1e-6)
    assert cfg.client_noise_std == pytest.approx(2.2 / 10, rel=1e-6)
    assert cfg.accounting_noise_multiplier(10**6) == pytest.approx(1.1, rel=1e-6)
    assert cfg.kls_tau < 1e-30


def test_config_central_variance_covers_rounding_slack():
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central")
    d = 10**6
    s = cfg.central_variance_grid(d)
    # (sqrt(L) + sqrt(d))^2 with L = 2^32, d = 10^6: (65536 + 1000)^2.
    assert s >= (65536 + 1000) ** 2
    assert s <= (65536 + 1000) ** 2 * (1 + 1e-8)
    assert cfg.noise_std(d) == pytest.approx(1.0 * (1 + 1000 / 65536), rel=1e-6)
    assert cfg.accounting_noise_multiplier(d) == 1.0
    assert cfg.client_variance_grid == 0 and cfg.client_noise_std == 0.0 and cfg.kls_tau == 0.0


def test_config_kls_tau_formula_and_effect():
    # A coarse grid: each share has S_c = 1 grid step^2, where tau is not negligible.
    n = 64
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, num_clients=n, resolution=1.0 / 8)
    assert cfg.client_variance_grid == 1
    expected = 10 * sum(math.exp(-2 * math.pi**2 * k / (k + 1)) for k in range(1, n))
    assert cfg.kls_tau == pytest.approx(expected, rel=1e-12)
    d = 10_000
    assert cfg.accounting_noise_multiplier(d) == pytest.approx(1.0 / (1.0 + expected * math.sqrt(d)), rel=1e-9)
    assert cfg.accounting_noise_multiplier(d) < 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(clip_norm=0.0, noise_multiplier=1.0, num_clients=2), "clip_norm must be finite and > 0; got 0.0"),
        (dict(clip_norm=float("nan"), noise_multiplier=1.0, num_clients=2), "clip_norm must be finite"),
        (dict(clip_norm=1.0, noise_multiplier=0.0, num_clients=2), "noise_multiplier must be finite and > 0"),
        (dict(clip_norm=1.0, noise_multiplier=-1.0, num_clients=2), "noise_multiplier must be finite and > 0"),
        (dict(clip_norm=1.0, noise_multiplier="1", num_clients=2), "noise_multiplier must be a real number"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, mode="local", num_clients=2), "'distributed' or 'central'; got 'local'"),
        (dict(clip_norm=1.0, noise_multiplier=1.0), "needs num_clients"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, num_clients=0), "num_clients must be an integer >= 1; got 0"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, num_clients=2.0), "num_clients must be an integer"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, num_clients=True), "num_clients must be an integer"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, mode="central", num_clients=5), "only used in mode='distributed'"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, num_clients=2, resolution=0.0), "resolution must be finite and > 0"),
        (dict(clip_norm=1.0, noise_multiplier=1.0, num_clients=10**6, resolution=0.01), "too coarse.*resolution <="),
        (dict(clip_norm=1.0, noise_multiplier=1.0, num_clients=2, resolution=2.0**-31), "too fine.*2\\*\\*30"),
        (dict(clip_norm=1.0, noise_multiplier=1000.0, mode="central", resolution=2.0**-20), "too fine.*2\\*\\*26"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        dp.DPConfig(**kwargs)


def test_config_dimension_errors():
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central")
    for bad in [0, -1, 2.0, True]:
        with pytest.raises(ParameterError, match="dimension must be a positive integer"):
            cfg.central_variance_grid(bad)
        with pytest.raises(ParameterError, match="dimension must be a positive integer"):
            cfg.accounting_noise_multiplier(bad)


# -- mechanisms -----------------------------------------------------------------


def test_privatize_central_mode_is_clip_and_truncate_to_grid():
    rng = np.random.default_rng(3)
    update = {"w": rng.normal(size=(5, 4)), "b": rng.normal(size=4)}
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central", resolution=2.0**-10)
    out = dp.privatize_client_update(update, cfg)
    clipped, _ = dp.clip_l2(update, 1.0)
    for key in update:
        assert out[key].shape == update[key].shape
        grid = out[key] / cfg.resolution
        np.testing.assert_array_equal(grid, np.round(grid))  # on the grid
        np.testing.assert_array_equal(out[key], np.trunc(clipped[key] / cfg.resolution) * cfg.resolution)
        assert np.all(np.abs(out[key]) <= np.abs(clipped[key]))
    flat = np.concatenate([v.ravel() for v in out.values()])
    assert np.sum((flat / cfg.resolution) ** 2) <= float(cfg.grid_norm_squared)


def test_privatize_repairs_ulp_excess_exactly():
    # res = 1/3 is not a power of two: x/res rounds, and an update of norm exactly
    # C can land a grid step above the bound without the exact repair.
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central", resolution=1 / 3)
    x = np.array([1.0])
    out = dp.privatize_client_update(x, cfg)
    m = np.rint(out / cfg.resolution).astype(np.int64)
    assert int(np.sum(m * m)) <= cfg.grid_norm_squared


def test_distributed_noise_sum_has_sigma_squared_variance():
    n_clients, d = 40, 5_000
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.1, num_clients=n_clients)
    total = np.zeros(d)
    for _ in range(n_clients):
        share = dp.privatize_client_update(np.zeros(d), cfg)
        np.testing.assert_array_equal(share / cfg.resolution, np.round(share / cfg.resolution))
        total += share
    assert cfg.noise_std(d) == pytest.approx(1.1, rel=1e-6)
    assert_mean_and_variance(total, cfg.noise_std(d) ** 2)


def test_distributed_single_client_share_variance():
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, num_clients=25)
    share = dp.privatize_client_update(np.zeros(100_000), cfg)
    assert_mean_and_variance(share, cfg.client_noise_std**2)
    assert cfg.client_noise_std == pytest.approx(0.2, rel=1e-6)


def test_central_noise_variance_and_mean():
    d = 100_000
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.1, mode="central")
    total = np.full(d, 3.0)
    noisy = dp.add_central_noise(total, cfg)
    assert_mean_and_variance(noisy, cfg.noise_std(d) ** 2, mean=3.0)
    # Rounding slack: (1 + sqrt(d) / 2^16) more std than sigma.
    assert cfg.noise_std(d) == pytest.approx(1.1 * (1 + math.sqrt(d) / 65536), rel=1e-6)


def test_central_and_distributed_give_the_same_noise_level():
    d, n = 20_000, 20
    dist = dp.DPConfig(clip_norm=0.5, noise_multiplier=2.0, num_clients=n)
    cent = dp.DPConfig(clip_norm=0.5, noise_multiplier=2.0, mode="central")
    total = sum(dp.privatize_client_update(np.zeros(d), dist) for _ in range(n))
    noisy = dp.add_central_noise(np.zeros(d), cent)
    var_dist, var_cent = float(np.var(total)), float(np.var(noisy))
    # Both ~ sigma^2 = 1; central slightly higher by its rounding slack (0.4 %).
    for v, cfg in [(var_dist, dist), (var_cent, cent)]:
        assert abs(v - cfg.noise_std(d) ** 2) <= Z_BOUND * cfg.noise_std(d) ** 2 * math.sqrt(2 / d)
    assert dist.noise_std(d) == pytest.approx(1.0, rel=1e-6)
    assert cent.noise_std(d) == pytest.approx(1.0 + math.sqrt(d) / 2**16, rel=1e-6)


def test_noisy_sum_is_unbiased_estimate_of_clipped_sum():
    rng = np.random.default_rng(4)
    n, d = 30, 4_000
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=0.5, num_clients=n)
    updates = [rng.normal(size=d) * 0.01 for _ in range(n)]  # norm ~0.63 < clip: unclipped
    noisy_total = sum(dp.privatize_client_update(u, cfg) for u in updates)
    exact_total = sum(updates)
    err = noisy_total - exact_total
    # Truncation biases each value towards zero by < one grid step per client.
    bias_bound = n * cfg.resolution
    assert abs(float(np.mean(err))) <= Z_BOUND * cfg.noise_std(d) / math.sqrt(d) + bias_bound
    assert abs(float(np.var(err)) - cfg.noise_std(d) ** 2) <= Z_BOUND * cfg.noise_std(d) ** 2 * math.sqrt(2 / d) + bias_bound


def test_mechanism_error_paths():
    dist = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, num_clients=3)
    cent = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central")
    with pytest.raises(ParameterError, match="mode='central'; this config is mode='distributed'"):
        dp.add_central_noise(np.zeros(3), dist)
    with pytest.raises(ParameterError, match="config must be a he_ml.aggregation.dp.DPConfig; got dict"):
        dp.privatize_client_update(np.zeros(3), {"clip_norm": 1.0})
    with pytest.raises(ParameterError, match=r"update\['g'\] contains 1 NaN/inf"):
        dp.privatize_client_update({"g": np.array([np.nan])}, dist)
    with pytest.raises(ParameterError, match=r"total\['g'\] contains 1 NaN/inf"):
        dp.add_central_noise({"g": np.array([np.inf, 1.0])}, cent)
    with pytest.raises(ShapeMismatchError, match="no coordinates"):
        dp.add_central_noise(np.zeros(0), cent)
    with pytest.raises(ParameterError, match="more than 2\\*\\*62 grid steps"):
        dp.add_central_noise(np.array([1e300]), cent)


def test_add_central_noise_dict_structure():
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.0, mode="central")
    out = dp.add_central_noise({"a": np.zeros((2, 3)), "b": np.zeros(4)}, cfg)
    assert list(out) == ["a", "b"] and out["a"].shape == (2, 3) and out["b"].shape == (4,)
    for v in out.values():
        np.testing.assert_array_equal(v / cfg.resolution, np.round(v / cfg.resolution))


def test_errors_are_he_errors():
    with pytest.raises(HEError):
        dp.DPConfig(clip_norm=-1.0, noise_multiplier=1.0, mode="central")


# -- accounting -------------------------------------------------------------------


def _direct_epsilon(accountant, z, q, rounds, delta):
    event = dp_accounting.GaussianDpEvent(z)
    if q < 1:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("z, q, rounds, delta", [(1.1, 0.01, 1000, 1e-5), (0.8, 0.1, 50, 1e-6), (2.0, 1.0, 10, 1e-5)])
def test_epsilon_rdp_matches_dp_accounting(z, q, rounds, delta):
    report = dp.epsilon(z, q, rounds, delta)
    expected = _direct_epsilon(dp_accounting.rdp.RdpAccountant(), z, q, rounds, delta)
    assert report.epsilon == expected
    assert report.accountant == "rdp"
    assert report.accountant_library == f"dp-accounting {version('dp-accounting')}"
    assert (report.noise_multiplier, report.sampling_rate, report.rounds, report.delta) == (z, q, rounds, delta)
    assert "RDP accountant" in str(report) and f"{rounds} rounds" in str(report)


@pytest.mark.parametrize(
    "z, q, rounds, delta",
    [(1.1, 0.01, 100, 1e-5), pytest.param(2.0, 1.0, 10, 1e-5, marks=pytest.mark.slow)],
)
def test_epsilon_pld_matches_dp_accounting(z, q, rounds, delta):
    report = dp.epsilon(z, q, rounds, delta, accountant="pld")
    expected = _direct_epsilon(dp_accounting.pld.PLDAccountant(), z, q, rounds, delta)
    assert report.epsilon == expected and report.accountant == "pld"
    # PLD is tighter than RDP for the same mechanism.
    assert report.epsilon <= dp.epsilon(z, q, rounds, delta).epsilon


def test_epsilon_known_value_for_default_example():
    # z = 1.1, q = 0.01, 1000 rounds, delta = 1e-5 (dp-accounting 0.6.0: 1.7118 RDP).
    assert dp.epsilon(1.1, 0.01, 1000, 1e-5).epsilon == pytest.approx(1.712, abs=0.01)


def test_epsilon_monotone_in_noise_and_rounds():
    a = dp.epsilon(1.0, 0.01, 100, 1e-5).epsilon
    assert dp.epsilon(2.0, 0.01, 100, 1e-5).epsilon < a < dp.epsilon(1.0, 0.01, 400, 1e-5).epsilon


def test_noise_multiplier_for_rdp_is_tight():
    target = 2.0
    z = dp.noise_multiplier_for(target, 0.01, 1000, 1e-5, tol=1e-4)
    assert dp.epsilon(z, 0.01, 1000, 1e-5).epsilon <= target
    assert dp.epsilon(z - 3e-4, 0.01, 1000, 1e-5).epsilon > target


@pytest.mark.slow
def test_noise_multiplier_for_pld_is_tight():
    target = 1.5
    z = dp.noise_multiplier_for(target, 0.01, 1000, 1e-5, accountant="pld", tol=1e-3)
    assert dp.epsilon(z, 0.01, 1000, 1e-5, "pld").epsilon <= target
    assert dp.epsilon(z - 3e-3, 0.01, 1000, 1e-5, "pld").epsilon > target


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(noise_multiplier=0.0), "noise_multiplier must be finite and > 0"),
        (dict(noise_multiplier=float("inf")), "noise_multiplier must be finite"),
        (dict(sampling_rate=0.0), "sampling_rate must be finite and > 0"),
        (dict(sampling_rate=1.5), "sampling_rate must be in \\(0, 1\\]"),
        (dict(rounds=0), "rounds must be a positive integer; got 0"),
        (dict(rounds=2.5), "rounds must be a positive integer"),
        (dict(rounds=True), "rounds must be a positive integer"),
        (dict(delta=0.0), "delta must be finite and > 0"),
        (dict(delta=1.0), "delta must be in \\(0, 1\\)"),
        (dict(accountant="moments"), "accountant must be 'rdp' or 'pld'; got 'moments'"),
        (dict(noise_multiplier=0.1, accountant="pld"), "below 0.3.*accountant='rdp'"),
    ],
)
def test_epsilon_errors(kwargs, match):
    args = dict(noise_multiplier=1.0, sampling_rate=0.01, rounds=10, delta=1e-5) | kwargs
    with pytest.raises(ParameterError, match=match):
        dp.epsilon(**args)


def test_noise_multiplier_for_errors():
    with pytest.raises(ParameterError, match="target_epsilon must be finite and > 0"):
        dp.noise_multiplier_for(0.0, 0.01, 10, 1e-5)
    with pytest.raises(ParameterError, match="sampling_rate must be in"):
        dp.noise_multiplier_for(1.0, 2.0, 10, 1e-5)
    with pytest.raises(ParameterError, match="tol must be finite and > 0"):
        dp.noise_multiplier_for(1.0, 0.01, 10, 1e-5, tol=0.0)


def test_distributed_config_feeds_accountant():
    cfg = dp.DPConfig(clip_norm=1.0, noise_multiplier=1.1, num_clients=1000)
    z = cfg.accounting_noise_multiplier(10**5)
    assert z == pytest.approx(1.1, rel=1e-6)
    assert dp.epsilon(z, 0.01, 1000, 1e-5).epsilon == pytest.approx(1.712, abs=0.01)
