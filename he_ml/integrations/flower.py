"""Flower (flwr 1.x, Message API): federated averaging where the server only ever sums ciphertexts.

* :class:`EncryptedFedAvg` -- a ``flwr.serverapp.strategy.FedAvg`` whose
  ``aggregate_train`` sums the clients' encrypted updates with
  :class:`he_ml.aggregation.GradientAggregator` on a **public** context (it refuses a
  context that holds a secret key) and never decrypts anything.
* :class:`EncryptedClient` -- the ClientApp side: read the global model from a train
  message, encrypt the locally trained model and build the reply (with a signed receipt
  when it has an identity).
* :class:`KeyHolder` -- the party that holds the secret key and turns an encrypted total
  into the averaged model, under a :class:`he_ml.aggregation.policy.DecryptionPolicy` when
  it knows the clients' identities.
* :func:`run_masked_round` / :func:`masked_client_step` -- a masked round
  (:mod:`he_ml.aggregation.masking`, SecAgg with dropout recovery, HE-free or over BFV/Paillier)
  carried by Flower messages: four exchanges per round, client state in ``context.state``; the
  policy key holder unmasks the total with ``KeyHolder.release(total, round_id=..., evidence=...)``.
* :class:`MaskedFedAvg` -- a FedAvg strategy whose every training round is such a masked round
  (``strategy.start(grid=grid, initial_arrays=..., num_rounds=...)``, like Flower's own strategies).

Trust model (two deployments, one strategy)
-------------------------------------------
``key_holder=KeyHolder(secret_ctx, identities={id: ed25519_public_key}, min_clients=m)`` --
**out-of-band key holder with a policy (recommended).** Clients are created with
``EncryptedClient(public_ctx, client_id=i, identity=key_i, key_holder_key=kh.public_key)``: each
reply carries the blob and a receipt signed over (run id / server round, client id, the blob's
SHA-256 and a per-round X25519 key). For Paillier and BFV every client also adds a *round mask*
inside its plaintext that only the key holder can remove, for exactly the clients whose receipts
it verified. The key holder decrypts each round id once, only with >= ``min_clients`` valid
receipts, and ignores the blob's ``count`` field in favour of the receipts. So a server that
deviates -- forwards one client's blob with ``count`` edited and the checksum recomputed, replays a
total 200 times, edits a count -- is refused, or gets uniformly random values (BFV). CKKS cannot
carry exact masks: the strategy then forwards the blobs and the key holder checks them against
the receipts and sums them itself (it then *receives* the individual ciphertexts; it only ever
decrypts the sum). CKKS releases are smudged before decoding, 2^-40 statistical distance
(Li-Micciancio countermeasure, see :mod:`he_ml.aggregation.flooding`). The key holder learns the average each round, like the server.
Collusion of server and key holder reveals individual updates (the key holder can remove one
client's round mask); masked rounds (:mod:`he_ml.aggregation.masking`) or a committee remove that
trust.

``key_holder=KeyHolder(secret_ctx)`` without identities -- **unauthenticated key holder (legacy).**
It decrypts each round id and each total once and smudges CKKS releases, but it cannot tell a
total from a single forwarded blob: a deviating server can obtain one client's update. Use it
only with a server you trust to follow the protocol.

``key_holder=None`` -- **clients hold the key.** Every client holds the same secret
context (distributed out of band, e.g. by the consortium); the server stores and
broadcasts the *encrypted* total, and each client decrypts it at the start of the next
round. The server never sees any plaintext model; a client who obtained another client's
blob (which only the server receives) could decrypt it, so the server must not collude
with clients.

In all modes the blob metadata (shapes, count, bounds) is public, the averaging is
unweighted (the mean over the clients that replied: give clients partitions of similar
size, or scale updates by their example count before sending), and clients must send
values within the declared ``max_value`` (checked on the client; a malicious client can
still send any valid encryption -- authenticity of *values* is out of scope, as in FedAvg itself).
Differential privacy composes: give the clients a ``DPConfig`` (distributed mode) through
``aggregator_options={"dp": cfg}`` and the total is already noised when anyone decrypts it; the
policy key holder tops up the noise of clients that did not reply.

Requires ``pip install 'he_ml[flower]'``; only this module imports ``flwr``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

import hashlib

from ..aggregation import GradientAggregator
from ..aggregation.flooding import DEFAULT_SECURITY_BITS, _check_security, release_plan
from ..aggregation.policy import DecryptionPolicy, PolicyClient
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

__all__ = ["EncryptedFedAvg", "EncryptedClient", "KeyHolder", "UPDATE_RECORD", "ENCRYPTED_MODEL_KEY", "round_id_of",
           "MASKED_RECORD", "masked_client_step", "run_masked_round", "MaskedFedAvg"]

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
        Central mode: the key holder adds the noise to the sum before averaging. Distributed
        mode (policy key holder): it tops up the noise of clients that did not reply.
    identities : mapping int -> bytes, optional
        The clients' Ed25519 public keys (``he_ml.aggregation.identity_public_key``). With them
        the key holder enforces a :class:`~he_ml.aggregation.policy.DecryptionPolicy`: one
        decryption per round id, contributors proven by signed receipts, round masks
        (Paillier/BFV). Without them it is the unauthenticated legacy key holder.
    min_clients : int, default 2
        Fewest proven contributors a released average may have (policy key holder).
    security_bits : int, default 40
        Statistical security of released CKKS averages: smudged to distance ``<= 2^-security_bits``
        (:mod:`he_ml.aggregation.flooding`); the CKKS context must be planned for release
        (``aggregation_context("ckks", ...)``), else a `ParameterError` names one that is.
    state_path : str, optional
        File that records decrypted round ids across restarts.
    **aggregator_options
        Passed to :class:`GradientAggregator` (``max_value``, ``precision_bits``).

    Raises
    ------
    SecretKeyMissingError
        If ``context`` has no secret key.
    """

    def __init__(self, context: SchemeContext | bytes, *, dp: Any = None, identities: Mapping[int, bytes] | None = None,
                 min_clients: int = 2, security_bits: int = DEFAULT_SECURITY_BITS, state_path: str | None = None,
                 **aggregator_options: Any) -> None:
        context = _as_context(context, "KeyHolder context")
        if not context.has_secret_key:
            raise SecretKeyMissingError(
                f"KeyHolder needs the context with the secret key; got a public {context.name} context. "
                f"Create the key holder from the context you generated, not from public_context()."
            )
        self.context = context
        self.policy: DecryptionPolicy | None = None
        if identities is not None:
            self.policy = DecryptionPolicy(context, min_clients=min_clients, identities=identities, dp=dp,
                                           security_bits=security_bits, state_path=state_path,
                                           max_value=aggregator_options.get("max_value"),
                                           precision_bits=aggregator_options.get("precision_bits"))
        self._agg = GradientAggregator(context, dp=dp, **aggregator_options)
        self.security_bits = _check_security(security_bits)
        if context.name == "ckks":
            release_plan(context, min_clients, security_bits=self.security_bits)  # refuse early, with a hint
        self._seen_rounds: set[str] = set()
        self._seen_totals: set[bytes] = set()
        self.totals_decrypted = 0

    @property
    def public_key(self) -> bytes | None:
        """The X25519 public key clients use for round masks (``key_holder_key``); None without a policy."""
        return None if self.policy is None else self.policy.public_key

    @property
    def needs_blobs(self) -> bool:
        """True when the strategy must forward the blobs (policy key holder on CKKS)."""
        return self.policy is not None and self.context.name == "ckks"

    def release(self, total: bytes | None, *, round_id: Any, receipts: Any = None, blobs: Any = None,
                evidence: bytes | None = None) -> dict[str, np.ndarray]:
        """The average of a proven total, under the policy (smudged for CKKS).

        Raises
        ------
        SecretKeyMissingError
            Replayed round id, fewer than ``min_clients`` proven contributors, no receipts.
        InvalidCiphertextError
            Forged receipts, blobs that do not match them, or a total that does not unmask.
        ParameterError
            If this key holder has no ``identities`` (no policy).
        """
        if self.policy is None:
            raise ParameterError("release() needs a policy key holder: create KeyHolder(ctx, identities={...}, "
                                 "min_clients=...) with the clients' Ed25519 public keys.")
        mean = self.policy.decrypt(total, round_id=round_id, receipts=None if evidence is not None else receipts,
                                   evidence=evidence, blobs=blobs, release=True, average=True)
        self.totals_decrypted += 1
        return mean if isinstance(mean, dict) else {"update": mean}

    def __call__(self, total: bytes | None, *, round_id: Any = None, receipts: Any = None,
                 blobs: Any = None) -> dict[str, np.ndarray]:
        """Average of the updates summed in ``total`` (a dict of arrays).

        A policy key holder requires ``round_id`` and ``receipts`` (see :meth:`release`). The
        legacy key holder decrypts each ``round_id`` (when given) and each total's bytes once,
        divides by the blob's count field and smudges CKKS releases.
        """
        if self.policy is not None:
            if receipts is None or round_id is None:
                raise SecretKeyMissingError(
                    "this key holder enforces a policy: it decrypts only totals with the clients' signed receipts "
                    "and a round id. Give the clients identities (EncryptedClient(..., client_id=, identity=, "
                    "key_holder_key=)) so EncryptedFedAvg forwards their receipts.")
            return self.release(total, round_id=round_id, receipts=receipts, blobs=blobs)
        digest = hashlib.sha256(total).digest()
        rid = None if round_id is None else str(round_id)
        if digest in self._seen_totals or (rid is not None and rid in self._seen_rounds):
            raise SecretKeyMissingError(
                f"this total (or round id {rid!r}) was already decrypted; the key holder decrypts each once "
                f"(averaging repeated releases would strip their noise).")
        count = GradientAggregator.count_of(total)
        flat = self._agg.decrypt(total, release_count=count, security_bits=self.security_bits)
        self._seen_totals.add(digest)
        if rid is not None:
            self._seen_rounds.add(rid)
        mean = flat / count if not isinstance(flat, dict) else {k: v / count for k, v in flat.items()}
        self.totals_decrypted += 1
        if not isinstance(mean, dict):
            return {"update": mean}
        return mean


