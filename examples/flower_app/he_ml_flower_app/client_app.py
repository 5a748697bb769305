"""ClientApp: decrypt the encrypted global model, train locally, reply with an encrypted update.

Node config (``flower-supernode --node-config``): ``partition-id``, ``num-partitions`` and
``he-ml-context`` (path of the shared SECRET context; clients-hold-the-key mode).
"""
from __future__ import annotations

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from he_ml.integrations.flower import EncryptedClient

from .task import MAX_VALUE, load_partitions, local_train

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = context.node_config
    with open(str(cfg["he-ml-context"]), "rb") as f:
        client = EncryptedClient(f.read(), max_value=MAX_VALUE)
    partitions, _ = load_partitions(int(cfg["num-partitions"]))
    x, y = partitions[int(cfg["partition-id"])]
    weights = client.global_arrays(msg)  # the encrypted total, decrypted and averaged here
    w, b = local_train(weights["w"], float(weights["b"][0]), x, y)
    return client.reply(msg, {"w": w, "b": np.array([b])}, {"num-examples": len(y)})
