"""Parameters of the lattice schemes: the security table, presets and the planner.

This module is pure data and arithmetic (it never imports TenSEAL), so that the
planner can explain parameters without building keys.

Security table
--------------
The HomomorphicEncryption.org security standard (Albrecht et al., 2018), table
for *classical* attacks on ternary (uniform {-1, 0, 1}) secrets, gives the
largest total coefficient-modulus size ``log2(q)`` (special prime included)
that still reaches a security level for each ring size ``n``.  Microsoft SEAL
enforces exactly this table (``CoeffModulus::MaxBitCount``)::

        n      128-bit   192-bit   256-bit
     1024         27        19        14
     2048         54        37        29
     4096        109        75        58
     8192        218       152       118
    16384        438       305       237
    32768        881       611       476

Below 128 bits, `security_bits` extrapolates with ``lambda ~ c * n / log2(q)``
(the table is close to that shape; ``c`` is fitted per ring size from the
128-bit column).  That estimate is rough and is only reported for contexts
created with ``allow_insecure=True``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import InsecureParametersError, ParameterError

__all__ = [
    "HE_STANDARD_MAX_BITS",
    "SUPPORTED_RING_SIZES",
    "MAX_PRIME_BITS",
    "CKKS_PRESETS",
    "BFV_PRESETS",
    "Preset",
    "Plan",
    "plan",
    "max_coeff_bits",
    "security_bits",
    "check_security",
    "bfv_depth_estimate",
]

#: ring size n -> {security bits: max total coeff-modulus bits}; HE standard, classical, ternary secret.
HE_STANDARD_MAX_BITS: dict[int, dict[int, int]] = {
    1024: {128: 27, 192: 19, 256: 14},
    2048: {128: 54, 192: 37, 256: 29},
    4096: {128: 109, 192: 75, 256: 58},
    8192: {128: 218, 192: 152, 256: 118},
    16384: {128: 438, 192: 305, 256: 237},
    32768: {128: 881, 192: 611, 256: 476},
}
SUPPORTED_RING_SIZES = tuple(sorted(HE_STANDARD_MAX_BITS))
MAX_PRIME_BITS = 60  # SEAL's limit for one RNS prime
MIN_PRIME_BITS = 17  # primes must be = 1 mod 2n and SEAL refuses tiny ones for larger n


def max_coeff_bits(n: int, security: int = 128) -> int:
    """Largest total coefficient-modulus bits for ring size `n` at `security` bits (HE standard)."""
    if n not in HE_STANDARD_MAX_BITS:
        raise ParameterError(
            f"poly_modulus_degree must be one of {list(SUPPORTED_RING_SIZES)}; got {n!r}."
        )
    if security not in (128, 192, 256):
        raise ParameterError(f"security must be 128, 192 or 256; got {security!r}.")
    return HE_STANDARD_MAX_BITS[n][security]


def security_bits(n: int, total_bits: int) -> int:
    """Estimated classical security (bits) of ring size `n` with a `total_bits`-bit modulus.

    Returns 256, 192 or 128 when the HE-standard table certifies that level; below 128 a
    rough extrapolation ``128 * max_bits_128(n) / total_bits`` (capped at 127).
    """
    table = HE_STANDARD_MAX_BITS.get(n)
    if table is None:
        raise ParameterError(
            f"poly_modulus_degree must be one of {list(SUPPORTED_RING_SIZES)}; got {n!r}."
        )
    for level in (256, 192, 128):
        if total_bits <= table[level]:
            return level
    return min(127, int(128 * table[128] / total_bits))


def check_security(scheme: str, n: int, coeff_mod_bit_sizes: list[int], allow_insecure: bool) -> int:
    """Validate the modulus against the 128-bit column; return the security estimate."""
    total = sum(coeff_mod_bit_sizes)
    level = security_bits(n, total)
    if level < 128 and not allow_insecure:
        raise InsecureParametersError(
            f"{scheme}: coeff_mod_bit_sizes {coeff_mod_bit_sizes} total {total} bits, but ring size "
            f"n={n} allows at most {HE_STANDARD_MAX_BITS[n][128]} bits for 128-bit security "
            f"(HomomorphicEncryption.org standard); this is about {level}-bit. Use fewer or smaller "
            f"primes, a larger poly_modulus_degree (e.g. {_next_ring(n, total)}), a preset, or "
            f"he_ml.plan(...); pass allow_insecure=True only for tests."
        )
    return level


def _next_ring(n: int, total: int) -> int | str:
    for m in SUPPORTED_RING_SIZES:
        if m >= n and HE_STANDARD_MAX_BITS[m][128] >= total:
            return m
    return "none: the modulus is too large for any supported ring"


@dataclass(frozen=True)
class Preset:
    """A named parameter set and what it is for."""

    name: str
    purpose: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int | None = None          # CKKS only
    plain_modulus_bits: int | None = None  # BFV only
    relin_keys: bool = True                # generate relinearization keys at construction

    def as_kwargs(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "poly_modulus_degree": self.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
            "relin_keys": self.relin_keys,
        }
        if self.scale_bits is not None:
            d["scale_bits"] = self.scale_bits
        if self.plain_modulus_bits is not None:
            d["plain_modulus_bits"] = self.plain_modulus_bits
        return d


#: CKKS presets. Every one is within the 128-bit column above. For CKKS the chain is
#: [q0, scale primes..., special prime]; depth = number of scale primes.
CKKS_PRESETS: dict[str, Preset] = {
    "sum": Preset(
        "sum",
        "additive aggregation (encrypted gradient sums), plaintext-weighted sums and dot products "
        "with plaintext weights: depth 1, no relinearization keys, smallest public context",
        8192, (60, 40, 60), scale_bits=40, relin_keys=False,
    ),
    "light": Preset(
        "light",
        "shallow encrypted inference: a linear layer plus one square (depth 2)",
        8192, (60, 40, 40, 60), scale_bits=40,
    ),
    "inference": Preset(
        "inference",
        "encrypted inference with a polynomial activation: linear layer + degree-7 sigmoid "
        "approximation (depth 4)",
        16384, (60, 40, 40, 40, 40, 60), scale_bits=40,
    ),
    "deep": Preset(
        "deep",
        "deeper circuits, e.g. a few steps of encrypted training or composed polynomials (depth 8)",
        16384, (60, 40, 40, 40, 40, 40, 40, 40, 40, 58), scale_bits=40,
    ),
}

#: BFV presets. coeff modulus = SEAL's BFVDefault for the ring (the 128-bit maximum).
BFV_PRESETS: dict[str, Preset] = {
    "sum": Preset(
        "sum",
        "exact integer aggregation (quantized gradient sums) with 30-bit plaintexts: values and "
        "results within +-2^29, no relinearization keys",
        8192, (43, 43, 44, 44, 44), plain_modulus_bits=30, relin_keys=False,
    ),
    "inference": Preset(
        "inference",
        "exact integer and fixed-point arithmetic with a few ciphertext products (estimated depth 3 "
        "at 30-bit plaintexts, values within +-2^29; 10 fractional bits by default, enough to score "
        "a linear model on standardized features or sum N(0, 0.1) gradients of ~10^6 clients)",
        8192, (43, 43, 44, 44, 44), plain_modulus_bits=30,
    ),
    "deep": Preset(
        "deep",
        "deeper exact integer circuits (estimated depth 9 at 20-bit plaintexts)",
        16384, (48, 48, 48, 49, 49, 49, 49, 49, 49), plain_modulus_bits=20,
    ),
}


def bfv_depth_estimate(n: int, coeff_mod_bit_sizes: list[int] | tuple[int, ...], plain_modulus_bits: int) -> int:
    """Estimated ciphertext x ciphertext multiplications before BFV noise reaches the plaintext.

    Measured on SEAL 4 (invariant noise budget): a fresh ciphertext has about
    ``log2(q_data) - log2(t) - 8`` bits of budget, and each relinearized product costs about
    ``log2(t) + log2(n)`` bits (n=8192, t=20 bits: 146 bits fresh, 33 per product -> depth 4).
    Decryption re-checks the real budget, so an optimistic estimate cannot produce silent garbage.
    """
    data_bits = sum(coeff_mod_bit_sizes[:-1]) if len(coeff_mod_bit_sizes) > 1 else sum(coeff_mod_bit_sizes)
    fresh = data_bits - plain_modulus_bits - 8
    per_mult = plain_modulus_bits + math.log2(n)
    return max(0, int((fresh - 1) // per_mult))


def _ckks_sizes(n: int, bits: list[int]) -> dict[str, int]:
    """Serialized sizes in bytes (SEAL stores 64-bit words, zstd shrinks them to ~bits/8)."""
    data = bits[:-1] if len(bits) > 1 else bits
    word = lambda b: b / 8 + 0.2  # noqa: E731 - compression overhead measured ~2-3 %
    ct = int(2 * n * sum(word(b) for b in data))
    pk = int(2 * n * sum(word(b) for b in bits))
    rk = int((len(bits) - 1) * 2 * n * sum(word(b) for b in bits)) if len(bits) > 1 else 0
    return {"ciphertext_bytes": ct, "public_key_bytes": pk, "relin_key_bytes": rk,
            "rotation_key_bytes_for_sum": int(rk * math.log2(n // 2))}


@dataclass(frozen=True)
class Plan:
    """Parameters that fit a described computation, with a plain-language explanation.

    Build the context with :meth:`context`; print the plan (``str(plan)``) for the reasoning.
    """

    scheme: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    depth: int
    security_bits: int
    slot_count: int
    ciphertexts_for_values: int
    scale_bits: int | None = None
    plain_modulus_bits: int | None = None
    expected_precision_bits: float | None = None
    value_bound: float | None = None
    rotations: bool = False
    sizes: dict[str, int] = field(default_factory=dict)
    explanation: str = ""

    def parameters(self) -> dict[str, Any]:
        """Keyword arguments for ``he_ml.CKKS`` / ``he_ml.BFV``."""
        d: dict[str, Any] = {"poly_modulus_degree": self.poly_modulus_degree,
                             "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
                             "relin_keys": self.depth > 0}
        if self.scheme == "ckks":
            d["scale_bits"] = self.scale_bits
        else:
            d["plain_modulus_bits"] = self.plain_modulus_bits
        if self.rotations:
            d["rotations"] = "sum"
        return d

    def context(self, **overrides: Any):
        """Generate keys and return the context (``he_ml.CKKS`` or ``he_ml.BFV``).

        ``overrides`` are passed on to the constructor (e.g. ``fixed_point_bits=`` for BFV).
        """
        from . import _scheme_class
        return _scheme_class(self.scheme)(preset=None, **{**self.parameters(), **overrides})

    make_context = context

    def __str__(self) -> str:
        return self.explanation


# CKKS precision model (measured, see tests/schemes/test_ckks.py::fresh_error_bound): a fresh
# encryption has a per-slot error of standard deviation n / (6 * 2^scale_bits); the largest of
# many slots stays below ~12 std = 2n / 2^scale_bits. Each multiplication of values of magnitude
# <= 1 adds about one such error (rescale rounding), so for |values| <= 1:
#     precision bits ~ scale_bits - log2(n) - 1 - log2(1 + depth).
def _ckks_precision_bits(n: int, scale_bits: int, depth: int) -> float:
    return scale_bits - math.log2(n) - 1 - math.log2(1 + depth)


def plan(depth: int = 0, precision_bits: int = 20, values: int = 1, rotations: bool = False,
         scheme: str = "ckks", *, max_value: float = 2.0 ** 10, security: int = 128) -> Plan:
    """Choose CKKS/BFV parameters for a described computation.

    Parameters
    ----------
    depth : int, default 0
        Multiplicative depth: the longest chain of ciphertext x ciphertext (or, for CKKS, also
        ciphertext x float plaintext) multiplications.
    precision_bits : int, default 20
        CKKS: bits of absolute precision wanted after the computation for values of magnitude
        <= 1 (error <= 2^-precision_bits; larger values lose precision in proportion to their
        products). BFV: ignored (BFV is exact).
    values : int, default 1
        How many values one encrypted vector holds (sets the number of ciphertexts reported).
    rotations : bool, default False
        Whether the computation needs ``sum``/``dot`` (rotation keys for power-of-two steps).
    scheme : {"ckks", "bfv"}
    max_value : float, default 1024
        CKKS: largest |value| of any input, intermediate or result. BFV: largest |integer| of any
        input or result; sets the plain modulus (t > 2 * max_value).
    security : {128, 192, 256}
        Security column of the HE-standard table to respect.

    Returns
    -------
    Plan
        Ring size, modulus chain, scale, expected precision, sizes and ``explanation``;
        ``plan(...).context()`` builds the context.

    Raises
    ------
    ParameterError
        If nothing within the HE standard fits (the message says which constraint failed).

    Examples
    --------
    >>> p = plan(depth=3, precision_bits=20)
    >>> p.poly_modulus_degree, p.coeff_mod_bit_sizes
    (8192, (48, 36, 36, 36, 48))
    """
    scheme = str(scheme).lower()
    if not isinstance(depth, (int,)) or isinstance(depth, bool) or depth < 0:
        raise ParameterError(f"plan: depth must be an integer >= 0; got {depth!r}.")
    if not isinstance(values, int) or values < 1:
        raise ParameterError(f"plan: values must be an integer >= 1; got {values!r}.")
    if not (isinstance(max_value, (int, float)) and max_value > 0 and math.isfinite(max_value)):
        raise ParameterError(f"plan: max_value must be a positive finite number; got {max_value!r}.")
    if scheme == "ckks":
        return _plan_ckks(depth, precision_bits, values, rotations, max_value, security)
    if scheme == "bfv":
        return _plan_bfv(depth, values, rotations, max_value, security)
    raise ParameterError(f"plan: scheme must be 'ckks' or 'bfv'; got {scheme!r}.")


def _plan_ckks(depth: int, precision_bits: int, values: int, rotations: bool, max_value: float,
               security: int) -> Plan:
    if not isinstance(precision_bits, (int, float)) or not 1 <= precision_bits <= 50:
        raise ParameterError(f"plan: precision_bits must be in [1, 50]; got {precision_bits!r}.")
    int_bits = max(1, math.ceil(math.log2(max_value)) + 1)  # magnitude bits incl. sign headroom
    reasons = []
    for n in SUPPORTED_RING_SIZES:
        if n < 2048:
            continue  # n=1024 has no room for even one 27-bit-plus-scale chain
        # scale: enough bits for the precision after noise, at least 20, at most 60
        scale = math.ceil(precision_bits + math.log2(n) + 1 + math.log2(1 + depth))
        scale = max(scale, 20)
        q0 = scale + int_bits + 1
        if scale > MAX_PRIME_BITS or q0 > MAX_PRIME_BITS:
            reasons.append(f"n={n}: scale {scale} bits + {int_bits} magnitude bits exceed the "
                           f"{MAX_PRIME_BITS}-bit prime limit")
            continue
        special = max(q0, scale)
        bits = [q0] + [scale] * depth + [special]
        total = sum(bits)
        limit = HE_STANDARD_MAX_BITS[n][security]
        if total > limit:
            reasons.append(f"n={n}: needs {total} bits > {limit} allowed")
            continue
        slots = n // 2
        prec = _ckks_precision_bits(n, scale, depth)
        sizes = _ckks_sizes(n, bits)
        cts = math.ceil(values / slots)
        expl = (
            f"CKKS plan for depth {depth}, {precision_bits} bits of precision, |values| <= {max_value:g}, "
            f"{values} values{' with sum/dot rotations' if rotations else ''}:\n"
            f"- ring size n = {n} ({slots} values per ciphertext, so {cts} ciphertext(s) per vector);\n"
            f"- modulus chain {bits} = {total} bits (<= {limit} allowed for {security}-bit security "
            f"by the HomomorphicEncryption.org table): a {q0}-bit first prime holds the result "
            f"(scale {scale} bits + {int_bits} bits of magnitude), {depth} prime(s) of {scale} bits are "
            f"consumed one per multiplication (rescale), and a {special}-bit special prime serves key "
            f"switching;\n"
            f"- scale 2^{scale}: expected precision about {prec:.1f} bits after {depth} "
            f"multiplication(s) (error ~ 2^-{prec:.0f} absolute);\n"
            f"- sizes: ciphertext ~{sizes['ciphertext_bytes'] / 1e3:.0f} kB "
            f"({sizes['ciphertext_bytes'] / slots:.0f} B/value), public key "
            f"~{sizes['public_key_bytes'] / 1e3:.0f} kB"
            + (f", relinearization keys ~{sizes['relin_key_bytes'] / 1e6:.1f} MB" if depth else "")
            + (f", rotation keys for sum ~{sizes['rotation_key_bytes_for_sum'] / 1e6:.1f} MB"
               if rotations else "") + "."
        )
        return Plan("ckks", n, tuple(bits), depth, security, slots, cts, scale_bits=scale,
                    expected_precision_bits=round(prec, 1), value_bound=2.0 ** (q0 - scale - 1),
                    rotations=bool(rotations), sizes=sizes, explanation=expl)
    raise ParameterError(
        f"plan: no CKKS parameters fit depth {depth} at {precision_bits} bits of precision with "
        f"|values| <= {max_value:g} at {security}-bit security: " + "; ".join(reasons) +
        ". Reduce the depth (e.g. lower-degree polynomial approximations), the precision, or split "
        "the computation and refresh by decrypting and re-encrypting at the key holder."
    )


def _plan_bfv(depth: int, values: int, rotations: bool, max_value: float, security: int) -> Plan:
    t_bits = max(17, math.ceil(math.log2(2 * max_value + 1)) + 1)
    if t_bits > 60:
        raise ParameterError(
            f"plan: BFV plain modulus would need {t_bits} bits for |values| <= {max_value:g}; SEAL "
            f"allows at most 60. Scale the integers down or use CKKS."
        )
    reasons = []
    for n in SUPPORTED_RING_SIZES:
        if n < 4096:
            continue
        limit = HE_STANDARD_MAX_BITS[n][security]
        # spread the allowed bits over primes of <= 60 bits (SEAL's BFVDefault does the same)
        count = math.ceil(limit / MAX_PRIME_BITS) + (1 if n >= 8192 else 0)
        base, extra = divmod(limit, count)
        bits = [base + (1 if i >= count - extra else 0) for i in range(count)]
        est = bfv_depth_estimate(n, bits, t_bits)
        if est < depth:
            reasons.append(f"n={n}: estimated depth {est} < {depth}")
            continue
        sizes = _ckks_sizes(n, bits)
        cts = math.ceil(values / n)
        expl = (
            f"BFV plan for depth {depth}, |integers| <= {max_value:g}, {values} values:\n"
            f"- ring size n = {n} ({n} integers per ciphertext, {cts} ciphertext(s) per vector);\n"
            f"- plain modulus: a {t_bits}-bit batching prime t (= 1 mod 2n); results are exact modulo t, "
            f"i.e. exact while |result| < t/2 ~ 2^{t_bits - 1};\n"
            f"- coefficient modulus {bits} = {sum(bits)} bits (<= {limit} for {security}-bit security), "
            f"estimated noise budget for {est} ciphertext products;\n"
            f"- sizes: ciphertext ~{sizes['ciphertext_bytes'] / 1e3:.0f} kB "
            f"({sizes['ciphertext_bytes'] / n:.0f} B/value), public key ~{sizes['public_key_bytes'] / 1e3:.0f} kB."
        )
        return Plan("bfv", n, tuple(bits), depth, security, n, cts, plain_modulus_bits=t_bits,
                    value_bound=float(2 ** (t_bits - 1)), rotations=bool(rotations), sizes=sizes,
                    explanation=expl)
    raise ParameterError(
        f"plan: no BFV parameters fit depth {depth} with a {t_bits}-bit plain modulus at {security}-bit "
        f"security: " + "; ".join(reasons) + ". Use smaller integers (fewer plain modulus bits) or a "
        "shallower computation."
    )
