"""The key holder's decryption policy: it is not a decryption oracle.

:class:`DecryptionPolicy` wraps the secret context (single key holder; a committee member can
run the same checks before its partial decryption) and decrypts a total only when

1. its **round id** was never decrypted before (one decryption per round id; optionally
   persisted to ``state_path`` so a restart does not forget);
2. its **contributors** are proven, not declared: either signed client *receipts*
   (:class:`PolicyClient`: Ed25519 over round id, client id, the client's round-mask key and
   the blob's SHA-256) from at least ``min_clients`` distinct registered clients, or the
   *evidence* of a masked round (:mod:`he_ml.aggregation.masking`: survivor list signed by at
   least ``threshold`` survivors) with at least ``min_clients`` survivors. The blob's own
   ``count`` field must agree; it is never trusted on its own;
3. the total really is the sum of those contributors' blobs. Paillier and BFV: every client
   adds a **round mask** inside the plaintext (mod ``n`` / mod ``t``) derived from
   ``X25519(client's per-round key, key holder's key)``, which only the key holder can remove,
   and only for the clients in the receipts -- one client's blob, a partial sum, or an old total
   under a new round id decrypts to uniformly random plaintexts (Paillier: refused by the slot
   check; BFV: random integers, useless). CKKS cannot carry exact masks, so the policy then
   requires the **blobs** themselves, checks each against its receipt and sums them itself;
4. every CKKS decryption released to anyone but the key holder (``release=True``) is
   **smudged** before decoding, 2^-40 statistical distance (:mod:`he_ml.aggregation.flooding`);
5. with distributed DP and fewer contributors than ``dp.num_clients``, the missing noise
   variance is **topped up** before release (central DP: the key holder adds all the noise).

Threat model
------------
The server may deviate arbitrarily (forward one blob, edit counts, recompute checksums, replay
totals, drop clients). Clients are authenticated by their Ed25519 identities, registered with
the key holder out of band (the server cannot mint clients). The key holder follows this policy
(it is the party enforcing it) but is curious: with round masks it never receives a blob it
could decrypt alone, except on the CKKS path, where it receives the blobs (use a masked round or
a committee to remove that). A key holder colluding with the server can remove one client's
round mask: round masks protect against the server, pairwise masks (masked rounds) against both.
Out of scope: clients that send wrong values (poisoning), denial of service.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
)
from ..schemes.base import SchemeContext
from . import _maskwire as wire
from ._maskbackend import make_backend
from .aggregator import GradientAggregator, unflatten_update
from .flooding import DEFAULT_SECURITY_BITS, ReleasePlan, _check_security, release_plan
from .masking import MaskedUnmasker, _round_id

__all__ = ["DecryptionPolicy", "PolicyClient", "Release", "receipt_info"]


def _receipt_message(round_id: str, client_id: int, mask_pk: bytes, blob_hash: bytes) -> bytes:
    return (b"he_ml/receipt/v1" + wire.round_hash(round_id) + client_id.to_bytes(4, "big") + mask_pk
            + blob_hash)


def receipt_info(receipt: bytes) -> dict[str, Any]:
    """The public fields of a receipt: ``round``, ``client``, ``blob_sha256`` (hex).

    Raises
    ------
    InvalidCiphertextError
        If ``receipt`` is malformed.
    """
    header, sections = wire.unpack(receipt, "receipt", "receipt")
    cid = wire.field(header, "client", int, "receipt")
    rid = wire.field(header, "round", str, "receipt")
    if len(sections) != 3 or len(sections[0]) != 32 or len(sections[1]) != 32 or len(sections[2]) != 64 \
            or not 1 <= cid < 2**31:
        raise InvalidCiphertextError("receipt is malformed (expected mask key, blob hash and signature).")
    return {"round": rid, "client": cid, "mask_pk": sections[0], "blob_sha256": sections[1],
            "signature": sections[2]}


class PolicyClient:
    """A client whose uploads a :class:`DecryptionPolicy` accepts: a (round-masked) blob and a signed receipt.

    Parameters
    ----------
    context : SchemeContext or bytes
        The public context.
    client_id : int
        This client's registered id (``[1, 2**31)``).
    identity : Ed25519PrivateKey or bytes
        This client's signing key; the key holder knows its public key.
    key_holder_key : bytes, optional
        The key holder's X25519 public key (:attr:`DecryptionPolicy.public_key`). Required for
        Paillier and BFV (round masks); ignored for CKKS.
    **aggregator_options
        ``max_value``, ``precision_bits``, ``dp``, ``max_clients`` as for :class:`GradientAggregator`.
    """

    def __init__(self, context: SchemeContext, client_id: int, identity: Any, *,
                 key_holder_key: bytes | None = None, **aggregator_options: Any) -> None:
        if isinstance(context, (bytes, bytearray)):
            from ..schemes import load_context

            context = load_context(bytes(context))
        if isinstance(client_id, bool) or not isinstance(client_id, int) or not 1 <= client_id < 2**31:
            raise ParameterError(f"client_id must be an int in [1, 2**31); got {client_id!r}.")
        self.identity = wire.as_identity(identity)
        if self.identity is None:
            raise ParameterError("identity is required: the key holder only counts signed receipts. Create one "
                                 "with he_ml.aggregation.new_identity() and register its public key.")
        self.context = context
        self.client_id = client_id
        opts = dict(aggregator_options)
        self._masked = context.name in ("paillier", "bfv")
        if self._masked:
            if not isinstance(key_holder_key, (bytes, bytearray)) or len(key_holder_key) != 32:
                raise ParameterError(f"{context.name}: key_holder_key (the key holder's 32-byte X25519 public key, "
                                     f"DecryptionPolicy.public_key) is required for round masks.")
            self._backend = make_backend(context, max_value=opts.get("max_value"),
                                         precision_bits=opts.get("precision_bits"),
                                         max_clients=opts.get("max_clients"), dp=opts.get("dp"))
        else:
            self._agg = GradientAggregator(context, **opts)
        self.key_holder_key = None if key_holder_key is None else bytes(key_holder_key)

    def encrypt(self, update: Any, round_id: Any) -> tuple[bytes, bytes]:
        """The blob of ``update`` for ``round_id`` and its receipt (send both to the server).

        Returns
        -------
        blob, receipt : bytes
        """
        rid = _round_id(round_id)
        if self._masked:
            eph = X25519PrivateKey.generate()
            mask_pk = wire.pub_bytes(eph)
            key = _round_mask_key(wire.agree(eph, self.key_holder_key, "key_holder_key"), rid, self.client_id)
            blob = self._backend.masked_payload(update, lambda size: self._backend.domain(size).expand(key))
        else:
            mask_pk = bytes(32)
            blob = self._agg.encrypt(update)
        digest = hashlib.sha256(blob).digest()
        sig = self.identity.sign(_receipt_message(rid, self.client_id, mask_pk, digest))
        receipt = wire.pack("receipt", {"round": rid, "client": self.client_id}, [mask_pk, digest, sig])
        return blob, receipt


def _round_mask_key(shared: bytes, round_id: str, client_id: int) -> bytes:
    return wire.hkdf(shared, round_id, f"round-mask/{client_id}")


@dataclass
class Release:
    """What the last :meth:`DecryptionPolicy.decrypt` did (also returned by ``decrypt(..., details=True)``).

    Attributes
    ----------
    value : ndarray or dict
        The decrypted (averaged if asked) update.
    round_id : str
    clients : list of int
        Contributors proven by receipts or the masked round's survivor list.
    smudging : ReleasePlan or None
        How a released CKKS total was smudged (``smudging_bits``, ``error_bound``,
        ``precision_bits``); None for BFV/Paillier (exact) or when not released.
    dp_topup_variance : float
        Noise variance added for missing distributed-DP shares (0.0 when none).
    noise_fraction : float
        Fraction of the intended distributed-DP variance the contributors' own shares carry.
    """

    value: Any
    round_id: str
    clients: list[int]
    smudging: ReleasePlan | None = None
    dp_topup_variance: float = 0.0
    noise_fraction: float = 1.0


class DecryptionPolicy:
    """The key holder: decrypts each round's proven total once, smudged when released (CKKS).

    Parameters
    ----------
    context : SchemeContext
        The secret context.
    min_clients : int
        Fewest proven contributors a released total may have.
    identities : mapping int -> bytes
        Registered clients' Ed25519 public keys (32 raw bytes each).
    security_bits : int, default 40
        Statistical security of a released CKKS decryption: distance ``<= 2^-security_bits``
        from a value independent of the secret key (:mod:`he_ml.aggregation.flooding`).
    dp : DPConfig, optional
        Central mode: the policy adds the noise. Distributed mode: it tops up missing shares.
    max_value, precision_bits
        As given to the clients (needed to rebuild BFV/plain encodings and DP bounds).
    state_path : str, optional
        File recording decrypted round ids (one per line), read at start and appended to.
    key : X25519PrivateKey, optional
        The key holder's X25519 key for round masks and masked-round self masks (generated if omitted).
    min_signers : int, default 0
        Masked-round evidence: fewest survivor signatures accepted, on top of the threshold the
        evidence states (the server's claim) -- set it to the threshold agreed with the clients.

    Raises
    ------
    ParameterError
        If ``context`` is not a context, ``min_clients`` < 1 or ``identities`` is malformed.

    Notes
    -----
    With a **public** context (e.g. a committee's, :class:`he_ml.aggregation.Committee`) the policy
    can only :meth:`admit`: every member runs the same checks (sharing the X25519 ``key`` so that
    any of them can remove the round masks, which reveals nothing: masks are removed under
    encryption) and then calls ``partial_decrypt`` on the admitted total. :meth:`decrypt` needs the
    secret context.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> from he_ml.aggregation import aggregation_context, new_identity, identity_public_key, GradientAggregator
    >>> from he_ml.aggregation.policy import DecryptionPolicy, PolicyClient
    >>> ctx = aggregation_context("bfv", max_clients=4, max_value=1.0)
    >>> ids = {i: new_identity() for i in (1, 2, 3)}
    >>> policy = DecryptionPolicy(ctx, min_clients=3, max_value=1.0,
    ...                           identities={i: identity_public_key(k) for i, k in ids.items()})
    >>> ups = [PolicyClient(ctx.public_context(), i, k, key_holder_key=policy.public_key, max_value=1.0)
    ...        .encrypt(np.full(2, 0.25 * i), round_id=1) for i, k in ids.items()]
    >>> total = GradientAggregator(ctx.public_context()).sum(b for b, _ in ups)
    >>> policy.decrypt(total, round_id=1, receipts=[r for _, r in ups], average=False)
    array([1.5, 1.5])
    """

    def __init__(self, context: SchemeContext, *, min_clients: int, identities: Mapping[int, bytes],
                 security_bits: int = DEFAULT_SECURITY_BITS, dp: Any = None, max_value: float | None = None,
                 precision_bits: int | None = None, state_path: str | None = None,
                 key: X25519PrivateKey | None = None, min_signers: int = 0) -> None:
        if not isinstance(context, SchemeContext):
            raise ParameterError(f"DecryptionPolicy needs an he_ml context (the key holder's secret context, or a "
                                 f"committee's public context for admit()); got {type(context).__name__}.")
        if isinstance(min_clients, bool) or not isinstance(min_clients, int) or min_clients < 1:
            raise ParameterError(f"min_clients must be a positive int; got {min_clients!r}.")
        self.context = context
        self.min_clients = min_clients
        if isinstance(min_signers, bool) or not isinstance(min_signers, int) or min_signers < 0:
            raise ParameterError(f"min_signers must be a non-negative int; got {min_signers!r}.")
        self.min_signers = min_signers
        self.identities = wire.as_public_registry(identities, "identities") or {}
        self.security_bits = _check_security(security_bits)
        if context.name == "ckks" and context.has_secret_key:
            release_plan(context, min_clients, security_bits=self.security_bits)  # refuse early, with a hint
        self.dp = dp
        self._opts = dict(max_value=max_value, precision_bits=precision_bits, dp=dp)
        self._agg = GradientAggregator(context, max_value=max_value, precision_bits=precision_bits)
        self._key = key or X25519PrivateKey.generate()
        self.public_key = wire.pub_bytes(self._key)
        self._unmasker = (MaskedUnmasker(context, identities=self.identities, key=self._key, **self._opts)
                          if context.name in ("paillier", "bfv") else None)
        self.state_path = state_path
        self._used: set[str] = set()
        if state_path is not None and os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as f:
                self._used.update(line.rstrip("\n") for line in f if line.strip())
        self.last: Release | None = None

    @property
    def unmasker(self) -> MaskedUnmasker | None:
        """The :class:`MaskedUnmasker` sharing this policy's X25519 key (Paillier/BFV; None for CKKS)."""
        return self._unmasker

    @property
    def used_rounds(self) -> frozenset[str]:
        """Round ids already decrypted (refused from now on)."""
        return frozenset(self._used)

    def _consume(self, rid: str) -> None:
        self._used.add(rid)
        if self.state_path is not None:
            with open(self.state_path, "a", encoding="utf-8") as f:
                f.write(rid + "\n")

    def _verify_receipts(self, receipts: Iterable[bytes], rid: str) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for i, r in enumerate(receipts):
            info = receipt_info(r)
            if info["round"] != rid:
                raise ContextMismatchError(f"receipt {i} is for round {info['round']!r}, not {rid!r}; receipts of "
                                           f"another round are refused.")
            cid = info["client"]
            pk = self.identities.get(cid)
            if pk is None or not wire.verify(pk, info["signature"], _receipt_message(
                    rid, cid, info["mask_pk"], info["blob_sha256"])):
                raise InvalidCiphertextError(f"receipt {i} (client {cid}) is not signed by a registered client "
                                             f"identity; refused.")
            if cid in out:
                raise InvalidCiphertextError(f"receipt {i}: client {cid} appears twice; each client counts once.")
            out[cid] = info
        return out

    def _refuse_small(self, count: int, rid: str) -> None:
        if count < self.min_clients:
            raise SecretKeyMissingError(
                f"round {rid!r}: only {count} proven contributor(s), fewer than min_clients={self.min_clients}; "
                f"the key holder refuses to decrypt (an aggregate of too few clients would reveal them).")

    def decrypt(self, total: bytes | None, *, round_id: Any, receipts: Sequence[bytes] | None = None,
                evidence: bytes | None = None, blobs: Sequence[bytes] | None = None, release: bool = True,
                average: bool = True, details: bool = False) -> Any:
        """Decrypt the total of ``round_id`` if the policy allows it.

        Parameters
        ----------
        total : bytes or None
            The server's total (None with ``blobs``: the policy sums them).
        round_id : int or str
        receipts : sequence of bytes, optional
            The clients' receipts (:meth:`PolicyClient.encrypt`).
        evidence : bytes, optional
            A masked round's evidence (:attr:`MaskedResult.evidence`); instead of receipts.
        blobs : sequence of bytes, optional
            The clients' blobs (required for CKKS): each must match its receipt.
        release : bool, default True
            The result leaves the key holder: CKKS is smudged before decoding. ``False`` only for the key
            holder's own use.
        average : bool, default True
            Divide by the number of proven contributors.
        details : bool, default False
            Return a :class:`Release` instead of the value.

        Raises
        ------
        SecretKeyMissingError
            Round already decrypted; fewer than ``min_clients`` proven contributors; no proof.
        InvalidCiphertextError
            A receipt is forged or repeated, a blob does not match, or the total does not unmask
            (it is not the sum of the proven contributors' blobs).
        ContextMismatchError
            Receipts or evidence of another round.
        """
        if not self.context.has_secret_key:
            raise SecretKeyMissingError(
                f"this policy holds a public {self.context.name} context: it can admit() a total (e.g. before a "
                f"committee's partial_decrypt) but not decrypt it. Create the key holder's policy with the secret "
                f"context.")
        total, clients, rid = self._admit(total, round_id, receipts, evidence, blobs)
        return self._finish(total, rid, clients, release, average, details)

    def admit(self, total: bytes | None, *, round_id: Any, receipts: Sequence[bytes] | None = None,
              evidence: bytes | None = None, blobs: Sequence[bytes] | None = None) -> tuple[bytes, list[int]]:
        """Run the policy's checks and remove the masks, without decrypting (committee members).

        Consumes ``round_id``. Returns the total (still encrypted, round / self masks removed) and the
        proven contributors; pass the total to ``partial_decrypt``. Raises as :meth:`decrypt`.
        """
        total, clients, _ = self._admit(total, round_id, receipts, evidence, blobs)
        return total, clients

    def _admit(self, total, round_id, receipts, evidence, blobs) -> tuple[bytes, list[int], str]:
        rid = _round_id(round_id)
        if rid in self._used:
            raise SecretKeyMissingError(
                f"round {rid!r} was already decrypted; the key holder decrypts each round id once (a replayed "
                f"or re-randomized total would let the server average away the noise). Start a new round.")
        if (receipts is None) == (evidence is None):
            raise SecretKeyMissingError(
                "the key holder decrypts only proven totals: pass the clients' receipts=... (PolicyClient) or a "
                "masked round's evidence=... (MaskedServer), exactly one of them.")
        if evidence is not None:
            if self._unmasker is None:
                raise ParameterError(f"masked-round evidence needs a Paillier or BFV context; this is "
                                     f"{self.context.name}.")
            header, sections = self._unmasker.verify(evidence, rid, self.min_signers)
            clients = list(header["survivors"])
            self._refuse_small(len(clients), rid)
            self._check_count(total, len(clients))
            self._consume(rid)
            total, _ = self._unmasker._unmask_verified(total, header, sections, rid)  # verified once, above
        else:
            infos = self._verify_receipts(receipts, rid)
            clients = sorted(infos)
            self._refuse_small(len(clients), rid)
            if blobs is not None:
                by_hash = {info["blob_sha256"]: cid for cid, info in infos.items()}
                blobs = list(blobs)
                got = [by_hash.get(hashlib.sha256(b).digest()) for b in blobs]
                if None in got or sorted(got) != clients:
                    raise InvalidCiphertextError(
                        f"round {rid!r}: the blobs do not match the receipts one to one ({len(blobs)} blobs, "
                        f"{len(clients)} receipts); refused.")
                total = self._agg.sum(blobs)
            elif self.context.name == "ckks":
                raise SecretKeyMissingError(
                    "ckks totals cannot carry exact round masks, so the key holder cannot tell a total from one "
                    "client's blob: pass blobs=... (it checks them against the receipts and sums them itself), "
                    "or use BFV/Paillier.")
            self._check_count(total, len(clients))
            self._consume(rid)
            if blobs is None:
                total = self._remove_round_masks(total, infos, rid)
        return total, clients, rid

    def _check_count(self, total: bytes, count: int) -> None:
        declared = GradientAggregator.count_of(total)
        if declared != count:
            raise InvalidCiphertextError(
                f"the total's count field says {declared} but {count} contributors are proven; the count was "
                f"edited or the total mixes other blobs. Refused.")

    def _remove_round_masks(self, total: bytes, infos: dict[int, dict[str, Any]], rid: str) -> bytes:
        public = self.context.public_context()
        backend = make_backend(public, max_clients=None, **self._opts)
        dom = backend.domain(backend.domain_size(total))
        acc = dom.accumulator()  # lazy sum of the round masks, reduced once
        for cid, info in infos.items():
            key = _round_mask_key(wire.agree(self._key, info["mask_pk"], f"receipt of client {cid}"), rid, cid)
            dom.accumulate(acc, key)
        return backend.subtract(total, dom.finish(acc))

    def _finish(self, total: bytes, rid: str, clients: list[int], release: bool, average: bool,
                details: bool) -> Any:
        try:
            value = self._agg.decrypt(total, release_count=len(clients) if release else None,
                                      security_bits=self.security_bits)
        except (InvalidCiphertextError, EncodingOverflowError) as e:
            raise InvalidCiphertextError(
                f"round {rid!r}: the total does not unmask to valid slots ({e}); it is not the sum of the proven "
                f"contributors' blobs (a single blob, a partial sum or another round's total). Refused; the "
                f"round id is used up.") from e
        from .aggregator import flatten_update

        flat, spec, structure = flatten_update(value)
        topup, fraction = 0.0, 1.0
        dp = self.dp
        if dp is not None:
            from .dp import add_central_noise, discrete_gaussian

            if dp.mode == "central":
                flat = np.asarray(add_central_noise(flat, dp), dtype=np.float64)
            elif len(clients) < dp.num_clients:
                fraction = len(clients) / dp.num_clients
                missing = (dp.num_clients - len(clients)) * dp.client_variance_grid
                grid = np.rint(flat / dp.resolution).astype(np.int64)
                flat = (grid + discrete_gaussian(missing, grid.shape)).astype(np.float64) * dp.resolution
                topup = missing * dp.resolution**2
        smudging = self._agg.last_release_plan if release and self.context.name == "ckks" else None
        if average:
            flat = flat / float(len(clients))
        out = unflatten_update(flat, spec, structure)
        self.last = Release(out, rid, clients, smudging, topup, fraction)
        return self.last if details else out

    def release_plan(self, count: int) -> ReleasePlan | None:
        """The smudging a released CKKS total of ``count`` contributors gets (None for BFV/Paillier: exact).

        Raises
        ------
        ParameterError
            If the CKKS context cannot hold the smudging (the message names a context that can).
        """
        if self.context.name != "ckks":
            return None
        return release_plan(self.context, count, security_bits=self.security_bits)
