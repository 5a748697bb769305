"""Regenerate tests/data/ntt_kat.json (run by hand; not collected by pytest).

Two groups of vectors:

* ``published``: Intel HEXL's known-answer vectors (test/test-ntt.cpp,
  ``NTTAPITest``), which use the same convention as he_ml (smallest primitive
  2n-th root, bit-reversed output). Copied as data, checked here against the
  definition before they are written.
* ``generated``: small random vectors (seeded) whose expected outputs come from
  the O(n^2) definition in ``ntt_reference.py``, cross-checked against the
  O(n log n) reference, plus negacyclic products from the schoolbook.

Usage: ``python tests/native/generate_ntt_kat.py``
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from ntt_reference import (
    intt_fast_reference,
    is_prime_reference,
    minimal_psi_reference,
    negacyclic_schoolbook,
    ntt_definition,
    ntt_fast_reference,
)

HEXL_SOURCE = "https://github.com/intel/hexl/blob/main/test/test-ntt.cpp (NTTAPITest, NTT.Powers)"

# (n, q, input, expected forward output) exactly as published by Intel HEXL
PUBLISHED = [
    (2, 281474976710897, [0, 0], [0, 0]),
    (2, 0xFFFFFFFFFFC0001, [0, 0], [0, 0]),
    (2, 281474976710897, [1, 0], [1, 1]),
    (2, 281474976710897, [1, 1], [19842761023586, 261632215687313]),
    (2, 0xFFFFFFFFFFC0001, [1, 1], [288794978602139553, 864126526004445282]),
    (4, 113, [94, 109, 11, 18], [82, 2, 81, 98]),
    (4, 281474976710897, [281474976710765, 49, 281474976710643, 275],
     [12006376116355, 216492038983166, 272441922811203, 62009615510542]),
    (4, 113, [59, 50, 98, 50], [1, 2, 3, 4]),
    (4, 73, [2, 1, 1, 1], [17, 41, 36, 60]),
    (4, 16417, [31, 21, 15, 34], [1611, 14407, 14082, 2858]),
    (4, 4194353, [4127, 9647, 1987, 5410], [1478161, 3359347, 222964, 3344742]),
    (8, 4194353, [1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]),
    (8, 4194353, [1, 1, 0, 0, 0, 0, 0, 0],
     [132171, 4062184, 2675172, 1519183, 462763, 3731592, 1824324, 2370031]),
    (32, 769,
     [401, 203, 221, 352, 487, 151, 405, 356, 343, 424, 635, 757, 457, 280, 624, 353,
      496, 353, 624, 280, 457, 757, 635, 424, 343, 356, 405, 151, 487, 352, 221, 203],
     list(range(1, 33))),
]
# psi published by HEXL for q = 0xffffffffffc0001 (NTT.Powers): n = 2 and n = 4
PUBLISHED_PSI = [(2, 0xFFFFFFFFFFC0001, 288794978602139552), (4, 0xFFFFFFFFFFC0001, 178930308976060547)]


def _largest_ntt_prime(bits: int, n: int) -> int:
    q = (1 << bits) - 1
    q -= (q - 1) % (2 * n)
    while not is_prime_reference(q):
        q -= 2 * n
    return q


def main() -> None:
    for n, q, a, expected in PUBLISHED:
        assert ntt_definition(a, q, minimal_psi_reference(n, q)) == expected, (n, q)
    for n, q, p in PUBLISHED_PSI:
        assert minimal_psi_reference(n, q) == p
    rng = random.Random(20240601)
    generated = []
    products = []
    for n, bits in [(2, 20), (4, 30), (8, 40), (16, 50), (16, 61), (32, 55), (64, 62), (8, 62)]:
        q = _largest_ntt_prime(bits, n)
        p = minimal_psi_reference(n, q)
        a = [rng.randrange(q) for _ in range(n)]
        if bits == 62 and n == 8:
            a = [q - 1] * n  # extreme: every coefficient at the top of the range
        forward = ntt_definition(a, q, p)
        assert forward == ntt_fast_reference(a, q, p)
        assert intt_fast_reference(forward, q, p) == a
        generated.append({"n": n, "q": q, "psi": p, "input": a, "forward": forward})
        b = [rng.randrange(q) for _ in range(n)]
        products.append({"n": n, "q": q, "a": a, "b": b,
                         "product": negacyclic_schoolbook(a, b, q)})
    data = {
        "convention": "A[j] = sum_i a[i] psi^((2 bitrev(j) + 1) i) mod q; psi = smallest "
                      "primitive 2n-th root of unity mod q",
        "published_source": HEXL_SOURCE,
        "published": [{"n": n, "q": q, "input": a, "forward": e} for n, q, a, e in PUBLISHED],
        "published_psi": [{"n": n, "q": q, "psi": p} for n, q, p in PUBLISHED_PSI],
        "generated": generated,
        "negacyclic_products": products,
    }
    path = Path(__file__).resolve().parents[1] / "data" / "ntt_kat.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
