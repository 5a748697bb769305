r"""Latency layout: one sample packed into one CKKS ciphertext.

The throughput layout (:func:`he_ml.ml.encrypt_features`) puts *one feature of many samples*
in each ciphertext: unbeatable per sample, but a single query still costs one ciphertext per
feature.  The latency layout is the converse: all features of **one sample** live in the
slots of **one** ciphertext, and every affine layer is a matrix-vector product computed with
slot rotations by the diagonal method of Halevi and Shoup, organised as baby-step giant-step.

Layouts
-------
A vector of ``m`` values is held at slot positions ``pos[0..m-1]`` (distinct, ``< period``)
and *replicated* with a power-of-two ``period`` over all slots: slot ``t`` holds the value at
``t mod period``.  Replication turns a rotation of the whole ciphertext into a cyclic rotation
of the period-``P`` vector, which is what the diagonal method needs.  The client encrypts the
flattened sample at positions ``0..d-1`` with period ``next_pow2(d)``.

Diagonal method (Halevi–Shoup 2014, section 4.1; BSGS as in Halevi–Shoup 2018, section 4.2)
-----------------------------------------------------------------------------------------
For input ``x`` (period ``P_in``) and weights ``W`` every layer computes
``z = sum_k d_k * rot(x, k)`` (``*`` slot-wise, ``rot(v, k)[t] = v[t + k]``) for a set of
*generalized diagonals* ``d_k`` (plaintext vectors).  Each non-zero ``W[o, f]`` is placed in
exactly one ``(k, t)``: ``d_k[t] = W[o, f]`` with ``t + k = pos_in[f] (mod P_in)``.  Two
placements are used:

* **contiguous output** ("hybrid", GAZELLE, Juvekar et al. 2018, section 5.2): outputs at
  positions ``0..n_out-1`` with period ``P_out = next_pow2(n_out)``.  If ``P_in > P_out``:
  ``k = (pos_in[f] - o) mod P_out`` and ``t = pos_in[f] - k``, so at most ``P_out`` diagonals,
  followed by ``log2(P_in / P_out)`` rotate-and-add steps that fold the partial sums
  ``z[o + j P_out]`` into ``y[o]``.  Otherwise ``t = o`` and ``k = (pos_in[f] - o) mod P_in``: at
  most ``P_in`` diagonals, no folding (the input's replication does the work);
* **scattered output** (convolutions and pooling, the LoLa idea of keeping the natural layout,
  Brutzkus et al. 2019, section 4): output ``(c, i, j)`` is placed at the input position of its
  window's top-left corner plus a per-channel offset, so ``k`` depends only on the kernel tap and
  the channel pair: ``C_out * C_in * kh * kw`` diagonals (125 for the CryptoNets convolution
  instead of ~1000), no rotate-and-add, and the next layer reads the scattered positions.

Baby-step giant-step: with ``k = g * j + i`` (``0 <= i < g``),
``z = sum_j rot( sum_i rot(d_{gj+i}, -g j) * rot(x, i), g j )``, so only the distinct baby
steps ``i`` and giant steps ``g j`` are rotations (``g`` chosen per layer to minimise rotations
plus new keys).  All products of a layer sit at the same level, so an affine layer costs one
multiplicative level; consecutive affine layers (e.g. ``Flatten`` + ``Dense``, ``Conv2d`` +
``AvgPool2d``) are fused first (one level for the group).

Rotation keys: exactly the union of the baby, giant and rotate-and-add steps of all layers
(:attr:`LatencyModel.rotation_steps`); :meth:`LatencyModel.context` generates those and no
others (SEAL's default power-of-two set is not generated).

Activations: ``square`` is one ciphertext product (``x * x``), polynomials use the
minimal-depth evaluator of :mod:`he_ml.ml.polynomial` (``poly.evaluate``); both act slot-wise,
so layouts pass through unchanged.  Slots outside a layout carry zeros (or ``p(0)`` after a
polynomial); no diagonal ever reads them, so they never reach a result.

Magnitude bounds: the CKKS tracker bounds every vector by one public number over all slots and
refuses an operation whose bound would exceed its level.  Its interval arithmetic over BSGS sums
is loose, so every affine stage states, after each addition, the per-slot bound it can prove
(``max_t sum_k |d_k[t]| B`` plus the CKKS error, see ``LatencyModel._apply_linear``); the planner
(``LatencyModel.context``) runs the same code on bounds alone and plans for exactly those.

Layer records
-------------
Layers are the records of the model IR (:mod:`he_ml.ml.ir`): ``Dense(weight, bias)``,
``Conv2d(weight, bias, stride, padding, input_shape)``, ``AvgPool2d(kernel, stride, padding,
input_shape, count_include_pad)``, ``Flatten(input_shape)`` and ``Activation(kind, name,
poly)``.  They are recognised by class name and fields (this module never imports a
framework), and convolutions are lowered to dense matrices by :func:`dense_matrix`, which
follows PyTorch's ``conv2d`` / ``avg_pool2d`` semantics exactly like ``ir.to_dense``.

Threat model
------------
The server holds the public context (public, relinearization and the listed rotation keys)
and the plaintext model; it learns nothing about the sample beyond its size (CKKS IND-CPA,
128-bit parameters).  The client learns the decrypted outputs; the other slots of the result
hold copies of the outputs (and zeros), nothing about the weights beyond what the outputs
reveal.  Because of those copies the result is marked ``padding_dirty``: ``sum``/``mean`` on it
(or on anything computed from it) first zero the other slots with one plaintext
multiplication, and refuse with advice when no level is left for it.  CKKS decryptions leak noise, which can matter against an adversary who receives
decryptions of chosen computations (Li–Micciancio 2021); here only the key holder decrypts.

What lives where (the latency layout is split along its seams):

* :mod:`he_ml.ml.latency` -- the public API: :class:`~he_ml.ml.latency.LatencyModel` (stage
  assembly, parameter / context planning, encrypted evaluation) and
  :func:`~he_ml.ml.latency.encrypt_sample`; its module docstring describes the layouts, the
  diagonal method and the threat model;
* :mod:`he_ml.ml._latency_lowering` -- size limits, :func:`galois_element`, and the lowering of
  IR layers (``Dense``, ``Conv2d``, ``AvgPool2d``, ``Flatten``) to dense matrices
  (:func:`dense_matrix`);
* :mod:`he_ml.ml._latency_stages` -- slot layouts and stage records, the placement of weights on
  generalized diagonals (contiguous "hybrid" or scattered output), the baby-step giant-step
  choice per fused affine group, and the activation stages;
* :mod:`he_ml.ml._latency_bounds` -- the CKKS noise allowance and the bound-only replay
  (``_PlanContext``, ``_Tracked``) that ``LatencyModel.context`` uses to plan the modulus chain.

References
----------
.. [HS14] S. Halevi, V. Shoup, "Algorithms in HElib", CRYPTO 2014, section 4.1 (diagonal
   matrix-vector product).
.. [HS18] S. Halevi, V. Shoup, "Faster Homomorphic Linear Transformations in HElib",
   CRYPTO 2018, section 4.2 (baby-step giant-step).
.. [GAZELLE] C. Juvekar, V. Vaikuntanathan, A. Chandrakasan, "GAZELLE: A Low Latency
   Framework for Secure Neural Network Inference", USENIX Security 2018, section 5.2 (hybrid
   method for rectangular matrices).
.. [LoLa] A. Brutzkus, O. Elisha, R. Gilad-Bachrach, "Low Latency Privacy Preserving Inference",
   ICML 2019, section 4 (layouts that follow the network).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import (
    DepthExhaustedError,
    EncodingOverflowError,
    ParameterError,
    ShapeMismatchError,
    UnsupportedOperationError,
)
from ..schemes.base import EncryptedVector, check_values
from ..schemes.params import HE_STANDARD_MAX_BITS, MAX_PRIME_BITS
from ._latency_lowering import (  # noqa: F401  (re-exported: the old import path keeps working)
    MAX_SLOTS,
    MAX_DENSE_ENTRIES,
    MAX_DIAGONAL_VALUES,
    _LINEAR,
    _next_pow2,
    galois_element,
    _kind,
    _pair,
    _window_geometry,
    _layer_in_out,
    dense_matrix,
    _pool_divisors,
)
from ._latency_stages import (  # noqa: F401  (re-exported: the old import path keeps working)
    _Layout,
    _LinearStage,
    _Affine1,
    _ActivationStage,
    _ScalarStage,
    _lower_activation,
    _place,
    _choose_giant,
    _scattered_layout,
    _linear_stage,
)
from ._latency_bounds import (  # noqa: F401  (re-exported: the old import path keeps working)
    _noise_per_slot,
    _REL_SLACK,
    _NOISE_STDS,
    _allowance,
    _PlanContext,
    _Tracked,
)

__all__ = ["LatencyModel", "dense_matrix", "encrypt_sample", "galois_element"]


def encrypt_sample(context: Any, x: Any) -> EncryptedVector:
    """Encrypt one sample in the latency layout (model-independent; a public context suffices).

    The flattened sample (C order, ``d`` values) is zero-padded to ``P = next_pow2(d)`` and
    replicated ``slot_count / P`` times, so every rotation of the ciphertext is a cyclic rotation
    of the period-``P`` vector.  :meth:`LatencyModel.encrypt` checks the shape first and calls this.

    Parameters
    ----------
    context : CKKS
    x : array of any shape, ``d = x.size <= slot_count``

    Returns
    -------
    EncryptedVector
        One ciphertext, ``slot_count`` values.

    Raises
    ------
    UnsupportedOperationError
        Not a CKKS context.
    ShapeMismatchError
        Empty sample or more values than slots.
    """
    if getattr(context, "name", None) != "ckks":
        raise UnsupportedOperationError(
            f"latency layout: needs a CKKS context; got {getattr(context, 'name', type(context).__name__)!r}.")
    flat = check_values(x, scheme="ckks", what="x").astype(np.float64).reshape(-1)
    period = _next_pow2(flat.size)
    if flat.size == 0 or period > context.slot_count:
        raise ShapeMismatchError(
            f"latency layout: a sample of {flat.size} values needs {period} slots (next power of two); the "
            f"context has {context.slot_count}. Use a larger ring or the throughput layout.")
    block = np.zeros(period)
    block[: flat.size] = flat
    return context.encrypt(np.tile(block, context.slot_count // period))


# --------------------------------------------------------------------------------- the model
class LatencyModel:
    r"""A network evaluated on one sample packed in one CKKS ciphertext.

    Parameters
    ----------
    layers : sequence of model-IR layer records, or a ``ModelIR``
        ``Dense``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``Activation`` (see :mod:`he_ml.ml.ir`).
        Consecutive affine layers are fused (one level per group).
    input_shape : tuple of int, optional
        Shape of one sample, e.g. ``(64,)`` or ``(1, 28, 28)``; taken from a ``ModelIR``.

    Attributes
    ----------
    depth : int
        Multiplicative levels: one per affine group plus the activations' depths.
    rotation_steps : tuple of int
        Every rotation (left, in slots) the evaluation performs; the only keys needed.
    min_slots : int
        Smallest slot count that holds every layout (largest period).
    n_inputs, n_outputs : int

    Raises
    ------
    UnsupportedOperationError
        A layer that is not an IR record.
    ShapeMismatchError
        Layer sizes that do not chain, or a layout larger than the largest ring (16384 slots).

    Notes
    -----
    Cost per sample: for every affine group, one plaintext product per non-zero generalized
    diagonal and ``|baby| + |giant| (+ log2(L / P_out))`` rotations; activations cost their
    ciphertext products.  The CryptoNets network (conv 5x5/2 -> 5 maps, square, 720 -> 100,
    square, 100 -> 10) needs 125 + 128 + 16 products, 64 rotations and 46 rotation keys; its layouts fit
    n = 8192 (4096 slots), the planner picks the ring that holds its provable magnitude bounds.

    Example
    -------
    >>> import numpy as np
    >>> from he_ml.ml.ir import Dense, Activation
    >>> from he_ml.ml.latency import LatencyModel
    >>> rng = np.random.default_rng(0)
    >>> m = LatencyModel([Dense(rng.normal(size=(3, 8)), np.zeros(3)), Activation.square()], (8,))
    >>> ctx = m.context(input_abs_max=1.0)
    >>> x = rng.uniform(-1, 1, 8)
    >>> out = ctx.decrypt(m.decision_function(m.encrypt(ctx, x)))
    >>> bool(np.allclose(out, m.plain(x[None])[0], atol=1e-3))
    True
    """

    def __init__(self, layers: Any, input_shape: Sequence[int] | None = None) -> None:
        if hasattr(layers, "layers") and hasattr(layers, "input_shape"):
            input_shape = layers.input_shape if input_shape is None else input_shape
            layers = layers.layers
        if input_shape is None:
            raise ParameterError("LatencyModel needs input_shape (the shape of one sample), e.g. (64,) "
                                 "or (1, 28, 28); got None.")
        try:
            self.input_shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError) as e:
            raise ParameterError(f"input_shape must be a tuple of ints; got {input_shape!r}.") from e
        if not self.input_shape or min(self.input_shape) < 1:
            raise ShapeMismatchError(f"input_shape must be positive ints; got {input_shape!r}.")
        layers = list(layers)
        if not layers:
            raise ParameterError("LatencyModel needs at least one layer; got none.")
        self.layers = layers
        self.n_inputs = int(np.prod(self.input_shape))
        if self.n_inputs > MAX_SLOTS:
            raise ShapeMismatchError(
                f"a sample of {self.n_inputs} values does not fit one ciphertext (at most {MAX_SLOTS} "
                f"slots at n = 32768); use the throughput layout (encrypt_features).")
        self._stages: list[Any] = []
        layout = _Layout.contiguous(self.n_inputs)
        size = self.n_inputs
        known: set[int] = set()
        items: list[Any] = []
        for layer in layers:
            kind = _kind(layer)
            items.extend([layer] if kind in _LINEAR else _lower_activation(layer))
        groups: list[Any] = []   # lists of affine items (IR linear layers, _Affine1) or a stage
        for item in items:
            if isinstance(item, _ActivationStage):
                groups.append(item)
            else:
                if not groups or not isinstance(groups[-1], list):
                    groups.append([])
                groups[-1].append(item)
        has_matrix = [isinstance(g, list) and any(not isinstance(it, _Affine1) and type(it).__name__ != "Flatten"
                                                  for it in g) for g in groups]
        last_linear = max((i for i, h in enumerate(has_matrix) if h), default=-1)
        for gi, group in enumerate(groups):
            if isinstance(group, _ActivationStage):
                self._stages.append(group)
                continue
            if not has_matrix[gi]:  # Flatten and element-wise maps only: no rotation needed
                a, k = 1.0, 0.0
                for item in group:
                    if isinstance(item, _Affine1):
                        a, k = item.a * a, item.a * k + item.k
                    else:
                        size = _layer_in_out(item, size)
                if (a, k) != (1.0, 0.0):
                    self._stages.append(_ScalarStage(a, k))
                continue
            stage, layout = _linear_stage(group, layout, known, gi == last_linear, size)
            size = stage.weight.shape[0]
            known |= stage.steps
            self._stages.append(stage)
        self.n_outputs = size
        self._out_layout = layout
        periods = [_next_pow2(self.n_inputs)] + [
            max(s.period, s.out.period) for s in self._stages if isinstance(s, _LinearStage)]
        self.min_slots = int(max(periods))
        if self.min_slots > MAX_SLOTS:
            raise ShapeMismatchError(
                f"this model's layouts need {self.min_slots} slots, above the largest ring's {MAX_SLOTS}; "
                f"use the throughput layout (encrypt_features).")
        self.rotation_steps = tuple(sorted(known))
        self.depth = sum(1 if isinstance(s, _LinearStage) else s.depth for s in self._stages)

    # ------------------------------------------------------------------ description
    @classmethod
    def from_ir(cls, ir: Any) -> "LatencyModel":
        """Build from a ``he_ml.ml.ir.ModelIR`` (its layers and input shape)."""
        return cls(ir.layers, ir.input_shape)

    @property
    def stages(self) -> list[dict[str, Any]]:
        """One dict per evaluated stage: kind, mode, diagonals, rotations, steps (for reports)."""
        out = []
        for s in self._stages:
            if isinstance(s, _LinearStage):
                out.append({"kind": "affine", "layers": s.source, "shape": tuple(s.weight.shape),
                            "mode": s.mode, "period": s.period, "diagonals": len(s.diagonals),
                            "giant": s.giant, "rotations": s.rotations, "steps": sorted(s.steps)})
            else:
                out.append({"kind": s.kind, "depth": s.depth})
        return out

    def describe(self) -> str:
        """Human-readable plan: per stage diagonals and rotations, depth, rotation keys."""
        lines = [f"LatencyModel: input {self.input_shape} -> {self.n_outputs} outputs, depth {self.depth}, "
                 f"{len(self.rotation_steps)} rotation keys, >= {self.min_slots} slots"]
        for s in self.stages:
            if s["kind"] == "affine":
                lines.append(f"  affine {s['layers']} {s['shape'][1]}->{s['shape'][0]}: {s['mode']} output, "
                             f"{s['diagonals']} diagonals (g={s['giant']}), {s['rotations']} rotations")
            else:
                lines.append(f"  activation {s['kind']} (depth {s['depth']})")
        return "\n".join(lines)

    def galois_elements(self, poly_modulus_degree: int) -> frozenset[int]:
        """Galois elements of :attr:`rotation_steps` for ring size ``n`` (compare with
        ``ctx.rotation_steps_available``)."""
        return frozenset(galois_element(s, poly_modulus_degree) for s in self.rotation_steps)

    # ------------------------------------------------------------------ plaintext twin
    def _check_batch(self, X: Any) -> np.ndarray:
        arr = check_values(X, scheme="ckks", what="X").astype(np.float64)
        if arr.shape == self.input_shape or (arr.ndim == 1 and arr.size == self.n_inputs):
            arr = arr.reshape(1, -1)
        if arr.ndim < 2 or arr[0].size != self.n_inputs or arr.shape[0] < 1:
            raise ShapeMismatchError(
                f"X must hold samples of shape {self.input_shape} ({self.n_inputs} values each): "
                f"(n, {', '.join(map(str, self.input_shape))}) or (n, {self.n_inputs}); got shape {arr.shape}.")
        return arr.reshape(arr.shape[0], -1)

    def plain(self, X: Any) -> np.ndarray:
        """The same computation in float64 (the twin every encrypted result is compared with).

        Parameters
        ----------
        X : array (n, *input_shape) or (n, n_inputs)

        Returns
        -------
        ndarray (n, n_outputs)
        """
        x = self._check_batch(X)
        for s in self._stages:
            if isinstance(s, _LinearStage):
                x = x @ s.weight.T + s.bias
            else:
                x = s.plain(x)
        return x

    # ------------------------------------------------------------------ parameters
    def _input_bound(self, X_calibration: Any, input_abs_max: float | None) -> float:
        """The public bound ``encrypt`` gives the planned inputs: the power of two >= max |x|."""
        if X_calibration is not None:
            m = float(np.max(np.abs(self._check_batch(X_calibration))))
        elif input_abs_max is None:
            raise ParameterError(
                "context() needs X_calibration (representative samples) or input_abs_max (a bound on "
                "|x|) to size the modulus; got neither.")
        else:
            m = input_abs_max
            if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) \
                    or not float(m) > 0 or not math.isfinite(float(m)):
                raise ParameterError(f"input_abs_max must be a positive finite number; got {input_abs_max!r}.")
            m = float(m)
        # CKKS.encrypt declares the smallest power of two >= max |values| (2^-30 for all zeros)
        return 2.0 ** math.ceil(math.log2(m)) if m > 0 else 2.0 ** -30

    def _tracked_log(self, input_bound: float, n: int, scale_bits: int) -> list[tuple[float, int]]:
        """Every ``(bound, levels used)`` the CKKS tracker checks when evaluating an input of
        public bound ``input_bound``, with the bounds `_apply_linear` states, for any chain of
        ring ``n`` with scale >= ``scale_bits`` (its noise allowance is the largest of those;
        every stated bound grows with the allowance, so a planned chain states smaller ones)."""
        log: list[tuple[float, int]] = [(float(input_bound), 0)]
        x = _Tracked(_PlanContext(n, scale_bits, max(1, self.depth)), input_bound, 0, self.min_slots, log)
        for s in self._stages:
            x = self._apply_linear(s, x) if isinstance(s, _LinearStage) else s.evaluate(x)
        log.append((x.bound, x.used))
        return log

    def _plain_operands_max(self) -> float:
        """Largest |plaintext operand| (weights, biases, scalars): must encode (``< value_bound``)."""
        vals = [0.0]
        for s in self._stages:
            if isinstance(s, _LinearStage):
                vals += [float(np.max(np.abs(s.weight), initial=0.0)), float(np.max(np.abs(s.bias), initial=0.0))]
            elif isinstance(s, _ScalarStage):
                vals += [abs(s.a), abs(s.k)]
        return max(vals)

    def parameters(self, X_calibration: Any = None, *, input_abs_max: float | None = None,
                   margin: float = 1.0, min_scale_bits: int | None = None) -> dict[str, Any]:
        """CKKS parameters for :meth:`context` (see there), without generating keys."""
        if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and margin >= 1.0
                                            and math.isfinite(margin)):
            raise ParameterError(f"margin must be a finite number >= 1; got {margin!r}.")
        b_in = self._input_bound(X_calibration, input_abs_max)
        needs_poly = any(isinstance(s, _ActivationStage) and s.kind == "polynomial" for s in self._stages)
        smin = int(min_scale_bits) if min_scale_bits is not None else (32 if needs_poly else 28)
        depth = max(1, self.depth)
        operands = max(b_in, self._plain_operands_max())
        peak = None
        for n in sorted(HE_STANDARD_MAX_BITS):
            if n // 2 < self.min_slots or n < 2048:
                continue
            log = self._tracked_log(b_in, n, smin)
            peak = max(bb for bb, _ in log)
            budget = HE_STANDARD_MAX_BITS[n][128]
            low = int(math.log2(2 * n)) + 2
            best = None
            for s in range(40, max(smin, low) - 1, -1):
                q0 = self._first_prime_bits(log, operands, float(margin), s, depth)
                special = min(MAX_PRIME_BITS, budget - q0 - depth * s)
                if q0 > MAX_PRIME_BITS or special < max(q0, s):
                    continue
                noise = _noise_per_slot(n, s, depth + 1, max(q0, s), special)
                if best is None or noise < best[0]:
                    best = (noise, s, q0, special)
            if best is not None:
                noise, s, q0, special = best
                return {"poly_modulus_degree": n, "coeff_mod_bit_sizes": [q0] + [s] * depth + [special],
                        "scale_bits": s, "value_bound": peak, "input_bound": b_in, "noise_per_slot": noise}
        raise DepthExhaustedError(
            f"latency layout: depth {self.depth} with tracked magnitudes up to {peak or b_in:g} (inputs up to "
            f"{b_in:g}, scale >= 2^{smin}) does not fit any 128-bit CKKS ring up to n = 32768 "
            f"({HE_STANDARD_MAX_BITS[32768][128]} bits). Scale the inputs down, use the throughput layout, "
            f"lower-degree activations, or a client-aided refresh between layers.")

    @staticmethod
    def _first_prime_bits(log: list[tuple[float, int]], operands: float, margin: float, s: int,
                          depth: int) -> int:
        """Smallest first prime (bits) such that ``margin`` times every tracked bound fits its level.

        A value after ``used`` levels sits at chain index ``l = depth - used``, whose limit is
        ``15/16 * Q_l / 2^(s + 1)`` with ``Q_l = q0 q1 ... q_l`` (``CKKS._setup_bounds``); SEAL's
        primes of ``b`` bits lie within a factor ``1 - 2^-20`` of ``2^b``, counted as ``b - 0.01``
        bits.  Plaintext operands and inputs must also encode: ``< value_bound = 2^(q0 - s - 1)``.
        """
        need = math.log2(max(operands, 2.0 ** -60) * margin) + s + 1 + 0.01
        for bound, used in log:
            if bound > 0:
                l = min(max(depth - used, 0), depth)
                need = max(need, math.log2(bound * margin) + math.log2(16.0 / 15.0) + s + 1 - l * (s - 0.01)
                           + 0.01)
        return max(s + 1, math.floor(need) + 1)

    def context(self, X_calibration: Any = None, *, input_abs_max: float | None = None,
                margin: float = 1.0, min_scale_bits: int | None = None, rotation_keys: str = "exact"):
        """A 128-bit CKKS key-holder context for this model, with only the keys it needs.

        Parameters
        ----------
        X_calibration : array (n, *input_shape), optional
            Representative samples: inputs are planned at the public bound ``encrypt`` declares
            for them, the power of two ``B >= max |X_calibration|``.  Any sample with
            ``max |x| <= B`` is then guaranteed to run; a larger one is refused before computing
            (``EncodingOverflowError`` naming the ``input_abs_max`` to plan for).
        input_abs_max : float, optional
            Without calibration data: a bound on ``|x|`` (planned as the power of two above it).
        margin : float, default 1.0
            Extra headroom factor on every planned bound.  The planned bounds are provable
            worst cases for inputs up to ``B`` (no data-dependent estimate), so 1 suffices.
        min_scale_bits : int, optional
            Smallest scale considered; default 28 (32 with polynomial activations, whose terms are
            added across levels and need scale primes close to 2^scale).
        rotation_keys : {"exact", "pow2"}, default "exact"
            "exact": one key per step in :attr:`rotation_steps` (fastest). "pow2": only the
            +-power-of-two keys (``2 log2(slots)``, e.g. 24 at n = 8192); every other rotation is
            composed from them (its non-adjacent form: a few key switches each), trading time for a
            smaller public context when the model needs many steps.

        Returns
        -------
        CKKS
            Relinearization keys only if an activation multiplies ciphertexts; rotation keys
            exactly for :attr:`rotation_steps`. ``ctx.public_context_bytes`` is the upload size of
            the evaluation keys.

        Raises
        ------
        ParameterError
            Neither ``X_calibration`` nor ``input_abs_max``; bad margin.
        DepthExhaustedError
            Nothing fits the largest ring (the message says what to do).

        Notes
        -----
        Planned magnitudes are exactly the public bounds the CKKS tracker will check
        (``_tracked_log`` runs the evaluation on bounds alone): each affine stage's per-slot bound
        ``max_t sum_k |d_k[t]| B`` of every partial BSGS sum, rotate-and-add step and the output
        (``max_o sum_f |W_of| B + |b_o|``), plus the CKKS approximation error (see
        ``_apply_linear``); ``B^2`` after a square; the polynomial evaluator's own bounds.  The
        chain is ``[q0, s x depth, special]`` with the scale ``s <= 40`` giving the least noise in
        the smallest ring holding every layout: ``q0`` is the smallest first prime such that every
        bound ``b`` reached after ``u`` levels fits the limit ``15/16 Q_l / 2^(s+1)`` of its level
        ``l = depth - u`` (``CKKS._setup_bounds``), the special prime at least as large as every
        data prime, total within the HomomorphicEncryption.org 128-bit bound.
        """
        from ..schemes import CKKS

        if rotation_keys not in ("exact", "pow2"):
            raise ParameterError(f"rotation_keys must be 'exact' or 'pow2'; got {rotation_keys!r}.")
        p = self.parameters(X_calibration, input_abs_max=input_abs_max, margin=margin,
                            min_scale_bits=min_scale_bits)
        relin = any(isinstance(s, _ActivationStage) for s in self._stages)
        return CKKS(None, poly_modulus_degree=p["poly_modulus_degree"],
                    coeff_mod_bit_sizes=p["coeff_mod_bit_sizes"], scale_bits=p["scale_bits"],
                    rotations=("all" if rotation_keys == "pow2" and self.rotation_steps
                               else list(self.rotation_steps) or None), relin_keys=relin)

    # ------------------------------------------------------------------ encryption
    def _check_context(self, ctx: Any, op: str) -> None:
        if getattr(ctx, "name", None) != "ckks":
            raise UnsupportedOperationError(
                f"latency layout: {op} needs a CKKS context (slot rotations on real numbers); got "
                f"{getattr(ctx, 'name', type(ctx).__name__)!r}. Use model.context().")
        if ctx.slot_count < self.min_slots:
            raise ShapeMismatchError(
                f"latency layout: this model needs {self.min_slots} slots; the context has {ctx.slot_count} "
                f"(n = {ctx.poly_modulus_degree}). Use model.context() or n >= {2 * self.min_slots}.")

    def encrypt(self, ctx: Any, x: Any) -> EncryptedVector:
        """Encrypt one sample in the latency layout (client side; a public context suffices).

        Parameters
        ----------
        ctx : CKKS
        x : array of shape ``input_shape`` (or flat ``(n_inputs,)``, or ``(1, *input_shape)``)

        Returns
        -------
        EncryptedVector
            One ciphertext (``slot_count`` values): the flattened sample replicated with period
            ``next_pow2(n_inputs)``.

        Raises
        ------
        ShapeMismatchError
            Wrong sample shape (several samples: encrypt each, or use the throughput layout).
        EncodingOverflowError
            Values too large for the context (see ``ctx.value_bound``).
        """
        self._check_context(ctx, "encrypt")
        arr = check_values(x, scheme="ckks", what="x").astype(np.float64)
        if arr.shape[:1] == (1,) and arr.shape[1:] == self.input_shape:
            arr = arr[0]
        if arr.shape != self.input_shape and arr.shape != (self.n_inputs,):
            raise ShapeMismatchError(
                f"latency layout: x must be one sample of shape {self.input_shape} (or ({self.n_inputs},)); "
                f"got shape {arr.shape}. Encrypt samples one at a time, or use encrypt_features for batches.")
        return encrypt_sample(ctx, arr)

    # ------------------------------------------------------------------ evaluation
    def decision_function(self, enc: EncryptedVector) -> EncryptedVector:
        """Evaluate the network on one encrypted sample (server side; public context suffices).

        Parameters
        ----------
        enc : EncryptedVector
            From :meth:`encrypt` (one ciphertext).

        Returns
        -------
        EncryptedVector
            Shape ``(n_outputs,)``: ``ctx.decrypt`` gives the outputs (logits/scores).

        Raises
        ------
        ParameterError
            ``enc`` is not an EncryptedVector.
        ShapeMismatchError
            ``enc`` is not one full ciphertext, or the context has too few slots.
        DepthExhaustedError
            ``enc`` has fewer than ``depth`` levels left.
        UnsupportedOperationError
            The context lacks rotation keys in :attr:`rotation_steps` (or relinearization keys).
        EncodingOverflowError
            A provable magnitude bound (see `_apply_linear`) would exceed its level's limit: the
            input's public bound is above what the context was planned for. Raised before the
            operation runs; the message names the ``model.context(input_abs_max=...)`` that fits.

        Notes
        -----
        The result carries a public bound (``out.bound``) on every slot, stated per affine stage
        from the weights and the input's bound (``max_o sum_f |W_of| B + |b_o|`` plus the CKKS
        approximation error), never from the data.
        """
        if not isinstance(enc, EncryptedVector):
            raise ParameterError(f"decision_function expects the EncryptedVector from model.encrypt(); got "
                                 f"{type(enc).__name__}.")
        ctx = enc.context
        self._check_context(ctx, "decision_function")
        if enc.size != ctx.slot_count or enc.num_ciphertexts != 1:
            raise ShapeMismatchError(
                f"latency layout: the input must be one full ciphertext from model.encrypt(); got {enc.size} "
                f"values in {enc.num_ciphertexts} ciphertext(s).")
        if enc.level is not None and enc.level < self.depth:
            raise DepthExhaustedError(
                f"latency layout: the model needs {self.depth} multiplicative levels; the ciphertext has "
                f"{enc.level}. Use model.context() (it plans the depth) and encrypt fresh samples.")
        have = set(ctx.rotation_steps_available)
        n = ctx.poly_modulus_degree
        missing = [s for s in self.rotation_steps if galois_element(s, n) not in have]
        pow2 = {galois_element(sign * (1 << e), n) for e in range(int(math.log2(n // 2))) for sign in (1, -1)}
        if missing and not pow2 <= have:  # SEAL composes a missing step from the +-2^e keys
            raise UnsupportedOperationError(
                f"latency layout: the context lacks rotation keys for steps {missing[:8]}"
                f"{'...' if len(missing) > 8 else ''} ({len(missing)} of {len(self.rotation_steps)}). "
                f"Create it with model.context(), or call ctx.enable_rotations(model.rotation_steps) (or "
                f"'all' for the power-of-two set) on the key holder before public_context().")
        x = enc
        try:
            for s in self._stages:
                x = self._apply_linear(s, x) if isinstance(s, _LinearStage) else s.evaluate(x)
        except EncodingOverflowError as e:
            b = float(enc.bound)
            raise EncodingOverflowError(
                f"latency layout: with inputs of public bound {b:g} (|x| <= {b:g}, as declared by encrypt) "
                f"this context cannot hold the network's provable magnitudes; nothing overflowed, the "
                f"operation was refused before it ran. Plan the context for these inputs: "
                f"model.context(input_abs_max={b:g}) (or X_calibration containing such samples), or scale "
                f"the inputs down. Details: {e}") from e
        # the stated bound covers every slot, so it also bounds the outputs (first n_outputs slots)
        out = EncryptedVector(ctx, x.chunks, (self.n_outputs,), dict(x.meta))
        # the other slots hold copies of the outputs: reductions (sum, mean) zero them first
        out.padding_dirty = True
        return out

    @staticmethod
    def _apply_linear(s: _LinearStage, x: Any) -> Any:
        """One affine stage by BSGS, stating after every addition the bound it can prove.

        The tracker's interval arithmetic adds ``B max|d_k|`` per diagonal and doubles at every
        rotate-and-add step, far above the true magnitude.  Per slot the exact computation is
        tighter: ``z[t] = sum_k d_k[t] x[t + k]`` with every slot of ``x`` bounded by its public
        bound ``B`` (replicas and the slots outside the layout too: the tracked bound is over all
        slots), so ``|z[t]| <= B sum_{k in S} |d_k[t]|`` for any partial set ``S`` of diagonals;
        a giant rotation moves slots but keeps the per-slot sums (we track them in the frame of
        the final result, where ``d_k`` sits unrotated, and the max over slots is rotation
        invariant); a rotate-and-add step ``a + rot(a, s)`` gives ``u[t] + u[t + s]``; the bias
        adds ``|b[t]|``.  Slots outside the output layout get no weight (``d_k[t] = 0`` there,
        see `_place`), so they hold zeros up to the noise below -- also bounded.

        CKKS approximation error (`_allowance`): each product errs by at most
        ``eps B + |d_k[t]| delta + eps delta <= eps B + |d_k[t]| delta + delta`` (plaintext
        encoding, the baby rotation's noise on ``x``), its rescale adds ``delta``, every giant
        rotation and rotate-and-add step adds ``delta``, the bias's encoding ``eps``.  So per
        slot ``u[t] = sum_k (|d_k[t]| (B + delta) + eps B + 2 delta) + (rotations) delta``,
        and the stated bound is ``(1 + 2^-10) max_t u[t]``.  ``with_bound`` keeps the smaller of
        this and the tracker's own bound.  The planner runs this same code on `_Tracked`
        (`LatencyModel._tracked_log`), so it plans for exactly the bounds checked here.
        """
        slots = x.size
        reps_l = slots // s.period
        g = s.giant
        B = float(x.bound)
        delta, eps = _allowance(x.context)
        L = s.period
        absd = {k: np.abs(d) for k, d in s.diagonals.items()}

        def state(v: Any, u: np.ndarray) -> Any:
            return v.with_bound((1.0 + _REL_SLACK) * float(np.max(u)))

        babies = {0: x}
        for i in s.baby_steps:
            babies[i] = x.rotate(i)
        by_giant: dict[int, list[int]] = {}
        for k in sorted(s.diagonals):
            by_giant.setdefault(k // g, []).append(k)
        acc, u_acc = None, None
        for j, ks in sorted(by_giant.items()):
            inner, u_in = None, None
            for k in ks:
                # rot(d_k, -g j): the giant rotation applied afterwards undoes it
                d = np.tile(np.roll(s.diagonals[k], g * j), reps_l)
                term = babies[k - g * j] * d
                u_term = absd[k] * (B + delta) + (eps * B + 2.0 * delta)  # final frame
                if inner is None:
                    inner, u_in = term, u_term
                else:
                    u_in = u_in + u_term
                    inner = state(inner + term, u_in)
            if g * j:
                inner = inner.rotate(g * j)
                u_in = u_in + delta
            if acc is None:
                acc, u_acc = inner, u_in
            else:
                u_acc = u_acc + u_in
                acc = state(acc + inner, u_acc)
        for step in s.sum_steps:
            u_acc = u_acc + np.roll(u_acc, -step) + delta  # slot t gets t and t + step
            acc = state(acc + acc.rotate(step), u_acc)
        if np.any(s.bias_vec):
            bias = np.tile(s.bias_vec, slots // s.out.period)
            u_acc = u_acc + np.abs(np.tile(s.bias_vec, L // s.out.period)) + eps
            acc = state(acc + bias, u_acc)
        return state(acc, u_acc)
