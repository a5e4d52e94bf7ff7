"""The numpy masking kernel: the readable specification of the C kernel.

``vector[i] += sign_k * word_k[offset + i]`` (mod 2^(8*itemsize)) for every
key k, where ``word_k`` is the PRG keystream of key k read as little-endian
words of the vector's item size.  Keystream is produced chunk by chunk into
one reused buffer, so a whole mask is never materialised.
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
