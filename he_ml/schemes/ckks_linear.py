"""Fused plaintext multiply-accumulate for CKKS (the throughput layout's dense/conv layers).

Part of the SEAL backend: it reaches SEAL only through :mod:`he_ml.schemes.ckks` (the module
that imports TenSEAL).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .base import EncryptedVector
from .ckks import CKKS, sa

__all__ = ["linear_map", "compact"]

# ---------------------------------------------------------------------------- fused multiply-accumulate
#: Memory budget of the per-call cache of encoded weights (conv kernels reuse a few values many times).
_WEIGHT_CACHE_BYTES = 256 << 20


def linear_map(context: CKKS, inputs: list[EncryptedVector], indptr: np.ndarray, indices: np.ndarray,
               data: np.ndarray, bias: np.ndarray,
               post: Callable[[EncryptedVector], EncryptedVector] | None = None) -> list[EncryptedVector]:
    """Encrypted ``y_o = sum_j W[o, j] * x_j + b_o`` for every output ``o``, one rescale per output.

    The inputs are encrypted vectors of the same shape (one per input feature, each holding many
    samples); ``W`` is given in CSR form (``indptr``, ``indices``, ``data``) so that zero weights
    cost nothing. Every weight is encoded at the scale of the prime the rescale removes, the
    products are summed at scale ``Delta * q_last`` and rescaled **once** per output (a rescale
    costs about four plaintext products), so the result has the inputs' scale ``Delta`` and one
    level less. The bias is added to the samples' slots only (padding slots stay zero, so a
    padding slot can never grow outside the modulus in later layers).

    Weights with ``|w| * q_last < 1/2`` encode to the zero polynomial and are skipped (their
    contribution is below ``2^-(bits of q_last)`` times the input, far under CKKS noise).

    Parameters
    ----------
    context : CKKS
    inputs : list of EncryptedVector
        Same size, same number of chunks, at the same level (>= 1).
    indptr, indices, data : ndarray
        CSR matrix of shape (len(bias), len(inputs)).
    bias : ndarray (n_outputs,)
    post : callable, optional
        Applied to each output as soon as it is computed (e.g. the next activation), so that the
        pre-activation ciphertext is freed at once: SEAL's memory pool keeps freed blocks per size,
        and a full stage of pre-activations would otherwise stay allocated.

    Returns
    -------
    list of EncryptedVector, one per output (``post`` applied), shape of the inputs.

    Raises
    ------
    DepthExhaustedError
        If the inputs have no level left.
    ShapeMismatchError
        Inconsistent sizes.
    """
    from ..errors import ShapeMismatchError
    if not inputs:
        raise ShapeMismatchError("linear_map needs at least one input vector.")
    n_out = int(len(bias))
    if len(indptr) != n_out + 1 or len(indices) != len(data) or int(indptr[-1]) != len(data) \
            or (len(indices) and (int(np.max(indices)) >= len(inputs) or int(np.min(indices)) < 0)):
        raise ShapeMismatchError(f"linear_map: weights of {len(indptr) - 1} rows / bias of {n_out} entries "
                                 f"do not match each other or the {len(inputs)} inputs.")
    first = inputs[0]
    n_chunks, shape, size = len(first.chunks), first.shape, first.size
    for v in inputs:
        context._check_same_key(v.context, "linear_map")
        if len(v.chunks) != n_chunks or v.size != size:
            raise ShapeMismatchError("linear_map: every input must hold the same number of values.")
    level = min(v.level for v in inputs)
    if level < 1:
        raise context._depth_error("a linear layer (plaintext multiply-accumulate)", context.max_depth - level)
    context._check_magnitude(np.asarray(bias, dtype=np.float64), "a bias")
    # Magnitude bound of every output, checked before anything is computed (like _op_dot):
    # |y_o| <= |b_o| + sum_j |W[o, j]| * bound(x_j), with each input's tracked public bound. The
    # products are accumulated at scale Delta * q_last at the inputs' level, which represents
    # exactly what the rescaled result at the next level does (see CKKS._setup_bounds), so one
    # check at ``level - 1`` covers the accumulator too. Weights skipped below (encoding to zero)
    # are still counted: the bound stays an upper bound.
    in_bounds = np.array([context._bound(v) for v in inputs], dtype=np.float64)
    abs_data = np.abs(np.asarray(data, dtype=np.float64))
    idx = np.asarray(indices, dtype=np.int64)
    row_of = np.repeat(np.arange(n_out), np.diff(np.asarray(indptr, dtype=np.int64)))
    out_bounds = np.abs(np.asarray(bias, dtype=np.float64)).copy()
    np.add.at(out_bounds, row_of, abs_data * in_bounds[idx])
    metas = [context._bounded(float(b), level - 1, f"a linear layer (output {o} of {n_out})")
             for o, b in enumerate(out_bounds)]
    ev, enc, seal = context._evaluator, context._encoder, context._seal
    with context._seal_errors("linear layer"):
        # bring every input chunk to the common level (normally they already are)
        target = min((ct for v in inputs for ct in v.chunks), key=context._chain_index).parms_id()
        chunks = [[ct if ct.parms_id() == target else _switched(context, ct, target) for ct in v.chunks]
                  for v in inputs]
        scale_in = chunks[0][0].scale
        cdata = seal.get_context_data(target)
        q_last = float(cdata.parms().coeff_modulus()[-1].value())
        next_id = cdata.next_context_data().parms_id()
        slots = context.slot_count
        per_pt = context.poly_modulus_degree * len(cdata.parms().coeff_modulus()) * 8
        cache: dict[float, Any] = {}
        cache_cap = max(16, _WEIGHT_CACHE_BYTES // per_pt)

        def encoded(w: float) -> Any:
            pt = cache.get(w)
            if pt is None:
                pt = sa.Plaintext()
                enc.encode(w, target, q_last, pt)
                if len(cache) < cache_cap:
                    cache[w] = pt
            return pt

        real = [min(slots, size - p * slots) for p in range(n_chunks)]
        outputs = []
        tmp = sa.Ciphertext()
        for o in range(n_out):
            lo, hi = int(indptr[o]), int(indptr[o + 1])
            accs: list[Any] = [None] * n_chunks
            for j, w in zip(indices[lo:hi], data[lo:hi]):
                w = float(w)
                if abs(w) * q_last < 0.5:
                    continue
                pt = encoded(w)
                for p in range(n_chunks):
                    src = chunks[int(j)][p]
                    if accs[p] is None:
                        accs[p] = sa.Ciphertext()
                        ev.multiply_plain(src, pt, accs[p])
                    else:
                        ev.multiply_plain(src, pt, tmp)
                        tmp.scale = accs[p].scale  # equal up to double rounding of s * q_last
                        ev.add_inplace(accs[p], tmp)
            b = float(bias[o])
            out_chunks = []
            for p in range(n_chunks):
                acc = accs[p]
                if acc is None or acc.is_transparent():
                    acc = context._zero_like(next_id, scale_in)
                else:
                    ev.rescale_to_next_inplace(acc)
                    acc.scale = scale_in  # Delta * q_last / q_last
                if b != 0.0:
                    pt = sa.Plaintext()
                    if real[p] == slots:
                        enc.encode(b, acc.parms_id(), acc.scale, pt)
                    else:
                        vals = np.zeros(slots)
                        vals[:real[p]] = b
                        enc.encode(vals.tolist(), acc.parms_id(), acc.scale, pt)
                    ev.add_plain_inplace(acc, pt)
                out_chunks.append(acc)
            vec = EncryptedVector(context, out_chunks, shape, metas[o])
            del accs, out_chunks
            outputs.append(vec if post is None else post(vec))
    return outputs


def _switched(context: CKKS, ct: Any, parms_id: Any) -> Any:
    out = sa.Ciphertext()
    context._evaluator.mod_switch_to(ct, parms_id, out)
    return out


def compact(context: CKKS, vector: EncryptedVector) -> EncryptedVector:
    """The same ciphertexts re-allocated at their exact size.

    A ciphertext x ciphertext product leaves SEAL's buffer sized for three polynomials at the
    higher level after relinearization and rescaling (measured at n = 16384: 2.27 MB kept per
    ciphertext instead of 1.28 MB); a network holding hundreds of activations keeps that waste.
    Copying (a mod-switch to the same level) allocates exactly two polynomials.
    """
    chunks = [context._copy(ct) if ct.size_capacity() > ct.size() else ct for ct in vector.chunks]
    return EncryptedVector(context, chunks, vector.shape, vector.meta)
