"""Encrypted gradient summation for any pipeline, with optional differential privacy."""
from __future__ import annotations

from .aggregator import GradientAggregator, flatten_update, unflatten_update

__all__ = ["GradientAggregator", "flatten_update", "unflatten_update"]
