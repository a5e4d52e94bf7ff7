"""PyTorch adapter: state_dicts to vectors, quantisation and masking on the tensors' device.

The code moves into modules named for what they hold; for now all of it is
in ``flattening.py``.
"""
from __future__ import annotations

from .flattening import (
    CHUNK_BLOCKS,
    FlatSpec,
    TensorSpec,
    __all__,
    _chacha20_blocks,
    _choose_engine,
    _key_words,
    _quantize_with_noise,
    _rotl_,
    _triton_kernel,
    add_masks,
    as_ring_numpy,
    as_ring_tensor,
    dequantize,
    flatten,
    quantize,
    unflatten,
)
