"""Everything public is bound to the key: each splicing/editing attack reproduced, then refused at load.

Forged blobs are built with the container's own ``pack_blob`` (so the CRC is valid): the attacker
model is anyone who can rewrite bytes in transit and recompute every public function
(docs/binding-and-bounds.md).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import he_ml
from he_ml.errors import ContextMismatchError, InvalidCiphertextError
from he_ml.schemes import ckks as ckks_mod
from he_ml.schemes._format import pack_blob, unpack_blob
from he_ml.schemes.base import fingerprint_of

# section layout of a public SEAL context: parameters, public key, relin keys, Galois keys
RELIN, GALOIS = 2, 3


def _forge(data: bytes, *, metadata=None, sections=None, fingerprint=None) -> bytes:
    """Re-pack a blob with edited parts and a valid checksum."""
    b = unpack_blob(data)
    return pack_blob(b.kind, b.scheme, b.fingerprint if fingerprint is None else fingerprint,
                     b.metadata if metadata is None else metadata,
                     b.sections if sections is None else sections)


def _splice_eval_keys(victim: bytes, donor: bytes) -> bytes:
    v, d = unpack_blob(victim), unpack_blob(donor)
    sections = list(v.sections)
    sections[RELIN], sections[GALOIS] = d.sections[RELIN], d.sections[GALOIS]
    return _forge(victim, sections=sections)


@pytest.fixture(scope="module")
def ckks_pair():
    """Two independent key pairs with the same parameters, both with relin and 'sum' rotation keys."""
    a = he_ml.CKKS("light", rotations="sum")
    b = he_ml.CKKS("light", rotations="sum")
    return a, b


@pytest.fixture(scope="module")
def bfv_pair():
    a = he_ml.BFV("inference", rotations="sum")
    b = he_ml.BFV("inference", rotations="sum")
    return a, b


# ---------------------------------------------------------------------------- evaluation keys
def test_keys_added_later_keep_the_fingerprint_and_a_pinned_client_verifies_them():
    ctx = he_ml.CKKS("light", relin_keys=False)
    fp0 = ctx.fingerprint
    client = he_ml.load_context(ctx.to_bytes(), fingerprint=fp0)
    early = client.encrypt(np.array([1.5, -2.0]))  # made before the key holder added keys
    ctx.enable_multiplication().enable_rotations("sum")
    assert ctx.fingerprint == fp0
    server = he_ml.load_context(ctx.public_context().to_bytes(), fingerprint=fp0)
    assert server.has_relin_keys and server.rotation_steps_available
    moved = server.ciphertext_from_bytes(early.to_bytes())
    # sum of squares: 1.5^2 + 2^2 = 6.25; fresh noise ~ n/(6*2^40) per slot, x a few ops
    assert abs(ctx.decrypt((moved * moved).sum())[0] - 6.25) < 1e-5
    # the secret blob carries the certification key, so a reloaded key holder can extend the chain
    holder = he_ml.load_context(ctx.to_bytes(include_secret_key=True))
    holder.enable_rotations([3])
    assert he_ml.load_context(holder.to_bytes(), fingerprint=fp0).fingerprint == fp0


def test_ckks_spliced_evaluation_keys_give_garbage_and_are_refused(ckks_pair, monkeypatch):
    a, b = ckks_pair
    forged = _splice_eval_keys(a.public_context().to_bytes(), b.public_context().to_bytes())
    x = np.array([-3.0, -5.3, -6.0])  # sum -14.3
    # the attack, reproduced with the certificate check switched off: silent garbage
    monkeypatch.setattr(ckks_mod._SEALContext, "_verify_eval_keys", lambda self, sig: None)
    bad = he_ml.load_context(forged)
    assert bad.fingerprint == a.fingerprint  # same parameters and public key: same fingerprint
    got = a.decrypt(bad.encrypt(x).sum())[0]
    assert abs(got - x.sum()) > 1e3
    monkeypatch.undo()
    # refused by the loader itself
    with pytest.raises(ContextMismatchError, match="not the ones its key holder certified"):
        he_ml.load_context(forged)
    # only the relinearization keys, or only the Galois keys: refused as well
    for i in (RELIN, GALOIS):
        sections = list(unpack_blob(a.public_context().to_bytes()).sections)
        sections[i] = unpack_blob(b.public_context().to_bytes()).sections[i]
        with pytest.raises(ContextMismatchError, match="certified"):
            he_ml.load_context(_forge(a.to_bytes(), sections=sections))


def test_bfv_spliced_evaluation_keys_are_refused_not_reported_as_noise(bfv_pair, monkeypatch):
    a, b = bfv_pair
    forged = _splice_eval_keys(a.public_context().to_bytes(), b.public_context().to_bytes())
    monkeypatch.setattr(ckks_mod._SEALContext, "_verify_eval_keys", lambda self, sig: None)
    bad = he_ml.load_context(forged)
    x = bad.encrypt(np.array([3, -2, 5]))
    # the attack: the product relinearized with foreign keys does not decrypt to 9, 4, 25
    try:
        wrong = a.decrypt(x * x)
    except he_ml.errors.DepthExhaustedError:  # what SEAL's noise check reports for garbage
        wrong = None
    assert wrong is None or not np.array_equal(wrong, [9, 4, 25])
    monkeypatch.undo()
    with pytest.raises(ContextMismatchError, match="certified"):
        he_ml.load_context(forged)


def test_a_fully_reforged_context_has_another_fingerprint_and_is_refused_by_pin_and_key_holder(ckks_pair):
    """The attacker replaces the certification key with its own, re-signs and recomputes the header."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    a, b = ckks_pair
    pub = unpack_blob(a.public_context().to_bytes())
    donor = unpack_blob(b.public_context().to_bytes())
    sections = list(pub.sections)
    sections[RELIN], sections[GALOIS] = donor.sections[RELIN], donor.sections[GALOIS]
    mallory = Ed25519PrivateKey.generate()
    vk = ckks_mod._raw_public(mallory)
    encoding = json.dumps({"preset": pub.metadata["preset"], "extra": pub.metadata["extra"]},
                          sort_keys=True, separators=(",", ":")).encode()
    fp = fingerprint_of(ckks_mod._FP_DOMAIN, b"ckks", sections[0], encoding, sections[1], vk)
    statement = b"".join([ckks_mod._CERT_DOMAIN, fp, hashlib.sha256(sections[RELIN]).digest(),
                          hashlib.sha256(sections[GALOIS]).digest(),
                          hashlib.sha256(json.dumps(pub.metadata["galois_elts"]).encode()).digest()])
    meta = dict(pub.metadata, keycert={"vk": vk.hex(), "sig": mallory.sign(statement).hex()})
    forged = pack_blob(pub.kind, pub.scheme, fp, meta, sections)
    loaded = he_ml.load_context(forged)  # self-consistent, but it is not the key holder's context
    assert loaded.fingerprint != a.fingerprint
    with pytest.raises(ContextMismatchError, match="not the pinned"):
        he_ml.load_context(forged, fingerprint=a.fingerprint)
    with pytest.raises(ContextMismatchError, match="another key"):
        a.ciphertext_from_bytes(loaded.encrypt(np.ones(3)).sum().to_bytes())


