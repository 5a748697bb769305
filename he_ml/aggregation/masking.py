"""Masked rounds (SecAgg / SecAgg+): only the round's full sum unmasks.

A masked round runs four stages between ``n`` clients and a server (Bonawitz et al. 2017,
section 4, "Practical Secure Aggregation"; sparse neighbourhoods as in SecAgg+, Bell et al.
2020). Every stage is one method of a per-party state object that takes the previous stage's
bytes and returns the next ones; the transport (Flower, Ray, a test loop) only moves bytes.

====  ===========================================  ================================================
stage client (:class:`MaskedClient`)                server (:class:`MaskedServer`)
====  ===========================================  ================================================
0     ``advertise_keys()`` -> two X25519 public     ``receive_keys(msgs)`` -> broadcast of all keys
      keys (signed with the client's Ed25519
      identity when it has one)
1     ``share_keys(keys)`` -> Shamir shares of the  ``receive_shares(msgs)`` -> one bundle per
      mask-key secret ``s_sk`` and of the self-mask client (the server cannot read the shares)
      seed ``b``, each sealed for its holder
      (ChaCha20-Poly1305, key HKDF(X25519))
2     ``masked_input(bundle, update)`` -> the       ``receive_masked_inputs(msgs)`` -> survivor
      update plus ``PRG(b)`` plus +-``PRG(s_uv)``    list (the unmask request)
      for every neighbour ``v`` that shared
3     ``unmask(request)`` -> signature on the       ``receive_unmask(msgs)`` -> :class:`MaskedResult`
      survivor list; ``b`` shares of survivors,
      ``s_sk`` shares of dropped clients
====  ===========================================  ================================================

Masks are added *inside the plaintext* with exact modular arithmetic, in one of three places
(the ``context`` argument): ``None`` -- the HE-free backend, fixed-point integers mod ``2**k``;
a Paillier context -- one mask mod ``n`` per packed plaintext; a BFV context -- one mask mod the
plain modulus per slot. Over HE, a single masked blob or any partial sum decrypts to uniformly
random plaintexts; only the round's full sum (minus the masks of dropped clients, which the
survivors let the server rebuild) decrypts to the sum of the survivors' updates.

Self masks and the key holder. With ``unmasker_key`` (the X25519 public key of the key holder,
see :class:`MaskedUnmasker`), survivors seal their shares of the self-mask seeds to the key
holder, so the server's total still carries every survivor's self mask: it decrypts only after
the key holder removes them, once per round id (:class:`he_ml.aggregation.policy.DecryptionPolicy`).
That binds a total to its round and to its survivor set: a single blob, a partial sum, or a
total replayed under another round id decrypts to random values.

PRG and keys
------------
Pairwise mask keys: ``HKDF-SHA256(X25519(s_sk_u, s_pk_v), salt=SHA256(round), info=pair)``;
the PRG is ChaCha20 (see :mod:`he_ml.aggregation._maskdomain` for the exact expansion into
each modular domain). Client ``u`` adds ``+PRG`` for neighbours ``v > u`` and ``-PRG`` for
``v < u``, so pairs cancel in the sum. Self masks: ``b`` is 32 bytes from `secrets`.

Threshold and security argument
-------------------------------
Shares go to the client's *holders*: its neighbours and itself (``neighbors=None``: every
client, the complete graph of SecAgg). ``threshold`` ``t`` shares recover a secret; fewer reveal
nothing (Shamir, :mod:`he_ml.aggregation.shamir`). An honest client reveals, for each other
client ``v``, **either** its ``b_v`` share (``v`` survived) **or** its ``s_sk_v`` share (``v``
dropped), never both, and answers at most one unmask request per round. To unmask an
individual input ``y_v`` the server needs both ``b_v`` and ``s_sk_v``; with ``c`` corrupt clients
colluding with the server and ``h`` honest holders of ``v``'s shares, that needs ``2 (t - c) <= h``.
The default ``t = floor(2 (k + 1) / 3) + 1`` (``k + 1`` holders) makes this impossible for
``c < t - (k + 1) / 2``, i.e. up to about a sixth of each neighbourhood colluding, and it keeps
the round alive while up to about a third of the holders drop. ``t <= (k + 1) / 2`` is refused.
With Ed25519 identities (``identity`` / ``peer_identities``) the advertised keys are signed, so
the server cannot substitute its own keys (the active-server setting of Bonawitz et al.,
section 6.2); without them the server is assumed honest-but-curious about key routing. The
survivors sign the survivor list they answer for (the consistency check of section 6.2): the key
holder refuses to remove self masks unless ``>= threshold`` survivors signed the same list.
SecAgg+ neighbourhoods (``neighbors=k``) are a Harary graph over a permutation derived from the
round id (public), as in Bell et al.; its guarantees are statistical over the graph, for a
bounded fraction of corrupt clients fixed before the graph is drawn and a round id the server
does not choose. :func:`secagg_plus_parameters` picks ``k`` and ``t`` for a stated number of
clients, dropout fraction, corrupt fraction, ``sigma`` and ``eta`` from Bell et al.'s three
conditions, bounded exactly for this graph (:mod:`he_ml.aggregation._maskgraph`).

What each party learns: the server -- the survivor set and the sum of the survivors' updates
(HE-free backend) or nothing but ciphertexts (HE layers); the key holder -- the sum only;
``t - 1`` clients colluding with the server -- nothing beyond the sum. Out of scope: clients
sending wrong values (poisoning; masks do not validate inputs), denial of service.

References
----------
.. [1] K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
   Learning", ACM CCS 2017, sections 4 and 6.
.. [2] J. Bell, K. Bonawitz, A. Gascon, T. Lepoint, M. Raykova, "Secure Single-Server
   Aggregation with (Poly)Logarithmic Overhead", ACM CCS 2020.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import (
    ContextMismatchError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
)
from ..schemes.base import SchemeContext
from . import _maskwire as wire
from . import shamir
from ._maskbackend import make_backend
from ._maskgraph import SecAggPlusParameters, secagg_plus_parameters

__all__ = [
    "MaskedClient",
    "MaskedServer",
    "MaskedUnmasker",
    "MaskedResult",
    "RoundSetup",
    "simulate_round",
    "new_identity",
    "identity_public_key",
    "default_threshold",
    "neighbourhood",
    "secagg_plus_parameters",
    "SecAggPlusParameters",
]

_MAX_CLIENTS = 1 << 16


def new_identity() -> Ed25519PrivateKey:
    """A fresh Ed25519 identity key for a client (register its public key with the key holder)."""
    return Ed25519PrivateKey.generate()


def identity_public_key(identity: Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of an identity's public key."""
    return wire.pub_bytes(identity)


