"""Encrypted gradient summation: clients encrypt, an untrusted server sums, the key holder decrypts.

Part 1 (numpy): 20 clients send a dict of gradient arrays; the server sums the blobs as a
stream with only the public context; the key holder decrypts the average.

Part 2 (PyTorch, optional): 4 clients train a small model locally, send their encrypted
``state_dict``; the key holder averages it back into a model (FedAvg with encryption), with
distributed differential privacy (every client clips its update and adds its share of
the Gaussian noise before encrypting).

Usage::

    python examples/encrypted_gradient_sum.py                 # Paillier (default)
    python examples/encrypted_gradient_sum.py --scheme bfv    # or ckks
"""
from __future__ import annotations

import argparse

import numpy as np

import he_ml
from he_ml.aggregation import DPConfig, GradientAggregator, aggregation_context, epsilon


def numpy_demo(scheme: str) -> None:
    clients = 20
    # Key holder: a context sized for the workload (128-bit security), public copy for everyone else.
    ctx = aggregation_context(scheme, max_clients=clients, max_value=1.0, precision_bits=24)
    public_bytes = ctx.public_context().to_bytes()
    print(f"[numpy] {scheme}: {ctx!r}\n        public context: {len(public_bytes) / 1e3:.0f} kB")

    rng = np.random.default_rng(0)  # demo data
    grads = [{"layer1.weight": rng.uniform(-1, 1, (16, 8)), "layer1.bias": rng.uniform(-1, 1, 16)}
             for _ in range(clients)]

    # Clients: encrypt with the public context only.
    client = GradientAggregator(he_ml.load_context(public_bytes), max_value=1.0, precision_bits=24)
    blobs = [client.encrypt(g) for g in grads]
    print(f"        one client blob: {len(blobs[0]):,} bytes for {16 * 8 + 16} values")

    # Server: streams the blobs (a generator would do: it holds one blob at a time).
    server = GradientAggregator(he_ml.load_context(public_bytes), max_clients=clients, max_value=1.0)
    total = server.sum(iter(blobs))

    # Key holder: decrypt the average.
    key_holder = GradientAggregator(ctx, max_value=1.0, precision_bits=24)
    mean = key_holder.decrypt(total, count=GradientAggregator.count_of(total))
    for name in mean:
        expected = np.mean([g[name] for g in grads], axis=0)
        print(f"        {name:<14} shape {mean[name].shape}, max |error| = "
              f"{np.max(np.abs(mean[name] - expected)):.2e}")


def torch_demo(scheme: str) -> None:
    try:
        import torch
    except ImportError:
        print("[torch] PyTorch is not installed; skipping (pip install 'he_ml[torch]').")
        return
    from he_ml.integrations.torch import numpy_to_state_dict, state_dict_to_numpy

    clients, rounds = 4, 3
    torch.manual_seed(0)
    x = torch.randn(400, 5)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5]) > 0).float()
    parts = list(zip(x.chunk(clients), y.chunk(clients)))
    model = torch.nn.Linear(5, 1)

    # Distributed DP on model *deltas*: each client clips to norm 1 and adds its noise share.
    dp = DPConfig(clip_norm=1.0, noise_multiplier=0.5, mode="distributed", num_clients=clients)
    ctx = aggregation_context(scheme, max_clients=clients, max_value=4.0, precision_bits=24)
    client = GradientAggregator(ctx.public_context(), dp=dp, max_value=4.0, precision_bits=24)
    server = GradientAggregator(ctx.public_context(), max_clients=clients, max_value=4.0)
    key_holder = GradientAggregator(ctx, dp=dp, max_value=4.0, precision_bits=24)

    for r in range(rounds):
        global_state = state_dict_to_numpy(model.state_dict())
        blobs = []
        for xb, yb in parts:
            local = torch.nn.Linear(5, 1)
            local.load_state_dict(model.state_dict())
            opt = torch.optim.SGD(local.parameters(), lr=0.5)
            for _ in range(10):
                opt.zero_grad()
                torch.nn.functional.binary_cross_entropy_with_logits(local(xb).squeeze(1), yb).backward()
                opt.step()
            delta = {k: v - global_state[k] for k, v in state_dict_to_numpy(local.state_dict()).items()}
            blobs.append(client.encrypt(delta))
        mean_delta = key_holder.decrypt(server.sum(blobs), count=clients)
        model.load_state_dict(numpy_to_state_dict({k: global_state[k] + mean_delta[k] for k in global_state},
                                                  like=model.state_dict()))
        acc = ((model(x).squeeze(1) > 0).float() == y).float().mean().item()
        print(f"[torch] round {r + 1}: accuracy {acc:.3f}")
    report = epsilon(noise_multiplier=dp.accounting_noise_multiplier(6), sampling_rate=1.0, rounds=rounds,
                     delta=1e-5)
    print(f"[torch] privacy after {rounds} rounds: {report}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scheme", choices=["paillier", "bfv", "ckks"], default="paillier")
    args = ap.parse_args()
    numpy_demo(args.scheme)
    torch_demo(args.scheme)
