"""Encrypted gradient summation: clients encrypt, an untrusted server sums, the key holder decrypts.

Three roles share one class, distinguished only by the context they hold:

* the **key holder** creates a context (any scheme) and ``GradientAggregator(ctx)``;
  it hands ``ctx.public_context()`` (or its bytes) to everyone else;
* **clients** run ``GradientAggregator(public_ctx).encrypt(update)`` on a numpy
  array of any shape or a dict of arrays (a PyTorch ``state_dict`` / gradients)
  and send the returned bytes;
* the **server** runs ``GradientAggregator(public_ctx)`` and either
  ``sum(blobs)`` (any iterable, consumed one blob at a time) or ``add(blob)``
  repeatedly and ``result()``; it never sees plaintext and never holds more
  than the running total plus the blob being added.

The key holder turns the total back into the original structure with
``decrypt(total, count=n)`` (averaged when ``count`` is given).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import (
    ContextMismatchError,
    EncodingOverflowError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
)
from ..schemes._format import Kind, pack_blob, unpack_blob
from ..schemes.base import EncryptedVector, SchemeContext

__all__ = ["GradientAggregator", "flatten_update", "unflatten_update"]

#: Fixed-point fractional bits used to quantize float updates for BFV (exact integers).
DEFAULT_BFV_PRECISION_BITS = 16


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Array-like (numpy, list, or a torch tensor via duck typing) -> float64 numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"update {name} must be a numeric array; got {type(value).__name__} ({e}). "
            f"Pass numpy arrays (or a dict of them)."
        ) from e
    if not np.all(np.isfinite(arr)):
        raise ParameterError(
            f"update {name} contains NaN or inf; clip or fix the gradients before encrypting "
            f"(e.g. torch.nn.utils.clip_grad_norm_ or np.nan_to_num)."
        )
    return arr


def flatten_update(update: Any) -> tuple[np.ndarray, list[list[Any]], str]:
    """Flatten an array or a dict of arrays into one float64 vector.

    Returns
    -------
    flat : ndarray of shape (total,)
    spec : list of [key, shape] in order (key is None for a bare array)
    structure : "array" or "dict"
    """
    if isinstance(update, Mapping):
        if not update:
            raise ParameterError("update dict is empty; pass at least one array.")
        spec, parts = [], []
        for key, value in update.items():
            if not isinstance(key, str):
                raise ParameterError(f"update dict keys must be str; got {type(key).__name__} {key!r}.")
            arr = _to_numpy(value, repr(key))
            spec.append([key, list(arr.shape)])
            parts.append(arr.reshape(-1))
        flat = np.concatenate(parts)
        structure = "dict"
    else:
        arr = _to_numpy(update, "array")
        spec = [[None, list(arr.shape)]]
        flat = arr.reshape(-1)
        structure = "array"
    if flat.size == 0:
        raise ShapeMismatchError("update has no values; got only empty arrays.")
    return flat, spec, structure


def unflatten_update(flat: np.ndarray, spec: list[list[Any]], structure: str) -> Any:
    """Inverse of `flatten_update`."""
    out: dict[str, np.ndarray] = {}
    pos = 0
    for key, shape in spec:
        size = int(np.prod(shape, dtype=np.int64)) if shape else 1
        out[key] = flat[pos:pos + size].reshape(shape)
        pos += size
    if pos != flat.size:
        raise InvalidCiphertextError(f"aggregate holds {flat.size} values but its layout describes {pos}.")
    if structure == "array":
        return out[None]
    return out


class GradientAggregator:
    """Sum encrypted updates from many clients; only the key holder sees the (averaged) total.

    Parameters
    ----------
    context : SchemeContext
        Key holder: a context with the secret key. Clients and server: ``ctx.public_context()``
        (or an ``he_ml.load_context`` of its bytes).
    max_clients : int, optional
        Largest number of updates one total may absorb. Checked on every ``add``; for
        packed Paillier it must not exceed the context's declared headroom.
    dp : he_ml.aggregation.dp.DPConfig, optional
        Differential privacy: clients clip to ``dp.clip_norm`` and, in ``"distributed"``
        mode, add their share of Gaussian noise before encrypting; in ``"central"`` mode the
        key holder adds the noise after decrypting.
    precision_bits : int, default 16
        BFV only: float updates are quantized to integers ``round(x * 2**precision_bits)``.
    max_value : float, optional
        BFV only: the declared public bound on |update value| (after clipping) used for
        overflow tracking; defaults to ``dp.clip_norm`` when DP is on, otherwise it is derived
        from the data (revealing its power-of-two magnitude).

    Raises
    ------
    ParameterError
        If ``max_clients`` or ``precision_bits`` is out of range.

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> ctx = he_ml.CKKS(preset="sum")
    >>> key_holder = he_ml.aggregation.GradientAggregator(ctx)
    >>> client = server = he_ml.aggregation.GradientAggregator(ctx.public_context())
    >>> blobs = [client.encrypt(np.full((2, 3), float(i))) for i in range(4)]
    >>> key_holder.decrypt(server.sum(blobs), count=4).round(3)  # doctest: +SKIP
    array([[1.5, 1.5, 1.5], [1.5, 1.5, 1.5]])
    """

    def __init__(self, context: SchemeContext, *, max_clients: int | None = None, dp: Any = None,
                 precision_bits: int = DEFAULT_BFV_PRECISION_BITS, max_value: float | None = None) -> None:
        if not isinstance(context, SchemeContext):
            raise ParameterError(
                f"GradientAggregator needs an he_ml context (he_ml.CKKS(), he_ml.BFV(), he_ml.Paillier() "
                f"or he_ml.load_context(bytes)); got {type(context).__name__}."
            )
        if max_clients is not None and (not isinstance(max_clients, (int, np.integer)) or max_clients < 1):
            raise ParameterError(f"max_clients must be a positive int; got {max_clients!r}.")
        if not isinstance(precision_bits, (int, np.integer)) or not 0 <= precision_bits <= 40:
            raise ParameterError(f"precision_bits must be an int in [0, 40]; got {precision_bits!r}.")
        if max_value is not None and not (math.isfinite(max_value) and max_value > 0):
            raise ParameterError(f"max_value must be a positive finite float; got {max_value!r}.")
        self.context = context
        self.max_clients = None if max_clients is None else int(max_clients)
        self.dp = dp
        self.precision_bits = int(precision_bits)
        self.max_value = max_value
        self._total: EncryptedVector | None = None
        self._layout: tuple[str, list[list[Any]]] | None = None
        self._count = 0
        if self.max_clients is not None:
            limit = getattr(context, "max_additions", None)
            if limit is not None and self.max_clients > limit:
                raise ParameterError(
                    f"max_clients={self.max_clients} exceeds the context's headroom of {limit} additions; "
                    f"create the context with max_additions >= {self.max_clients}."
                )

    # ------------------------------------------------------------------ client side
    def encrypt(self, update: Any) -> bytes:
        """Encrypt one client's update (array of any shape or dict of arrays) into bytes.

        Applies DP clipping and distributed noise first when a ``dp`` config is set.

        Raises
        ------
        ParameterError
            If the update is not numeric or holds NaN/inf.
        EncodingOverflowError
            If a value does not fit the scheme's encoding.
        """
        if self.dp is not None:
            from .dp import privatize_client_update

            update = privatize_client_update(update, self.dp)
        flat, spec, structure = flatten_update(update)
        values, kwargs = self._encode(flat)
        vector = self.context.encrypt(values, **kwargs)
        meta = {"structure": structure, "spec": spec, "count": 1, "encoding": self._encoding_meta()}
        return pack_blob(Kind.AGGREGATE, self.context.name, self.context.fingerprint, meta,
                         [vector.to_bytes()])

    def _encoding_meta(self) -> dict[str, Any]:
        if self.context.name == "bfv":
            return {"kind": "fixed", "precision_bits": self.precision_bits}
        return {"kind": "native"}

    def _encode(self, flat: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Scheme-specific encoding of a flat float update; returns (values, encrypt kwargs)."""
        if self.context.name != "bfv":
            return flat, {}
        scale = float(1 << self.precision_bits)
        q = np.rint(flat * scale)
        if np.any(np.abs(q) >= 2.0 ** 62):
            raise EncodingOverflowError(
                f"bfv: update values up to {np.abs(flat).max():.3g} do not fit 62-bit integers at "
                f"precision_bits={self.precision_bits}; lower precision_bits or clip the update."
            )
        ints = q.astype(np.int64)
        bound = self.max_value if self.max_value is not None else (
            self.dp.clip_norm if self.dp is not None else None)
        if bound is not None:
            int_bound = int(math.ceil(bound * scale))
            if np.any(np.abs(ints) > int_bound):
                raise EncodingOverflowError(
                    f"bfv: an update value exceeds the declared max_value={bound} "
                    f"(max |x| = {np.abs(flat).max():.6g}); clip the update or raise max_value."
                )
            return ints, {"bound": int_bound}
        return ints, {}

    # ------------------------------------------------------------------ server side
    def _parse(self, blob: bytes) -> tuple[EncryptedVector, str, list[list[Any]], int, dict[str, Any]]:
        parsed = unpack_blob(blob).expect(kind=Kind.AGGREGATE, scheme=self.context.name,
                                          fingerprint=self.context.fingerprint, what="update blob")
        meta = parsed.metadata
        try:
            structure = meta["structure"]
            spec = [[k, [int(s) for s in shape]] for k, shape in meta["spec"]]
            count = int(meta["count"])
            encoding = dict(meta["encoding"])
            if structure not in ("array", "dict") or count < 1 or len(parsed.sections) != 1:
                raise ValueError("bad structure, count or section count")
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(
                f"update blob metadata is malformed ({e}); re-send the bytes from GradientAggregator.encrypt."
            ) from e
        vector = self.context.ciphertext_from_bytes(parsed.sections[0])
        expected = sum(int(np.prod(s, dtype=np.int64)) if s else 1 for _, s in spec)
        if vector.size != expected:
            raise InvalidCiphertextError(
                f"update blob describes {expected} values but carries {vector.size}; the blob was altered."
            )
        return vector, structure, spec, count, encoding

    def add(self, blob: bytes) -> None:
        """Add one client's blob to the running total (streaming: O(1) blobs held).

        Raises
        ------
        ContextMismatchError
            If the blob was encrypted under another key or scheme.
        InvalidCiphertextError
            If the blob is malformed or truncated.
        ShapeMismatchError
            If its layout differs from the blobs added before.
        EncodingOverflowError
            If the total would absorb more than ``max_clients`` updates (or the scheme's headroom).
        """
        vector, structure, spec, count, encoding = self._parse(blob)
        layout = (structure, spec, encoding)
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            raise ShapeMismatchError(
                f"update layout {self._describe(layout)} differs from the first update's "
                f"{self._describe(self._layout)}; every client must send the same structure and shapes."
            )
        new_count = self._count + count
        if self.max_clients is not None and new_count > self.max_clients:
            raise EncodingOverflowError(
                f"this total would hold {new_count} updates but max_clients={self.max_clients}; "
                f"sum in several totals or create the aggregator (and context headroom) for more clients."
            )
        self._total = vector if self._total is None else self._total + vector
        self._count = new_count

    @staticmethod
    def _describe(layout) -> str:
        structure, spec, _ = layout
        if structure == "array":
            return f"array of shape {tuple(spec[0][1])}"
        return "dict {" + ", ".join(f"{k!r}: {tuple(s)}" for k, s in spec) + "}"

    @property
    def count(self) -> int:
        """Number of client updates in the running total."""
        return self._count

    def result(self) -> bytes:
        """Bytes of the running total (decrypt with the key holder's ``decrypt``)."""
        if self._total is None:
            raise ParameterError("no update was added yet; call add(blob) at least once before result().")
        structure, spec, encoding = self._layout
        meta = {"structure": structure, "spec": spec, "count": self._count, "encoding": encoding}
        return pack_blob(Kind.AGGREGATE, self.context.name, self.context.fingerprint, meta,
                         [self._total.to_bytes()])

    def reset(self) -> None:
        """Forget the running total (start a new round)."""
        self._total, self._layout, self._count = None, None, 0

    def sum(self, blobs: Iterable[bytes]) -> bytes:
        """Sum an iterable of blobs (consumed one at a time) into a total blob.

        Uses a fresh running total, so it does not disturb ``add``/``result`` state.
        """
        worker = GradientAggregator(self.context, max_clients=self.max_clients,
                                    precision_bits=self.precision_bits, max_value=self.max_value)
        for blob in blobs:
            worker.add(blob)
        return worker.result()

    # ------------------------------------------------------------------ key holder
    def decrypt(self, total: bytes, count: int | None = None) -> Any:
        """Decrypt a total to the clients' structure, divided by ``count`` when given.

        Raises
        ------
        SecretKeyMissingError
            If this aggregator's context has no secret key.
        ParameterError
            If ``count`` is not a positive int.
        """
        if count is not None and (not isinstance(count, (int, np.integer)) or count < 1):
            raise ParameterError(f"count must be a positive int (number of clients); got {count!r}.")
        vector, structure, spec, _, encoding = self._parse(total)
        flat = np.asarray(self.context.decrypt(vector), dtype=np.float64).reshape(-1)
        if encoding.get("kind") == "fixed":
            flat = flat / float(1 << int(encoding["precision_bits"]))
        if self.dp is not None and getattr(self.dp, "mode", None) == "central":
            from .dp import add_central_noise

            flat = np.asarray(add_central_noise(flat, self.dp), dtype=np.float64)
        if count is not None:
            flat = flat / count
        return unflatten_update(flat, spec, structure)

    @staticmethod
    def count_of(total: bytes) -> int:
        """Number of client updates summed into ``total`` (public metadata)."""
        try:
            return int(unpack_blob(total).metadata["count"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidCiphertextError(f"blob has no valid update count ({e}).") from e

