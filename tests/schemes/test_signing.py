"""Ed25519 signed envelopes: a relay that swaps or edits what it forwards is detected."""
from __future__ import annotations

import numpy as np
import pytest

import he_ml
from he_ml.errors import ContextMismatchError, InvalidCiphertextError, ParameterError
from he_ml.schemes._format import Kind, pack_blob, unpack_blob
from he_ml.schemes.signing import is_signed, open_blob


@pytest.fixture(scope="module")
def holder():
    """The key holder: a CKKS context and its signing key (verification key pinned by clients)."""
    sk, vk = he_ml.generate_signing_key()
    return he_ml.CKKS("sum"), sk, vk


@pytest.fixture(scope="module")
def paillier():
    return he_ml.Paillier(1024, allow_insecure=True)  # small key: speed; the envelope is the same


def test_signed_context_loads_with_the_pinned_key(holder):
    ctx, sk, vk = holder
    signed = ctx.to_bytes(sign_with=sk)
    assert is_signed(signed) and not is_signed(ctx.to_bytes())
    client = he_ml.load_context(signed, verify_key=vk)
    assert client.fingerprint == ctx.fingerprint and not client.has_secret_key
    assert he_ml.load_context(signed).fingerprint == ctx.fingerprint  # no pin: integrity only
    assert he_ml.verify_blob(signed, vk) == ctx.to_bytes()
    x = np.array([0.5, -1.25])
    # ciphertexts made by the verified client decrypt at the key holder (n/(6*2^40) noise)
    assert np.allclose(ctx.decrypt(client.encrypt(x)), x, atol=1e-6)


def test_swapped_context_is_detected(holder):
    """The server relays a context of its own key pair (self-consistent, validly signed by itself)."""
    ctx, sk, vk = holder
    mallory_sk, _ = he_ml.generate_signing_key()
    swapped = he_ml.CKKS("sum").to_bytes(sign_with=mallory_sk)
    with pytest.raises(ContextMismatchError, match="not by the pinned key"):
        he_ml.load_context(swapped, verify_key=vk)
    # the swap without a signature at all
    with pytest.raises(ContextMismatchError, match="not signed"):
        he_ml.load_context(he_ml.CKKS("sum").to_bytes(), verify_key=vk)


def test_wrong_pinned_key_and_unsigned_blob(holder):
    ctx, sk, _ = holder
    _, other_vk = he_ml.generate_signing_key()
    with pytest.raises(ContextMismatchError, match="not by the pinned key"):
        he_ml.load_context(ctx.to_bytes(sign_with=sk), verify_key=other_vk)
    with pytest.raises(ContextMismatchError, match="not signed"):
        he_ml.load_context(ctx.to_bytes(), verify_key=other_vk)
    for bad in (b"short", "not bytes", 12):
        with pytest.raises(ParameterError, match="verify_key"):
            he_ml.load_context(ctx.to_bytes(sign_with=sk), verify_key=bad)
    with pytest.raises(ParameterError, match="signing key"):
        ctx.to_bytes(sign_with=b"\x00" * 5)


def test_content_edited_after_signing_is_refused(holder):
    ctx, sk, vk = holder
    env = unpack_blob(ctx.to_bytes(sign_with=sk))
    inner = unpack_blob(env.sections[0])
    meta = dict(inner.metadata, extra=dict(inner.metadata["extra"], scale_bits=30))
    edited = pack_blob(inner.kind, inner.scheme, inner.fingerprint, meta, inner.sections)
    forged = pack_blob(Kind.SIGNED, env.scheme, env.fingerprint, env.metadata, [edited, env.sections[1]])
    for key in (vk, None):  # with or without a pin, the signature must verify
        with pytest.raises(InvalidCiphertextError, match="signature does not verify"):
            he_ml.load_context(forged, verify_key=key)
    # an envelope whose header disagrees with the signed blob inside it
    other = he_ml.CKKS("sum")
    lying = pack_blob(Kind.SIGNED, env.scheme, other.fingerprint, env.metadata, env.sections)
    with pytest.raises(InvalidCiphertextError, match="does not match"):
        open_blob(lying, vk)
    with pytest.raises(InvalidCiphertextError, match="already signed"):
        he_ml.sign_blob(ctx.to_bytes(sign_with=sk), sk)


def test_signed_ciphertext_makes_paillier_metadata_authentic(paillier):
    """Unsigned, a consistent edit of the Paillier scale decrypts silently wrong; signed, it is refused."""
    client_sk, client_vk = he_ml.generate_signing_key()
    x = np.array([1.5, -2.25, 3.0])
    v = paillier.encrypt(x) * 0.5  # scale grows by one fractional bit: metadata the server relays
    blob = v.to_bytes(sign_with=client_sk)
    inner = unpack_blob(open_blob(blob, client_vk))
    meta = dict(inner.metadata, meta=dict(inner.metadata["meta"], scale=inner.metadata["meta"]["scale"] + 1))
    edited = pack_blob(inner.kind, inner.scheme, inner.fingerprint, meta, inner.sections)
    # reproduced: the unsigned edit is consistent with the context and decrypts to half the value
    assert np.allclose(paillier.decrypt(paillier.ciphertext_from_bytes(edited)), x * 0.25)
    env = unpack_blob(blob)
    forged = pack_blob(Kind.SIGNED, env.scheme, env.fingerprint, env.metadata, [edited, env.sections[1]])
    with pytest.raises(InvalidCiphertextError, match="signature"):
        paillier.ciphertext_from_bytes(forged, verify_key=client_vk)
    with pytest.raises(ContextMismatchError, match="not signed"):
        paillier.ciphertext_from_bytes(edited, verify_key=client_vk)
    np.testing.assert_allclose(paillier.decrypt(paillier.ciphertext_from_bytes(blob, verify_key=client_vk)),
                               x * 0.5)


def test_signed_paillier_context_round_trip(paillier):
    sk, vk = he_ml.generate_signing_key()
    # the test-sized key made by this module: the loader's caller opts in (a blob cannot)
    loaded = he_ml.load_context(paillier.to_bytes(sign_with=sk), verify_key=vk, allow_insecure=True)
    assert loaded.fingerprint == paillier.fingerprint
