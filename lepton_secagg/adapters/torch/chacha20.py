"""RFC 8439 ChaCha20 masks in torch integer ops, on any device (the ``"torch"`` engine of ``add_masks``).

The state of many blocks and keys is held at once, as (4 rows, 4 columns,
keys * blocks) int32 tensors; ``CHUNK_BLOCKS`` bounds the blocks of one batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor  # for annotations inside functions, where a parameter named torch hides the module

#: ChaCha20 blocks (64 bytes each) computed by one batch of torch ops, summed
#: over the keys of the batch, per device type.  On the CPU 2^14 blocks (1 MiB
#: of keystream, ~5 MiB of temporaries) stay in cache and ran fastest; on a GPU
#: 2^18 blocks (16 MiB of keystream, ~80 MiB of temporaries) amortise the
#: kernel launches (about 570 small kernels per batch).  Tests lower them to
#: exercise chunk boundaries cheaply.
CHUNK_BLOCKS: dict[str, int] = {"cpu": 1 << 14, "default": 1 << 18}


_CHACHA_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


def _key_words(torch: ModuleType, keys: Sequence[bytes], device: torch.device) -> torch.Tensor:
    """int32 (len(keys), 8): the little-endian words of each 32-byte ChaCha20 key, on ``device``."""
    words = np.frombuffer(b"".join(keys), dtype="<u4").astype(np.uint32).view(np.int32).reshape(len(keys), 8)
    on_device: Tensor = torch.from_numpy(words).to(device)
    return on_device


def _chacha20_add(
    torch: ModuleType, vector: torch.Tensor, keys: Sequence[bytes], signs: Sequence[int], offset: int
) -> None:
    """Add the signed ChaCha20 masks to a contiguous int32/int64 ``vector`` (torch ops only)."""
    device = vector.device
    words_per_element = vector.element_size() // 4
    per_block = 16 // words_per_element  # elements per 64-byte block
    n = vector.numel()
    first_block, skip = divmod(offset, per_block)
    nblocks = -(-(skip + n) // per_block)
    budget = CHUNK_BLOCKS.get(device.type, CHUNK_BLOCKS["default"])
    blocks_per_pass = min(nblocks, budget)
    keys_per_pass = max(1, budget // blocks_per_pass)
    key_words = _key_words(torch, keys, device)
    for start in range(0, nblocks, blocks_per_pass):
        nb = min(blocks_per_pass, nblocks - start)
        # elements of this pass: stream elements [start*per_block, (start+nb)*per_block) relative to the first block
        lo = max(start * per_block, skip)
        hi = min((start + nb) * per_block, skip + n)
        for k0 in range(0, len(keys), keys_per_pass):
            k1 = min(len(keys), k0 + keys_per_pass)
            stream = _chacha20_blocks(torch, key_words[k0:k1], first_block + start, nb)
            if words_per_element == 2:
                stream = stream.view(torch.int64)  # little-endian word pairs = the uint64 element
            target = vector[lo - skip : hi - skip]
            for j in range(k1 - k0):
                part = stream[j, lo - start * per_block : hi - start * per_block]
                if signs[k0 + j] > 0:
                    target.add_(part)
                else:
                    target.sub_(part)


def _rotl_(x: torch.Tensor, r: int, tmp: torch.Tensor) -> None:
    """Rotate the 32-bit words of int32 ``x`` left by ``r``, in place.

    ``<<`` on int32 wraps (it shifts the bit pattern); ``>>`` is arithmetic,
    so the bits shifted in from the sign are masked off.
    """
    import torch

    torch.bitwise_right_shift(x, 32 - r, out=tmp)
    tmp.bitwise_and_((1 << r) - 1)
    x.bitwise_left_shift_(r)
    x.bitwise_or_(tmp)


def _quarter_rounds(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, tmp: torch.Tensor) -> None:
    """RFC 8439 quarter rounds on four rows at once (each row: one word of every column)."""
    a.add_(b); d.bitwise_xor_(a); _rotl_(d, 16, tmp)  # noqa: E702
    c.add_(d); b.bitwise_xor_(c); _rotl_(b, 12, tmp)  # noqa: E702
    a.add_(b); d.bitwise_xor_(a); _rotl_(d, 8, tmp)  # noqa: E702
    c.add_(d); b.bitwise_xor_(c); _rotl_(b, 7, tmp)  # noqa: E702


def _chacha20_blocks(torch: ModuleType, key_words: torch.Tensor, first_block: int, nb: int) -> torch.Tensor:
    """Keystream blocks ``first_block .. first_block + nb`` for each key: int32 (keys, nb * 16).

    ``key_words`` is int32 (keys, 8), the little-endian words of each key; the
    nonce is zero.  The state is held as (4 rows, 4 columns, keys * nb): a
    column round is one quarter round on the four rows; a diagonal round is
    one on rows 1, 2, 3 rotated left by 1, 2, 3 columns.
    """
    device = key_words.device
    g = key_words.shape[0]
    state: Tensor = torch.empty((4, 4, g, nb), dtype=torch.int32, device=device)
    state[0] = torch.tensor(_CHACHA_CONSTANTS, dtype=torch.int32, device=device).view(4, 1, 1)
    state[1] = key_words[:, :4].t().unsqueeze(-1)
    state[2] = key_words[:, 4:].t().unsqueeze(-1)
    counter = torch.arange(first_block, first_block + nb, dtype=torch.int64, device=device)
    state[3, 0] = counter.to(torch.int32).view(1, nb)  # counters >= 2^31 wrap to their bit pattern
    state[3, 1:] = 0  # the all-zero nonce
    initial = state.view(4, 4, g * nb)
    x = initial.clone()
    a, b, c, d = x[0], x[1], x[2], x[3]
    tmp = torch.empty_like(a)
    for _ in range(10):
        _quarter_rounds(a, b, c, d, tmp)
        b2, c2, d2 = b.roll(-1, 0), c.roll(-2, 0), d.roll(-3, 0)
        _quarter_rounds(a, b2, c2, d2, tmp)
        b.copy_(b2.roll(1, 0))
        c.copy_(c2.roll(2, 0))
        d.copy_(d2.roll(3, 0))
    x.add_(initial)
    return x.view(16, g, nb).permute(1, 2, 0).contiguous().view(g, nb * 16)
