"""The numpy kernels: the readable specification of the C kernels.

``add_masks``:

``vector[i] += sign_k * word_k[offset + i]`` (mod 2^(8*itemsize)) for every
key k, where ``word_k`` is the PRG keystream of key k read as little-endian
words of the vector's item size.  Keystream is produced chunk by chunk into
one reused buffer, so a whole mask is never materialised.

``quantize_into``: the quantisation steps of ``hazmat.quantize``, in place
into ``out``; the C kernel (src_ext/quantize.c) performs the same IEEE double
operations in the same order, so the two are bit-identical.
"""
from __future__ import annotations

import numpy as np

from ..hazmat.prg import keystream_into

_CHUNK_BYTES = 1 << 20


def add_masks(vector, keys, signs, suite, offset, threads):
    """In place: add (sign +1) or subtract (sign -1) each key's mask; ``threads`` is ignored."""
    itemsize = vector.itemsize
    n = vector.shape[0]
    words_per_chunk = max(1, _CHUNK_BYTES // itemsize)
    stream = np.empty(min(n, words_per_chunk), dtype=vector.dtype.newbyteorder("<"))
    zeros = bytes(stream.nbytes)
    raw = memoryview(stream).cast("B")
    for start in range(0, n, words_per_chunk):
        stop = min(n, start + words_per_chunk)
        count = stop - start
        out, zero = raw[: count * itemsize], memoryview(zeros)[: count * itemsize]
        part = stream[:count]
        for key, sign in zip(keys, signs):
            keystream_into(suite, key, out, zero, (offset + start) * itemsize)
            if sign > 0:
                np.add(vector[start:stop], part, out=vector[start:stop], casting="unsafe")
            else:
                np.subtract(vector[start:stop], part, out=vector[start:stop], casting="unsafe")


def quantize_into(values, uniforms, out, clip, scale, levels, weight):
    """``out[i] = min(floor(s) + (uniforms[i] < s - floor(s)), levels) * weight`` (mod the out width).

    ``s = (clip(values[i], -clip, clip) + clip) * scale``.  ``values`` and
    ``uniforms`` are C-contiguous float64 arrays, ``out`` a C-contiguous
    uint32/uint64 array with as many elements; returns how many values lay
    outside [-clip, clip].  Values must be finite (callers check).
    """
    values, uniforms, out = _check_quantize_args(values, uniforms, out, clip, scale, levels, weight)
    # One scratch array, updated in place: each full pass costs memory bandwidth.
    scaled = np.clip(values, -clip, clip)
    clipped = int(scaled.size - np.count_nonzero(scaled == values))
    scaled += clip
    scaled *= scale
    q = np.floor(scaled)
    scaled -= q  # now the fractional part
    q += uniforms < scaled  # floor + Bernoulli(fractional part)
    # Float rounding can put clip a hair above L; never let it cost a level.
    np.minimum(q, levels, out=q)
    np.multiply(q.astype(np.uint64), np.uint64(weight), out=out, casting="unsafe")  # wraps mod 2^64, then truncates
    return clipped


def _check_quantize_args(values, uniforms, out, clip, scale, levels, weight):
    """The C kernel's argument checks (TypeError / ValueError alike); returns flat views."""
    if not isinstance(clip, float) or not isinstance(scale, float):
        raise TypeError(f"clip and scale must be floats, got {type(clip).__name__} and {type(scale).__name__}.")
    for name, value in (("levels", levels), ("weight", weight)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"levels and weight must be ints, got {type(levels).__name__} and {type(weight).__name__}.")
    if not 1 <= levels <= 1 << 63:
        raise ValueError(f"levels must be an int in 1..2**63, got {levels!r}.")
    if not 0 <= weight < 1 << 64:
        raise ValueError(f"weight must be an int in 0..2**64-1, got {weight!r}.")
    arrays = []
    for name, array, kinds in (("values", values, "f8"), ("uniforms", uniforms, "f8"), ("out", out, "u48")):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must support the buffer protocol (a numpy array), not {type(array).__name__}.")
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous.")
        if name == "out" and not array.flags.writeable:
            raise ValueError("out must be writable.")
        if array.dtype.kind != kinds[0] or str(array.itemsize) not in kinds[1:] or not array.dtype.isnative:
            wanted = "native float64" if kinds[0] == "f" else "native uint32 or uint64"
            raise TypeError(f"{name} must hold {wanted}, got dtype {array.dtype}.")
        arrays.append(array.reshape(-1))
    if not arrays[0].size == arrays[1].size == arrays[2].size:
        raise ValueError(
            "values, uniforms and out must have the same length, "
            f"got {arrays[0].size}, {arrays[1].size} and {arrays[2].size}."
        )
    return arrays


# --- Prio3 field kernels (the specification of src_ext/field/field.c) --------------------------------
# Elements are little-endian uint64 limbs: words = 1 is Field64, words = 2 is Field128.
_FIELD_MODULI = {1: 2**32 * 4294967295 + 1, 2: 2**66 * 4611686018427387897 + 1}


def _field_ints(buf, count: int, words: int, name: str, writable: bool = False) -> np.ndarray:
    """The ``count`` field elements in ``buf`` as Python ints (checked below the modulus)."""
    view = np.frombuffer(buf, dtype=np.uint64) if not writable else np.asarray(buf).reshape(-1).view(np.uint64)
    if view.size != count * words:
        raise ValueError(f"{name} must hold {count * words} uint64 words, got {view.size}.")
    limbs = view.reshape(count, words).astype(object)
    ints = limbs[:, 0] if words == 1 else limbs[:, 0] + (limbs[:, 1] << 64)
    if count and max(ints) >= _FIELD_MODULI[words]:
        raise ValueError("every element must be below the field modulus.")
    return ints


def _field_store(buf, ints: np.ndarray, words: int) -> None:
    view = np.asarray(buf).reshape(-1).view(np.uint64).reshape(-1, words)
    view[:, 0] = (ints & ((1 << 64) - 1)).astype(np.uint64)
    if words == 2:
        view[:, 1] = (ints >> 64).astype(np.uint64)


def _field_shape(rows: int, n: int, words: int) -> None:
    if rows < 0 or n < 1 or n & (n - 1) or n > 1 << 30 or words not in (1, 2):
        raise ValueError("rows >= 0, n a power of two up to 2^30, words 1 or 2.")


def field_transform(buf, rows: int, n: int, words: int, twiddles, pre, scale) -> None:
    """In place, per row: ``a = row * pre`` (if given), bit-reverse, radix-2 DIT butterflies with
    ``twiddles[k] = w^k`` (k < n/2), then ``row = a * scale`` (if given); all mod p."""
    _field_shape(rows, n, words)
    p = _FIELD_MODULI[words]
    a = _field_ints(buf, rows * n, words, "buf", writable=True).reshape(rows, n)
    tw = _field_ints(twiddles, max(n // 2, 1), words, "twiddles")
    if pre is not None:
        a = a * _field_ints(pre, n, words, "pre") % p
    factor = _field_ints(scale, 1, words, "scale")[0] if scale is not None else None
    log_n = n.bit_length() - 1
    rev = np.array([int(format(i, f"0{log_n}b")[::-1], 2) if log_n else 0 for i in range(n)], dtype=np.intp)
    a = a[:, rev]
    half = 1
    while half < n:
        blocks = a.reshape(rows, n // (2 * half), 2, half)
        u = blocks[..., 0, :]
        v = blocks[..., 1, :] * tw[:: n // (2 * half)][:half] % p
        a = np.stack([(u + v) % p, (u - v) % p], axis=-2).reshape(rows, n)
        half *= 2
    if factor is not None:
        a = a * factor % p
    _field_store(buf, a.reshape(-1), words)


def field_dot(values, rows: int, n: int, words: int, weights, out) -> None:
    """``out[r] = sum_k values[r, k] * weights[k] mod p``."""
    _field_shape(rows, n, words)
    p = _FIELD_MODULI[words]
    v = _field_ints(values, rows * n, words, "values").reshape(rows, n)
    w = _field_ints(weights, n, words, "weights")
    if np.asarray(out).reshape(-1).view(np.uint64).size != rows * words:
        raise ValueError(f"out must hold {rows * words} uint64 words.")
    _field_store(out, (v * w % p).sum(axis=1) % p if rows else np.zeros(0, dtype=object), words)
