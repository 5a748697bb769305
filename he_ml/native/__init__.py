"""Negacyclic NTT and polynomial multiplication over ``Z_q[X]/(X^n + 1)``.

The public face of the C++ core (private module ``he_ml._native``), with a
numba fallback that computes the same results bit for bit when the compiled
module is missing.

Conventions (shared by every backend and tier)
----------------------------------------------
* ``n`` is a power of two, ``2 <= n <= 65536``; ``q`` is a prime below
  ``2**62`` with ``q == 1 (mod 2n)`` (:func:`find_primes` makes such primes).
* ``psi`` is the smallest primitive ``2n``-th root of unity modulo ``q``.
* :func:`ntt` returns ``A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i) mod q``,
  i.e. the evaluations at the odd powers of ``psi`` in bit-reversed order;
  :func:`intt` inverts it. ``polymul(a, b, q) == intt(ntt(a) * ntt(b) mod q)``.
* Arrays are ``uint64``: ``(n,)`` for one polynomial, ``(rows, n)`` for a
  batch under one modulus (one call amortises the call overhead), and for the
  RNS forms ``(k, n)`` or ``(m, k, n)`` with ``k`` moduli, row ``i`` of every
  polynomial reduced modulo ``moduli[i]``. Values lie in ``[0, q)``.

Backends
--------
``implementation()`` is ``"cpp"`` when ``he_ml._native`` imports, else
``"numba"``. Set the environment variable ``HE_ML_NATIVE_BACKEND`` to
``numba`` (force the fallback), ``cpp`` (require the compiled module; import
fails otherwise) or ``auto`` (default) before importing; at run time use
:func:`use_backend`, which also works as a context manager. :func:`backend`
tells which kernel family runs for a modulus: ``"avx512ifma"``
(``q < 2**50``), ``"avx512"``, ``"scalar"`` or ``"numba"``. Per-tier kill
switches of the C++ core: ``HE_ML_DISABLE_AVX512IFMA=1``,
``HE_ML_DISABLE_AVX512=1``.

Input handling
--------------
C-contiguous ``uint64`` inputs are used without copies; other integer dtypes
and Python integer lists are converted when that is lossless (non-negative
values below ``2**64``). Floats, negative values, booleans and values that do
not fit raise :class:`he_ml.errors.ParameterError` (a ``ValueError``), as do
bad ``n``, bad ``q``, coefficients ``>= q`` and mismatched shapes. These checks
always run; the coefficient check costs one pass over the input (done inside
the compiled module on that path, in Python before the numba kernels).

Layout
------
Import everything from here; the parts live in private modules along the
package's seams: ``_backend`` (backend switch, table caches), ``_validation``
(argument checks shared by all functions), ``_transforms`` (``ntt``/``intt``
and RNS forms, with the repeated-call fast path), ``_products``
(``pointwise_mul``/``polymul`` and RNS forms), ``_numbertheory``
(``find_primes``, ``is_prime``, ``psi``), ``_introspection`` (``backend``,
``available_tiers``, ``cpu_features``) and ``_numba`` (the fallback kernels).

Examples
--------
>>> import numpy as np
>>> from he_ml import native
>>> q = native.find_primes(50, 8, 1)[0]
>>> a = np.array([1, 2, 0, 0, 0, 0, 0, 0], dtype=np.uint64)
>>> b = np.array([0, 0, 0, 0, 0, 0, 0, 3], dtype=np.uint64)
>>> native.polymul(a, b, q)[:2] == np.array([q - 6, 0], dtype=np.uint64)  # X^8 = -1
array([ True,  True])
>>> bool((native.intt(native.ntt(a, q), q) == a).all())
True
"""
from __future__ import annotations

from ._backend import (  # noqa: F401 (_cpp_module, _CPP_IMPORT_ERROR: for tests, benchmarks)
    BACKEND_ENV_VAR, DEFAULT_TABLE_CACHE_BYTES, TABLE_CACHE_ENV_VAR,
    _CPP_IMPORT_ERROR, _cpp_module, clear_table_cache, implementation,
    set_table_cache_budget, table_cache_info, use_backend)
from ._introspection import available_tiers, backend, cpu_features
from ._numbertheory import MAX_PRIME_COUNT, find_primes, is_prime, psi
from ._products import pointwise_mul, pointwise_mul_rns, polymul, polymul_rns
from ._transforms import intt, intt_rns, ntt, ntt_rns
from ._validation import MAX_MODULUS_BITS, MAX_N, MIN_N, TIERS

__all__ = [
    "BACKEND_ENV_VAR",
    "MAX_MODULUS_BITS",
    "MAX_PRIME_COUNT",
    "MAX_N",
    "MIN_N",
    "TIERS",
    "DEFAULT_TABLE_CACHE_BYTES",
    "TABLE_CACHE_ENV_VAR",
    "available_tiers",
    "backend",
    "clear_table_cache",
    "cpu_features",
    "find_primes",
    "implementation",
    "intt",
    "intt_rns",
    "is_prime",
    "ntt",
    "ntt_rns",
    "pointwise_mul",
    "pointwise_mul_rns",
    "polymul",
    "polymul_rns",
    "psi",
    "set_table_cache_budget",
    "table_cache_info",
    "use_backend",
]