def round_id_of(message: Message, configrecord_key: str = "config") -> str:
    """The round id a train message belongs to: ``"<run id>/<server round>"``.

    Raises
    ------
    ParameterError
        If the message carries no ``server-round`` in its config record.
    """
    try:
        server_round = message.content[configrecord_key]["server-round"]
    except (KeyError, TypeError) as e:
        raise ParameterError(f"the train message has no {configrecord_key!r}/'server-round' entry; signed "
                             f"replies need the round (EncryptedFedAvg / FedAvg.configure_train sets it).") from e
    return f"{message.metadata.run_id}/{int(server_round)}"


class EncryptedClient:
    """ClientApp helper: decode the global model, encrypt the local one, build the reply.

    Parameters
    ----------
    context : SchemeContext or bytes
        The public context (out-of-band key-holder mode) or the shared secret context
        (clients-hold-the-key mode).
    client_id : int, optional
        This client's id registered with the key holder (with ``identity``).
    identity : Ed25519PrivateKey or bytes, optional
        Signs a receipt for every reply (policy key holder). Requires ``client_id``.
    key_holder_key : bytes, optional
        The key holder's X25519 public key (``KeyHolder.public_key``): Paillier/BFV updates get a
        round mask only the key holder removes. Required with ``identity`` on Paillier/BFV.
    **aggregator_options
        Passed to :class:`GradientAggregator` (``max_value``, ``precision_bits``, ``dp``).

    Examples
    --------
    In a ``ClientApp``::

        @app.train()
        def train(msg, context):
            client = EncryptedClient(CTX_BYTES, max_value=8.0, client_id=MY_ID, identity=MY_KEY,
                                     key_holder_key=KEY_HOLDER_X25519)
            weights = client.global_arrays(msg)
            new_weights, n = local_training(weights)
            return client.reply(msg, new_weights, {"num-examples": n})
    """

    def __init__(self, context: SchemeContext | bytes, *, client_id: int | None = None, identity: Any = None,
                 key_holder_key: bytes | None = None, **aggregator_options: Any) -> None:
        self.context = _as_context(context, "EncryptedClient context")
        self._agg = GradientAggregator(self.context, **aggregator_options)
        self._signer: PolicyClient | None = None
        if identity is not None:
            if client_id is None:
                raise ParameterError("an EncryptedClient with an identity needs its registered client_id.")
            public = self.context.public_context() if self.context.has_secret_key else self.context
            self._signer = PolicyClient(public, client_id, identity, key_holder_key=key_holder_key,
                                        **aggregator_options)

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
        """The blob of one update (dict of arrays), without receipt or round mask."""
        return self._agg.encrypt(dict(arrays))

    def encrypt_signed(self, arrays: Mapping[str, np.ndarray], round_id: Any) -> tuple[bytes, bytes]:
        """The (round-masked) blob of one update and its signed receipt for ``round_id``.

        Raises
        ------
        ParameterError
            If this client has no identity.
        """
        if self._signer is None:
            raise ParameterError("encrypt_signed needs an identity: EncryptedClient(ctx, client_id=..., "
                                 "identity=..., key_holder_key=...).")
        return self._signer.encrypt(dict(arrays), round_id)

    def reply(self, message: Message, arrays: Mapping[str, np.ndarray],
              metrics: Mapping[str, float] | None = None) -> Message:
        """Reply to a train message with the encrypted ``arrays`` (and receipt) and plaintext ``metrics``."""
        if self._signer is not None:
            blob, receipt = self.encrypt_signed(arrays, round_id_of(message))
            record = ConfigRecord({"update": blob, "receipt": receipt})
        else:
            record = ConfigRecord({"update": self.encrypt(arrays)})
        content = RecordDict({UPDATE_RECORD: record})
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
        when the clients sign their replies it is called as ``key_holder(total, round_id=...,
        receipts=[...], blobs=[...] or None)`` (``round_id`` is ``"<run id>/<server round>"``; blobs
        only when ``key_holder.needs_blobs``). It returns the averaged model, which becomes the next global model (plaintext on the
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
        signed = ["receipt" in m.content[UPDATE_RECORD] for m in with_blob]
        if any(signed) and not all(signed):
            raise InvalidCiphertextError(
                f"round {server_round}: {sum(signed)} of {len(signed)} replies carry a receipt; all clients of a "
                f"round must sign (or none). Give every EncryptedClient its identity.")
        needs_blobs = bool(getattr(self.key_holder, "needs_blobs", False))
        blobs = (m.content[UPDATE_RECORD]["update"] for m in with_blob)  # consumed one at a time
        if needs_blobs:
            blobs = list(blobs)
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
        if all(signed):
            round_id = f"{with_blob[0].metadata.run_id}/{server_round}"
            receipts = [m.content[UPDATE_RECORD]["receipt"] for m in with_blob]
            mean = self.key_holder(total, round_id=round_id, receipts=receipts,
                                   blobs=blobs if needs_blobs else None)
        else:
            mean = self.key_holder(total)
        return arrays_to_record(mean), metrics


# ---------------------------------------------------------------------------- masked rounds over Flower
#: ConfigRecord key of masked-round stage messages (both directions).
MASKED_RECORD = "he_ml.masked"
_STAGES = ("hello", "advertise", "share_keys", "masked_input", "unmask")


def masked_client_step(message: Message, state: RecordDict, *, context: SchemeContext | bytes | None,
                       client_id: int, update: Any = None, **client_options: Any) -> Message:
    """ClientApp side of a masked round (:mod:`he_ml.aggregation.masking`): run the stage the message names.

    The client's private round state (keys, shares) is kept in ``state`` (the ClientApp's
    ``context.state``) between the four messages of a round, and removed after the last one (or,
    for a round the client dropped out of, when its next round starts).

    Parameters
    ----------
    message : Message
        A message from :func:`run_masked_round` (content ``MASKED_RECORD``).
    state : RecordDict
        The ClientApp's ``context.state``.
    context : SchemeContext, bytes or None
        The public Paillier/BFV context, or None for the HE-free backend.
    client_id : int
        This client's id in the round.
    update : array or dict of arrays, optional
        Required for the ``masked_input`` stage (train first, then pass the update).
    **client_options
        ``max_value``, ``precision_bits``, ``dp``, ``identity``, ``peer_identities``,
        ``unmasker_key`` as for :class:`~he_ml.aggregation.masking.MaskedClient`.

    Returns
    -------
    Message
        The reply, carrying this stage's bytes.

    Raises
    ------
    ParameterError
        If the stage is unknown, or ``update`` is missing at the ``masked_input`` stage.
    """
    from ..aggregation.masking import MaskedClient, RoundSetup

    cfg = message.content[MASKED_RECORD]
    stage = cfg["stage"]
    if stage not in _STAGES:
        raise ParameterError(f"unknown masked-round stage {stage!r}; expected one of {_STAGES}.")
    if stage == "hello":  # MaskedFedAvg asks each node which client id it is (ids bind identities)
        return Message(content=RecordDict({MASKED_RECORD: ConfigRecord({"payload": str(int(client_id)).encode()})}),
                       reply_to=message)
    neighbors = int(cfg["neighbors"]) or None
    setup = RoundSetup.create(str(cfg["round"]), [int(c) for c in cfg["clients"]], int(cfg["threshold"]), neighbors)
    if isinstance(context, (bytes, bytearray)):
        context = load_context(bytes(context))
    client = MaskedClient(context, setup, client_id, **client_options)
    key = f"{MASKED_RECORD}/{setup.round_id}"
    if stage != "advertise":
        if key not in state:
            raise ParameterError(f"masked round {setup.round_id!r}: no state for stage {stage!r}; the client missed "
                                 f"an earlier stage (it counts as dropped).")
        client.restore_state(state[key]["state"])
    payload = cfg.get("payload", b"")
    if stage == "advertise":
        for stale in [k for k in state if k.startswith(MASKED_RECORD + "/")]:
            del state[stale]  # a round this client dropped out of: its secrets are no longer needed
        out = client.advertise_keys()
    elif stage == "share_keys":
        out = client.share_keys(payload)
    elif stage == "masked_input":
        if update is None:
            raise ParameterError("the masked_input stage needs the client's update (train, then pass update=...).")
        out = client.masked_input(payload, update)
    else:
        out = client.unmask(payload)
    if stage == "unmask":
        del state[key]
    else:
        state[key] = ConfigRecord({"state": client.state_bytes()})
    return Message(content=RecordDict({MASKED_RECORD: ConfigRecord({"payload": out})}), reply_to=message)


def run_masked_round(grid: Any, nodes: Mapping[int, int], server: Any, *,
                     train_content: RecordDict | None = None, timeout: float | None = None) -> Any:
    """ServerApp side: run the four stages of a masked round over a Flower ``Grid``.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
    nodes : mapping client id -> node id
        The round's clients (the ids of ``server.setup.clients``) and their Flower nodes.
    server : he_ml.aggregation.masking.MaskedServer
        Fresh server state for this round.
    train_content : RecordDict, optional
        Extra content (e.g. the global model under ``"arrays"``) sent with the ``masked_input``
        stage, where clients train.
    timeout : float, optional
        Per-stage timeout passed to ``grid.send_and_receive``; clients that do not answer (or
        answer with an error) count as dropped.

    Returns
    -------
    MaskedResult
        ``result.value`` (HE-free) or ``result.total`` / ``result.evidence`` for the key holder
        (``KeyHolder.release(total, round_id=..., evidence=...)``).
    """
    from flwr.app.message_type import MessageType

    setup = server.setup
    node_to_client = {int(n): int(c) for c, n in nodes.items()}
    base = {"round": setup.round_id, "clients": list(setup.clients), "threshold": setup.threshold,
            "neighbors": setup.neighbors or 0}

    def exchange(stage: str, payloads: Mapping[int, bytes]) -> dict[int, bytes]:
        msgs = []
        for cid, payload in payloads.items():
            content = RecordDict({MASKED_RECORD: ConfigRecord(dict(base, stage=stage, payload=payload))})
            if stage == "masked_input" and train_content is not None:
                for k, v in train_content.items():
                    content[k] = v
            msgs.append(Message(content=content, dst_node_id=int(nodes[cid]), message_type=MessageType.TRAIN,
                                group_id=setup.round_id))
        out = {}
        for reply in grid.send_and_receive(msgs, timeout=timeout):
            if reply.has_error() or MASKED_RECORD not in reply.content:
                continue
            out[node_to_client[reply.metadata.src_node_id]] = reply.content[MASKED_RECORD]["payload"]
        return out

    adverts = exchange("advertise", {c: b"" for c in setup.clients})
    keys = server.receive_keys(adverts.values())
    shares = exchange("share_keys", {c: keys for c in adverts})
    bundles = server.receive_shares(shares.values())
    masked = exchange("masked_input", bundles)
    request = server.receive_masked_inputs(masked.values())
    answers = exchange("unmask", {c: request for c in masked})
    return server.receive_unmask(answers.values())


class MaskedFedAvg(FedAvg):
    """FedAvg whose training rounds are masked rounds (SecAgg/SecAgg+ with dropout recovery).

    Each round the strategy samples nodes as ``FedAvg`` does, asks each sampled node for its client
    id (a ``"hello"`` stage), runs the four stages of :func:`run_masked_round` (the global model
    travels with the ``masked_input`` stage, where clients train), and turns the round's result into
    the next global model: over Paillier/BFV the policy key holder releases the average from the
    round's evidence (``key_holder.release(total, round_id=..., evidence=...)``); HE-free, the server
    unmasks the sum itself and averages it. Evaluation is ``FedAvg``'s. ClientApps answer with
    :func:`masked_client_step`.

    Parameters
    ----------
    public_context : SchemeContext, bytes or None
        The public Paillier/BFV context (masks live in the plaintext: mod ``n`` or mod ``t``), or
        None for the HE-free backend (integers mod ``2^k``; the server learns the sum).
    key_holder : KeyHolder, optional
        Required with a context: a policy key holder (``KeyHolder(ctx, identities=..., min_clients=...)``).
    threshold : int, optional
        Shamir threshold of the round (default :func:`he_ml.aggregation.masking.default_threshold`);
        a round needs this many survivors.
    neighbors : int, optional
        SecAgg+ degree (even); None: every pair of clients shares a mask.
    max_value, precision_bits, dp
        As for :class:`~he_ml.aggregation.masking.MaskedServer` (the clients must use the same).
    **fedavg_options
        ``fraction_train``, ``min_train_nodes``, ``min_available_nodes``, evaluation options, ...

    Notes
    -----
    Threat model: that of :mod:`he_ml.aggregation.masking` -- the server may deviate (drop,
    reorder, lie about dropouts) and collude with fewer than ``threshold`` clients and learns only
    the sum of the survivors (HE-free) or nothing (over HE: the key holder's policy releases the
    average once per round id, with the survivors' signatures as evidence). A node that claims
    another's client id is dropped by the protocol when identities are used (its signatures fail);
    nodes claiming the same id are all left out of the round. Round ids are
    ``"<run id>/masked/<server round>"``. A round that ends with fewer survivors than the threshold
    is void: it is logged, the global model is kept, and its metrics say ``aborted``; the next
    round starts afresh. ``self.last_result`` keeps the latest
    :class:`~he_ml.aggregation.masking.MaskedResult` (``self.last_round_id`` its round id); train
    metrics report ``survivors`` and
    ``dropped`` per round.
    """

    def __init__(self, public_context: SchemeContext | bytes | None = None, *, key_holder: Any = None,
                 threshold: int | None = None, neighbors: int | None = None, max_value: float | None = None,
                 precision_bits: int | None = None, dp: Any = None, **fedavg_options: Any) -> None:
        super().__init__(**fedavg_options)
        ctx = None if public_context is None else _as_context(public_context, "MaskedFedAvg public_context")
        if ctx is not None and ctx.has_secret_key:
            raise ParameterError("MaskedFedAvg must run with the public context only; pass ctx.public_context() "
                                 "and give the secret context to the KeyHolder.")
        if ctx is not None and (key_holder is None or not callable(getattr(key_holder, "release", None))):
            raise ParameterError("MaskedFedAvg over HE needs key_holder=KeyHolder(secret_ctx, identities=..., "
                                 "min_clients=...): only the policy key holder can unmask a masked total.")
        self.public_context = ctx
        self.key_holder = key_holder
        self.threshold = threshold
        self.neighbors = neighbors
        self._party = dict(max_value=max_value, precision_bits=precision_bits, dp=dp)
        self.last_result: Any = None
        self.last_round_id: str | None = None

    def summary(self) -> None:
        super().summary()
        from flwr.common.logger import log
        from logging import INFO

        backend = "HE-free" if self.public_context is None else f"{self.public_context.name} (public)"
        log(INFO, "\t└──> he_ml masked rounds: %s, neighbours %s", backend, self.neighbors or "all")

    def _client_ids(self, grid: Any, nodes: list[int], timeout: float) -> dict[int, int]:
        """client id -> node id for the sampled nodes (nodes claiming the same id are left out)."""
        from flwr.app.message_type import MessageType

        msgs = [Message(content=RecordDict({MASKED_RECORD: ConfigRecord({"stage": "hello"})}),
                        dst_node_id=int(n), message_type=MessageType.TRAIN) for n in nodes]
        claims: dict[int, list[int]] = {}
        for reply in grid.send_and_receive(msgs, timeout=timeout):
            if reply.has_error() or MASKED_RECORD not in reply.content:
                continue
            try:
                cid = int(bytes(reply.content[MASKED_RECORD]["payload"]).decode())
            except (KeyError, TypeError, ValueError):
                continue
            claims.setdefault(cid, []).append(int(reply.metadata.src_node_id))
        return {cid: ns[0] for cid, ns in claims.items() if len(ns) == 1 and 1 <= cid < 2**31}

    def train_round(self, grid: Any, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                    timeout: float) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """One masked training round; returns the new global arrays and the round's metrics."""
        from ..aggregation.masking import MaskedServer, RoundSetup

        sampled = [int(m.metadata.dst_node_id) for m in self.configure_train(server_round, arrays, config, grid)]
        ids = self._client_ids(grid, sampled, timeout)
        if len(ids) < 2:
            return None, None
        run_id = getattr(getattr(grid, "run", None), "run_id", 0)
        setup = RoundSetup.create(f"{run_id}/masked/{server_round}", sorted(ids), self.threshold, self.neighbors)
        server = MaskedServer(self.public_context, setup, **self._party)
        content = RecordDict({"arrays": arrays, "config": ConfigRecord({**dict(config), "server-round": server_round})})
        try:
            result = run_masked_round(grid, ids, server, train_content=content, timeout=timeout)
        except SecretKeyMissingError as e:  # fewer survivors than the threshold: the round is void
            from flwr.common.logger import log
            from logging import WARNING

            log(WARNING, "he_ml masked round %s aborted, the global model is kept: %s", setup.round_id, e)
            self.last_result, self.last_round_id = None, setup.round_id
            return None, MetricRecord({"survivors": 0, "dropped": len(ids), "aborted": 1})
        self.last_result, self.last_round_id = result, setup.round_id
        if self.public_context is None:
            value = result.value if isinstance(result.value, dict) else {"update": result.value}
            mean = {k: np.asarray(v) / len(result.survivors) for k, v in value.items()}
        else:
            mean = self.key_holder.release(result.total, round_id=setup.round_id, evidence=result.evidence)
        metrics = MetricRecord({"survivors": len(result.survivors), "dropped": len(result.dropped)})
        return arrays_to_record(mean), metrics

    def start(self, grid: Any, initial_arrays: ArrayRecord, num_rounds: int = 3, timeout: float = 3600,
              train_config: ConfigRecord | None = None, evaluate_config: ConfigRecord | None = None,
              evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None) -> Any:
        """Run ``num_rounds`` masked rounds (and FedAvg's evaluation); returns Flower's ``Result``."""
        from flwr.serverapp.strategy import Result

        self.summary()
        train_config = ConfigRecord() if train_config is None else train_config
        evaluate_config = ConfigRecord() if evaluate_config is None else evaluate_config
        result = Result()
        result.arrays = initial_arrays  # the global model so far, also when every round is void
        if evaluate_fn:
            res = evaluate_fn(0, initial_arrays)
            if res is not None:
                result.evaluate_metrics_serverapp[0] = res
        arrays = initial_arrays
        for rnd in range(1, num_rounds + 1):
            new, metrics = self.train_round(grid, rnd, arrays, train_config, timeout)
            if new is not None:
                result.arrays = arrays = new
            if metrics is not None:
                result.train_metrics_clientapp[rnd] = metrics
            replies = grid.send_and_receive(messages=self.configure_evaluate(rnd, arrays, evaluate_config, grid),
                                            timeout=timeout)
            agg = self.aggregate_evaluate(rnd, replies)
            if agg is not None:
                result.evaluate_metrics_clientapp[rnd] = agg
            if evaluate_fn:
                res = evaluate_fn(rnd, arrays)
                if res is not None:
                    result.evaluate_metrics_serverapp[rnd] = res
        return result
