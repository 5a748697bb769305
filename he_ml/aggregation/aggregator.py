"""Encrypted gradient summation: clients encrypt, an untrusted server sums, the key holder decrypts.

Three roles share one class, distinguished only by the context they hold:

* the **key holder** creates a context (any scheme; :func:`aggregation_context`
  picks the smallest parameters for a workload) and ``GradientAggregator(ctx)``;
  it hands ``ctx.public_context()`` (or its bytes) to everyone else;
* **clients** run ``GradientAggregator(public_ctx).encrypt(update)`` on a numpy
  array of any shape or a dict of arrays (a PyTorch ``state_dict`` / gradients
  through :mod:`he_ml.integrations.torch`) and send the returned bytes;
* the **server** runs ``GradientAggregator(public_ctx)`` and either
  ``sum(blobs)`` (any iterable, consumed one blob at a time) or ``add(blob)``
  repeatedly and ``result()``; it never sees plaintext and never holds more
  than the running total plus the blob being added.

The key holder turns the total back into the original structure with
``decrypt(total, count=n)`` (averaged when ``count`` is given).

Blob format
-----------
An update blob and a total blob are the same thing: an he_ml container
(:mod:`he_ml.schemes._format`, kind ``AGGREGATE``: magic, format version,
scheme id, public-key fingerprint, JSON metadata, sections, CRC-32) whose
*sections are the scheme's ciphertext payload itself* -- the ciphertext is not
wrapped in a second container, so the server parses, checksums and validates
every byte once. The metadata (public) is::

    {"aggregate": 1,                      # version of this metadata layout
     "structure": "array" | "dict",
     "spec": [[key or null, shape], ...], # the clients' arrays, in order
     "count": k,                          # client updates summed in this blob
     "encoding": {...},                   # value encoding (see below)
     "size": total values, "meta": {...}} # the scheme's vector metadata (bounds, scale)

``encoding`` is ``{"kind": "native", "bound": B}`` for CKKS and Paillier (B: the
public bound on one client's |value|, or null), ``{"kind": "fixed", "bits": p}``
for BFV (integers ``round(x * 2**p)``) or ``{"kind": "grid", "step": s}`` for
BFV with differential privacy (the DP grid's integers, exact). A blob from a
newer layout is refused with `InvalidCiphertextError`, never misread.

Hostile blobs
-------------
``add`` validates a blob completely before absorbing it -- every declared size against
:mod:`he_ml.schemes.limits`, every ciphertext (Paillier: in ``Z*_(n^2)``), and the declared
bound against what its count of clients may send -- and refuses the blob itself, naming its
0-based position; ``on_invalid="skip"`` drops it, records a :class:`Rejection` and keeps the
total exact for the accepted blobs. See ``docs/security-limits.md``.
"""
from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
from gmpy2 import gcd as _gcd, mpz as _mpz

from ..errors import (
    ContextMismatchError,
    EncodingOverflowError,
    HEError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
)
from ..schemes._format import Kind, pack_blob, unpack_blob
from ..schemes.base import EncryptedVector, SchemeContext
from ..schemes.limits import check_count, check_int, limit, shape_product

__all__ = [
    "GradientAggregator",
    "aggregation_context",
    "aggregation_hint",
    "flatten_update",
    "unflatten_update",
    "AGGREGATE_LAYOUT_VERSION",
    "DEFAULT_BFV_PRECISION_BITS",
    "Rejection",
    "ON_INVALID_POLICIES",
]

#: Version of the aggregate blob's metadata layout (independent of the container version).
AGGREGATE_LAYOUT_VERSION = 1

#: Clients assumed by an overflow hint when the aggregator was given no ``max_clients``.
DEFAULT_HINT_CLIENTS = 1024

#: Fractional bits BFV uses to quantize float updates when no ``precision_bits`` is given.
DEFAULT_BFV_PRECISION_BITS = 20

_MAX_SPEC_ENTRIES = limit("spec_entries_max")

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


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Array-like (numpy, list, or a torch tensor via duck typing) -> float64 numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"update {name} must be a numeric array; got {type(value).__name__} ({e}). "
            f"Pass numpy arrays (or a dict of them; torch: he_ml.integrations.torch.state_dict_to_numpy)."
        ) from e
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ParameterError(
            f"update {name} contains {bad} NaN/inf value(s); clip or fix the gradients before encrypting "
            f"(e.g. torch.nn.utils.clip_grad_norm_ or np.nan_to_num)."
        )
    return arr


