"""One table of the size limits every he_ml loader checks before it allocates.

Every parser of untrusted bytes (``he_ml.load_context``, ``ctx.ciphertext_from_bytes``,
``GradientAggregator.add`` / ``sum`` / ``decrypt``, ``EncryptedFeatures.from_bytes`` and the
blob container itself) compares each *declared* size -- ring degree, prime count and widths,
key bits, section counts, shape products, integer digit counts, fixed-point bits, counts --
with this table **before** building a SEAL context, a gmpy2 integer, a big shift or a
numpy buffer from it, the way Microsoft SEAL checks ``SEAL_POLY_MOD_DEGREE_MAX`` and HEXL its
preconditions. A violation raises an :mod:`he_ml.errors` class (`InvalidCiphertextError` for
bytes, `ParameterError` for a caller's argument), never ``MemoryError``, ``OverflowError`` or
a multi-second stall.

The limits are data, not scattered constants: :data:`LIMITS` maps a name to a
:class:`Limit` holding the value and *why* it is that number, and
``docs/security-limits.md`` prints the same table. ``allow_insecure=True`` (a caller's
keyword, never a blob field) lowers only the *security floor* (HE-standard modulus bound,
Paillier key size); none of the limits below moves with it.

Examples
--------
>>> from he_ml.schemes.limits import LIMITS, limit
>>> limit("ring_degree_max")
32768
>>> LIMITS["json_int_digits_max"].reason.split(":")[0]
"Python's own int/str conversion limit (sys.int_info.default_max_str_digits)"
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import HEError, InvalidCiphertextError

__all__ = ["Limit", "LIMITS", "limit", "check_count", "check_int", "seal_context_bytes_estimate",
           "seal_min_prime_bits", "shape_product"]


@dataclass(frozen=True)
class Limit:
    """One documented limit: its value, unit and the reason for the number."""

    name: str
    value: int
    unit: str
    reason: str


def _table(*rows: tuple[str, int, str, str]) -> dict[str, Limit]:
    return {name: Limit(name, value, unit, reason) for name, value, unit, reason in rows}


MiB = 1 << 20

#: name -> Limit. Keep ``docs/security-limits.md`` in sync (a test compares them).
LIMITS: dict[str, Limit] = _table(
    # ------------------------------------------------------------------ container
    ("blob_bytes_max", 1 << 34, "bytes",
     "16 GiB: the largest legitimate blob (an aggregate of 1e8 CKKS values at ~64 B each is "
     "6.4 GB) with room to spare; the container is read fully into memory before parsing."),
    ("metadata_bytes_max", 4 * MiB, "bytes",
     "4 MiB of JSON header: an aggregate layout of 65536 named arrays with 8-dim shapes takes "
     "~3 MiB; everything else is a few hundred bytes."),
    ("json_int_digits_max", 4300, "decimal digits",
     "Python's own int/str conversion limit (sys.int_info.default_max_str_digits): json.dumps "
     "cannot write a longer integer, so no legitimate blob holds one, and converting longer "
     "strings is quadratic."),
    ("json_big_ints_max", 64, "integers",
     "integers of more than 19 digits (beyond int64) in one header: a Paillier vector carries "
     "one slot bound, an aggregate one more; 64 bounds the quadratic str->int work of a header "
     "to ~20 ms (800 integers of 4000 digits took 49 s in the aggregator)."),
    ("json_depth_max", 32, "nesting levels",
     "metadata nests at most 5 levels (aggregate spec: object/list/entry/shape); 32 leaves room "
     "and stays far below the interpreter's recursion limit."),
    ("json_nodes_max", 1 << 20, "JSON values",
     "objects, lists and scalars in one header; bounds the Python objects json.loads builds "
     "(~100 B each: about 100 MB at the limit)."),
    ("sections_max", 1 << 24, "sections",
     "payload sections (one per ciphertext); 16 M ciphertexts is 8e10 CKKS values."),
    # ------------------------------------------------------------------ vectors and layouts
    ("shape_dims_max", 32, "dimensions",
     "numpy allows 64; no update or feature tensor needs more than 32."),
    ("vector_values_max", 1 << 40, "values",
     "shape product cap of one vector or aggregate layout (1.1e12 values; the product is "
     "accumulated with early exit, so a layout of huge integers costs microseconds)."),
    ("spec_entries_max", 65536, "arrays",
     "arrays in one aggregate update (a state_dict of a 1000-layer network has ~3000)."),
    ("count_max", 1 << 32, "updates",
     "clients / updates in one total (max_clients, Paillier max_additions, max_reduction_terms, "
     "decrypt(count=...)): 4.3e9 is beyond any federation and exact in float64."),
    ("fixed_point_bits_max", 120, "bits",
     "BFV vector fixed-point bits: a product of two 60-bit-plaintext values (t <= 2^60)."),
    ("aggregate_fixed_point_bits_max", 52, "bits",
     "BFV aggregation quantization: float64 has 52 fraction bits."),
    ("feature_fixed_point_bits_max", 30, "bits",
     "BFV feature quantization in encrypt_features (values * 2^bits must fit the plaintext)."),
    ("bfv_depth_max", 64, "products",
     "recorded multiplicative depth of a BFV vector; no 128-bit parameter set reaches 20."),
    ("polynomial_degree_max", 31, "degree",
     "polynomial approximations (he_ml.ml): above 31 the power-basis coefficients encrypted "
     "evaluation needs grow like (1 + sqrt 2)^degree and lose more precision than CKKS keeps."),
    # ------------------------------------------------------------------ lattice (SEAL)
    ("ring_degree_min", 1024, "n",
     "smallest ring of the HomomorphicEncryption.org security table."),
    ("ring_degree_max", 32768, "n",
     "largest ring of the HomomorphicEncryption.org table; SEAL accepts 131072, but without a "
     "security estimate and at gigabytes per context."),
    ("primes_max", 32, "primes",
     "RNS primes in the coefficient modulus (SEAL allows 64): SEAL's tables grow as primes^2 "
     "(measured 1 GB at n=32768 with 30 primes); presets use <= 10, SEAL's BFVDefault <= 16."),
    ("prime_bits_max", 60, "bits", "SEAL's limit for one RNS prime (SEAL_USER_MOD_BIT_COUNT_MAX)."),
    ("modulus_bits_max", 881, "bits",
     "total coefficient modulus: the largest 128-bit modulus of the largest ring (n=32768). "
     "allow_insecure lets a modulus exceed its own ring's 128-bit bound, never this ceiling."),
    ("seal_context_bytes_max", 640 * MiB, "bytes (estimated)",
     "memory of one SEALContext, estimated as 32 * n * k * (k + 1) bytes for k primes (NTT "
     "and base-conversion tables of every level; within 30 % of measurements from 3 to 1000 MB). "
     "Admits every 128-bit chain up to n=32768 with 24 primes."),
    ("seal_context_cache_bytes", 512 * MiB, "bytes (estimated)",
     "total estimated size of the SEALContexts kept for reuse; least recently used are dropped "
     "first, a context larger than this is never cached."),
    ("seal_params_bytes_max", 4096, "bytes",
     "serialized EncryptionParameters (64 primes take ~600 bytes)."),
    ("seal_expansion_max", 8, "x compressed size",
     "a SEAL section may decompress to at most 8 times its stored size (+4 KiB): key and "
     "ciphertext coefficients are uniform below primes of >= 17 bits in 64-bit words, so zstd "
     "shrinks them at most ~64/17 = 3.8x; a 28 KB Galois-key section expanding to 384 MiB of "
     "zeros is refused before SEAL inflates it."),
    ("galois_keys_max", 64, "keys",
     "rotation keys in a context; the +-power-of-two set at n=32768 is 28 (+1 BFV row swap), and "
     "every key costs (k-1) * 2 * n * k * 8 bytes."),
    # ------------------------------------------------------------------ Paillier
    ("paillier_key_bits_min", 2048, "bits",
     "112-bit security (NIST SP 800-57 Part 1 Rev. 5, Table 2); the security floor that "
     "allow_insecure=True lowers."),
    ("paillier_key_bits_insecure_min", 16, "bits",
     "absolute floor with allow_insecure=True (tests and doctests only)."),
    ("paillier_key_bits_max", 8192, "bits",
     "192-bit security needs 7680; larger moduli cost seconds per encryption (a random "
     "16384-bit one: 13 s for the first) and their packed-slot bounds exceed json_int_digits_max."),
    ("paillier_small_factor_bound", 1 << 16, "primes below",
     "trial division on load (one gcd with the primorial of the 6542 primes below 2^16, 0.06 ms "
     "at 3072 bits; 2^20 would take 3.5 ms for 92 % instead of 90 %): a real modulus p*q has no "
     "such factor (p, q have key_bits/2 bits; for tiny insecure keys the bound shrinks to "
     "2^(key_bits/2 - 2)), while ~90 % of random odd moduli have one."),
    ("paillier_precision_bits_max", 512, "bits", "fractional bits of the packed fixed-point encoding."),
    ("paillier_multiplier_bits_max", 8192, "bits",
     "bits reserved for plaintext multipliers; more than the key size can never fit a slot, "
     "and 2^(2^33) is a 1 GB integer."),
)


def limit(name: str) -> int:
    """The value of limit `name` (KeyError for an unknown name: a bug, not user input)."""
    return LIMITS[name].value


def _refuse(exc: type[HEError], what: str, value: Any, bound: str, name: str, hint: str) -> HEError:
    shown = f"{value!r:.60}" if not isinstance(value, int) or abs(value) < 10 ** 40 else \
        f"an integer of {value.bit_length()} bits"
    return exc(f"{what} must be {bound}; got {shown} (he_ml limit {name!r}, see he_ml.schemes.limits.LIMITS "
               f"and docs/security-limits.md). {hint}".rstrip())


def check_int(value: Any, name: str, what: str, *, low: int = 0, high: int | None = None,
              exc: type[HEError] = InvalidCiphertextError,
              hint: str = "Re-send the bytes produced by he_ml's to_bytes().", bound_text: str | None = None) -> int:
    """Return ``value`` if it is a plain int in ``[low, high]`` (``high`` defaults to the limit).

    Booleans, floats (incl. inf/nan), strings and numpy scalars other than integers are refused
    with `exc` before any arithmetic touches them.
    """
    hi = limit(name) if high is None else high
    text = bound_text or f"an integer in [{low}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np  # numpy integers are fine from callers
            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise _refuse(exc, what, value, text, name, hint) from None
    if not low <= value <= hi:
        raise _refuse(exc, what, value, text, name, hint)
    return value


def check_count(value: Any, what: str, *, exc: type[HEError] = InvalidCiphertextError,
                hint: str = "Re-send the bytes produced by he_ml's to_bytes().") -> int:
    """A positive count (clients, updates, additions) within ``count_max``."""
    return check_int(value, "count_max", what, low=1, exc=exc, hint=hint,
                     bound_text=f"a positive int (at most {limit('count_max')})")


def shape_product(shape: Any, what: str, *, exc: type[HEError] = InvalidCiphertextError,
                  allow_zero: bool = False) -> int:
    """Validate a shape (list of ints) and return its product, capped by ``vector_values_max``.

    Each dimension is checked before it is multiplied and the product is accumulated with an
    early exit, so a layout of huge integers costs microseconds instead of quadratic time.
    """
    cap = limit("vector_values_max")
    if not isinstance(shape, (list, tuple)) or len(shape) > limit("shape_dims_max"):
        raise _refuse(exc, what, shape, f"a list of at most {limit('shape_dims_max')} dimensions",
                      "shape_dims_max", "Re-send the bytes produced by he_ml's to_bytes().")
    prod = 1
    for s in shape:
        check_int(s, "vector_values_max", f"{what} (a dimension)", low=0 if allow_zero else 1, exc=exc)
        prod *= s
        if prod > cap:
            raise _refuse(exc, what, list(shape)[:8], f"a shape of at most {cap} values",
                          "vector_values_max", "Split the data over several blobs.")
    return prod


def seal_min_prime_bits(n: int) -> int:
    """Smallest RNS prime width for ring size n: a prime = 1 mod 2n needs more bits than 2n."""
    return int(math.log2(2 * n)) + 2


def seal_context_bytes_estimate(n: int, primes: int) -> int:
    """Estimated memory of a SEALContext for ring size `n` and `primes` RNS primes (key level).

    SEAL builds NTT and RNS base-conversion tables for every level of the modulus chain
    (k, k-1, ..., 1 primes), about 64 n bytes per prime and level, so
    ``32 n k (k + 1)`` bytes. Measured with SEAL 4.3 (TenSEAL 0.3.18, RSS growth): n=8192 k=5: 10 MB (est. 7.9);
    n=16384 k=10: 66 MB (58); n=32768 k=16: 305 MB (285); n=32768 k=30: 993 MB (975).
    """
    return 32 * int(n) * int(primes) * (int(primes) + 1) + (2 << 20)
