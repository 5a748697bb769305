"""Flower integration: federated logistic regression on breast-cancer partitions where the server
sums only ciphertexts, compared with plaintext FedAvg on the same partitions and rounds.

* Default (fast, no Ray): the real ``EncryptedFedAvg.start`` loop and the real ``ClientApp``
  exchange Flower ``Message`` objects through `LoopbackGrid`, a minimal in-process
  ``flwr.serverapp.Grid`` that passes every message through Flower's own protobuf wire
  format (``message_to_proto`` -> bytes -> ``message_from_proto``) both ways.
* ``slow``: the example ``examples/federated_flower.py`` under Flower's simulation engine
  (``run_simulation``, Ray backend, one SuperNode per client), in a subprocess.

Tolerance: local training is deterministic, so encrypted and plaintext FedAvg differ only by
the encoding error -- fixed point with 24 fractional bits (Paillier, BFV: <= 2**-25 per weight
and client) or CKKS noise (~2**-30 at these parameters) -- amplified by a few rounds of
gradient descent; we assert weights within 1e-6 and accuracies at most one test sample apart.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common.serde import message_from_proto, message_to_proto  # noqa: E402
from flwr.proto.message_pb2 import Message as ProtoMessage  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from he_ml.aggregation import aggregation_context  # noqa: E402
from he_ml.errors import InvalidCiphertextError, ParameterError, SecretKeyMissingError  # noqa: E402
from he_ml.integrations.flower import (  # noqa: E402
    ENCRYPTED_MODEL_KEY,
    EncryptedClient,
    EncryptedFedAvg,
    KeyHolder,
    arrays_to_record,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))
import federated_flower as example  # noqa: E402

NUM_CLIENTS = 3


def wire(message: Message) -> Message:
    """The message as the receiver gets it: Flower's protobuf encoding and back."""
    data = message_to_proto(message).SerializeToString()
    proto = ProtoMessage()
    proto.ParseFromString(data)
    return message_from_proto(proto)


class LoopbackGrid(Grid):
    """In-process Grid: delivers each message (over the wire format) to a ClientApp per node."""

    def __init__(self, client_app: ClientApp, num_nodes: int) -> None:
        self.client_app = client_app
        self.nodes = list(range(1, num_nodes + 1))
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={"partition-id": i,
                                                                        "num-partitions": num_nodes},
                                    state=RecordDict(), run_config={}) for i, n in enumerate(self.nodes)}
        self.replies: dict[str, Message] = {}
        self.bytes_to_server = 0
        self._run = None
        # Messages stamp the identity of the process that creates them (server: node 0).
        TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content=content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id)

    def get_node_ids(self):
        return list(self.nodes)

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            received = wire(msg)
            TaskIdentity.node_id = received.metadata.dst_node_id  # now "running" on the client's node
            try:
                reply = self.client_app(received, self.contexts[received.metadata.dst_node_id])
            finally:
                TaskIdentity.node_id = 0
            data = message_to_proto(reply).SerializeToString()
            self.bytes_to_server += len(data)
            self.replies[msg.metadata.message_id] = wire(reply)
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids):
        return [self.replies.pop(i) for i in message_ids]

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(self.push_messages(messages))


def client_app_for(client_ctx: bytes, partitions) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        client = EncryptedClient(client_ctx, max_value=example.MAX_VALUE)
        weights = client.global_arrays(msg)
        x, y = partitions[int(context.node_config["partition-id"])]
        w, b = example.local_train(weights["w"], float(weights["b"][0]), x, y)
        return client.reply(msg, {"w": w, "b": np.array([b])}, {"num-examples": len(y)})

    return app


def check_against_plain(w, b, partitions, test, rounds):
    x_te, y_te = test
    w_ref, b_ref = example.plain_fedavg(partitions, rounds)
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-6)
    assert abs(b - b_ref) < 1e-6
    acc, acc_ref = example.accuracy(w, b, x_te, y_te), example.accuracy(w_ref, b_ref, x_te, y_te)
    assert acc_ref > 0.9
    assert abs(acc - acc_ref) <= 1 / len(y_te)


