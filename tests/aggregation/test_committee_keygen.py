"""Dealer-free BFV/CKKS committee key generation: members exchange only bytes."""
from __future__ import annotations

import numpy as np
import pytest

import he_ml
from he_ml.aggregation import GradientAggregator, KeyShare, combine, partial_decrypt
from he_ml.aggregation.committee_keygen import KeygenMember, KeygenSession
from he_ml.errors import ContextMismatchError, InvalidCiphertextError, ParameterError


def _run(session_bytes: bytes, members: int):
    """Each member in its own object, seeing only bytes (as over a network)."""
    parties = [KeygenMember(KeygenSession.from_bytes(session_bytes), i) for i in range(1, members + 1)]
    ckg = [p.ckg_share() for p in parties]
    outbox = [p.reshare() for p in parties]
    results = []
    for p in parties:
        mine = [box[p.member] for box in outbox]
        pub, share = p.finalize(list(reversed(ckg)), mine)  # order does not matter
        results.append((pub.to_bytes(), share.to_bytes()))
    return results


@pytest.mark.parametrize("scheme", ["bfv", "ckks"])
def test_distributed_keygen_decrypts(scheme):
    session = KeygenSession(scheme, 4, 3)
    results = _run(session.to_bytes(), 4)
    assert len({r[0] for r in results}) == 1  # every member derives the same public context
    pub = he_ml.load_context(results[0][0])
    shares = [KeyShare.from_bytes(r[1]) for r in results]
    assert all(s.committee_id == pub.fingerprint for s in shares)
    agg = GradientAggregator(pub)
    rng = np.random.default_rng(5)
    grads = [rng.uniform(-1, 1, 50) for _ in range(6)]
    total = agg.sum([agg.encrypt(g) for g in grads])
    out = combine(pub, total, [partial_decrypt(s, total) for s in shares[1:]])
    # BFV: 6 clients x 2^-21 rounding; CKKS: the plan's post-smudging precision bound
    tol = 6 * 2.0 ** -21 if scheme == "bfv" else 2.0 ** -session.plan.precision_bits + 6 * 8192 * 2.0 ** -(session.plan.scale_bits + 1)
    assert np.max(np.abs(out - sum(grads))) <= tol


def test_messages_are_bound_to_session_and_recipient():
    s1, s2 = KeygenSession("bfv", 3, 2), KeygenSession("bfv", 3, 2)
    a = [KeygenMember(s1, i) for i in (1, 2, 3)]
    b = KeygenMember(s2, 1)
    ckg = [p.ckg_share() for p in a]
    boxes = [p.reshare() for p in a]
    to1 = [box[1] for box in boxes]
    with pytest.raises(ContextMismatchError, match="another key-generation session"):
        a[0].finalize(ckg[:2] + [b.ckg_share()], to1)
    with pytest.raises(ContextMismatchError, match="addressed to member"):
        a[0].finalize(ckg, [boxes[0][2]] + to1[1:])
    with pytest.raises(InvalidCiphertextError, match="needed from members"):
        a[0].finalize(ckg[:2], to1)
    with pytest.raises(InvalidCiphertextError, match="twice"):
        a[0].finalize(ckg + ckg[:1], to1)
    pub, share = a[0].finalize(ckg, to1)  # the complete, correct set works
    assert share.member == 1 and share.committee_id == pub.fingerprint


def test_session_bytes_are_checked():
    blob = KeygenSession("ckks", 3, 2).to_bytes()
    assert KeygenSession.from_bytes(blob).session_id == KeygenSession.from_bytes(blob).session_id
    with pytest.raises(InvalidCiphertextError):
        KeygenSession.from_bytes(blob[:-2])
    with pytest.raises(ParameterError, match="bfv' or 'ckks"):
        KeygenSession("paillier", 3, 2)
    with pytest.raises(ParameterError, match="threshold"):
        KeygenSession("bfv", 3, 4)