def flatten_update(update: Any) -> tuple[np.ndarray, list[list[Any]], str]:
    """Flatten an array or a dict of arrays into one float64 vector.

    Parameters
    ----------
    update : array-like of any shape, or dict of str to array-like

    Returns
    -------
    flat : ndarray of shape (total,)
    spec : list of [key, shape] in order (key is None for a bare array)
    structure : {"array", "dict"}

    Raises
    ------
    ParameterError
        If a value is not numeric or not finite, a dict key is not a str, or the dict is empty.
    ShapeMismatchError
        If the update holds no values at all.
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
        raise ShapeMismatchError("update has no values; got only empty arrays. Send at least one value.")
    return flat, spec, structure


def unflatten_update(flat: np.ndarray, spec: list[list[Any]], structure: str) -> Any:
    """Inverse of `flatten_update`: a flat vector back to an array or a dict of arrays.

    Raises
    ------
    ShapeMismatchError
        If ``flat`` does not hold exactly the number of values ``spec`` describes.
    """
    sizes = [math.prod(shape) for _, shape in spec]
    if sum(sizes) != flat.size:
        raise ShapeMismatchError(
            f"the layout describes {sum(sizes)} values but the vector holds {flat.size}; pass the spec "
            f"returned by flatten_update for this vector."
        )
    out: dict[Any, np.ndarray] = {}
    pos = 0
    for (key, shape), size in zip(spec, sizes):
        out[key] = flat[pos:pos + size].reshape(shape)
        pos += size
    if structure == "array":
        return out[None]
    return out


def _describe(structure: str, spec: list[list[Any]]) -> str:
    if structure == "array":
        return f"array of shape {tuple(spec[0][1])}"
    items = [f"{k!r}: {tuple(s)}" for k, s in spec[:6]]
    more = f", ... ({len(spec)} arrays)" if len(spec) > 6 else ""
    return "dict {" + ", ".join(items) + more + "}"


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


class GradientAggregator:
    """Sum encrypted updates from many clients; only the key holder sees the (averaged) total.

    Parameters
    ----------
    context : SchemeContext
        Key holder: a context with the secret key (any scheme; see :func:`aggregation_context`).
        Clients and server: ``ctx.public_context()`` (or ``he_ml.load_context`` of its bytes).
    max_clients : int, optional
        Largest number of updates one total may absorb; ``add`` raises `EncodingOverflowError`
        beyond it. For Paillier it must not exceed the context's ``max_additions``; for BFV
        and CKKS it is checked against the plain modulus / first prime when the value bound
        is known.
    max_value : float, optional
        Public bound on ``|value|`` of one client's update (after DP clipping). Clients refuse
        larger values (`EncodingOverflowError`); the server uses it to prove a total cannot
        overflow. Defaults to ``dp.clip_norm`` with DP; otherwise Paillier uses its declared
        ``max_value`` and CKKS/BFV record the smallest power of two >= ``max |x|`` of each
        update (which reveals about log2 of its magnitude -- declare ``max_value`` to avoid it).
    precision_bits : int, optional
        BFV only: floats are quantized to ``round(x * 2**precision_bits)`` (error at most
        ``2**-(precision_bits+1)`` per value and client). Default: the BFV context's
        ``fixed_point_bits`` (``aggregation_context`` sets it to its ``precision_bits``; the
        ``he_ml.BFV()`` presets use 10), so the aggregator and the context planned for it agree. With DP the quantization
        is the DP grid itself (exact) and this is ignored.
    dp : he_ml.aggregation.dp.DPConfig, optional
        Differential privacy. Clients clip to ``dp.clip_norm`` and round to the DP grid; in
        ``"distributed"`` mode each client also adds its noise share before encrypting, so
        nobody ever sees the un-noised sum; in ``"central"`` mode the key holder adds the noise
        in :meth:`decrypt`.
    on_invalid : {"raise", "skip"}, default "raise"
        What :meth:`add` and :meth:`sum` do with a blob that fails validation (malformed, from
        another key, another layout, a declared bound or count beyond what one client may
        send, a ciphertext outside its group). ``"raise"``: raise the he_ml error, naming the
        blob's 0-based position; the running total is untouched, so the caller may catch it and
        go on. ``"skip"``: drop the blob, record a :class:`Rejection` in :attr:`rejected` and
        continue; totals stay exact for the accepted blobs. ``add``/``sum`` take the same keyword
        to override it for one call.

    Attributes
    ----------
    rejected : list of Rejection
        Blobs dropped under ``"skip"`` in the current round: ``add`` appends (index = position
        among the ``add`` calls since :meth:`reset`), ``reset`` clears it, and ``sum`` (a round
        of its own) replaces it with the blobs it dropped (index = position in its iterable).

    Raises
    ------
    ParameterError
        If a parameter is out of range, or ``max_clients`` exceeds the context's headroom.

    Notes
    -----
    The server learns the public metadata of every blob: the structure and shapes, the
    count of updates, the value bound and the scheme's bookkeeping -- never a value.
    Authenticity is out of scope: a client can send a valid encryption of anything under the
    public key (clip *before* encrypting, or use secure aggregation with proofs if clients
    are malicious).

    Examples
    --------
    >>> import numpy as np, he_ml
    >>> ctx = he_ml.aggregation.aggregation_context("bfv", max_clients=8, max_value=10.0)
    >>> key_holder = he_ml.aggregation.GradientAggregator(ctx, max_value=10.0)
    >>> client = server = he_ml.aggregation.GradientAggregator(ctx.public_context(), max_value=10.0)
    >>> blobs = [client.encrypt(np.full((2, 3), float(i))) for i in range(4)]
    >>> key_holder.decrypt(server.sum(blobs), count=4)
    array([[1.5, 1.5, 1.5],
           [1.5, 1.5, 1.5]])
    """

    def __init__(self, context: SchemeContext, *, max_clients: int | None = None,
                 max_value: float | None = None, precision_bits: int | None = None, dp: Any = None,
                 on_invalid: str = "raise", layout: Any = None) -> None:
        if not isinstance(context, SchemeContext):
            raise ParameterError(
                f"GradientAggregator needs an he_ml context (he_ml.CKKS(), he_ml.BFV(), he_ml.Paillier(), "
                f"he_ml.aggregation.aggregation_context(...) or he_ml.load_context(bytes)); "
                f"got {type(context).__name__}."
            )
        if max_clients is not None:
            check_count(max_clients, "max_clients", exc=ParameterError,
                        hint="Pass the number of clients one total may absorb.")
        self.on_invalid = _check_policy(on_invalid)
        if precision_bits is not None and (isinstance(precision_bits, bool) or
                                           not isinstance(precision_bits, (int, np.integer))
                                           or not 0 <= precision_bits <= 52):
            raise ParameterError(f"precision_bits must be an int in [0, 52]; got {precision_bits!r}.")
        if max_value is not None:
            if isinstance(max_value, bool) or not isinstance(max_value, (int, float, np.integer, np.floating)) \
                    or not (math.isfinite(max_value) and max_value > 0):
                raise ParameterError(f"max_value must be a positive finite float; got {max_value!r}.")
            max_value = float(max_value)
        if dp is not None:
            from .dp import DPConfig

            if not isinstance(dp, DPConfig):
                raise ParameterError(
                    f"dp must be a he_ml.aggregation.DPConfig; got {type(dp).__name__}. Create one with "
                    f"DPConfig(clip_norm=..., noise_multiplier=..., mode=..., num_clients=...)."
                )
        self.context = context
        self.max_clients = None if max_clients is None else int(max_clients)
        self.dp = dp
        self.precision_bits = self._context_precision(context) if precision_bits is None else int(precision_bits)
        self.last_release_plan = None  # set by decrypt(..., release_count=) on CKKS
        self.max_value = max_value
        self.layout = _normalize_layout(layout)
        self._scheme = context.name
        self._fingerprint = context.fingerprint
        self._headroom = getattr(context, "max_additions", None) if self._scheme == "paillier" else None
        if self.max_clients is not None and self._headroom is not None and self.max_clients > self._headroom:
            raise ParameterError(
                f"max_clients={self.max_clients} exceeds the paillier context's headroom of "
                f"max_additions={self._headroom}; create the context with max_additions>={self.max_clients} "
                f"(he_ml.aggregation.aggregation_context('paillier', max_clients={self.max_clients}, ...))."
            )
        self._check_declared_headroom()
        self.reset()

    # ------------------------------------------------------------------ configuration checks
    @staticmethod
    def _context_precision(context: SchemeContext) -> int:
        """BFV: the context's fixed-point encoding (one place for the decision); else the default."""
        bits = getattr(context, "fixed_point_bits", None) if context.name == "bfv" else None
        return DEFAULT_BFV_PRECISION_BITS if bits is None else int(bits)

    def _declared_bound(self) -> float | None:
        if self.max_value is not None:
            return self.max_value
        if self.dp is not None:
            # privatize_client_update clips to clip_norm; distributed noise can add a few sigmas
            # per coordinate, so the bound must include it (12 sigma: the discrete Gaussian tail
            # beyond that is below 2**-100).
            extra = 12.0 * self.dp.client_noise_std if self.dp.mode == "distributed" else 0.0
            return self.dp.clip_norm + extra
        return None

    def _check_declared_headroom(self) -> None:
        """Fail at construction when max_clients updates of the declared bound cannot fit."""
        bound = self._declared_bound()
        if bound is not None and self._scheme == "paillier" and bound > float(self.context.max_value):
            raise ParameterError(
                f"paillier: the declared bound |x| <= {bound:g} exceeds the context's max_value="
                f"{float(self.context.max_value):g}; create the context with max_value>={bound:g}."
            )
        if self.max_clients is None or bound is None:
            return
        total = bound * self.max_clients
        if self._scheme == "ckks":
            limit = float(self.context.value_bound)
            if total >= limit:
                raise ParameterError(
                    f"ckks: max_clients={self.max_clients} updates of |x| <= {bound:g} can sum to {total:g}, "
                    f"but this context holds |x| < {limit:g}. Use "
                    f"{aggregation_hint('ckks', max_clients=self.max_clients, max_value=bound)} "
                    f"or fewer clients per total."
                )
        elif self._scheme == "bfv":
            step = self._bfv_step()
            total_int = math.ceil(bound / step) * self.max_clients
            if total_int > self.context.max_value:
                raise ParameterError(
                    f"bfv: max_clients={self.max_clients} updates of |x| <= {bound:g} quantized with step "
                    f"{step:g} sum to integers up to {total_int}, but the plain modulus holds only "
                    f"{self.context.max_value}. Lower precision_bits (now {self.precision_bits}) or use "
                    f"{aggregation_hint('bfv', max_clients=self.max_clients, max_value=bound, precision_bits=self.precision_bits)}."
                )

    def _bfv_step(self) -> float:
        if self.dp is not None:
            return float(self.dp.resolution)
        return 2.0 ** -self.precision_bits

    # ------------------------------------------------------------------ client side
    def encrypt(self, update: Any) -> bytes:
        """Encrypt one client's update into a self-describing blob.

        Parameters
        ----------
        update : array-like of any shape, or dict of str to array-like
            Gradients, a model delta, a ``state_dict`` converted with
            ``he_ml.integrations.torch.state_dict_to_numpy``. With ``dp`` set, it is clipped
            (and, in distributed mode, noised) first.

        Returns
        -------
        bytes
            The blob to send to the server.

        Raises
        ------
        ParameterError
            If the update is not numeric, holds NaN/inf, or is an empty dict.
        ShapeMismatchError
            If the update holds no values.
        EncodingOverflowError
            If a value exceeds ``max_value`` or does not fit the scheme's encoding.
        """
        if self.dp is not None:
            from .dp import privatize_client_update

            if isinstance(update, Mapping):
                update = {k: _to_numpy(v, repr(k)) for k, v in update.items()}
            else:
                update = _to_numpy(update, "array")
            update = privatize_client_update(update, self.dp)
        flat, spec, structure = flatten_update(update)
        vector, encoding = self._encrypt_flat(flat)
        return self._pack(vector, structure, spec, 1, encoding)

    def _value_bound_for(self, flat: np.ndarray) -> float:
        """The public bound recorded for this update; raises if the update exceeds a declared one."""
        peak = float(np.max(np.abs(flat)))
        declared = self._declared_bound()
        if declared is not None:
            if peak > declared:
                raise EncodingOverflowError(
                    f"{self._scheme}: an update value reaches |x| = {peak:.6g}, above the declared bound "
                    f"{declared:.6g} (max_value or DP clip_norm); clip the update (e.g. "
                    f"he_ml.aggregation.clip_l2) or create the aggregator with a larger max_value."
                )
            return declared
        # Smallest power of two >= peak: reveals only about log2 of the magnitude.
        return 2.0 ** math.ceil(math.log2(peak)) if peak > 0 else 1.0

    def _encrypt_flat(self, flat: np.ndarray) -> tuple[EncryptedVector, dict[str, Any]]:
        ctx = self.context
        if self._scheme == "bfv":
            bound = self._value_bound_for(flat)
            if self.dp is not None:
                step = float(self.dp.resolution)
                encoding = {"kind": "grid", "step": step}
            else:
                step = 2.0 ** -self.precision_bits
                encoding = {"kind": "fixed", "bits": self.precision_bits}
            q = np.rint(flat / step)
            int_bound = math.ceil(bound / step)
            if int_bound > ctx.max_value:
                raise EncodingOverflowError(
                    f"bfv: values up to {bound:.6g} quantized with step {step:g} reach {int_bound}, but the "
                    f"plain modulus holds only |x| <= {ctx.max_value}; lower precision_bits (now "
                    f"{self.precision_bits}), clip the update, or use a context with more plain bits "
                    f"({aggregation_hint('bfv', max_clients=self.max_clients or DEFAULT_HINT_CLIENTS, max_value=bound, precision_bits=self.precision_bits)})."
                )
            return ctx.encrypt(q.astype(np.int64), bound=int_bound), encoding
        if self._scheme == "paillier":
            declared = self._declared_bound()
            if declared is not None:
                self._value_bound_for(flat)
            return ctx.encrypt(flat), {"kind": "native", "bound": None}  # the scheme tracks its own bounds
        # CKKS
        bound = self._value_bound_for(flat)
        # the vector's own tracked bound (checked by every addition) is the same public bound
        return ctx.encrypt(flat, bound=bound), {"kind": "native", "bound": bound}

    def _pack(self, vector: EncryptedVector, structure: str, spec: list[list[Any]], count: int,
              encoding: dict[str, Any]) -> bytes:
        meta = {"aggregate": AGGREGATE_LAYOUT_VERSION, "structure": structure, "spec": spec, "count": count,
                "encoding": encoding, "size": vector.size, "meta": vector.meta}
        # The scheme's ciphertext payload goes in as the container's own sections (no nested blob).
        sections = self.context._serialize_chunks(vector)
        return pack_blob(Kind.AGGREGATE, self._scheme, self._fingerprint, meta, sections)

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

    # ------------------------------------------------------------------ server side
    def reset(self) -> None:
        """Forget the running total and the rejections (start a new round)."""
        self._total: EncryptedVector | None = None
        self._first: _Parsed | None = None
        self._count = 0
        self._bound: float | None = 0.0
        self._seen = 0
        self.rejected: list[Rejection] = []

    @property
    def count(self) -> int:
        """Number of client updates in the running total."""
        return self._count

    def add(self, blob: bytes, *, on_invalid: str | None = None) -> bool:
        """Validate one blob (a client update or a partial total) and add it to the running total.

        The blob is validated completely before it touches the total (see :meth:`sum` for the
        list); a bad blob is refused itself and never poisons the total, so the blobs after it
        are unaffected. Memory stays bounded: only the running total and this blob are held.

        Parameters
        ----------
        blob : bytes
        on_invalid : {"raise", "skip"}, optional
            Overrides the aggregator's policy for this call.

        Returns
        -------
        bool
            True if the blob was added; False if it was dropped under ``"skip"`` (then
            :attr:`rejected` ends with its :class:`Rejection`).

        Raises
        ------
        ContextMismatchError
            If the blob was encrypted under another key or scheme.
        InvalidCiphertextError
            If the blob is malformed, truncated, of an unknown layout version, declares sizes
            beyond :mod:`he_ml.schemes.limits`, or holds a ciphertext outside its group.
        ShapeMismatchError
            If its structure, shapes or encoding differ from the blobs added before.
        EncodingOverflowError
            If it declares more than one client's bound per update, or the total would absorb
            more than ``max_clients`` updates or exceed the scheme's headroom.

        Every message starts with ``blob <i>``, the blob's 0-based position among the ``add``
        calls since :meth:`reset`.
        """
        policy = self.on_invalid if on_invalid is None else _check_policy(on_invalid)
        index = self._seen
        self._seen += 1
        try:
            self._absorb(self._parse(blob))
        except HEError as e:
            err = _at_position(e, index)
            if policy == "raise":
                raise err from e
            self.rejected.append(Rejection(index, str(err), err))
            return False
        return True

    def _absorb(self, p: _Parsed) -> None:
        """Add a validated blob; every check runs before any state changes."""
        if self._first is not None and p.layout_key != self._first.layout_key:
            first = self._first
            raise ShapeMismatchError(
                f"update layout {_describe(p.structure, p.spec)} (encoding {p.encoding}) differs from the first "
                f"update's {_describe(first.structure, first.spec)} (encoding {first.encoding}); every client "
                f"must send the same structure, shapes and encoding settings."
            )
        new_count = self._count + p.count
        if self.max_clients is not None and new_count > self.max_clients:
            raise EncodingOverflowError(
                f"this total would hold {new_count} updates but max_clients={self.max_clients}; sum the rest "
                f"into another total (and add the totals at the key holder) or create the aggregator and its "
                f"context for more clients."
            )
        if self._headroom is not None and new_count > self._headroom:
            raise EncodingOverflowError(
                f"paillier: this total would hold {new_count} updates but the context's headroom is "
                f"max_additions={self._headroom} (bits reserved in every packed slot); sum the rest into "
                f"another total, or create the context with max_additions>={new_count}."
            )
        bound = None
        if self._scheme == "ckks":
            # The recorded bound of a blob covers its values (a partial total: the sum of its
            # clients' bounds), so bounds add like the values do.
            b = p.encoding.get("bound")
            bound = None if (b is None or self._bound is None) else self._bound + float(b)
            if bound is not None and bound >= self.context.value_bound:
                raise EncodingOverflowError(
                    f"ckks: this total would hold {new_count} updates whose values can reach {bound:g} in "
                    f"magnitude, but the context holds |x| < {self.context.value_bound:g}; the sum would wrap "
                    f"modulo the first prime. Sum fewer updates per total or use "
                    f"{aggregation_hint('ckks', max_clients=new_count, max_value=float(b) if b else 1.0)} "
                    f"(max_value: one client's bound)."
                )
        try:
            # Same key (fingerprint checked in _parse) and same size (layout checked above), so
            # the scheme's addition hook is called directly, skipping the operator's re-checks.
            total = p.vector if self._total is None else self.context._op_add(self._total, p.vector)
        except EncodingOverflowError as e:
            raise EncodingOverflowError(
                f"adding update {new_count} would overflow the scheme's headroom: {e}"
            ) from e
        if self._first is None:
            self._first = p
        self._total = total
        self._count = new_count
        self._bound = bound

    def result(self) -> bytes:
        """Bytes of the running total (decrypt them with the key holder's :meth:`decrypt`).

        Raises
        ------
        ParameterError
            If nothing was added yet (or every blob was rejected).
        """
        if self._total is None:
            dropped = f" ({len(self.rejected)} blob(s) were rejected; see .rejected)" if self.rejected else ""
            raise ParameterError(f"no update was added yet{dropped}; call add(blob) with a valid blob "
                                 f"before result().")
        self._check_units(self._total, "total")
        first = self._first
        encoding = dict(first.encoding)
        if self._scheme == "ckks":
            encoding["bound"] = self._bound
        return self._pack(self._total, first.structure, first.spec, self._count, encoding)

    def sum(self, blobs: Iterable[bytes], *, processes: int = 1, batch_size: int = 512,
            mp_context: str = "spawn", on_invalid: str | None = None) -> bytes:
        """Sum an iterable of blobs (consumed lazily, one at a time) into a total blob.

        Uses a fresh running total, so it does not disturb ``add``/``result`` state; under
        ``"skip"`` it replaces :attr:`rejected` with the blobs it dropped.

        Each blob is validated completely before it is added: container and checksum, key
        fingerprint and scheme, SEAL serialization version, layout (entries, dimensions and
        their product, capped), count, encoding, the number of ciphertexts, every ciphertext
        (SEAL's own checks against this context; Paillier ``0 < c < n^2`` and a unit), and the
        declared bound against what its count of clients may send.

        Parameters
        ----------
        blobs : iterable of bytes
            Client blobs or partial totals, e.g. a generator reading them from disk or a socket.
        processes : int, default 1
            With more than one, batches of ``batch_size`` blobs are summed in that many worker
            processes (each loads the public context once) and the partial totals are added
            here. At most ``2 * processes`` batches are in flight, so memory stays bounded.
            Worth it for thousands of Paillier blobs; startup costs about a second.
        batch_size : int, default 512
            Blobs per worker task.
        mp_context : {"spawn", "forkserver", "fork"}, default "spawn"
            multiprocessing start method of the workers.
        on_invalid : {"raise", "skip"}, optional
            Overrides the aggregator's policy for this call. ``"skip"`` drops bad blobs, records
            them in :attr:`rejected` (0-based positions in `blobs`) and sums the rest exactly.

        Returns
        -------
        bytes
            The total blob; ``count_of(total)`` tells how many updates it holds.

        Raises
        ------
        ParameterError
            If ``blobs`` is empty (or every blob was dropped), or an option is out of range.
        ContextMismatchError, InvalidCiphertextError, ShapeMismatchError, EncodingOverflowError
            Under ``"raise"``, as for :meth:`add`; the message starts with ``blob <i>``, the
            0-based position of the offending blob in `blobs`.

        Examples
        --------
        >>> import numpy as np, he_ml
        >>> from he_ml.aggregation import GradientAggregator, aggregation_context
        >>> ctx = aggregation_context("bfv", max_clients=8, max_value=1.0)
        >>> server = GradientAggregator(ctx.public_context(), max_value=1.0, on_invalid="skip")
        >>> good = [server.encrypt(np.full(3, 0.5)) for _ in range(3)]
        >>> total = server.sum([good[0], b"garbage", good[1], good[2]])
        >>> [(r.index, type(r.error).__name__) for r in server.rejected]
        [(1, 'InvalidCiphertextError')]
        >>> GradientAggregator(ctx, max_value=1.0).decrypt(total, count=3)
        array([0.5, 0.5, 0.5])
        """
        if isinstance(blobs, (bytes, bytearray, memoryview)):
            raise ParameterError("sum expects an iterable of blobs; got a single bytes object. Use add(blob) "
                                 "or sum([blob]).")
        if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
            raise ParameterError(f"processes must be a positive int; got {processes!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive int; got {batch_size!r}.")
        policy = self.on_invalid if on_invalid is None else _check_policy(on_invalid)
        worker = self._fresh()
        worker.on_invalid = policy
        if processes == 1:
            for blob in blobs:
                worker.add(blob)  # errors and rejections carry worker's index = position in blobs
        else:
            _parallel_sum(self, worker, iter(blobs), int(processes), int(batch_size), mp_context, policy)
        if policy == "skip":
            self.rejected = list(worker.rejected)
        if worker.count == 0:
            if worker.rejected:
                raise ParameterError(f"sum received no valid blobs: all {len(worker.rejected)} were rejected "
                                     f"(see .rejected for each position and reason).")
            raise ParameterError("sum received no blobs; pass at least one client blob.")
        return worker.result()

    def _fresh(self) -> "GradientAggregator":
        return GradientAggregator(self.context, max_clients=self.max_clients, max_value=self.max_value,
                                  precision_bits=self.precision_bits, dp=self.dp, on_invalid=self.on_invalid,
                                  layout=self.layout)

    # ------------------------------------------------------------------ key holder
    def decrypt(self, total: bytes, count: int | None = None, *, release_count: int | None = None,
                security_bits: int = 40) -> Any:
        """Decrypt a total to the clients' structure, divided by ``count`` when given.

        Parameters
        ----------
        total : bytes
            A blob from :meth:`sum` / :meth:`result` (or a single client blob).
        count : int, optional
            Divide by this (usually ``count_of(total)``, the number of clients) to average.
        release_count : int, optional
            The result leaves the key holder: a CKKS total is smudged before decoding
            (:func:`he_ml.aggregation.flooding.smudged_decrypt`, statistical distance
            ``2^-security_bits``) for ``max(release_count, count_of(total))`` contributions;
            ``self.last_release_plan`` then records the smudging and the precision kept. BFV and
            Paillier decrypt exactly. Policies (:class:`~he_ml.aggregation.KeyHolderPolicy`,
            the Flower key holder) pass the proven number of contributions.
        security_bits : int, default 40
            ``lambda`` of the smudging (with ``release_count``).

        Returns
        -------
        ndarray or dict of ndarray
            Same structure and shapes as the clients' updates, float64. In central DP mode the
            key holder's noise is added to the sum before averaging; decrypt each total once
            (every call draws fresh noise, and averaging several releases would weaken the
            guarantee).

        Raises
        ------
        SecretKeyMissingError
            If this aggregator's context has no secret key.
        ParameterError
            If ``count`` is not a positive int.
        ContextMismatchError, InvalidCiphertextError
            As for :meth:`add`.
        """
        if count is not None:
            count = check_count(count, "count", exc=ParameterError,
                                hint="Pass the number of clients to average over, e.g. count_of(total).")
        p = self._parse(total, "total blob")
        self._check_units(p.vector, "total blob")
        if release_count is not None and self.context.name == "ckks":
            from .flooding import smudged_decrypt

            release_count = check_count(release_count, "release_count", exc=ParameterError,
                                        hint="Pass the proven number of contributions in the total.")
            values, self.last_release_plan = smudged_decrypt(self.context, p.vector,
                                                             count=max(int(release_count), int(p.count)),
                                                             security_bits=security_bits)
            flat = np.asarray(values, dtype=np.float64).reshape(-1)
        else:
            flat = np.asarray(self.context.decrypt(p.vector), dtype=np.float64).reshape(-1)
        enc = p.encoding
        if enc["kind"] == "fixed":
            flat = flat * 2.0 ** -int(enc["bits"])
        elif enc["kind"] == "grid":
            flat = flat * float(enc["step"])
        if self.dp is not None:
            if self.dp.mode == "central":
                from .dp import add_central_noise

                flat = np.asarray(add_central_noise(flat, self.dp), dtype=np.float64)
            elif p.count < self.dp.num_clients:
                warnings.warn(
                    f"this total holds {p.count} updates but the DP noise was split over num_clients="
                    f"{self.dp.num_clients}; it carries only {p.count}/{self.dp.num_clients} of the intended "
                    f"noise variance. Wait for more clients or account with the smaller noise.",
                    UserWarning, stacklevel=2)
        if count is not None:
            flat = flat / float(count)
        return unflatten_update(flat, p.spec, p.structure)

    @staticmethod
    def count_of(total: bytes) -> int:
        """Number of client updates summed into ``total`` (public metadata; no key needed).

        Raises
        ------
        InvalidCiphertextError
            If ``total`` is not an aggregate blob.
        """
        blob = unpack_blob(total).expect(kind=Kind.AGGREGATE, what="total blob")
        return check_count(blob.metadata.get("count"), "total blob update count",
                           hint="Re-send the bytes produced by GradientAggregator.")

    @staticmethod
    def layout_of(blob: bytes) -> Any:
        """Structure of the update in a blob: a shape tuple, or a dict key -> shape (public metadata)."""
        meta = unpack_blob(blob).expect(kind=Kind.AGGREGATE, what="blob").metadata
        try:
            spec = meta["spec"]
            if not isinstance(spec, list) or not 1 <= len(spec) <= _MAX_SPEC_ENTRIES:
                raise ValueError(f"spec must be a list of 1..{_MAX_SPEC_ENTRIES} entries")
            for _, shape in spec:
                shape_product(shape, "blob layout shape", allow_zero=True)
            if meta["structure"] == "array":
                return tuple(spec[0][1])
            return {k: tuple(s) for k, s in spec}
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InvalidCiphertextError(f"blob layout metadata is malformed ({e}).") from None


