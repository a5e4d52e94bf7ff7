"""Interpolation at 0: Lagrange coefficients per index set, and the barycentric batch form.

``_interpolate_shared`` serves lists that share one index set: the cached
Lagrange coefficients of the first t indices (``_lagrange_at_zero``), and the
cached extension (``_extension``) that checks every share beyond t against
the polynomial the first t define.  ``_interpolate_rows`` serves lists that
each have their own indices: a table lookup of inverses of index
differences, a log-depth product and one batched matrix product for all of
them.
"""
from __future__ import annotations

import functools
from typing import cast

import numpy as np
import numpy.typing as npt

from .field import (
    _P,
    MAX_SHARES,
    PRIME,
    _difference_matrix,
    _halves,
    _inverse_of_differences,
    _matmul_mod,
    _matmul_mod_batched,
    _mulmod,
    _powmod,
    _product_mod,
    _reduce,
    _signed_inverses,
    _small_inverses,
    _table_size,
)


def lagrange_coefficients(indices: tuple[int, ...]) -> np.ndarray:
    """The Lagrange coefficients at x = 0 for the distinct ``indices``, in their order.

    ``secret = sum(c_i * y_i) mod PRIME`` for shares ``(indices[i], y_i)`` of a
    polynomial of degree < len(indices).  Computed once per sorted index set
    (a bounded LRU cache) and returned as a fresh uint64 array.
    """
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"indices must be a tuple of ints, not {type(indices).__name__}.")
    if not indices:
        raise ValueError("indices must not be empty.")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"an index must be an int, not {type(index).__name__}.")
        if not 1 <= index <= MAX_SHARES:
            raise ValueError(f"an index must lie in 1..{MAX_SHARES}, got {index}.")
    ordered = tuple(sorted(indices))
    if len(set(ordered)) != len(ordered):
        raise ValueError("indices must be distinct.")
    return _lagrange_at_zero(ordered)[np.searchsorted(ordered, indices)]


