"""Which scheme/preset combinations `he-ml bench` measures, and how each is built.

A :class:`BenchConfig` is a scheme name, a preset label as the user types it
on the command line, and the keyword arguments handed to ``he_ml.scheme``.
Only this module knows how a label maps to constructor arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ParameterError

__all__ = [
    "BenchConfig",
    "PRESETS",
    "DEFAULT_PRESETS",
    "QUICK_PRESETS",
    "resolve_configs",
    "build_context",
]

#: Paillier key size of the plain preset names: 128-bit security (NIST SP 800-57 Part 1, Table 2).
PAILLIER_DEFAULT_KEY_BITS = 3072
#: Smaller secure key size offered as ``<preset>-2048`` (112-bit security).
PAILLIER_SMALL_KEY_BITS = 2048
#: A deliberately insecure key size for smoke tests (``insecure-1024``): keygen in a blink.
PAILLIER_INSECURE_TEST_KEY_BITS = 1024


@dataclass(frozen=True)
class BenchConfig:
    """One scheme + parameter set to benchmark.

    Attributes
    ----------
    scheme : str
        ``"ckks"``, ``"bfv"`` or ``"paillier"``.
    preset : str
        The label the user typed (a preset name, or a Paillier key size).
    params : dict
        Keyword arguments for ``he_ml.scheme(scheme, **params)``.
    insecure : bool
        True for test-only parameters below 112-bit security.
    """

    scheme: str
    preset: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    insecure: bool = False

    @property
    def label(self) -> str:
        tag = " (INSECURE, test only)" if self.insecure else ""
        return f"{self.scheme}/{self.preset}{tag}"

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "preset": self.preset, "params": dict(self.params),
                "insecure": self.insecure, "label": self.label}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchConfig":
        return cls(d["scheme"], d["preset"], dict(d.get("params", {})), bool(d.get("insecure", False)))


def _scheme_presets(scheme: str) -> tuple[str, ...]:
    """Preset names of a scheme, read from its parameter tables."""
    try:
        if scheme == "paillier":
            from ..schemes.paillier import PRESETS as table
        else:
            from ..schemes import params
            table = params.CKKS_PRESETS if scheme == "ckks" else params.BFV_PRESETS
        return tuple(table)
    except (ImportError, AttributeError):  # backend not available: the contract's names
        return ("general", "sum") if scheme == "paillier" else ("sum", "inference", "deep")


def _paillier_labels() -> tuple[str, ...]:
    names = _scheme_presets("paillier")
    return names + tuple(f"{p}-{PAILLIER_SMALL_KEY_BITS}" for p in names) + (
        f"insecure-{PAILLIER_INSECURE_TEST_KEY_BITS}",)


#: Preset labels the benchmark accepts, per scheme. Paillier: ``<preset>`` uses a 3072-bit
#: key, ``<preset>-2048`` a 2048-bit key, ``insecure-1024`` the "general" preset with a
#: 1024-bit key (smoke tests only).
PRESETS: dict[str, tuple[str, ...]] = {
    "ckks": _scheme_presets("ckks"),
    "bfv": _scheme_presets("bfv"),
    "paillier": _paillier_labels(),
}
#: What `he-ml bench` runs without --scheme/--preset (kept under ~2-3 minutes on 2 cores).
DEFAULT_PRESETS: dict[str, tuple[str, ...]] = {
    "ckks": ("sum", "inference"),
    "bfv": ("sum",),
    "paillier": ("general", "sum"),
}
#: What `he-ml bench --quick` runs: each scheme's "sum" preset (all 128-bit secure).
QUICK_PRESETS: dict[str, tuple[str, ...]] = {
    "ckks": ("sum",),
    "bfv": ("sum",),
    "paillier": ("sum",),
}


def _paillier_params(label: str) -> tuple[dict[str, Any], bool]:
    if label.startswith("insecure-"):
        return {"key_bits": int(label.split("-", 1)[1]), "preset": "general", "allow_insecure": True}, True
    preset, _, bits = label.partition("-")
    return {"key_bits": int(bits) if bits else PAILLIER_DEFAULT_KEY_BITS, "preset": preset}, False


def _config(scheme: str, preset: str) -> BenchConfig:
    valid = PRESETS[scheme]
    if preset not in valid:
        raise ParameterError(
            f"--preset {preset!r} is not a {scheme} preset; valid {scheme} presets are "
            f"{', '.join(valid)}."
        )
    if scheme == "paillier":
        params, insecure = _paillier_params(preset)
        return BenchConfig(scheme, preset, params, insecure)
    return BenchConfig(scheme, preset, {"preset": preset}, False)


def resolve_configs(schemes: list[str] | None = None, presets: list[str] | None = None, *,
                    quick: bool = False) -> list[BenchConfig]:
    """Turn ``--scheme`` / ``--preset`` options into benchmark configurations.

    Parameters
    ----------
    schemes : list of str, optional
        Scheme names; default: every scheme.
    presets : list of str, optional
        Preset labels; each applies to the selected schemes that know it. Default:
        `DEFAULT_PRESETS` (or `QUICK_PRESETS` when ``quick``).
    quick : bool
        Pick the smallest presets when none are given.

    Raises
    ------
    ParameterError
        Unknown scheme, or a preset that none of the selected schemes offers.
    """
    names = [s.lower() for s in (schemes or list(PRESETS))]
    for s in names:
        if s not in PRESETS:
            raise ParameterError(f"--scheme must be one of {', '.join(PRESETS)}; got {s!r}.")
    names = list(dict.fromkeys(names))
    configs: list[BenchConfig] = []
    if not presets:
        table = QUICK_PRESETS if quick else DEFAULT_PRESETS
        for s in names:
            configs.extend(_config(s, p) for p in table[s])
        return configs
    for p in dict.fromkeys(presets):
        matched = [s for s in names if p in PRESETS[s]]
        if not matched:
            offered = "; ".join(f"{s}: {', '.join(PRESETS[s])}" for s in names)
            raise ParameterError(
                f"--preset {p!r} is not offered by the selected scheme(s) {', '.join(names)}. "
                f"Valid presets — {offered}."
            )
        configs.extend(_config(s, p) for s in matched)
    # keep scheme order stable: all ckks first, then bfv, then paillier
    order = {s: i for i, s in enumerate(names)}
    return sorted(configs, key=lambda c: order[c.scheme])


def build_context(config: BenchConfig):
    """Create the scheme context (this is what the key-generation timing measures)."""
    from ..schemes import scheme
    return scheme(config.scheme, **config.params)
