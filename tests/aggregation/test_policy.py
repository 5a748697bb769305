"""The key holder's DecryptionPolicy: the attacks of issue 9, each refused or useless.

Attacks (a server that deviates): forward ONE client's blob as the total with ``count`` edited
and the checksum recomputed; replay the same total (or a re-randomized copy) 200 times; edit
the count; forge, repeat or reuse receipts of another round. Tolerances: BFV/Paillier sums are
exact up to the fixed-point quantization (<= k * 2**-(p+1) for k clients at p fractional bits).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from he_ml.aggregation import (
    DPConfig,
    GradientAggregator,
    aggregation_context,
    identity_public_key,
    new_identity,
)
from he_ml.aggregation import masking as mk
from he_ml.aggregation.flooding import release_plan
from he_ml.aggregation.policy import DecryptionPolicy, PolicyClient, receipt_info
from he_ml.errors import ContextMismatchError, InvalidCiphertextError, ParameterError, SecretKeyMissingError
from he_ml.schemes._format import Kind, pack_blob, unpack_blob

P = 20
N = 5


@pytest.fixture(scope="module")
def contexts():
    return {s: aggregation_context(s, max_clients=8, max_value=1.0, precision_bits=P, key_bits=2048)
            for s in ("paillier", "bfv", "ckks")}


@pytest.fixture(scope="module")
def identities():
    return {i: new_identity() for i in range(1, N + 1)}


def make_policy(ctx, identities, **kw):
    return DecryptionPolicy(ctx, min_clients=3, max_value=1.0, precision_bits=P,
                            identities={i: identity_public_key(k) for i, k in identities.items()}, **kw)


def upload(ctx, policy, identities, round_id, seed=0, d=200):
    rng = np.random.default_rng(seed)
    ups = {i: rng.uniform(-1, 1, d) for i in identities}
    out = {i: PolicyClient(ctx.public_context(), i, k, key_holder_key=policy.public_key, max_value=1.0,
                           precision_bits=P).encrypt(ups[i], round_id) for i, k in identities.items()}
    return ups, {i: b for i, (b, _) in out.items()}, {i: r for i, (_, r) in out.items()}


def with_count(blob: bytes, count: int) -> bytes:
    """The attacker's edit: same payload, count field changed, container checksum recomputed.

    Every public field that must agree with the count is edited too (Paillier's ``terms``, which
    the aggregator checks against ``count``), so the forgery reaches the policy's own check."""
    b = unpack_blob(blob)
    meta = dict(b.metadata, count=count)
    if isinstance(meta.get("meta"), dict) and "terms" in meta["meta"]:
        meta["meta"] = dict(meta["meta"], terms=count)
    return pack_blob(Kind.AGGREGATE, b.scheme, b.fingerprint, meta, b.sections)


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_round_masked_total_decrypts_to_the_plaintext_mean(contexts, identities, scheme):
    ctx = contexts[scheme]
    policy = make_policy(ctx, identities)
    ups, blobs, receipts = upload(ctx, policy, identities, "r1")
    total = GradientAggregator(ctx.public_context()).sum(blobs.values())
    rel = policy.decrypt(total, round_id="r1", receipts=list(receipts.values()), details=True)
    np.testing.assert_allclose(rel.value, sum(ups.values()) / N, rtol=0, atol=2.0 ** -(P + 1))
    assert rel.clients == [1, 2, 3, 4, 5] and rel.smudging is None
    assert "r1" in policy.used_rounds


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_attack_single_blob_with_count_edited_is_refused_or_useless(contexts, identities, scheme):
    ctx = contexts[scheme]
    policy = make_policy(ctx, identities)
    ups, blobs, receipts = upload(ctx, policy, identities, "one")
    forged = with_count(blobs[1], N)  # one client's blob posing as the total of all five
    if scheme == "paillier":
        with pytest.raises(InvalidCiphertextError, match="does not unmask"):
            policy.decrypt(forged, round_id="one", receipts=list(receipts.values()))
    else:  # BFV decrypts anything: the released value is uniformly random, unrelated to client 1
        out = policy.decrypt(forged, round_id="one", receipts=list(receipts.values()), average=False)
        assert np.corrcoef(out, ups[1])[0, 1] < 0.3
        assert np.median(np.abs(out - ups[1])) > 100 * 2.0 ** -P
    # with only client 1's receipt (honest count): fewer than min_clients -> refused
    policy2 = make_policy(ctx, identities)
    with pytest.raises(SecretKeyMissingError, match="fewer than min_clients=3"):
        policy2.decrypt(blobs[1], round_id="one", receipts=[receipts[1]])


