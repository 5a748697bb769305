"""A masked round (SecAgg over BFV / HE-free) carried by Flower messages, with a dropout, decrypted by
the policy key holder from the round's evidence. In-process grid over Flower's wire format
(``LoopbackGrid`` of ``test_flower.py``). Tolerance: fixed point with 24 fractional bits per value and
client, so the mean is within 2**-25 of the float mean (sum of k errors <= k * 2**-25, divided by k).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from he_ml.aggregation import aggregation_context, identity_public_key, new_identity  # noqa: E402
from he_ml.aggregation.masking import MaskedServer, RoundSetup  # noqa: E402
from he_ml.errors import SecretKeyMissingError  # noqa: E402
from he_ml.integrations.flower import (  # noqa: E402
    MASKED_RECORD,
    KeyHolder,
    arrays_to_record,
    masked_client_step,
    record_to_arrays,
    run_masked_round,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_flower import LoopbackGrid, example  # noqa: E402

N = 5
IDS = {i: new_identity() for i in range(1, N + 1)}
PUBS = {i: identity_public_key(k) for i, k in IDS.items()}


class DroppingGrid(LoopbackGrid):
    """Messages of a stage to the listed nodes are lost (the client vanished)."""

    def __init__(self, *a, drop=None, **kw):
        super().__init__(*a, **kw)
        self.drop = drop or {}

    def send_and_receive(self, messages, *, timeout=None):
        kept = [m for m in messages
                if m.metadata.dst_node_id not in self.drop.get(m.content[MASKED_RECORD]["stage"], ())]
        return super().send_and_receive(kept, timeout=timeout)


def masked_app(public, partitions, unmasker_key) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cid = int(context.node_config["partition-id"]) + 1
        update = None
        if msg.content[MASKED_RECORD]["stage"] == "masked_input":
            weights = record_to_arrays(msg.content["arrays"])
            x, y = partitions[cid - 1]
            w, b = example.local_train(weights["w"], float(weights["b"][0]), x, y)
            update = {"w": w, "b": np.array([b])}
        return masked_client_step(msg, context.state, context=public, client_id=cid, update=update,
                                  max_value=example.MAX_VALUE, precision_bits=24, identity=IDS[cid],
                                  peer_identities=PUBS, unmasker_key=unmasker_key)

    return app


@pytest.mark.parametrize("scheme", ["bfv", None])
def test_masked_round_over_flower_with_a_dropout(scheme):
    partitions, _ = example.load_partitions(N)
    ctx = aggregation_context(scheme or "bfv", max_clients=N, max_value=example.MAX_VALUE, precision_bits=24)
    public = ctx.public_context() if scheme else None
    kh = KeyHolder(ctx, identities=PUBS, min_clients=3, max_value=example.MAX_VALUE, precision_bits=24)
    grid = DroppingGrid(masked_app(public.to_bytes() if public else None, partitions, kh.public_key if scheme else None),
                        N, drop={"masked_input": {3}})  # node 3 = client 3 vanishes after sharing keys
    setup = RoundSetup.create("flower-masked-1", list(range(1, N + 1)))
    server = MaskedServer(public, setup, max_value=example.MAX_VALUE, precision_bits=24)
    d = partitions[0][0].shape[1]
    init = {"w": np.zeros(d), "b": np.zeros(1)}
    result = run_masked_round(grid, {c: c for c in setup.clients}, server,
                              train_content=RecordDict({"arrays": arrays_to_record(init)}))
    assert result.survivors == [1, 2, 4, 5] and result.dropped == [3]
    expected = {"w": np.zeros(d), "b": np.zeros(1)}
    for c in result.survivors:
        x, y = partitions[c - 1]
        w, b = example.local_train(init["w"], 0.0, x, y)
        expected["w"] += w / 4
        expected["b"] += b / 4
    if scheme:
        # the server's total still carries the self masks: only the policy key holder unmasks it, once
        mean = kh.release(result.total, round_id=setup.round_id, evidence=result.evidence)
        with pytest.raises(SecretKeyMissingError, match="already decrypted"):
            kh.release(result.total, round_id=setup.round_id, evidence=result.evidence)
    else:
        mean = {k: v / len(result.survivors) for k, v in result.value.items()}
    np.testing.assert_allclose(mean["w"], expected["w"], rtol=0, atol=2.0**-25)
    np.testing.assert_allclose(mean["b"], expected["b"], rtol=0, atol=2.0**-25)
    # survivors dropped their round secrets at the end; the vanished client 3 still holds its state
    # until its next round starts
    holding = [n for n, c in grid.contexts.items() if any(k.startswith(MASKED_RECORD) for k in c.state)]
    assert holding == [3]


class StagedGrid(DroppingGrid):
    """DroppingGrid whose drops apply only to masked-round messages; counts the stages it saw."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stages = []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        masked = [m for m in messages if MASKED_RECORD in m.content]
        if masked:
            self.stages.append(masked[0].content[MASKED_RECORD]["stage"])
            return DroppingGrid.send_and_receive(self, masked, timeout=timeout)
        return LoopbackGrid.send_and_receive(self, messages, timeout=timeout)


