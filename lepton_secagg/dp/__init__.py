"""Distributed differential privacy: exact integer noise, encodings and accounting.

See docs/dp.md.  ``samplers`` holds the exact discrete Gaussian, Poisson and
Skellam samplers (secret randomness only from ``hazmat.rng``); ``rotation``,
``rounding`` and ``mechanism`` turn a float update into a ring vector for
SecAgg and the ring sum back into floats; ``accounting`` turns rounds into
epsilon (``Plan`` both ways, ``Accountant`` per round) on ``dp-accounting``.
"""
from typing import TYPE_CHECKING

from .mechanism import MECHANISMS, DdpEncoding, decode, encode
from .samplers import discrete_gaussian, poisson, skellam

if TYPE_CHECKING:  # the names __getattr__ loads on first use, for type checkers
    from .accounting import Accountant, Plan

__all__ = ["Plan", "Accountant", "MECHANISMS", "DdpEncoding", "encode", "decode", "discrete_gaussian", "poisson", "skellam"]


def __getattr__(name: str) -> object:
    # The accounting pulls in dp-accounting and scipy (seconds of import time): only on use.
    if name in ("Plan", "Accountant"):
        from . import accounting

        return getattr(accounting, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
