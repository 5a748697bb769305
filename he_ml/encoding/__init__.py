"""Encodings of real values as integers for additive schemes (pure integer logic, no crypto).

* `fixed_point` -- reals <-> integers at a scale of ``2**-precision_bits``.
* `packing`     -- many signed fixed-point values per big integer (Paillier plaintexts),
  with declared headroom and overflow detection.
"""
from __future__ import annotations

from .fixed_point import encode_multiplier, encode_multipliers, from_fixed, quantization_error, to_fixed
from .packing import LAYOUTS, PackedEncoding, SlotLayout

__all__ = [
    "to_fixed",
    "from_fixed",
    "encode_multiplier",
    "encode_multipliers",
    "quantization_error",
    "SlotLayout",
    "PackedEncoding",
    "LAYOUTS",
]
