"""Flower with a policy key holder: signed replies, round masks, and issue 9's attacks by the server.

The federated run uses the real ``EncryptedFedAvg.start`` loop over the in-process wire-format
grid of ``test_flower.py``; the attacks replay what a deviating server can do with the messages
it receives (it holds every reply, the public context and the key holder's callable).
Tolerances as in ``test_flower.py`` (fixed point with 24 fractional bits).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from he_ml.aggregation import GradientAggregator, aggregation_context, identity_public_key, new_identity  # noqa: E402
from he_ml.aggregation.flooding import release_plan  # noqa: E402
from he_ml.errors import InvalidCiphertextError, SecretKeyMissingError  # noqa: E402
from he_ml.integrations.flower import (  # noqa: E402
    EncryptedClient,
    EncryptedFedAvg,
    KeyHolder,
    arrays_to_record,
    round_id_of,
)
from he_ml.schemes._format import Kind, pack_blob, unpack_blob  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_flower import NUM_CLIENTS, LoopbackGrid, check_against_plain, example  # noqa: E402

IDS = {n: new_identity() for n in range(1, NUM_CLIENTS + 1)}
PUBS = {n: identity_public_key(k) for n, k in IDS.items()}


def signed_app(public: bytes, partitions, kh_key) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cid = int(context.node_config["partition-id"]) + 1
        client = EncryptedClient(public, max_value=example.MAX_VALUE, precision_bits=24, client_id=cid,
                                 identity=IDS[cid], key_holder_key=kh_key)
        weights = client.global_arrays(msg)
        x, y = partitions[cid - 1]
        w, b = example.local_train(weights["w"], float(weights["b"][0]), x, y)
        return client.reply(msg, {"w": w, "b": np.array([b])}, {"num-examples": len(y)})

    return app


@pytest.fixture(scope="module")
def ctxs():
    return {s: aggregation_context(s, max_clients=NUM_CLIENTS, max_value=example.MAX_VALUE, precision_bits=24,
                                   key_bits=2048) for s in ("paillier", "bfv")}


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_policy_key_holder_federated_run_matches_plain_fedavg(ctxs, scheme):
    ctx, rounds = ctxs[scheme], 3
    partitions, test = example.load_partitions(NUM_CLIENTS)
    kh = KeyHolder(ctx, identities=PUBS, min_clients=NUM_CLIENTS, max_value=example.MAX_VALUE, precision_bits=24)
    public = ctx.public_context().to_bytes()
    grid = LoopbackGrid(signed_app(public, partitions, kh.public_key), NUM_CLIENTS)
    strategy = EncryptedFedAvg(public, key_holder=kh, fraction_evaluate=0.0, min_train_nodes=NUM_CLIENTS,
                               min_available_nodes=NUM_CLIENTS)
    init = arrays_to_record({"w": np.zeros(partitions[0][0].shape[1]), "b": np.zeros(1)})
    result = strategy.start(grid=grid, initial_arrays=init, num_rounds=rounds)
    assert kh.totals_decrypted == rounds
    assert kh.policy.used_rounds == {f"1/{r}" for r in range(1, rounds + 1)}
    final = {k: v.numpy() for k, v in result.arrays.items()}
    check_against_plain(final["w"], float(final["b"][0]), partitions, test, rounds)


def signed_replies(ctx, kh, round_no=1, d=6):
    """Three clients' replies to a train message of run 1, round ``round_no``."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0  # as LoopbackGrid does
    msg = Message(content=RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord({"server-round": round_no})}),
                  dst_node_id=1, message_type="train")
    rng = np.random.default_rng(round_no)
    ups = {i: rng.uniform(-1, 1, d) for i in IDS}
    replies = {i: EncryptedClient(ctx.public_context(), max_value=example.MAX_VALUE, precision_bits=24, client_id=i,
                                  identity=IDS[i], key_holder_key=kh.public_key).reply(msg, {"w": ups[i]})
               for i in IDS}
    return msg, ups, replies


def edited_count(blob: bytes, count: int) -> bytes:
    b = unpack_blob(blob)
    meta = dict(b.metadata, count=count)
    if isinstance(meta.get("meta"), dict) and "terms" in meta["meta"]:  # keep Paillier's terms consistent
        meta["meta"] = dict(meta["meta"], terms=count)
    return pack_blob(Kind.AGGREGATE, b.scheme, b.fingerprint, meta, b.sections)


