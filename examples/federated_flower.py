"""Federated logistic regression with Flower where the server only ever adds ciphertexts.

Breast-cancer data (scikit-learn's bundled copy), split into ``--clients`` partitions, one
per Flower SuperNode, run by Flower's simulation engine (``flwr[simulation]``, Ray backend).
Each round every client trains locally (full-batch gradient descent from the global model),
encrypts its model with the **public** he_ml context and replies with the blob; the
server's :class:`he_ml.integrations.flower.EncryptedFedAvg` sums the blobs without any key.

Two trust models (``--mode``):

* ``key-holder`` (default): an out-of-band :class:`KeyHolder` with the secret key turns each
  round's encrypted *total* into the average (the server learns the averaged model, never an
  individual update).
* ``clients``: every client holds the shared secret context; the server keeps and
  broadcasts the encrypted total, so it never sees any plaintext model.

The same rounds are run as plaintext FedAvg (same partitions, same local training, plain
averaging) and the accuracies compared. ``--json`` prints the figures as one JSON line
(used by tests/integrations/test_flower.py).

Usage::

    pip install 'he_ml[flower]' 'flwr[simulation]'
    python examples/federated_flower.py --scheme paillier --rounds 3
    python examples/federated_flower.py --scheme ckks --mode clients --rounds 5
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings

import numpy as np

LOCAL_STEPS = 20
LEARNING_RATE = 0.5
MAX_VALUE = 64.0  # public bound on |weight|; logistic regression on standardized features stays far below


def load_partitions(num_clients: int):
    """Standardized breast-cancer data: ``num_clients`` equal training partitions and a test set."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    parts = np.array_split(np.arange(len(y_tr)), num_clients)
    return [(x_tr[p], y_tr[p]) for p in parts], (x_te, y_te)


def local_train(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Deterministic local training: LOCAL_STEPS full-batch gradient steps of the logistic loss."""
    for _ in range(LOCAL_STEPS):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w = w - LEARNING_RATE * x.T @ (p - y) / len(y)
        b = b - LEARNING_RATE * float(np.mean(p - y))
    return w, b


def accuracy(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(((x @ w + b) > 0) == y))


def plain_fedavg(partitions, rounds: int) -> tuple[np.ndarray, float]:
    """The reference: the same rounds with plaintext averaging."""
    w, b = np.zeros(partitions[0][0].shape[1]), 0.0
    for _ in range(rounds):
        local = [local_train(w, b, x, y) for x, y in partitions]
        w = np.mean([lw for lw, _ in local], axis=0)
        b = float(np.mean([lb for _, lb in local]))
    return w, b


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scheme", choices=["paillier", "bfv", "ckks"], default="paillier")
    ap.add_argument("--mode", choices=["key-holder", "clients"], default="key-holder")
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--key-bits", type=int, default=3072, help="Paillier modulus bits (2048: 112-bit security)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON line")
    args = ap.parse_args(argv)

    if args.json:  # keep stdout for the JSON line; Flower and Ray log to stderr / are silenced
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")

    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from he_ml.aggregation import aggregation_context
    from he_ml.integrations.flower import EncryptedClient, EncryptedFedAvg, KeyHolder, arrays_to_record

    partitions, (x_te, y_te) = load_partitions(args.clients)
    ctx = aggregation_context(args.scheme, max_clients=args.clients, max_value=MAX_VALUE, precision_bits=24,
                              key_bits=args.key_bits)
    public = ctx.public_context().to_bytes()
    # What the clients hold: the public context, or (clients-hold-the-key mode) the shared secret one.
    client_ctx = public if args.mode == "key-holder" else ctx.to_bytes(include_secret_key=True)
    key_holder = KeyHolder(ctx, max_value=MAX_VALUE) if args.mode == "key-holder" else None
    dim = partitions[0][0].shape[1]

    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        client = EncryptedClient(client_ctx, max_value=MAX_VALUE)
        weights = client.global_arrays(msg)
        x, y = partitions[int(context.node_config["partition-id"])]
        w, b = local_train(weights["w"], float(weights["b"][0]), x, y)
        return client.reply(msg, {"w": w, "b": np.array([b])}, {"num-examples": len(y)})

    out: dict = {}
    server_app = ServerApp()

    @server_app.main()
    def server_main(grid: Grid, context: Context) -> None:
        strategy = EncryptedFedAvg(public, key_holder=key_holder, fraction_evaluate=0.0,
                                   min_train_nodes=args.clients, min_available_nodes=args.clients)
        init = arrays_to_record({"w": np.zeros(dim), "b": np.zeros(1)})
        out["result"] = strategy.start(grid=grid, initial_arrays=init, num_rounds=args.rounds)

    t0 = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=args.clients,
                   backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}})
    seconds = time.perf_counter() - t0
    if "result" not in out:
        raise SystemExit("the Flower simulation did not complete (see the log above)")

    record = out["result"].arrays
    if args.mode == "key-holder":
        final = {k: v.numpy() for k, v in record.items()}
    else:  # the server holds only the encrypted total: a client (key holder) decrypts it
        from flwr.app import RecordDict

        msg = Message(content=RecordDict({"arrays": record}), dst_node_id=0, message_type="train")
        final = EncryptedClient(client_ctx, max_value=MAX_VALUE).global_arrays(msg)
    w, b = final["w"], float(final["b"][0])
    w_ref, b_ref = plain_fedavg(partitions, args.rounds)
    res = {
        "scheme": args.scheme, "mode": args.mode, "clients": args.clients, "rounds": args.rounds,
        "server_record_keys": list(record), "accuracy_encrypted": accuracy(w, b, x_te, y_te),
        "accuracy_plain_fedavg": accuracy(w_ref, b_ref, x_te, y_te), "test_samples": int(len(y_te)),
        "max_weight_difference": float(max(np.max(np.abs(w - w_ref)), abs(b - b_ref))),
        "totals_decrypted_by_key_holder": None if key_holder is None else key_holder.totals_decrypted,
        "simulation_seconds": seconds,
    }
    if args.json:
        print(json.dumps(res), flush=True)
    else:
        print(f"\n{args.scheme} ({args.mode}), {args.clients} clients, {args.rounds} rounds, {seconds:.1f} s")
        print(f"  accuracy, encrypted FedAvg : {res['accuracy_encrypted']:.4f}")
        print(f"  accuracy, plaintext FedAvg : {res['accuracy_plain_fedavg']:.4f}")
        print(f"  max |w_enc - w_plain|      : {res['max_weight_difference']:.2e}")
        print(f"  server's final record keys : {res['server_record_keys']}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(0)  # Ray leaves non-daemon threads behind; do not wait for them