def test_attack_count_edited_is_refused(contexts, identities):
    ctx = contexts["paillier"]
    policy = make_policy(ctx, identities)
    _, blobs, receipts = upload(ctx, policy, identities, "cnt")
    total = GradientAggregator(ctx.public_context()).sum(list(blobs.values())[:4])
    # the server drops client 5's blob but keeps its receipt, editing the count to match
    with pytest.raises(InvalidCiphertextError, match="does not unmask"):
        policy.decrypt(with_count(total, N), round_id="cnt", receipts=list(receipts.values()))
    policy = make_policy(ctx, identities)
    with pytest.raises(InvalidCiphertextError, match="count field says 5 but 4"):
        policy.decrypt(with_count(total, N), round_id="cnt", receipts=list(receipts.values())[:4])


def test_attack_replay_200_times_is_refused_after_the_first(contexts, identities):
    ctx = contexts["paillier"]
    policy = make_policy(ctx, identities)
    _, blobs, receipts = upload(ctx, policy, identities, 7)
    total = GradientAggregator(ctx.public_context()).sum(blobs.values())
    policy.decrypt(total, round_id=7, receipts=list(receipts.values()))
    refused = 0
    for i in range(199):
        with pytest.raises(SecretKeyMissingError, match="already decrypted"):
            policy.decrypt(total, round_id=7, receipts=list(receipts.values()))
        refused += 1
    assert refused == 199
    # under a fresh round id the old receipts are of another round ...
    with pytest.raises(ContextMismatchError, match="another round"):
        policy.decrypt(total, round_id=8, receipts=list(receipts.values()))
    # ... and with fresh receipts of round 8 the old total (round-7 masks) does not unmask
    _, _, receipts8 = upload(ctx, policy, identities, 8, seed=1)
    with pytest.raises(InvalidCiphertextError, match="does not unmask"):
        policy.decrypt(total, round_id=8, receipts=list(receipts8.values()))