def _at_position(e: HEError, index: int) -> HEError:
    """The same error class, with the 0-based position of the offending blob first."""
    msg = str(e)
    if msg.startswith("blob ") and " of the stream: " in msg[:48]:
        return e  # already positioned (a worker's error)
    try:
        return type(e)(f"blob {index} of the stream: {msg}")
    except Exception:  # pragma: no cover - every he_ml error takes one message
        return e


def _normalize_layout(layout: Any) -> Any:
    """A caller's layout (shape, or mapping key -> shape) as tuples, validated; None stays None."""
    if layout is None:
        return None
    if isinstance(layout, tuple) and layout and all(
            isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in layout):
        layout = dict(layout)  # our own normalized form
    try:
        if isinstance(layout, Mapping):
            if not layout or len(layout) > _MAX_SPEC_ENTRIES or not all(isinstance(k, str) for k in layout):
                raise ValueError("a non-empty mapping of str keys")
            out = tuple((k, tuple(int(d) for d in v)) for k, v in layout.items())
            dims = [d for _, shape in out for d in shape]
        else:
            out = tuple(int(d) for d in layout)
            dims = list(out)
        if any(d < 0 for d in dims):
            raise ValueError("non-negative dimensions")
        return out
    except (TypeError, ValueError) as e:
        raise ParameterError(f"layout must be a shape tuple or a dict of str -> shape (what layout_of returns); "
                             f"got {layout!r:.80} ({e}).") from None


