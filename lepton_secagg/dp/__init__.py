"""Distributed differential privacy: exact integer noise, encodings and accounting.

See docs/dp.md.  ``samplers`` holds the exact discrete Gaussian, Poisson and
Skellam samplers (secret randomness only from ``hazmat.rng``).
"""
from .samplers import discrete_gaussian, poisson, skellam

__all__ = ["discrete_gaussian", "poisson", "skellam"]
