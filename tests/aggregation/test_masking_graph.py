"""Fast paths of masked rounds: lazy mask sums, cached Lagrange weights, SecAgg+ parameters (Bell et al. 2020)."""
from __future__ import annotations

import math
import random
import secrets
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import hypergeom

from he_ml.aggregation import _maskdomain as md
from he_ml.aggregation import masking as mk
from he_ml.aggregation import shamir
from he_ml.aggregation._maskgraph import _tail, graph_failure_bits
from he_ml.errors import InvalidCiphertextError, ParameterError

BFV_T = 1073692673  # aggregation_context("bfv", ...)'s plain modulus (30 bits)


# ------------------------------------------------------------------------------------------ mask domains
def _reference_prime(key: bytes, t: int, size: int) -> list[int]:
    """Rejection sampling in plain Python: word i (32-bit, or 64-bit for t > 2**32, little-endian)
    cut to bit_length(t) bits is kept if < t; rejected positions, in order, take the next kept
    words of the continuing keystream."""
    wb = 4 if t.bit_length() <= 32 else 8
    low = (1 << t.bit_length()) - 1
    ks = md.keystream(key)
    raw = ks.update(bytes(wb * size))
    vals = [int.from_bytes(raw[i * wb:(i + 1) * wb], "little") & low for i in range(size)]

    def more():
        while True:
            v = int.from_bytes(ks.update(bytes(wb)), "little") & low
            if v < t:
                return v

    return [v if v < t else more() for v in vals]


@pytest.mark.parametrize("t", [BFV_T, 65537, 12289, 257, 2**61 - 1, 2**40 + 15])
def test_prime_domain_lazy_sum_equals_masks_reduced_one_by_one(t):
    rng = random.Random(5)
    dom = md.PrimeDomain(t, 300)
    keys = [rng.randbytes(32) for _ in range(7)]
    signs = [1, -1, -1, 1, 1, -1, 1]
    acc = dom.accumulator()
    for k, s in zip(keys, signs):
        dom.accumulate(acc, k, s)
    expected = [0] * 300
    for k, s in zip(keys, signs):
        expected = [(e + s * v) % t for e, v in zip(expected, _reference_prime(k, t, 300))]
    assert dom.finish(acc).tolist() == expected
    assert dom.expand(keys[0]).tolist() == _reference_prime(keys[0], t, 300)


def test_prime_domain_rejects_words_at_or_above_t():
    # t = 257 is a 9-bit prime: about half of the 9-bit cuts are >= t and must be replaced
    t, size = 257, 4096
    key = secrets.token_bytes(32)
    raw = md.keystream(key).update(bytes(4 * size))
    cuts = np.frombuffer(raw, dtype="<u4") & 511
    assert (cuts >= t).sum() > size // 3  # the refill path really runs
    out = md.PrimeDomain(t, size).expand(key)
    assert out.max() < t
    kept = cuts < t
    assert np.array_equal(out[kept], cuts[kept])  # kept words stay where they were


def test_prime_domain_masks_are_uniform_mod_t():
    # 257 residues, N = 257 * 400 draws: each count ~ Binomial(N, 1/257), sd = sqrt(N p (1-p)) ~ 19.96;
    # the 2**-80 bias moves the mean by < 1e-19, so a 6-sd band fails with probability < 257 * 2e-9
    t, size = 257, 257 * 400
    dom = md.PrimeDomain(t, size)
    counts = np.bincount(dom.expand(secrets.token_bytes(32)).astype(np.int64), minlength=t)
    sd = math.sqrt(size * (1 / t) * (1 - 1 / t))
    assert counts.size == t and np.all(np.abs(counts - size / t) <= 6 * sd)


@pytest.mark.parametrize("bits", [20, 63, 64])
def test_uint_domain_lazy_sum_is_exact_mod_2k(bits):
    rng = random.Random(bits)
    dom = md.UIntDomain(bits, 200)
    keys = [rng.randbytes(32) for _ in range(5)]
    signs = [1, -1, 1, -1, -1]
    acc = dom.accumulator()
    for k, s in zip(keys, signs):
        dom.accumulate(acc, k, s)
    expected = [0] * 200
    for k, s in zip(keys, signs):
        raw = md.keystream(k).update(bytes(8 * 200))
        vals = [int.from_bytes(raw[8 * i:8 * i + 8], "little") % 2**bits for i in range(200)]
        expected = [(e + s * v) % 2**bits for e, v in zip(expected, vals)]
    assert dom.finish(acc).tolist() == expected


