"""Regression: the secret/public key-pair check must hold for small scales (found by the fuzzer)."""
import numpy as np
import pytest

import he_ml
from he_ml.errors import ContextMismatchError, InvalidCiphertextError


@pytest.fixture(scope="module")
def small_ckks():
    return he_ml.CKKS(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40], scale_bits=20)


def test_secret_context_round_trip_at_scale_2_20(small_ckks):
    loaded = he_ml.load_context(small_ckks.to_bytes(include_secret_key=True))
    assert loaded.has_secret_key
    x = np.linspace(-3, 3, 100)
    # fresh-encryption error at n = 4096, scale 2^20 is ~ n / (6 * 2^20) ~ 7e-4 per slot (std)
    assert np.max(np.abs(loaded.decrypt(small_ckks.encrypt(x)) - x)) < 64 * 4096 / (6 * 2 ** 20)


def test_mixed_key_pair_is_still_rejected(small_ckks):
    """Our public key with another context's secret key (and vice versa) is refused."""
    from he_ml.schemes._format import pack_blob, unpack_blob

    other = he_ml.CKKS(preset=None, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40], scale_bits=20)
    mine = unpack_blob(small_ckks.to_bytes(include_secret_key=True))
    theirs = unpack_blob(other.to_bytes(include_secret_key=True))
    # section layout of a secret CKKS context (format 2): parameters, public key, relin keys,
    # Galois keys, secret key, key-certification key. A foreign public key no longer hashes to the
    # header's fingerprint; a foreign secret key fails the key-pair check.
    expected = {1: (InvalidCiphertextError, "do not hash to the fingerprint"),
                4: (ContextMismatchError, "does not match its public key")}
    for i, (cls, msg) in expected.items():
        sections = list(mine.sections)
        sections[i] = theirs.sections[i]
        blob = pack_blob(mine.kind, mine.scheme, mine.fingerprint, mine.metadata, sections)
        with pytest.raises(cls, match=msg):
            he_ml.load_context(blob)
