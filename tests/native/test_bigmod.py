"""he_ml.native.bigmod.powmod_many against gmpy2.powmod on every backend that runs here.

Exact integer arithmetic: results must be equal, no tolerance. Test data come from a seeded
``random.Random`` (public test values, not secrets).
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

import gmpy2
import pytest

from he_ml.errors import ParameterError
from he_ml.native import bigmod
from he_ml.native.bigmod import MAX_EXPONENT_BITS, MAX_MODULUS_BITS, backends, powmod_many

NATIVE = [b for b in backends() if b in ("avx512ifma", "reference")]
ALL = list(backends())


def _odd_modulus(rng: random.Random, bits: int) -> int:
    return rng.getrandbits(bits) | 1 | (1 << (bits - 1))


def _bases(rng: random.Random, n: int, count: int) -> list[int]:
    # the edge bases 0, 1, n - 1 and 2, then random ones; count is not a multiple of 8
    return ([0, 1, n - 1, 2] + [rng.randrange(n) for _ in range(count)])[:max(count, 4)]


def _check(bases: list[int], e: int, n: int, backend: str, **kw) -> None:
    got = powmod_many(bases, e, n, backend=backend, **kw)
    assert got == [int(gmpy2.powmod(b, e, n)) for b in bases]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("bits", [1024, 1536, 2048, 3072])
def test_matches_gmpy2_moduli_to_3072_bits(backend, bits):
    rng = random.Random(bits)
    n = _odd_modulus(rng, bits)
    for ebits in (1, 2, 17, 64, 65, 300, bits):
        _check(_bases(rng, n, 11), rng.getrandbits(ebits) | (1 << (ebits - 1)), n, backend)


@pytest.mark.parametrize("backend", [b for b in ALL if b != "reference"])
@pytest.mark.parametrize("bits", [4096, 6144, 8192])
def test_matches_gmpy2_wide_moduli(backend, bits):
    rng = random.Random(bits)
    n = _odd_modulus(rng, bits)
    for ebits in (1, 70, 1000):
        _check(_bases(rng, n, 9), rng.getrandbits(ebits) | (1 << (ebits - 1)), n, backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("bits", [4096, 6144, 8192])
def test_matches_gmpy2_wide_moduli_full_exponents(backend, bits):
    rng = random.Random(bits + 1)
    n = _odd_modulus(rng, bits)
    for ebits in (bits, 8192, bits + 8):
        _check(_bases(rng, n, 9 if backend != "reference" else 4), rng.getrandbits(ebits) | (1 << (ebits - 1)),
               n, backend)


def test_paillier_member_workload_shape():
    """A Paillier-3072 share decryption: 6144-bit n^2, a ~6150-bit exponent, 9 ciphertexts."""
    rng = random.Random(6144)
    n = _odd_modulus(rng, 3072)
    n2 = n * n
    e = rng.getrandbits(6150)
    for backend in [b for b in ALL if b != "reference"]:
        _check([rng.randrange(n2) for _ in range(9)], e, n2, backend, exponent_bits=6200)


@pytest.mark.parametrize("backend", ALL)
def test_exponent_zero_and_small_moduli(backend):
    rng = random.Random(7)
    for n in (3, 5, 7, 2**61 - 1, _odd_modulus(rng, 100), _odd_modulus(rng, 520)):
        _check([0, 1, n - 1], 0, n, backend)
        _check([0, 1, n - 1, n // 2], 3, n, backend)
        _check([b % n for b in (0, 1, 2, 12345)], rng.getrandbits(90), n, backend)


@pytest.mark.parametrize("backend", NATIVE)
def test_exponent_bits_padding_changes_nothing(backend):
    rng = random.Random(11)
    n = _odd_modulus(rng, 1024)
    bases = _bases(rng, n, 9)
    e = rng.getrandbits(200)
    want = [int(gmpy2.powmod(b, e, n)) for b in bases]
    for eb in (e.bit_length(), 256, 1000, 4096):
        assert powmod_many(bases, e, n, backend=backend, exponent_bits=eb) == want


@pytest.mark.parametrize("backend", NATIVE)
def test_threads_split_whole_groups(backend):
    rng = random.Random(12)
    n = _odd_modulus(rng, 2048)
    e = rng.getrandbits(512)
    bases = [rng.randrange(n) for _ in range(37)]
    want = [int(gmpy2.powmod(b, e, n)) for b in bases]
    for threads in (1, 2, 3, 5, 64):
        assert powmod_many(bases, e, n, backend=backend, threads=threads) == want


def test_gmpy2_process_pool_and_variable_time_path():
    rng = random.Random(13)
    n = _odd_modulus(rng, 1024)
    e = rng.getrandbits(1024)
    bases = [rng.randrange(n) for _ in range(6)]
    want = [int(gmpy2.powmod(b, e, n)) for b in bases]
    assert powmod_many(bases, e, n, backend="gmpy2", processes=2) == want
    assert powmod_many(bases, e, n, backend="gmpy2", secret_exponent=False) == want
    assert powmod_many([gmpy2.mpz(b) for b in bases], gmpy2.mpz(e), gmpy2.mpz(n)) == want
    assert powmod_many([], e, n) == []


@pytest.mark.parametrize("backend", ALL)
def test_bad_inputs_raise_parameter_error_and_the_advice_works(backend):
    n = 1009
    with pytest.raises(ParameterError, match=r"base 1 is >= modulus.*b % modulus"):
        powmod_many([2, 1009 + 5], 5, n, backend=backend)
    assert powmod_many([2, (1009 + 5) % n], 5, n, backend=backend) == [32, pow(5, 5, n)]
    with pytest.raises(ParameterError, match="base 0 is negative"):
        powmod_many([-1], 5, n, backend=backend)
    with pytest.raises(ParameterError, match="modulus must be odd"):
        powmod_many([2], 5, 1000, backend=backend)
    with pytest.raises(ParameterError, match="below 3"):
        powmod_many([0], 5, 1, backend=backend)
    with pytest.raises(ParameterError, match=f"at most {MAX_MODULUS_BITS} bits"):
        powmod_many([2], 5, (1 << MAX_MODULUS_BITS) + 1, backend=backend)
    with pytest.raises(ParameterError, match="exponent must be >= 0"):
        powmod_many([2], -1, n, backend=backend)
    with pytest.raises(ParameterError, match="exponent_bits must be in"):
        powmod_many([2], 1 << MAX_EXPONENT_BITS, n, backend=backend)
    with pytest.raises(ParameterError, match="exponent_bits must be in"):
        powmod_many([2], 1 << 20, n, backend=backend, exponent_bits=8)
    with pytest.raises(ParameterError, match="must be an int"):
        powmod_many([2.0], 5, n, backend=backend)
    with pytest.raises(ParameterError, match="must be an int"):
        powmod_many([True], 5, n, backend=backend)


def test_bad_options():
    with pytest.raises(ParameterError, match="backend must be"):
        powmod_many([2], 5, 1009, backend="fast")
    if NATIVE:
        with pytest.raises(ParameterError, match="threads must be"):
            powmod_many([2], 5, 1009, backend=NATIVE[0], threads=0)
    with pytest.raises(ParameterError, match="processes must be"):
        powmod_many([2], 5, 1009, backend="gmpy2", processes=0)
    with pytest.raises(ParameterError, match="mp_context must be"):
        powmod_many([2, 3], 5, 1009, backend="gmpy2", processes=2, mp_context="thread")


@pytest.mark.skipif(bigmod._cpp is None, reason="compiled module not built")
def test_core_rechecks_inputs_itself():
    """The binding refuses bad arrays even when called directly (ValueError, never a crash)."""
    import numpy as np

    words = lambda x, w: np.frombuffer(int(x).to_bytes(8 * w, "little"), dtype="<u8")  # noqa: E731
    n = _odd_modulus(random.Random(1), 128)
    ok = np.stack([words(5, 2), words(7, 2)])
    with pytest.raises(ValueError, match="base 1"):
        bigmod._cpp.modexp_batch(np.stack([words(5, 2), words(n, 2)]), words(3, 1), words(n, 2), "reference")
    with pytest.raises(ValueError, match="odd"):
        bigmod._cpp.modexp_batch(ok, words(3, 1), words(n - 1, 2), "reference")
    with pytest.raises(ValueError, match="top word"):
        bigmod._cpp.modexp_batch(np.zeros((1, 2), "<u8"), words(3, 1), words(9, 2), "reference")
    with pytest.raises(ValueError, match="as many words"):
        bigmod._cpp.modexp_batch(ok, words(3, 1), words(n, 3), "reference")
    with pytest.raises(ValueError, match="tier must be"):
        bigmod._cpp.modexp_batch(ok, words(3, 1), words(n, 2), "gpu")
    with pytest.raises(TypeError):
        bigmod._cpp.modexp_batch(ok.astype("<i8"), words(3, 1), words(n, 2), "reference")


def test_kill_switch_falls_back_to_gmpy2():
    code = ("from he_ml.native.bigmod import backend, powmod_many; print(backend()); "
            "print(powmod_many([2, 3], 10, 1009) == [pow(2, 10, 1009), pow(3, 10, 1009)])")
    env = dict(os.environ, HE_ML_DISABLE_AVX512IFMA="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.split()
    assert out == ["gmpy2", "True"]


def test_backend_reports_the_auto_choice():
    assert bigmod.backend() == ALL[0]
    assert "gmpy2" in ALL
    if bigmod._cpp is not None and bigmod._cpp.bigmod_tier() == "avx512ifma" \
            and not os.environ.get("HE_ML_DISABLE_AVX512IFMA"):
        assert bigmod.backend() == "avx512ifma"