def test_forged_repeated_and_missing_receipts(contexts, identities, tmp_path):
    ctx = contexts["bfv"]
    state = tmp_path / "rounds.txt"
    policy = make_policy(ctx, identities, state_path=str(state))
    _, blobs, receipts = upload(ctx, policy, identities, "f")
    total = GradientAggregator(ctx.public_context()).sum(blobs.values())
    outsider = PolicyClient(ctx.public_context(), 9, new_identity(), key_holder_key=policy.public_key,
                            max_value=1.0)
    _, fake = outsider.encrypt(np.zeros(200), "f")
    with pytest.raises(InvalidCiphertextError, match="not signed by a registered"):
        policy.decrypt(total, round_id="f", receipts=list(receipts.values())[:4] + [fake])
    with pytest.raises(InvalidCiphertextError, match="appears twice"):
        policy.decrypt(total, round_id="f", receipts=[receipts[1]] * 2 + list(receipts.values())[1:])
    with pytest.raises(SecretKeyMissingError, match="exactly one"):
        policy.decrypt(total, round_id="f")
    assert receipt_info(receipts[2])["client"] == 2
    policy.decrypt(total, round_id="f", receipts=list(receipts.values()))
    # a restarted key holder reads the used round ids back
    again = make_policy(ctx, identities, state_path=str(state))
    with pytest.raises(SecretKeyMissingError, match="already decrypted"):
        again.decrypt(total, round_id="f", receipts=list(receipts.values()))
    with pytest.raises(ParameterError, match="min_clients"):
        DecryptionPolicy(ctx, min_clients=0, identities={})
    with pytest.raises(ParameterError, match="needs an he_ml context"):
        DecryptionPolicy("ctx", min_clients=1, identities={})


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_public_policy_admits_for_a_committee_and_cannot_decrypt(contexts, identities, scheme):
    """A committee member's policy holds only the public context: it checks and unmasks, then the
    (here: single) secret key decrypts the admitted total. With he_ml.aggregation.Committee the
    admitted total goes to partial_decrypt / combine instead (see the guarded test below)."""
    ctx = contexts[scheme]
    member = make_policy(ctx.public_context(), identities)
    ups, blobs, receipts = upload(ctx, member, identities, "adm")
    total = GradientAggregator(ctx.public_context()).sum(blobs.values())
    with pytest.raises(SecretKeyMissingError, match="can admit"):
        member.decrypt(total, round_id="adm", receipts=list(receipts.values()))
    admitted, clients = member.admit(total, round_id="adm", receipts=list(receipts.values()))
    assert clients == [1, 2, 3, 4, 5]
    value = GradientAggregator(ctx, precision_bits=P).decrypt(admitted)
    np.testing.assert_allclose(value, sum(ups.values()), rtol=0, atol=N * 2.0 ** -(P + 1))
    with pytest.raises(SecretKeyMissingError, match="already decrypted"):
        member.admit(total, round_id="adm", receipts=list(receipts.values()))


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_masked_round_over_a_committee(identities, scheme):
    agg_mod = pytest.importorskip("he_ml.aggregation")
    if not hasattr(agg_mod, "Committee"):
        pytest.skip("he_ml.aggregation.Committee is built on another branch")
    committee = agg_mod.Committee.generate(scheme, members=3, threshold=2, max_clients=8, max_value=1.0)
    pub = committee.public_context()
    member = DecryptionPolicy(pub, min_clients=3, identities={i: identity_public_key(k) for i, k in identities.items()},
                              max_value=1.0)
    rng = np.random.default_rng(9)
    ups = {i: rng.uniform(-1, 1, 50) for i in identities}
    res = mk.simulate_round(ups, context=pub, max_value=1.0, round_id="cm", identities=identities,
                            unmasker=member.unmasker, dropouts={"masked_input": [3]})
    admitted, clients = member.admit(res.total, round_id="cm", evidence=res.evidence)
    parts = [agg_mod.partial_decrypt(s, admitted) for s in committee.shares[:2]]
    value = agg_mod.combine(pub, admitted, parts)
    expected = sum(ups[i] for i in clients)
    # committee decryption tolerance: the fixed-point quantization of each client (default
    # precision of the committee's encoding is at least 20 bits) -> k * 2**-21
    np.testing.assert_allclose(np.asarray(value), expected, rtol=0, atol=len(clients) * 2.0**-20)


def test_ckks_needs_the_blobs_and_smudges_releases(contexts, identities):
    ctx = contexts["ckks"]
    policy = make_policy(ctx, identities)
    d = 6000
    ups, blobs, receipts = upload(ctx, policy, identities, "c", d=d)
    total = GradientAggregator(ctx.public_context()).sum(blobs.values())
    with pytest.raises(SecretKeyMissingError, match="pass blobs"):
        policy.decrypt(total, round_id="c", receipts=list(receipts.values()))
    with pytest.raises(InvalidCiphertextError, match="do not match the receipts"):
        policy.decrypt(None, round_id="c", receipts=list(receipts.values()), blobs=[blobs[1]] * N)
    rel = policy.decrypt(None, round_id="c", receipts=list(receipts.values()), blobs=list(blobs.values()),
                         average=False, details=True)
    plan = release_plan(ctx, N)
    assert rel.smudging == plan and plan.count == N and plan.security_bits == 40
    err = rel.value - sum(ups.values())
    # released error = smudging noise (uniform coefficients on [-2^b, 2^b), per-slot std
    # plan.slot_std, slots uncorrelated -- module docstring) + CKKS noise below 2^-60 of it:
    # the sample variance of d values has relative std ~sqrt(2/(d-1)) (a uniform's kurtosis only
    # lowers it after the n-term sum); the mean has std slot_std / sqrt(d); 6-sigma bounds.
    s2 = plan.slot_std ** 2
    assert abs(np.var(err) / s2 - 1) < 6 * math.sqrt(2 / (d - 1))
    assert abs(np.mean(err)) < 6 * plan.slot_std / math.sqrt(d)
    assert np.max(np.abs(err)) <= plan.error_bound
    # the key holder's own (unreleased) decryption is not smudged: the fresh-noise error of N
    # encryptions is below 64 N n / 2**scale_bits, and the float64 decoding (an FFT of depth
    # log2 n = 13 over values |x| <= N) adds at most ~13 * N * 2**-52 -- 64 N 2**-52 bounds both.
    policy2 = make_policy(ctx, identities)
    own = policy2.decrypt(None, round_id="c", receipts=list(receipts.values()), blobs=list(blobs.values()),
                          average=False, release=False)
    bound = 64 * N * (ctx.poly_modulus_degree * 2.0 ** -ctx.scale_bits + 2.0 ** -52)
    assert np.max(np.abs(own - sum(ups.values()))) < bound


