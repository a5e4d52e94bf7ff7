"""``add_masks``: ``hazmat.masking.add_masks`` on an int32 / int64 tensor, on the tensor's device.

Three engines: the CPU kernel (C or numpy, zero-copy for CPU tensors), the
fused Triton ChaCha20 kernel (``adapters/_triton_chacha20.py``, imported
lazily, the first time a GPU tensor is masked) and ChaCha20 in torch integer
ops (``chacha20.py``).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING


from ...hazmat import masking as _masking
from ._lazy import _torch
from .chacha20 import _chacha20_add, _key_words
from .ring import _ring_view, as_ring_numpy

if TYPE_CHECKING:  # pragma: no cover
    import torch

_ENGINES = ("auto", "torch", "kernel", "triton")


def add_masks(
    tensor: torch.Tensor,
    keys: Sequence[bytes],
    signs: Sequence[int],
    suite: str = "chacha20",
    offset: int = 0,
    *,
    engine: str = "auto",
    threads: int | None = None,
) -> torch.Tensor:
    """``tensor += sign_i * PRG(keys[i])`` in place (mod 2^32 or 2^64); returns ``tensor``.

    Bit-identical to ``hazmat.masking.add_masks`` on the uint32 / uint64 view
    of the tensor: ``mask_i`` is the ``suite`` keystream of ``keys[i]`` from
    byte ``offset * itemsize``, read as little-endian words.

    Args:
        tensor: a 1-D int32 or int64 tensor (the bit pattern of uint32 / uint64
            ring elements; torch.uint32 / torch.uint64 are accepted too), on
            any device, any stride.
        keys: PRG keys, each ``prg.key_size(suite)`` bytes.
        signs: +1 or -1 for each key.
        suite: ``"chacha20"`` or ``"aes128ctr"``.
        offset: the element index of ``tensor[0]`` in the mask streams.
        engine: how the masks are computed.

            * ``"triton"``: the fused Triton ChaCha20 kernel, all keys in one
              launch on a CUDA tensor (on a CPU tensor only under
              ``TRITON_INTERPRET=1``, Triton's interpreter).  chacha20 only.
            * ``"torch"``: ChaCha20 in torch integer ops on the tensor's device
              (quarter rounds on int32 tensors holding many blocks and keys at
              once, ``CHUNK_BLOCKS`` blocks per batch).  chacha20 only.
            * ``"kernel"``: the CPU kernel (``hazmat.masking.add_masks``, C or
              numpy); zero-copy for a CPU tensor, else the tensor is copied to
              the CPU and back.
            * ``"auto"`` (default): ``"kernel"`` for CPU tensors (the C kernel
              is far faster there); for chacha20 on a CUDA tensor ``"triton"``
              when triton imports, else ``"torch"``; ``"torch"`` for chacha20
              on other devices; ``"kernel"`` for aes128ctr on other devices
              (no GPU AES, see docs/torch.md: the data makes a round trip
              through host memory).
        threads: worker threads of the CPU kernel (see ``hazmat.masking``).

    Raises:
        TypeError: not a tensor, a wrong dtype, non-bytes keys.
        ValueError: not 1-D, a wrong key size, a bad sign or offset, a range
            past the end of the stream, an unknown suite or engine, an engine
            that cannot run this suite or device (``"triton"`` without triton,
            or on a CPU tensor outside the interpreter).
    """
    torch = _torch()
    if not torch.is_tensor(tensor):
        raise TypeError(f"tensor must be a torch tensor, not {type(tensor).__name__}.")
    vector = _ring_view(torch, tensor, what="tensor")
    if vector.dim() != 1:
        raise ValueError(f"tensor must be 1-D, got shape {tuple(vector.shape)}.")
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}.")
    keys, signs = _masking.check_mask_arguments(keys, signs, suite, offset, vector.numel(), vector.element_size())
    if engine in ("torch", "triton") and suite != "chacha20":
        raise ValueError(f"engine={engine!r} implements chacha20 only; {suite} runs on the CPU kernel (engine='kernel').")
    engine = _choose_engine(engine, vector.device, suite)
    kernel = _triton_kernel() if engine == "triton" else None
    if engine == "triton":
        if kernel is None:
            raise ValueError("engine='triton' needs the triton package (pip install 'lepton-secagg[gpu]').")
        if vector.device.type != "cuda" and not (vector.device.type == "cpu" and kernel.interpreted()):
            raise ValueError(
                f"engine='triton' runs on CUDA tensors (or CPU tensors under TRITON_INTERPRET=1); "
                f"the tensor is on {vector.device}."
            )
    if not keys or vector.numel() == 0:
        return tensor
    with torch.no_grad():
        if engine == "kernel":
            if vector.device.type == "cpu":
                _masking.add_masks(as_ring_numpy(vector), keys, signs, suite, offset, threads)
            else:
                host = vector.cpu()
                _masking.add_masks(as_ring_numpy(host), keys, signs, suite, offset, threads)
                vector.copy_(host)
        else:
            work = vector if vector.is_contiguous() else vector.contiguous()
            if kernel is not None:  # engine == "triton"
                _triton_add(torch, kernel, work, keys, signs, offset)
            else:
                _chacha20_add(torch, work, keys, signs, offset)
            if work is not vector:
                vector.copy_(work)
    return tensor


def _choose_engine(engine: str, device: torch.device, suite: str) -> str:
    """The engine ``"auto"`` stands for on this device and suite; any other engine as given."""
    if engine != "auto":
        return engine
    if device.type == "cpu" or suite != "chacha20":
        return "kernel"
    return "triton" if device.type == "cuda" and _triton_kernel() is not None else "torch"


@functools.cache
def _triton_kernel() -> ModuleType | None:
    """The Triton kernel module, imported on first use; None where triton does not import."""
    try:
        from .. import _triton_chacha20
    except ImportError:
        return None
    return _triton_chacha20


def _triton_add(
    torch: ModuleType, kernel: ModuleType, vector: torch.Tensor, keys: Sequence[bytes], signs: Sequence[int], offset: int
) -> None:
    """Add the signed ChaCha20 masks to a contiguous int32/int64 ``vector`` in one Triton launch."""
    device = vector.device
    sign_masks = torch.tensor([0 if s > 0 else -1 for s in signs], dtype=vector.dtype, device=device)
    key_words = _key_words(torch, keys, device)
    if device.type == "cuda":
        with torch.cuda.device(device):  # Triton launches on the current device
            kernel.add_masks(vector, key_words, sign_masks, offset)
    else:
        kernel.add_masks(vector, key_words, sign_masks, offset)
