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

What lives where (the aggregator is split along its seams):

* :mod:`he_ml.aggregation.aggregator` -- the public API: :class:`~he_ml.aggregation.aggregator.GradientAggregator`
  (configuration checks, client side ``encrypt``, server side ``add`` / ``sum`` / ``result``,
  key holder ``decrypt``); its module docstring describes the blob format and hostile blobs;
* :mod:`he_ml.aggregation._aggregate_layout` -- updates as flat vectors: ``flatten_update`` /
  ``unflatten_update`` (arrays and dicts of arrays), the declared ``layout`` and its
  normalisation, ``AGGREGATE_LAYOUT_VERSION``;
* :mod:`he_ml.aggregation._aggregate_validate` -- validation of received blobs (server and key
  holder): the ``_BlobValidation`` mixin of ``GradientAggregator`` (``_parse`` and the
  checks of bounds, counts, encodings and Paillier units), :class:`Rejection`, the
  ``on_invalid`` policies;
* :mod:`he_ml.aggregation._aggregate_pool` -- the multi-process ``sum`` (worker initialiser,
  per-batch partial totals);
* :mod:`he_ml.aggregation._aggregate_params` -- :func:`aggregation_context` and
  ``aggregation_hint``: the smallest parameters per scheme for a workload.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import (
    EncodingOverflowError,
    HEError,
    InvalidCiphertextError,
    ParameterError,
    ShapeMismatchError,
)
from ..schemes._format import Kind, pack_blob, unpack_blob
from ..schemes.base import EncryptedVector, SchemeContext
from ..schemes.limits import check_count, shape_product
from ._aggregate_layout import (  # noqa: F401  (re-exported: the old import path keeps working)
    AGGREGATE_LAYOUT_VERSION,
    _MAX_SPEC_ENTRIES,
    _to_numpy,
    flatten_update,
    unflatten_update,
    _describe,
    _normalize_layout,
    _layout_from_spec,
    _describe_layout,
)
from ._aggregate_validate import (  # noqa: F401  (re-exported: the old import path keeps working)
    ON_INVALID_POLICIES,
    Rejection,
    _Parsed,
    _at_position,
    _check_policy,
    _BlobValidation,
)
from ._aggregate_pool import (  # noqa: F401  (re-exported: the old import path keeps working)
    _WORKER,
    _worker_init,
    _worker_sum,
    _batches,
    _parallel_sum,
)
from ._aggregate_params import (  # noqa: F401  (re-exported: the old import path keeps working)
    aggregation_context,
    _aggregation_parameters,
    aggregation_hint,
)

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


#: Clients assumed by an overflow hint when the aggregator was given no ``max_clients``.
DEFAULT_HINT_CLIENTS = 1024

#: Fractional bits BFV uses to quantize float updates when no ``precision_bits`` is given.
DEFAULT_BFV_PRECISION_BITS = 20


class GradientAggregator(_BlobValidation):
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
        are unaffected. Memory stays bounded: only the running total, this blob and the first
        blob (kept to check that later blobs share its layout) are held.

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

