"""Packing many signed fixed-point values into one big integer (no cryptography).

Slot layout
-----------
A plaintext holds ``D`` *digits* of ``b`` bits (``D * b <= usable_bits``)::

    M = v_0 + v_1 * B + v_2 * B**2 + ... + v_{D-1} * B**(D-1),   B = 2**b

with **signed** digits ``|v_i| <= cap = 2**(b-1) - 1`` (balanced base-``B``
representation).  ``M`` itself may be negative; an additive scheme stores it as
``M mod n`` and the decoder lifts it back to ``(-n/2, n/2)``.  Because
``|M| < B**D / 2 <= 2**(usable_bits-1) < n/2``, the lift is exact, and because
the balanced representation with digits in ``[-cap, cap]`` is unique, the
digits are recovered exactly, borrows included (a negative slot borrows one
from the slot above when written in plain binary; the decoder undoes it).

The map ``(v_i) -> M`` is linear over the integers, so as long as every digit
stays within ``[-cap, cap]``:

* adding two packed integers adds slot-wise, negating negates slot-wise;
* multiplying by an integer ``c`` multiplies every slot by ``c``;
* multiplying by ``W = sum_i w_i B**(k-1-i)`` (weights in reverse order, the
  *product layout*) is a polynomial product whose digit ``k-1`` is the inner
  product ``sum_i v_i w_i``.  It occupies ``2k-1`` digits, so a product layout
  uses only ``k = (D+1)//2`` value slots per plaintext.

Keeping every digit within ``cap`` is the caller's job (``he_ml.schemes.paillier``
tracks a public bound per vector); this module refuses to pack a value beyond
``cap`` and refuses to unpack an integer whose digits do not fit, so a violated
bound surfaces as `EncodingOverflowError` instead of garbage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..schemes.limits import limit
from ..errors import EncodingOverflowError, ParameterError
from .fixed_point import from_fixed, to_fixed

__all__ = ["SlotLayout", "PackedEncoding", "LAYOUTS"]

#: "dense": every digit holds a value (best for summation); "product": half the
#: digits hold values so a plaintext-polynomial product (``dot``) fits.
LAYOUTS = ("dense", "product")


@dataclass(frozen=True)
class SlotLayout:
    """Digits of ``slot_bits`` bits, ``digits`` of them per plaintext, ``slots`` holding values.

    Parameters
    ----------
    slot_bits : int
        Width ``b`` of one digit, including its sign.
    digits : int
        Digits ``D`` that fit in the plaintext (``D * b <= usable_bits``).
    slots : int
        Values packed per plaintext (``slots <= digits``).
    """

    slot_bits: int
    digits: int
    slots: int
    _offsets: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.slot_bits < 2 or self.digits < 1 or not (1 <= self.slots <= self.digits):
            raise ParameterError(
                f"invalid slot layout: slot_bits={self.slot_bits}, digits={self.digits}, "
                f"slots={self.slots}; need slot_bits >= 2 and 1 <= slots <= digits."
            )

    @property
    def base(self) -> int:
        """``B = 2**slot_bits``."""
        return 1 << self.slot_bits

    @property
    def cap(self) -> int:
        """Largest magnitude a digit may hold: ``2**(slot_bits-1) - 1``."""
        return (1 << (self.slot_bits - 1)) - 1

    def _offset(self, count: int) -> int:
        # O = 2**(b-1) * (1 + B + ... + B**(count-1)): adding it turns balanced
        # digits v in [-cap, cap] into plain binary digits v + 2**(b-1) in [1, B-1].
        o = self._offsets.get(count)
        if o is None:
            half = 1 << (self.slot_bits - 1)
            o = half * ((self.base ** count - 1) // (self.base - 1))
            self._offsets[count] = o
        return o

    def pack(self, values: Sequence[int], *, start: int = 0) -> int:
        """Pack signed integers into digits ``start, start+1, ...``; returns the signed integer M.

        Raises
        ------
        EncodingOverflowError
            If a value's magnitude exceeds `cap` or there are more values than digits.
        """
        vals = list(values)
        if start < 0 or start + len(vals) > self.digits:
            raise EncodingOverflowError(
                f"cannot pack {len(vals)} values from digit {start}: the layout has {self.digits} digits."
            )
        cap = self.cap
        if vals:
            hi = max(vals)
            lo = min(vals)
            if hi > cap or -lo > cap:
                bad = hi if hi > cap else lo
                raise EncodingOverflowError(
                    f"slot value {bad} does not fit a {self.slot_bits}-bit signed slot (|v| <= {cap}). "
                    f"Lower precision_bits or max_value, or raise the slot width."
                )
        b = self.slot_bits
        half = 1 << (b - 1)
        u = 0
        for v in reversed(vals):
            u = (u << b) | (v + half)
        m = u - self._offset(len(vals))
        return m << (b * start) if start else m

    def unpack(self, m: int, count: int, *, digits: int | None = None) -> list[int]:
        """Inverse of `pack`: the first ``count`` balanced digits of the signed integer ``m``.

        Every digit up to ``digits`` (default ``self.digits``) is checked; digits beyond
        ``count`` are decoded too (so the caller can use them) and returned after the first
        ``count`` only if ``count == digits``.

        Raises
        ------
        EncodingOverflowError
            If ``m`` is not a balanced base-``B`` number of ``digits`` digits, each in
            ``[-cap, cap]`` -- i.e. some slot overflowed (or the plaintext is not one of ours).
        """
        d = self.digits if digits is None else digits
        b = self.slot_bits
        u = m + self._offset(d)
        if u < 0 or u >> (b * d):
            raise EncodingOverflowError(
                f"decrypted plaintext does not decode as {d} signed {b}-bit slots: a slot overflowed "
                f"its +-{self.cap} range, or the ciphertext was not produced under this context."
            )
        mask = self.base - 1
        half = 1 << (b - 1)
        out = []
        for i in range(d):
            digit = (u >> (b * i)) & mask
            if digit == 0:  # v = -2**(b-1), outside [-cap, cap]
                raise EncodingOverflowError(
                    f"decrypted slot {i} equals -2**{b - 1}, outside the +-{self.cap} range of a "
                    f"{b}-bit signed slot: a slot overflowed or the ciphertext is foreign."
                )
            out.append(digit - half)
        return out[:count] if count < d else out

    def reversed_weights(self, w: Sequence[int]) -> int:
        """``W = sum_i w_i B**(slots-1-i)``: multiplying a packed M by W puts the inner
        product in digit ``slots-1`` (needs ``2*slots - 1 <= digits``)."""
        ws = list(w)
        if len(ws) > self.slots:
            raise ParameterError(f"{len(ws)} weights for a {self.slots}-slot layout")
        b = self.slot_bits
        acc = 0
        for x in ws:  # w_0 ends up in the top position slots-1
            acc = (acc << b) + x
        return acc << (b * (self.slots - len(ws)))


def _bits(x: int) -> int:
    return int(x).bit_length()


@dataclass(frozen=True)
class PackedEncoding:
    """Fixed-point values packed into signed slots, with declared headroom.

    Parameters
    ----------
    usable_bits : int
        Bits available in the plaintext (``key_bits - 2`` for Paillier, so that every
        packed value lies in ``(-n/2, n/2)``).
    precision_bits : int
        Fractional bits ``f``: a value ``x`` is stored as ``round(x * 2**f)``.
    max_value : float
        Declared range: encryption accepts ``|x| <= max_value``.
    max_additions : int
        How many encrypted vectors may be summed into one (e.g. number of clients).
    multiplier_bits : int
        Bits reserved for plaintext multipliers (scalar products, dot weights): the product
        of the encoded multipliers applied to a vector may reach ``2**multiplier_bits``.
    max_reduction_terms : int
        How many values one ``sum``/``dot`` may combine.
    layout : {"dense", "product"}
        "dense" fills every digit (sum-only workloads); "product" leaves room for the
        reversed-weight product so ``dot`` works (about half the slots).
    slots : int or None
        Force fewer values per plaintext (e.g. 1 for elementwise products by arrays).

    Notes
    -----
    Slot width ``b = 1 + bits(F * max_additions * 2**multiplier_bits * R)`` with
    ``F = ceil(max_value * 2**f)`` the largest fresh slot value and ``R`` the reduction
    reserve (``max_reduction_terms``, plus ``slots`` in the product layout because the
    polynomial product adds up to ``slots`` terms per digit).
    """

    usable_bits: int
    precision_bits: int = 24
    max_value: float = 1024.0
    max_additions: int = 1024
    multiplier_bits: int = 32
    max_reduction_terms: int = 4096
    layout: str = "product"
    slots: int | None = None

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ParameterError(msg)

        for name in ("usable_bits", "precision_bits", "max_additions", "multiplier_bits",
                     "max_reduction_terms"):
            v = getattr(self, name)
            need(isinstance(v, (int, np.integer)) and not isinstance(v, bool),
                 f"{name} must be an integer; got {v!r}.")
        # Sizes are bounded (he_ml.schemes.limits) before any shift or product uses them:
        # 1 << multiplier_bits with multiplier_bits = 2**33 would be a 1 GB integer.
        lim_bits, lim_prec = limit("paillier_key_bits_max"), limit("paillier_precision_bits_max")
        lim_mult, lim_count = limit("paillier_multiplier_bits_max"), limit("count_max")
        need(1 <= self.usable_bits <= lim_bits, f"usable_bits must be in [1, {lim_bits}]; got {self.usable_bits}.")
        need(0 <= self.precision_bits <= lim_prec,
             f"precision_bits must be in [0, {lim_prec}]; got {self.precision_bits}.")
        need(1 <= self.max_additions <= lim_count,
             f"max_additions must be >= 1 and <= {lim_count} (limit count_max); got {self.max_additions}.")
        need(0 <= self.multiplier_bits <= lim_mult,
             f"multiplier_bits must be >= 0 and <= {lim_mult} (limit paillier_multiplier_bits_max); got {self.multiplier_bits}.")
        need(1 <= self.max_reduction_terms <= lim_count,
             f"max_reduction_terms must be >= 1 and <= {lim_count} (limit count_max); got {self.max_reduction_terms}.")
        mv = self.max_value
        try:
            mv_ok = (isinstance(mv, (int, float, np.integer, np.floating)) and not isinstance(mv, bool)
                     and math.isfinite(float(mv)) and float(mv) > 0)
        except OverflowError:  # an integer beyond the double range
            mv_ok = False
        need(mv_ok, f"max_value must be a positive finite number; got {mv!r:.60}.")
        # mv * 2**p is finite iff frexp's exponent e (mv = m 2**e, m in [0.5, 1)) has e + p <= 1024;
        # math.ldexp itself raises OverflowError instead of returning inf
        need(math.frexp(float(mv))[1] + int(self.precision_bits) <= 1024,
             f"max_value * 2**precision_bits must be a finite double; got max_value={mv!r:.30} with "
             f"precision_bits={self.precision_bits}. Lower one of them.")
        need(self.layout in LAYOUTS, f"layout must be one of {LAYOUTS}; got {self.layout!r}.")
        need(self.slots is None or (isinstance(self.slots, (int, np.integer)) and not isinstance(self.slots, bool)
                                    and 1 <= self.slots <= self.usable_bits),
             f"slots must be None or a positive integer <= usable_bits; got {self.slots!r:.60}.")
        # Derived layout; frozen dataclass -> object.__setattr__.
        object.__setattr__(self, "_layout", self._plan())

    # ------------------------------------------------------------------ planning
    @property
    def fresh_bound(self) -> int:
        """``F``: largest |slot value| of a fresh encryption, ``ceil(max_value * 2**f)``."""
        return math.ceil(math.ldexp(float(self.max_value), self.precision_bits))

    def _slot_bits_for(self, slots: int) -> int:
        reserve = self.max_reduction_terms + (slots if self.layout == "product" else 0)
        cap_needed = self.fresh_bound * self.max_additions * (1 << self.multiplier_bits) * reserve
        return 1 + _bits(cap_needed)

    def _max_slots(self, b: int) -> int:
        d = int(self.usable_bits) // b
        k = d if self.layout == "dense" else (d + 1) // 2
        if self.slots is not None:
            k = min(k, int(self.slots))
        return k

    def _plan(self) -> SlotLayout:
        u = int(self.usable_bits)
        # The slot width grows (through the product reserve) with the slot count and the
        # slot count shrinks with the width: take the largest k consistent with both.
        k = max(1, self._max_slots(self._slot_bits_for(1)))
        while k > 1 and k > self._max_slots(self._slot_bits_for(k)):
            k -= 1
        b = self._slot_bits_for(k)
        d = u // b
        if d < 1 or (self.layout == "product" and 2 * k - 1 > d):
            raise ParameterError(
                f"the encoding needs {b}-bit slots (precision_bits={self.precision_bits}, "
                f"max_value={self.max_value}, max_additions={self.max_additions}, "
                f"multiplier_bits={self.multiplier_bits}, max_reduction_terms={self.max_reduction_terms}) "
                f"but a plaintext offers only {u} bits. Lower one of these or use a larger key."
            )
        if self.slots is not None and int(self.slots) > k:
            raise ParameterError(
                f"slots={self.slots} does not fit: with {b}-bit slots a {self.layout} layout holds at "
                f"most {k} values per plaintext ({u} usable bits). Pass slots<={k} or shrink the slots."
            )
        return SlotLayout(slot_bits=b, digits=d, slots=k)

    @property
    def slot_layout(self) -> SlotLayout:
        return self._layout  # type: ignore[attr-defined]

    @property
    def slot_count(self) -> int:
        return self.slot_layout.slots

    @property
    def cap(self) -> int:
        return self.slot_layout.cap

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable parameters (everything needed to rebuild the encoding)."""
        return {
            "usable_bits": int(self.usable_bits),
            "precision_bits": int(self.precision_bits),
            "max_value": float(self.max_value),
            "max_additions": int(self.max_additions),
            "multiplier_bits": int(self.multiplier_bits),
            "max_reduction_terms": int(self.max_reduction_terms),
            "layout": self.layout,
            "slots": None if self.slots is None else int(self.slots),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PackedEncoding":
        keys = ("usable_bits", "precision_bits", "max_value", "max_additions", "multiplier_bits",
                "max_reduction_terms", "layout", "slots")
        if not isinstance(d, dict) or set(d) != set(keys):
            raise ParameterError(f"encoding parameters must have exactly the keys {keys}; got {d!r}")
        return cls(**{k: d[k] for k in keys})

    # ------------------------------------------------------------------ values
    def check_range(self, flat: np.ndarray) -> None:
        """Raise `EncodingOverflowError` if some |value| exceeds ``max_value``."""
        if flat.size == 0:
            return
        a = np.abs(flat.astype(np.float64))
        i = int(np.argmax(a))
        if float(a[i]) > float(self.max_value):
            raise EncodingOverflowError(
                f"value {flat[i].item()!r} at flat index {i} is outside the declared range "
                f"|x| <= max_value={self.max_value}. Create the context with a larger max_value "
                f"(costs slot bits) or scale the data down first."
            )

    def encode_chunks(self, flat: np.ndarray) -> list[int]:
        """Fixed-point encode (scale ``precision_bits``) and pack into signed plaintext integers,
        ``slot_count`` values per integer (the last one possibly partial)."""
        self.check_range(flat)
        ints = to_fixed(flat, self.precision_bits)
        k = self.slot_count
        lay = self.slot_layout
        return [lay.pack(ints[i:i + k]) for i in range(0, len(ints), k)]

    def pack_ints(self, ints: list[int]) -> list[int]:
        """Pack already-scaled integers, ``slot_count`` per plaintext."""
        k = self.slot_count
        return [self.slot_layout.pack(ints[i:i + k]) for i in range(0, len(ints), k)]

    def decode_chunks(self, ms: list[int], size: int, scale_bits: int) -> np.ndarray:
        """Unpack signed plaintext integers and decode ``size`` values at ``scale_bits``."""
        k = self.slot_count
        lay = self.slot_layout
        ints: list[int] = []
        for j, m in enumerate(ms):
            count = min(k, size - j * k)
            digits = lay.unpack(m, lay.digits)
            if any(digits[count:]):
                raise EncodingOverflowError(
                    f"decrypted plaintext {j} has non-zero digits beyond its {count} values: the "
                    f"ciphertext was altered or not produced under this context."
                )
            ints.extend(digits[:count])
        return from_fixed(ints, scale_bits)

    def describe(self) -> str:
        lay = self.slot_layout
        return (f"{lay.slots} values per plaintext in {lay.slot_bits}-bit signed slots ({self.layout} "
                f"layout, {lay.digits} digits of {self.usable_bits} usable bits); precision 2^-"
                f"{self.precision_bits}, |x| <= {self.max_value}, up to {self.max_additions} additions, "
                f"{self.multiplier_bits} multiplier bits, reductions of up to {self.max_reduction_terms} values")