def test_big_domain_lazy_sum_is_exact_mod_n():
    rng = random.Random(9)
    n = (2**521 - 1) * (2**127 - 1)
    dom = md.BigDomain(n, 6)
    keys = [rng.randbytes(32) for _ in range(4)]
    acc = dom.accumulator()
    expected = [0] * 6
    for i, k in enumerate(keys):
        s = 1 if i % 2 else -1
        dom.accumulate(acc, k, s)
        expected = [(e + s * v) % n for e, v in zip(expected, dom.expand(k))]
    assert dom.finish(acc) == expected


def test_accumulator_refuses_more_terms_than_it_can_hold(monkeypatch):
    monkeypatch.setattr(md, "MAX_TERMS", 2)
    dom = md.PrimeDomain(BFV_T, 4)
    acc = dom.accumulator()
    dom.accumulate(acc, bytes(32))
    dom.accumulate(acc, bytes(31) + b"\x01")
    with pytest.raises(ParameterError, match="at most 2 masks"):
        dom.accumulate(acc, bytes(31) + b"\x02")


# ------------------------------------------------------------------------------------------ Shamir
def _naive_reconstruct(pts):
    p = shamir.PRIME
    s = 0
    for i, (xi, yi) in enumerate(pts):
        num = den = 1
        for j, (xj, _) in enumerate(pts):
            if i != j:
                num, den = num * xj % p, den * (xj - xi) % p
        s = (s + yi * num * pow(den, -1, p)) % p
    return s


@pytest.mark.parametrize("t,holders", [(1, 1), (2, 3), (18, 29), (37, 67), (40, 41)])
def test_shamir_fast_paths_match_the_textbook_formulas(t, holders):
    rng = random.Random(t * 1000 + holders)
    xs = rng.sample(range(1, 2**31), holders)
    secret = rng.randrange(2**256)
    sh = shamir.split(secret, xs, t)
    sub = sorted(rng.sample(xs, t))
    assert shamir.reconstruct({x: sh[x] for x in sub}, t) == secret
    assert _naive_reconstruct([(x, sh[x]) for x in sub]) == secret
    # the t-1 other coefficients are unknown, but any t points must lie on one degree-(t-1) polynomial:
    # the textbook interpolation from another subset gives the same secret
    sub2 = sorted(rng.sample(xs, t))
    assert _naive_reconstruct([(x, sh[x]) for x in sub2]) == secret


