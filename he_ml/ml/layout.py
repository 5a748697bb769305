"""Batched layouts of an encrypted design matrix.

Two layouts, each chosen for one job:

``"columns"`` (inference, every scheme)
    One encrypted vector per feature holding that feature for *many samples*
    (chunked over as many ciphertexts as the sample count needs).  A linear
    score ``X @ w + b`` is then ``sum_j w_j * column_j + b``: ``d`` plaintext
    multiplications for thousands of samples at once, no rotations, depth 1.

``"blocks"`` (training, CKKS)
    For each mini-batch of ``B`` samples (``B`` a power of two), one ciphertext
    whose ``slot_count`` slots are split into ``D = slot_count / B`` blocks of
    ``B`` slots; block ``j`` holds feature ``j`` of the batch's samples::

        slot (j * B + i)  =  X[batch_start + i, j]

    Labels use the same layout with ``y`` repeated in every block.  Weights
    live in one ciphertext with ``w_j`` repeated over block ``j``, so
    ``X * W`` is one ciphertext product per batch, the per-sample logits are a
    rotate-and-sum over blocks (``log2 D`` rotations) and per-feature gradients a
    rotate-and-sum inside blocks (``log2 B`` rotations).

Both layouts serialize with `EncryptedFeatures.to_bytes` (what a client uploads) and load
with `EncryptedFeatures.from_bytes` under the same key (a public context is enough).
On BFV the values are quantized to ``round(x * 2**fixed_point_bits)`` and every vector
carries ``meta["fixed_point_bits"]``, so decrypting it gives back real numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidCiphertextError, ParameterError, ShapeMismatchError
from ..schemes._format import pack_blob, unpack_blob, Kind
from ..schemes.base import EncryptedVector, SchemeContext, check_values
from ..schemes.limits import check_int, limit
from .feature_names import record_feature_names

__all__ = ["EncryptedFeatures", "encrypt_features", "block_batch_size", "blocks_needed",
           "DEFAULT_BFV_FEATURE_BITS"]

#: Fractional bits used to quantize features for BFV (integers only): x -> round(x * 2**8).
DEFAULT_BFV_FEATURE_BITS = 8


@dataclass
class EncryptedFeatures:
    """An encrypted design matrix (or label vector) in a batched layout.

    Attributes
    ----------
    context : SchemeContext
    layout : {"columns", "blocks"}
    n_samples, n_features : int
        ``n_features`` is 0 for a label vector.
    vectors : list of EncryptedVector
        "columns": one per feature (length ``n_samples``);
        "blocks": one per mini-batch (length ``context.slot_count``).
    batch_size : int
        "blocks" only: samples per mini-batch ``B`` (power of two).
    fixed_point_bits : int
        BFV only: values were encrypted as ``round(x * 2**fixed_point_bits)``.
    """

    context: SchemeContext
    layout: str
    n_samples: int
    n_features: int
    vectors: list[EncryptedVector]
    batch_size: int = 0
    fixed_point_bits: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_labels(self) -> bool:
        return self.n_features == 0

    @property
    def n_blocks(self) -> int:
        """Feature blocks per ciphertext in the "blocks" layout."""
        return self.context.slot_count // self.batch_size if self.layout == "blocks" else 0

    def batch_rows(self, k: int) -> int:
        """Number of real (non-padding) samples in mini-batch ``k``."""
        return min(self.batch_size, self.n_samples - k * self.batch_size)

    def to_bytes(self) -> bytes:
        """Self-describing bytes (what a client uploads)."""
        meta = {"layout": self.layout, "n_samples": self.n_samples, "n_features": self.n_features,
                "batch_size": self.batch_size, "fixed_point_bits": self.fixed_point_bits}
        return pack_blob(Kind.AGGREGATE, self.context.name, self.context.fingerprint,
                         {"features": meta}, [v.to_bytes() for v in self.vectors])

    @property
    def nbytes(self) -> int:
        """Bytes a client uploads for this data (``len(to_bytes())``)."""
        return len(self.to_bytes())

    @classmethod
    def from_bytes(cls, context: SchemeContext, data: bytes) -> "EncryptedFeatures":
        """Load features serialized by `to_bytes` under ``context``'s key.

        Raises
        ------
        ContextMismatchError
            If the bytes were made under another key or scheme.
        InvalidCiphertextError
            Malformed or inconsistent bytes (layout, sizes, vector count or lengths).
        """
        blob = unpack_blob(data).expect(kind=Kind.AGGREGATE, scheme=context.name,
                                        fingerprint=context.fingerprint, what="encrypted features")
        try:
            m = blob.metadata["features"]
            layout = m["layout"]
            if layout not in ("columns", "blocks"):
                raise ValueError(f"layout must be 'columns' or 'blocks'; got {layout!r:.40}")
            # plain ints within the limits table before any arithmetic (Infinity, floats,
            # strings and 4000-digit integers are refused here, not by an OverflowError later)
            what = "encrypted features"
            n = check_int(m["n_samples"], "vector_values_max", f"{what} n_samples", low=1)
            d = check_int(m["n_features"], "sections_max", f"{what} n_features", low=0)
            b = check_int(m["batch_size"], "vector_values_max", f"{what} batch_size", low=0,
                          high=context.slot_count)
            fp_cap = limit("feature_fixed_point_bits_max") if context.name == "bfv" else 0
            fp = check_int(m["fixed_point_bits"], "feature_fixed_point_bits_max", f"{what} fixed_point_bits",
                           low=0, high=fp_cap)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(f"encrypted features metadata is malformed ({e}).") from None
        if context.name == "bfv" and fp != context_fixed_point_bits(context):
            raise InvalidCiphertextError(
                f"encrypted features say fixed_point_bits={fp}, but the context encodes with "
                f"{context_fixed_point_bits(context)}; the metadata was edited or the features belong "
                f"to another context.")
        if layout == "blocks" and (b < 1 or b & (b - 1) or context.slot_count % b):
            raise InvalidCiphertextError(
                f"encrypted features metadata has batch_size {b}; the blocks layout needs a power of two "
                f"dividing the slot count {context.slot_count}.")
        expected = max(d, 1) if layout == "columns" else -(-n // max(b, 1))
        if len(blob.sections) != expected:
            raise InvalidCiphertextError(
                f"encrypted features hold {len(blob.sections)} vectors; their layout needs {expected}.")
        vectors = [context.ciphertext_from_bytes(s) for s in blob.sections]
        length = n if layout == "columns" else context.slot_count
        bad = [v.size for v in vectors if v.size != length]
        if bad:
            raise InvalidCiphertextError(
                f"encrypted features: every {layout!r} vector must hold {length} values; got sizes {bad[:3]}.")
        return cls(context, layout, n, d, vectors, b, fp)


def _check_matrix(X: Any, scheme: str) -> np.ndarray:
    arr = check_values(X, scheme=scheme, what="X")
    if arr.ndim == 1:
        return arr
    if arr.ndim == 4 and min(arr.shape) > 0:
        # images (n, c, h, w): one column per pixel, flattened in C order (channel, row, column)
        return arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise ShapeMismatchError(
            f"X must be 2-D (n_samples, n_features), images (n, channels, height, width), or 1-D "
            f"labels; got shape {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeMismatchError(f"X must have at least one sample and one feature; got shape {arr.shape}.")
    return arr


def encrypt_features(context: SchemeContext, X: Any, *, layout: str = "columns",
                     batch_size: int | None = None, fixed_point_bits: int | None = None
                     ) -> EncryptedFeatures:
    """Encrypt a design matrix (or labels) in a batched layout chosen for throughput.

    Parameters
    ----------
    context : SchemeContext
        Any scheme for ``"columns"``; CKKS for ``"blocks"``. A public context is enough.
    X : array of shape (n_samples, n_features), or (n_samples,) for labels
        Images ``(n, c, h, w)`` are accepted by the "columns" layout: one encrypted vector per
        pixel, in C order of ``(c, h, w)`` (what `he_ml.ml.from_torch` models expect).
    layout : {"columns", "blocks"}, default "columns"
        "columns" for inference (`decision_function`, `predict_proba`), "blocks" for
        encrypted training (`fit`). See the module docstring.
    batch_size : int, optional
        "blocks" only: samples per mini-batch, a power of two; default: the smallest
        power of two >= n_samples that leaves room for the features (and one intercept
        block), capped by the slot count.
    fixed_point_bits : int, optional
        BFV only. The encoding is the context's (``context.fixed_point_bits``, set with
        ``he_ml.BFV(fixed_point_bits=...)``); passing a different value raises, so that features,
        weights and their products all agree with what the context (and its fingerprint) says.

    Returns
    -------
    EncryptedFeatures

    Raises
    ------
    ShapeMismatchError
        Empty or >2-D input; too many features for one ciphertext in "blocks".
    ParameterError
        Unknown layout, bad batch size, NaN/inf values.
    UnsupportedOperationError
        "blocks" on a scheme without rotations.
    """
    raw_ndim = np.ndim(X)
    arr = _check_matrix(X, context.name)
    if raw_ndim == 4 and layout != "columns":
        raise ShapeMismatchError(f"images (n, c, h, w) use the 'columns' layout; got layout={layout!r}.")
    n = arr.shape[0]
    d = 0 if arr.ndim == 1 else arr.shape[1]
    fp = 0
    if context.name == "bfv":
        fp = context_fixed_point_bits(context)
        if fixed_point_bits is not None and fixed_point_bits != fp:
            raise ParameterError(
                f"fixed_point_bits={fixed_point_bits!r} differs from the context's encoding ({fp} "
                f"fractional bits); the context carries the fixed-point encoding. Create it with "
                f"he_ml.BFV(..., fixed_point_bits={fixed_point_bits!r}) or drop the argument.")
        arr = np.rint(arr * float(1 << fp)).astype(np.int64)
    elif fixed_point_bits is not None:
        raise ParameterError(
            f"fixed_point_bits applies to BFV only; {context.name} encodes real numbers itself.")

    if layout == "columns":
        if batch_size is not None:
            raise ParameterError("batch_size applies to layout='blocks' only; drop it for 'columns'.")
        if d == 0:
            vectors = [context.encrypt(arr)]
        else:
            vectors = [context.encrypt(np.ascontiguousarray(arr[:, j])) for j in range(d)]
        _mark_fixed_point(vectors, context, fp)
        return record_feature_names(EncryptedFeatures(context, "columns", n, d, vectors, 0, fp), X)
    if layout != "blocks":
        raise ParameterError(f"layout must be 'columns' or 'blocks'; got {layout!r}.")
    if "rotate" not in context.capabilities:
        raise context._unsupported(
            "the 'blocks' training layout",
            "It needs slot rotations; use he_ml.CKKS for encrypted training.")
    slots = context.slot_count
    B = block_batch_size(slots, n, d, batch_size)
    D = slots // B
    batches = []
    for start in range(0, n, B):
        rows = arr[start:start + B]
        grid = np.zeros((D, B), dtype=arr.dtype)
        if d == 0:
            grid[:, : rows.shape[0]] = rows[None, :]
        else:
            grid[:d, : rows.shape[0]] = rows.T
        batches.append(context.encrypt(grid.reshape(-1)))
    _mark_fixed_point(batches, context, fp)
    return record_feature_names(EncryptedFeatures(context, "blocks", n, d, batches, B, fp), X)


def context_fixed_point_bits(context: SchemeContext) -> int:
    """The fixed-point fractional bits a BFV context carries (``DEFAULT_BFV_FEATURE_BITS`` if none)."""
    return int(getattr(context, "fixed_point_bits", DEFAULT_BFV_FEATURE_BITS))


def _mark_fixed_point(vectors: list[EncryptedVector], context: SchemeContext, bits: int) -> None:
    """BFV: record the fixed-point scale so that decrypting a vector gives back real numbers."""
    if context.name == "bfv":
        for v in vectors:
            v.meta["fixed_point_bits"] = int(bits)


def blocks_needed(n_features: int) -> int:
    """Blocks one "blocks" ciphertext needs: ``n_features + 1`` (intercept) rounded up to a power of two."""
    return 1 << max(0, int(math.ceil(math.log2(max(int(n_features), 0) + 1))))


def block_batch_size(slots: int, n_samples: int, n_features: int, batch_size: int | None) -> int:
    """Validate or choose the mini-batch size B for the "blocks" layout.

    The ciphertext must hold ``n_features + 1`` blocks (one spare block carries the
    intercept), so ``B <= slots / next_pow2(n_features + 1)``.
    """
    need_blocks = blocks_needed(n_features)
    max_b = slots // need_blocks
    if max_b < 1:
        raise ShapeMismatchError(
            f"{n_features} features (+1 intercept block) do not fit one ciphertext of {slots} slots; "
            f"use a larger ring (he_ml.plan(values=...)) or fewer features.")
    if batch_size is None:
        b = 1 << int(np.ceil(np.log2(max(n_samples, 1))))
        return int(min(b, max_b))
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1 or batch_size & (batch_size - 1):
        raise ParameterError(f"batch_size must be a power of two >= 1; got {batch_size!r}.")
    if batch_size > max_b:
        raise ShapeMismatchError(
            f"batch_size={batch_size} with {n_features} features (+1 intercept block, rounded up to "
            f"{need_blocks} blocks) needs {batch_size * need_blocks} slots; the context has {slots}. "
            f"Use batch_size <= {max_b}.")
    return int(batch_size)
