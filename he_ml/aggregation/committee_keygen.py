"""Dealer-free key generation for BFV/CKKS committees, one member per process.

The steps of :func:`Committee.generate("bfv" | "ckks", ...)` as share-generating types
(Lattigo ``multiparty`` style): every step returns bytes bound to the session (a 16-byte id
hashing all public parameters and the common-random-polynomial seed) and to its sender, and
refuses bytes from another session.

1. Someone (the coordinator, or any member) creates a :class:`KeygenSession` and sends
   ``session.to_bytes()`` to every member. It is public.
2. Member ``i`` runs ``m = KeygenMember(session, i)`` -- it samples its ``s_i`` and ``e_i``
   from :mod:`secrets` -- and sends

   * ``m.ckg_share()`` (public: ``p0_i = -(a s_i + e_i)``, Mouchet et al. PETS 2021 Sect. 4,
     CKG) to **everyone**, and
   * ``m.reshare()[j]`` to member ``j`` for every ``j`` -- **secret**: member ``i``'s pieces
     ``r_{i,A}`` (with ``s_i = sum_A r_{i,A}``) and noise-key parts ``k_{i,A}`` for the sets
     ``A`` that ``j`` holds. Send them over an authenticated, encrypted channel.

3. Each member runs ``pub, share = m.finalize(ckg_shares, messages_to_me)``: the collective
   public key (``p0 = sum_i p0_i``, ``p1 = a``) -- identical at every member, its fingerprint
   is the committee id -- and its :class:`KeyShare` (``r_A = sum_i r_{i,A}``,
   ``k_A = SHA-256(k_{1,A} || ... || k_{n,A})``).

No party ever holds ``s = sum_i s_i``. Security is semi-honest (honest-but-curious members
following the protocol; no proofs that shares are well formed); a coalition of ``t - 1``
members misses the ``r_A`` of its own set, which is a sum including honest members' uniform
pieces. All members must be online for key generation (n-of-n); decryption then needs ``t``.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
from typing import Any

import numpy as np

from .. import native
from ..errors import ContextMismatchError, InvalidCiphertextError, ParameterError
from ..schemes.base import SchemeContext
from . import committee_lattice as cl
from .committee import MAX_MEMBERS, KeyShare, _check_members, _int_field, _pack, _unpack

__all__ = ["KeygenSession", "KeygenMember"]

_KIND_SESSION = 3
_KIND_CKG = 4
_KIND_RESHARE = 5


class KeygenSession:
    """Public parameters of one dealer-free committee key generation.

    Parameters
    ----------
    scheme : {"bfv", "ckks"}
    members, threshold : int
    max_clients, max_value, precision_bits, smudging_security
        As for :meth:`Committee.generate`.
    seed : bytes, optional
        32-byte seed of the common random polynomial (default: fresh from :mod:`secrets`).
    """

    def __init__(self, scheme: str, members: int = 5, threshold: int = 3, *, max_clients: int = 100,
                 max_value: float = 1.0, precision_bits: int | None = None,
                 smudging_security: int = cl.SMUDGING_SECURITY, seed: bytes | None = None) -> None:
        members, threshold = _check_members(members, threshold)
        scheme = str(scheme).lower()
        if scheme not in ("bfv", "ckks"):
            raise ParameterError(f"KeygenSession is for 'bfv' or 'ckks'; got {scheme!r} (Paillier uses a dealer).")
        subkeys = math.comb(members, threshold - 1)
        if subkeys > cl.MAX_SUBKEYS:
            raise ParameterError(
                f"{scheme}: a {threshold}-of-{members} committee needs C({members}, {threshold - 1}) = {subkeys} "
                f"replicated sub-keys (more than {cl.MAX_SUBKEYS}); use threshold={members} (n-of-n), fewer "
                f"members, or the 'paillier' committee (any t-of-n).")
        seed = secrets.token_bytes(32) if seed is None else bytes(seed)
        if len(seed) != 32:
            raise ParameterError(f"seed must be 32 bytes; got {len(seed)}.")
        self.params = {"scheme": scheme, "members": members, "threshold": threshold,
                       "max_clients": int(max_clients), "max_value": float(max_value),
                       "precision_bits": None if precision_bits is None else int(precision_bits),
                       "smudging_security": int(smudging_security)}
        self.seed = seed
        self.plan = cl.plan_lattice(scheme, members, threshold, max_clients=int(max_clients),
                                    max_value=float(max_value), precision_bits=precision_bits,
                                    smudging_security=int(smudging_security))
        self.session_id = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode() + seed).digest()[:16]
        self._base: SchemeContext | None = None

    @property
    def scheme(self) -> str:
        return self.params["scheme"]

    @property
    def members(self) -> int:
        return self.params["members"]

    @property
    def threshold(self) -> int:
        return self.params["threshold"]

    def base_context(self) -> SchemeContext:
        """The parameters' SEAL context (its placeholder keys are never used)."""
        if self._base is None:
            from ..schemes.seal_rns import multiparty_context

            p = self.plan
            base = multiparty_context(self.scheme, poly_modulus_degree=p.poly_modulus_degree,
                                      coeff_mod_bit_sizes=list(p.coeff_mod_bit_sizes), scale_bits=p.scale_bits,
                                      plain_modulus_bits=p.plain_modulus_bits,
                                      fixed_point_bits=getattr(p, "fixed_point_bits", None))
            base._extra["committee"] = [self.members, self.threshold]  # public: travels in the context blob
            self._base = base
        return self._base

    def info(self) -> dict[str, Any]:
        from ..schemes.seal_rns import rns_moduli

        return rns_moduli(self.base_context())

    def crp(self) -> np.ndarray:
        """The common random polynomial ``a`` (NTT form over the key primes) from the seed."""
        info = self.info()
        return cl.uniform_rns(self.seed, info["key_primes"], info["n"])

    def to_bytes(self) -> bytes:
        return _pack(_KIND_SESSION, self.scheme, self.session_id, dict(self.params, seed=self.seed.hex()), [])

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeygenSession":
        what = "keygen session"
        scheme, sid, meta, _ = _unpack(data, _KIND_SESSION, what)
        try:
            seed = bytes.fromhex(meta.pop("seed"))
            session = cls(scheme, meta["members"], meta["threshold"], max_clients=meta["max_clients"],
                          max_value=meta["max_value"], precision_bits=meta["precision_bits"],
                          smudging_security=meta["smudging_security"], seed=seed)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidCiphertextError(f"{what}: malformed parameters ({e}).") from e
        if session.session_id != sid:
            raise InvalidCiphertextError(f"{what}: the session id does not match its parameters (edited bytes).")
        return session


