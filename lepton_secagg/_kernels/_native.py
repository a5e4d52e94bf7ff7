"""The numpy kernels: the readable specification of the C kernels.

``add_masks``:

``vector[i] += sign_k * word_k[offset + i]`` (mod 2^(8*itemsize)) for every
key k, where ``word_k`` is the PRG keystream of key k read as little-endian
words of the vector's item size.  Keystream is produced chunk by chunk into
one reused buffer, so a whole mask is never materialised.

``quantize_into``: the quantisation steps of ``hazmat.quantize``, in place
into ``out``; the C kernel (src_ext/quantize.c) performs the same IEEE double
operations in the same order, so the two are bit-identical.

``pack_bits`` / ``unpack_bits``: ring elements of width b (1..64) as a
little-endian bit string, element i in bits [i b, (i + 1) b).

``encode_masked``: the fused client pipeline, quantise then mask then reduce
mod 2^b, written here as the composition of the kernels above.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._keystream import keystream, keystream_into

_CHUNK_BYTES = 1 << 20


def add_masks(
    vector: np.ndarray, keys: Sequence[bytes], signs: Sequence[int], suite: str, offset: int, threads: int
) -> None:
    """In place: add (sign +1) or subtract (sign -1) each key's mask; ``threads`` is ignored."""
    itemsize = vector.itemsize
    n = vector.shape[0]
    words_per_chunk = max(1, _CHUNK_BYTES // itemsize)
    stream = np.empty(min(n, words_per_chunk), dtype=vector.dtype.newbyteorder("<"))
    zeros = bytes(stream.nbytes)
    raw = stream.data.cast("B")
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


def quantize_into(
    values: object, uniforms: object, out: object, clip: float, scale: float, levels: int, weight: int
) -> int:
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


def pack_bits(words: object, bits: int, out: object) -> None:
    """``out`` = the elements of ``words`` at ``bits`` bits each, little-endian bit order.

    Bit j of the packed string is bit ``j % 8`` of byte ``j // 8``; element i
    occupies bits ``i*bits .. (i+1)*bits - 1``; the pad bits of the last byte
    are 0.  ``words`` is a C-contiguous uint32/uint64 array, ``out`` a writable
    uint8 array of exactly ``ceil(len(words) * bits / 8)`` bytes.  ValueError
    when an element is >= 2^bits (nothing meaningful is written then).
    """
    words, out = _check_pack_args(words, bits, out, "words")
    if words.size and bits < 64 and int(words.max()) >> bits:
        raise ValueError(f"an element is >= 2^{bits}; reduce the vector mod 2^{bits} before packing.")
    # Eight elements fill exactly `bits` bytes, so chunks of a multiple of 8 elements pack independently.
    step = 8 * 1024
    shifts = np.arange(bits, dtype=np.uint64)
    for start in range(0, words.size, step):
        chunk = words[start : start + step].astype(np.uint64)
        planes = ((chunk[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)  # (k, bits), least significant first
        packed = np.packbits(planes.reshape(-1), bitorder="little")
        first = start * bits // 8
        out[first : first + packed.size] = packed


def unpack_bits(data: object, bits: int, out: object) -> None:
    """The inverse of ``pack_bits``: ``out[i]`` = bits ``i*bits .. (i+1)*bits - 1`` of ``data``.

    ``data`` is a C-contiguous uint8 array of ``ceil(len(out) * bits / 8)``
    bytes; the pad bits are ignored (callers check them).
    """
    out, data = _check_pack_args(out, bits, data, "out", writable_words=True, writable_bytes=False)
    step = 8 * 1024
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    for start in range(0, out.size, step):
        count = min(step, out.size - start)
        first = start * bits // 8
        planes = np.unpackbits(data[first : first + -(-count * bits // 8)], bitorder="little")[: count * bits]
        values = planes.reshape(count, bits).astype(np.uint64) * weights  # one set bit per product: no carries
        out[start : start + count] = np.bitwise_or.reduce(values, axis=1)


def encode_masked(
    values: object,
    out: object,
    bits: int,
    clip: float,
    scale: float,
    levels: int,
    weight: int,
    round_key: bytes,
    keys: Sequence[bytes],
    signs: Sequence[int],
    suite: str,
    threads: int,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[int, int]:
    """The fused client pipeline; returns ``(clipped, nonfinite)``.

    With ``m = len(values)`` and ``out`` holding ``n >= m`` ring words
    (uint32 for bits <= 32, else uint64; ``out[m:]`` holds extra ring
    elements on entry, e.g. a weight slot):

    1. ``u[i] = r[i] * 2^-32`` where ``r`` is the ``suite`` keystream under
       ``round_key`` read as little-endian uint32 words (one per value);
    2. ``out[:m] = quantize_into(float64(values), u, ...)`` (see above);
    3. ``add_masks(out, keys, signs, suite, offset 0)``;
    4. ``out &= 2^bits - 1``.

    ``values`` is C-contiguous float32 or float64.  ``nonfinite`` counts NaN
    and infinite values; ``out`` is unspecified when it is not 0.
    ``meanwhile()``, when given, is called once before the work (the C kernel
    calls it while its threads work); if it raises, nothing is computed.
    """
    values = np.asarray(values)
    if values.dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or values.ndim != 1:
        raise TypeError(f"values must be a 1-D float32 or float64 array, got {values.dtype} of shape {values.shape}.")
    if not isinstance(out, np.ndarray) or out.ndim != 1 or out.dtype != (np.uint32 if bits <= 32 else np.uint64):
        raise TypeError("out must be a 1-D uint32 array for bits <= 32, uint64 above.")
    if not 1 <= bits <= 64 or out.size < values.size:
        raise ValueError(f"bits must be in 1..64 and out at least as long as values, got {bits} and {out.size} < {values.size}.")
    if meanwhile is not None:  # after the argument checks, as in C
        meanwhile()
    m = values.size
    nonfinite = int(m - np.count_nonzero(np.isfinite(values)))
    words = np.frombuffer(keystream(suite, round_key, 4 * m), dtype="<u4")
    uniforms = words.astype(np.float64) * 2.0**-32  # exact: a 32-bit integer times a power of two
    safe = np.where(np.isfinite(values), values, 0.0) if nonfinite else values
    clipped = quantize_into(safe.astype(np.float64), uniforms, out[:m], clip, scale, levels, weight)
    add_masks(out, keys, signs, suite, 0, threads)
    if bits < 8 * out.itemsize:
        np.bitwise_and(out, out.dtype.type((1 << bits) - 1), out=out)
    return clipped, nonfinite


def _check_pack_args(
    words: object, bits: int, data: object, name: str, writable_words: bool = False, writable_bytes: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 64:
        raise ValueError(f"bits must be an int in 1..64, got {bits!r}.")
    if not isinstance(words, np.ndarray) or words.dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
        raise TypeError(f"{name} must be a uint32 or uint64 numpy array.")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise TypeError("the packed bytes must be a uint8 numpy array.")
    if bits > 8 * words.itemsize:
        raise ValueError(f"{bits}-bit elements do not fit {words.dtype} words.")
    if (writable_words and not words.flags.writeable) or (writable_bytes and not data.flags.writeable):
        raise ValueError("the output must be writable.")
    if not words.flags.c_contiguous or not data.flags.c_contiguous:
        raise ValueError("the arrays must be C-contiguous.")
    words, data = words.reshape(-1), data.reshape(-1)
    if data.size != -(-words.size * bits // 8):
        raise ValueError(f"{words.size} elements of {bits} bits take {-(-words.size * bits // 8)} bytes, got {data.size}.")
    return words, data


def _check_quantize_args(
    values: object, uniforms: object, out: object, clip: float, scale: float, levels: int, weight: int
) -> list[np.ndarray]:
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


def _field_ints(buf: np.ndarray, count: int, words: int, name: str, writable: bool = False) -> np.ndarray:
    """The ``count`` field elements in ``buf`` as Python ints (checked below the modulus)."""
    view = np.frombuffer(buf, dtype=np.uint64) if not writable else np.asarray(buf).reshape(-1).view(np.uint64)
    if view.size != count * words:
        raise ValueError(f"{name} must hold {count * words} uint64 words, got {view.size}.")
    limbs = view.reshape(count, words).astype(object)
    ints = limbs[:, 0] if words == 1 else limbs[:, 0] + (limbs[:, 1] << 64)
    if count and max(ints) >= _FIELD_MODULI[words]:
        raise ValueError("every element must be below the field modulus.")
    return ints


def _field_store(buf: np.ndarray, ints: np.ndarray, words: int) -> None:
    view = np.asarray(buf).reshape(-1).view(np.uint64).reshape(-1, words)
    view[:, 0] = (ints & ((1 << 64) - 1)).astype(np.uint64)
    if words == 2:
        view[:, 1] = (ints >> 64).astype(np.uint64)


def _field_shape(rows: int, n: int, words: int) -> None:
    if rows < 0 or n < 1 or n & (n - 1) or n > 1 << 30 or words not in (1, 2):
        raise ValueError("rows >= 0, n a power of two up to 2^30, words 1 or 2.")


def field_transform(
    buf: np.ndarray,
    rows: int,
    n: int,
    words: int,
    twiddles: np.ndarray,
    pre: np.ndarray | None,
    scale: np.ndarray | None,
) -> None:
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


def field_dot(values: np.ndarray, rows: int, n: int, words: int, weights: np.ndarray, out: np.ndarray) -> None:
    """``out[r] = sum_k values[r, k] * weights[k] mod p``."""
    _field_shape(rows, n, words)
    p = _FIELD_MODULI[words]
    v = _field_ints(values, rows * n, words, "values").reshape(rows, n)
    w = _field_ints(weights, n, words, "weights")
    if np.asarray(out).reshape(-1).view(np.uint64).size != rows * words:
        raise ValueError(f"out must hold {rows * words} uint64 words.")
    _field_store(out, (v * w % p).sum(axis=1) % p if rows else np.zeros(0, dtype=object), words)