@pytest.mark.parametrize("scheme", ["bfv", None])
def test_masked_fedavg_strategy_runs_masked_rounds_with_a_dropout(scheme):
    """MaskedFedAvg.start(): every round is a masked round; node 3 vanishes at masked_input each time.

    Each round's global model must equal the plain FedAvg of the survivors' local training from
    the previous round's model (captured by evaluate_fn), within the fixed-point error 2**-25 (24
    fractional bits per value and client, see the module docstring).
    """
    from flwr.app import ArrayRecord

    from he_ml.integrations.flower import MaskedFedAvg

    partitions, _ = example.load_partitions(N)
    ctx = aggregation_context(scheme or "bfv", max_clients=N, max_value=example.MAX_VALUE, precision_bits=24)
    public = ctx.public_context() if scheme else None
    kh = KeyHolder(ctx, identities=PUBS, min_clients=3, max_value=example.MAX_VALUE, precision_bits=24) \
        if scheme else None
    app = masked_app(public.to_bytes() if public else None, partitions, kh.public_key if scheme else None)
    grid = StagedGrid(app, N, drop={"masked_input": {3}})
    strategy = MaskedFedAvg(public, key_holder=kh, max_value=example.MAX_VALUE, precision_bits=24,
                            fraction_evaluate=0.0)
    d = partitions[0][0].shape[1]
    seen = {}
    result = strategy.start(grid=grid, initial_arrays=arrays_to_record({"w": np.zeros(d), "b": np.zeros(1)}),
                            num_rounds=2, evaluate_fn=lambda rnd, arrays: seen.__setitem__(rnd, record_to_arrays(arrays)))
    assert grid.stages == ["hello", "advertise", "share_keys", "masked_input", "unmask"] * 2
    assert strategy.last_result.survivors == [1, 2, 4, 5]
    for rnd in (1, 2):
        prev = seen[rnd - 1]
        expected = {"w": np.zeros(d), "b": np.zeros(1)}
        for c in (1, 2, 4, 5):
            x, y = partitions[c - 1]
            w, b = example.local_train(prev["w"], float(prev["b"][0]), x, y)
            expected["w"] += w / 4
            expected["b"] += b / 4
        np.testing.assert_allclose(seen[rnd]["w"], expected["w"], rtol=0, atol=2.0**-25)
        np.testing.assert_allclose(seen[rnd]["b"], expected["b"], rtol=0, atol=2.0**-25)
        assert dict(result.train_metrics_clientapp[rnd]) == {"survivors": 4, "dropped": 1}
    assert isinstance(result.arrays, ArrayRecord)
    np.testing.assert_array_equal(record_to_arrays(result.arrays)["w"], seen[2]["w"])
    if scheme:
        # the key holder released each round id once; replaying round 2's total is refused
        with pytest.raises(SecretKeyMissingError, match="already decrypted"):
            kh.release(strategy.last_result.total, round_id=strategy.last_round_id,
                       evidence=strategy.last_result.evidence)


def test_masked_fedavg_refuses_a_secret_context_or_a_missing_key_holder():
    from he_ml.errors import ParameterError
    from he_ml.integrations.flower import MaskedFedAvg

    ctx = aggregation_context("bfv", max_clients=N, max_value=1.0)
    with pytest.raises(ParameterError, match="public context only"):
        MaskedFedAvg(ctx)
    with pytest.raises(ParameterError, match="needs key_holder"):
        MaskedFedAvg(ctx.public_context())


def test_masked_fedavg_keeps_the_model_when_a_round_loses_too_many_clients():
    """3 of 5 clients vanish at masked_input with threshold 4: the round cannot unmask anything."""
    from he_ml.integrations.flower import MaskedFedAvg

    partitions, _ = example.load_partitions(N)
    ctx = aggregation_context("bfv", max_clients=N, max_value=example.MAX_VALUE, precision_bits=24)
    kh = KeyHolder(ctx, identities=PUBS, min_clients=3, max_value=example.MAX_VALUE, precision_bits=24)
    grid = StagedGrid(masked_app(ctx.public_context().to_bytes(), partitions, kh.public_key), N,
                      drop={"masked_input": {1, 2, 3}})
    strategy = MaskedFedAvg(ctx.public_context(), key_holder=kh, threshold=4, max_value=example.MAX_VALUE,
                            precision_bits=24, fraction_evaluate=0.0)
    d = partitions[0][0].shape[1]
    init = {"w": np.full(d, 0.5), "b": np.zeros(1)}
    result = strategy.start(grid=grid, initial_arrays=arrays_to_record(init), num_rounds=2)
    assert strategy.last_result is None
    for rnd in (1, 2):
        assert dict(result.train_metrics_clientapp[rnd]) == {"survivors": 0, "dropped": N, "aborted": 1}
    assert kh.totals_decrypted == 0  # nothing reached the key holder
    kept = record_to_arrays(result.arrays)
    np.testing.assert_array_equal(kept["w"], init["w"])
    np.testing.assert_array_equal(kept["b"], init["b"])
