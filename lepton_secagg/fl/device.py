"""The FL client's update when the model lives on an accelerator: computed there, sent through the device seam.

``on_accelerator(model)`` says whether the model's floating-point tensors
live off the CPU; ``device_update`` then forms the update (trained tensors
minus the downloaded version, in float64, in ``ModelState.float_vector``
order) on that device and wraps it with ``adapters.torch.device_float_input``
for ``Client.set_input``.  Only the update's masked form (or, where the
session's PRG has no device kernel, the float update itself, once) crosses
to host memory; see docs/torch.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters.torch import device_float_input
from ..device_input import DeviceInput
from ..hazmat.quantize import Quantizer
from .model import ModelState

__all__ = ["on_accelerator", "device_delta", "device_update"]

_FLOAT = ("float16", "float32", "float64")


def on_accelerator(model: Any) -> bool:
    """True when ``model``'s first floating-point tensor is not on the CPU (a CUDA model, say)."""
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            return bool(tensor.device.type != "cpu")
    return False


def device_delta(model: Any, base: ModelState) -> Any:
    """``model``'s float tensors minus ``base``'s, as one float64 tensor on the model's device.

    Raises:
        ValueError: the tensors differ from ``base`` in name, dtype or shape.
    """
    import torch

    state = model.state_dict()
    structure = tuple((name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in state.items())
    if structure != base.structure:
        raise ValueError("the model's tensors differ in name, dtype or shape from the version it was loaded from.")
    parts = []
    for (_, tensor), (_, old) in zip(state.items(), base.entries):
        if ModelState.dtype_name(old) in _FLOAT:
            flat = tensor.detach().reshape(-1).to(torch.float64)
            parts.append(flat - torch.from_numpy(np.ascontiguousarray(old, dtype=np.float64).reshape(-1)).to(flat.device))
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat(parts)


def device_update(delta: Any, quantizer: Quantizer, weight: int) -> tuple[DeviceInput, int]:
    """``(the input for Client.set_input, how many values lie outside [-clip, clip])``, counted on the device."""
    clipped = int((delta.abs() > quantizer.clip).sum())
    return device_float_input(delta, quantizer, weight=weight), clipped
