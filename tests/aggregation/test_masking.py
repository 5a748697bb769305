"""Masked rounds (SecAgg / SecAgg+): sums against plaintext, dropouts at every stage, refusals.

Tolerances. HE-free and BFV backends quantize each value to ``round(x * 2**p)`` (error <= 2**-(p+1)
per value and client), so a sum of ``k`` updates is within ``k * 2**-(p+1)`` of the float sum;
Paillier quantizes the same way with its own ``precision_bits``. Masks are exact modular
arithmetic, so they add no error at all.
"""
from __future__ import annotations

import gmpy2
import numpy as np
import pytest

from he_ml.aggregation import GradientAggregator, aggregation_context
from he_ml.aggregation import masking as mk
from he_ml.aggregation import shamir
from he_ml.aggregation.dp import DPConfig
from he_ml.errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    UnsupportedOperationError,
)

P = 16  # precision bits used throughout


def updates(n, d=257, seed=0):
    rng = np.random.default_rng(seed)
    return {i: rng.uniform(-1, 1, d) for i in range(1, n + 1)}


def tol(k, p=P):
    return k * 2.0 ** -(p + 1) + 1e-12


# ------------------------------------------------------------------ Shamir
def test_shamir_field_is_the_smallest_prime_above_2_256():
    assert gmpy2.is_prime(shamir.PRIME, 50)
    assert gmpy2.next_prime(2**256) == shamir.PRIME


def test_shamir_any_threshold_subset_recovers_and_fewer_refuse():
    secret = int.from_bytes(bytes(range(32)), "big")
    xs = [3, 7, 11, 12, 40]
    sh = shamir.split(secret, xs, 3)
    for subset in ([3, 7, 11], [7, 12, 40], [3, 40, 11]):
        assert shamir.reconstruct({x: sh[x] for x in subset}, 3) == secret
    with pytest.raises(SecretKeyMissingError, match="needs 3 shares; got 2"):
        shamir.reconstruct({x: sh[x] for x in (3, 7)}, 3)
    # two shares of a threshold-3 sharing are consistent with every secret (perfect secrecy):
    # interpolating them with any third point (0, s') yields a valid degree-2 polynomial.
    wrong = shamir.reconstruct({3: sh[3], 7: sh[7], 11: (sh[11] + 1) % shamir.PRIME}, 3)
    assert wrong != secret
    with pytest.raises(ParameterError, match="distinct"):
        shamir.split(1, [1, 1, 2], 2)
    with pytest.raises(ParameterError, match="threshold"):
        shamir.split(1, [1, 2], 3)


# ------------------------------------------------------------------ HE-free backend
def test_plain_round_matches_plaintext_sum_and_masked_inputs_look_uniform():
    ups = updates(6)
    res = mk.simulate_round(ups, max_value=1.0, precision_bits=P, round_id="r1")
    assert res.survivors == list(range(1, 7)) and res.dropped == []
    np.testing.assert_allclose(res.value, sum(ups.values()), rtol=0, atol=tol(6))


@pytest.mark.parametrize("stage", ["advertise", "share_keys", "masked_input", "unmask"])
def test_dropout_at_each_stage_sums_exactly_the_survivors(stage):
    ups = updates(7, seed=1)
    res = mk.simulate_round(ups, max_value=1.0, precision_bits=P, round_id=f"drop-{stage}",
                            dropouts={stage: [2]}, identities=True)
    # dropping before "unmask" means the client's input was uploaded: it still counts
    expected = [i for i in ups if i != 2] if stage != "unmask" else list(ups)
    assert res.survivors == expected
    np.testing.assert_allclose(res.value, sum(ups[i] for i in expected), rtol=0, atol=tol(len(expected)))


def test_secagg_plus_sparse_graph_with_dropouts():
    ups = updates(12, seed=2)
    setup = mk.RoundSetup.create("sparse", list(ups), neighbors=6)
    assert all(len(v) == 6 for v in setup.graph.values())
    assert setup.threshold == 5  # floor(2 * 7 / 3) + 1 of 7 holders
    res = mk.simulate_round(ups, max_value=1.0, precision_bits=P, round_id="sparse", neighbors=6,
                            dropouts={"masked_input": [4]})
    surv = [i for i in ups if i != 4]
    assert res.survivors == surv
    np.testing.assert_allclose(res.value, sum(ups[i] for i in surv), rtol=0, atol=tol(11))


