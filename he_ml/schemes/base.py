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
import numbers
import threading
import weakref
from typing import Any, ClassVar

import numpy as np

from ..errors import (
    ContextMismatchError,
    HEError,
    InvalidCiphertextError,
    ParameterError,
    SecretKeyMissingError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from . import _vector_numpy
from ._format import Blob, Kind, pack_blob, unpack_blob
from .limits import limit, shape_product
from .signing import open_blob

#: Largest number of values one EncryptedVector blob may declare (see he_ml.schemes.limits).
MAX_VECTOR_VALUES = limit("vector_values_max")

__all__ = ["SchemeContext", "EncryptedVector", "fingerprint_of", "as_plain_operand", "check_values",
           "stack_columns"]


def fingerprint_of(*parts: bytes) -> bytes:
    """16-byte SHA-256 fingerprint of public material (identifies a key, reveals nothing).

    Each part is length-prefixed, so no two different part lists hash the same input. Backends
    pass *every* public part that changes what a ciphertext means: parameters, the encoding
    (scale / fixed-point bits / plain modulus), the public key and, for CKKS/BFV, the key
    holder's evaluation-key certification key (``docs/binding-and-bounds.md``).
    """
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

    def to_bytes(self, include_secret_key: bool = False, *, sign_with: Any = None) -> bytes:
        """Serialize the context; the secret key only when explicitly asked for.

        ``sign_with``: an Ed25519 private key; the result is then a signed envelope
        (``he_ml.sign_blob``) that ``he_ml.load_context(blob, verify_key=...)`` checks.
        """
        if include_secret_key and not self.has_secret_key:
            raise SecretKeyMissingError(
                f"{self.name}: include_secret_key=True but this context holds no secret key; "
                f"serialize the key holder's context instead."
            )
        kind = Kind.SECRET_CONTEXT if include_secret_key else Kind.PUBLIC_CONTEXT
        meta, sections = self._context_payload(include_secret_key)
        meta = dict(meta, **self._backend_versions())
        data = pack_blob(kind, self.name, self.fingerprint, meta, sections)
        if sign_with is None:
            return data
        from .signing import sign_blob

        return sign_blob(data, sign_with)

    @classmethod
    def from_bytes(cls, data: bytes, *, allow_insecure: bool = False, verify_key: Any = None) -> "SchemeContext":
        """Load a context written by `to_bytes` (see also ``he_ml.load_context``).

        Parameters
        ----------
        data : bytes
        allow_insecure : bool, default False
            The caller's opt-in to load parameters below the security floor (lattice modulus
            above the HE-standard 128-bit bound, Paillier key below 2048 bits). A blob can never
            opt itself in; the size limits of :mod:`he_ml.schemes.limits` apply regardless.
        verify_key : Ed25519 public key or 32 bytes, optional
            Requires the bytes to be signed by this key (``he_ml.sign_blob``); a signed blob is
            accepted without it after its signature is checked.

        Raises
        ------
        InvalidCiphertextError
            Malformed bytes, or declared sizes beyond the limits.
        InsecureParametersError
            Parameters below the security floor and ``allow_insecure`` is not set.
        ContextMismatchError
            A blob of another scheme, or not signed by ``verify_key``.
        """
        if not isinstance(allow_insecure, bool):
            raise ParameterError(f"allow_insecure must be True or False; got {allow_insecure!r}.")
        return cls._from_unpacked(unpack_blob(open_blob(data, verify_key)), allow_insecure=allow_insecure)

    @classmethod
    def _from_unpacked(cls, blob: Any, *, allow_insecure: bool = False) -> "SchemeContext":
        """`from_bytes` after the container is parsed (``load_context`` parses it only once)."""
        blob = blob.expect(kind=(Kind.PUBLIC_CONTEXT, Kind.SECRET_CONTEXT), scheme=cls.name, what="context blob")
        cls._check_backend_versions(blob, "context blob")
        try:
            ctx = cls._from_context_payload(blob, allow_insecure=allow_insecure)
        except HEError:
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

    def ciphertext_from_bytes(self, data: bytes, *, verify_key: Any = None) -> "EncryptedVector":
        """Load an `EncryptedVector` written by ``EncryptedVector.to_bytes`` under this key.

        Metadata is checked for consistency with this context (see the backend's
        ``_validate_meta``); ``verify_key`` additionally requires a signature by that key.
        """
        data = open_blob(data, verify_key)
        blob = unpack_blob(data).expect(kind=Kind.CIPHERTEXT, scheme=self.name,
                                        fingerprint=self.fingerprint, what="ciphertext blob")
        self._check_backend_versions(blob, "ciphertext blob")
        try:
            raw_shape = blob.metadata["shape"]
            # dimensions and their product against the limits table, before any allocation
            size = shape_product(raw_shape, f"{self.name}: ciphertext blob shape")
            shape = tuple(raw_shape)
            meta = dict(blob.metadata.get("meta", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(
                f"{self.name}: ciphertext blob metadata is malformed ({e}); re-send the original bytes."
            ) from e
        k = meta.get("columns")
        if k is not None:  # a stack_columns vector: k column blocks of shape[0] values each
            if (not isinstance(k, int) or isinstance(k, bool) or len(shape) != 2 or shape[1] != k):
                raise InvalidCiphertextError(
                    f"{self.name}: column-stacked ciphertext blob is inconsistent (columns={k!r:.20}, "
                    f"shape {shape}); re-send the original bytes.")
            expected = k * self._section_count_for(shape[0])
        else:
            expected = self._section_count_for(size)
        if len(blob.sections) != expected:
            raise InvalidCiphertextError(
                f"{self.name}: ciphertext blob for {size} values must hold {expected} "
                f"ciphertext section(s); got {len(blob.sections)}. Re-send the original bytes."
            )
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
        except HEError:
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

    # ------------------------------------------------------------------ backend versions
    @classmethod
    def _backend_versions(cls) -> dict[str, str]:
        """Versions of the serialization backend recorded in blobs (SEAL for CKKS/BFV)."""
        return {}

    @classmethod
    def _check_backend_versions(cls, blob: Blob, what: str) -> None:
        """Refuse a blob written by an incompatible backend version (default: nothing to check)."""

    def _section_count_for(self, size: int) -> int:
        """Payload sections of a vector of `size` values (checked before parsing any payload)."""
        return -(-size // self.slot_count)

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
    def _from_context_payload(cls, blob: Blob, *, allow_insecure: bool = False) -> "SchemeContext":
        """Rebuild a context from a parsed blob; `allow_insecure` is the caller's opt-in only."""

    def _chunk_level(self, chunk: Any) -> int | None:
        return None

    def _tracked_bound(self, vector: "EncryptedVector") -> float | int | None:
        b = vector.meta.get("bound")
        return None if b is None else b

    def _with_bound(self, vector: "EncryptedVector", bound: Any) -> "EncryptedVector":
        raise self._unsupported("declaring a value bound", "Only CKKS and BFV vectors track a bound.")

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


def _unpickle_vector(context_blob: bytes, vector_blob: bytes, allow_insecure: bool = False) -> "EncryptedVector":
    from . import load_context  # local: the registry of scheme classes lives in __init__

    fp = unpack_blob(context_blob).fingerprint
    ctx = _REGISTRY.get(fp)
    if ctx is None:
        # The opt-in travels with the pickle (written by a process whose context had it);
        # unpickling is trusted anyway (pickle runs code), unlike loading a blob.
        ctx = load_context(context_blob, allow_insecure=bool(allow_insecure))
    return ctx.ciphertext_from_bytes(vector_blob)


class EncryptedVector:
    """An encrypted array of any shape, spread over one or more ciphertexts.

    Supports ``+``, ``-``, unary ``-``, ``*`` with scalars and arrays of the same size
    (any shape with that many values), ``*`` with another EncryptedVector where the
    scheme allows it (CKKS, BFV), ``sum()``, ``dot(w)``, ``to_bytes()`` and pickling.
    """

    __array_ufunc__ = None  # make numpy defer to our reflected operators (arr + enc)
    __pandas_priority__ = 5000  # make pandas (>= 2.1) defer too (df + enc); DataFrame's own is 4000

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

    @property
    def bound(self) -> float | int | None:
        """Public upper bound on |value| tracked through every operation (CKKS, BFV; else None).

        Operations whose result bound could exceed what the parameters represent raise
        `EncodingOverflowError` before they run (see ``docs/binding-and-bounds.md``).
        """
        return self.context._tracked_bound(self)

    def with_bound(self, bound: float) -> "EncryptedVector":
        """The same ciphertexts with a tighter public bound the caller can prove.

        Interval arithmetic on one bound per vector is pessimistic for rotate-and-add trees over
        partly empty slots (e.g. a sum over blocks of which only a few hold data); code that
        knows the structure states the true bound here. A wrong (too small) bound disables the
        overflow check for what follows, so use it only with a proof in a comment.

        Raises
        ------
        ParameterError
            If `bound` is not a finite number >= 0.
        UnsupportedOperationError
            For schemes without bound tracking (Paillier tracks its own slot bounds).
        """
        return self._carry_padding(self.context._with_bound(self, bound), self)

    def reshape(self, *shape) -> "EncryptedVector":
        """Same ciphertexts, another shape with the same number of values."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        new = np.empty(self.size, dtype=np.int8).reshape(shape).shape  # numpy checks -1 and sizes
        out = EncryptedVector(self.context, self.chunks, new, self.meta)
        if new == self.shape:
            out.labels = self.labels
        return self._carry_padding(out, self)

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

    def _labels_with(self, other: Any, op: str) -> dict[str, Any] | None:
        """pandas labels of ``self <op> other`` (checked before any ciphertext work; see
        `_vector_numpy.combine_labels`)."""
        right = other.labels if isinstance(other, EncryptedVector) else _vector_numpy.labels_of(other)
        return _vector_numpy.combine_labels(self.labels, right, self.shape, scheme=self.scheme, op=op)

    @staticmethod
    def _labelled(out: "EncryptedVector", labels: dict[str, Any] | None) -> "EncryptedVector":
        if labels is not None:
            out.labels = labels
        return out

    # ------------------------------------------------------------------ operators
    def __add__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            self._peer(other, "addition")
            labels = self._labels_with(other, "addition")
            return self._carry_padding(self._labelled(self.context._op_add(self, other), labels), self, other)
        plain = self._plain(other, "addition")
        labels = self._labels_with(other, "addition")
        return self._carry_padding(self._labelled(self.context._op_add_plain(self, plain), labels), self)

    __radd__ = __add__

    def __sub__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            self._peer(other, "subtraction")
            labels = self._labels_with(other, "subtraction")
            return self._carry_padding(self._labelled(self.context._op_sub(self, other), labels), self, other)
        plain = self._plain(other, "subtraction")
        labels = self._labels_with(other, "subtraction")
        return self._carry_padding(self._labelled(self.context._op_add_plain(self, -plain), labels), self)

    def __rsub__(self, other: Any) -> "EncryptedVector":
        plain = self._plain(other, "subtraction")
        labels = self._labels_with(other, "subtraction")
        return self._carry_padding(
            self._labelled(self.context._op_add_plain(self.context._op_neg(self), plain), labels), self)

    def __neg__(self) -> "EncryptedVector":
        return self._carry_padding(self._labelled(self.context._op_neg(self), self.labels), self)

    def __mul__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            self._peer(other, "multiplication")
            labels = self._labels_with(other, "multiplication")
            return self._carry_padding(self._labelled(self.context._op_mul(self, other), labels), self, other)
        plain = self._plain(other, "multiplication")
        labels = self._labels_with(other, "multiplication")
        return self._carry_padding(self._labelled(self.context._op_mul_plain(self, plain), labels), self)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> "EncryptedVector":
        if isinstance(other, EncryptedVector):
            raise self.context._unsupported(
                "division by a ciphertext", "Divide by a plaintext, or approximate 1/x with he_ml.ml.approximate.")
        plain = self._plain(other, "division")
        if np.any(np.asarray(plain) == 0):
            raise ParameterError(f"{self.scheme}: division by zero in the plaintext divisor.")
        labels = self._labels_with(other, "division")
        return self._carry_padding(self._labelled(self.context._op_mul_plain(
            self, 1.0 / np.asarray(plain, dtype=np.float64) if isinstance(plain, np.ndarray) else 1.0 / plain),
            labels), self)

    def __rtruediv__(self, other: Any) -> "EncryptedVector":
        # x / enc (numpy and pandas defer here): a named error instead of Python's bare TypeError
        raise self.context._unsupported(
            "division by a ciphertext", "Divide by a plaintext, or approximate 1/x with he_ml.ml.approximate.")

    def sum(self, axis: int | None = None) -> "EncryptedVector":
        """Encrypted sum of all values (shape (1,)), or along one axis like ``numpy.sum``.

        Parameters
        ----------
        axis : int, optional
            ``None``: every value, an EncryptedVector of shape (1,). An axis of a vector with
            ``ndim >= 2``: the sum along it, of the remaining shape (e.g. ``(n, d)`` with
            ``axis=0`` -> ``(d,)``, the column sums). See :meth:`__getitem__` for which schemes
            can do what: every scheme when the slices along ``axis`` are whole ciphertexts,
            CKKS (rotations) otherwise.

        Raises
        ------
        ShapeMismatchError
            If ``axis`` is out of range for ``shape``.
        UnsupportedOperationError
            If the scheme cannot move values between slots for this layout (BFV, Paillier).
        """
        if self.padding_dirty:
            return self._clean_padding("sum").sum(axis)
        if axis is None or (self.ndim <= 1 and axis in (0, -1)):
            return self.context._op_sum(self)
        k = self._normalize_axis(axis)
        acc = _vector_numpy.sum_axis0_rotations(self) if k == 0 else None
        if acc is None:
            index: list[Any] = [slice(None)] * self.ndim
            for i in range(self.shape[k]):
                index[k] = i
                part = self[tuple(index)]
                acc = part if acc is None else acc + part
        if self.labels is not None and self.labels["kind"] == "frame":
            # like DataFrame.sum(axis): a Series indexed by the other axis
            acc.labels = {"kind": "series", "index": self.labels["columns" if k == 0 else "index"], "name": None}
        return acc

    def dot(self, weights: Any) -> "EncryptedVector":
        """Encrypted inner product with a plaintext vector of the same size: shape (1,).

        With pandas labels on both sides (a vector from `from_pandas` and a Series/DataFrame
        of weights) the labels must match, as ``Series.dot`` requires; differing labels raise
        `LabelMismatchError` (pandas would align them; reindex the weights first).
        """
        w = self._plain(weights, "dot")
        self._labels_with(weights, "dot")
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

    # ------------------------------------------------------------------ padding
    #: True when the unused slots after the values may hold non-zeros (the latency layout's
    #: outputs carry copies of themselves there). Whole-vector reductions then mask first; kept
    #: locally like ``labels`` and carried through every operator (conservatively).
    padding_dirty: bool = False

    @staticmethod
    def _carry_padding(out: "EncryptedVector", *sources: Any) -> "EncryptedVector":
        if any(isinstance(s, EncryptedVector) and s.padding_dirty for s in sources):
            out.padding_dirty = True
        return out

    def _clean_padding(self, what: str) -> "EncryptedVector":
        """This vector with zeros in its unused slots (one plaintext multiplication by ones: the
        encoded ones vector is zero past ``size``), so slot reductions count only the values."""
        if not self.padding_dirty:
            return self
        try:
            out = self.context._op_mul_plain(self, np.ones(self.size))
        except HEError as e:
            raise self.context._unsupported(
                f"{what} of a vector whose unused slots hold copies of its values (a latency-layout "
                f"output)",
                f"Zeroing those slots needs one more level than is left ({e.__class__.__name__}). Decrypt "
                f"the outputs (ctx.decrypt) and reduce them in plaintext, or plan the model's context with "
                f"one more level.") from e
        out.labels = self.labels
        return out

    # ------------------------------------------------------------------ pandas
    #: pandas labels of a vector made by `from_pandas` (kept locally, never serialized).
    labels: dict[str, Any] | None = None

    @classmethod
    def from_pandas(cls, context: "SchemeContext", obj: Any) -> "EncryptedVector":
        """Encrypt a pandas DataFrame or Series and remember its index and columns.

        The labels stay with this Python object and pass through what pandas would keep
        them through: ``+``, ``-``, ``*``, ``/`` with scalars, numpy arrays, pandas objects and
        other encrypted vectors, unary ``-``, positional indexing (like ``DataFrame.iloc``),
        ``sum(axis=0|1)`` and ``mean(axis=...)`` (a Series over the other axis). Two labelled
        operands must have identical labels (pandas would align them; he_ml raises
        `LabelMismatchError` and says how to align). The labels are **not** part of
        ``to_bytes()``, so a server never learns column names or the index. :meth:`to_pandas`
        rebuilds the DataFrame/Series after decryption.

        Parameters
        ----------
        context : SchemeContext
            Any context (a public one is enough to encrypt).
        obj : pandas.DataFrame or pandas.Series
            Numeric values (cast with ``df.astype(float)`` first if needed).

        Raises
        ------
        ParameterError
            If ``obj`` is not a DataFrame/Series, or has non-numeric values.
        """
        kind = _vector_numpy.pandas_kind(obj)
        if kind is None:
            raise ParameterError(f"from_pandas expects a pandas DataFrame or Series; got {type(obj).__name__}. "
                                 f"Use ctx.encrypt(array) for numpy data.")
        vec = context.encrypt(obj.to_numpy())
        vec.labels = ({"kind": "frame", "index": obj.index, "columns": obj.columns} if kind == "frame"
                      else {"kind": "series", "index": obj.index, "name": obj.name})
        return vec

    def to_pandas(self, context: "SchemeContext", like: Any = None) -> Any:
        """Decrypt with ``context`` into a DataFrame/Series with the original index and columns.

        Parameters
        ----------
        context : SchemeContext
            The key holder's context.
        like : pandas.DataFrame or pandas.Series, optional
            Take the labels from this object instead (e.g. for a vector that was reshaped, or
            encrypted with ``ctx.encrypt``).

        Raises
        ------
        ParameterError
            If there are no labels (neither `from_pandas` nor ``like``).
        ShapeMismatchError
            If the labels do not match the decrypted shape.
        SecretKeyMissingError
            If ``context`` cannot decrypt.
        """
        return _vector_numpy.to_pandas(self, context, like)

    # ------------------------------------------------------------------ numpy conventions
    def mean(self, axis: int | None = None) -> "EncryptedVector":
        """Encrypted mean: ``sum(axis)`` times the plaintext ``1 / count`` (see :meth:`sum`).

        On CKKS the product uses one level; on BFV it needs ``1 / count`` to be an integer
        (it is not, unless count is 1), so BFV raises and the key holder divides instead.
        """
        total = self.sum(axis)
        count = self.size if axis is None else self.shape[self._normalize_axis(axis)] if self.ndim > 1 else self.size
        out = total * (1.0 / count)
        out.labels = total.labels
        return out

    def __getattr__(self, name: str) -> Any:
        hint = _vector_numpy.NUMPY_HINTS.get(name)
        if hint is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise _vector_numpy.NoEncryptedAttributeError(f"{self.scheme}: an encrypted array has no {name!r}: {hint}.")

    @property
    def ndim(self) -> int:
        """Number of dimensions of ``shape`` (like ``numpy.ndarray.ndim``)."""
        return len(self.shape)

    def __iter__(self):
        """Iterate over the first axis (``for row in enc``), like a numpy array."""
        for i in range(len(self)):
            yield self[i]

    def _normalize_axis(self, axis: Any) -> int:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ParameterError(f"{self.scheme}: axis must be an int or None; got {axis!r}.")
        if not -self.ndim <= int(axis) < self.ndim:
            raise ShapeMismatchError(
                f"{self.scheme}: axis {axis} is out of bounds for an encrypted array of shape {self.shape} "
                f"(ndim {self.ndim}); use an axis in [{-self.ndim}, {self.ndim - 1}] or None.")
        return int(axis) % self.ndim

    def __getitem__(self, key: Any) -> "EncryptedVector":
        """Select values like numpy indexing: ``e[3]``, ``e[2:5]``, ``e[i, j]``, ``e[:, j]``, masks.

        The result is a new EncryptedVector of the selected values, shaped like
        ``numpy.arange(e.size).reshape(e.shape)[key]`` (an integer index on a 1-D vector gives
        shape ``()``).

        What each scheme can select (values are packed ``slot_count`` to a ciphertext, in
        row-major order):

        * **every scheme**: selections made of whole ciphertexts -- flat ranges that start at
          a multiple of ``slot_count`` and end at one (or at the end of the vector). Free: the
          ciphertexts are reused, nothing is computed.
        * **CKKS**: any selection, by rotating each source ciphertext and masking (one
          rotation and one plaintext multiplication per distinct shift; the mask uses one
          level). Contiguous ranges need at most two shifts per output ciphertext; a column
          ``e[:, j]`` of an ``(n, d)`` vector needs one per row, so at most
          ``he_ml.schemes._vector_numpy.MAX_GATHER_SHIFTS`` (256) rows.
        * **BFV, Paillier**: only whole ciphertexts (BFV here has no rotation keys wired;
          Paillier cannot move a value between the slots of a packed plaintext).

        Raises
        ------
        ShapeMismatchError
            An index out of range, an empty selection.
        ParameterError
            An index numpy cannot apply (e.g. a float), or a vector too large to index
            (more than 2^24 values: encrypt the parts you need separately).
        UnsupportedOperationError
            A selection the scheme cannot make for this packing; the message says which
            selections work.
        """
        positions = _vector_numpy.positions(self, key)
        out = _vector_numpy.select(self, positions.reshape(-1), positions.shape)
        if self.labels is not None:
            labels = _vector_numpy.select_labels(self.labels, key)
            if labels is not None and _vector_numpy.labels_fit(labels, out.shape):
                out.labels = labels
        return self._carry_padding(out, self)

    # ------------------------------------------------------------------ bytes and pickling
    def to_bytes(self, *, sign_with: Any = None) -> bytes:
        """Self-describing, versioned bytes; load with ``ctx.ciphertext_from_bytes``.

        ``sign_with`` (the sender's Ed25519 private key) returns a signed envelope; the receiver
        passes the sender's verification key as ``ciphertext_from_bytes(..., verify_key=...)``,
        which makes the metadata authentic, not only consistent with the context.
        """
        sections = self.context._serialize_chunks(self)
        meta = {"shape": list(self.shape), "meta": self.meta}
        meta.update(self.context._backend_versions())
        data = pack_blob(Kind.CIPHERTEXT, self.scheme, self.context.fingerprint, meta, sections)
        if sign_with is None:
            return data
        from .signing import sign_blob

        return sign_blob(data, sign_with)

    def __reduce__(self):
        return (_unpickle_vector, (self.context.to_bytes(include_secret_key=False), self.to_bytes(),
                                   bool(getattr(self.context, "_allow_insecure", False))))

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
            # worst-case trackers (BFV/Paillier/CKKS "bound", "depth", "terms") combine by max: the
            # largest upper bound holds for every column; the encoding itself (scale, fixed-point
            # bits) must agree
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool) \
                and isinstance(meta[key], (int, float)) and not isinstance(meta[key], bool)
            if key in ("scale", "fixed_point_bits") or not numeric:
                raise ShapeMismatchError(
                    f"stack_columns needs columns with the same encoding; {key!r} differs ({meta[key]!r} vs {value!r}).")
            meta[key] = max(meta[key], value)
    if "columns" in first.meta:
        raise ShapeMismatchError("stack_columns: a column is itself column-stacked; stack plain vectors.")
    meta["columns"] = len(columns)
    return EncryptedVector(first.context, [ct for c in columns for ct in c.chunks], (n, len(columns)), meta)