def _layout_from_spec(structure: str, spec: list[list[Any]]) -> Any:
    if structure == "array":
        return tuple(spec[0][1])
    return tuple((k, tuple(s)) for k, s in spec)


def _describe_layout(layout: Any) -> str:
    if layout and isinstance(layout[0], tuple):
        return _describe("dict", [[k, list(s)] for k, s in layout])
    return _describe("array", [[None, list(layout)]])


def _check_policy(on_invalid: Any) -> str:
    if not isinstance(on_invalid, str) or on_invalid not in ON_INVALID_POLICIES:
        raise ParameterError(f"on_invalid must be one of {ON_INVALID_POLICIES}; got {on_invalid!r:.40}. "
                             f"'raise' stops at the first bad blob, 'skip' drops it and records it in .rejected.")
    return on_invalid


# ---------------------------------------------------------------------------- multi-process sum
_WORKER: GradientAggregator | None = None


def _worker_init(context_bytes: bytes, max_clients, max_value, precision_bits, dp=None,
                 allow_insecure: bool = False, on_invalid: str = "raise", layout: Any = None) -> None:
    global _WORKER
    from ..schemes import load_context

    # allow_insecure: the server process's own opt-in (its context was created or loaded with
    # it), passed to its workers; never read from a blob.
    _WORKER = GradientAggregator(load_context(context_bytes, allow_insecure=allow_insecure),
                                 max_clients=max_clients, max_value=max_value,
                                 precision_bits=precision_bits, dp=dp, on_invalid=on_invalid,
                                 layout=None if layout is None else
                                 (dict(layout) if layout and isinstance(layout[0], tuple) else layout))


