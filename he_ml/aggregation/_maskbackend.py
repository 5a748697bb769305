"""Where a masked round's masks live: plain integers mod 2**k, Paillier plaintexts, BFV slots (internal).

Each backend turns a client update into a *masked payload* (bytes) given its total mask, sums
payloads on the server, subtracts a correction from the sum, and (plain backend) decodes it.
The HE backends reuse :class:`GradientAggregator`'s blob format unchanged: a masked blob is a
valid aggregate blob whose plaintext is ``(update + mask) mod N`` with ``N`` the Paillier
modulus ``n`` (one mask per packed plaintext) or BFV's plain modulus ``t`` (one mask per slot).
Its public metadata (bounds, count) describes the *unmasked* values, so the server's overflow
proofs hold for the unmasked sum; a blob that is not the round's full sum decrypts to uniformly
random plaintexts (Paillier: refused by the slot-bound check; BFV: random integers).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import EncodingOverflowError, InvalidCiphertextError, ParameterError, UnsupportedOperationError
from ..schemes.base import EncryptedVector, SchemeContext
from . import _maskwire as wire
from ._maskdomain import BigDomain, PrimeDomain, UIntDomain
from .aggregator import GradientAggregator, _to_numpy, flatten_update, unflatten_update

#: Largest number of values one plain masked vector may hold (2**27 values = 1 GiB of uint64).
MAX_PLAIN_VALUES = 1 << 27


def _privatize(update: Any, dp: Any) -> Any:
    if dp is None:
        return update
    from collections.abc import Mapping

    from .dp import privatize_client_update

    if isinstance(update, Mapping):
        update = {k: _to_numpy(v, repr(k)) for k, v in update.items()}
    else:
        update = _to_numpy(update, "array")
    return privatize_client_update(update, dp)


def _declared_bound(max_value: float | None, dp: Any) -> float:
    if max_value is not None:
        return float(max_value)
    if dp is not None:
        extra = 12.0 * dp.client_noise_std if dp.mode == "distributed" else 0.0
        return dp.clip_norm + extra
    raise ParameterError("a masked round needs max_value (the public bound on |value| of one client's update) "
                         "or a DPConfig; pass max_value=... (e.g. your clipping bound).")


class PlainBackend:
    """HE-free masked sums: fixed-point integers mod ``2**bits``.

    ``bits = 2 + ceil(log2(max_clients * bound / step))`` so the signed sum of ``max_clients``
    updates fits in ``(-2**(bits-1), 2**(bits-1))``; ``step = 2**-precision_bits`` (or the DP grid).
    """

    name = "plain"

    def __init__(self, *, max_value: float | None, precision_bits: int | None, max_clients: int, dp: Any) -> None:
        self.dp = dp
        self.bound = _declared_bound(max_value, dp)
        p = 20 if precision_bits is None else int(precision_bits)
        if not 0 <= p <= 52:
            raise ParameterError(f"precision_bits must be an int in [0, 52]; got {precision_bits!r}.")
        self.step = float(dp.resolution) if dp is not None else 2.0 ** -p
        self.precision_bits = p
        self.int_bound = math.ceil(self.bound / self.step)
        self.bits = 2 + math.ceil(math.log2(max_clients * self.int_bound + 1))
        if self.bits > 62:
            raise ParameterError(
                f"plain masked round: {max_clients} clients x |x| <= {self.bound:g} at step {self.step:g} need "
                f"{self.bits} bits per value, more than 62; lower precision_bits or max_value.")
        self.nbytes = (self.bits + 7) // 8

    def domain(self, size: int) -> UIntDomain:
        return UIntDomain(self.bits, size)

    def masked_payload(self, update: Any, mask_for_size) -> bytes:
        update = _privatize(update, self.dp)
        flat, spec, structure = flatten_update(update)
        if flat.size > MAX_PLAIN_VALUES:
            raise ParameterError(f"a plain masked update holds at most {MAX_PLAIN_VALUES} values; got {flat.size}.")
        peak = float(np.max(np.abs(flat)))
        if peak > self.bound:
            raise EncodingOverflowError(
                f"plain masked round: an update value reaches |x| = {peak:.6g}, above the declared bound "
                f"{self.bound:.6g}; clip the update (he_ml.aggregation.clip_l2) or raise max_value.")
        q = np.rint(flat / self.step).astype(np.int64).view(np.uint64)
        dom = self.domain(flat.size)
        masked = dom.add(q & dom.mask, mask_for_size(flat.size))
        body = masked.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :self.nbytes].tobytes()
        return wire.pack("masked", {"spec": spec, "structure": structure, "size": int(flat.size),
                                    "bits": self.bits}, [body])

    def parse(self, header: dict, sections: list[bytes], what: str) -> tuple[np.ndarray, Any]:
        size = wire.field(header, "size", int, what)
        if header.get("bits") != self.bits or not 1 <= size <= MAX_PLAIN_VALUES or len(sections) != 1 \
                or len(sections[0]) != size * self.nbytes:
            raise InvalidCiphertextError(f"{what}: plain masked vector of {size!r} values at {header.get('bits')!r} "
                                         f"bits does not match this round ({self.bits} bits, {self.nbytes} "
                                         f"bytes per value); the payload is corrupted or from another round.")
        buf = np.zeros((size, 8), dtype=np.uint8)
        buf[:, :self.nbytes] = np.frombuffer(sections[0], dtype=np.uint8).reshape(size, self.nbytes)
        layout = (header.get("structure"), header.get("spec"))
        return buf.view("<u8").reshape(-1).astype(np.uint64), layout

    def new_total(self):
        return None

    def absorb(self, total, payload: bytes, what: str):
        header, sections = wire.unpack(payload, "masked", what)
        vec, layout = self.parse(header, sections, what)
        if total is None:
            return [vec, layout]
        if layout != total[1] or vec.size != total[0].size:
            raise InvalidCiphertextError(f"{what}: its layout differs from the first masked input's; every client "
                                         f"must send the same structure and shapes.")
        total[0] = self.domain(vec.size).add(total[0], vec)
        return total

    def domain_size(self, total) -> int:
        return int(total[0].size)

    def subtract(self, total, correction):
        total[0] = self.domain(total[0].size).sub(total[0], correction)
        return total

    def decode(self, total) -> tuple[np.ndarray, Any]:
        v = total[0]
        signed = v.astype(np.int64)  # bits <= 62: every residue fits
        signed = np.where(v >= np.uint64(1 << (self.bits - 1)), signed - np.int64(1 << self.bits), signed)
        structure, spec = total[1]
        return signed, (structure, spec)

    def to_values(self, ints: np.ndarray, layout) -> Any:
        structure, spec = layout
        return unflatten_update(ints.astype(np.float64) * self.step, spec, structure)


class _HEBackend:
    """Common part of the Paillier and BFV layers over :class:`GradientAggregator` blobs."""

    def __init__(self, context: SchemeContext, *, max_value, precision_bits, max_clients, dp) -> None:
        self.context = context
        self.dp = dp
        self.agg = GradientAggregator(context, max_clients=max_clients, max_value=max_value,
                                      precision_bits=precision_bits, dp=dp)

    def new_total(self):
        return self.agg._fresh()

    def absorb(self, total: GradientAggregator, payload: bytes, what: str):
        try:
            total.add(payload)
        except InvalidCiphertextError as e:
            raise InvalidCiphertextError(f"{what}: {e}") from e
        return total

    def total_bytes(self, total) -> bytes:
        return total.result() if isinstance(total, GradientAggregator) else total

    def _repack(self, parsed, vector: EncryptedVector) -> bytes:
        return self.agg._pack(vector, parsed.structure, parsed.spec, parsed.count, parsed.encoding)


class PaillierBackend(_HEBackend):
    """Masks mod ``n`` on every packed Paillier plaintext: ``c * (1 + r n) mod n**2``."""

    name = "paillier"

    def domain(self, size: int) -> BigDomain:
        return BigDomain(int(self.context._n), size)

    def masked_payload(self, update: Any, mask_for_size) -> bytes:
        blob = self.agg.encrypt(update)
        p = self.agg._parse(blob)
        return self._add_plain(p, mask_for_size(len(p.vector.chunks)))

    def _add_plain(self, p, values: list[int]) -> bytes:
        n, n2 = self.context._n, self.context._n2
        chunks = [c * ((1 + n * int(r)) % n2) % n2 for c, r in zip(p.vector.chunks, values)]
        return self._repack(p, EncryptedVector(self.context, chunks, p.vector.shape, p.vector.meta))

    def domain_size(self, total) -> int:
        return len(self.agg._parse(self.total_bytes(total), "total blob").vector.chunks)

    def subtract(self, total, correction) -> bytes:
        p = self.agg._parse(self.total_bytes(total), "total blob")
        n = int(self.context._n)
        return self._add_plain(p, [(-int(r)) % n for r in correction])


class BFVBackend(_HEBackend):
    """Masks mod the plain modulus ``t`` on every BFV slot (added before encryption)."""

    name = "bfv"

    def domain(self, size: int) -> PrimeDomain:
        return PrimeDomain(int(self.context.plain_modulus), size)

    def masked_payload(self, update: Any, mask_for_size) -> bytes:
        agg, ctx = self.agg, self.context
        update = _privatize(update, self.dp)
        flat, spec, structure = flatten_update(update)
        bound = agg._value_bound_for(flat)  # raises above a declared bound, like encrypt()
        if self.dp is not None:
            step = float(self.dp.resolution)
            encoding = {"kind": "grid", "step": step}
        else:
            step = 2.0 ** -agg.precision_bits
            encoding = {"kind": "fixed", "bits": agg.precision_bits}
        q = np.rint(flat / step).astype(np.int64)
        int_bound = math.ceil(bound / step)
        if int_bound > ctx.max_value:
            raise EncodingOverflowError(
                f"bfv: values up to {bound:.6g} quantized with step {step:g} reach {int_bound}, but the plain "
                f"modulus holds only |x| <= {ctx.max_value}; lower precision_bits or use a larger plain modulus.")
        dom = self.domain(flat.size)
        t = np.int64(dom.t)
        residues = np.where(q < 0, q + t, q).astype(np.uint64)
        masked = dom.centered(dom.add(residues, mask_for_size(flat.size)))  # one add mod t: masks are reduced
        chunks, _ = ctx._encrypt_flat(masked)
        vector = EncryptedVector(ctx, chunks, (flat.size,), ctx._meta(int_bound, 0, "encryption"))
        return agg._pack(vector, structure, spec, 1, encoding)

    def domain_size(self, total) -> int:
        return self.agg._parse(self.total_bytes(total), "total blob").vector.size

    def subtract(self, total, correction) -> bytes:
        ctx = self.context
        p = self.agg._parse(self.total_bytes(total), "total blob")
        dom = self.domain(p.vector.size)
        neg = dom.centered(dom.sub(dom.zero(), correction))
        chunks, _ = ctx._encrypt_flat(neg)
        corr = EncryptedVector(ctx, chunks, p.vector.shape, dict(p.vector.meta))
        summed = ctx._binary(p.vector, corr, "add", "unmasking")
        return self._repack(p, EncryptedVector(ctx, summed, p.vector.shape, p.vector.meta))


def make_backend(context: SchemeContext | None, *, max_value, precision_bits, max_clients, dp):
    """The backend for ``context`` (None: the HE-free integer backend)."""
    if context is None:
        return PlainBackend(max_value=max_value, precision_bits=precision_bits, max_clients=max_clients, dp=dp)
    if not isinstance(context, SchemeContext):
        raise ParameterError(f"context must be None (HE-free masked sums), an he_ml Paillier/BFV context or its "
                             f"public context; got {type(context).__name__}.")
    if context.name == "paillier":
        return PaillierBackend(context, max_value=max_value, precision_bits=precision_bits,
                               max_clients=max_clients, dp=dp)
    if context.name == "bfv":
        return BFVBackend(context, max_value=max_value, precision_bits=precision_bits,
                          max_clients=max_clients, dp=dp)
    raise UnsupportedOperationError(
        f"masked rounds over {context.name} are not supported: CKKS plaintexts are approximate, so a mask "
        f"added in the slots would not cancel exactly. Use context=None (plain integers mod 2**k), a BFV or "
        f"Paillier context, or CKKS with a Committee (he_ml.aggregation.Committee) instead.")
