"""Shamir t-of-n secret sharing of short byte strings over GF(2^31 - 1).

Theory of operation: the field is the Mersenne prime p = 2^31 - 1, so a
product of two elements fits in a uint64 and numpy does every step on whole
arrays.  A secret of 1 to 1024 bytes is cut into 30-bit limbs, each the
constant term of its own polynomial of degree < t; share i is every
polynomial evaluated at x = i.  Reconstruction interpolates at 0 and checks
every share beyond t against the polynomial the first t define, so a forged
share is detected; robust reconstruction corrects up to (s - t) // 2 of them.

Which file holds what:

* ``field.py``: GF(2^31 - 1) arithmetic on uint64 arrays (reduction, exact
  matrix products in float64 BLAS, inverse tables, rejection sampling).
* ``shares.py``: ``Share``, the share-value encoding (length header, 30-bit
  limbs) and the validation of one secret's shares.
* ``sharing.py``: ``split`` / ``split_many`` (baby-step giant-step evaluation).
* ``interpolation.py``: ``lagrange_coefficients``, the cached per-index-set
  path and the batched barycentric path.
* ``reconstruction.py``: ``reconstruct`` / ``reconstruct_many`` (validating
  and batching many share lists).
* ``robust.py``: ``reconstruct_robust`` / ``reconstruct_many_robust``
  (Reed-Solomon syndrome decoding).
* ``berlekamp_massey.py``: the shortest linear recurrence the decoder needs.
"""
from __future__ import annotations

from .berlekamp_massey import _berlekamp_massey, _bm_numpy, _bm_python
from .field import MAX_SHARES, PRIME, _random_elements
from .interpolation import _extension, _lagrange_at_zero, lagrange_coefficients
from .reconstruction import reconstruct, reconstruct_many
from .robust import _grs_weights, reconstruct_many_robust, reconstruct_robust
from .shares import MAX_SECRET_SIZE, Share, share_size
from .sharing import split, split_many

# The private helpers above are re-exported because the tests and
# bench/bench_primitives.py reach them as ``shamir._name``; they are not API.
__all__ = [
    "PRIME",
    "MAX_SHARES",
    "MAX_SECRET_SIZE",
    "Share",
    "share_size",
    "split",
    "split_many",
    "reconstruct",
    "reconstruct_many",
    "reconstruct_robust",
    "reconstruct_many_robust",
    "lagrange_coefficients",
]
