"""Contract of the C kernels (src_ext/); _native.py is their specification."""
from collections.abc import Callable, Sequence

def add_masks(
    vector: object,
    keys: Sequence[bytes],
    signs: Sequence[int],
    suite: str,
    offset: int,
    threads: int,
) -> None:
    """In place: ``vector[i] += sign_k * word_k[offset + i]`` for each key k.

    ``vector`` is a writable C-contiguous buffer of 4-byte or 8-byte unsigned
    words (format "I"/"L"/"Q" or a numpy uint32/uint64 array); ``word_k`` is the
    little-endian reading of the ``suite`` keystream under ``keys[k]``
    ("aes128ctr": 16-byte keys, 128-bit big-endian counter from 0;
    "chacha20": RFC 8439, 32-byte keys, zero nonce, counter from 0).  ``signs``
    are +1/-1.  ``threads`` >= 1 splits the element range across workers.
    The GIL is released while it runs.  Raises TypeError/ValueError on bad
    arguments, with the same meaning as ``hazmat.masking.add_masks``.
    """

def quantize_into(
    values: object,
    uniforms: object,
    out: object,
    clip: float,
    scale: float,
    levels: int,
    weight: int,
) -> int:
    """Fused quantisation; returns how many values lay outside [-clip, clip].

    Per element, in IEEE double and in this order (bit-identical to
    ``_native.quantize_into``): ``c = clip(x, -clip, clip)`` (np.clip),
    counted as clipped when ``c != x``; ``s = (c + clip) * scale``;
    ``f = floor(s)``; ``q = min(f + (u < s - f), levels)``;
    ``out = uint64(q) * weight`` mod 2^64, truncated to the out width.

    ``values`` and ``uniforms`` are C-contiguous native float64 buffers (any
    shape), ``out`` a writable C-contiguous uint32/uint64 buffer, all with the
    same number of elements; ``clip`` and ``scale`` are floats, ``levels`` an
    int in 1..2^63 (rounded to float64 as numpy does, so q always fits a uint64), ``weight`` an int in 0..2^64-1.  Values must be finite
    (results for NaN/inf are unspecified).  The GIL is released while it runs.
    Raises TypeError (buffer kinds, formats, argument types) / ValueError
    (non-contiguous or read-only buffers, unequal lengths, out-of-range ints).
    """

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

    ``values`` is a C-contiguous native float32/float64 buffer of m elements;
    ``out`` a writable C-contiguous buffer of n >= m native words, uint32 for
    bits <= 32 and uint64 above, whose ``out[m:]`` holds extra ring elements
    on entry.  In one pass over 16 KiB pieces of ``out`` (threads as
    ``add_masks``), bit-identical to ``_native.encode_masked``:
    ``out[:m] = quantize(values)`` with the uniforms ``w * 2^-32`` of the
    ``suite`` keystream under ``round_key`` read as little-endian uint32
    words (one per value), then ``out[i] += sign_k * word_k[i]`` for every
    key, then ``out &= 2^bits - 1``.  ``nonfinite`` counts NaN/inf values;
    ``out`` is unspecified when it is not 0.  The GIL is released, except
    while ``meanwhile()`` runs: it is called once, on the calling thread,
    while the worker threads already work (the caller joins them after it);
    if it raises, the workers stop early, ``out`` is unspecified and the
    exception propagates.
    """

def pack_bits(words: object, bits: int, out: object) -> None:
    """``out`` = ``words`` (uint32/uint64) at ``bits`` (1..64) bits each, little-endian bit order.

    ``out`` is a writable uint8 buffer of exactly ``ceil(len(words) * bits / 8)``
    bytes; the pad bits are written as 0.  ValueError when an element is
    >= 2^bits or the sizes disagree.
    """

def unpack_bits(data: object, bits: int, out: object) -> None:
    """The inverse of ``pack_bits``; the pad bits of ``data`` are ignored."""
