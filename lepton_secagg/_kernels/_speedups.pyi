"""Contract of the C masking kernel (src_ext/); _native.py is its specification."""
from collections.abc import Sequence

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
