"""Process parallelism of :mod:`he_ml.ml.model`: a linear stage split over forked workers.

One piece of :mod:`he_ml.ml.model`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.model`; import it from there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..schemes.base import EncryptedVector, SchemeContext

if TYPE_CHECKING:  # pragma: no cover
    from ._model_lowering import _LinearStage


# ---------------------------------------------------------------------------- process parallelism
#: A linear stage is split over processes only when each output neuron costs at least this many
#: plaintext products per ciphertext (serializing and loading an output ciphertext costs about as
#: much as ~50 products; a 5x5 convolution's 25 products per output do not pay for it).
PARALLEL_MIN_PRODUCTS_PER_OUTPUT = 128
_FORK_JOB: tuple | None = None


def _linear_stage(ctx: SchemeContext, vectors: list[EncryptedVector], stage: "_LinearStage",
                  n_jobs: int, post: Callable | None = None) -> list[EncryptedVector]:
    """One linear stage (and, if ``post`` is given, the activation after it, neuron by neuron)."""
    from ..schemes.ckks_linear import linear_map
    m = stage.matrix
    n_out = m.shape[0]
    chunks = len(vectors[0].chunks)
    if n_jobs <= 1 or n_out < 2 * n_jobs or m.nnz * chunks / n_out < PARALLEL_MIN_PRODUCTS_PER_OUTPUT:
        return linear_map(ctx, vectors, m.indptr, m.indices, m.data, stage.bias, post)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # split the rows into n_jobs groups of about equal work (non-zeros)
    cum = np.asarray(m.indptr[1:], dtype=np.float64)
    cuts = [0] + [int(np.searchsorted(cum, m.nnz * k / n_jobs)) + 1 for k in range(1, n_jobs)] + [n_out]
    cuts = sorted(set(min(max(c, 0), n_out) for c in cuts))
    groups = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    global _FORK_JOB
    _FORK_JOB = (ctx, vectors, m, stage.bias, post)
    try:
        with ProcessPoolExecutor(max_workers=len(groups) - 1,
                                 mp_context=multiprocessing.get_context("fork")) as ex:
            futures = [ex.submit(_fork_linear_rows, a, b) for a, b in groups[1:]]
            a, b = groups[0]
            sub = m[a:b]
            out = linear_map(ctx, vectors, sub.indptr, sub.indices, sub.data, stage.bias[a:b], post)
            for f in futures:
                out.extend(ctx.ciphertext_from_bytes(blob) for blob in f.result())
    finally:
        _FORK_JOB = None
    return out


def _fork_linear_rows(a: int, b: int) -> list[bytes]:
    """Worker (forked): rows [a, b) of the current stage, returned as ciphertext bytes."""
    from ..schemes.ckks_linear import linear_map
    ctx, vectors, m, bias, post = _FORK_JOB
    sub = m[a:b]
    return [v.to_bytes() for v in linear_map(ctx, vectors, sub.indptr, sub.indices, sub.data, bias[a:b], post)]
