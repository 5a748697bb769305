"""Committee (threshold) decryption: every scheme against plaintext sums, thresholds, bindings, leaks."""
from __future__ import annotations

import math

import numpy as np
import pytest

import he_ml
from he_ml import native
from he_ml.aggregation import (
    Committee,
    GradientAggregator,
    KeyShare,
    PartialDecryption,
    combine,
    insecure_tiny_committee,
    partial_decrypt,
)
from he_ml.aggregation import committee_lattice as cl
from he_ml.errors import ContextMismatchError, InvalidCiphertextError, ParameterError, SecretKeyMissingError

SCHEMES = ["paillier", "bfv", "ckks"]


def _make(scheme: str) -> Committee:
    # Paillier: the named insecure 1024-bit test key (full 3072-bit runs are marked slow below).
    return insecure_tiny_committee(scheme, 5, 3) if scheme == "paillier" else Committee.generate(scheme, 5, 3)


@pytest.fixture(scope="module", params=SCHEMES)
def setup(request):
    scheme = request.param
    committee = _make(scheme)
    pub = committee.public_context()
    agg = GradientAggregator(pub)
    rng = np.random.default_rng(9)
    grads = [rng.uniform(-1, 1, size=(3, 7)) for _ in range(8)]
    total = agg.sum([agg.encrypt(g) for g in grads])
    return scheme, committee, pub, grads, total


def _tol(scheme: str, committee: Committee, clients: int) -> float:
    """Error bound on the decrypted sum, derived from the parameters.

    paillier: each client's value is rounded to 2^-24 (error <= 2^-25), sums exactly.
    bfv: rounded to 2^-20 (error <= 2^-21 per client), sums exactly mod t.
    ckks: the planner's absolute precision after smudging (Hoeffding, failure <= 2^-40),
    which already includes the worst-case ciphertext noise, plus per-client encoding rounding
    (1/2 per coefficient at scale 2^scale_bits, n coefficients: n / 2^(scale_bits+1)).
    """
    if scheme == "paillier":
        return clients * 2.0 ** -25
    if scheme == "bfv":
        return clients * 2.0 ** -21
    plan = committee.plan
    return 2.0 ** -plan["precision_bits"] + clients * plan["poly_modulus_degree"] * 2.0 ** -(plan["scale_bits"] + 1)


def test_threshold_met_matches_plaintext_sum(setup):
    scheme, committee, pub, grads, total = setup
    parts = [partial_decrypt(s, total) for s in committee.shares[:3]]
    out = combine(pub, total, parts)
    assert out.shape == (3, 7)
    assert np.max(np.abs(out - sum(grads))) <= _tol(scheme, committee, len(grads))


def test_any_threshold_subset_and_more_parts(setup):
    scheme, committee, pub, grads, total = setup
    sh = committee.shares
    for idx in ([1, 3, 4], [0, 2, 4], [0, 1, 2, 3, 4]):
        out = combine(pub, total, [partial_decrypt(sh[i], total) for i in idx])
        assert np.max(np.abs(out - sum(grads))) <= _tol(scheme, committee, len(grads))


def test_below_threshold_and_duplicates(setup):
    scheme, committee, pub, grads, total = setup
    sh = committee.shares
    p = [partial_decrypt(s, total) for s in sh[:3]]
    with pytest.raises(SecretKeyMissingError, match="3 distinct members"):
        combine(pub, total, p[:2])
    with pytest.raises(SecretKeyMissingError):
        combine(pub, total, [p[0], p[0], p[1], p[1].to_bytes()])  # same member twice counts once
    with pytest.raises(SecretKeyMissingError):
        combine(pub, total, [])
    out = combine(pub, total, [p[0], p[0], p[1], p[2]])  # a duplicate does not hurt a full set
    assert np.max(np.abs(out - sum(grads))) <= _tol(scheme, committee, len(grads))


def test_count_averages(setup):
    scheme, committee, pub, grads, total = setup
    parts = [partial_decrypt(s, total) for s in committee.shares[2:]]
    mean = combine(pub, total, parts, count=len(grads))
    assert np.max(np.abs(mean - sum(grads) / len(grads))) <= _tol(scheme, committee, len(grads)) / len(grads)
    with pytest.raises(ParameterError, match="count"):
        combine(pub, total, parts, count=0)