# ---------------------------------------------------------------------------- encoding fields
@pytest.mark.parametrize("scheme, field, value", [
    ("ckks", "scale_bits", 10),
    ("bfv", "fixed_point_bits", 4),
    ("bfv", "plain_modulus_bits", 20),
])
def test_edited_encoding_fields_are_refused(scheme, field, value, ckks_pair, bfv_pair):
    ctx = (ckks_pair if scheme == "ckks" else bfv_pair)[0]
    pub = ctx.public_context().to_bytes()
    b = unpack_blob(pub)
    assert b.metadata["extra"][field] != value
    meta = dict(b.metadata, extra=dict(b.metadata["extra"], **{field: value}))
    with pytest.raises(InvalidCiphertextError, match="do not hash to the fingerprint"):
        he_ml.load_context(_forge(pub, metadata=meta))


def test_scale_bits_edit_reproduced_then_refused(ckks_pair):
    """40 -> 10 in a public context: with the header recomputed the client's error grows to ~8."""
    a, _ = ckks_pair
    pub = unpack_blob(a.public_context().to_bytes())
    meta = dict(pub.metadata, extra=dict(pub.metadata["extra"], scale_bits=10))
    with pytest.raises(InvalidCiphertextError, match="fingerprint"):
        he_ml.load_context(_forge(a.to_bytes(), metadata=meta))
    # recomputing the header (the full forgery) gives a context with another fingerprint ...
    forged_ctx = object.__new__(he_ml.CKKS)
    forged_ctx._preset, forged_ctx._extra = pub.metadata["preset"], meta["extra"]
    fp = fingerprint_of(ckks_mod._FP_DOMAIN, b"ckks", pub.sections[0], forged_ctx._encoding_bytes(),
                        pub.sections[1], bytes.fromhex(pub.metadata["keycert"]["vk"]))
    assert fp != a.fingerprint
    # ... whose certificate no longer verifies (it signs the original fingerprint)
    with pytest.raises(ContextMismatchError, match="certified"):
        he_ml.load_context(_forge(a.to_bytes(), metadata=meta, fingerprint=fp))