def test_round_aborts_below_threshold():
    ups = updates(6)  # threshold 5
    with pytest.raises(SecretKeyMissingError, match="fewer than the threshold 5"):
        mk.simulate_round(ups, max_value=1.0, round_id="few", dropouts={"masked_input": [1, 2]})


def run_to_masked(n=5, round_id="manual", context=None, **kw):
    ids = list(range(1, n + 1))
    setup = mk.RoundSetup.create(round_id, ids)
    clients = {i: mk.MaskedClient(context, setup, i, max_value=1.0, precision_bits=P, **kw) for i in ids}
    server = mk.MaskedServer(context, setup, max_value=1.0, precision_bits=P)
    keys = server.receive_keys([c.advertise_keys() for c in clients.values()])
    bundles = server.receive_shares([c.share_keys(keys) for c in clients.values()])
    return setup, clients, server, bundles


def test_a_single_masked_input_is_uniform_and_clients_refuse_small_survivor_sets():
    setup, clients, server, bundles = run_to_masked(5)
    d = 20000
    msg = clients[1].masked_input(bundles[1], np.zeros(d))
    from he_ml.aggregation import _maskwire as wire

    _, sections = wire.unpack(msg, "masked", "m")
    header, inner = wire.unpack(sections[0], "masked", "payload")
    vec, _ = server.backend.parse(header, inner, "payload")
    u = vec.astype(np.float64) / 2.0 ** server.backend.bits
    # the all-zero update masked: uniform on [0, 1) -> mean 1/2, variance 1/12 (6-sigma bounds)
    assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / d)
    assert abs(u.var() - 1 / 12) < 6 * np.sqrt(1 / 180 / d)
    # the server claims only two survivors: an honest client reveals nothing
    fake = wire.pack("unmask_request", {"round": setup.round_id, "survivors": [1, 2]})
    with pytest.raises(SecretKeyMissingError, match="refusing to reveal"):
        clients[1].unmask(fake)


def test_clients_reveal_one_secret_per_peer_and_answer_once():
    setup, clients, server, bundles = run_to_masked(5, round_id="once")
    masked = [clients[i].masked_input(bundles[i], np.ones(4) * 0.1) for i in (1, 2, 3, 4)]  # 5 drops
    request = server.receive_masked_inputs(masked)
    from he_ml.aggregation import _maskwire as wire

    header, _ = wire.unpack(clients[1].unmask(request), "unmask", "a")
    assert header["b_for"] == [1, 2, 3, 4] and header["s_for"] == [5]
    assert not set(header["b_for"]) & set(header["s_for"])
    with pytest.raises(ParameterError, match="stage 3"):
        clients[1].unmask(request)


def test_messages_of_another_round_or_stage_are_refused():
    _, clients_a, server_a, _ = run_to_masked(5, round_id="A")
    setup_b = mk.RoundSetup.create("B", [1, 2, 3, 4, 5])
    c = mk.MaskedClient(None, setup_b, 1, max_value=1.0)
    with pytest.raises(ContextMismatchError, match="round 'A', not 'B'"):
        mk.MaskedServer(None, setup_b, max_value=1.0).receive_keys(
            [mk.MaskedClient(None, mk.RoundSetup.create("A", [1, 2, 3, 4, 5]), 1, max_value=1.0).advertise_keys()])
    c.advertise_keys()
    with pytest.raises(InvalidCiphertextError, match="expected 'keys'"):
        c.share_keys(b"HEMR\x01\x05" + bytes(8))
    with pytest.raises(InvalidCiphertextError, match="malformed"):
        mk.MaskedServer(None, setup_b, max_value=1.0).receive_keys([b"garbage"])