def run_loopback(scheme: str, mode: str, rounds: int):
    partitions, test = example.load_partitions(NUM_CLIENTS)
    ctx = aggregation_context(scheme, max_clients=NUM_CLIENTS, max_value=example.MAX_VALUE, precision_bits=24,
                              key_bits=2048)
    public = ctx.public_context().to_bytes()
    client_ctx = public if mode == "key-holder" else ctx.to_bytes(include_secret_key=True)
    key_holder = KeyHolder(ctx, max_value=example.MAX_VALUE) if mode == "key-holder" else None
    grid = LoopbackGrid(client_app_for(client_ctx, partitions), NUM_CLIENTS)
    strategy = EncryptedFedAvg(public, key_holder=key_holder, fraction_evaluate=0.0,
                               min_train_nodes=NUM_CLIENTS, min_available_nodes=NUM_CLIENTS)
    init = arrays_to_record({"w": np.zeros(partitions[0][0].shape[1]), "b": np.zeros(1)})
    result = strategy.start(grid=grid, initial_arrays=init, num_rounds=rounds)
    return result, ctx, client_ctx, key_holder, partitions, test, grid


@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_encrypted_fedavg_out_of_band_key_holder(scheme):
    rounds = 3
    result, _, _, key_holder, partitions, test, grid = run_loopback(scheme, "key-holder", rounds)
    assert key_holder.totals_decrypted == rounds  # one total per round, never an individual update
    assert grid.bytes_to_server > 0
    final = {k: v.numpy() for k, v in result.arrays.items()}
    check_against_plain(final["w"], float(final["b"][0]), partitions, test, rounds)


def test_encrypted_fedavg_clients_hold_the_key():
    rounds = 3
    result, _, client_ctx, _, partitions, test, _ = run_loopback("ckks", "clients", rounds)
    assert list(result.arrays) == [ENCRYPTED_MODEL_KEY]  # the server only ever held ciphertexts
    msg = Message(content=RecordDict({"arrays": result.arrays}), dst_node_id=1, message_type="train")
    final = EncryptedClient(client_ctx, max_value=example.MAX_VALUE).global_arrays(msg)
    check_against_plain(final["w"], float(final["b"][0]), partitions, test, rounds)


def test_wrong_keys_and_bad_replies_are_refused():
    ctx = aggregation_context("paillier", max_clients=2, max_value=1.0, key_bits=2048)
    with pytest.raises(ParameterError, match="public context only"):
        EncryptedFedAvg(ctx)
    with pytest.raises(SecretKeyMissingError, match="secret key"):
        KeyHolder(ctx.public_context())
    with pytest.raises(ParameterError, match="key_holder must be callable"):
        EncryptedFedAvg(ctx.public_context(), key_holder="me")
    client = EncryptedClient(ctx.public_context())
    blob = client.encrypt({"w": np.ones(2)})
    record = ArrayRecord({ENCRYPTED_MODEL_KEY: Array(np.frombuffer(blob, dtype=np.uint8))})
    msg = Message(content=RecordDict({"arrays": record}), dst_node_id=1, message_type="train")
    with pytest.raises(SecretKeyMissingError, match="encrypted global model"):
        client.global_arrays(msg)
    # a reply whose blob was damaged in transit makes the round fail loudly
    strategy = EncryptedFedAvg(ctx.public_context(), key_holder=KeyHolder(ctx))
    good = client.reply(msg, {"w": np.ones(2)})
    bad = client.reply(msg, {"w": np.ones(2)})
    bad.content["he_ml"]["update"] = bad.content["he_ml"]["update"][:-3]
    with pytest.raises(InvalidCiphertextError, match="blob 1 of the stream"):
        strategy.aggregate_train(1, [good, bad])


@pytest.mark.slow
def test_flower_simulation_engine_runs_the_example():
    pytest.importorskip("ray")
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "federated_flower.py"), "--scheme", "paillier",
                           "--key-bits", "2048", "--rounds", "3", "--clients", "3", "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["totals_decrypted_by_key_holder"] == 3
    assert res["max_weight_difference"] < 1e-6
    assert abs(res["accuracy_encrypted"] - res["accuracy_plain_fedavg"]) <= 1 / res["test_samples"]
    assert res["accuracy_plain_fedavg"] > 0.9