def _interpolate_shared(indices: tuple[int, ...], ys: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(limbs (L, m) of f(0), inconsistent (L,)) for L lists all with share indices ``indices``.

    Uses the cached Lagrange coefficients of ``indices[:t]`` and extension of
    ``indices[t:]``, and one matrix product over all L lists' limbs.
    """
    count, s, m = ys.shape
    columns = ys[0] if count == 1 else ys.transpose(1, 0, 2).reshape(s, count * m)
    if s > t:
        weighted_inverses, scale = _extension(indices[:t], indices[t:])
        predicted = _mulmod(_matmul_mod(weighted_inverses, columns[:t]), scale)
        inconsistent = (predicted != columns[t:]).reshape(s - t, count, m).any(axis=(0, 2))
    else:
        inconsistent = np.zeros(count, dtype=bool)
    limbs = _matmul_mod(_halves(_lagrange_at_zero(indices[:t])[None, :]), columns[:t])[0]
    return limbs.reshape(count, m), inconsistent


def _interpolate_rows(xs: np.ndarray, ys: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(limbs (L, m) of f(0), inconsistent (L,)) for L lists, each with its own indices.

    ``xs`` (L, s) holds each list's sorted indices, ``ys`` (L, s, m) its limbs;
    row l's polynomial is the one through its first t points.  With
    l(x) = prod_j (x_j - x) and w_i = prod_{j != i} 1 / (x_j - x_i) over those
    points, f(x) = -l(x) S(x), S(x) = sum_i w_i y_i / (x - x_i) (barycentric
    form), for x = 0 and every further index x_e.  Share e is consistent iff
    y_e / l(x_e) = -S(x_e).  Everything is a table lookup of an inverse of an
    index difference, a log-depth product or one batched matrix product.
    """
    count, s, m = ys.shape
    size = _table_size(int(xs[:, -1].max()))
    inverse = _signed_inverses(size)  # [size + d] = 1 / d, [size] = 1
    xs = xs.astype(np.int32)  # indices and table positions are below 2^22
    basis = xs[:, :t]
    # [j, l, c] = 1 / (x_j - x_c), j < t: the products over j are w (c < t; the
    # diagonal is 1) and 1 / l(x_c) (c >= t)
    products = _product_mod(inverse[(basis.T + size)[:, :, None] - xs[None, :, :]])
    ell_at_zero = _product_mod(basis.T.astype(np.uint64))
    weighted = _mulmod(ys[:, :t], products[:, :t, None])  # w_i y_i
    points = xs[:, t:].copy()
    # [l, e, i] = 1 / (x_e - x_i) for x_e = 0 and each extra index
    differences = np.empty((count, s - t + 1, t), dtype=np.int32)
    differences[:, 0] = size - basis
    np.subtract((points + size)[:, :, None], basis[:, None, :], out=differences[:, 1:])
    sums = _matmul_mod_batched(inverse[differences], weighted)  # S, (L, s - t + 1, m)
    limbs = _mulmod(sums[:, 0], (_P - ell_at_zero)[:, None])
    check = _mulmod(ys[:, t:], products[:, t:, None])
    check += sums[:, 1:]
    # numpy's stubs type any(axis=...) as a scalar or an array; here it is an (L,) array
    inconsistent = cast("npt.NDArray[np.bool_]", _reduce(check).any(axis=(1, 2)))
    return limbs, inconsistent


@functools.lru_cache(maxsize=64)
def _lagrange_at_zero(indices: tuple[int, ...]) -> np.ndarray:
    """L_i(0) = prod_{j != i} x_j / (x_j - x_i) for sorted distinct ``indices``; read-only."""
    x = np.array(indices, dtype=np.uint64)
    differences = _difference_matrix(x, x)  # [j, i] = x_j - x_i
    np.fill_diagonal(differences, 1)
    everything = functools.reduce(lambda acc, xj: acc * xj % PRIME, indices, 1)
    # prod_{j != i} x_j = everything / x_i: one table lookup each
    numerators = _mulmod(_small_inverses(_table_size(indices[-1]))[x], np.uint64(everything))
    coefficients = _mulmod(numerators, _powmod(_product_mod(differences), PRIME - 2))
    coefficients.flags.writeable = False
    return coefficients


@functools.lru_cache(maxsize=16)
def _extension(basis: tuple[int, ...], extras: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """What predicts the shares at ``extras`` from those at ``basis``: ``(halves(W), s)``.

    The prediction is f(x_e) = s_e * sum_i W[e, i] f(x_i) (barycentric form):
    L_i(x) = l(x) / l(0) * lambda_i * (-x_i) / (x - x_i) with l(x) = prod_j (x - x_j)
    and lambda_i = L_i(0), so W[e, i] = lambda_i (-x_i) / (x_e - x_i) and
    s_e = l(x_e) / l(0).  The O(t^2) part is the cached lambda; the rest costs
    O(len(extras) * t), and s is applied after the product, on fewer elements.
    """
    xb = np.array(basis, dtype=np.int64)
    xe = np.array(extras, dtype=np.int64)
    weights = _mulmod(_lagrange_at_zero(basis), (PRIME - xb).astype(np.uint64))  # lambda_i * (-x_i)
    matrix = _mulmod(weights[None, :], _inverse_of_differences(xe[:, None] - xb[None, :]))
    # l(x_e) / l(0) is unchanged by the sign (-1)^t, so take l(x) = prod_j (x_j - x)
    ell_at_extras = _product_mod(_difference_matrix(xb.astype(np.uint64), xe.astype(np.uint64)))
    ell_at_zero = functools.reduce(lambda acc, x: acc * x % PRIME, basis, 1)
    scale = _mulmod(ell_at_extras, np.uint64(pow(ell_at_zero, PRIME - 2, PRIME)))[:, None]
    scale.flags.writeable = False
    return _halves(matrix), scale