# ------------------------------------------------------------------------------------------ SecAgg+ parameters
def test_hypergeometric_tail_matches_scipy():
    for pop, marked, draws, m in [(99, 30, 66, 31), (99, 5, 28, 5), (999, 300, 310, 134), (99, 29, 12, 0)]:
        assert float(_tail(pop, marked, draws, m)) == pytest.approx(hypergeom.sf(m - 1, pop, marked, draws),
                                                                    rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("dropout,expected", [(0.0, (12, 10)), (0.1, (28, 18)), (0.3, (66, 37))])
def test_parameters_for_100_clients(dropout, expected):
    p = mk.secagg_plus_parameters(100, dropout=dropout, corrupt=0.05)
    assert (p.neighbors, p.threshold) == expected
    assert min(p.sigma_secrets, p.sigma_connected) >= 40 and p.eta >= 20
    assert p.holders / 2 < p.threshold <= p.holders
    # minimal: no smaller even degree meets the same targets with any threshold
    k = p.neighbors - 2
    for t in range((k + 1) // 2 + 1, k + 2):
        s1, s2, e = graph_failure_bits(100, k, t, dropout, 0.05)
        assert min(s1, s2) < 40 or e < 20


def _simulate_graph(n, k, t, drop, corrupt, trials, seed):
    """Failures of the three conditions on the real neighbourhood() graph with random dropped/corrupt sets."""
    rng = random.Random(seed)
    fails = {"secrets": 0, "connected": 0, "finish": 0}
    ids = list(range(1, n + 1))
    for trial in range(trials):
        g = mk.neighbourhood(f"mc-{seed}-{trial}", ids, k)
        bad = rng.sample(ids, int(drop * n) + int(corrupt * n))
        dropped, corrupt_set = set(bad[:int(drop * n)]), set(bad[int(drop * n):])
        if any(len(corrupt_set & set(g[u])) >= 2 * t - k - 1 for u in ids if u not in corrupt_set):
            fails["secrets"] += 1
        good = [u for u in ids if u not in dropped and u not in corrupt_set]
        seen, stack = {good[0]}, [good[0]]
        while stack:
            for v in g[stack.pop()]:
                if v in good and v not in seen:
                    seen.add(v)
                    stack.append(v)
        fails["connected"] += len(seen) != len(good)
        if any(len([h for h in g[u] + [u] if h not in dropped]) < t for u in ids):
            fails["finish"] += 1
    return fails


def test_parameters_hold_on_the_sampled_graph():
    # bounds <= 2**-40 / 2**-20: 60 sampled rounds must show no failure at all
    p = mk.secagg_plus_parameters(60, dropout=0.2, corrupt=0.05)
    assert p.neighbors is not None and p.neighbors < 58
    assert _simulate_graph(60, p.neighbors, p.threshold, 0.2, 0.05, 60, seed=1) == \
        {"secrets": 0, "connected": 0, "finish": 0}


def test_a_much_smaller_graph_fails_on_the_sampled_graph():
    # a third of the degree: the union bound P_3 is ~0.3 and a single dropped client alone fails w.p. 0.014
    # (exact hypergeometric), so seeded sampled rounds must abort sometimes and at most at the bound's rate
    p = mk.secagg_plus_parameters(60, dropout=0.2, corrupt=0.05)
    k = 2 * (p.neighbors // 6)
    t = k // 2 + 1
    bound = 2.0 ** -graph_failure_bits(60, k, t, 0.2, 0.05)[2]
    assert 0.1 < bound < 0.5 and float(_tail(59, 11, k, k + 1 - t)) > 0.01
    trials = 200
    fails = _simulate_graph(60, k, t, 0.2, 0.05, trials, seed=2)["finish"]
    assert 0 < fails <= trials * bound


def test_a_round_with_the_derived_parameters_sums_exactly_under_dropouts():
    n = 24
    p = mk.secagg_plus_parameters(n, dropout=0.25, corrupt=0.05)
    rng = np.random.default_rng(3)
    ups = {i: rng.uniform(-1, 1, 50) for i in range(1, n + 1)}
    drops = [2, 5, 11, 17, 23, 24]  # 25 %
    res = mk.simulate_round(ups, max_value=1.0, precision_bits=20, round_id="derived", neighbors=p.neighbors,
                            threshold=p.threshold, dropouts={"masked_input": drops})
    assert res.survivors == [i for i in ups if i not in drops]
    expected = sum(ups[i] for i in res.survivors)
    # each value is rounded to the 2**-20 grid: |error| <= survivors * 2**-21
    assert np.max(np.abs(res.value - expected)) <= len(res.survivors) * 2.0**-21


def test_parameter_errors_say_what_to_change():
    with pytest.raises(ParameterError, match="n must be an int"):
        mk.secagg_plus_parameters(2, dropout=0.1)
    with pytest.raises(ParameterError, match="dropout must be a fraction"):
        mk.secagg_plus_parameters(100, dropout=0.5)
    with pytest.raises(ParameterError, match="sigma must be"):
        mk.secagg_plus_parameters(100, dropout=0.1, sigma=0)
    with pytest.raises(ParameterError, match="lower the dropout or corrupt fraction"):
        mk.secagg_plus_parameters(10, dropout=0.4, corrupt=0.4)
    assert mk.secagg_plus_parameters(10, dropout=0.1, corrupt=0.1).threshold <= 10  # following the advice works


def test_sparse_graph_substituted_keys_are_refused_by_exactly_the_neighbours():
    # SecAgg+: a client checks (and uses) only its holders' advertisements; a key the server substitutes
    # for client 5 is refused by each of 5's neighbours, and the other clients never use it
    ids = list(range(1, 10))
    setup = mk.RoundSetup.create("mitm-sparse", ids, neighbors=4)
    idents = {i: mk.new_identity() for i in ids}
    pubs = {i: mk.identity_public_key(k) for i, k in idents.items()}
    clients = {i: mk.MaskedClient(None, setup, i, max_value=1.0, identity=idents[i], peer_identities=pubs)
               for i in ids}
    adverts = {i: c.advertise_keys() for i, c in clients.items()}
    adverts[5] = mk.MaskedClient(None, setup, 5, max_value=1.0, identity=mk.new_identity()).advertise_keys()
    keys = mk.MaskedServer(None, setup, max_value=1.0).receive_keys(list(adverts.values()))
    refused = set()
    for i in ids:
        if i == 5:
            continue
        try:
            clients[i].share_keys(keys)
        except InvalidCiphertextError as e:
            assert "client 5" in str(e) and "not signed by its registered identity" in str(e)
            refused.add(i)
        else:
            assert 5 not in clients[i]._keys  # never stored, so never used
    assert refused == set(setup.graph[5])
