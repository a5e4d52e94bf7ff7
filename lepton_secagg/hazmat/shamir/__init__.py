"""Shamir t-of-n secret sharing of short byte strings over GF(2^31 - 1).

The code moves into modules named for what they hold; for now all of it is
in ``reconstruction.py``.
"""
from __future__ import annotations

from .reconstruction import (
    MAX_SECRET_SIZE,
    MAX_SHARES,
    PRIME,
    Share,
    _berlekamp_massey,
    _bm_numpy,
    _bm_python,
    _extension,
    _grs_weights,
    _lagrange_at_zero,
    _random_elements,
    lagrange_coefficients,
    reconstruct,
    reconstruct_many,
    reconstruct_many_robust,
    reconstruct_robust,
    share_size,
    split,
    split_many,
)
from .reconstruction import __all__
