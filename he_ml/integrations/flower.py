"""Flower (flwr 1.x, Message API): federated averaging where the server only ever sums ciphertexts.

* :class:`EncryptedFedAvg` -- a ``flwr.serverapp.strategy.FedAvg`` whose
  ``aggregate_train`` sums the clients' encrypted updates with
  :class:`he_ml.aggregation.GradientAggregator` on a **public** context (it refuses a
  context that holds a secret key) and never decrypts anything.
* :class:`EncryptedClient` -- the ClientApp side: read the global model from a train
  message, encrypt the locally trained model and build the reply.
* :class:`KeyHolder` -- the party that holds the secret key and turns an encrypted total
  into the averaged model.

Trust model (two deployments, one strategy)
-------------------------------------------
``key_holder=KeyHolder(secret_ctx)`` -- **out-of-band key holder.** A separate party
(e.g. a small service run by the data owners' consortium, reached through the callback)
decrypts only the *sum* and returns the average; the server learns the averaged model
each round (as in secure aggregation) but no individual update, and the key holder never
receives individual updates either (it only ever gets totals). Collusion of server and key
holder reveals individual updates: they must be different trust domains.

``key_holder=None`` -- **clients hold the key.** Every client holds the same secret
context (distributed out of band, e.g. by the consortium); the server stores and
broadcasts the *encrypted* total, and each client decrypts it at the start of the next
round. The server never sees any plaintext model; a client who obtained another client's
blob (which only the server receives) could decrypt it, so the server must not collude
with clients.

In both modes the blob metadata (shapes, count, bounds) is public, the averaging is
unweighted (the mean over the clients that replied: give clients partitions of similar
size, or scale updates by their example count before sending), and clients must send
values within the declared ``max_value`` (checked on the client; a malicious client can
still send any valid encryption -- authenticity is out of scope, as in FedAvg itself).
Differential privacy composes: give the clients a ``DPConfig`` (distributed mode) through
``aggregator_options={"dp": cfg}`` and the total is already noised when anyone decrypts it.

Requires ``pip install 'he_ml[flower]'``; only this module imports ``flwr``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..aggregation import GradientAggregator
from ..errors import InvalidCiphertextError, ParameterError, SecretKeyMissingError
from ..schemes import load_context
from ..schemes.base import SchemeContext

try:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "he_ml.integrations.flower needs Flower 1.x (Message API), which is not installed. Install the "
        "extra with `pip install 'he_ml[flower]'` (flwr>=1.20,<2)."
    ) from e

__all__ = ["EncryptedFedAvg", "EncryptedClient", "KeyHolder", "UPDATE_RECORD", "ENCRYPTED_MODEL_KEY"]

#: ConfigRecord key (in the reply's RecordDict) under which a client sends its blob.
UPDATE_RECORD = "he_ml"
#: ArrayRecord key that marks an encrypted global model (clients-hold-the-key mode).
ENCRYPTED_MODEL_KEY = "he_ml.encrypted_total"


def _as_context(context: SchemeContext | bytes, what: str) -> SchemeContext:
    if isinstance(context, (bytes, bytearray, memoryview)):
        return load_context(bytes(context))
    if not isinstance(context, SchemeContext):
        raise ParameterError(f"{what} must be an he_ml context or its bytes; got {type(context).__name__}.")
    return context


def arrays_to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """A dict of numpy arrays as a Flower ``ArrayRecord`` (keys and order kept)."""
    return ArrayRecord({str(k): Array(np.ascontiguousarray(v)) for k, v in arrays.items()})


def record_to_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    """A Flower ``ArrayRecord`` as a dict of numpy arrays."""
    return {k: v.numpy() for k, v in record.items()}


class KeyHolder:
    """The secret-key party: decrypts an encrypted total into the averaged model.

    Parameters
    ----------
    context : SchemeContext
        The context with the secret key.
    dp : he_ml.aggregation.DPConfig, optional
        Central-mode DP: the key holder adds the noise to the sum before averaging.
    **aggregator_options
        Passed to :class:`GradientAggregator` (``max_value``, ``precision_bits``).

    Raises
    ------
    SecretKeyMissingError
        If ``context`` has no secret key.
    """

    def __init__(self, context: SchemeContext | bytes, *, dp: Any = None, **aggregator_options: Any) -> None:
        context = _as_context(context, "KeyHolder context")
        if not context.has_secret_key:
            raise SecretKeyMissingError(
                f"KeyHolder needs the context with the secret key; got a public {context.name} context. "
                f"Create the key holder from the context you generated, not from public_context()."
            )
        self._agg = GradientAggregator(context, dp=dp, **aggregator_options)
        self.totals_decrypted = 0

    def __call__(self, total: bytes) -> dict[str, np.ndarray]:
        """Average of the updates summed in ``total`` (a dict of arrays)."""
        count = GradientAggregator.count_of(total)
        mean = self._agg.decrypt(total, count=count)
        self.totals_decrypted += 1
        if not isinstance(mean, dict):
            return {"update": mean}
        return mean


class EncryptedClient:
    """ClientApp helper: decode the global model, encrypt the local one, build the reply.

    Parameters
    ----------
    context : SchemeContext or bytes
        The public context (out-of-band key-holder mode) or the shared secret context
        (clients-hold-the-key mode).
    **aggregator_options
        Passed to :class:`GradientAggregator` (``max_value``, ``precision_bits``, ``dp``).

    Examples
    --------
    In a ``ClientApp``::

        @app.train()
        def train(msg, context):
            client = EncryptedClient(CTX_BYTES, max_value=8.0)
            weights = client.global_arrays(msg)
            new_weights, n = local_training(weights)
            return client.reply(msg, new_weights, {"num-examples": n})
    """

    def __init__(self, context: SchemeContext | bytes, **aggregator_options: Any) -> None:
        self.context = _as_context(context, "EncryptedClient context")
        self._agg = GradientAggregator(self.context, **aggregator_options)

    def global_arrays(self, message: Message, arrayrecord_key: str = "arrays") -> dict[str, np.ndarray]:
        """The global model sent by the server: plain arrays, or the encrypted total decrypted here.

        Raises
        ------
        SecretKeyMissingError
            If the server sent an encrypted model and this client holds only the public context.
        """
        record = message.content[arrayrecord_key]
        if ENCRYPTED_MODEL_KEY in record:
            total = record[ENCRYPTED_MODEL_KEY].numpy().tobytes()
            if not self.context.has_secret_key:
                raise SecretKeyMissingError(
                    "the server sent an encrypted global model (clients-hold-the-key mode), but this client "
                    "has only the public context. Give clients the shared secret context, or run the strategy "
                    "with a key_holder."
                )
            return self._agg.decrypt(total, count=GradientAggregator.count_of(total))
        return record_to_arrays(record)

    def encrypt(self, arrays: Mapping[str, np.ndarray]) -> bytes:
        """The blob of one update (dict of arrays)."""
        return self._agg.encrypt(dict(arrays))

    def reply(self, message: Message, arrays: Mapping[str, np.ndarray],
              metrics: Mapping[str, float] | None = None) -> Message:
        """Reply to a train message with the encrypted ``arrays`` and plaintext ``metrics``."""
        content = RecordDict({UPDATE_RECORD: ConfigRecord({"update": self.encrypt(arrays)})})
        if metrics:
            content["metrics"] = MetricRecord(dict(metrics))
        return Message(content=content, reply_to=message)


class EncryptedFedAvg(FedAvg):
    """FedAvg whose server sums encrypted updates and never decrypts.

    Parameters
    ----------
    public_context : SchemeContext or bytes
        The public context (the strategy refuses one with a secret key).
    key_holder : callable, optional
        ``key_holder(total_bytes) -> dict of arrays`` (e.g. :class:`KeyHolder`, or an RPC to it):
        returns the averaged model, which becomes the next global model (plaintext on the
        server). ``None``: clients hold the key; the global model stays encrypted on the server
        and travels to the clients as ``ArrayRecord({ENCRYPTED_MODEL_KEY: bytes})``.
    max_clients : int, optional
        Passed to the server's :class:`GradientAggregator` (headroom check).
    processes : int, default 1
        Worker processes for the server's sum (for thousands of clients).
    **fedavg_options
        ``fraction_train``, ``min_train_nodes``, ... as for ``flwr.serverapp.strategy.FedAvg``.

    Raises
    ------
    ParameterError
        If ``public_context`` holds a secret key, or ``key_holder`` is not callable.

    Notes
    -----
    Replies without a blob (or with an error) are logged and skipped; a blob that fails to
    parse, comes from another key or has another layout raises (a round must not silently
    average a subset). ``self.last_total`` keeps the latest encrypted total.
    """

    def __init__(self, public_context: SchemeContext | bytes, *,
                 key_holder: Callable[[bytes], Mapping[str, np.ndarray]] | None = None,
                 max_clients: int | None = None, processes: int = 1, **fedavg_options: Any) -> None:
        super().__init__(**fedavg_options)
        ctx = _as_context(public_context, "EncryptedFedAvg public_context")
        if ctx.has_secret_key:
            raise ParameterError(
                "EncryptedFedAvg must run with the public context only (the server must not be able to "
                "decrypt); pass ctx.public_context() and give the secret context to the key holder."
            )
        if key_holder is not None and not callable(key_holder):
            raise ParameterError(f"key_holder must be callable (total bytes -> dict of arrays); got "
                                 f"{type(key_holder).__name__}.")
        self.public_context = ctx
        self.key_holder = key_holder
        self.processes = processes
        self._server = GradientAggregator(ctx, max_clients=max_clients)
        self.last_total: bytes | None = None

    def summary(self) -> None:
        super().summary()
        from flwr.common.logger import log
        from logging import INFO

        mode = "out-of-band key holder" if self.key_holder is not None else "clients hold the key"
        log(INFO, "\t└──> he_ml: %s context (public), %s", self.public_context.name, mode)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sum the replies' encrypted updates; decrypt only through the key holder (if any)."""
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        with_blob = [m for m in valid if UPDATE_RECORD in m.content]
        if not with_blob:
            return None, None
        blobs = (m.content[UPDATE_RECORD]["update"] for m in with_blob)  # consumed one at a time
        try:
            total = self._server.sum(blobs, processes=self.processes)
        except (TypeError, KeyError) as e:  # a reply without bytes under "update"
            raise InvalidCiphertextError(
                f"round {server_round}: a client reply has no bytes under {UPDATE_RECORD!r}/'update'; "
                f"reply with EncryptedClient.reply()."
            ) from e
        self.last_total = total
        metrics = None
        with_metrics = [m.content for m in with_blob if "metrics" in m.content]
        if with_metrics and all(self.weighted_by_key in c["metrics"] for c in with_metrics):
            metrics = self.train_metrics_aggr_fn(with_metrics, self.weighted_by_key)
        if self.key_holder is None:
            return ArrayRecord({ENCRYPTED_MODEL_KEY: Array(np.frombuffer(total, dtype=np.uint8))}), metrics
        return arrays_to_record(self.key_holder(total)), metrics