def test_paillier_encoding_edit_is_refused():
    ctx = he_ml.Paillier(1024, allow_insecure=True)
    b = unpack_blob(ctx.to_bytes())
    enc = dict(b.metadata["encoding"])
    enc["precision_bits"] = enc["precision_bits"] - 4
    meta = dict(b.metadata, encoding=enc)
    # allow_insecure: the caller's opt-in for its own test-sized key, so the load reaches the
    # binding checks (without it the 1024-bit key is refused first, InsecureParametersError)
    with pytest.raises((InvalidCiphertextError, ContextMismatchError)):
        he_ml.load_context(_forge(ctx.to_bytes(), metadata=meta), allow_insecure=True)
    assert he_ml.load_context(ctx.to_bytes(), allow_insecure=True).fingerprint == ctx.fingerprint


# ---------------------------------------------------------------------------- ciphertext metadata
def test_ckks_ciphertext_scale_edit_reproduced_then_refused(ckks_pair):
    from he_ml.schemes.ckks import _seal_from_bytes, _seal_to_bytes
    import tenseal.sealapi as sa

    a, _ = ckks_pair
    x = np.array([1.0, -2.5, 3.25])
    blob = a.encrypt(x).to_bytes()
    b = unpack_blob(blob)
    ct = _seal_from_bytes(sa.Ciphertext(), b.sections[0], a._seal)
    ct.scale = ct.scale * 2  # the attacker doubles the scale inside the SEAL bytes
    # reproduced: the edited ciphertext decrypts to x / 2, silently
    edited = he_ml.EncryptedVector(a, [ct], (3,), {"bound": 4.0})
    assert np.allclose(a.decrypt(edited), x / 2, atol=1e-6)
    forged = _forge(blob, sections=[_seal_to_bytes(ct)])
    with pytest.raises(InvalidCiphertextError, match="scale"):
        a.ciphertext_from_bytes(forged)
    # a product's drifted scale is one he_ml produces: accepted, decrypts correctly
    sq = a.encrypt(x) * a.encrypt(x)
    assert np.allclose(a.decrypt(a.ciphertext_from_bytes(sq.to_bytes())), x * x, atol=1e-4)


def test_ckks_bound_metadata_is_checked_against_the_level(ckks_pair):
    a, _ = ckks_pair
    blob = a.encrypt(np.array([2.0, 3.0])).to_bytes()
    b = unpack_blob(blob)
    for bad in ({"bound": -1.0}, {"bound": "4"}, {"bound": True}, {}, {"bound": 4.0, "x": 1}):
        with pytest.raises(InvalidCiphertextError, match="bound"):
            a.ciphertext_from_bytes(_forge(blob, metadata=dict(b.metadata, meta=bad)))
    with pytest.raises(InvalidCiphertextError, match="cannot\\s+decrypt correctly|represents"):
        a.ciphertext_from_bytes(_forge(blob, metadata=dict(b.metadata, meta={"bound": 1e300})))


