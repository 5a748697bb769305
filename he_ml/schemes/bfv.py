"""BFV over Microsoft SEAL (through TenSEAL's ``sealapi``): exact signed-integer vectors.

Shares keys, bytes, rotations and error translation with CKKS through
:class:`he_ml.schemes.ckks._SEALContext`.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import tenseal.sealapi as sa

from ..errors import (
    DepthExhaustedError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
)
from .base import EncryptedVector, check_values
from .ckks import _overridden, _resolve_preset, _SEALContext
from .limits import limit
from .params import BFV_PRESETS, Preset, bfv_depth_estimate

__all__ = ["BFV", "default_fixed_point_bits"]


def default_fixed_point_bits(plain_modulus_bits: int) -> int:
    """Default fractional bits for a ``plain_modulus_bits``-bit t: ``(bits - 10) // 2`` in [0, 30].

    A product of two fixed-point numbers carries ``2f`` fractional bits; with ``f = (b - 10) / 2``
    it keeps about 9 bits for the magnitude of such products (e.g. a 13-term score of standardized
    features) below ``t / 2 ~ 2^(b-1)``.
    """
    if isinstance(plain_modulus_bits, bool) or not isinstance(plain_modulus_bits, (int, np.integer)):
        return 0  # the constructor reports the bad plain_modulus_bits itself
    return max(0, min(30, (int(plain_modulus_bits) - 10) // 2))


class BFV(_SEALContext):
    """BFV: exact arithmetic on signed integer vectors modulo a batching prime t.

    Parameters
    ----------
    preset : {"sum", "inference", "deep"} or None, default "inference"
        Named parameter set (``he_ml.schemes.params.BFV_PRESETS``); keywords override it.
    poly_modulus_degree : int, optional
        Ring size n; n integers per ciphertext (two rows of n/2).
    plain_modulus_bits : int, optional
        Bits of the plain modulus t, a prime = 1 mod 2n chosen by SEAL. Values and results must
        stay in ``(-t/2, t/2)``.
    coeff_mod_bit_sizes : list of int, optional
        Coefficient modulus; its size minus the plain modulus sets the noise budget (depth).
    fixed_point_bits : int, optional
        The context's fixed-point encoding: real numbers are held as ``round(x * 2**f)``. The one
        place this decision lives: ``he_ml.ml.encrypt_features``, the linear models' weights and
        ``GradientAggregator`` read it from here. Default ``(plain_modulus_bits - 10) // 2``
        (10 for the presets): a product of two fixed-point numbers then keeps about 10 bits of
        magnitude headroom below t/2. Part of the fingerprint.
    rotations, relin_keys, allow_insecure
        As for :class:`he_ml.CKKS`.

    Notes
    -----
    Overflow tracking. Arithmetic is exact modulo t, so a result outside ``(-t/2, t/2)`` would
    wrap around silently. Every vector therefore carries a public upper bound on ``|value|``
    (``vector.meta["bound"]``): at encryption the smallest power of two >= ``max |values|``
    (or the ``bound=`` you pass), then propagated through ``+``, ``-``, ``*`` and ``sum``/``dot``
    by interval arithmetic. An operation whose result bound could reach t/2 raises
    `EncodingOverflowError` *before* computing. The bound travels with the ciphertext bytes, so
    whoever sees a blob learns about log2 of its largest magnitude; pass ``bound=`` (e.g.
    ``ctx.max_value``) to reveal only a value you choose. :meth:`headroom_bits` tells how many
    more bits of growth fit.

    Fixed point. The context's encoding is ``fixed_point_bits`` (part of its fingerprint); a
    vector whose ``meta["fixed_point_bits"] = f`` holds integers that stand
    for ``value * 2**f`` (he_ml.ml quantizes features and weights this way); `decrypt` then
    returns float64 ``integers / 2**f``. Integer plaintext operands (``+ k``, ``* k``, ``dot``)
    keep ``f`` (a plaintext addend must already be at that scale); adding or subtracting two
    vectors needs equal ``f`` (or neither set) and raises `ParameterError` otherwise; a
    ciphertext product adds the two ``f``.

    Noise: each ciphertext x ciphertext (and ciphertext x plaintext-vector) product uses one
    level of the estimated depth (``max_depth``); decryption checks SEAL's invariant noise
    budget and raises `DepthExhaustedError` instead of returning garbage.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> ctx = he_ml.BFV("sum")
    >>> x = ctx.encrypt(np.array([3, -2, 5]))
    >>> ctx.decrypt((x * 4 - 1).sum())
    array([21])
    """

    name: ClassVar[str] = "bfv"
    capabilities = frozenset({"add", "mul_plain", "mul", "sum", "dot"})
    _scheme_type = sa.SCHEME_TYPE.BFV
    _presets = BFV_PRESETS

    def __init__(self, preset: str | None = "inference", *, poly_modulus_degree: int | None = None,
                 plain_modulus_bits: int | None = None, coeff_mod_bit_sizes: list[int] | None = None,
                 fixed_point_bits: int | None = None, rotations: Any = None,
                 relin_keys: bool | None = None, allow_insecure: bool = False) -> None:
        base = _resolve_preset(self.name, self._presets, preset)
        n = poly_modulus_degree if poly_modulus_degree is not None else base.get("poly_modulus_degree")
        t_bits = plain_modulus_bits if plain_modulus_bits is not None else base.get("plain_modulus_bits", 20)
        if n is None:
            raise ParameterError("bfv: without a preset, poly_modulus_degree is required; got None.")
        if coeff_mod_bit_sizes is not None:
            bits = list(coeff_mod_bit_sizes)
        elif base and base["poly_modulus_degree"] == n:
            bits = base["coeff_mod_bit_sizes"]
        elif n in (4096, 8192, 16384, 32768, 2048, 1024):
            bits = [m.bit_count() for m in sa.CoeffModulus.BFVDefault(int(n), sa.SEC_LEVEL_TYPE.TC128)]
        else:
            bits = None
        relin = base.get("relin_keys", True) if relin_keys is None else bool(relin_keys)
        self._build(preset=preset if not _overridden(base, n, bits, t_bits, "plain_modulus_bits") else None,
                    n=int(n) if isinstance(n, (int, np.integer)) else n,
                    bits=[int(b) for b in bits] if bits else bits,
                    rotations=rotations, relin_keys=relin, allow_insecure=allow_insecure,
                    extra={"plain_modulus_bits": t_bits,
                           "fixed_point_bits": default_fixed_point_bits(t_bits)
                           if fixed_point_bits is None else fixed_point_bits})

    def _validate_extra(self, n: int, bits: list[int]) -> None:
        tb = self._extra.get("plain_modulus_bits")
        low = int(math.log2(2 * n)) + 2
        if not isinstance(tb, int) or isinstance(tb, bool) or not low <= tb <= 60:
            raise ParameterError(
                f"bfv: plain_modulus_bits must be an integer in [{low}, 60] for n={n} (a prime = 1 mod 2n); "
                f"got {tb!r}."
            )
        if tb >= sum(bits[:-1]) - 20:
            raise ParameterError(
                f"bfv: plain_modulus_bits={tb} leaves no noise budget under a {sum(bits[:-1])}-bit data "
                f"modulus; use fewer plain bits or a larger poly_modulus_degree."
            )
        fb = self._extra.get("fixed_point_bits")
        if isinstance(fb, bool) or not isinstance(fb, (int, np.integer)) or not 0 <= fb <= min(52, tb - 2):
            raise ParameterError(
                f"bfv: fixed_point_bits must be an integer in [0, {min(52, tb - 2)}] (below the "
                f"{tb}-bit plain modulus); got {fb!r}. Fewer fractional bits leave more magnitude headroom."
            )
        self._extra["fixed_point_bits"] = int(fb)

    def _set_plain_modulus(self, parms: Any, n: int) -> None:
        parms.set_plain_modulus(sa.PlainModulus.Batching(n, self._extra["plain_modulus_bits"]))

    def _setup_encoder(self) -> None:
        self._encoder = sa.BatchEncoder(self._seal)
        self._t = int(self._seal.key_context_data().parms().plain_modulus().value())
        self._half = (self._t - 1) // 2  # decoded values lie in [-half, half]
        self._depth = bfv_depth_estimate(self._n, self._bits, self._extra["plain_modulus_bits"])

    # ------------------------------------------------------------------ properties
    @property
    def slot_count(self) -> int:
        return self._n

    @property
    def plain_modulus(self) -> int:
        """The plain modulus t (a batching prime)."""
        return self._t

    @property
    def max_value(self) -> int:
        """Largest |integer| a value or result may have: (t - 1) / 2."""
        return self._half

    @property
    def fixed_point_bits(self) -> int:
        """Fractional bits of this context's fixed-point encoding (``round(x * 2**f)``)."""
        return self._extra["fixed_point_bits"]

    @property
    def max_depth(self) -> int:
        """Estimated ciphertext products a fresh ciphertext supports (see params.bfv_depth_estimate)."""
        return self._depth

    @property
    def parameters(self) -> dict[str, Any]:
        return {"preset": self._preset, "poly_modulus_degree": self._n,
                "coeff_mod_bit_sizes": list(self._bits),
                "plain_modulus_bits": self._extra["plain_modulus_bits"], "plain_modulus": self._t,
                "fixed_point_bits": self.fixed_point_bits}

    def _vector_level(self, vector: EncryptedVector) -> int:
        return self._depth - int(vector.meta.get("depth", 0))

    def _preset_holds_values(self, p: Preset) -> bool:
        return (p.plain_modulus_bits or 20) >= self._extra["plain_modulus_bits"]

    def _plan_magnitude_kwargs(self) -> dict[str, Any]:
        return {"max_value": self._half}

    def _plan_context_overrides(self) -> dict[str, Any]:
        return {"fixed_point_bits": self.fixed_point_bits}  # keep the encoding: same integers

    def _preset_depth(self, p: Preset) -> int:  # type: ignore[override]
        return bfv_depth_estimate(p.poly_modulus_degree, p.coeff_mod_bit_sizes, p.plain_modulus_bits or 20)

    # ------------------------------------------------------------------ bounds
    def headroom_bits(self, vector: EncryptedVector) -> float:
        """log2 of how much the vector's values may still grow before reaching t/2."""
        return math.log2(self._half / max(1, self._bound(vector)))

    def value_bound(self, vector: EncryptedVector) -> int:
        """The public upper bound on |value| tracked for `vector`."""
        return self._bound(vector)

    def check_overflow(self, vector: EncryptedVector) -> int:
        """Return the tracked bound; raise `EncodingOverflowError` if it no longer fits (-t/2, t/2)."""
        b = self._bound(vector)
        self._check_bound(b, "check_overflow")
        return b

    def _bound(self, vector: EncryptedVector) -> int:
        return int(vector.meta.get("bound", self._half))

    def _check_bound(self, bound: int, op: str) -> int:
        if bound > self._half:
            raise EncodingOverflowError(
                f"bfv: {op} could produce values up to {bound} in magnitude (tracked bound), but the "
                f"plain modulus t={self._t} holds only |x| <= {self._half}; the result would wrap around "
                f"modulo t. Larger plain_modulus_bits (now {self._extra['plain_modulus_bits']}) fit: "
                f"{self._bound_hint(bound)}"
            )
        return bound

    def _bound_hint(self, bound: int) -> str:
        """A plan holding |integers| up to `bound` at this context's depth, if the planner finds one."""
        from .params import plan

        depth = self._depth
        # The failing operation is often a partial result (one term of a sum): suggest 8 bits of
        # headroom above its bound when the plain modulus allows, so the rest fits too.
        for margin in (8, 4, 0):
            target = int(bound) << margin
            try:
                p = plan(depth=depth, scheme="bfv", max_value=target)
            except ParameterError:
                continue
            return (f"Use he_ml.plan(depth={depth}, scheme='bfv', max_value={target}).context("
                    f"fixed_point_bits={self.fixed_point_bits}) ({p.plain_modulus_bits}-bit plain modulus, "
                    f"n={p.poly_modulus_degree}, the same fixed-point encoding, 2^{margin} headroom above "
                    f"this result), scale the integers down, or pass a tighter bound= at encryption.")
        return (f"No BFV plain modulus (at most 60 bits) with depth {depth} holds |x| up to {bound}: "
                f"scale the integers down (fewer fixed-point bits) or use CKKS.")

    def _meta(self, bound: int, depth: int, op: str, fixed_point_bits: int | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"bound": self._check_bound(int(bound), op), "depth": int(depth)}
        if fixed_point_bits is not None:
            meta["fixed_point_bits"] = int(fixed_point_bits)
        return meta

    @staticmethod
    def _fixed_point_bits(x: EncryptedVector) -> int | None:
        fp = x.meta.get("fixed_point_bits")
        return None if fp is None else int(fp)

    def _same_fixed_point(self, x: EncryptedVector, y: EncryptedVector, op: str) -> int | None:
        """Fixed-point bits of a sum/difference: both operands must agree (or neither is fixed point)."""
        fx, fy = self._fixed_point_bits(x), self._fixed_point_bits(y)
        if fx != fy:
            raise ParameterError(
                f"bfv: {op} of vectors at different fixed-point scales (fixed_point_bits {fx} and {fy}; "
                f"None = plain integers) would mix units. Multiply the coarser operand by "
                f"2**(difference) or quantize both with the same number of fractional bits."
            )
        return fx

    @staticmethod
    def _product_fixed_point(x: EncryptedVector, y: EncryptedVector) -> int | None:
        fx, fy = x.meta.get("fixed_point_bits"), y.meta.get("fixed_point_bits")
        if fx is None and fy is None:
            return None
        return int(fx or 0) + int(fy or 0)

    def _check_depth(self, x: EncryptedVector, op: str, *others: EncryptedVector) -> int:
        used = max(int(v.meta.get("depth", 0)) for v in (x, *others))
        if used + 1 > self._depth:
            raise self._depth_error(op, used)
        return used + 1

    # ------------------------------------------------------------------ encoding
    def _as_integers(self, arr: np.ndarray | float | int, what: str) -> np.ndarray:
        a = np.asarray(arr)
        if np.issubdtype(a.dtype, np.floating):
            if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                raise ParameterError(
                    f"bfv: {what} must be integers; got non-integral floats (e.g. "
                    f"{a.reshape(-1)[~(a.reshape(-1) == np.round(a.reshape(-1)))][:1]}). BFV is exact "
                    f"integer arithmetic: quantize first (e.g. np.round(x * 2**k).astype(np.int64)) or use CKKS."
                )
            if a.size and np.max(np.abs(a)) > 2.0 ** 62:
                raise EncodingOverflowError(f"bfv: {what} exceed the int64 range; got up to {np.max(np.abs(a)):g}.")
            a = a.astype(np.int64)
        m = int(np.max(np.abs(a.astype(object)))) if a.size else 0
        if m > self._half:
            raise EncodingOverflowError(
                f"bfv: {what} has |value| up to {m}, but the plain modulus t={self._t} holds only "
                f"|x| <= {self._half}. Use larger plain_modulus_bits (now "
                f"{self._extra['plain_modulus_bits']}) or scale the integers down."
            )
        return a.astype(np.int64)

    def encrypt(self, values: Any, *, bound: int | None = None) -> EncryptedVector:
        """Encrypt an integer array of any shape.

        Parameters
        ----------
        values : array-like of int (or integral floats)
        bound : int, optional
            Public upper bound on |values| carried with the ciphertext for overflow detection;
            default: the smallest power of two >= max |values| (reveals ~log2 of the magnitude).

        Raises
        ------
        ParameterError
            If values are not integral, or `bound` is smaller than max |values|.
        EncodingOverflowError
            If a value (or `bound`) is outside (-t/2, t/2).
        """
        arr = check_values(values, scheme=self.name)
        if arr.size == 0:
            raise ShapeMismatchError(f"bfv: cannot encrypt an empty array; got shape {arr.shape}.")
        flat = self._as_integers(arr.reshape(-1), "the input")
        m = int(np.max(np.abs(flat)))
        if bound is None:
            b = 1 << max(0, (m - 1).bit_length()) if m > 0 else 1
            b = min(b, self._half)
        else:
            if not isinstance(bound, (int, np.integer)) or isinstance(bound, bool) or bound < m:
                raise ParameterError(
                    f"bfv: bound must be an integer >= max |values| = {m}; got {bound!r}."
                )
            b = int(bound)
        chunks, _ = self._encrypt_flat(flat)
        return EncryptedVector(self, chunks, arr.shape, self._meta(b, 0, "encryption"))

    def _encrypt_flat(self, flat: np.ndarray) -> tuple[list[Any], dict[str, Any]]:
        chunks = []
        with self._seal_errors("encryption"):
            for piece in self._pad(flat, np.int64):
                pt = sa.Plaintext()
                self._encoder.encode(piece.tolist(), pt)
                ct = sa.Ciphertext()
                self._encrypt_plaintext(pt, ct)
                chunks.append(ct)
        return chunks, {"bound": self._half, "depth": 0}

    def _decrypt_flat(self, vector: EncryptedVector) -> np.ndarray:
        out = np.empty(len(vector.chunks) * self._n, dtype=np.int64)
        with self._seal_errors("decryption"):
            for i, ct in enumerate(vector.chunks):
                if self._decryptor.invariant_noise_budget(ct) <= 0:
                    raise DepthExhaustedError(
                        f"bfv: the ciphertext's noise budget is exhausted (it went through "
                        f"{vector.meta.get('depth', 0)} product(s); this context supports about "
                        f"{self._depth}), so it cannot be decrypted correctly. Use "
                        f"{self._depth_hint(int(vector.meta.get('depth', 0)) + 1)} (one level more than the "
                        f"estimate this context failed)."
                    )
                pt = sa.Plaintext()
                self._decryptor.decrypt(ct, pt)
                out[i * self._n:(i + 1) * self._n] = self._encoder.decode_int64(pt)
        fp = self._fixed_point_bits(vector)
        if fp is not None:
            # integers stand for value * 2**fp (exact in float64 below 2**53, i.e. for any t <= 2**53)
            return out[:vector.size].astype(np.float64) / float(2 ** fp)
        return out[:vector.size]

    def _decrypts_to_zero(self, ct: Any) -> bool:
        pt = sa.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return not any(self._encoder.decode_int64(pt))

    def _validate_chunk(self, ct: Any, i: int) -> None:
        super()._validate_chunk(ct, i)
        if ct.is_ntt_form():
            raise InvalidCiphertextError(f"bfv: ciphertext {i} in the blob is in NTT form; not a BFV ciphertext.")

    def _validate_meta(self, meta: dict[str, Any], size: int) -> None:
        b, d = meta.get("bound", self._half), meta.get("depth", 0)
        if not isinstance(b, int) or isinstance(b, bool) or not 0 <= b <= self._half \
                or not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= limit("bfv_depth_max"):
            raise InvalidCiphertextError(
                f"bfv: ciphertext blob metadata has an invalid bound/depth ({b!r}, {d!r})."
            )
        fp = meta.get("fixed_point_bits")
        cap = limit("fixed_point_bits_max")
        if fp is not None and (not isinstance(fp, int) or isinstance(fp, bool) or not 0 <= fp <= cap):
            raise InvalidCiphertextError(
                f"bfv: ciphertext blob metadata has an invalid fixed_point_bits ({fp!r:.40}); expected an "
                f"integer in [0, {cap}] (he_ml limit 'fixed_point_bits_max')."
            )
        self._check_fixed_point_binding(fp, d)

    def _check_fixed_point_binding(self, fp: int | None, depth: int) -> None:
        """Refuse a fixed-point scale this context's encoding cannot produce.

        Fixed-point vectors start at the context's ``f`` bits; a product of two fixed-point
        factors adds their bits, and he_ml's own code multiplies at most one further fixed-point
        plaintext (quantized weights) per ciphertext level, so a vector that went through ``depth``
        ciphertext products carries ``k * f`` bits with ``0 <= k <= depth + 2``. Anything else
        (e.g. 10 -> 13, or 3f on a fresh vector) was edited. Within that set an edit is not
        detectable from public data; sign the blob (``to_bytes(sign_with=...)``) to make it authentic.
        """
        if fp is None:
            return
        f = self.fixed_point_bits
        ok = fp == 0 if f == 0 else (fp % f == 0 and fp // f <= depth + 2)
        if not ok:
            raise InvalidCiphertextError(
                f"bfv: ciphertext blob metadata says fixed_point_bits={fp} after {depth} product(s), but "
                f"this context encodes with f={f} fractional bits, so only multiples k*f with k <= "
                f"{depth + 2} can occur; the metadata was edited or the vector belongs to another "
                f"encoding. Re-send the original bytes."
            )

    # ------------------------------------------------------------------ operations
    def _op_add(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        meta = self._meta(self._bound(x) + self._bound(y), max(x.meta.get("depth", 0), y.meta.get("depth", 0)),
                          "addition", self._same_fixed_point(x, y, "addition"))
        return EncryptedVector(self, self._binary(x, y, "add", "addition"), x.shape, meta)

    def _op_sub(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        meta = self._meta(self._bound(x) + self._bound(y), max(x.meta.get("depth", 0), y.meta.get("depth", 0)),
                          "subtraction", self._same_fixed_point(x, y, "subtraction"))
        return EncryptedVector(self, self._binary(x, y, "sub", "subtraction"), x.shape, meta)

    def _plain_int(self, other: Any, what: str) -> tuple[list[Any], int]:
        if isinstance(other, np.ndarray):
            a = self._as_integers(other, what)
            return [p.tolist() for p in self._pad(a, np.int64)], int(np.max(np.abs(a)))
        a = self._as_integers(np.asarray(other), what)
        v = int(a)
        return [[v] * self._n], abs(v)

    def _op_add_plain(self, x: EncryptedVector, other: Any) -> EncryptedVector:
        if not isinstance(other, np.ndarray):
            # only the vector's own slots: padding slots must stay (encrypted) zeros for sum/dot
            other = np.full(x.size, self._as_integers(np.asarray(other), "the plaintext addend"))
        pieces, m = self._plain_int(other, "the plaintext addend")
        meta = self._meta(self._bound(x) + m, x.meta.get("depth", 0), "addition of a plaintext",
                          self._fixed_point_bits(x))
        out = []
        with self._seal_errors("addition of a plaintext"):
            for i, ct in enumerate(x.chunks):
                pt = sa.Plaintext()
                self._encoder.encode(pieces[i] if len(pieces) > 1 else pieces[0], pt)
                dst, _ = self._evaluate("add_plain", ct, pt, zero=lambda ct=ct: self._zero_like(ct.parms_id(), None))
                out.append(dst)
        return EncryptedVector(self, out, x.shape, meta)

    def _op_mul_plain(self, x: EncryptedVector, other: Any) -> EncryptedVector:
        pieces, m = self._plain_int(other, "the plaintext factor")
        scalar = not isinstance(other, np.ndarray)
        # A scalar multiplies the noise by |k| (log2|k| bits); a slot vector costs ~log2(t)+log2(n)
        # bits, like a ciphertext product, so it uses one level of the depth estimate.
        depth = int(x.meta.get("depth", 0)) if scalar else self._check_depth(x, "multiplication by a plaintext vector")
        meta = self._meta(self._bound(x) * m, depth, "multiplication by a plaintext", self._fixed_point_bits(x))
        return EncryptedVector(self, self._mul_plain_chunks(x, pieces), x.shape, meta)

    def _mul_plain_chunks(self, x: EncryptedVector, pieces: list[Any]) -> list[Any]:
        out = []
        with self._seal_errors("multiplication by a plaintext"):
            for i, ct in enumerate(x.chunks):
                piece = pieces[i] if len(pieces) > 1 else pieces[0]
                if not any(piece):
                    out.append(self._zero_like(ct.parms_id(), None))
                    continue
                pt = sa.Plaintext()
                self._encoder.encode(piece, pt)
                dst = sa.Ciphertext()
                self._evaluator.multiply_plain(ct, pt, dst)
                out.append(dst)
        return out

    def _op_mul(self, x: EncryptedVector, y: EncryptedVector) -> EncryptedVector:
        depth = self._check_depth(x, "ciphertext x ciphertext multiplication", y)
        meta = self._meta(self._bound(x) * self._bound(y), depth, "ciphertext x ciphertext multiplication",
                          self._product_fixed_point(x, y))
        rk = self._require_relin("ciphertext x ciphertext multiplication")
        out = []
        with self._seal_errors("ciphertext x ciphertext multiplication"):
            for a, b in zip(x.chunks, y.chunks):
                dst, nonzero = self._evaluate("multiply", a, b, zero=lambda a=a: self._zero_like(a.parms_id(), None))
                if not nonzero:
                    out.append(dst)
                    continue
                self._evaluator.relinearize_inplace(dst, rk)
                out.append(dst)
        return EncryptedVector(self, out, x.shape, meta)

    def _sum_galois_elts(self) -> tuple[int, ...]:
        # row rotations by powers of two up to n/4, plus the row swap (Galois element 2n - 1)
        return tuple(sorted(set(super()._sum_galois_elts()) | {2 * self._n - 1}))

    def _rotate_sum(self, ct: Any, op: str) -> Any:
        gk = self._ensure_galois(self._sum_galois_elts(), op)
        acc = ct
        step = 1
        while step < self._n // 2:
            rot = sa.Ciphertext()
            self._evaluator.rotate_rows(acc, step, gk, rot)
            nxt = sa.Ciphertext()
            self._evaluator.add(acc, rot, nxt)
            acc = nxt
            step <<= 1
        swapped = sa.Ciphertext()
        self._evaluator.rotate_columns(acc, gk, swapped)
        total = sa.Ciphertext()
        self._evaluator.add(acc, swapped, total)
        return total

    def _op_sum(self, x: EncryptedVector) -> EncryptedVector:
        meta = self._meta(self._bound(x) * x.size, x.meta.get("depth", 0), f"sum of {x.size} values",
                          self._fixed_point_bits(x))
        return EncryptedVector(self, [self._sum_chunks(x.chunks, x.size)], (1,), meta)

    def _sum_chunks(self, chunks: list[Any], size: int) -> Any:
        with self._seal_errors("sum"):
            total = self._add_chunks(list(chunks))
            if size > 1:
                total = self._rotate_sum(total, "sum")
        return total

    def _op_dot(self, x: EncryptedVector, w: np.ndarray) -> EncryptedVector:
        wi = self._as_integers(w, "the dot-product weights")
        # |sum w_i x_i| <= bound * sum |w_i|: checked before computing anything
        bound = self._bound(x) * int(np.sum(np.abs(wi.astype(object))))
        meta = self._meta(bound, self._check_depth(x, "dot product"), "dot product", self._fixed_point_bits(x))
        prod = self._mul_plain_chunks(x, [p.tolist() for p in self._pad(wi, np.int64)])
        return EncryptedVector(self, [self._sum_chunks(prod, x.size)], (1,), meta)
