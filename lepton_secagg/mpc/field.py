"""The NTT-friendly prime fields of draft-irtf-cfrg-vdaf-20 (Field64, Field128).

Theory of operation: a vector of field elements is a numpy array of Python
ints (``dtype=object``) kept reduced into ``[0, MODULUS)``.  Python ints give
exact 128-bit arithmetic; numpy gives the loops (one C-level pass per
operation over a whole vector or matrix).  Bytes are little-endian,
``ENCODED_SIZE`` per element, converted through ``uint64`` limbs so that
encoding a million elements costs a few numpy passes, not a million
``int.from_bytes`` calls.

Transforms work along the last axis, so a matrix of wires is transformed
in one call; the butterflies run in the field kernel (``_kernels.field_transform``:
C when built, ``_native`` otherwise) on ``uint64`` limbs.  Evaluation points
are in natural order, ``w_n**i`` with ``w_n = gen ** (GEN_ORDER / n)``, the
spec's choice of root.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _kernels
from ..exceptions import DecodeError

__all__ = ["Field", "Field64", "Field128", "FieldVec"]

#: A vector (or matrix) of field elements: Python ints in an object array, reduced mod p.
FieldVec = npt.NDArray[np.object_]

_M64 = (1 << 64) - 1


class Field:
    """One prime field: constants, vector encoding and polynomial helpers (class methods)."""

    NAME: str
    WORDS: int  # uint64 limbs per element in the field kernels
    MODULUS: int
    ENCODED_SIZE: int
    GEN_ORDER: int
    GENERATOR: int

    # --- vectors ---------------------------------------------------------
    @classmethod
    def vec(cls, values: Sequence[int] | npt.NDArray[Any]) -> FieldVec:
        """An object array of ``values`` reduced mod p (accepts ints, negatives included)."""
        out = np.empty(len(values), dtype=object)
        out[:] = [int(v) % cls.MODULUS for v in values]
        return out

    @classmethod
    def zeros(cls, shape: int | tuple[int, ...]) -> FieldVec:
        out = np.empty(shape, dtype=object)
        out.fill(0)
        return out

    @classmethod
    def encode_vec(cls, vec: FieldVec) -> bytes:
        """Little-endian bytes, ``ENCODED_SIZE`` per element."""
        return cls._limbs(vec).astype("<u8").tobytes()

    @classmethod
    def decode_vec(cls, data: bytes, *, what: str = "field vector") -> FieldVec:
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
    def from_le_bytes(cls, data: bytes) -> FieldVec:
        """Unreduced ints from little-endian ``ENCODED_SIZE``-byte words (no range check)."""
        return cls._from_limbs(np.frombuffer(data, dtype="<u8"))

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
    def powers(cls, x: int, n: int) -> FieldVec:
        """``[x**i for i in range(n)]`` as an object array."""
        out = np.empty(n, dtype=object)
        acc, p = 1, cls.MODULUS
        for i in range(n):
            out[i] = acc
            acc = acc * x % p
        return out

    @classmethod
    def batch_inv(cls, vec: FieldVec) -> FieldVec:
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
    def coset_values(cls, values: FieldVec) -> FieldVec:
        """From values at the ``n``-th roots (last axis) to values at the coset ``s * w_n**i``.

        An inverse DFT (with the 1/n) then a DFT of the coefficients scaled by ``s**i``,
        both by the field kernel, with one limb conversion each way.
        """
        n = values.shape[-1]
        buf = cls._limbs(values)
        rows = buf.size // (n * cls.WORDS)
        w = cls.root(n)
        _kernels.field_transform(buf, rows, n, cls.WORDS, cls._limbs(cls.powers(cls.inv(w), max(n // 2, 1))), None,
                                 cls._limbs(np.array([cls.inv(n)], dtype=object)))
        _kernels.field_transform(buf, rows, n, cls.WORDS, cls._limbs(cls.powers(w, max(n // 2, 1))),
                                 cls._limbs(cls.powers(cls.root(2 * n), n)), None)
        return cls._from_limbs(buf).reshape(values.shape)

    @classmethod
    def _limbs(cls, a: FieldVec) -> npt.NDArray[np.uint64]:
        """Reduced elements as a C-contiguous uint64 array of ``WORDS`` little-endian limbs each."""
        flat = np.asarray(a, dtype=object).reshape(-1)
        out = np.empty((flat.size, cls.WORDS), dtype=np.uint64)
        out[:, 0] = (flat & _M64).astype(np.uint64) if cls.WORDS == 2 else flat.astype(np.uint64)
        if cls.WORDS == 2:
            out[:, 1] = (flat >> 64).astype(np.uint64)
        return out

    @classmethod
    def _from_limbs(cls, limbs: npt.NDArray[np.uint64]) -> FieldVec:
        words = limbs.reshape(-1, cls.WORDS)
        if cls.WORDS == 1:
            return words[:, 0].astype(object)
        joined: FieldVec = words[:, 0].astype(object) + (words[:, 1].astype(object) << 64)
        return joined

    @classmethod
    def lagrange_eval(cls, values: FieldVec, x: int) -> FieldVec:
        """Evaluate, at ``x``, the polynomials given by values at the ``n``-th roots (last axis).

        Barycentric form: ``P(x) = (x^n - 1)/n * sum_i v_i w^i / (x - w^i)``;
        ``x`` must not be an ``n``-th root of unity.
        """
        p = cls.MODULUS
        n = values.shape[-1]
        nodes = cls.powers(cls.root(n), n)
        weights = nodes * cls.batch_inv((x - nodes) % p) % p
        scale = (pow(x, n, p) - 1) * cls.inv(n) % p
        rows = values.size // n
        out = np.empty((rows, cls.WORDS), dtype=np.uint64)
        _kernels.field_dot(cls._limbs(values), rows, n, cls.WORDS, cls._limbs(weights), out)
        evaluated: FieldVec = cls._from_limbs(out).reshape(values.shape[:-1]) * scale % p
        return evaluated


class Field64(Field):
    """GF(2^32 * 4294967295 + 1), 8 bytes per element."""

    NAME = "Field64"
    WORDS = 1
    MODULUS = 2**32 * 4294967295 + 1
    ENCODED_SIZE = 8
    GEN_ORDER = 2**32
    GENERATOR = pow(7, 4294967295, MODULUS)


class Field128(Field):
    """GF(2^66 * 4611686018427387897 + 1), 16 bytes per element."""

    NAME = "Field128"
    WORDS = 2
    MODULUS = 2**66 * 4611686018427387897 + 1
    ENCODED_SIZE = 16
    GEN_ORDER = 2**66
    GENERATOR = pow(7, 4611686018427387897, MODULUS)
