"""Smudged CKKS releases (he_ml.aggregation.flooding): bound arithmetic, stated noise statistics,
indistinguishability of different decryption noise, refusals with hints that work."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats

import he_ml
from he_ml.aggregation import GradientAggregator, aggregation_context
from he_ml.aggregation.committee_lattice import ciphertext_noise_bound, smudging_width
from he_ml.aggregation.flooding import release_plan, smudged_decrypt
from he_ml.errors import ParameterError

K = 10


@pytest.fixture(scope="module")
def ctx():
    return aggregation_context("ckks", max_clients=K, max_value=1.0, precision_bits=20)


def test_plan_meets_the_stated_statistical_distance(ctx):
    plan = release_plan(ctx, K)
    n = ctx.poly_modulus_degree
    B = ciphertext_noise_bound(n, K)
    assert B == K * (22 + 43 * n)
    # smudging lemma, union over n coefficients: n B / 2^(b+1) <= 2^-40, and b is the smallest such
    assert math.log2(n * B) - (plan.smudging_bits + 1) <= -40
    assert math.log2(n * B) - plan.smudging_bits > -40
    assert plan.smudging_bits == smudging_width(n, B, 40)
    assert plan.precision_bits >= 20  # what the context was planned for
    assert release_plan(ctx, K, security_bits=60).smudging_bits == plan.smudging_bits + 20


def test_released_noise_has_the_stated_variance_and_bound(ctx):
    d = 8000
    rng = np.random.default_rng(3)
    ups = [rng.uniform(-1, 1, d) for _ in range(K)]
    pub = ctx.public_context()
    agg = GradientAggregator(pub, max_value=1.0)
    total = agg.sum(agg.encrypt(u) for u in ups)
    kh = GradientAggregator(ctx, max_value=1.0)
    rel = kh.decrypt(total, release_count=K)
    plan = kh.last_release_plan
    err = rel - np.sum(ups, axis=0)
    # slots are uncorrelated linear images of i.i.d. uniform coefficients (flooding.ReleasePlan.slot_std):
    # sample variance relative std ~sqrt(2/(d-1)), mean std slot_std/sqrt(d); 6-sigma bounds
    assert abs(np.var(err) / plan.slot_std**2 - 1) < 6 * math.sqrt(2 / (d - 1))
    assert abs(np.mean(err)) < 6 * plan.slot_std / math.sqrt(d)
    assert np.max(np.abs(err)) <= plan.error_bound
    # the noise is fresh per release: a second release differs by noise of variance 2 slot_std^2
    again = kh.decrypt(total, release_count=K)
    assert abs(np.var(again - rel) / (2 * plan.slot_std**2) - 1) < 6 * math.sqrt(2 / (d - 1))
    # the key holder's own decryption is not smudged
    own = kh.decrypt(total)
    assert np.max(np.abs(own - np.sum(ups, axis=0))) < 1e-12


def test_smudging_hides_the_decryption_noise(ctx):
    """Two totals of the same values with different CKKS noise (1 vs K encryptions).

    Released, both errors must follow the same law -- the smudging's, ~N(0, slot_std^2) per slot
    (a sum of n uniform terms) -- whatever the ciphertext noise: KS against that normal and
    against each other must not reject. Without smudging the error is far below slot_std and
    the first test fails.
    """
    d = 4000
    x = np.random.default_rng(5).uniform(-1, 1, d)
    pub = ctx.public_context()
    agg = GradientAggregator(pub, max_value=1.0)
    zero = np.zeros(d)
    low = agg.sum([agg.encrypt(x)])
    high = agg.sum([agg.encrypt(x)] + [agg.encrypt(zero) for _ in range(K - 1)])
    kh = GradientAggregator(ctx, max_value=1.0)
    rel_low = kh.decrypt(low, release_count=K) - x
    rel_high = kh.decrypt(high, release_count=K) - x
    std = kh.last_release_plan.slot_std
    for err in (rel_low, rel_high):
        assert stats.kstest(err / std, "norm").pvalue > 1e-6
    assert stats.ks_2samp(rel_low, rel_high).pvalue > 1e-6
    raw = kh.decrypt(low) - x
    assert stats.kstest(raw / std, "norm").pvalue < 1e-6  # the test can fail: unsmudged is not that law


def test_contexts_that_cannot_hold_the_smudging_are_refused_with_a_hint_that_works():
    small = he_ml.CKKS(None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[60, 49], scale_bits=40,
                       relin_keys=False)
    x = small.encrypt(np.ones(4))
    with pytest.raises(ParameterError, match="cannot release") as info:
        smudged_decrypt(small, x, count=3)
    call = re.search(r"aggregation_context\([^)]*\)", str(info.value)).group(0)
    fitting = eval(call, {"aggregation_context": aggregation_context})  # the hint, followed
    values, plan = smudged_decrypt(fitting, fitting.encrypt(np.ones(4)), count=3)
    assert np.max(np.abs(values - 1)) <= plan.error_bound
    with pytest.raises(ParameterError, match="BFV and Paillier decrypt exactly"):
        release_plan(he_ml.BFV(), 3)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_bad_counts_are_refused(ctx, bad):
    with pytest.raises(ParameterError, match="count"):
        release_plan(ctx, bad)


@pytest.mark.parametrize("bad", [10, 129, 40.0, True])
def test_bad_security_bits_are_refused(ctx, bad):
    with pytest.raises(ParameterError, match="security_bits"):
        release_plan(ctx, K, security_bits=bad)


def test_aggregation_context_plans_release_precision():
    for clients, bits in ((4, 20), (100, 20), (100, 24), (1024, 30)):
        c = aggregation_context("ckks", max_clients=clients, max_value=1.0, precision_bits=bits)
        plan = release_plan(c, clients)
        assert plan.precision_bits >= bits
        # the sum of max_clients values of |x| <= 1 still fits the context
        assert c.encrypt(np.full(4, float(clients))) is not None
    with pytest.raises(ParameterError, match="use 'bfv' or 'paillier'"):
        aggregation_context("ckks", max_clients=10**7, max_value=1.0, precision_bits=52)
