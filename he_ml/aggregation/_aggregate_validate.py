"""Validation of received blobs for :mod:`he_ml.aggregation.aggregator` (server and key holder).

One piece of :mod:`he_ml.aggregation.aggregator`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.aggregation.aggregator`; import it from there.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from gmpy2 import gcd as _gcd, mpz as _mpz

from ..errors import (
    ContextMismatchError,
    EncodingOverflowError,
    HEError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
)
from ..schemes._format import Kind, unpack_blob
from ..schemes.base import EncryptedVector
from ..schemes.limits import check_count, check_int, limit, shape_product
from ._aggregate_layout import (
    AGGREGATE_LAYOUT_VERSION,
    _MAX_SPEC_ENTRIES,
    _describe,
    _describe_layout,
    _layout_from_spec,
)


#: What ``add`` / ``sum`` do with a blob that fails validation.
ON_INVALID_POLICIES = ("raise", "skip")


class Rejection(NamedTuple):
    """A blob dropped under ``on_invalid="skip"``.

    Attributes
    ----------
    index : int
        0-based position of the blob: in the iterable given to ``sum``, or among the
        ``add`` calls since the last ``reset``.
    reason : str
        The message of the error the blob would have raised.
    error : HEError
        That error (its class tells the kind: `InvalidCiphertextError`, `ContextMismatchError`,
        `ShapeMismatchError`, `EncodingOverflowError`).
    """

    index: int
    reason: str
    error: HEError


class _Parsed:
    """One validated aggregate blob: its vector and public metadata."""

    __slots__ = ("vector", "structure", "spec", "count", "encoding", "layout_key")

    def __init__(self, vector, structure, spec, count, encoding, layout_key):
        self.vector = vector
        self.structure = structure
        self.spec = spec
        self.count = count
        self.encoding = encoding
        self.layout_key = layout_key


def _at_position(e: HEError, index: int) -> HEError:
    """The same error class, with the 0-based position of the offending blob first."""
    msg = str(e)
    if msg.startswith("blob ") and " of the stream: " in msg[:48]:
        return e  # already positioned (a worker's error)
    try:
        return type(e)(f"blob {index} of the stream: {msg}")
    except Exception:  # pragma: no cover - every he_ml error takes one message
        return e


def _check_policy(on_invalid: Any) -> str:
    if not isinstance(on_invalid, str) or on_invalid not in ON_INVALID_POLICIES:
        raise ParameterError(f"on_invalid must be one of {ON_INVALID_POLICIES}; got {on_invalid!r:.40}. "
                             f"'raise' stops at the first bad blob, 'skip' drops it and records it in .rejected.")
    return on_invalid


class _BlobValidation:
    """Validation methods of :class:`~he_ml.aggregation.aggregator.GradientAggregator` (a mixin).

    Uses the aggregator's configuration (``context``, ``max_clients``, ``max_value``, ``dp``,
    ``precision_bits``, ``_declared_bound``, ``_bfv_step``); holds no state of its own.
    """


    # ------------------------------------------------------------------ parsing (server and key holder)
    def _parse(self, blob: bytes, what: str = "update blob") -> _Parsed:
        """Validate a blob completely and return it parsed; raise an he_ml error otherwise.

        Every declared size is checked against :mod:`he_ml.schemes.limits` before anything
        is allocated or handed to a backend: layout entries, dimensions and their product
        (with early exit), the count, the number of ciphertext sections; then every
        ciphertext is parsed and range-checked (Paillier: ``0 < c < n^2`` and a unit mod
        ``n^2``), and the declared bounds are compared with what ``count`` clients may send
        (:meth:`_check_declared_bounds`).
        """
        parsed = unpack_blob(blob).expect(kind=Kind.AGGREGATE, scheme=self._scheme,
                                          fingerprint=self._fingerprint, what=what)
        self.context._check_backend_versions(parsed, what)
        meta = parsed.metadata
        version = meta.get("aggregate")
        if version != AGGREGATE_LAYOUT_VERSION:
            raise InvalidCiphertextError(
                f"{what} has aggregate layout version {version!r:.40}, but this he_ml reads version "
                f"{AGGREGATE_LAYOUT_VERSION}; produce it with the same he_ml release as the server."
            )
        try:
            structure = meta["structure"]
            raw_spec = meta["spec"]
            if structure not in ("array", "dict") or not isinstance(raw_spec, list) \
                    or not 1 <= len(raw_spec) <= _MAX_SPEC_ENTRIES:
                raise ValueError(f"structure must be 'array' or 'dict' with 1..{_MAX_SPEC_ENTRIES} "
                                 f"spec entries")
            spec = []
            described = 0
            for entry in raw_spec:
                if not isinstance(entry, list) or len(entry) != 2:
                    raise ValueError("a spec entry must be [key, shape]")
                key, shape = entry
                if (structure == "array") != (key is None) or (key is not None and not isinstance(key, str)):
                    raise ValueError(f"bad key {key!r:.40} for structure {structure!r}")
                # dimensions and product checked one by one, with early exit at the cap
                described += shape_product(shape, f"{what} layout shape", allow_zero=True)
                if described > limit("vector_values_max"):
                    raise ValueError(f"the layout describes more than {limit('vector_values_max')} values")
                spec.append([key, list(shape)])
            if structure == "array" and len(spec) != 1:
                raise ValueError("an array layout has exactly one entry")
            count = check_count(meta["count"], f"{what} update count")
            size = check_int(meta["size"], "vector_values_max", f"{what} size", low=1)
            encoding = meta["encoding"]
            vmeta = meta["meta"]
            if not isinstance(encoding, dict) or not isinstance(vmeta, dict):
                raise ValueError("encoding and meta must be objects")
            if described != size:
                raise ValueError(f"the layout describes {described} values, size says {size}")
            self._check_encoding(encoding)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(
                f"{what} metadata is malformed ({e}); re-send the bytes produced by GradientAggregator.encrypt."
            ) from None
        if self.max_clients is not None and count > self.max_clients:
            raise EncodingOverflowError(
                f"{what} declares {count} updates but max_clients={self.max_clients}; it cannot be part of "
                f"this round. Sum it into another total, or create the aggregator for more clients."
            )
        expected = self.context._section_count_for(size)
        if len(parsed.sections) != expected:
            raise InvalidCiphertextError(
                f"{self._scheme}: a {what} of {size} values holds {expected} ciphertext section(s); got "
                f"{len(parsed.sections)}. The bytes are truncated or corrupted."
            )
        try:
            if self._scheme == "paillier":
                chunks = self._paillier_chunks(parsed.sections, size, vmeta, what)
            else:
                chunks = self.context._deserialize_chunks(parsed.sections, size, vmeta)
        except HEError:
            raise
        except Exception as e:  # backend parsers raise anything on bad input
            raise InvalidCiphertextError(
                f"{self._scheme}: the ciphertext payload of the {what} could not be parsed "
                f"({type(e).__name__}); the bytes are corrupted or from an incompatible version."
            ) from e
        self._check_bound_to_context(encoding, vmeta, what)
        vector = EncryptedVector(self.context, chunks, (size,), vmeta)
        self._check_declared_bounds(vector, encoding, count, what)
        if self.layout is not None and _layout_from_spec(structure, spec) != self.layout:
            raise ShapeMismatchError(
                f"{what} has layout {_describe(structure, spec)}, but this aggregator expects "
                f"{_describe_layout(self.layout)} (its layout= option); every client must send that structure."
            )
        layout_key = (structure, repr(spec), repr(sorted((k, v) for k, v in encoding.items() if k != "bound")))
        return _Parsed(vector, structure, spec, count, encoding, layout_key)

    def _check_bound_to_context(self, encoding: dict[str, Any], vmeta: dict[str, Any], what: str) -> None:
        """Refuse encoding metadata that this aggregator and its context did not produce.

        The fixed-point encoding is derived from the aggregator (its precision comes from the
        context) instead of being trusted from the blob: BFV blobs must use exactly its
        ``precision_bits`` (or its DP grid step), Paillier vectors exactly the context's
        ``precision_bits`` as scale (aggregation never multiplies, so no other scale can occur).
        An edited scale would otherwise decrypt to a total off by a power of two.
        """
        if self._scheme == "bfv":
            if encoding.get("kind") == "grid":
                # a DP grid step is checked against this aggregator's DP config when it has one (a
                # key holder decrypting without it cannot tell the grid a client used)
                ok = self.dp is None or encoding.get("step") == float(self.dp.resolution)
                expected = f"the DP grid step {float(self.dp.resolution) if self.dp else None!r}"
            else:
                ok = encoding.get("bits") == self.precision_bits
                expected = f"{self.precision_bits} fixed-point bits (the context's encoding)"
        elif self._scheme == "paillier":
            ok = vmeta.get("scale") == self.context.encoding.precision_bits and "reduce" not in vmeta
            expected = f"scale {self.context.encoding.precision_bits} (the context's precision_bits)"
        else:
            return
        if not ok:
            raise ContextMismatchError(
                f"{what}: its encoding ({encoding}, scale {vmeta.get('scale')!r}) is not {expected}; "
                f"the metadata was edited or the blob was made with other settings. Refusing it; "
                f"encrypt with GradientAggregator(context).encrypt on the same context."
            )

    def _paillier_chunks(self, sections: list[bytes], size: int, vmeta: dict[str, Any],
                         what: str = "update blob") -> list[Any]:
        """Paillier ciphertexts of a blob, each checked to lie in Z*_(n^2).

        Each ``c`` must satisfy ``0 < c < n^2``. The unit test ``gcd(c, n) == 1`` costs about
        as much as the homomorphic addition, so it is done once per blob: ``n = p q`` with
        ``p``, ``q`` prime (the server's own, validated context), hence
        ``gcd(prod c_i mod n, n) != 1`` exactly when some ``c_i`` is divisible by ``p`` or
        ``q``; only then are the ciphertexts tested one by one to name the culprit.
        """
        ctx = self.context
        count = ctx._validate_meta(vmeta, size)
        w = ctx._width
        if len(sections) != 1 or len(sections[0]) != count * w:
            raise InvalidCiphertextError(
                f"paillier: a blob of {size} values needs one section of {count} x {w} bytes; got section "
                f"lengths {[len(s) for s in sections]}. The bytes are truncated or corrupted.")
        data = sections[0]
        n, n2 = ctx._n, ctx._n2
        chunks = []
        prod = _mpz(1)
        for j in range(count):
            c = _mpz(int.from_bytes(data[j * w:(j + 1) * w], "big"))
            if not 0 < c < n2:
                raise InvalidCiphertextError(
                    f"paillier: ciphertext {j} of the {what} is {'zero' if c == 0 else '>= n^2'}, not an "
                    f"element of Z*_(n^2); the bytes are corrupted or forged. Ask the client to re-send.")
            chunks.append(c)
            prod = prod * c % n
        if _gcd(prod, n) != 1:
            bad = next(j for j, c in enumerate(chunks) if _gcd(c, n) != 1)
            raise InvalidCiphertextError(
                f"paillier: ciphertext {bad} of the {what} shares a factor with n (not a unit mod n^2), "
                f"so it is no encryption under this key; the bytes are corrupted or forged.")
        return chunks

    def _per_client_limit(self) -> float | int | None:
        """Largest bound one client update may declare, when the configuration implies one.

        Paillier: the encoding's fresh bound (slot value of ``max_value`` at ``precision_bits``).
        BFV: the declared ``max_value`` (or DP bound) in quantized integers, else the plain
        modulus shared by ``max_clients``. CKKS: the declared bound, else the first prime's
        range shared by ``max_clients``. None: nothing is declared (then only a blob whose
        addition would overflow the running total is refused).
        """
        if self._scheme == "paillier":
            return int(self.context.encoding.fresh_bound)
        declared = self._declared_bound()
        if self._scheme == "bfv":
            if declared is not None:
                return math.ceil(declared / self._bfv_step())
            if self.max_clients is not None:
                return int(self.context.max_value) // self.max_clients
            return None
        if declared is not None:
            return float(declared)
        if self.max_clients is not None:
            return float(self.context.value_bound) / self.max_clients
        return None

    def _check_declared_bounds(self, vector: EncryptedVector, encoding: dict[str, Any], count: int,
                               what: str) -> None:
        """Refuse a blob whose public bound exceeds what `count` honest clients can produce.

        A single blob claiming the whole headroom (e.g. Paillier ``bound = cap``) would make the
        *next* honest blob overflow the total; refusing the claim itself keeps the round alive.
        """
        per = self._per_client_limit()
        meta = vector.meta
        if self._scheme == "paillier":
            enc = self.context.encoding
            if "reduce" in meta or meta.get("scale") != enc.precision_bits or meta.get("terms") != count:
                raise InvalidCiphertextError(
                    f"paillier: the {what} is not a sum of {count} fresh encryption(s) (metadata scale "
                    f"{meta.get('scale')!r:.30}, terms {meta.get('terms')!r:.30}, reduce {meta.get('reduce')!r:.30}; "
                    f"expected scale {enc.precision_bits}, terms {count}, no reduce). Send the bytes of "
                    f"GradientAggregator.encrypt / result unchanged.")
            claimed = int(meta["bound"])
        elif self._scheme == "bfv":
            if int(meta.get("depth", 0)) != 0 or "fixed_point_bits" in meta:
                raise InvalidCiphertextError(
                    f"bfv: the {what} carries products or a fixed-point scale in its vector metadata; an "
                    f"update is a plain sum of encryptions. Send GradientAggregator.encrypt's bytes unchanged.")
            claimed = int(meta.get("bound", self.context.max_value))
        else:
            b = encoding.get("bound")
            if b is None:
                if per is None:
                    return
                raise InvalidCiphertextError(
                    f"ckks: the {what} declares no value bound, but this aggregator limits each client to "
                    f"|x| <= {per:g}; send the bytes of GradientAggregator.encrypt unchanged.")
            claimed = float(b)
        if per is None:
            return
        allowed = per * count
        # float sums of per-client bounds may round up by a few ulps
        if (claimed > allowed * (1 + 1e-9)) if isinstance(allowed, float) else claimed > allowed:
            raise EncodingOverflowError(
                f"{self._scheme}: the {what} declares values up to {claimed:.6g} for {count} update(s), but "
                f"one client may send at most {per:.6g} (max_value / DP clip bound / headroom per client), "
                f"so {count} update(s) reach at most {allowed:.6g}. Accepting it could overflow the total "
                f"for everyone else; the client must clip its update to the declared bound."
            )

    def _check_units(self, vector: EncryptedVector, what: str) -> None:
        """Paillier: every ciphertext of a total must be a unit mod n^2 (see `_paillier_chunks`)."""
        if self._scheme != "paillier":
            return
        n = self.context._n
        for j, c in enumerate(vector.chunks):
            if _gcd(c, n) != 1:
                raise InvalidCiphertextError(
                    f"paillier: ciphertext {j} of the {what} is not a unit mod n^2, so at least one blob "
                    f"summed into it was forged or corrupted (a valid encryption is always a unit). Discard "
                    f"this total and re-collect the updates, validating each with add() on its own."
                )

    def _check_encoding(self, encoding: dict[str, Any]) -> None:
        kind = encoding.get("kind")
        if self._scheme == "bfv":
            if kind == "fixed":
                bits = encoding.get("bits")
                cap = limit("aggregate_fixed_point_bits_max")
                if not isinstance(bits, int) or isinstance(bits, bool) or not 0 <= bits <= cap:
                    raise ValueError(f"bfv fixed-point bits must be an int in [0, {cap}], got {bits!r:.40}")
            elif kind == "grid":
                step = encoding.get("step")
                if not isinstance(step, float) or not math.isfinite(step) or step <= 0:
                    raise ValueError(f"bfv grid step must be a positive float, got {step!r:.40}")
            else:
                raise ValueError(f"bfv encoding kind must be 'fixed' or 'grid', got {kind!r:.40}")
        else:
            bound = encoding.get("bound")
            if isinstance(bound, int) and not isinstance(bound, bool):
                bound = float(bound) if abs(bound) < 2 ** 1023 else float("inf")  # no OverflowError
            if kind != "native" or not (bound is None or (isinstance(bound, float) and math.isfinite(bound)
                                                          and bound > 0)):
                raise ValueError(f"{self._scheme} encoding must be native with a positive bound or null; "
                                 f"got {encoding!r:.80}")