def test_bfv_fixed_point_edit_reproduced_then_refused(bfv_pair):
    a, _ = bfv_pair
    f = a.fixed_point_bits
    x = np.array([1.25, -0.5, 3.0])
    v = a.encrypt(np.rint(x * 2 ** f).astype(np.int64))
    v.meta["fixed_point_bits"] = f
    blob = v.to_bytes()
    b = unpack_blob(blob)
    edited = dict(b.metadata, meta=dict(b.metadata["meta"], fixed_point_bits=f + 3))
    # reproduced: decrypting with the edited scale is off by 2^3, silently
    wrong = he_ml.EncryptedVector(a, v.chunks, v.shape, edited["meta"])
    assert np.allclose(a.decrypt(wrong), x / 8)
    with pytest.raises(InvalidCiphertextError, match="fixed_point_bits=.* k\\*f"):
        a.ciphertext_from_bytes(_forge(blob, metadata=edited))
    # 3f on a fresh vector: more fixed-point factors than a depth-0 vector can carry
    edited = dict(b.metadata, meta=dict(b.metadata["meta"], fixed_point_bits=3 * f))
    with pytest.raises(InvalidCiphertextError, match="fixed_point_bits"):
        a.ciphertext_from_bytes(_forge(blob, metadata=edited))
    assert np.allclose(a.decrypt(a.ciphertext_from_bytes(blob)), x)


def test_features_blob_must_carry_the_context_encoding(bfv_pair):
    from he_ml.ml import EncryptedFeatures, encrypt_features

    a, _ = bfv_pair
    enc = encrypt_features(a, np.array([[0.5, -1.0], [2.0, 0.25]]))
    data = enc.to_bytes()
    b = unpack_blob(data)
    feats = dict(b.metadata["features"], fixed_point_bits=a.fixed_point_bits + 1)
    with pytest.raises(InvalidCiphertextError, match="fixed_point_bits"):
        EncryptedFeatures.from_bytes(a, _forge(data, metadata=dict(b.metadata, features=feats)))
    assert EncryptedFeatures.from_bytes(a, data).fixed_point_bits == a.fixed_point_bits


def test_version_1_blobs_are_refused_with_a_clear_message(ckks_pair):
    import struct
    import zlib

    data = ckks_pair[0].to_bytes()
    body = data[:4] + struct.pack("<H", 1) + data[6:-4]
    old = body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    with pytest.raises(InvalidCiphertextError, match="format version must be 2; got 1"):
        he_ml.load_context(old)


# ---------------------------------------------------------------------------- aggregates
@pytest.mark.parametrize("scheme", ["paillier", "bfv"])
def test_edited_aggregate_encoding_is_refused(scheme, bfv_pair):
    """An aggregate whose scale/fixed-point bits were edited would decrypt to a total off by 2^k."""
    from he_ml.aggregation import GradientAggregator

    ctx = he_ml.Paillier(1024, allow_insecure=True) if scheme == "paillier" else bfv_pair[0]
    agg = GradientAggregator(ctx.public_context(), max_value=1.0)
    blob = agg.encrypt(np.array([0.5, -0.25]))
    b = unpack_blob(blob)
    if scheme == "paillier":
        meta = dict(b.metadata, meta=dict(b.metadata["meta"], scale=b.metadata["meta"]["scale"] + 2))
    else:
        meta = dict(b.metadata, encoding=dict(b.metadata["encoding"], bits=b.metadata["encoding"]["bits"] + 2))
    forged = _forge(blob, metadata=meta)
    with pytest.raises(ContextMismatchError, match="encoding"):
        agg.add(forged)
    with pytest.raises(ContextMismatchError, match="encoding"):
        GradientAggregator(ctx).decrypt(forged)
    np.testing.assert_allclose(GradientAggregator(ctx).decrypt(blob), [0.5, -0.25])
