"""Committee (threshold) decryption: no single party can decrypt an individual update.

``Committee.generate`` makes a key whose public part is an ordinary he_ml public context
(clients and the server use :class:`~he_ml.aggregation.GradientAggregator` on it unchanged)
and whose secret part is split into one :class:`KeyShare` per member. Any ``threshold``
members turn a total into the plaintext sum: each computes a :class:`PartialDecryption`
(:func:`partial_decrypt`), anyone holding the public context runs :func:`combine`.

* **paillier** -- threshold Paillier (Damgard-Jurik PKC 2001 Sect. 4 / Shoup 2000) with a
  dealer that :meth:`Committee.generate` plays and forgets; see
  :mod:`he_ml.aggregation.committee_paillier`.
* **bfv**, **ckks** -- multiparty RLWE keys (Mouchet et al., PETS 2021, Sect. 4) with a
  collective public key, replicated t-of-n sub-keys and smudged partial decryptions; the
  polynomial arithmetic on SEAL's RNS data runs on :mod:`he_ml.native`; see
  :mod:`he_ml.aggregation.committee_lattice`.

The threat model is in ``docs/committee.md``.

Example
-------
>>> import numpy as np, he_ml
>>> from he_ml.aggregation import Committee, GradientAggregator, partial_decrypt, combine
>>> committee = Committee.generate("bfv", members=5, threshold=3)
>>> pub = committee.public_context()
>>> client = server = GradientAggregator(pub)
>>> total = server.sum([client.encrypt(np.full(4, 0.25 * i)) for i in range(4)])
>>> parts = [partial_decrypt(s, total) for s in committee.shares[:3]]
>>> combine(pub, total, parts, count=4)
array([0.375, 0.375, 0.375, 0.375])
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import (
    ContextMismatchError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
)
from ..schemes.base import EncryptedVector, SchemeContext
from .aggregator import GradientAggregator, unflatten_update

__all__ = ["Committee", "KeyShare", "PartialDecryption", "partial_decrypt", "combine",
           "insecure_tiny_committee", "MAX_MEMBERS"]

#: Largest committee (the Paillier dealer's Delta = members! and the lattice sub-key count grow fast).
MAX_MEMBERS = 64
_MAGIC = b"HEMC"
_VERSION = 1
_KIND_SHARE = 1
_KIND_PART = 2
_SCHEMES = {"paillier": 1, "bfv": 2, "ckks": 3}
_SCHEME_NAMES = {v: k for k, v in _SCHEMES.items()}
_HEAD = struct.Struct("<4sHBB16sI")
_MAX_META = 1 << 20


# ------------------------------------------------------------------------------- containers
def _pack(kind: int, scheme: str, committee_id: bytes, meta: dict[str, Any], sections: Sequence[bytes]) -> bytes:
    m = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    parts = [_HEAD.pack(_MAGIC, _VERSION, kind, _SCHEMES[scheme], committee_id, len(m)), m,
             struct.pack("<I", len(sections))]
    for s in sections:
        parts += [struct.pack("<Q", len(s)), bytes(s)]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def _unpack(data: Any, kind: int, what: str) -> tuple[str, bytes, dict[str, Any], list[bytes]]:
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidCiphertextError(f"{what} must be bytes from to_bytes(); got {type(data).__name__}.")
    data = bytes(data)

    def bad(msg: str) -> InvalidCiphertextError:
        return InvalidCiphertextError(f"not a valid {what}: {msg}. Re-send the bytes produced by to_bytes().")

    if len(data) < _HEAD.size + 8 or data[:4] != _MAGIC:
        raise bad("missing the committee magic or too short")
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise bad("checksum mismatch")
    _, version, k, scheme_id, cid, mlen = _HEAD.unpack_from(data, 0)
    if version != _VERSION:
        raise bad(f"format version must be {_VERSION}; got {version}")
    if k != kind:
        names = {1: "key share", 2: "partial decryption", 3: "keygen session", 4: "CKG share",
                 5: "re-sharing message"}
        raise bad(f"it holds a {names.get(k, 'unknown object')}")
    if scheme_id not in _SCHEME_NAMES:
        raise bad(f"unknown scheme id {scheme_id}")
    end = len(data) - 4
    pos = _HEAD.size
    if mlen > _MAX_META or pos + mlen + 4 > end:
        raise bad("metadata length exceeds the buffer")
    try:
        meta = json.loads(data[pos:pos + mlen])
    except (ValueError, RecursionError) as e:
        raise bad("metadata is not JSON") from e
    if not isinstance(meta, dict):
        raise bad("metadata must be an object")
    pos += mlen
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if count * 8 > end - pos:
        raise bad("section count exceeds the buffer")
    sections = []
    for _ in range(count):
        if pos + 8 > end:
            raise bad("truncated section header")
        (ln,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if ln > end - pos:
            raise bad("section length exceeds the buffer")
        sections.append(data[pos:pos + ln])
        pos += ln
    if pos != end:
        raise bad("trailing bytes")
    return _SCHEME_NAMES[scheme_id], cid, meta, sections


def _int_field(meta: dict[str, Any], key: str, lo: int, hi: int, what: str) -> int:
    v = meta.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise InvalidCiphertextError(f"{what}: field {key!r} must be an int in [{lo}, {hi}]; got {v!r}.")
    return v


# ------------------------------------------------------------------------------- key shares
class KeyShare:
    """One member's share of a committee's secret key (keep it secret; one per member).

    Attributes
    ----------
    scheme : str
    member : int
        1-based member index.
    members, threshold : int
    committee_id : bytes
        16 bytes: the fingerprint of the committee's public key (``public_context().fingerprint``).

    Notes
    -----
    Paillier: the integer ``s_i = f(i) mod n m`` of the dealer's polynomial, plus ``n``.
    BFV/CKKS: the member's replicated sub-keys ``r_A`` (NTT form over the data primes) and
    their smudging keys ``k_A``, plus the committee's smudging width. ``to_bytes`` writes
    them in the clear: store and transmit a share as you would a private key.
    """

    def __init__(self, scheme: str, member: int, members: int, threshold: int, committee_id: bytes,
                 payload: dict[str, Any]) -> None:
        self.scheme = scheme
        self.member = int(member)
        self.members = int(members)
        self.threshold = int(threshold)
        self.committee_id = bytes(committee_id)
        self._payload = payload

    def __repr__(self) -> str:
        return (f"KeyShare(scheme={self.scheme!r}, member={self.member}, members={self.members}, "
                f"threshold={self.threshold}, committee={self.committee_id.hex()[:12]}...)")

    def to_bytes(self) -> bytes:
        """Serialize (secret material in the clear: protect the bytes)."""
        meta = {"member": self.member, "members": self.members, "threshold": self.threshold}
        p = self._payload
        if self.scheme == "paillier":
            n = int(p["n"])
            w = (n.bit_length() + 7) // 8
            return _pack(_KIND_SHARE, self.scheme, self.committee_id, meta,
                         [n.to_bytes(w, "big"), int(p["s"]).to_bytes(2 * w, "big")])
        meta.update(n=int(p["n"]), primes=[int(q) for q in p["primes"]], bits=int(p["bits"]),
                    sets=[list(A) for A in sorted(p["subkeys"])], params=p["params"])
        sections = []
        for A in sorted(p["subkeys"]):
            r, k = p["subkeys"][A]
            sections += [np.ascontiguousarray(r, dtype="<u8").tobytes(), k]
        return _pack(_KIND_SHARE, self.scheme, self.committee_id, meta, sections)

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeyShare":
        """Load a share written by :meth:`to_bytes`.

        Raises
        ------
        InvalidCiphertextError
            If the bytes are not a complete, consistent key share.
        """
        what = "committee key share"
        scheme, cid, meta, sections = _unpack(data, _KIND_SHARE, what)
        members = _int_field(meta, "members", 1, MAX_MEMBERS, what)
        threshold = _int_field(meta, "threshold", 1, members, what)
        member = _int_field(meta, "member", 1, members, what)
        if scheme == "paillier":
            if len(sections) != 2 or len(sections[1]) != 2 * len(sections[0]) or not sections[0]:
                raise InvalidCiphertextError(f"{what}: a paillier share has sections n and s (twice n's width).")
            n = int.from_bytes(sections[0], "big")
            s = int.from_bytes(sections[1], "big")
            if n < 15 or n % 2 == 0 or s >= n * n:
                raise InvalidCiphertextError(f"{what}: the modulus or share is out of range.")
            return cls(scheme, member, members, threshold, cid, {"n": n, "s": s})
        from . import committee_lattice as cl

        n = _int_field(meta, "n", 1024, 32768, what)
        bits = _int_field(meta, "bits", 1, 123, what)
        primes, sets = meta.get("primes"), meta.get("sets")
        if (not isinstance(primes, list) or not 1 <= len(primes) <= 16
                or not all(isinstance(q, int) and not isinstance(q, bool) and 2 < q < 1 << 62 for q in primes)):
            raise InvalidCiphertextError(f"{what}: 'primes' must be 1..16 ints below 2^62.")
        expected = [A for A in cl.unqualified_sets(members, threshold) if member not in A]
        if not isinstance(sets, list) or [tuple(A) if isinstance(A, list) else None for A in sets] != expected:
            raise InvalidCiphertextError(f"{what}: the sub-key list does not match member {member} of a "
                                         f"{threshold}-of-{members} committee.")
        if len(sections) != 2 * len(expected):
            raise InvalidCiphertextError(f"{what}: expected {2 * len(expected)} sections; got {len(sections)}.")
        prm = meta.get("params")
        try:
            if not isinstance(prm, dict) or set(prm) != {"poly_modulus_degree", "coeff_mod_bit_sizes", "scale_bits",
                                                         "plain_modulus_bits", "fixed_point_bits"}:
                raise ValueError("keys")
            if prm["poly_modulus_degree"] != n or len(prm["coeff_mod_bit_sizes"]) != len(primes) + 1 \
                    or not all(isinstance(b, int) and 20 <= b <= 60 for b in prm["coeff_mod_bit_sizes"]):
                raise ValueError("chain")
            if scheme == "ckks" and not isinstance(prm["scale_bits"], int) \
                    or scheme == "bfv" and not (isinstance(prm["plain_modulus_bits"], int)
                                                and isinstance(prm["fixed_point_bits"], int)
                                                and 0 <= prm["fixed_point_bits"] < prm["plain_modulus_bits"]):
                raise ValueError("encoder")
        except (ValueError, TypeError, KeyError) as e:
            raise InvalidCiphertextError(f"{what}: the committee parameters are malformed ({e}).") from e
        size = 8 * len(primes) * n
        subkeys = {}
        for j, A in enumerate(expected):
            raw, key = sections[2 * j], sections[2 * j + 1]
            if len(raw) != size or len(key) != 32:
                raise InvalidCiphertextError(f"{what}: sub-key {A} has the wrong size.")
            r = np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(len(primes), n)
            if np.any(r >= np.asarray(primes, dtype=np.uint64)[:, None]):
                raise InvalidCiphertextError(f"{what}: sub-key {A} has a coefficient >= its prime.")
            subkeys[A] = (r, bytes(key))
        return cls(scheme, member, members, threshold, cid,
                   {"n": n, "primes": [int(q) for q in primes], "bits": bits, "subkeys": subkeys, "params": prm})

    def secret_bytes(self) -> list[bytes]:
        """The raw secret material (for leak tests: none of it may appear in public bytes)."""
        p = self._payload
        if self.scheme == "paillier":
            s = int(p["s"])
            return [s.to_bytes((s.bit_length() + 7) // 8, "big")]
        out = []
        for r, k in p["subkeys"].values():
            out += [np.ascontiguousarray(r, dtype="<u8").tobytes()[:64], k]
        return out


# ------------------------------------------------------------------------------- partials
class PartialDecryption:
    """One member's partial decryption of one total (public: send it to the combiner).

    Bound to its committee (``committee_id``) and to the total it decrypts (``total_digest``,
    SHA-256 of the total's bytes): :func:`combine` refuses it for anything else.
    """

    def __init__(self, scheme: str, member: int, committee_id: bytes, total_digest: bytes,
                 chunks: list[Any], members: int, threshold: int) -> None:
        self.scheme = scheme
        self.member = int(member)
        self.members = int(members)
        self.threshold = int(threshold)
        self.committee_id = bytes(committee_id)
        self.total_digest = bytes(total_digest)
        self.chunks = chunks  # paillier: list[int]; lattice: list[dict[A, ndarray (L, n)]]

    def __repr__(self) -> str:
        return (f"PartialDecryption(scheme={self.scheme!r}, member={self.member}, "
                f"committee={self.committee_id.hex()[:12]}..., total={self.total_digest.hex()[:12]}...)")

    def to_bytes(self) -> bytes:
        meta: dict[str, Any] = {"member": self.member, "total": self.total_digest.hex(),
                                "chunks": len(self.chunks), "members": self.members,
                                "threshold": self.threshold}
        if self.scheme == "paillier":
            w = max(1, max((int(c).bit_length() + 7) // 8 for c in self.chunks))
            meta["width"] = w
            return _pack(_KIND_PART, self.scheme, self.committee_id, meta,
                         [b"".join(int(c).to_bytes(w, "big") for c in self.chunks)])
        sets = sorted(self.chunks[0]) if self.chunks else []
        shape = list(next(iter(self.chunks[0].values())).shape) if sets else [0, 0]
        meta.update(sets=[list(A) for A in sets], shape=shape)
        sections = [np.ascontiguousarray(ch[A], dtype="<u8").tobytes() for ch in self.chunks for A in sets]
        return _pack(_KIND_PART, self.scheme, self.committee_id, meta, sections)

    @classmethod
    def from_bytes(cls, data: bytes) -> "PartialDecryption":
        """Load a partial decryption (raises `InvalidCiphertextError` on malformed bytes)."""
        what = "partial decryption"
        scheme, cid, meta, sections = _unpack(data, _KIND_PART, what)
        members = _int_field(meta, "members", 1, MAX_MEMBERS, what)
        threshold = _int_field(meta, "threshold", 1, members, what)
        member = _int_field(meta, "member", 1, members, what)
        count = _int_field(meta, "chunks", 1, 1 << 24, what)
        try:
            digest = bytes.fromhex(meta.get("total", ""))
        except (TypeError, ValueError):
            digest = b""
        if len(digest) != 32:
            raise InvalidCiphertextError(f"{what}: 'total' must be a SHA-256 hex digest.")
        if scheme == "paillier":
            w = _int_field(meta, "width", 1, 1 << 14, what)
            if len(sections) != 1 or len(sections[0]) != w * count:
                raise InvalidCiphertextError(f"{what}: expected {count} values of {w} bytes.")
            raw = sections[0]
            return cls(scheme, member, cid, digest,
                       [int.from_bytes(raw[i * w:(i + 1) * w], "big") for i in range(count)], members, threshold)
        sets, shape = meta.get("sets"), meta.get("shape")
        if (not isinstance(sets, list) or not all(isinstance(A, list) and all(isinstance(x, int) for x in A)
                                                  for A in sets) or not sets
                or not isinstance(shape, list) or len(shape) != 2
                or not all(isinstance(x, int) and 1 <= x <= 32768 for x in shape)):
            raise InvalidCiphertextError(f"{what}: malformed 'sets' or 'shape'.")
        size = 8 * shape[0] * shape[1]
        if len(sections) != count * len(sets) or any(len(s) != size for s in sections):
            raise InvalidCiphertextError(f"{what}: expected {count * len(sets)} polynomials of {size} bytes.")
        chunks = []
        for i in range(count):
            ch = {}
            for j, A in enumerate(sets):
                ch[tuple(A)] = np.frombuffer(sections[i * len(sets) + j], dtype="<u8").astype(np.uint64).reshape(shape)
            chunks.append(ch)
        return cls(scheme, member, cid, digest, chunks, members, threshold)


# ------------------------------------------------------------------------------- committee
def _check_members(members: Any, threshold: Any) -> tuple[int, int]:
    for name, v in (("members", members), ("threshold", threshold)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ParameterError(f"{name} must be an int; got {v!r}.")
    members, threshold = int(members), int(threshold)
    if not 1 <= members <= MAX_MEMBERS:
        raise ParameterError(f"members must be in [1, {MAX_MEMBERS}]; got {members}. Split a larger "
                             f"group into committees.")
    if not 1 <= threshold <= members:
        raise ParameterError(f"threshold must be in [1, members={members}]; got {threshold}. Use e.g. "
                             f"threshold={members // 2 + 1} (a majority).")
    return members, threshold


class Committee:
    """A key split among ``members``; any ``threshold`` of them can decrypt a total.

    Use :meth:`generate`. The object holds the public context and the shares; hand
    ``shares[i]`` (or its bytes) to member ``i + 1`` and then drop the committee object:
    whoever keeps all shares can decrypt alone.

    Attributes
    ----------
    scheme : str
    members, threshold : int
    committee_id : bytes
        Fingerprint of the public key; every share and partial carries it.
    plan : dict
        Parameters and noise budget (lattice schemes: :class:`LatticePlan` as a dict;
        Paillier: key size and encoding).
    """

    def __init__(self, scheme: str, members: int, threshold: int, public: SchemeContext,
                 shares: list[KeyShare], plan: dict[str, Any]) -> None:
        self.scheme = scheme
        self.members = members
        self.threshold = threshold
        self._public = public
        self._shares = shares
        self.committee_id = public.fingerprint
        self.plan = plan

    def __repr__(self) -> str:
        return (f"Committee({self.scheme!r}, members={self.members}, threshold={self.threshold}, "
                f"id={self.committee_id.hex()[:12]}...)")

    @classmethod
    def generate(cls, scheme: str, members: int = 5, threshold: int = 3, *, max_clients: int = 100,
                 max_value: float = 1.0, precision_bits: int | None = None, key_bits: int = 3072,
                 smudging_security: int = 40, allow_insecure: bool = False) -> "Committee":
        """Generate a committee key.

        Parameters
        ----------
        scheme : {"paillier", "bfv", "ckks"}
        members : int, default 5
        threshold : int, default 3
            Partial decryptions needed (``1 <= threshold <= members``).
        max_clients : int, default 100
            Client updates one total may hold (Paillier headroom, lattice noise budget).
        max_value : float, default 1.0
            Bound on one client's |value| (clip before encrypting).
        precision_bits : int, optional
            Paillier: fractional bits (default 24). BFV: fractional bits of the fixed point
            (default 20; pass the same to ``GradientAggregator(precision_bits=...)``).
            CKKS: minimum absolute bits kept on the sum after smudging (default 10).
        key_bits : int, default 3072
            Paillier modulus (two safe primes of ``key_bits / 2`` bits; < 2048 needs
            ``allow_insecure=True``).
        smudging_security : int, default 40
            BFV/CKKS: statistical security (bits) of each partial decryption.
        allow_insecure : bool, default False
            Paillier keys below 2048 bits (tests only).

        Returns
        -------
        Committee

        Raises
        ------
        ParameterError
            If ``threshold`` is not in ``[1, members]``, the scheme is unknown, or no
            parameter set fits (the message says what would).
        InsecureParametersError
            If ``key_bits < 2048`` without ``allow_insecure``.

        Notes
        -----
        Paillier: the dealer (this call) knows the factorization while it runs and forgets it.
        Safe-prime generation dominates: a median 6.5 s per 1536-bit prime on a shared 2-core
        machine (1.7-17.6 s over 8 samples), i.e. about 10-40 s for a 3072-bit committee. BFV/CKKS: the members' collective key generation
        and re-sharing run in this process; each member's ``s_i`` is dropped after use.
        """
        members, threshold = _check_members(members, threshold)
        scheme = str(scheme).lower()
        if isinstance(max_clients, bool) or not isinstance(max_clients, (int, np.integer)) or not 1 <= max_clients <= 1 << 20:
            raise ParameterError(f"max_clients must be an int in [1, 2^20]; got {max_clients!r}.")
        if not isinstance(max_value, (int, float, np.integer, np.floating)) or not (math.isfinite(max_value) and max_value > 0):
            raise ParameterError(f"max_value must be a positive finite float; got {max_value!r}.")
        if scheme == "paillier":
            return _generate_paillier(members, threshold, int(max_clients), float(max_value),
                                      24 if precision_bits is None else int(precision_bits), int(key_bits),
                                      bool(allow_insecure))
        if scheme in ("bfv", "ckks"):
            return _generate_lattice(scheme, members, threshold, int(max_clients), float(max_value),
                                     precision_bits, int(smudging_security))
        raise ParameterError(f"scheme must be 'paillier', 'bfv' or 'ckks'; got {scheme!r}.")

    def public_context(self) -> SchemeContext:
        """The public context (encrypt, add; cannot decrypt). ``to_bytes()`` / ``he_ml.load_context`` work."""
        return self._public

    @property
    def shares(self) -> list[KeyShare]:
        """One :class:`KeyShare` per member (member ``i`` is ``shares[i - 1]``)."""
        return list(self._shares)

    def partial_decrypt(self, share: KeyShare, total: bytes) -> "PartialDecryption":
        """Same as :func:`partial_decrypt`."""
        return partial_decrypt(share, total)

    def combine(self, total: bytes, parts: Iterable[Any], count: int | None = None) -> Any:
        """Same as :func:`combine` with this committee's public context."""
        return combine(self._public, total, parts, count=count)


def insecure_tiny_committee(scheme: str = "paillier", members: int = 3, threshold: int = 2,
                            **params: Any) -> Committee:
    """A committee with a deliberately small **insecure** Paillier key (1024 bits) -- tests only.

    BFV/CKKS committees are fast at full size, so for them this is ``Committee.generate``.
    """
    if str(scheme).lower() == "paillier":
        params.setdefault("key_bits", 1024)
        params.setdefault("allow_insecure", True)
    return Committee.generate(scheme, members, threshold, **params)


def _generate_paillier(members: int, threshold: int, max_clients: int, max_value: float,
                       precision_bits: int, key_bits: int, allow_insecure: bool) -> Committee:
    from ..schemes.paillier import _check_key_bits, paillier_public_from_modulus
    from . import committee_paillier as cp

    _check_key_bits(key_bits, allow_insecure)
    if key_bits < 256:
        raise ParameterError(f"paillier committee: key_bits must be >= 256; got {key_bits}.")
    n, s = cp.deal(key_bits, members, threshold)
    pub = paillier_public_from_modulus(n, preset="sum", allow_insecure=allow_insecure,
                                       precision_bits=precision_bits, max_value=max_value,
                                       max_additions=max_clients)
    cid = pub.fingerprint
    shares = [KeyShare("paillier", i + 1, members, threshold, cid, {"n": n, "s": s[i]}) for i in range(members)]
    plan = {"scheme": "paillier", "key_bits": key_bits, "members": members, "threshold": threshold,
            "max_clients": max_clients, "max_value": max_value, "precision_bits": precision_bits,
            "slots_per_ciphertext": pub.slot_count}
    return Committee("paillier", members, threshold, pub, shares, plan)


def _generate_lattice(scheme: str, members: int, threshold: int, max_clients: int, max_value: float,
                      precision_bits: int | None, security: int) -> Committee:
    """Run the dealer-free key generation of :mod:`.committee_keygen` for all members here."""
    from .committee_keygen import KeygenMember, KeygenSession

    session = KeygenSession(scheme, members, threshold, max_clients=max_clients, max_value=max_value,
                            precision_bits=precision_bits, smudging_security=security)
    parties = [KeygenMember(session, i) for i in range(1, members + 1)]
    ckg = [p.ckg_share() for p in parties]
    mailbox: dict[int, list[bytes]] = {i: [] for i in range(1, members + 1)}
    for p in parties:
        for j, msg in p.reshare().items():
            mailbox[j].append(msg)
    results = [p.finalize(ckg, mailbox[p.member]) for p in parties]
    del parties, mailbox
    pub = results[0][0]
    if any(r[0].fingerprint != pub.fingerprint for r in results):  # pragma: no cover - deterministic
        raise ContextMismatchError(f"{scheme}: members derived different public keys.")
    return Committee(scheme, members, threshold, pub, [r[1] for r in results], session.plan.to_dict())


# ------------------------------------------------------------------------------- protocol
def _parse_total(pub: SchemeContext, total: bytes) -> Any:
    agg = GradientAggregator(pub)
    parsed = agg._parse(total, "total blob")
    agg._check_units(parsed.vector, "total blob")
    return parsed


def partial_decrypt(share: KeyShare, total: bytes, *, processes: int = 1) -> PartialDecryption:
    """A member's partial decryption of a total (bytes from ``GradientAggregator.sum``).

    Parameters
    ----------
    share : KeyShare
        This member's share.
    total : bytes
        The total blob. Only its public header is trusted for the layout; the partial is
        bound to ``SHA-256(total)``.
    processes : int, default 1
        Paillier without AVX-512 IFMA: split the exponentiations over this many worker
        processes (``os.cpu_count()`` uses every core; started with "spawn", so a script
        needs the ``if __name__ == "__main__":`` guard). With IFMA the exponentiations
        already run in one thread per core and this is ignored. BFV/CKKS: ignored.

    Returns
    -------
    PartialDecryption
        Send ``part.to_bytes()`` to whoever combines.

    Raises
    ------
    ContextMismatchError
        If the total was encrypted under another key than this share's committee.
    InvalidCiphertextError
        If the total is malformed.

    Notes
    -----
    Paillier: ``c^(2 Delta s_i) mod n^2`` per ciphertext; reveals nothing beyond the
    plaintext of the total (Damgard-Jurik Thm. 4.1). Computed by
    :func:`he_ml.native.bigmod.powmod_many` (AVX-512 IFMA when present, else GMP), constant
    time in the share. BFV/CKKS: ``c1 r_A + e_A`` per sub-key,
    ``e_A`` uniform on ``[-2^b, 2^b)`` with ``b`` from the committee's plan, deterministic
    in (sub-key, committee, total): statistical distance ``<= 2^-40`` from a simulation that
    knows only the total's plaintext, for honestly produced totals. A partial decryption of a
    *crafted* ciphertext (e.g. ``c1`` chosen by a malicious server) can leak the member's
    sub-key for BFV/CKKS: decrypt only totals whose provenance the round's policy checks
    (see ``docs/committee.md``).
    """
    if not isinstance(share, KeyShare):
        raise ParameterError(f"share must be a KeyShare (KeyShare.from_bytes(...)); got {type(share).__name__}.")
    if not isinstance(total, (bytes, bytearray, memoryview)):
        raise ParameterError(f"total must be the bytes of a total blob; got {type(total).__name__}.")
    total = bytes(total)
    if isinstance(processes, bool) or not isinstance(processes, int) or not 1 <= processes <= 1024:
        raise ParameterError(f"processes must be an int in [1, 1024] (os.cpu_count() uses every core); "
                             f"got {processes!r}.")
    from ..schemes._format import unpack_blob

    blob = unpack_blob(total)
    if blob.scheme != share.scheme or blob.fingerprint != share.committee_id:
        raise ContextMismatchError(
            f"this total was encrypted under key {blob.fingerprint.hex()[:12]}... ({blob.scheme}), but the share "
            f"belongs to committee {share.committee_id.hex()[:12]}... ({share.scheme}); use the share of the "
            f"committee whose public context encrypted the updates.")
    digest = hashlib.sha256(total).digest()
    if share.scheme == "paillier":
        import gmpy2

        from . import committee_paillier as cp

        n = gmpy2.mpz(share._payload["n"])
        chunks = _paillier_total_chunks(total, n)
        return PartialDecryption("paillier", share.member, share.committee_id, digest,
                                 cp.partial_exponentiate_many(chunks, share._payload["s"], share.members, int(n),
                                                              processes=processes),
                                 share.members, share.threshold)
    from ..schemes.seal_rns import ciphertext_to_rns
    from . import committee_lattice as cl

    p = share._payload
    out = []
    for idx, ct in enumerate(_lattice_total_chunks(share, blob)):
        c = ciphertext_to_rns(ct)
        L = c.shape[1]
        primes = p["primes"][:L]
        ctx_bytes = share.committee_id + digest + struct.pack("<I", idx)
        out.append(cl.partial_polys(c, bool(ct.is_ntt_form()), p["subkeys"], primes, p["bits"], ctx_bytes))
    return PartialDecryption(share.scheme, share.member, share.committee_id, digest, out, share.members,
                             share.threshold)


_BASES: dict[tuple[Any, ...], Any] = {}


def _lattice_total_chunks(share: KeyShare, blob: Any) -> list[Any]:
    """SEAL ciphertexts of a total, parsed with a context of the committee's parameters (the
    share records them), so a member needs no public context to partially decrypt."""
    from ..schemes._format import Kind
    from ..schemes.seal_rns import multiparty_context

    blob.expect(kind=Kind.AGGREGATE, what="total blob")
    prm = share._payload["params"]
    key = (share.scheme, prm["poly_modulus_degree"], tuple(prm["coeff_mod_bit_sizes"]), prm.get("scale_bits"),
           prm.get("plain_modulus_bits"), prm.get("fixed_point_bits"))
    base = _BASES.get(key)
    if base is None:
        base = _BASES[key] = multiparty_context(share.scheme, poly_modulus_degree=key[1],
                                                coeff_mod_bit_sizes=list(key[2]), scale_bits=key[3],
                                                plain_modulus_bits=key[4], fixed_point_bits=key[5])
    size = blob.metadata.get("size")
    vmeta = blob.metadata.get("meta")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1 << 32 or not isinstance(vmeta, dict):
        raise InvalidCiphertextError("the total blob's 'size' or 'meta' field is malformed.")
    return base._deserialize_chunks(blob.sections, size, vmeta)


def _paillier_total_chunks(total: bytes, n: Any) -> list[Any]:
    import gmpy2

    from ..schemes._format import unpack_blob

    blob = unpack_blob(total)
    meta = blob.metadata
    n2 = n * n
    w = (int(n2).bit_length() + 7) // 8
    if len(blob.sections) != 1 or not blob.sections[0] or len(blob.sections[0]) % w:
        raise InvalidCiphertextError(f"paillier: the total's payload must be a multiple of {w} bytes.")
    raw = blob.sections[0]
    out = []
    for j in range(len(raw) // w):
        c = gmpy2.mpz(int.from_bytes(raw[j * w:(j + 1) * w], "big"))
        if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:
            raise InvalidCiphertextError(f"paillier: ciphertext {j} of the total is not a unit mod n^2.")
        out.append(c)
    if not isinstance(meta, dict) or "aggregate" not in meta:
        raise InvalidCiphertextError("paillier: the total is not an aggregate blob.")
    return out


def _coerce_part(p: Any) -> PartialDecryption:
    if isinstance(p, PartialDecryption):
        return p
    if isinstance(p, (bytes, bytearray, memoryview)):
        return PartialDecryption.from_bytes(bytes(p))
    raise ParameterError(f"parts must be PartialDecryption objects or their bytes; got {type(p).__name__}.")


def combine(pub: SchemeContext, total: bytes, parts: Iterable[Any], count: int | None = None) -> Any:
    """Combine at least ``threshold`` partial decryptions into the (averaged) plaintext total.

    Parameters
    ----------
    pub : SchemeContext
        The committee's public context (``committee.public_context()`` or loaded from bytes).
    total : bytes
        The total blob the parts decrypt.
    parts : iterable of PartialDecryption or bytes
        From distinct members; a member appearing twice counts once.
    count : int, optional
        Divide by this (number of clients) to average.

    Returns
    -------
    ndarray or dict of ndarray
        Same structure and shapes as the clients' updates (as ``GradientAggregator.decrypt``).

    Raises
    ------
    SecretKeyMissingError
        If fewer than ``threshold`` distinct members contributed.
    ContextMismatchError
        If a part belongs to another committee or to another total.
    InvalidCiphertextError
        If a part is malformed, or parts disagree (a member sent a wrong partial).
    ParameterError
        If ``count`` is not a positive int.
    """
    if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1):
        raise ParameterError(f"count must be a positive int (number of clients); got {count!r}.")
    if not isinstance(pub, SchemeContext):
        raise ParameterError(f"pub must be the committee's public context; got {type(pub).__name__}.")
    if isinstance(parts, (bytes, bytearray)):
        raise ParameterError("parts must be a list of partial decryptions, not a single bytes object.")
    total = bytes(total)
    parsed = _parse_total(pub, total)
    digest = hashlib.sha256(total).digest()
    by_member: dict[int, PartialDecryption] = {}
    for p in parts:
        p = _coerce_part(p)
        if p.scheme != pub.name or p.committee_id != pub.fingerprint:
            raise ContextMismatchError(
                f"a partial decryption from member {p.member} belongs to committee {p.committee_id.hex()[:12]}... "
                f"({p.scheme}), not to this public context ({pub.fingerprint.hex()[:12]}..., {pub.name}); "
                f"collect parts from this committee's members.")
        if p.total_digest != digest:
            raise ContextMismatchError(
                f"the partial decryption from member {p.member} was computed for another total "
                f"(SHA-256 {p.total_digest.hex()[:12]}... != {digest.hex()[:12]}...); ask the member to "
                f"partially decrypt exactly these total bytes.")
        if len(p.chunks) != len(parsed.vector.chunks):
            raise InvalidCiphertextError(f"the partial from member {p.member} has {len(p.chunks)} ciphertexts; "
                                         f"the total has {len(parsed.vector.chunks)}.")
        by_member.setdefault(p.member, p)
    members, threshold = _committee_shape(pub, by_member)
    if len(by_member) < threshold:
        raise SecretKeyMissingError(
            f"combine needs partial decryptions from {threshold} distinct members of the committee; got "
            f"{len(by_member)} (members {sorted(by_member)}). Collect more parts.")
    vector = parsed.vector
    if pub.name == "paillier":
        flat = _combine_paillier(pub, vector, by_member, members, threshold)
    else:
        flat = _combine_lattice(pub, vector, by_member, members, threshold)
    flat = np.asarray(flat, dtype=np.float64).reshape(-1)
    enc = parsed.encoding
    if enc["kind"] == "fixed":
        flat = flat * 2.0 ** -int(enc["bits"])
    elif enc["kind"] == "grid":
        flat = flat * float(enc["step"])
    if count is not None:
        flat = flat / float(count)
    return unflatten_update(flat, parsed.spec, parsed.structure)


def _committee_shape(pub: SchemeContext, by_member: dict[int, PartialDecryption]) -> tuple[int, int]:
    """(members, threshold) as every part states it; all parts must agree (and, for lattice
    committees, match the public context's record)."""
    shapes = {(p.members, p.threshold) for p in by_member.values()}
    if len(shapes) > 1:
        raise InvalidCiphertextError(f"the partial decryptions disagree on the committee's size/threshold: "
                                     f"{sorted(shapes)}.")
    if not shapes:
        raise SecretKeyMissingError("combine received no partial decryptions; collect them from the members.")
    members, threshold = shapes.pop()
    extra = getattr(pub, "_extra", None)
    recorded = extra.get("committee") if isinstance(extra, dict) else None
    if recorded is not None and recorded != [members, threshold]:
        raise ContextMismatchError(f"the parts describe a {threshold}-of-{members} committee; the public context "
                                   f"records {recorded!r} as [members, threshold]. Use parts of this committee.")
    return members, threshold


def _combine_paillier(pub: Any, vector: EncryptedVector, by_member: dict[int, PartialDecryption],
                      members: int, threshold: int) -> np.ndarray:
    """Lagrange-combine ``threshold`` parts per ciphertext. With more parts than needed, a second
    set (the highest member ids) is combined too and must agree: a wrong part is then detected
    even when it is not in the first set."""
    from ..schemes.paillier import paillier_decode_plaintexts
    from . import committee_paillier as cp

    ordered = sorted(by_member)
    subsets = [ordered[:threshold]]
    if len(ordered) > threshold:
        subsets.append(ordered[-threshold:])
    n = int(pub._n)
    n2 = n * n
    plaintexts = []
    for j in range(len(vector.chunks)):
        results = []
        for ids in subsets:
            partials = {}
            for i in ids:
                v = by_member[i].chunks[j]
                if not 0 < v < n2:
                    raise InvalidCiphertextError(f"paillier: partial {j} of member {i} is outside (0, n^2).")
                partials[i] = v
            m = cp.combine_partials(n, members, partials)
            if m < 0:
                raise InvalidCiphertextError(
                    f"paillier: the partial decryptions of ciphertext {j} do not combine to a plaintext (members "
                    f"{ids}); at least one member sent a wrong partial or used another key. Retry with other "
                    f"members.")
            results.append(m)
        if len(set(results)) > 1:
            raise InvalidCiphertextError(
                f"paillier: members {subsets[0]} and {subsets[1]} decrypt ciphertext {j} differently: a member "
                f"sent a wrong partial. Combine smaller sets to find it.")
        plaintexts.append(results[0])
    return paillier_decode_plaintexts(pub, vector, plaintexts)


def _combine_lattice(pub: Any, vector: EncryptedVector, by_member: dict[int, PartialDecryption],
                     members: int, threshold: int) -> np.ndarray:
    from ..schemes.seal_rns import ciphertext_from_rns, ciphertext_to_rns, plaintext_decoder, rns_moduli
    from . import committee_lattice as cl

    info = rns_moduli(pub)
    sets = cl.unqualified_sets(members, threshold)
    decoder = plaintext_decoder(pub)
    out_chunks = []
    for j, ct in enumerate(vector.chunks):
        c = ciphertext_to_rns(ct)
        L = c.shape[1]
        primes = info["key_primes"][:L]
        acc = c[0].copy()
        for A in sets:
            holders = [m for m in sorted(by_member) if m not in A]
            if not holders:  # cannot happen with >= threshold members
                raise SecretKeyMissingError(f"no partial covers sub-key {A}; collect more parts.")
            polys = []
            for m in holders:
                h = by_member[m].chunks[j].get(A)
                if h is None or h.shape != (L, c.shape[2]):
                    raise InvalidCiphertextError(f"the partial of member {m} lacks sub-key {A} for ciphertext {j}.")
                polys.append(h)
            if any(not np.array_equal(polys[0], h) for h in polys[1:]):
                raise InvalidCiphertextError(
                    f"members {holders} disagree on sub-key {A} of ciphertext {j}: the holders of one sub-key "
                    f"return identical partials, so one of them sent a wrong or foreign partial.")
            if np.any(polys[0] >= np.asarray(primes, dtype=np.uint64)[:, None]):
                raise InvalidCiphertextError(f"the partial for sub-key {A} has a coefficient >= its prime.")
            acc = cl.addmod(acc, polys[0], primes)
        x = np.stack([acc, c[1]])  # (x, c1): the decoder's zero key ignores c1
        out_chunks.append(ciphertext_from_rns(pub, x, parms_id=tuple(int(v) for v in ct.parms_id()),
                                              ntt_form=bool(ct.is_ntt_form()), scale=float(ct.scale)))
    return decoder.decrypt(EncryptedVector(decoder, out_chunks, (vector.size,), vector.meta))