class KeygenMember:
    """One member's state in a :class:`KeygenSession` (holds ``s_i``: keep it in this process)."""

    def __init__(self, session: KeygenSession, member: int) -> None:
        if not isinstance(session, KeygenSession):
            raise ParameterError(f"session must be a KeygenSession; got {type(session).__name__}.")
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)) or not 1 <= member <= session.members:
            raise ParameterError(f"member must be an int in [1, {session.members}]; got {member!r}.")
        self.session = session
        self.member = int(member)
        info = session.info()
        self._info = info
        kp = info["key_primes"]
        n = info["n"]
        self._s = native.ntt_rns(cl.small_to_rns(cl.ternary(n), kp), kp)
        self._e = native.ntt_rns(cl.small_to_rns(cl.centred_binomial(n), kp), kp)
        self._sets = cl.unqualified_sets(session.members, session.threshold)
        self._pieces: dict[tuple[int, ...], tuple[np.ndarray, bytes]] | None = None

    # --------------------------------------------------------------------- step 1: CKG share
    def ckg_share(self) -> bytes:
        """``p0_i = -(a s_i + e_i)`` (public; send to every member)."""
        kp = self._info["key_primes"]
        a = self.session.crp()
        p0 = cl.negmod(cl.addmod(native.pointwise_mul_rns(a, self._s, kp), self._e, kp), kp)
        return _pack(_KIND_CKG, self.session.scheme, self.session.session_id, {"member": self.member},
                     [np.ascontiguousarray(p0, dtype="<u8").tobytes()])

    # --------------------------------------------------------------------- step 2: re-sharing
    def _make_pieces(self) -> dict[tuple[int, ...], tuple[np.ndarray, bytes]]:
        if self._pieces is None:
            dp = self._info["data_primes"]
            n = self._info["n"]
            rest = self._s[:len(dp)].copy()
            pieces = {}
            for A in self._sets[:-1]:
                piece = cl.uniform_rns(secrets.token_bytes(32), dp, n, b"share")
                rest = cl.addmod(rest, cl.negmod(piece, dp), dp)
                pieces[A] = (piece, secrets.token_bytes(32))
            pieces[self._sets[-1]] = (rest, secrets.token_bytes(32))
            self._pieces = pieces
        return self._pieces

    def reshare(self) -> dict[int, bytes]:
        """Secret messages: ``{j: bytes}`` for every member ``j`` (including this one).

        Message ``j`` holds ``(r_{i,A}, k_{i,A})`` for every set ``A`` not containing ``j``.
        """
        pieces = self._make_pieces()
        out = {}
        for j in range(1, self.session.members + 1):
            sets = [A for A in self._sets if j not in A]
            sections = []
            for A in sets:
                sections += [np.ascontiguousarray(pieces[A][0], dtype="<u8").tobytes(), pieces[A][1]]
            out[j] = _pack(_KIND_RESHARE, self.session.scheme, self.session.session_id,
                           {"member": self.member, "to": j, "sets": [list(A) for A in sets]}, sections)
        return out

    # --------------------------------------------------------------------- step 3: finalize
    def finalize(self, ckg_shares: list[bytes], messages: list[bytes]) -> tuple[SchemeContext, KeyShare]:
        """Aggregate everyone's CKG shares and the re-sharing messages addressed to this member.

        Returns
        -------
        (public context, KeyShare)

        Raises
        ------
        ContextMismatchError
            If a message belongs to another session or is addressed to another member.
        InvalidCiphertextError
            If a message is malformed, or a member's share or message is missing or repeated.
        """
        from ..schemes.seal_rns import with_public_key

        s = self.session
        kp, dp, n = self._info["key_primes"], self._info["data_primes"], self._info["n"]
        p0 = np.zeros((len(kp), n), dtype=np.uint64)
        seen: set[int] = set()
        for raw in ckg_shares:
            sender, _, sections = self._open(raw, _KIND_CKG, "CKG share")
            if sender in seen:
                raise InvalidCiphertextError(f"CKG share of member {sender} given twice.")
            seen.add(sender)
            if len(sections) != 1 or len(sections[0]) != 8 * len(kp) * n:
                raise InvalidCiphertextError(f"CKG share of member {sender} has the wrong size.")
            share = np.frombuffer(sections[0], dtype="<u8").astype(np.uint64).reshape(len(kp), n)
            if np.any(share >= np.asarray(kp, dtype=np.uint64)[:, None]):
                raise InvalidCiphertextError(f"CKG share of member {sender} has a coefficient >= its prime.")
            p0 = cl.addmod(p0, share, kp)
        if seen != set(range(1, s.members + 1)):
            raise InvalidCiphertextError(f"CKG shares needed from members 1..{s.members}; got {sorted(seen)}.")
        mine = [A for A in self._sets if self.member not in A]
        subkeys = {A: np.zeros((len(dp), n), dtype=np.uint64) for A in mine}
        key_parts: dict[tuple[int, ...], dict[int, bytes]] = {A: {} for A in mine}
        senders: set[int] = set()
        for raw in messages:
            sender, meta, sections = self._open(raw, _KIND_RESHARE, "re-sharing message")
            if meta.get("to") != self.member:
                raise ContextMismatchError(f"re-sharing message from member {sender} is addressed to member "
                                           f"{meta.get('to')!r}, not to {self.member}.")
            if sender in senders:
                raise InvalidCiphertextError(f"re-sharing message of member {sender} given twice.")
            senders.add(sender)
            if meta.get("sets") != [list(A) for A in mine] or len(sections) != 2 * len(mine):
                raise InvalidCiphertextError(f"re-sharing message of member {sender} does not carry this "
                                             f"member's {len(mine)} sub-keys.")
            for j, A in enumerate(mine):
                raw_r, k = sections[2 * j], sections[2 * j + 1]
                if len(raw_r) != 8 * len(dp) * n or len(k) != 32:
                    raise InvalidCiphertextError(f"re-sharing message of member {sender}: sub-key {A} has the wrong size.")
                r = np.frombuffer(raw_r, dtype="<u8").astype(np.uint64).reshape(len(dp), n)
                if np.any(r >= np.asarray(dp, dtype=np.uint64)[:, None]):
                    raise InvalidCiphertextError(f"re-sharing message of member {sender}: coefficient >= its prime.")
                subkeys[A] = cl.addmod(subkeys[A], r, dp)
                key_parts[A][sender] = bytes(k)
        if senders != set(range(1, s.members + 1)):
            raise InvalidCiphertextError(f"re-sharing messages needed from members 1..{s.members}; got {sorted(senders)}.")
        noise_keys = {A: hashlib.sha256(b"".join(parts[i] for i in sorted(parts))).digest()
                      for A, parts in key_parts.items()}
        pub = with_public_key(s.base_context(), np.stack([p0, s.crp()]))
        plan = s.plan
        share = KeyShare(s.scheme, self.member, s.members, s.threshold, pub.fingerprint,
                         {"n": n, "primes": dp, "bits": plan.smudging_bits,
                          "subkeys": {A: (subkeys[A], noise_keys[A]) for A in mine},
                          "params": {"poly_modulus_degree": plan.poly_modulus_degree,
                                     "coeff_mod_bit_sizes": list(plan.coeff_mod_bit_sizes),
                                     "scale_bits": plan.scale_bits, "plain_modulus_bits": plan.plain_modulus_bits,
                                     "fixed_point_bits": plan.fixed_point_bits}})
        self._s = self._e = None  # type: ignore[assignment]
        self._pieces = None
        return pub, share

    def _open(self, raw: bytes, kind: int, what: str) -> tuple[int, dict[str, Any], list[bytes]]:
        scheme, sid, meta, sections = _unpack(raw, kind, what)
        if sid != self.session.session_id or scheme != self.session.scheme:
            raise ContextMismatchError(f"{what} belongs to another key-generation session "
                                       f"({sid.hex()[:12]}... != {self.session.session_id.hex()[:12]}...).")
        sender = _int_field(meta, "member", 1, min(self.session.members, MAX_MEMBERS), what)
        return sender, meta, sections
