"""ServerApp: encrypted FedAvg on the SuperLink with the PUBLIC context only.

Clients hold the key (``key_holder=None``): the server sums the encrypted updates and sends
the encrypted total back as the next global model; it never sees a plaintext weight. Run
config: ``num-server-rounds``, ``public-context`` (path), ``output`` (path for the final
encrypted model, optional).
"""
from __future__ import annotations

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from he_ml.integrations.flower import ENCRYPTED_MODEL_KEY, EncryptedFedAvg, arrays_to_record

from .task import load_partitions

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    with open(str(cfg["public-context"]), "rb") as f:
        public = f.read()
    nodes = int(cfg.get("min-nodes", 2))
    strategy = EncryptedFedAvg(public, key_holder=None, fraction_evaluate=0.0,
                               min_train_nodes=nodes, min_available_nodes=nodes)
    dim = load_partitions(1)[0][0][0].shape[1]
    init = arrays_to_record({"w": np.zeros(dim), "b": np.zeros(1)})
    result = strategy.start(grid=grid, initial_arrays=init, num_rounds=int(cfg["num-server-rounds"]))
    out = str(cfg.get("output", ""))
    if out:
        total = result.arrays[ENCRYPTED_MODEL_KEY].numpy().tobytes()
        with open(out, "wb") as f:
            f.write(total)
