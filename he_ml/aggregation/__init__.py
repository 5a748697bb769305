"""Encrypted gradient summation for any pipeline, with optional differential privacy.

* :class:`GradientAggregator` -- clients encrypt updates (arrays or dicts of arrays), an
  untrusted server sums the blobs with the public context, the key holder decrypts the
  (averaged) total. :func:`aggregation_context` chooses the smallest parameters per scheme.
* :class:`Committee` -- threshold (t-of-n) decryption: :func:`partial_decrypt` per member,
  :func:`combine` by anyone (Paillier, BFV, CKKS); see ``docs/committee.md``.
* :mod:`he_ml.aggregation.dp` -- L2 clipping, exact discrete-Gaussian noise (distributed or
  central) and privacy accounting with Google's dp-accounting.
* :mod:`he_ml.aggregation.masking` -- masked rounds (SecAgg / SecAgg+) with dropout recovery:
  HE-free or as a layer over Paillier / BFV (:class:`MaskedClient`, :class:`MaskedServer`,
  :func:`simulate_round`).
* :mod:`he_ml.aggregation.policy` -- the key holder's decryption policy: one decryption per
  round id, contribution count bound to signed receipts, smudged CKKS releases (2^-40 statistical).
"""
from __future__ import annotations

from .aggregator import (
    AGGREGATE_LAYOUT_VERSION,
    DEFAULT_BFV_PRECISION_BITS,
    GradientAggregator,
    aggregation_context,
    flatten_update,
    unflatten_update,
    Rejection,
)
from .committee import (
    Committee,
    KeyShare,
    PartialDecryption,
    combine,
    insecure_tiny_committee,
    partial_decrypt,
)
from .masking import (
    MaskedClient,
    MaskedResult,
    MaskedServer,
    MaskedUnmasker,
    RoundSetup,
    identity_public_key,
    new_identity,
    simulate_round,
)
from .dp import (
    DPConfig,
    PrivacyReport,
    add_central_noise,
    clip_l2,
    discrete_gaussian,
    discrete_laplace,
    epsilon,
    noise_multiplier_for,
    privatize_client_update,
)

__all__ = [
    "Committee",
    "KeyShare",
    "PartialDecryption",
    "partial_decrypt",
    "combine",
    "insecure_tiny_committee",
    "GradientAggregator",
    "aggregation_context",
    "flatten_update",
    "unflatten_update",
    "AGGREGATE_LAYOUT_VERSION",
    "DEFAULT_BFV_PRECISION_BITS",
    "Rejection",
    "DPConfig",
    "PrivacyReport",
    "clip_l2",
    "discrete_gaussian",
    "discrete_laplace",
    "privatize_client_update",
    "add_central_noise",
    "epsilon",
    "noise_multiplier_for",
    "MaskedClient",
    "MaskedServer",
    "MaskedUnmasker",
    "MaskedResult",
    "RoundSetup",
    "simulate_round",
    "new_identity",
    "identity_public_key",
]