def default_threshold(holders: int) -> int:
    """``floor(2 * holders / 3) + 1``: the default Shamir threshold for ``holders`` share holders."""
    return min(holders, (2 * holders) // 3 + 1)


def _round_id(round_id: Any) -> str:
    if isinstance(round_id, bool) or not isinstance(round_id, (int, str)) or str(round_id) == "" \
            or len(str(round_id)) > 256:
        raise ParameterError(f"round_id must be a non-empty int or str of at most 256 characters; got {round_id!r}. "
                             f"Use a fresh id per round (e.g. the training round number).")
    return str(round_id)


def neighbourhood(round_id: Any, clients: Sequence[int], neighbors: int | None) -> dict[int, list[int]]:
    """Each client's neighbours: everyone (``neighbors=None``) or a Harary graph of even degree ``neighbors``.

    The graph is public: clients are ordered by ``SHA256(round || id)`` and each is joined to the
    ``neighbors / 2`` nearest clients on each side of that ring (Bell et al. 2020, section 3).
    """
    rid = _round_id(round_id)
    ids = sorted(clients)
    n = len(ids)
    if neighbors is None or neighbors >= n - 1:
        return {u: [v for v in ids if v != u] for u in ids}
    order = sorted(ids, key=lambda i: hashlib.sha256(wire.round_hash(rid) + i.to_bytes(4, "big")).digest())
    pos = {u: i for i, u in enumerate(order)}
    half = neighbors // 2
    return {u: sorted({order[(pos[u] + d) % n] for d in range(-half, half + 1) if d != 0}) for u in ids}


@dataclass(frozen=True)
class RoundSetup:
    """The public parameters every party of one masked round must agree on.

    Parameters
    ----------
    round_id : int or str
        Unique per round; binds every message, key and signature.
    clients : sequence of int
        The invited client ids, distinct ints in ``[1, 2**31)`` (also the Shamir x-coordinates).
    threshold : int, optional
        Shares needed to recover a secret (and the fewest survivors a round may finish with).
        Default :func:`default_threshold` of the holder count. Must exceed half the holders.
    neighbors : int, optional
        SecAgg+ degree (even, >= 2); None: the complete graph (SecAgg). Choose it, with
        ``threshold``, by :func:`secagg_plus_parameters`.
    """

    round_id: str
    clients: tuple[int, ...]
    threshold: int
    neighbors: int | None
    graph: dict = field(repr=False, compare=False, hash=False, default=None)

    @classmethod
    def create(cls, round_id: Any, clients: Sequence[int], threshold: int | None = None,
               neighbors: int | None = None) -> "RoundSetup":
        rid = _round_id(round_id)
        try:
            ids = [int(c) for c in clients]
        except (TypeError, ValueError) as e:
            raise ParameterError(f"clients must be a sequence of int ids; got {clients!r}.") from e
        if not 2 <= len(ids) <= _MAX_CLIENTS or len(set(ids)) != len(ids) or not all(1 <= i < 2**31 for i in ids):
            raise ParameterError(f"clients must be 2..{_MAX_CLIENTS} distinct ids in [1, 2**31); got {len(ids)} "
                                 f"ids (min {min(ids, default=None)}, repeats: {len(ids) != len(set(ids))}).")
        n = len(ids)
        if neighbors is not None:
            if isinstance(neighbors, bool) or not isinstance(neighbors, int) or neighbors < 2 or neighbors % 2:
                raise ParameterError(f"neighbors must be None (complete graph) or an even int >= 2; got "
                                     f"{neighbors!r}.")
            if neighbors >= n - 1:
                neighbors = None
        holders = n if neighbors is None else neighbors + 1
        if threshold is None:
            threshold = default_threshold(holders)
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not holders / 2 < threshold <= holders:
            raise ParameterError(
                f"threshold must be an int with {holders}/2 < threshold <= {holders} (each client's shares go to "
                f"{holders} holders; at most half would let an active server recover both masks of a client); "
                f"got {threshold!r}. The default is {default_threshold(holders)}.")
        return cls(rid, tuple(sorted(ids)), int(threshold), neighbors, neighbourhood(rid, ids, neighbors))

    def holders(self, u: int) -> list[int]:
        return sorted(self.graph[u] + [u])


def _setup_from(round_id, clients, threshold, neighbors) -> RoundSetup:
    if isinstance(round_id, RoundSetup):
        return round_id
    if clients is None:
        raise ParameterError("clients is required (the invited client ids), or pass a RoundSetup as round_id.")
    return RoundSetup.create(round_id, clients, threshold, neighbors)


class _Party:
    def __init__(self, context, setup: RoundSetup, *, max_value, precision_bits, dp, max_clients) -> None:
        self.setup = setup
        self.context = context
        self.backend = make_backend(context, max_value=max_value, precision_bits=precision_bits,
                                    max_clients=max_clients or len(setup.clients), dp=dp)

    def _pair_key(self, shared: bytes, u: int, v: int) -> bytes:
        lo, hi = min(u, v), max(u, v)
        return wire.hkdf(shared, self.setup.round_id, f"pair-mask/{lo}/{hi}")

    def _self_key(self, b: bytes, u: int) -> bytes:
        return wire.hkdf(b, self.setup.round_id, f"self-mask/{u}")

    def _share_key(self, shared: bytes, u: int, v: int) -> bytes:
        lo, hi = min(u, v), max(u, v)
        return wire.hkdf(shared, self.setup.round_id, f"share-aead/{lo}/{hi}")


class MaskedClient(_Party):
    """One client's state in a masked round (one object per client and round).

    Parameters
    ----------
    context : SchemeContext or None
        None for the HE-free backend (integers mod 2**k), or the **public** Paillier/BFV context
        (masks are then added inside the encrypted plaintext).
    round_id : int, str or RoundSetup
    client_id : int
        This client's id (one of ``clients``).
    clients, threshold, neighbors
        See :class:`RoundSetup` (ignored when ``round_id`` is a RoundSetup).
    max_value : float, optional
        Public bound on |value| of one update (required without ``dp``).
    precision_bits : int, optional
        Fixed-point fractional bits (HE-free backend and BFV; default 20).
    dp : DPConfig, optional
        Clipping and distributed noise, as for :class:`GradientAggregator`.
    identity : Ed25519PrivateKey, optional
        Signs this client's advertised keys and its unmask answer.
    peer_identities : mapping int -> bytes, optional
        Other clients' Ed25519 public keys; when given, unsigned or wrongly signed advertisements
        are refused.
    unmasker_key : bytes, optional
        The key holder's X25519 public key (:attr:`MaskedUnmasker.public_key`): self-mask shares
        are sealed to it instead of being revealed to the server.

    Examples
    --------
    See :func:`simulate_round`, which runs these stages for every client in one process.
    """

    def __init__(self, context: SchemeContext | None, round_id: Any, client_id: int, *,
                 clients: Sequence[int] | None = None, threshold: int | None = None, neighbors: int | None = None,
                 max_value: float | None = None, precision_bits: int | None = None, dp: Any = None,
                 max_clients: int | None = None, identity: Any = None, peer_identities: Mapping | None = None,
                 unmasker_key: bytes | None = None) -> None:
        setup = _setup_from(round_id, clients, threshold, neighbors)
        if context is not None and isinstance(context, SchemeContext) and context.has_secret_key:
            raise ParameterError("a MaskedClient must hold the public context only; pass ctx.public_context().")
        super().__init__(context, setup, max_value=max_value, precision_bits=precision_bits, dp=dp,
                         max_clients=max_clients)
        if client_id not in setup.graph:
            raise ParameterError(f"client_id {client_id!r} is not one of the round's clients {list(setup.clients)[:8]}"
                                 f"{'...' if len(setup.clients) > 8 else ''}.")
        if unmasker_key is not None and (not isinstance(unmasker_key, (bytes, bytearray)) or len(unmasker_key) != 32):
            raise ParameterError("unmasker_key must be the key holder's 32-byte X25519 public key "
                                 "(MaskedUnmasker.public_key).")
        self.id = int(client_id)
        self.identity = wire.as_identity(identity)
        self.peers = wire.as_public_registry(peer_identities, "peer_identities")
        self.unmasker_key = None if unmasker_key is None else bytes(unmasker_key)
        self.stage = 0
        self._c_sk = X25519PrivateKey.generate()
        self._s_sk = X25519PrivateKey.generate()
        self._keys: dict[int, tuple[bytes, bytes]] = {}
        self._shares: dict[int, tuple[int, int]] = {}  # holder-side: owner -> (s share, b share)
        self._sharers: set[int] = set()
        self._c_shared: dict[int, ChaCha20Poly1305] = {}

    def _c_key(self, v: int, what: str) -> ChaCha20Poly1305:
        """The AEAD of the pair (self, v) for sealed shares (symmetric: one X25519 + HKDF per pair)."""
        if v not in self._c_shared:
            self._c_shared[v] = ChaCha20Poly1305(self._share_key(wire.agree(self._c_sk, self._keys[v][0], what),
                                                                 self.id, v))
        return self._c_shared[v]

    def state_bytes(self) -> bytes:
        """This client's private round state as bytes (to keep between stages, e.g. in a Flower
        ``Context.state``). It holds private keys and shares: store it only where the client's own
        secrets may live, never send it."""
        keys = sorted(self._keys)
        owners = sorted(self._shares)
        header = {"round": self.setup.round_id, "id": self.id, "stage": self.stage, "keys": keys,
                  "owners": owners, "sharers": sorted(self._sharers), "has_b": hasattr(self, "_b")}
        sections = [self._c_sk.private_bytes(wire.RAW, wire.RAW_PRIV, wire.NOENC),
                    self._s_sk.private_bytes(wire.RAW, wire.RAW_PRIV, wire.NOENC),
                    getattr(self, "_b", b"")]
        sections += [b for k in keys for b in self._keys[k]]
        sections += [shamir.share_to_bytes(v) for o in owners for v in self._shares[o]]
        return wire.pack("client_state", header, sections)

    def restore_state(self, data: bytes) -> "MaskedClient":
        """Load :meth:`state_bytes` of this client and round into this object (returns it).

        Raises
        ------
        ContextMismatchError
            If the state belongs to another round or client.
        InvalidCiphertextError
            If it is malformed.
        """
        header, sections = wire.unpack(data, "client_state", "masked client state")
        wire.check_round(header, self.setup.round_id, "masked client state")
        if header.get("id") != self.id:
            raise ContextMismatchError(f"masked client state belongs to client {header.get('id')!r}, not {self.id}.")
        keys = wire.id_list(header, "keys", "masked client state")
        owners = wire.id_list(header, "owners", "masked client state")
        sharers = wire.id_list(header, "sharers", "masked client state")
        stage = wire.field(header, "stage", int, "masked client state")
        if len(sections) != 3 + 2 * len(keys) + 2 * len(owners) or not 0 <= stage <= 4 \
                or len(sections[0]) != 32 or len(sections[1]) != 32:
            raise InvalidCiphertextError("masked client state is inconsistent; it was corrupted.")
        self._c_sk = X25519PrivateKey.from_private_bytes(sections[0])
        self._s_sk = X25519PrivateKey.from_private_bytes(sections[1])
        if header.get("has_b") is True:
            self._b = sections[2]
        pos = 3
        self._keys = {}
        for k in keys:
            self._keys[k] = (sections[pos], sections[pos + 1])
            pos += 2
        self._shares = {}
        for o in owners:
            self._shares[o] = (shamir.share_from_bytes(sections[pos]), shamir.share_from_bytes(sections[pos + 1]))
            pos += 2
        self._sharers = set(sharers)
        self._c_shared = {}
        self.stage = stage
        return self

    def _advance(self, expected: int, name: str) -> None:
        if self.stage != expected:
            raise ParameterError(f"client {self.id}: {name} is stage {expected} but this client is at stage "
                                 f"{self.stage}; run the stages once each, in order, with fresh state per round.")
        self.stage = expected + 1

    # -- stage 0 -----------------------------------------------------------------------------
    def advertise_keys(self) -> bytes:
        """Stage 0: this client's two X25519 public keys (signed with its identity, if any)."""
        self._advance(0, "advertise_keys")
        c_pk, s_pk = wire.pub_bytes(self._c_sk), wire.pub_bytes(self._s_sk)
        sig = wire.sign(self.identity, wire.advert_message(self.setup.round_id, self.id, c_pk, s_pk))
        return wire.pack("advertise", {"round": self.setup.round_id, "from": self.id}, [c_pk, s_pk, sig])

    # -- stage 1 -----------------------------------------------------------------------------
    def share_keys(self, keys: bytes) -> bytes:
        """Stage 1: Shamir shares of ``s_sk`` and of a fresh self-mask seed, sealed per holder.

        Raises
        ------
        SecretKeyMissingError
            If fewer than ``threshold`` of this client's holders advertised keys.
        InvalidCiphertextError, ContextMismatchError
            If the broadcast is malformed, from another round, repeats keys, or (with
            ``peer_identities``) carries an advertisement without a valid signature.
        """
        self._advance(1, "share_keys")
        setup, rid = self.setup, self.setup.round_id
        header, sections = wire.unpack(keys, "keys", "key broadcast")
        wire.check_round(header, rid, "key broadcast")
        ids = wire.id_list(header, "ids", "key broadcast")
        if len(sections) != 3 * len(ids):
            raise InvalidCiphertextError("key broadcast: expected three sections per client.")
        seen: set[bytes] = set()
        mine = set(setup.holders(self.id))  # only these keys are ever used (SecAgg+: O(k) work, Bell et al.)
        for i, cid in enumerate(ids):
            c_pk, s_pk, sig = sections[3 * i:3 * i + 3]
            if cid not in setup.graph or len(c_pk) != 32 or len(s_pk) != 32:
                raise InvalidCiphertextError(f"key broadcast: entry for client {cid} is not valid for this round.")
            if c_pk in seen or s_pk in seen:
                raise InvalidCiphertextError("key broadcast repeats a public key; refused (Bonawitz et al., "
                                             "round 1 check).")
            seen.update((c_pk, s_pk))
            if cid not in mine:
                continue
            if self.peers is not None and not (cid in self.peers and wire.verify(
                    self.peers[cid], sig, wire.advert_message(rid, cid, c_pk, s_pk))):
                raise InvalidCiphertextError(f"key broadcast: the keys advertised for client {cid} are not signed "
                                             f"by its registered identity; the server may be substituting keys.")
            self._keys[cid] = (c_pk, s_pk)
        if self._keys.get(self.id) != (wire.pub_bytes(self._c_sk), wire.pub_bytes(self._s_sk)):
            raise InvalidCiphertextError(f"key broadcast does not carry client {self.id}'s own keys unchanged.")
        holders = [v for v in setup.holders(self.id) if v in self._keys]
        if len(holders) < setup.threshold:
            raise SecretKeyMissingError(
                f"client {self.id}: only {len(holders)} of its share holders advertised keys, fewer than the "
                f"threshold {setup.threshold}; the round cannot continue (start a new round).")
        self._b = secrets.token_bytes(32)
        s_raw = self._s_sk.private_bytes(wire.RAW, wire.RAW_PRIV, wire.NOENC)
        s_sh = shamir.split(int.from_bytes(s_raw, "big"), holders, setup.threshold)
        b_sh = shamir.split(int.from_bytes(self._b, "big"), holders, setup.threshold)
        to, cts = [], []
        for v in holders:
            if v == self.id:
                self._shares[v] = (s_sh[v], b_sh[v])
                continue
            key = self._c_key(v, "key broadcast")
            body = shamir.share_to_bytes(s_sh[v]) + shamir.share_to_bytes(b_sh[v])
            to.append(v)
            cts.append(wire.seal(key, body, self._aad("share", self.id, v)))
        return wire.pack("shares", {"round": rid, "from": self.id, "to": to}, cts)

    def _aad(self, what: str, u: int, v: int) -> bytes:
        return wire.round_hash(self.setup.round_id) + f"/{what}/{u}/{v}".encode()

    # -- stage 2 -----------------------------------------------------------------------------
    def masked_input(self, shares: bytes, update: Any) -> bytes:
        """Stage 2: the update with its self mask and pairwise masks added (bytes for the server).

        Parameters
        ----------
        shares : bytes
            This client's bundle from :meth:`MaskedServer.receive_shares`.
        update : array-like or dict of arrays
            As for :meth:`GradientAggregator.encrypt`.
        """
        self._advance(2, "masked_input")
        rid = self.setup.round_id
        header, sections = wire.unpack(shares, "routed", f"client {self.id}'s share bundle")
        wire.check_round(header, rid, "share bundle")
        if header.get("to") != self.id:
            raise ContextMismatchError(f"share bundle is addressed to client {header.get('to')!r}, not {self.id}.")
        senders = wire.id_list(header, "from", "share bundle")
        if len(sections) != len(senders):
            raise InvalidCiphertextError("share bundle: one ciphertext per sender expected.")
        for w, ct in zip(senders, sections):
            if w == self.id or w not in self._keys or self.id not in self.setup.graph[w]:
                raise InvalidCiphertextError(f"share bundle: client {w} is not a neighbour that advertised keys.")
            key = self._c_key(w, "share bundle")
            body = wire.open_sealed(key, ct, self._aad("share", w, self.id), f"share from client {w}")
            if len(body) != 2 * shamir.SHARE_BYTES:
                raise InvalidCiphertextError(f"share from client {w} has the wrong length.")
            self._shares[w] = (shamir.share_from_bytes(body[:33]), shamir.share_from_bytes(body[33:]))
            self._sharers.add(w)
        partners = sorted(v for v in self.setup.graph[self.id] if v in self._sharers)

        def mask_for_size(size: int):
            dom = self.backend.domain(size)  # one lazy sum, reduced once (see _maskdomain)
            acc = dom.accumulate(dom.accumulator(), self._self_key(self._b, self.id))
            for v in partners:
                shared = wire.agree(self._s_sk, self._keys[v][1], "key broadcast")
                dom.accumulate(acc, self._pair_key(shared, self.id, v), 1 if v > self.id else -1)
            return dom.finish(acc)

        payload = self.backend.masked_payload(update, mask_for_size)
        return wire.pack("masked", {"round": rid, "from": self.id, "partners": partners}, [payload])

    # -- stage 3 -----------------------------------------------------------------------------
    def unmask(self, request: bytes) -> bytes:
        """Stage 3: reveal, for each client whose shares this client holds, ONE of its two secrets.

        Survivors (in the server's list) get their self-mask seed share revealed (sealed to the key
        holder when ``unmasker_key`` is set); dropped clients that had shared get their mask-key
        share revealed. The answer is signed over the survivor list.

        Raises
        ------
        SecretKeyMissingError
            If the survivor list is shorter than the threshold (the server could be isolating a client).
        InvalidCiphertextError
            If the request is malformed or this client is not in the survivor list.
        """
        self._advance(3, "unmask")
        rid, setup = self.setup.round_id, self.setup
        header, _ = wire.unpack(request, "unmask_request", "unmask request")
        wire.check_round(header, rid, "unmask request")
        survivors = wire.id_list(header, "survivors", "unmask request")
        if len(survivors) < setup.threshold:
            raise SecretKeyMissingError(
                f"client {self.id}: the server reports {len(survivors)} survivors, fewer than the threshold "
                f"{setup.threshold}; refusing to reveal any share (a small survivor set could isolate one "
                f"client's input).")
        if self.id not in survivors or not set(survivors) <= set(setup.graph):
            raise InvalidCiphertextError(f"unmask request: the survivor list must contain this client ({self.id}) "
                                         f"and only the round's clients.")
        surv = set(survivors)
        b_for, s_for, b_data, s_data = [], [], [], []
        sig = wire.sign(self.identity, wire.survivors_message(rid, survivors))
        seal_key = None
        if self.unmasker_key is not None:
            seal_key = ChaCha20Poly1305(wire.hkdf(wire.agree(self._c_sk, self.unmasker_key, "unmasker key"), rid,
                                                  f"unmasker/{self.id}"))
        for owner in sorted(self._shares):
            s_share, b_share = self._shares[owner]
            if owner in surv:
                b_for.append(owner)
                data = shamir.share_to_bytes(b_share)
                if seal_key is not None:
                    data = wire.seal(seal_key, data, self._aad("b-share", owner, self.id))
                b_data.append(data)
            elif owner in self._sharers:  # shared with us, then dropped before its masked input
                s_for.append(owner)
                s_data.append(shamir.share_to_bytes(s_share))
        return wire.pack("unmask", {"round": rid, "from": self.id, "b_for": b_for, "s_for": s_for,
                                    "sealed": self.unmasker_key is not None}, [sig] + b_data + s_data)


@dataclass
class MaskedResult:
    """Outcome of a masked round on the server.

    Attributes
    ----------
    value : ndarray or dict or None
        HE-free backend: the sum of the survivors' updates (same structure as an update).
        None over HE.
    total : bytes or None
        Over HE: the aggregate blob of the survivors' sum (dropped clients' pairwise masks removed;
        self masks still in when the key holder unmasks -- decrypt through its policy).
    evidence : bytes or None
        For the key holder (:class:`MaskedUnmasker`): survivor list, signatures and sealed shares.
    survivors, dropped : list of int
        Clients whose masked input is in the sum / invited clients that are not.
    noise_fraction : float
        With distributed DP: the fraction of the intended noise variance the survivors' shares
        carry (1.0 without DP or with no dropouts).
    topup_variance : float
        Noise variance (units of the updates squared) added to make up for dropped clients' shares.
    """

    value: Any
    total: bytes | None
    evidence: bytes | None
    survivors: list[int]
    dropped: list[int]
    noise_fraction: float = 1.0
    topup_variance: float = 0.0


class MaskedServer(_Party):
    """The server's state in one masked round (routes bytes, sums masked inputs, unmasks the sum).

    Parameters
    ----------
    context : SchemeContext or None
        As for :class:`MaskedClient` (public context).
    round_id, clients, threshold, neighbors, max_value, precision_bits, dp
        As for :class:`MaskedClient`; must match the clients'.
    dp_topup : bool, default True
        HE-free backend with distributed DP: when clients dropped, add the missing noise variance
        ``(num_clients - survivors) * S_c`` to the sum before returning it. The server itself saw
        the sum with the reduced noise (it unmasks it): :attr:`MaskedResult.noise_fraction` says how
        much. Over HE the key holder's policy tops up after decryption.
    """

    def __init__(self, context: SchemeContext | None, round_id: Any, *, clients: Sequence[int] | None = None,
                 threshold: int | None = None, neighbors: int | None = None, max_value: float | None = None,
                 precision_bits: int | None = None, dp: Any = None, max_clients: int | None = None,
                 dp_topup: bool = True) -> None:
        setup = _setup_from(round_id, clients, threshold, neighbors)
        if context is not None and isinstance(context, SchemeContext) and context.has_secret_key:
            raise ParameterError("the MaskedServer must hold the public context only; pass ctx.public_context().")
        super().__init__(context, setup, max_value=max_value, precision_bits=precision_bits, dp=dp,
                         max_clients=max_clients)
        self.dp = dp
        self.dp_topup = dp_topup
        self.stage = 0
        self._adverts: dict[int, tuple[bytes, bytes, bytes]] = {}
        self._u2: list[int] = []
        self._partners: dict[int, list[int]] = {}
        self._survivors: list[int] = []
        self._total = None

    def _advance(self, expected: int, name: str) -> None:
        if self.stage != expected:
            raise ParameterError(f"server: {name} is stage {expected} but the round is at stage {self.stage}; "
                                 f"call the stages once each, in order.")
        self.stage = expected + 1

    def _need(self, got: int, stage: str) -> None:
        if got < self.setup.threshold:
            raise SecretKeyMissingError(
                f"masked round {self.setup.round_id!r}: only {got} clients reached {stage}, fewer than the "
                f"threshold {self.setup.threshold}; the round is aborted (nothing can be unmasked). Start a "
                f"new round with the clients still online.")

    def receive_keys(self, messages: Iterable[bytes]) -> bytes:
        """Stage 0: collect advertisements; return the broadcast for every client."""
        self._advance(0, "receive_keys")
        rid = self.setup.round_id
        for i, m in enumerate(messages):
            header, sections = wire.unpack(m, "advertise", f"advertisement {i}")
            wire.check_round(header, rid, f"advertisement {i}")
            cid = wire.field(header, "from", int, f"advertisement {i}")
            if cid not in self.setup.graph or cid in self._adverts or len(sections) != 3:
                raise InvalidCiphertextError(f"advertisement {i}: client {cid!r} is not invited, repeats, or the "
                                             f"message is malformed.")
            self._adverts[cid] = tuple(sections)
        self._need(len(self._adverts), "key advertisement")
        ids = sorted(self._adverts)
        return wire.pack("keys", {"round": rid, "ids": ids}, [s for i in ids for s in self._adverts[i]])

    def receive_shares(self, messages: Iterable[bytes]) -> dict[int, bytes]:
        """Stage 1: route the sealed shares; return ``{client_id: bundle}`` for the clients that shared."""
        self._advance(1, "receive_shares")
        rid = self.setup.round_id
        inbox: dict[int, list[tuple[int, bytes]]] = {}
        senders = []
        for i, m in enumerate(messages):
            header, sections = wire.unpack(m, "shares", f"share message {i}")
            wire.check_round(header, rid, f"share message {i}")
            u = wire.field(header, "from", int, f"share message {i}")
            to = wire.id_list(header, "to", f"share message {i}")
            if u not in self._adverts or u in senders or len(to) != len(sections) or \
                    not set(to) <= set(self.setup.graph[u]):
                raise InvalidCiphertextError(f"share message {i} from client {u!r} is malformed or repeated.")
            senders.append(u)
            for v, ct in zip(to, sections):
                inbox.setdefault(v, []).append((u, ct))
        self._u2 = sorted(senders)
        self._need(len(self._u2), "key sharing")
        out = {}
        for v in self._u2:
            items = sorted((u, ct) for u, ct in inbox.get(v, []) if u in senders)
            out[v] = wire.pack("routed", {"round": rid, "to": v, "from": [u for u, _ in items]},
                               [ct for _, ct in items])
        return out

    def receive_masked_inputs(self, messages: Iterable[bytes]) -> bytes:
        """Stage 2: sum the masked inputs; return the unmask request (the survivor list) for every client."""
        self._advance(2, "receive_masked_inputs")
        rid = self.setup.round_id
        total = self.backend.new_total()
        got: list[int] = []
        for i, m in enumerate(messages):
            header, sections = wire.unpack(m, "masked", f"masked input {i}")
            wire.check_round(header, rid, f"masked input {i}")
            u = wire.field(header, "from", int, f"masked input {i}")
            partners = wire.id_list(header, "partners", f"masked input {i}")
            if u not in self._u2 or u in got or len(sections) != 1:
                raise InvalidCiphertextError(f"masked input {i} from client {u!r} did not share keys or repeats.")
            total = self.backend.absorb(total, sections[0], f"masked input {i} (client {u})")
            self._partners[u] = partners
            got.append(u)
        self._survivors = sorted(got)
        self._need(len(got), "the masked input")
        self._total = total
        return wire.pack("unmask_request", {"round": rid, "survivors": self._survivors})

    def receive_unmask(self, messages: Iterable[bytes]) -> MaskedResult:
        """Stage 3: rebuild dropped clients' pairwise masks (and self masks, unless sealed); finish.

        Raises
        ------
        SecretKeyMissingError
            If fewer than ``threshold`` holders answered for some secret.
        """
        self._advance(3, "receive_unmask")
        rid, setup = self.setup.round_id, self.setup
        surv = set(self._survivors)
        dropped_shared = [v for v in self._u2 if v not in surv]
        s_shares: dict[int, dict[int, int]] = {v: {} for v in dropped_shared}
        b_shares: dict[int, dict[int, bytes]] = {u: {} for u in self._survivors}
        signatures: dict[int, bytes] = {}
        sealed = None
        answered = []
        for i, m in enumerate(messages):
            header, sections = wire.unpack(m, "unmask", f"unmask answer {i}")
            wire.check_round(header, rid, f"unmask answer {i}")
            h = wire.field(header, "from", int, f"unmask answer {i}")
            b_for = wire.id_list(header, "b_for", f"unmask answer {i}")
            s_for = wire.id_list(header, "s_for", f"unmask answer {i}")
            is_sealed = header.get("sealed") is True
            if h not in surv or h in answered or len(sections) != 1 + len(b_for) + len(s_for) \
                    or (sealed is not None and sealed != is_sealed) or set(b_for) & set(s_for):
                raise InvalidCiphertextError(f"unmask answer {i} from client {h!r} is malformed or repeated.")
            sealed = is_sealed
            answered.append(h)
            signatures[h] = sections[0]
            for owner, data in zip(b_for, sections[1:1 + len(b_for)]):
                if owner in b_shares and h in setup.graph[owner] + [owner]:
                    b_shares[owner][h] = data
            for owner, data in zip(s_for, sections[1 + len(b_for):]):
                if owner in s_shares and h in setup.graph[owner] + [owner]:
                    s_shares[owner][h] = shamir.share_from_bytes(data)
        size = self.backend.domain_size(self._total)
        dom = self.backend.domain(size)
        acc = dom.accumulator()  # every mask to remove, summed lazily and reduced once
        for v in dropped_shared:  # pairwise masks the survivors added with v
            if len(s_shares[v]) < setup.threshold:
                raise SecretKeyMissingError(f"masked round {rid!r}: only {len(s_shares[v])} holders returned shares "
                                            f"of dropped client {v}'s mask key; {setup.threshold} are needed.")
            raw = shamir.reconstruct(s_shares[v], setup.threshold).to_bytes(32, "big")
            s_v = X25519PrivateKey.from_private_bytes(raw)
            if wire.pub_bytes(s_v) != self._adverts[v][1]:
                raise InvalidCiphertextError(f"masked round {rid!r}: the shares returned for client {v} do not "
                                             f"rebuild its advertised key; a holder sent a wrong share.")
            for w in self._survivors:
                if v in self._partners[w]:
                    dom.accumulate(acc, self._pair_key(wire.agree(s_v, self._adverts[w][1], "keys"), w, v),
                                   1 if v > w else -1)
        evidence = None
        if not sealed:
            for u in self._survivors:
                if len(b_shares[u]) < setup.threshold:
                    raise SecretKeyMissingError(f"masked round {rid!r}: only {len(b_shares[u])} holders returned "
                                                f"shares of survivor {u}'s self-mask seed; {setup.threshold} needed.")
                pts = {h: shamir.share_from_bytes(d) for h, d in b_shares[u].items()}
                b = shamir.reconstruct(pts, setup.threshold).to_bytes(32, "big")
                dom.accumulate(acc, self._self_key(b, u))
        else:
            evidence = self._evidence(answered, signatures, b_shares)
        correction = dom.finish(acc)
        dropped = [c for c in setup.clients if c not in surv]
        noise_fraction, topup = 1.0, 0.0
        if self.dp is not None and self.dp.mode == "distributed" and len(surv) < self.dp.num_clients:
            noise_fraction = len(surv) / self.dp.num_clients
        if self.context is None:
            total = self.backend.subtract(self._total, correction)
            ints, layout = self.backend.decode(total)
            if noise_fraction < 1.0 and self.dp_topup:
                from .dp import discrete_gaussian

                missing = (self.dp.num_clients - len(surv)) * self.dp.client_variance_grid
                ints = ints + discrete_gaussian(missing, ints.shape)
                topup = missing * self.dp.resolution ** 2
            value = self.backend.to_values(ints, layout)
            return MaskedResult(value, None, None, list(self._survivors), dropped, noise_fraction, topup)
        total = self.backend.subtract(self._total, correction)
        return MaskedResult(None, total, evidence, list(self._survivors), dropped, noise_fraction, 0.0)

    def _evidence(self, answered, signatures, b_shares) -> bytes:
        """What the key holder needs to remove the self masks: signed keys, signatures, sealed shares."""
        ids = sorted(self._adverts)
        header = {"round": self.setup.round_id, "threshold": self.setup.threshold, "survivors": self._survivors,
                  "clients": list(self.setup.clients), "adverts": ids, "signers": sorted(answered),
                  "b_owners": [u for u in self._survivors for _ in b_shares[u]],
                  "b_holders": [h for u in self._survivors for h in sorted(b_shares[u])]}
        sections = [s for i in ids for s in self._adverts[i]]
        sections += [signatures[h] for h in sorted(answered)]
        sections += [b_shares[u][h] for u in self._survivors for h in sorted(b_shares[u])]
        return wire.pack("evidence", header, sections)


class MaskedUnmasker:
    """The key holder's side of a masked round: removes the survivors' self masks once it has checked the evidence.

    Parameters
    ----------
    context : SchemeContext
        The Paillier or BFV context of the round (public or secret).
    identities : mapping int -> bytes, optional
        Registered Ed25519 public keys of the clients. With it, advertisements and survivor
        signatures must verify; without it, only the survivor count is checked.
    key : X25519PrivateKey, optional
        This key holder's X25519 key (generated if omitted); give :attr:`public_key` to the clients
        as ``unmasker_key``.
    """

    def __init__(self, context: SchemeContext, *, identities: Mapping | None = None,
                 key: X25519PrivateKey | None = None, max_value: float | None = None,
                 precision_bits: int | None = None, dp: Any = None) -> None:
        if not isinstance(context, SchemeContext) or context.name not in ("paillier", "bfv"):
            raise ParameterError(f"MaskedUnmasker needs the round's Paillier or BFV context; got "
                                 f"{getattr(context, 'name', type(context).__name__)!r}.")
        self.context = context
        self._opts = dict(max_value=max_value, precision_bits=precision_bits, dp=dp)
        self.identities = wire.as_public_registry(identities, "identities")
        self._key = key or X25519PrivateKey.generate()
        self.public_key = wire.pub_bytes(self._key)

    def verify(self, evidence: bytes, round_id: Any, min_signers: int = 0) -> tuple[dict[str, Any], list[bytes]]:
        """Parse and check the evidence of ``round_id``; returns its header and sections.

        At least ``max(threshold, min_signers)`` survivors must have signed the survivor list; the
        ``threshold`` in the evidence is the server's claim, so a key holder that knows the agreed
        threshold passes it as ``min_signers``.

        Raises
        ------
        ContextMismatchError
            If the evidence is for another round.
        InvalidCiphertextError
            If it is malformed or a signature does not verify.
        SecretKeyMissingError
            If fewer than ``threshold`` survivors signed the survivor list.
        """
        rid = _round_id(round_id)
        header, sections = wire.unpack(evidence, "evidence", "round evidence")
        wire.check_round(header, rid, "round evidence")
        survivors = wire.id_list(header, "survivors", "round evidence")
        adverts = wire.id_list(header, "adverts", "round evidence")
        signers = wire.id_list(header, "signers", "round evidence")
        threshold = wire.field(header, "threshold", int, "round evidence")
        b_owners = header.get("b_owners")
        b_holders = header.get("b_holders")
        if not isinstance(b_owners, list) or not isinstance(b_holders, list) or len(b_owners) != len(b_holders) \
                or len(sections) != 3 * len(adverts) + len(signers) + len(b_owners) or threshold < 1 \
                or not set(survivors) <= set(adverts) or not set(signers) <= set(survivors):
            raise InvalidCiphertextError("round evidence: inconsistent lists; pass the evidence bytes of "
                                         "MaskedServer.receive_unmask unchanged.")
        sigs = sections[3 * len(adverts):3 * len(adverts) + len(signers)]
        if self.identities is not None:
            valid = 0
            msg = wire.survivors_message(rid, survivors)
            for i, cid in enumerate(adverts):
                c_pk, s_pk, sig = sections[3 * i:3 * i + 3]
                if cid not in self.identities or not wire.verify(self.identities[cid], sig,
                                                                 wire.advert_message(rid, cid, c_pk, s_pk)):
                    raise InvalidCiphertextError(f"round evidence: client {cid}'s advertised keys are not signed by "
                                                 f"its registered identity; refused.")
            for cid, sig in zip(signers, sigs):
                if cid in self.identities and wire.verify(self.identities[cid], sig, msg):
                    valid += 1
            signed = valid
        else:
            signed = len(signers)
        need = max(threshold, int(min_signers))
        if signed < need:
            raise SecretKeyMissingError(f"round evidence: only {signed} survivors signed the survivor list, fewer "
                                        f"than the {need} required (round threshold {threshold}, min_signers "
                                        f"{min_signers}); refused.")
        return header, sections

    def unmask(self, total: bytes, evidence: bytes, round_id: Any, min_signers: int = 0) -> tuple[bytes, list[int]]:
        """The total with the survivors' self masks removed, and the survivor list.

        Raises
        ------
        SecretKeyMissingError
            If a survivor's seed has fewer than ``threshold`` valid sealed shares.
        """
        rid = _round_id(round_id)
        header, sections = self.verify(evidence, rid, min_signers)
        return self._unmask_verified(total, header, sections, rid)

    def _unmask_verified(self, total: bytes, header: dict, sections: list[bytes], rid: str) -> tuple[bytes, list[int]]:
        """:meth:`unmask` on evidence that :meth:`verify` already accepted (its header and sections)."""
        survivors, adverts = header["survivors"], header["adverts"]
        threshold = header["threshold"]
        c_pks = {cid: sections[3 * i] for i, cid in enumerate(adverts)}
        nsig = len(header["signers"])
        sealed = sections[3 * len(adverts) + nsig:]
        shares: dict[int, dict[int, int]] = {u: {} for u in survivors}
        keys: dict[int, bytes] = {}
        for owner, holder, data in zip(header["b_owners"], header["b_holders"], sealed):
            if owner not in shares or not isinstance(holder, int) or holder not in c_pks:
                continue
            if holder not in keys:
                keys[holder] = ChaCha20Poly1305(wire.hkdf(wire.agree(self._key, c_pks[holder], "round evidence"),
                                                          rid, f"unmasker/{holder}"))
            key = keys[holder]
            aad = wire.round_hash(rid) + f"/b-share/{owner}/{holder}".encode()
            shares[owner][holder] = shamir.share_from_bytes(
                wire.open_sealed(key, data, aad, f"sealed share of client {owner} from {holder}"))
        public = self.context.public_context() if self.context.has_secret_key else self.context
        backend = make_backend(public, max_clients=None, **self._opts)
        dom = backend.domain(backend.domain_size(total))
        acc = dom.accumulator()
        for u in survivors:
            b = shamir.reconstruct(shares[u], threshold).to_bytes(32, "big")
            dom.accumulate(acc, wire.hkdf(b, rid, f"self-mask/{u}"))
        return backend.subtract(total, dom.finish(acc)), list(survivors)


def simulate_round(updates: Mapping[int, Any] | Sequence[Any], *, context: SchemeContext | None = None,
                   round_id: Any = "simulated", threshold: int | None = None, neighbors: int | None = None,
                   dropouts: Mapping[str, Iterable[int]] | None = None, max_value: float | None = None,
                   precision_bits: int | None = None, dp: Any = None, identities: Any = False,
                   unmasker: MaskedUnmasker | None = None, timings: dict | None = None) -> MaskedResult:
    """Run a whole masked round in one process (tests, benchmarks, examples).

    Parameters
    ----------
    updates : mapping client id -> update, or a sequence (ids 1..n)
    context : SchemeContext, optional
        None: HE-free backend. A public Paillier/BFV context: masks inside the plaintext.
    dropouts : mapping stage -> client ids, optional
        Clients that vanish *before* a stage: keys ``"advertise"``, ``"share_keys"``,
        ``"masked_input"``, ``"unmask"`` (a client dropped before ``"unmask"`` uploaded its input).
    identities : bool or mapping int -> Ed25519PrivateKey, default False
        True: give every client a fresh Ed25519 identity; a mapping: use these identities (register
        their public keys with the key holder's policy). Every client gets the others' public keys.
    unmasker : MaskedUnmasker, optional
        Seal the self-mask shares to this key holder (the result then carries ``evidence``).
    timings : dict, optional
        Filled with ``client_seconds`` (CPU seconds, total over clients, dropped ones included),
        ``client_seconds_each`` (``{id: CPU seconds}``), ``server_seconds`` (CPU) and
        ``bytes_per_client`` (largest upload of a surviving client over all stages).

    Returns
    -------
    MaskedResult

    Examples
    --------
    >>> import numpy as np
    >>> from he_ml.aggregation.masking import simulate_round
    >>> ups = [np.full(3, 0.25 * i) for i in range(1, 6)]
    >>> r = simulate_round(ups, max_value=2.0, dropouts={"masked_input": [2]})
    >>> r.survivors, np.round(r.value, 6).tolist()
    ([1, 3, 4, 5], [3.25, 3.25, 3.25])
    """
    import time

    if not isinstance(updates, Mapping):
        updates = {i + 1: u for i, u in enumerate(updates)}
    ids = sorted(updates)
    drops = {k: set(v) for k, v in (dropouts or {}).items()}
    bad = set(drops) - {"advertise", "share_keys", "masked_input", "unmask"}
    if bad:
        raise ParameterError(f"dropouts keys must be stage names 'advertise', 'share_keys', 'masked_input', "
                             f"'unmask'; got {sorted(bad)}.")
    setup = RoundSetup.create(round_id, ids, threshold, neighbors)
    if isinstance(identities, Mapping):
        keys = {i: wire.as_identity(identities[i]) for i in ids}
    else:
        keys = {i: new_identity() for i in ids} if identities else {}
    pubs = {i: identity_public_key(k) for i, k in keys.items()} if identities else None
    opts = dict(max_value=max_value, precision_bits=precision_bits, dp=dp)
    each = {i: 0.0 for i in ids}  # CPU seconds of each client, all its stages
    clients = {}
    for i in ids:
        t0 = time.process_time()
        clients[i] = MaskedClient(context, setup, i, identity=keys.get(i), peer_identities=pubs,
                                  unmasker_key=None if unmasker is None else unmasker.public_key, **opts)
        each[i] += time.process_time() - t0
    t0 = time.process_time()
    server = MaskedServer(context, setup, **opts)
    t_server_init = time.process_time() - t0
    alive = set(ids)
    sent = {i: 0 for i in ids}

    def run(stage: str, fn):
        alive.difference_update(drops.get(stage, ()))
        out = {}
        for i in sorted(alive):
            t = time.process_time()
            out[i] = fn(i)
            each[i] += time.process_time() - t
            sent[i] += len(out[i])
        return out

    def serve(fn, arg):
        t = time.process_time()
        r = fn(arg)
        return r, time.process_time() - t

    ts = t_server_init
    adv = run("advertise", lambda i: clients[i].advertise_keys())
    keys_msg, dt = serve(server.receive_keys, list(adv.values()))
    ts += dt
    sh = run("share_keys", lambda i: clients[i].share_keys(keys_msg))
    bundles, dt = serve(server.receive_shares, list(sh.values()))
    ts += dt
    alive.intersection_update(bundles)
    mk = run("masked_input", lambda i: clients[i].masked_input(bundles[i], updates[i]))
    request, dt = serve(server.receive_masked_inputs, list(mk.values()))
    ts += dt
    un = run("unmask", lambda i: clients[i].unmask(request))
    result, dt = serve(server.receive_unmask, list(un.values()))
    ts += dt
    if timings is not None:
        timings["client_seconds"] = sum(each.values())
        timings["client_seconds_each"] = dict(each)
        timings["server_seconds"] = ts
        timings["bytes_per_client"] = max(sent[i] for i in result.survivors)
    return result