def test_distributed_dp_top_up_in_the_policy(contexts, identities):
    ctx = aggregation_context("bfv", max_clients=8, max_value=2.0, precision_bits=P)
    d = 8000
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=1.0, num_clients=8, resolution=2.0**-12)
    policy = DecryptionPolicy(ctx, min_clients=3, dp=cfg,
                              identities={i: identity_public_key(k) for i, k in identities.items()})
    out = {i: PolicyClient(ctx.public_context(), i, k, key_holder_key=policy.public_key, dp=cfg)
           .encrypt(np.zeros(d), "dp") for i, k in identities.items()}
    total = GradientAggregator(ctx.public_context()).sum(b for b, _ in out.values())
    rel = policy.decrypt(total, round_id="dp", receipts=[r for _, r in out.values()], average=False, details=True)
    assert rel.noise_fraction == pytest.approx(N / 8)
    target = 8 * cfg.client_variance_grid * cfg.resolution**2  # 5 shares + top-up of 3
    assert rel.dp_topup_variance == pytest.approx(3 * cfg.client_variance_grid * cfg.resolution**2)
    assert abs(np.var(rel.value) / target - 1) < 6 * math.sqrt(2 / d)


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_masked_round_evidence_through_the_policy(contexts, identities, scheme):
    ctx = contexts[scheme]
    policy = make_policy(ctx, identities)
    rng = np.random.default_rng(5)
    ups = {i: rng.uniform(-1, 1, 100) for i in identities}
    setup = mk.RoundSetup.create("m1", list(identities))
    pubs = {i: identity_public_key(k) for i, k in identities.items()}
    clients = {i: mk.MaskedClient(ctx.public_context(), setup, i, max_value=1.0, precision_bits=P,
                                  identity=identities[i], peer_identities=pubs, unmasker_key=policy.public_key)
               for i in identities}
    server = mk.MaskedServer(ctx.public_context(), setup, max_value=1.0, precision_bits=P)
    keys = server.receive_keys([c.advertise_keys() for c in clients.values()])
    bundles = server.receive_shares([c.share_keys(keys) for c in clients.values()])
    masked = {i: clients[i].masked_input(bundles[i], ups[i]) for i in (1, 2, 3, 4)}  # client 5 drops
    request = server.receive_masked_inputs(masked.values())
    res = server.receive_unmask([clients[i].unmask(request) for i in (1, 2, 3, 4)])
    mean = policy.decrypt(res.total, round_id="m1", evidence=res.evidence)
    np.testing.assert_allclose(mean, sum(ups[i] for i in (1, 2, 3, 4)) / 4, rtol=0, atol=2.0 ** -(P + 1))
    with pytest.raises(SecretKeyMissingError, match="already decrypted"):
        policy.decrypt(res.total, round_id="m1", evidence=res.evidence)


def test_evidence_needs_the_agreed_number_of_survivor_signatures(contexts, identities):
    ctx = contexts["bfv"]
    pubs = {i: identity_public_key(k) for i, k in identities.items()}
    strict = DecryptionPolicy(ctx, min_clients=3, identities=pubs, max_value=1.0, min_signers=5)
    ups = {i: np.full(4, 0.1) for i in identities}
    res = mk.simulate_round(ups, context=ctx.public_context(), max_value=1.0, round_id="sig", identities=identities,
                            unmasker=strict.unmasker, dropouts={"unmask": [5]})  # 4 survivors sign
    with pytest.raises(SecretKeyMissingError, match="only 4 survivors signed"):
        strict.decrypt(res.total, round_id="sig", evidence=res.evidence)
    with pytest.raises(ParameterError, match="min_signers"):
        DecryptionPolicy(ctx, min_clients=3, identities=pubs, min_signers=-1)
