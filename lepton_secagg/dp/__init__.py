"""Distributed differential privacy: exact integer noise, encodings and accounting.

See docs/dp.md.  ``samplers`` holds the exact discrete Gaussian, Poisson and
Skellam samplers (secret randomness only from ``hazmat.rng``); ``rotation``,
``rounding`` and ``mechanism`` turn a float update into a ring vector for
SecAgg and the ring sum back into floats.
"""
from .mechanism import MECHANISMS, DdpEncoding, decode, encode
from .samplers import discrete_gaussian, poisson, skellam

__all__ = ["MECHANISMS", "DdpEncoding", "encode", "decode", "discrete_gaussian", "poisson", "skellam"]