def test_substituted_keys_are_refused_with_identities():
    ids = [1, 2, 3, 4]
    setup = mk.RoundSetup.create("mitm", ids)
    idents = {i: mk.new_identity() for i in ids}
    pubs = {i: mk.identity_public_key(k) for i, k in idents.items()}
    clients = {i: mk.MaskedClient(None, setup, i, max_value=1.0, identity=idents[i], peer_identities=pubs)
               for i in ids}
    server = mk.MaskedServer(None, setup, max_value=1.0)
    adverts = [c.advertise_keys() for c in clients.values()]
    # the server replaces client 4's advertisement with one of its own making (same id, its keys)
    impostor = mk.MaskedClient(None, setup, 4, max_value=1.0, identity=mk.new_identity())
    keys = server.receive_keys(adverts[:3] + [impostor.advertise_keys()])
    with pytest.raises(InvalidCiphertextError, match="not signed by its registered identity"):
        clients[1].share_keys(keys)


def test_update_above_bound_and_bad_setup_are_refused():
    with pytest.raises(ParameterError, match="threshold must be"):
        mk.RoundSetup.create("t", [1, 2, 3, 4], threshold=2)
    with pytest.raises(ParameterError, match="even int"):
        mk.RoundSetup.create("t", list(range(1, 10)), neighbors=3)
    with pytest.raises(ParameterError, match="max_value"):
        mk.MaskedClient(None, "t", 1, clients=[1, 2, 3])
    with pytest.raises(EncodingOverflowError, match="above the declared bound"):
        mk.simulate_round({1: np.full(3, 2.0), 2: np.zeros(3), 3: np.zeros(3)}, max_value=1.0)


def test_distributed_dp_tops_up_the_dropped_clients_noise():
    n, d = 6, 20000
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=1.0, num_clients=n, resolution=2.0**-10)
    ups = {i: np.zeros(d) for i in range(1, n + 1)}
    res = mk.simulate_round(ups, max_value=None, dp=cfg, round_id="dp", dropouts={"masked_input": [6]})
    assert res.noise_fraction == pytest.approx(5 / 6)
    assert res.topup_variance == pytest.approx(cfg.client_variance_grid * cfg.resolution**2)
    # 5 survivors' shares + the top-up = the full variance n * S_c * res^2; sample variance of d
    # Gaussian values has relative std sqrt(2/d) -> 6 sigma tolerance
    target = n * cfg.client_variance_grid * cfg.resolution**2
    assert abs(np.var(res.value) / target - 1) < 6 * np.sqrt(2 / d)


# ------------------------------------------------------------------ over HE
@pytest.fixture(scope="module")
def he_contexts():
    return {s: aggregation_context(s, max_clients=8, max_value=1.0, precision_bits=P, key_bits=2048)
            for s in ("paillier", "bfv")}


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_he_masked_round_unmasks_only_the_full_sum(he_contexts, scheme):
    ctx = he_contexts[scheme]
    pub = ctx.public_context()
    ups = updates(5, d=300, seed=3)
    unmasker = mk.MaskedUnmasker(ctx, max_value=1.0, precision_bits=P)
    res = mk.simulate_round(ups, context=pub, max_value=1.0, precision_bits=P, round_id=9,
                            dropouts={"unmask": [5]}, unmasker=unmasker)
    kh = GradientAggregator(ctx, max_value=1.0, precision_bits=P)
    # the server's total still carries the survivors' self masks: random plaintexts
    if scheme == "paillier":
        with pytest.raises((InvalidCiphertextError, EncodingOverflowError)):
            kh.decrypt(res.total)
    else:
        assert np.max(np.abs(kh.decrypt(res.total) - sum(ups.values()))) > 1.0
    total, survivors = unmasker.unmask(res.total, res.evidence, 9)
    assert survivors == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(kh.decrypt(total), sum(ups.values()), rtol=0, atol=tol(5))
    # the same total with another round's evidence id does not unmask
    with pytest.raises(ContextMismatchError):
        unmasker.unmask(res.total, res.evidence, 10)


