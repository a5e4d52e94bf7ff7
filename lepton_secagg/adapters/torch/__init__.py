"""PyTorch adapter: state_dicts to vectors, quantisation and masking on the tensors' device.

Importing this package does not import torch; every function imports it the
first time it runs (DESIGN.md §4), so ``import lepton_secagg.adapters.torch``
is cheap and works where torch is not installed.

* ``flatten`` / ``unflatten`` (``flattening.py``): a ``state_dict`` (or a
  sequence of tensors) to one 1-D **float64** vector and back, with a small
  JSON-serialisable ``FlatSpec`` recording names, shapes, dtypes and devices.
  Floating-point tensors come first in the vector (``vector[:spec.num_float]``,
  the part to average); integer and bool tensors such as BatchNorm's
  ``num_batches_tracked`` follow, carried exactly, so they round-trip too.
  ``FlatSpec`` is an ``arrays.ArraySpec`` and ``TensorSpec`` an
  ``arrays.ArrayEntry``, each with the torch-only fields added (device,
  state_dict metadata): one description of the layout for numpy and torch.
* ``quantize`` / ``dequantize`` (``quantization.py``):
  ``lepton_secagg.encoding.Quantizer.encode`` / ``decode`` on the tensor's
  device.  Given the same uniform rounding noise the integers are
  bit-identical to the numpy reference; the noise comes from a
  ``torch.Generator``.
* ``add_masks`` (``masking.py``): ``hazmat.masking.add_masks`` on an int32 /
  int64 tensor (the bit pattern of a uint32 / uint64 ring vector).
  ``chacha20`` on a CUDA tensor runs in one fused Triton kernel launch
  (``adapters/_triton_chacha20.py``) when triton is installed, else in torch
  integer ops (``chacha20.py``); either way it never leaves the device.
  ``aes128ctr`` goes through the CPU kernel.
* ``as_ring_numpy`` / ``as_ring_tensor`` (``ring.py``): int32 / int64 tensors
  as uint32 / uint64 ring vectors and back, without copying.
* ``device_ring_input`` / ``device_float_input`` (``device.py``): a tensor as
  a ``Client.set_input`` device input (``lepton_secagg.device_input``), masked
  where it lives and copied to the host once (issue 13).
* ``_lazy.py``: the lazy torch import.

``CHUNK_BLOCKS`` (``chacha20.py``) is the one dict the torch engine reads:
change its items (``CHUNK_BLOCKS["default"] = ...``) rather than rebinding it.
"""
from __future__ import annotations

from .chacha20 import CHUNK_BLOCKS, _chacha20_blocks, _key_words, _rotl_
from .device import DeviceFloatInput, DeviceRingInput, device_float_input, device_ring_input
from .flattening import FlatSpec, TensorSpec, flatten, unflatten
from .masking import _choose_engine, _triton_kernel, add_masks
from .quantization import _quantize_with_noise, dequantize, quantize
from .ring import as_ring_numpy, as_ring_tensor

# The private helpers above are re-exported because the tests and bench/
# reach them as ``lt._name``; they are not API.
__all__ = [
    "TensorSpec",
    "FlatSpec",
    "flatten",
    "unflatten",
    "quantize",
    "dequantize",
    "add_masks",
    "as_ring_numpy",
    "as_ring_tensor",
    "CHUNK_BLOCKS",
    "device_ring_input",
    "device_float_input",
    "DeviceRingInput",
    "DeviceFloatInput",
]