def test_parts_for_another_total_are_refused(setup):
    scheme, committee, pub, grads, total = setup
    agg = GradientAggregator(pub)
    other = agg.sum([agg.encrypt(g) for g in grads[:3]])
    parts = [partial_decrypt(s, other) for s in committee.shares[:2]] + [partial_decrypt(committee.shares[2], total)]
    with pytest.raises(ContextMismatchError, match="another total"):
        combine(pub, total, parts)
    # following the advice (partials of exactly these bytes) works
    out = combine(pub, other, [partial_decrypt(s, other) for s in committee.shares[:3]])
    assert np.max(np.abs(out - sum(grads[:3]))) <= _tol(scheme, committee, 3)


def test_foreign_committee_is_refused(setup):
    scheme, committee, pub, grads, total = setup
    other = _make(scheme)
    with pytest.raises(ContextMismatchError, match="committee"):
        partial_decrypt(other.shares[0], total)
    agg2 = GradientAggregator(other.public_context())
    total2 = agg2.sum([agg2.encrypt(g) for g in grads[:2]])
    foreign = partial_decrypt(other.shares[0], total2)
    own = [partial_decrypt(s, total) for s in committee.shares[1:3]]
    with pytest.raises(ContextMismatchError, match="belongs to committee"):
        combine(pub, total, own + [foreign])


def test_serialization_round_trips(setup):
    scheme, committee, pub, grads, total = setup
    blob = pub.to_bytes()
    # Paillier: the test-sized 1024-bit key of insecure_tiny_committee, so the caller opts in;
    # the lattice committees are full-size and must load without the opt-in.
    pub2 = he_ml.load_context(blob, allow_insecure=scheme == "paillier")
    assert not pub2.has_secret_key and pub2.fingerprint == pub.fingerprint
    client = GradientAggregator(pub2)
    total2 = client.sum([client.encrypt({"w": g, "b": g[0]}) for g in grads[:4]])
    shares = [KeyShare.from_bytes(s.to_bytes()) for s in committee.shares]
    assert [s.member for s in shares] == [1, 2, 3, 4, 5]
    parts = [PartialDecryption.from_bytes(partial_decrypt(s, total2).to_bytes()) for s in shares[1:4]]
    out = combine(pub2, total2, [p.to_bytes() for p in parts])
    assert set(out) == {"w", "b"}
    assert np.max(np.abs(out["w"] - sum(grads[:4]))) <= _tol(scheme, committee, 4)
    assert np.max(np.abs(out["b"] - sum(g[0] for g in grads[:4]))) <= _tol(scheme, committee, 4)


def test_public_context_cannot_decrypt(setup):
    scheme, committee, pub, grads, total = setup
    with pytest.raises(SecretKeyMissingError):
        GradientAggregator(pub).decrypt(total)


def test_share_secrets_never_in_public_bytes(setup):
    scheme, committee, pub, grads, total = setup
    public = [pub.to_bytes(), total] + [partial_decrypt(s, total).to_bytes() for s in committee.shares]
    for share in committee.shares:
        secrets_ = share.secret_bytes()
        assert secrets_ and all(len(x) >= 16 for x in secrets_)
        for sec in secrets_:
            assert all(sec not in blob for blob in public)
        assert all(sec in share.to_bytes() for sec in secrets_)  # the search itself can find them


def test_wrong_partial_is_detected(setup):
    scheme, committee, pub, grads, total = setup
    parts = [partial_decrypt(s, total) for s in committee.shares[:4]]
    bad = parts[0]
    if scheme == "paillier":
        bad.chunks[0] = bad.chunks[0] * 4 % (int(pub._n) ** 2)
        with pytest.raises(InvalidCiphertextError):
            combine(pub, total, parts[:3])
    else:
        A = next(iter(bad.chunks[0]))
        bad.chunks[0][A] = bad.chunks[0][A].copy()
        bad.chunks[0][A][0, 0] ^= np.uint64(1)
        # member 1 and another holder of the same sub-key disagree
        with pytest.raises(InvalidCiphertextError, match="disagree"):
            combine(pub, total, parts)


@pytest.mark.parametrize("members,threshold", [(5, 0), (5, 6), (0, 1), (3, -1)])
def test_impossible_threshold(members, threshold):
    with pytest.raises(ParameterError, match="threshold|members"):
        Committee.generate("bfv", members=members, threshold=threshold)