def test_he_single_masked_blob_decrypts_to_uniform_values(he_contexts):
    ctx = he_contexts["bfv"]
    setup, clients, server, bundles = run_to_masked(4, round_id="blob", context=ctx.public_context())
    blob = clients[1].masked_input(bundles[1], np.zeros(4096))
    from he_ml.aggregation import _maskwire as wire

    _, sections = wire.unpack(blob, "masked", "m")
    values = GradientAggregator(ctx, precision_bits=P).decrypt(sections[0]) * 2.0**P
    t = ctx.plain_modulus
    u = (values + t // 2) / t  # centred residues -> [0, 1)
    assert abs(u.mean() - 0.5) < 6 * np.sqrt(1 / 12 / u.size)


def test_ckks_masked_round_is_unsupported():
    ctx = aggregation_context("ckks", max_clients=4, max_value=1.0)
    with pytest.raises(UnsupportedOperationError, match="approximate"):
        mk.MaskedClient(ctx.public_context(), "c", 1, clients=[1, 2, 3], max_value=1.0)


def test_secrets_never_appear_in_the_bytes_the_server_sees(he_contexts):
    """Seeds, private keys and their Shamir shares travel only sealed (to holders or the key holder)."""
    ctx = he_contexts["bfv"]
    unmasker = mk.MaskedUnmasker(ctx, precision_bits=P)
    ids = [1, 2, 3, 4]
    setup = mk.RoundSetup.create("secrets", ids)
    clients = {i: mk.MaskedClient(ctx.public_context(), setup, i, max_value=1.0, precision_bits=P,
                                  unmasker_key=unmasker.public_key) for i in ids}
    server = mk.MaskedServer(ctx.public_context(), setup, max_value=1.0, precision_bits=P)
    seen = [c.advertise_keys() for c in clients.values()]
    keys = server.receive_keys(seen)
    seen += [c.share_keys(keys) for c in clients.values()]
    bundles = server.receive_shares(seen[4:])
    seen += list(bundles.values())
    masked = [clients[i].masked_input(bundles[i], np.zeros(10)) for i in ids]
    seen += masked
    request = server.receive_masked_inputs(masked)
    answers = [clients[i].unmask(request) for i in ids]
    seen += answers
    res = server.receive_unmask(answers)
    seen.append(res.evidence)
    wire_bytes = b"".join(seen)
    for c in clients.values():
        from he_ml.aggregation import _maskwire as wire

        secrets_ = [c._b, c._s_sk.private_bytes(wire.RAW, wire.RAW_PRIV, wire.NOENC),
                    c._c_sk.private_bytes(wire.RAW, wire.RAW_PRIV, wire.NOENC)]
        secrets_ += [shamir.share_to_bytes(v) for pair in c._shares.values() for v in pair]
        for s in secrets_:
            assert s not in wire_bytes


def test_a_tampered_share_ciphertext_is_refused():
    setup, clients, server, bundles = run_to_masked(4, round_id="tamper")
    bad = bytearray(bundles[2])
    bad[-5] ^= 1  # flip a bit inside the last sealed share
    with pytest.raises(InvalidCiphertextError, match="authentication failed"):
        clients[2].masked_input(bytes(bad), np.zeros(3))


def test_client_state_round_trips_and_is_bound_to_its_client():
    setup, clients, server, bundles = run_to_masked(4, round_id="state")
    saved = clients[1].state_bytes()
    fresh = mk.MaskedClient(None, setup, 1, max_value=1.0, precision_bits=P).restore_state(saved)
    assert fresh.stage == 2
    masked = [fresh.masked_input(bundles[1], np.full(3, 0.5))] + \
        [clients[i].masked_input(bundles[i], np.full(3, 0.5)) for i in (2, 3, 4)]
    request = server.receive_masked_inputs(masked)
    res = server.receive_unmask([fresh.unmask(request)] + [clients[i].unmask(request) for i in (2, 3, 4)])
    np.testing.assert_allclose(res.value, np.full(3, 2.0), rtol=0, atol=tol(4))
    with pytest.raises(ContextMismatchError, match="belongs to client 1, not 2"):
        mk.MaskedClient(None, setup, 2, max_value=1.0).restore_state(saved)