def _worker_sum(start: int, blobs: list[bytes], policy: str = "raise") -> tuple[bytes | None, list[Rejection]]:
    agg = _WORKER._fresh()
    for i, blob in enumerate(blobs):
        try:
            agg._absorb(agg._parse(blob))
        except HEError as e:
            err = _at_position(e, start + i)
            if policy == "raise":
                raise err from None
            agg.rejected.append(Rejection(start + i, str(err), err))
    return (agg.result() if agg.count else None), agg.rejected


def _batches(it: Iterator[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    start = 0
    while True:
        batch = []
        for blob in it:
            batch.append(blob)
            if len(batch) == size:
                break
        if not batch:
            return
        yield start, batch
        start += len(batch)


def _parallel_sum(owner: GradientAggregator, acc: GradientAggregator, it: Iterator[bytes], processes: int,
                  batch_size: int, mp_context: str, policy: str = "raise") -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    try:
        ctx = mp.get_context(mp_context)
    except ValueError as e:
        raise ParameterError(f"mp_context must be 'spawn', 'forkserver' or 'fork'; got {mp_context!r}.") from e
    public = owner.context.to_bytes(include_secret_key=False)
    pending: deque = deque()
    with cf.ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_worker_init,
                                initargs=(public, owner.max_clients, owner.max_value,
                                          owner.precision_bits, owner.dp,
                                          bool(getattr(owner.context, "_allow_insecure", False)), "raise",
                                          owner.layout)) as pool:

        def collect(future) -> None:
            partial, rejected = future.result()
            acc.rejected.extend(rejected)
            if partial is not None:
                acc.add(partial, on_invalid="raise")  # our own workers' totals

        try:
            for start, batch in _batches(it, batch_size):
                pending.append(pool.submit(_worker_sum, start, batch, policy))
                while len(pending) >= 2 * processes:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        except BaseException:
            for f in pending:
                f.cancel()
            raise


# ---------------------------------------------------------------------------- parameter choice
#: Sum-only CKKS chains for released totals (128-bit: 180 and 218 bits <= 218 at n = 8192):
#: two, then three 60-bit data primes; the last prime is SEAL's special prime (no keys use it).
_CKKS_RELEASE_CHAINS = ((8192, (60, 60, 60)), (8192, (60, 60, 60, 38)))


def aggregation_context(scheme: str = "paillier", *, max_clients: int = 1024, max_value: float = 1.0,
                        precision_bits: int = 24, key_bits: int = 3072) -> SchemeContext:
    """A key-holder context with the fewest bytes per value for summing ``max_clients`` updates.

    All parameter sets give 128-bit classical security (HE standard table for CKKS/BFV,
    NIST SP 800-57 for Paillier); nothing is weakened to save bytes.

    Parameters
    ----------
    scheme : {"paillier", "bfv", "ckks"}, default "paillier"
    max_clients : int, default 1024
        Updates one total may absorb.
    max_value : float, default 1.0
        Bound on |value| of one client's update (pass the same ``max_value`` to the
        aggregators; with DP use ``clip_norm``).
    precision_bits : int, default 24
        Fractional bits kept per value and client: Paillier and BFV quantize with step
        ``2**-precision_bits``; CKKS gets a scale with at least this many bits above its noise.
    key_bits : int, default 3072
        Paillier modulus size (3072: 128-bit security).

    Returns
    -------
    SchemeContext
        With the secret key; hand ``ctx.public_context()`` to clients and the server.

    Raises
    ------
    ParameterError
        If no 128-bit parameter set of the scheme fits the request (the message suggests one).

    Notes
    -----
    Bytes per value (ciphertext payload, large vectors; measured, see
    ``benchmarks/bench_aggregation.py``):

    * **paillier**: ``Paillier(key_bits, preset="sum")`` with ``max_additions=max_clients``;
      slot bits ``1 + ceil(log2(max_value * 2**precision_bits * max_clients))``, one 768-byte
      ciphertext per ``3070 // slot_bits`` values -- 11.6 B/value at (1024, 1024, 24 bits),
      about 8.4 B/value at (100 clients, |x| <= 1, 24 bits).
    * **bfv**: n = 4096, coefficient modulus [60, 49] (109 bits, the 128-bit maximum; a
      ciphertext carries only the 60-bit data prime), plain modulus of
      ``2 + ceil(log2(max_clients * max_value * 2**precision_bits))`` bits (<= 39); 4096 values
      per 65.7 kB ciphertext = 16 B/value. Larger requests use n = 8192, [60, 60, 60] (32 B/value).
    * **ckks**: released totals are smudged for 2^-40 statistical distance
      (:mod:`he_ml.aggregation.flooding`), which needs a scale of ~90 bits above the precision:
      n = 8192 with two 60-bit data primes ([60, 60, 60], 64 B/value) when they keep
      ``precision_bits`` after smudging (about 22 bits at 100 clients), else three
      ([60, 60, 60, 38], 96 B/value); ``wide_scale=True`` (the scale spans the data primes).
      BFV is exact and 4-6x smaller: prefer it for released sums.

    The schemes' own ``"sum"`` presets (CKKS n=8192 [60,40,60]: 57 B/value; BFV n=8192, 4 data
    primes: 53 B/value) keep room for other operations; for pure summation these sets are
    2-3.5x smaller.
    """
    from .. import schemes

    name, kwargs = _aggregation_parameters(scheme, max_clients=max_clients, max_value=max_value,
                                           precision_bits=precision_bits, key_bits=key_bits)
    return getattr(schemes, name)(**kwargs)


def _aggregation_parameters(scheme: str, *, max_clients: int, max_value: float, precision_bits: int,
                            key_bits: int) -> tuple[str, dict[str, Any]]:
    """The parameter choice of `aggregation_context` without key generation (also used by hints)."""
    if isinstance(max_clients, bool) or not isinstance(max_clients, (int, np.integer)) or max_clients < 1:
        raise ParameterError(f"max_clients must be a positive int; got {max_clients!r}.")
    if not (isinstance(max_value, (int, float, np.integer, np.floating)) and math.isfinite(max_value) and max_value > 0):
        raise ParameterError(f"max_value must be a positive finite float; got {max_value!r}.")
    if isinstance(precision_bits, bool) or not isinstance(precision_bits, (int, np.integer)) \
            or not 1 <= precision_bits <= 52:
        raise ParameterError(f"precision_bits must be an int in [1, 52]; got {precision_bits!r}.")
    scheme = str(scheme).lower()
    growth = math.log2(max_clients * float(max_value))  # magnitude bits of the largest possible sum
    if scheme == "paillier":
        return "Paillier", dict(key_bits=key_bits, preset="sum", precision_bits=int(precision_bits),
                                max_value=float(max_value), max_additions=int(max_clients))
    if scheme == "bfv":
        t_bits = 2 + math.ceil(growth + precision_bits)
        t_bits = max(t_bits, 14)  # a batching prime = 1 mod 2n needs more bits than 2n
        # Fresh noise at n=4096, q=60 bits takes ~7 bits and summing k ciphertexts adds log2(k).
        if t_bits <= 39 and t_bits + 8 + math.log2(max_clients) <= 58:
            return "BFV", dict(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[60, 49],
                               plain_modulus_bits=t_bits, fixed_point_bits=int(precision_bits), relin_keys=False)
        if t_bits <= 60 and t_bits + 8 + math.log2(max_clients) <= 118:
            return "BFV", dict(preset=None, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 60, 60],
                               plain_modulus_bits=min(t_bits + 0, 60), fixed_point_bits=int(precision_bits),
                               relin_keys=False)
        raise ParameterError(
            f"bfv: {max_clients} clients x |x| <= {max_value:g} at {precision_bits} fractional bits need a "
            f"{t_bits}-bit plain modulus, more than BFV's 60; lower precision_bits or use 'paillier'."
        )
    if scheme == "ckks":
        # A CKKS total leaves the key holder smudged (he_ml.aggregation.flooding): 2^-40 statistical
        # distance needs coefficient noise ~2^(lambda + log2(n B_ct)), so the scale spans all data
        # primes of a sum-only chain (wide_scale) and sits precision_bits above the smudged error.
        from .committee_lattice import ciphertext_noise_bound, slot_error_bound, smudging_width
        from .flooding import DEFAULT_SECURITY_BITS as lam

        value_bits = max(0, math.ceil(growth))
        best = 0.0
        for n, bits in _CKKS_RELEASE_CHAINS:
            data = bits[:-1]
            q_bits = sum(data) - len(data)  # every prime > 2^(bits-1): log2 Q > this
            b_ct = ciphertext_noise_bound(n, int(max_clients))
            b = smudging_width(n, b_ct, lam)
            tail_bits = math.log2(slot_error_bound(n, b, b_ct, lam))  # smudged slot error x 2**scale
            top = q_bits - 2 - value_bits  # largest scale with |sum| * 2**scale < Q / 4
            # the smallest scale that keeps precision_bits (+1 spare) leaves the most headroom for values
            scale = min(top, math.ceil(precision_bits + tail_bits) + 1)
            prec = scale - tail_bits
            best = max(best, top - tail_bits)
            if prec >= precision_bits and b + 3 <= q_bits:
                return "CKKS", dict(preset=None, poly_modulus_degree=n, coeff_mod_bit_sizes=list(bits),
                                    scale_bits=int(scale), relin_keys=False, wide_scale=True)
        raise ParameterError(
            f"ckks: {max_clients} clients x |x| <= {max_value:g} keep at most {best:.1f} bits of precision "
            f"after the release smudging (2^-{lam} statistical distance) with 128-bit parameters, < "
            f"{precision_bits}; ask for fewer precision_bits or use 'bfv' or 'paillier' (exact)."
        )
    raise ParameterError(f"scheme must be 'paillier', 'bfv' or 'ckks'; got {scheme!r}.")


def aggregation_hint(scheme: str, *, max_clients: int, max_value: float, precision_bits: int = 24) -> str:
    """An ``aggregation_context(...)`` call that fits, trying `scheme` first (no keys are made).

    Error messages use it so that following their advice works: the call is only suggested if
    `_aggregation_parameters` accepts it; otherwise the other schemes are tried in the order
    bfv, paillier (exact), and as a last resort fewer clients per total.
    """
    precision_bits = int(min(max(precision_bits, 1), 52))
    for s in dict.fromkeys([scheme, "bfv", "paillier"]):
        try:
            _aggregation_parameters(s, max_clients=int(max_clients), max_value=float(max_value),
                                    precision_bits=precision_bits, key_bits=3072)
        except ParameterError:
            continue
        return (f"aggregation_context({s!r}, max_clients={int(max_clients)}, max_value={float(max_value):g}, "
                f"precision_bits={precision_bits})")
    return "fewer clients per total (sum the rest into another total and add the totals at the key holder)"