def test_attacks_by_the_server_are_refused(ctxs):
    ctx = ctxs["paillier"]
    kh = KeyHolder(ctx, identities=PUBS, min_clients=NUM_CLIENTS, max_value=example.MAX_VALUE, precision_bits=24)
    msg, ups, replies = signed_replies(ctx, kh)
    rid = round_id_of(msg)
    receipts = [r.content["he_ml"]["receipt"] for r in replies.values()]
    blobs = [r.content["he_ml"]["update"] for r in replies.values()]
    # 1. ONE client's blob forwarded as the total, count edited, checksum recomputed
    with pytest.raises(InvalidCiphertextError, match="does not unmask"):
        kh(edited_count(blobs[0], NUM_CLIENTS), round_id=rid, receipts=receipts)
    # the round id is spent by the refused attempt; the next round works and is then replayed
    msg2, ups2, replies2 = signed_replies(ctx, kh, round_no=2)
    receipts2 = [r.content["he_ml"]["receipt"] for r in replies2.values()]
    total2 = GradientAggregator(ctx.public_context()).sum(r.content["he_ml"]["update"] for r in replies2.values())
    mean = kh(total2, round_id=round_id_of(msg2), receipts=receipts2)
    np.testing.assert_allclose(mean["w"], sum(ups2.values()) / NUM_CLIENTS, rtol=0, atol=2.0**-25)
    # 2. the same total replayed 200 times: refused after the first
    for _ in range(200):
        with pytest.raises(SecretKeyMissingError, match="already decrypted"):
            kh(total2, round_id=round_id_of(msg2), receipts=receipts2)
    # 3. count edited on an honest total of round 3 (claims 5 clients for a mean over 5): refused
    msg3, _, replies3 = signed_replies(ctx, kh, round_no=3)
    total3 = GradientAggregator(ctx.public_context()).sum(r.content["he_ml"]["update"] for r in replies3.values())
    with pytest.raises(InvalidCiphertextError, match="count field says 5 but 3"):
        kh(edited_count(total3, 5), round_id=round_id_of(msg3),
           receipts=[r.content["he_ml"]["receipt"] for r in replies3.values()])
    # ... and with only two of the three receipts: fewer than min_clients
    msg4, _, replies4 = signed_replies(ctx, kh, round_no=4)
    with pytest.raises(SecretKeyMissingError, match="fewer than min_clients=3"):
        kh(total3, round_id=round_id_of(msg4), receipts=[r.content["he_ml"]["receipt"]
                                                         for r in list(replies4.values())[:2]])
    # unsigned totals are refused outright by a policy key holder
    with pytest.raises(SecretKeyMissingError, match="enforces a policy"):
        kh(total2)
    assert kh.totals_decrypted == 1


def test_strategy_rejects_mixed_signed_and_unsigned_replies(ctxs):
    ctx = ctxs["bfv"]
    kh = KeyHolder(ctx, identities=PUBS, min_clients=2, max_value=example.MAX_VALUE, precision_bits=24)
    msg, _, replies = signed_replies(ctx, kh)
    unsigned = EncryptedClient(ctx.public_context(), max_value=example.MAX_VALUE, precision_bits=24).reply(
        msg, {"w": np.zeros(6)})
    strategy = EncryptedFedAvg(ctx.public_context(), key_holder=kh)
    with pytest.raises(InvalidCiphertextError, match="carry a receipt"):
        strategy.aggregate_train(1, [*replies.values(), unsigned])


def test_legacy_key_holder_decrypts_each_total_once_and_smudges_ckks():
    ctx = aggregation_context("ckks", max_clients=4, max_value=1.0)
    kh = KeyHolder(ctx, max_value=1.0)
    client = EncryptedClient(ctx.public_context(), max_value=1.0)
    d = 4000
    ups = [np.random.default_rng(i).uniform(-1, 1, d) for i in range(3)]
    total = GradientAggregator(ctx.public_context()).sum(client.encrypt({"w": u}) for u in ups)
    mean = kh(total)["w"]
    plan = release_plan(ctx, 3)
    sigma = plan.slot_std / 3
    err = mean - sum(ups) / 3
    # smudged release, stated variance (sample variance of d uncorrelated slots, 6-sigma)
    assert abs(np.var(err) / sigma**2 - 1) < 6 * np.sqrt(2 / (d - 1))
    assert np.max(np.abs(err)) <= plan.error_bound / 3
    with pytest.raises(SecretKeyMissingError, match="already decrypted"):
        kh(total)


def test_ckks_policy_key_holder_gets_the_blobs_from_the_strategy():
    ctx = aggregation_context("ckks", max_clients=4, max_value=1.0)
    # the key holder admits the bound the clients declare (signed_replies: example.MAX_VALUE)
    kh = KeyHolder(ctx, identities=PUBS, min_clients=NUM_CLIENTS, max_value=example.MAX_VALUE)
    assert kh.needs_blobs
    msg, ups, replies = signed_replies(ctx, kh, d=500)
    strategy = EncryptedFedAvg(ctx.public_context(), key_holder=kh)
    arrays, _ = strategy.aggregate_train(1, list(replies.values()))
    mean = arrays["w"].numpy()
    plan = kh.policy.release_plan(NUM_CLIENTS)
    assert kh.policy.last.smudging == plan
    # smudged release of the mean: every value within the plan's bound (failure <= 2**-40)
    err = mean - sum(ups.values()) / NUM_CLIENTS
    assert np.max(np.abs(err)) <= plan.error_bound / NUM_CLIENTS
    assert np.max(np.abs(err)) > 0  # it was smudged (P(all 500 errors exactly 0) is nil)
    with pytest.raises(SecretKeyMissingError, match="already decrypted"):
        strategy.aggregate_train(1, list(replies.values()))
