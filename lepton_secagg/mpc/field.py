"""The NTT-friendly prime fields of draft-irtf-cfrg-vdaf-20 (Field64, Field128).

Theory of operation: a vector of field elements is a numpy array of Python
ints (``dtype=object``) kept reduced into ``[0, MODULUS)``.  Python ints give
exact 128-bit arithmetic; numpy gives the loops (one C-level pass per
operation over a whole vector or matrix).  Bytes are little-endian,
``ENCODED_SIZE`` per element, converted through ``uint64`` limbs so that
encoding a million elements costs a few numpy passes, not a million
``int.from_bytes`` calls.

The NTT works along the last axis, so a matrix of wires is transformed in
one call (one vectorised pass per butterfly stage).  Evaluations are in
natural order: ``ntt(c, n)[i] == P(w_n ** i)`` with ``w_n = gen ** (GEN_ORDER / n)``,
the spec's choice of root.
"""
from __future__ import annotations

import numpy as np

from ..exceptions import DecodeError

__all__ = ["Field", "Field64", "Field128"]

_M64 = (1 << 64) - 1


class Field:
    """One prime field: constants, vector encoding and polynomial helpers (class methods)."""

    NAME: str
    MODULUS: int
    ENCODED_SIZE: int
    GEN_ORDER: int
    GENERATOR: int

    # --- vectors ---------------------------------------------------------
    @classmethod
    def vec(cls, values) -> np.ndarray:
        """An object array of ``values`` reduced mod p (accepts ints, negatives included)."""
        out = np.empty(len(values), dtype=object)
        out[:] = [int(v) % cls.MODULUS for v in values]
        return out

    @classmethod
    def zeros(cls, shape) -> np.ndarray:
        out = np.empty(shape, dtype=object)
        out.fill(0)
        return out

    @classmethod
    def encode_vec(cls, vec: np.ndarray) -> bytes:
        """Little-endian bytes, ``ENCODED_SIZE`` per element."""
        vec = np.asarray(vec, dtype=object).reshape(-1)
        if cls.ENCODED_SIZE == 8:
            return vec.astype(np.uint64).astype("<u8").tobytes()
        limbs = np.empty((len(vec), 2), dtype="<u8")
        limbs[:, 0] = (vec & _M64).astype(np.uint64)
        limbs[:, 1] = (vec >> 64).astype(np.uint64)
        return limbs.tobytes()

    @classmethod
    def decode_vec(cls, data: bytes, *, what: str = "field vector") -> np.ndarray:
        """Parse ``data``; every element must be below the modulus (``DecodeError`` otherwise)."""
        if len(data) % cls.ENCODED_SIZE:
            raise DecodeError(
                f"{what}: {len(data)} bytes is not a multiple of {cls.ENCODED_SIZE} ({cls.NAME} elements)."
            )
        vec = cls.from_le_bytes(data)
        if len(vec) and max(vec) >= cls.MODULUS:
            raise DecodeError(f"{what}: an element is not below the {cls.NAME} modulus.")
        return vec

    @classmethod
    def from_le_bytes(cls, data: bytes) -> np.ndarray:
        """Unreduced ints from little-endian ``ENCODED_SIZE``-byte words (no range check)."""
        words = np.frombuffer(data, dtype="<u8")
        if cls.ENCODED_SIZE == 8:
            return words.astype(object)
        words = words.reshape(-1, 2)
        return words[:, 0].astype(object) + (words[:, 1].astype(object) << 64)

    # --- scalars ----------------------------------------------------------
    @classmethod
    def inv(cls, x: int) -> int:
        return pow(int(x), cls.MODULUS - 2, cls.MODULUS)

    @classmethod
    def root(cls, n: int) -> int:
        """A primitive ``n``-th root of unity (``n`` a power of two up to ``GEN_ORDER``)."""
        if n < 1 or n & (n - 1) or n > cls.GEN_ORDER:
            raise ValueError(f"root: n must be a power of two up to 2^{cls.GEN_ORDER.bit_length() - 1}, got {n}.")
        return pow(cls.GENERATOR, cls.GEN_ORDER // n, cls.MODULUS)

    @classmethod
    def powers(cls, x: int, n: int, start: int = 1) -> np.ndarray:
        """``[start * x**i for i in range(n)]`` as an object array."""
        out = np.empty(n, dtype=object)
        acc, p = start % cls.MODULUS, cls.MODULUS
        for i in range(n):
            out[i] = acc
            acc = acc * x % p
        return out

    @classmethod
    def batch_inv(cls, vec: np.ndarray) -> np.ndarray:
        """Elementwise inverses with one exponentiation (Montgomery's trick); no zero allowed."""
        p = cls.MODULUS
        prefix = np.empty(len(vec), dtype=object)
        acc = 1
        for i, x in enumerate(vec):
            prefix[i] = acc
            acc = acc * x % p
        inv = pow(acc, p - 2, p)
        out = np.empty(len(vec), dtype=object)
        for i in range(len(vec) - 1, -1, -1):
            out[i] = inv * prefix[i] % p
            inv = inv * vec[i] % p
        return out

    # --- polynomials --------------------------------------------------------
    @classmethod
    def ntt(cls, coeffs: np.ndarray, n: int, *, coset: bool = False) -> np.ndarray:
        """Evaluate polynomials (coefficients on the last axis) at the ``n``-th roots.

        With ``coset`` the points are ``s * w_n**i``, ``s`` a primitive ``2n``-th root.
        """
        p = cls.MODULUS
        a = cls._pad(coeffs, n)
        if coset:
            a = a * cls.powers(cls.root(2 * n), n) % p
        return cls._transform(a, cls.root(n))

    @classmethod
    def inv_ntt(cls, values: np.ndarray) -> np.ndarray:
        """Coefficients from evaluations at the ``n``-th roots (``n`` = last axis length)."""
        n = values.shape[-1]
        a = cls._transform(np.asarray(values, dtype=object), cls.inv(cls.root(n)))
        return a * cls.inv(n) % cls.MODULUS

    @classmethod
    def _pad(cls, a: np.ndarray, n: int) -> np.ndarray:
        a = np.asarray(a, dtype=object)
        if a.shape[-1] > n:
            raise ValueError(f"ntt: {a.shape[-1]} coefficients do not fit {n} points.")
        out = cls.zeros(a.shape[:-1] + (n,))
        out[..., : a.shape[-1]] = a
        return out

    @classmethod
    def _transform(cls, a: np.ndarray, w: int) -> np.ndarray:
        """Radix-2 decimation-in-time DFT over the last axis with root ``w``."""
        p = cls.MODULUS
        n = a.shape[-1]
        log_n = n.bit_length() - 1
        if n & (n - 1):
            raise ValueError(f"ntt: length must be a power of two, got {n}.")
        rev = np.array([int(format(i, f"0{log_n}b")[::-1], 2) if log_n else 0 for i in range(n)], dtype=np.intp)
        a = a[..., rev]
        lead = a.shape[:-1]
        half = 1
        while half < n:
            twiddles = cls.powers(pow(w, n // (2 * half), p), half)
            blocks = a.reshape(lead + (n // (2 * half), 2, half))
            u = blocks[..., 0, :]
            v = blocks[..., 1, :] * twiddles % p
            a = np.stack([(u + v) % p, (u - v) % p], axis=-2).reshape(lead + (n,))
            half *= 2
        return a

    @classmethod
    def lagrange_eval(cls, values: np.ndarray, x: int) -> np.ndarray:
        """Evaluate, at ``x``, the polynomials given by values at the ``n``-th roots (last axis).

        Barycentric form: ``P(x) = (x^n - 1)/n * sum_i v_i w^i / (x - w^i)``;
        ``x`` must not be an ``n``-th root of unity.
        """
        p = cls.MODULUS
        n = values.shape[-1]
        nodes = cls.powers(cls.root(n), n)
        weights = nodes * cls.batch_inv((x - nodes) % p) % p
        scale = (pow(x, n, p) - 1) * cls.inv(n) % p
        return (values * weights % p).sum(axis=-1) % p * scale % p


class Field64(Field):
    """GF(2^32 * 4294967295 + 1), 8 bytes per element."""

    NAME = "Field64"
    MODULUS = 2**32 * 4294967295 + 1
    ENCODED_SIZE = 8
    GEN_ORDER = 2**32
    GENERATOR = pow(7, 4294967295, MODULUS)


class Field128(Field):
    """GF(2^66 * 4611686018427387897 + 1), 16 bytes per element."""

    NAME = "Field128"
    MODULUS = 2**66 * 4611686018427387897 + 1
    ENCODED_SIZE = 16
    GEN_ORDER = 2**66
    GENERATOR = pow(7, 4611686018427387897, MODULUS)
