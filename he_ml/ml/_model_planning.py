"""The planner of :class:`he_ml.ml.model.EncryptedModel`: the smallest context that fits a model.

One piece of :mod:`he_ml.ml.model`; the map of what lives where is in its module docstring.

Everything here is re-exported by :mod:`he_ml.ml.model`; import it from there.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import NotFittedError, ParameterError, UnsupportedOperationError
from ..schemes.base import SchemeContext
from ._model_bounds import _shortfall, _tracked_bounds
from ._model_lowering import _ActivationStage, _run_stages_plain
from .layout import DEFAULT_BFV_FEATURE_BITS

#: The planner sizes CKKS for this times the largest magnitude met on calibration data.
VALUE_MARGIN = 2.0
#: CKKS precision target of the planner: absolute error ~2^-precision on unit-size values.
DEFAULT_PRECISION_BITS = 20


class _ModelPlanning:
    """Planning methods of :class:`~he_ml.ml.model.EncryptedModel` (a mixin; uses its calibration
    data, stages and IR, holds no state of its own)."""


    # ------------------------------------------------------------------ planning
    def context(self, scheme: str = "ckks", *, proba: bool = False, precision_bits: int = DEFAULT_PRECISION_BITS,
                refresh: bool = False) -> SchemeContext:
        """The key holder's context with the smallest 128-bit parameters that fit this model.

        Parameters
        ----------
        scheme : {"ckks", "bfv", "paillier"}, default "ckks"
            BFV and Paillier only for linear models.
        proba : bool, default False
            Plan for the encrypted binary `predict_proba` (deeper) instead of the scores.
        precision_bits : int, default 20
            CKKS absolute precision target on unit-size values (sets the scale).
        refresh : bool, default False
            Plan only for the deepest single stage (client-aided refresh between stages, see
            `decision_function`); for networks deeper than the largest secure ring.

        Notes
        -----
        CKKS: ``max_value = VALUE_MARGIN * M`` with ``M`` the largest magnitude on calibration
        data (inputs, partial sums ``|W||x| + |b|``, activations, polynomial intermediates), passed
        to :func:`he_ml.plan`, which sizes ``q0 = scale + ceil(log2 max_value) + 2`` bits: values
        up to about ``4 M`` decrypt correctly. Then ``max_value`` is raised until every public
        bound the CKKS magnitude tracker will compute fits its level's limit: inputs with the
        bounds of the calibration data (the power of two above each feature's maximum), linear stages
        ``|b| + sum |w| B``, squares ``B^2`` and polynomial activations on their calibrated
        interval (the model's input contract, see `check_inputs`). The public context holds relinearization keys only
        if an activation multiplies ciphertexts, and never rotation keys.

        BFV: the context's encoding is ``DEFAULT_BFV_FEATURE_BITS`` (8) fractional bits (its
        ``fixed_point_bits``, which `encrypt_features` uses), weights get
        ``bfv_weight_bits_`` bits (about 20 significant bits for the largest weight); the plain modulus
        holds ``VALUE_MARGIN * max(|W||x| + |b|) * 2^(feature bits + weight bits)`` so nothing wraps.

        Paillier: ``max_value = VALUE_MARGIN * max |x|``, ``max_additions`` = features + 1 and the
        multiplier bits of the largest weight at 24 fractional bits.

        Raises
        ------
        NotFittedError
            No calibration data (build with X_calibration or call `calibrate`).
        UnsupportedOperationError
            A network on BFV/Paillier.
        ParameterError
            Nothing within the largest secure ring fits: the message gives the depth needed and
            the refresh option.
        """
        from .. import schemes
        scheme = str(scheme).lower()
        if scheme not in ("ckks", "bfv", "paillier"):
            raise ParameterError(f"scheme must be 'ckks', 'bfv' or 'paillier'; got {scheme!r}.")
        if not self.calibration_:
            raise NotFittedError(
                "model.context() sizes the parameters from value ranges on calibration data: build the "
                "model with X_calibration=X (from_sklearn/from_torch) or call model.calibrate(X) first.")
        if scheme != "ckks":
            if not self.is_linear:
                raise UnsupportedOperationError(
                    f"{scheme} cannot run this model: it multiplies ciphertexts or evaluates activations "
                    f"(depth {self.depth}); {scheme} here supports linear models only. Use "
                    f"model.context('ckks').")
            return self._context_bfv() if scheme == "bfv" else self._context_paillier()
        stages = self._get_proba_stages() if proba else self._stages
        depth = sum(s.depth for s in stages)
        if refresh:
            depth = max((s.depth for s in stages), default=0)
        from ..schemes.params import plan as plan_params
        tracked = self._tracked_requirements(stages, refresh)
        if proba and not refresh:  # predict_proba returns [1 - p, p]: 1 + bound(p) at the last level
            tracked = tracked + [(1.0 + bb, u) for bb, u in tracked if u >= depth]
        max_value = VALUE_MARGIN * max(self._peak_values(stages), 1.0)
        try:
            # The tracker refuses any operation whose public bound reaches its level's limit
            # (15/16 * Q_l / 2^(scale_bits + 1), CKKS._setup_bounds): raise max_value until every
            # bound the tracker will compute (`_tracked_bounds`) fits the planned chain.
            for _ in range(64):
                p = plan_params(depth=max(depth, 1), precision_bits=precision_bits, scheme="ckks",
                                max_value=max_value)
                short = _shortfall(p, max(depth, 1), tracked)
                if short <= 1.0:
                    break
                max_value *= short
        except ParameterError as e:
            raise ParameterError(
                f"{self.ir.source or 'this model'} needs depth {depth} (levels: "
                f"{[s.depth for s in stages]}) with |values| up to {max_value:.3g}; no 128-bit CKKS "
                f"ring fits ({e}). Options: lower activation degrees (degree=...), square activations "
                f"(he_ml.ml.torch.make_he_friendly), or model.context(refresh=True) with "
                f"decision_function(enc, refresh=ClientAidedRefresh(ctx)) -- the key holder then "
                f"re-encrypts between layers and sees intermediate activations.") from e
        kw = p.parameters()
        kw["relin_keys"] = any(isinstance(s, _ActivationStage) and s.activation.kind != "identity"
                               for s in stages)
        kw.pop("rotations", None)
        self.plan_ = p
        return schemes.CKKS(preset=None, **kw)

    def _tracked_requirements(self, stages: list[Any], refresh: bool) -> list[tuple[float, int]]:
        """(bound, levels used) of every value the CKKS tracker will hold, for planning.

        Each input feature is encrypted with a bound of the power of two above its largest
        ``|value|`` (``CKKS.encrypt``); the plan covers new data whose per-feature maxima round
        up to the same powers of two as the calibration data's (at least the calibration
        maximum, up to twice it). No further margin is added at the inputs: it would be raised to
        the network's degree (a factor 2 before two square activations is 16 on the scores) and
        push the first prime of CryptoNets-sized models beyond 60 bits. Larger inputs are refused
        before computing with `EncodingOverflowError`, naming a plan that fits. With ``refresh``
        every stage starts from fresh (re-encrypted) values: the powers of two above the float
        twin's maxima there.
        """
        X = self._X_cal
        if X is None:
            return []
        x = X.reshape(X.shape[0], -1)

        def pow2(v: np.ndarray) -> np.ndarray:
            v = np.maximum(np.asarray(v, dtype=np.float64), 2.0 ** -30)
            return 2.0 ** np.ceil(np.log2(v))

        if not refresh:
            return _tracked_bounds(stages, pow2(np.max(np.abs(x), axis=0)))
        out: list[tuple[float, int]] = []
        for s in stages:
            out.extend(_tracked_bounds([s], pow2(np.max(np.abs(x), axis=0))))
            x = _run_stages_plain([s], x)
        return out

    def _peak_values(self, stages: list[Any]) -> float:
        if self._X_cal is None:
            return self.calibration_.get("values", 1.0)
        vmax = [float(np.max(np.abs(self._X_cal)))]
        _run_stages_plain(stages, self._X_cal, lambda i, k, v: vmax.append(float(np.max(np.abs(v)))))
        for s in stages:
            if isinstance(s, _ActivationStage) and s.activation.poly is not None:
                mi = float(getattr(s.activation.poly, "max_intermediate", float("nan")))
                if math.isfinite(mi):
                    vmax.append(mi)
        return max(vmax)

    def _linear_bound(self) -> float:
        X = self._X_cal.reshape(self._X_cal.shape[0], -1)
        s = self._stages[0] if self._stages else None
        if s is None:
            return float(np.max(np.abs(X)))
        return float(np.max((abs(s.matrix) @ np.abs(X).T).T + np.abs(s.bias)))

    def _context_bfv(self) -> SchemeContext:
        from .. import schemes
        from ..schemes.params import plan as plan_params
        bound = self._linear_bound()
        self.calibration_["linear_bound"] = bound
        wmax = float(abs(self._stages[0].matrix).max()) if self._stages else 1.0
        fx = DEFAULT_BFV_FEATURE_BITS
        wb = int(np.clip(20 - math.ceil(math.log2(max(wmax, 1e-12))), 0, 30))
        while True:
            ints = VALUE_MARGIN * bound * 2.0 ** (fx + wb) + 2.0 ** (fx + wb)
            if math.log2(ints) + 2 <= 59 or wb == 0:
                break
            wb -= 1
        self.bfv_weight_bits_ = wb
        p = plan_params(depth=0, scheme="bfv", max_value=ints)
        # Plaintext products grow the noise by ~ log2(n * |w_int| * terms) bits on top of the fresh
        # noise, which the depth-0 plan does not count: take the ring-8192 BFV default modulus
        # (174 data bits, 128-bit secure), leaving > 60 bits of budget for t <= 60 bits and 2^30 weights.
        from ..schemes.params import BFV_PRESETS
        base = BFV_PRESETS["sum"]
        self.plan_ = p
        return schemes.BFV(preset=None, poly_modulus_degree=base.poly_modulus_degree,
                           coeff_mod_bit_sizes=list(base.coeff_mod_bit_sizes),
                           plain_modulus_bits=max(p.plain_modulus_bits, 17), relin_keys=False,
                           # the context carries its fixed-point encoding (encrypt_features takes it
                           # from there): the one t was sized for above
                           fixed_point_bits=fx)

    def _context_paillier(self) -> SchemeContext:
        from .. import schemes
        xmax = float(np.max(np.abs(self._X_cal)))
        wmax = float(abs(self._stages[0].matrix).max()) if self._stages else 1.0
        mult_bits = max(1, math.ceil(math.log2(max(wmax, 1.0))) + 25)
        return schemes.Paillier(max_value=max(VALUE_MARGIN * xmax, 1.0),
                                max_additions=self.ir.n_inputs + 2, multiplier_bits=mult_bits)
