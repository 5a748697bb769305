"""The scheme interface: one ``SchemeContext`` / ``EncryptedVector`` pair for every backend.

Upper layers (``he_ml.ml``, ``he_ml.aggregation``, the CLI) talk only to this
module's classes.  A backend is one module in ``he_ml/schemes/`` that subclasses
:class:`SchemeContext` and implements its ``_op_*`` hooks; the operators,
argument checking, shape bookkeeping, serialization container and pickling
live here, once.

Values of any numpy shape are flattened (C order) into one logical vector,
which the backend spreads over as many ciphertexts ("chunks") as its slot count
requires; the shape is restored on decryption.
"""
from __future__ import annotations

import abc
import hashlib
import math
import numbers
import threading
import weakref
from typing import Any, ClassVar

import numpy as np

from ..errors import (
    ContextMismatchError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ._format import Blob, Kind, pack_blob, unpack_blob

#: Largest number of values one EncryptedVector blob may declare (a sanity bound for parsers).
MAX_VECTOR_VALUES = 1 << 40

__all__ = ["SchemeContext", "EncryptedVector", "fingerprint_of", "as_plain_operand", "check_values",
           "stack_columns"]


def fingerprint_of(*parts: bytes) -> bytes:
    """16-byte SHA-256 fingerprint of public-key material (identifies a key, reveals nothing)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()[:16]


def check_values(values: Any, *, scheme: str, what: str = "values") -> np.ndarray:
    """Convert user data to a float64 or int64 numpy array and reject NaN/inf and bad dtypes."""
    try:
        arr = np.asarray(values)
    except Exception as e:  # ragged lists and the like
        raise ParameterError(
            f"{scheme}: {what} must be a numeric array-like; got {type(values).__name__} that numpy "
            f"cannot convert ({e}). Pass a numpy array or a flat list of numbers."
        ) from e
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ParameterError(
            f"{scheme}: {what} must be numeric; got dtype {arr.dtype}. Convert with "
            f"np.asarray(values, dtype=float)."
        )
    if np.iscomplexobj(arr):
        raise ParameterError(f"{scheme}: {what} must be real; got complex dtype {arr.dtype}.")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64, copy=False)
        if not np.all(np.isfinite(arr)):
            bad = np.flatnonzero(~np.isfinite(arr.ravel()))
            raise ParameterError(
                f"{scheme}: {what} must be finite; got NaN or inf at flat index {int(bad[0])} "
                f"({bad.size} non-finite in total). Clean the data (e.g. np.nan_to_num) before encrypting."
            )
    elif np.issubdtype(arr.dtype, np.unsignedinteger):
        if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ParameterError(f"{scheme}: {what} exceed the int64 range; got max {int(arr.max())}.")
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.int64, copy=False)
    return arr


def as_plain_operand(value: Any, size: int, *, scheme: str, op: str) -> np.ndarray | float | int:
    """Normalise a plaintext operand: a Python/numpy scalar stays scalar, an array must match ``size``.

    Arrays are flattened in C order; a 1-element array is treated as a scalar.
    """
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_)):
        arr = check_values(value, scheme=scheme, what=f"the scalar operand of {op}")
        return arr.item()
    arr = check_values(value, scheme=scheme, what=f"the plaintext operand of {op}")
    if arr.size == 1 and arr.ndim <= 1 and size != 1:
        return arr.item()
    flat = arr.reshape(-1)
    if flat.size != size:
        raise ShapeMismatchError(
            f"{scheme}: {op} needs a plaintext operand with {size} values (the encrypted vector's "
            f"size); got shape {arr.shape} ({flat.size} values). Reshape or slice the operand."
        )
    return flat


class SchemeContext(abc.ABC):
    """Keys and parameters of one scheme instance; the factory of `EncryptedVector`.

    Subclasses set ``name`` and ``capabilities`` and implement the abstract hooks.
    """

    name: ClassVar[str] = ""
    capabilities: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ identity
    @property
    @abc.abstractmethod
    def fingerprint(self) -> bytes:
        """16 bytes identifying the public key (and parameters); equal for a context and its public twin."""

    @property
    @abc.abstractmethod
    def has_secret_key(self) -> bool:
        """Whether this context can decrypt."""

    @property
    @abc.abstractmethod
    def security_level(self) -> int:
        """Estimated classical security in bits (HE-standard table or NIST SP 800-57)."""

    @property
    @abc.abstractmethod
    def slot_count(self) -> int:
        """Values per ciphertext."""

    @property
    def max_depth(self) -> int | None:
        """Multiplicative levels of a fresh ciphertext; None when the scheme has no level budget."""
        return None

    @property
    def parameters(self) -> dict[str, Any]:
        """Plain description of the parameters (JSON-serializable)."""
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        key = "secret key" if self.has_secret_key else "public only"
        return f"{type(self).__name__}({params}; {key}; {self.security_level}-bit)"

    # ------------------------------------------------------------------ public API
    def encrypt(self, values: Any) -> "EncryptedVector":
        """Encrypt an array of any shape; see the scheme's class docstring for value ranges."""
        arr = check_values(values, scheme=self.name)
        if arr.size == 0:
            raise ShapeMismatchError(f"{self.name}: cannot encrypt an empty array; got shape {arr.shape}.")
        flat = self._prepare_values(arr.reshape(-1))
        chunks, meta = self._encrypt_flat(flat)
        return EncryptedVector(self, chunks, arr.shape, meta)

    def decrypt(self, vector: "EncryptedVector") -> np.ndarray:
        """Decrypt to a numpy array of the vector's shape.

        Raises
        ------
        SecretKeyMissingError
            If this context carries no secret key (e.g. it came from ``public_context()``).
        ContextMismatchError
            If the vector was encrypted under another key.
        """
        if not isinstance(vector, EncryptedVector):
            raise ParameterError(
                f"{self.name}: decrypt expects an EncryptedVector; got {type(vector).__name__}. "
                f"Use ciphertext_from_bytes() first if you hold bytes."
            )
        self._check_same_key(vector.context, "decrypt")
        if not self.has_secret_key:
            raise SecretKeyMissingError(
                f"{self.name}: this context holds no secret key (it is a public context), so it cannot "
                f"decrypt. Send the ciphertext (vector.to_bytes()) to the key holder and decrypt there."
            )
        k = vector.meta.get("columns")
        if k:
            return self._decrypt_columns(vector, int(k))
        flat = self._decrypt_flat(vector)
        return flat.reshape(vector.shape)

    def _decrypt_columns(self, vector: "EncryptedVector", k: int) -> np.ndarray:
        """Decrypt a `stack_columns` vector: k column blocks of ``shape[0]`` values each."""
        n, per = vector.shape[0], len(vector.chunks) // k
        meta = {key: v for key, v in vector.meta.items() if key != "columns"}
        cols = [self._decrypt_flat(EncryptedVector(self, vector.chunks[c * per:(c + 1) * per], (n,), meta))
                for c in range(k)]
        return np.stack(cols, axis=1).reshape(vector.shape)

    @abc.abstractmethod
    def public_context(self) -> "SchemeContext":
        """A copy without the secret key, safe to hand to an untrusted server."""

    def to_bytes(self, include_secret_key: bool = False) -> bytes:
        """Serialize the context; the secret key only when explicitly asked for."""
        if include_secret_key and not self.has_secret_key:
            raise SecretKeyMissingError(
                f"{self.name}: include_secret_key=True but this context holds no secret key; "
                f"serialize the key holder's context instead."
            )
        kind = Kind.SECRET_CONTEXT if include_secret_key else Kind.PUBLIC_CONTEXT
        meta, sections = self._context_payload(include_secret_key)
        return pack_blob(kind, self.name, self.fingerprint, meta, sections)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SchemeContext":
        """Load a context written by `to_bytes` (see also ``he_ml.load_context``)."""
        blob = unpack_blob(data).expect(kind=(Kind.PUBLIC_CONTEXT, Kind.SECRET_CONTEXT),
                                        scheme=cls.name, what="context blob")
        try:
            ctx = cls._from_context_payload(blob)
        except (InvalidCiphertextError, ContextMismatchError):
            raise
        except Exception as e:  # backend parsers raise anything on bad input
            raise InvalidCiphertextError(
                f"{cls.name}: the context blob passed its checksum but its payload could not be "
                f"loaded ({type(e).__name__}). It was produced by an incompatible version or tampered with."
            ) from e
        if ctx.fingerprint != blob.fingerprint:
            raise InvalidCiphertextError(
                f"{cls.name}: context payload does not match the fingerprint in its header; the blob "
                f"was tampered with."
            )
        return ctx

    def ciphertext_from_bytes(self, data: bytes) -> "EncryptedVector":
        """Load an `EncryptedVector` written by ``EncryptedVector.to_bytes`` under this key."""
        blob = unpack_blob(data).expect(kind=Kind.CIPHERTEXT, scheme=self.name,
                                        fingerprint=self.fingerprint, what="ciphertext blob")
        try:
            raw_shape = blob.metadata["shape"]
            if not isinstance(raw_shape, list) or len(raw_shape) > 32 or not all(
                    isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_VECTOR_VALUES
                    for s in raw_shape):
                raise ValueError(f"shape must be a list of positive ints; got {raw_shape!r:.80}")
            shape = tuple(raw_shape)
            size = math.prod(shape)
            if size > MAX_VECTOR_VALUES:
                raise ValueError(f"shape {shape} holds more than {MAX_VECTOR_VALUES} values")
            meta = dict(blob.metadata.get("meta", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(
                f"{self.name}: ciphertext blob metadata is malformed ({e}); re-send the original bytes."
            ) from e
        try:
            if "columns" in meta:  # a stack_columns vector: k column blocks of shape[0] values
                k = meta["columns"]
                if (not isinstance(k, int) or isinstance(k, bool) or len(shape) != 2 or shape[1] != k
                        or len(blob.sections) % k):
                    raise InvalidCiphertextError(
                        f"{self.name}: column-stacked ciphertext blob is inconsistent (columns={k!r:.20}, "
                        f"shape {shape}, {len(blob.sections)} ciphertexts); re-send the original bytes.")
                per = len(blob.sections) // k
                col_meta = {key: v for key, v in meta.items() if key != "columns"}
                chunks = [ct for c in range(k)
                          for ct in self._deserialize_chunks(blob.sections[c * per:(c + 1) * per], shape[0],
                                                             col_meta)]
            else:
                chunks = self._deserialize_chunks(blob.sections, size, meta)
        except (InvalidCiphertextError, ContextMismatchError):
            raise
        except Exception as e:
            raise InvalidCiphertextError(
                f"{self.name}: ciphertext payload could not be parsed ({type(e).__name__}); the bytes "
                f"are corrupted or come from an incompatible version."
            ) from e
        return EncryptedVector(self, chunks, shape, meta)

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_same_key(self, other: "SchemeContext", op: str) -> None:
        if other is self:
            return
        if other.name != self.name or other.fingerprint != self.fingerprint:
            raise ContextMismatchError(
                f"{op}: operands come from different contexts ({other.name} key "
                f"{other.fingerprint.hex()[:12]}… vs {self.name} key {self.fingerprint.hex()[:12]}…). "
                f"Encrypt every operand with the same context or its public_context()."
            )

    def _unsupported(self, op: str, hint: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(f"{self.name} does not support {op}. {hint}")

    def _register(self) -> None:
        """Make this context findable by fingerprint (used when unpickling vectors)."""
        _REGISTRY.add(self)

    # ------------------------------------------------------------------ backend hooks
    def _prepare_values(self, flat: np.ndarray) -> np.ndarray:
        """Scheme-specific range checks and conversion of flat plaintext values."""
        return flat

    @abc.abstractmethod
    def _encrypt_flat(self, flat: np.ndarray) -> tuple[list[Any], dict[str, Any]]:
        """Encrypt a flat array; return backend chunks and JSON-serializable vector metadata."""

    @abc.abstractmethod
    def _decrypt_flat(self, vector: "EncryptedVector") -> np.ndarray:
        """Decrypt every chunk and return the flat values (length ``vector.size``)."""

    @abc.abstractmethod
    def _serialize_chunks(self, vector: "EncryptedVector") -> list[bytes]:
        """Backend bytes of each chunk."""

    @abc.abstractmethod
    def _deserialize_chunks(self, sections: list[bytes], size: int, meta: dict[str, Any]) -> list[Any]:
        """Inverse of `_serialize_chunks`; must validate counts and sizes against ``size``."""

    @abc.abstractmethod
    def _context_payload(self, include_secret_key: bool) -> tuple[dict[str, Any], list[bytes]]:
        """Metadata and sections for `to_bytes`."""

    @classmethod
    @abc.abstractmethod
    def _from_context_payload(cls, blob: Blob) -> "SchemeContext":
        """Rebuild a context from a parsed blob."""

    def _chunk_level(self, chunk: Any) -> int | None:
        return None

    def _vector_level(self, vector: "EncryptedVector") -> int | None:
        """Levels left of a whole vector (default: lowest `_chunk_level`); BFV overrides it."""
        levels = [self._chunk_level(c) for c in vector.chunks]
        levels = [lv for lv in levels if lv is not None]
        return min(levels) if levels else None

    # Operations on whole vectors; operands already validated (same key, same size).
    # ``other`` plaintext operands are a scalar or a flat numpy array of the vector's size.
    @abc.abstractmethod
    def _op_add(self, x: "EncryptedVector", y: "EncryptedVector") -> "EncryptedVector": ...

    @abc.abstractmethod
    def _op_add_plain(self, x: "EncryptedVector", other) -> "EncryptedVector": ...

    @abc.abstractmethod
    def _op_mul_plain(self, x: "EncryptedVector", other) -> "EncryptedVector": ...

    @abc.abstractmethod
    def _op_neg(self, x: "EncryptedVector") -> "EncryptedVector": ...

    @abc.abstractmethod
    def _op_sum(self, x: "EncryptedVector") -> "EncryptedVector": ...

    @abc.abstractmethod
    def _op_dot(self, x: "EncryptedVector", w: np.ndarray) -> "EncryptedVector": ...

    def _op_sub(self, x: "EncryptedVector", y: "EncryptedVector") -> "EncryptedVector":
        return self._op_add(x, self._op_neg(y))

    def _op_rotate(self, x: "EncryptedVector", steps: int) -> "EncryptedVector":
        raise self._unsupported(
            "slot rotation",
            "Rotations exist only for CKKS/BFV vectors that fill exactly one ciphertext.",
        )

    def _op_mul(self, x: "EncryptedVector", y: "EncryptedVector") -> "EncryptedVector":
        raise self._unsupported(
            "ciphertext x ciphertext multiplication",
            "Multiply by a plaintext instead, or use CKKS/BFV for encrypted products.",
        )


class _ContextRegistry:
    """Weak registry fingerprint -> contexts, preferring one that can decrypt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_fp: dict[bytes, weakref.WeakSet] = {}

    def add(self, ctx: SchemeContext) -> None:
        with self._lock:
            self._by_fp.setdefault(ctx.fingerprint, weakref.WeakSet()).add(ctx)

    def get(self, fp: bytes) -> SchemeContext | None:
        with self._lock:
            ctxs = list(self._by_fp.get(fp, ()))
        if not ctxs:
            return None
        ctxs.sort(key=lambda c: not c.has_secret_key)
        return ctxs[0]


_REGISTRY = _ContextRegistry()


def _unpickle_vector(context_blob: bytes, vector_blob: bytes) -> "EncryptedVector":
    from . import load_context  # local: the registry of scheme classes lives in __init__

    fp = unpack_blob(context_blob).fingerprint
    ctx = _REGISTRY.get(fp)
    if ctx is None:
        ctx = load_context(context_blob)
    return ctx.ciphertext_from_bytes(vector_blob)


class EncryptedVector:
    """An encrypted array of any shape, spread over one or more ciphertexts.

    Supports ``+``, ``-``, unary ``-``, ``*`` with scalars and arrays of the same size
    (any shape with that many values), ``*`` with another EncryptedVector where the
    scheme allows it (CKKS, BFV), ``sum()``, ``dot(w)``, ``to_bytes()`` and pickling.
    """

    __array_ufunc__ = None  # make numpy defer to our reflected operators (arr + enc)

    def __init__(self, context: SchemeContext, chunks: list[Any], shape: tuple[int, ...],
                 meta: dict[str, Any] | None = None) -> None:
        self.context = context
        self.chunks = list(chunks)
        self.shape = tuple(int(s) for s in shape)
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ descriptors
    @property
    def size(self) -> int:
        """Number of encrypted values."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def scheme(self) -> str:
        return self.context.name

    @property
    def level(self) -> int | None:
        """Multiplicative levels left (lowest over chunks); None for schemes without levels."""
        return self.context._vector_level(self)

    @property
    def num_ciphertexts(self) -> int:
        return len(self.chunks)

    def __repr__(self) -> str:
        lv = self.level
        lvl = "" if lv is None else f", level={lv}"
        return (f"EncryptedVector(scheme={self.scheme!r}, shape={self.shape}, "
                f"ciphertexts={len(self.chunks)}{lvl})")

    def reshape(self, *shape) -> "EncryptedVector":
        """Same ciphertexts, another shape with the same number of values."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        new = np.empty(self.size, dtype=np.int8).reshape(shape).shape  # numpy checks -1 and sizes
        return EncryptedVector(self.context, self.chunks, new, self.meta)

    # ------------------------------------------------------------------ operand plumbing
    def _peer(self, other: "EncryptedVector", op: str) -> None:
        self.context._check_same_key(other.context, op)
        if self.meta.get("columns") != other.meta.get("columns") or (
                self.meta.get("columns") and self.shape != other.shape):
            raise ShapeMismatchError(
                f"{self.scheme}: {op} needs operands of the same layout; one is column-stacked "
                f"(stack_columns) and the other is not, or their shapes differ ({self.shape}, {other.shape}).")
        if other.size != self.size:
            raise ShapeMismatchError(
                f"{self.scheme}: {op} needs operands of the same size; got shapes {self.shape} and "
                f"{other.shape}. Slice or reshape before encrypting."
            )

    def _plain(self, other: Any, op: str):
        plain = as_plain_operand(other, self.size, scheme=self.scheme, op=op)
        if self.meta.get("columns") and isinstance(plain, np.ndarray):
            raise UnsupportedOperationError(
                f"{self.scheme}: {op} with a plaintext array is not defined on a column-stacked vector "
                f"(stack_columns); use a scalar, or operate on the columns before stacking.")
        return plain

    def _result_shape(self, other: Any) -> tuple[int, ...]:
        return self.shape

    # ------------------------------------------------------------------ operators
    def __add__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            self._peer(other, "addition")
            return self.context._op_add(self, other)
        return self.context._op_add_plain(self, self._plain(other, "addition"))

    __radd__ = __add__

    def __sub__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            self._peer(other, "subtraction")
            return self.context._op_sub(self, other)
        plain = self._plain(other, "subtraction")
        return self.context._op_add_plain(self, -plain)

    def __rsub__(self, other: Any) -> "EncryptedVector":
        plain = self._plain(other, "subtraction")
        return self.context._op_add_plain(self.context._op_neg(self), plain)

    def __neg__(self) -> "EncryptedVector":
        return self.context._op_neg(self)

    def __mul__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            self._peer(other, "multiplication")
            return self.context._op_mul(self, other)
        return self.context._op_mul_plain(self, self._plain(other, "multiplication"))

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            raise self.context._unsupported(
                "division by a ciphertext", "Divide by a plaintext, or approximate 1/x with he_ml.ml.approximate.")
        plain = self._plain(other, "division")
        if np.any(np.asarray(plain) == 0):
            raise ParameterError(f"{self.scheme}: division by zero in the plaintext divisor.")
        return self.context._op_mul_plain(self, 1.0 / np.asarray(plain, dtype=np.float64)
                                          if isinstance(plain, np.ndarray) else 1.0 / plain)

    def sum(self) -> "EncryptedVector":
        """Encrypted sum of all values: an EncryptedVector of shape (1,)."""
        return self.context._op_sum(self)

    def dot(self, weights: Any) -> "EncryptedVector":
        """Encrypted inner product with a plaintext vector of the same size: shape (1,)."""
        w = self._plain(weights, "dot")
        if not isinstance(w, np.ndarray):
            w = np.full(self.size, w)
        return self.context._op_dot(self, w)

    def rotate(self, steps: int) -> "EncryptedVector":
        """Cyclic left rotation by ``steps`` slots (negative: right).

        Defined for a vector that fills exactly one ciphertext (``size == context.slot_count``),
        where it is one Galois automorphism; CKKS and BFV only.
        """
        if not isinstance(steps, (int, np.integer)):
            raise ParameterError(f"{self.scheme}: rotate steps must be an int; got {type(steps).__name__}.")
        if self.size != self.context.slot_count or len(self.chunks) != 1:
            raise ShapeMismatchError(
                f"{self.scheme}: rotate needs a vector of exactly slot_count={self.context.slot_count} "
                f"values in one ciphertext; got {self.size} values in {len(self.chunks)} ciphertexts. "
                f"Pad the data to slot_count before encrypting."
            )
        steps = int(steps) % self.size
        if steps == 0:
            return self
        return self.context._op_rotate(self, steps)

    # ------------------------------------------------------------------ bytes and pickling
    def to_bytes(self) -> bytes:
        """Self-describing, versioned bytes; load with ``ctx.ciphertext_from_bytes``."""
        sections = self.context._serialize_chunks(self)
        meta = {"shape": list(self.shape), "meta": self.meta}
        return pack_blob(Kind.CIPHERTEXT, self.scheme, self.context.fingerprint, meta, sections)

    def __reduce__(self):
        return (_unpickle_vector, (self.context.to_bytes(include_secret_key=False), self.to_bytes()))

    def __bool__(self) -> bool:
        raise TypeError("the truth value of an EncryptedVector is unknown without decrypting it")


def stack_columns(columns: list[EncryptedVector]) -> EncryptedVector:
    """Join ``k`` encrypted vectors of ``n`` values into one vector that decrypts to shape ``(n, k)``.

    The ciphertexts are not touched (no rotation, no cost): the result keeps the columns as
    consecutive blocks of chunks and records ``meta["columns"] = k``; ``decrypt`` and
    ``ciphertext_from_bytes`` read the blocks column by column. This is how a batched model
    returns per-class scores of many samples (one ciphertext per class) that decrypt like
    scikit-learn's ``(n_samples, n_classes)``. Element-wise operations with scalars and with
    another vector of the same layout work; plaintext arrays are refused.

    Raises
    ------
    ShapeMismatchError
        No columns, columns of different lengths, contexts or metadata.
    """
    if not columns:
        raise ShapeMismatchError("stack_columns needs at least one column; got none.")
    first = columns[0]
    n = first.size
    meta = dict(first.meta)
    for c in columns[1:]:
        first.context._check_same_key(c.context, "stack_columns")
        if c.size != n or len(c.chunks) != len(first.chunks) or set(c.meta) != set(meta):
            raise ShapeMismatchError(
                f"stack_columns needs columns of the same length and encoding; got sizes {n} and {c.size}.")
        for key, value in c.meta.items():
            if value == meta[key]:
                continue
            # worst-case trackers (BFV/Paillier "bound", "depth", "terms") combine by max; the encoding
            # itself (scale, fixed-point bits) must agree
            if key in ("scale", "fixed_point_bits") or not isinstance(value, int) or isinstance(value, bool):
                raise ShapeMismatchError(
                    f"stack_columns needs columns with the same encoding; {key!r} differs ({meta[key]!r} vs {value!r}).")
            meta[key] = max(meta[key], value)
    if "columns" in first.meta:
        raise ShapeMismatchError("stack_columns: a column is itself column-stacked; stack plain vectors.")
    meta["columns"] = len(columns)
    return EncryptedVector(first.context, [ct for c in columns for ct in c.chunks], (n, len(columns)), meta)
