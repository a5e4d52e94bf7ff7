"""Contract of the Prio3 field kernels (src_ext/field/field.c); _native.field_* is their specification.

Elements are little-endian limbs of native uint64: ``words = 1`` is Field64
(p = 2^64 - 2^32 + 1), ``words = 2`` is Field128 (p = 2^66 * 4611686018427387897 + 1);
every element passed in must be below p (ValueError otherwise).  Buffers are
C-contiguous with 8-byte items (numpy uint64 arrays).  ``n`` is a power of two
up to 2^30.  The GIL is released while they run.
"""

def transform(buf: object, rows: int, n: int, words: int, twiddles: object, pre: object | None,
              scale: object | None) -> None:
    """In place, for each of the ``rows`` rows of ``n`` elements in ``buf``: multiply elementwise by
    ``pre`` (n elements) if given, permute to bit-reversed order, run the radix-2 decimation-in-time
    butterflies with ``twiddles[k] = w^k`` (max(n/2, 1) elements; stage with half-size h uses
    ``twiddles[j * n / (2h)]``), multiply by ``scale`` (1 element) if given.  With ``w`` a primitive
    n-th root this evaluates each row's polynomial at ``w^i`` in natural order."""

def dot(values: object, rows: int, n: int, words: int, weights: object, out: object) -> None:
    """``out[r] = sum_k values[r, k] * weights[k] mod p`` for a ``rows x n`` matrix; ``out`` writable."""