def test_bad_scheme_and_too_many_subkeys():
    with pytest.raises(ParameterError, match="scheme"):
        Committee.generate("rsa", 3, 2)
    with pytest.raises(ParameterError, match="sub-keys"):
        Committee.generate("bfv", members=20, threshold=10)  # C(20, 9) = 167960 sub-keys


def test_malformed_share_and_part_bytes(setup):
    scheme, committee, pub, grads, total = setup
    b = committee.shares[0].to_bytes()
    for bad in (b[:-1], b[:40], b"HEMC" + bytes(60), b[:30] + bytes([b[30] ^ 1]) + b[31:]):
        with pytest.raises(InvalidCiphertextError):
            KeyShare.from_bytes(bad)
    p = partial_decrypt(committee.shares[0], total).to_bytes()
    with pytest.raises(InvalidCiphertextError):
        PartialDecryption.from_bytes(p[:-3])
    with pytest.raises(InvalidCiphertextError):
        PartialDecryption.from_bytes(b)  # a share is not a partial


# ---------------------------------------------------------------------- lattice specifics
@pytest.fixture(scope="module")
def bfv_committee():
    return Committee.generate("bfv", 5, 3)


def test_smudging_noise_statistics(bfv_committee):
    """e_A = h_A - c1 r_A has the stated distribution: uniform on [-2^b, 2^b).

    Variance 2^(2b)/3 (exactly ((2^(b+1))^2 - 1)/12). With n = 8192 i.i.d. samples the
    sample variance has relative standard deviation sqrt((9/5 - 1)/n) = 0.0099 (kurtosis of
    a uniform is 9/5), so 6 standard deviations = 5.9 %; the mean's standard deviation is
    sigma/sqrt(n), checked at 6 of them.
    """
    from he_ml.schemes.seal_rns import ciphertext_to_rns

    pub = bfv_committee.public_context()
    agg = GradientAggregator(pub)
    total = agg.sum([agg.encrypt(np.full(10, 0.5)) for _ in range(3)])
    share = bfv_committee.shares[0]
    part = partial_decrypt(share, total)
    ct = GradientAggregator(pub)._parse(total).vector.chunks[0]
    c = ciphertext_to_rns(ct)
    primes = share._payload["primes"]
    b = share._payload["bits"]
    assert b == bfv_committee.plan["smudging_bits"]
    n = c.shape[2]
    Q = math.prod(primes)
    sigma = math.sqrt(((2.0 ** (b + 1)) ** 2 - 1) / 12)
    for A, (r, _key) in share._payload["subkeys"].items():
        prod = native.intt_rns(native.pointwise_mul_rns(native.ntt_rns(c[1], primes), r, primes), primes)
        e_rns = cl.addmod(part.chunks[0][A], cl.negmod(prod, primes), primes)
        q0, q1 = primes
        inv = pow(q0, -1, q1)
        vals = []
        for x0, x1 in zip(e_rns[0].tolist(), e_rns[1].tolist()):  # CRT to Z_Q, centred
            v = x0 + q0 * ((x1 - x0) * inv % q1)
            vals.append(v - Q if v > Q // 2 else v)
        assert min(vals) >= -(2 ** b) and max(vals) < 2 ** b
        arr = np.array(vals, dtype=np.float64)
        assert abs(arr.mean()) <= 6 * sigma / math.sqrt(n)
        assert abs(arr.var() / sigma ** 2 - 1) <= 6 * math.sqrt(0.8 / n)
    # deterministic per (sub-key, total): asking again gives no fresh sample to average
    again = partial_decrypt(share, total)
    assert all(np.array_equal(part.chunks[0][A], again.chunks[0][A]) for A in part.chunks[0])


def test_ckks_precision_after_smudging_100_clients():
    """Contract: >= 10 bits absolute precision on sums of 100 updates with |g| <= 1."""
    committee = Committee.generate("ckks", 5, 3, max_clients=100)
    assert committee.plan["precision_bits"] >= 10
    pub = committee.public_context()
    agg = GradientAggregator(pub, max_value=1.0)
    rng = np.random.default_rng(3)
    grads = rng.uniform(-1, 1, size=(100, 4096))
    total = agg.sum(agg.encrypt(g) for g in grads)
    out = combine(pub, total, [partial_decrypt(s, total) for s in committee.shares[2:]])
    err = np.max(np.abs(out - grads.sum(axis=0)))
    assert err <= 2.0 ** -10
    assert err <= _tol("ckks", committee, 100)


def test_plan_accounts_for_smudging():
    p = cl.plan_lattice("bfv", 5, 3, max_clients=100)
    # b = ceil(log2(n * B_ct)) + 39 with B_ct = K (E + 1 + (2E + 1) n M)
    b_ct = 100 * (22 + 43 * 8192 * 5)
    assert p.smudging_bits == math.ceil(math.log2(8192 * b_ct)) + 39
    assert p.total_noise_bits + 1 <= 119 - 1 - p.plain_modulus_bits - 1 + 1e-9 + p.margin_bits
    with pytest.raises(ParameterError, match="no 128-bit parameter set"):
        cl.plan_lattice("bfv", 5, 3, max_clients=1 << 20, precision_bits=40)


def test_n_of_n_and_one_of_n():
    for members, threshold in ((3, 3), (3, 1)):
        committee = Committee.generate("bfv", members, threshold)
        pub = committee.public_context()
        agg = GradientAggregator(pub)
        total = agg.sum([agg.encrypt(np.array([0.25, -0.5])) for _ in range(2)])
        out = combine(pub, total, [partial_decrypt(s, total) for s in committee.shares[:threshold]])
        assert np.max(np.abs(out - np.array([0.5, -1.0]))) <= 2 * 2.0 ** -21
        if threshold > 1:
            with pytest.raises(SecretKeyMissingError):
                combine(pub, total, [partial_decrypt(s, total) for s in committee.shares[:threshold - 1]])


@pytest.mark.slow
def test_paillier_full_size_committee():
    committee = Committee.generate("paillier", 5, 3)
    assert committee.public_context().key_bits == 3072
    pub = committee.public_context()
    agg = GradientAggregator(pub)
    grads = [np.linspace(-1, 1, 200) * (i + 1) / 10 for i in range(8)]
    total = agg.sum([agg.encrypt(g) for g in grads])
    out = combine(pub, total, [partial_decrypt(s, total) for s in committee.shares[1:4]], count=8)
    assert np.max(np.abs(out - sum(grads) / 8)) <= 2.0 ** -25


def test_lattice_public_context_records_committee_shape(bfv_committee):
    pub = he_ml.load_context(bfv_committee.public_context().to_bytes())
    assert pub._extra["committee"] == [5, 3]
    agg = GradientAggregator(pub)
    total = agg.sum([agg.encrypt(np.array([0.5, 0.25]))])
    parts = [partial_decrypt(s, total) for s in bfv_committee.shares[:3]]
    for p in parts:
        p.threshold = 2  # a part lying about the committee's shape
    with pytest.raises(ContextMismatchError, match="records"):
        combine(pub, total, parts)


def test_paillier_extra_part_cross_checks():
    committee = insecure_tiny_committee("paillier", 5, 3)
    pub = committee.public_context()
    agg = GradientAggregator(pub)
    total = agg.sum([agg.encrypt(np.array([0.5, -0.25, 1.0])) for _ in range(3)])
    parts = [partial_decrypt(s, total) for s in committee.shares[:4]]
    out = combine(pub, total, parts)
    assert np.max(np.abs(out - np.array([1.5, -0.75, 3.0]))) <= 3 * 2.0 ** -25
    # member 4's part is not in the first set {1,2,3}; it is in the cross-check set {2,3,4}
    n2 = int(pub._n) ** 2
    parts[3].chunks[0] = parts[3].chunks[0] * parts[3].chunks[0] % n2
    with pytest.raises(InvalidCiphertextError):
        combine(pub, total, parts)


@pytest.mark.parametrize("bad", [dict(max_value=0.0), dict(max_value=float("inf")), dict(max_value=float("nan")),
                                 dict(max_clients=0), dict(max_clients=2.5)])
def test_plan_lattice_refuses_bad_sizes_with_parameter_error(bad):
    # were ValueError (math domain) or OverflowError (ceil of inf) from inside the planner
    with pytest.raises(ParameterError, match="max_value|max_clients"):
        cl.plan_lattice("ckks", 3, 2, **bad)
    assert cl.plan_lattice("bfv", 3, 2, max_clients=np.int64(100), max_value=np.float32(1.0)).max_clients == 100
