"""Hostile bytes for masked rounds and receipts: truncated or bit-flipped messages at every stage raise
only he_ml errors (never a crash, a hang or a foreign exception). Seeded mutations."""
from __future__ import annotations

import numpy as np
import pytest

from he_ml.aggregation import aggregation_context, identity_public_key, new_identity
from he_ml.aggregation import masking as mk
from he_ml.aggregation.policy import DecryptionPolicy, PolicyClient, receipt_info
from he_ml.errors import HEError

MUTATIONS = 300  # 3,000 run once by hand: no foreign exception either


def mutations(data: bytes, seed: int):
    rng = np.random.default_rng(seed)
    yield b""
    yield data[:-1]
    for _ in range(MUTATIONS):
        kind = rng.integers(3)
        if kind == 0:
            yield data[:int(rng.integers(len(data)))]
        elif kind == 1:
            b = bytearray(data)
            pos = int(rng.integers(len(b)))
            b[pos] ^= 1 << int(rng.integers(8))
            yield bytes(b)
        else:
            pos = int(rng.integers(len(data)))
            yield data[:pos] + bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8)) + data[pos:]


def only_he_errors(fn, data):
    try:
        fn(data)
    except HEError:
        pass


@pytest.fixture(scope="module")
def transcript():
    """One complete 4-client plain round; every message kept."""
    ids = [1, 2, 3, 4]
    setup = mk.RoundSetup.create("hostile", ids)
    clients = {i: mk.MaskedClient(None, setup, i, max_value=1.0) for i in ids}
    server = mk.MaskedServer(None, setup, max_value=1.0)
    adverts = [c.advertise_keys() for c in clients.values()]
    keys = server.receive_keys(adverts)
    shares = [c.share_keys(keys) for c in clients.values()]
    bundles = server.receive_shares(shares)
    masked = [clients[i].masked_input(bundles[i], np.full(5, 0.1)) for i in ids]
    request = server.receive_masked_inputs(masked)
    answers = [clients[i].unmask(request) for i in ids]
    return dict(setup=setup, adverts=adverts, keys=keys, shares=shares, bundles=bundles, masked=masked,
                request=request, answers=answers)


def server_at(t, stage):
    s = mk.MaskedServer(None, t["setup"], max_value=1.0)
    if stage >= 1:
        s.receive_keys(t["adverts"])
    if stage >= 2:
        s.receive_shares(t["shares"])
    if stage >= 3:
        s.receive_masked_inputs(t["masked"])
    return s


@pytest.mark.parametrize("stage,key", [(0, "adverts"), (1, "shares"), (2, "masked"), (3, "answers")])
def test_server_stages_refuse_mutated_messages_with_he_errors(transcript, stage, key):
    fns = {0: "receive_keys", 1: "receive_shares", 2: "receive_masked_inputs", 3: "receive_unmask"}
    good = transcript[key]
    for m in mutations(good[0], seed=stage):
        only_he_errors(lambda d: getattr(server_at(transcript, stage), fns[stage])([d] + good[1:]), m)


def test_client_stages_refuse_mutated_messages_with_he_errors(transcript):
    setup = transcript["setup"]
    for m in mutations(transcript["keys"], seed=10):
        c = mk.MaskedClient(None, setup, 1, max_value=1.0)
        c.advertise_keys()
        only_he_errors(c.share_keys, m)
    for m in mutations(transcript["request"], seed=11):
        c = mk.MaskedClient(None, setup, 1, max_value=1.0)
        c.stage = 3  # straight to the unmask stage: the request parser alone
        only_he_errors(c.unmask, m)


def test_evidence_and_receipts_refuse_mutations_with_he_errors():
    ctx = aggregation_context("bfv", max_clients=4, max_value=1.0)
    keys = {i: new_identity() for i in (1, 2, 3)}
    pubs = {i: identity_public_key(k) for i, k in keys.items()}
    policy = DecryptionPolicy(ctx, min_clients=2, max_value=1.0, identities=pubs)
    res = mk.simulate_round({i: np.full(4, 0.1) for i in keys}, context=ctx.public_context(), max_value=1.0,
                            round_id="ev", identities=keys, unmasker=policy.unmasker)
    for m in mutations(res.evidence, seed=20):
        only_he_errors(lambda d: policy.unmasker.unmask(res.total, d, "ev"), m)
    _, receipt = PolicyClient(ctx.public_context(), 1, keys[1], key_holder_key=policy.public_key,
                              max_value=1.0).encrypt(np.zeros(4), "ev")
    for m in mutations(receipt, seed=21):
        only_he_errors(receipt_info, m)
        only_he_errors(lambda d: policy._verify_receipts([d], "ev"), m)
