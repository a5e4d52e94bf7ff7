"""Ring views: int32 / int64 tensors as the uint32 / uint64 ring vectors of the numpy core.

torch (2.13) has a ``uint32`` dtype but no add/sub for it, while int32 and
int64 arithmetic wraps two's-complement: the bit patterns of int32 and uint32
(int64 and uint64) sums agree, so ring vectors live in int32/int64 tensors.
``as_ring_numpy`` / ``as_ring_tensor`` convert between the two views without
copying.
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ._lazy import _torch, _unsigned

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor  # for annotations inside functions, where a parameter named torch hides the module


def _ring_view(torch: ModuleType, tensor: torch.Tensor, what: str = "the vector") -> torch.Tensor:
    """``tensor`` as int32/int64 (a view, no copy); TypeError for other dtypes."""
    if tensor.dtype in (torch.int32, torch.int64):
        return tensor
    if tensor.dtype in _unsigned(torch, 32):
        return tensor.view(torch.int32)
    if tensor.dtype in _unsigned(torch, 64):
        return tensor.view(torch.int64)
    raise TypeError(
        f"{what} must be int32 or int64 (the bit patterns of uint32 / uint64 ring elements), or torch.uint32 / "
        f"torch.uint64; got {tensor.dtype}."
    )


def as_ring_numpy(tensor: torch.Tensor) -> np.ndarray:
    """The numpy uint32 / uint64 view of a CPU int32 / int64 (or uint32 / uint64) tensor; no copy.

    Writes through the view change the tensor.  TypeError for other dtypes or
    a tensor not on the CPU.
    """
    torch = _torch()
    if not torch.is_tensor(tensor):
        raise TypeError(f"expected a torch tensor, not {type(tensor).__name__}.")
    if tensor.device.type != "cpu":
        raise TypeError(f"the tensor is on {tensor.device}; move it to the CPU first (tensor.cpu()).")
    view = _ring_view(torch, tensor).detach()
    array: np.ndarray = view.numpy()
    return array.view(np.uint32 if view.dtype == torch.int32 else np.uint64)


def as_ring_tensor(array: np.ndarray) -> torch.Tensor:
    """The int32 / int64 torch view of a numpy uint32 / uint64 array (e.g. ``Quantizer.encode`` output); no copy."""
    torch = _torch()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, not {type(array).__name__}.")
    if array.dtype == np.uint32:
        view: Tensor = torch.from_numpy(array.view(np.int32))
    elif array.dtype == np.uint64:
        view = torch.from_numpy(array.view(np.int64))
    else:
        raise TypeError(f"expected a uint32 or uint64 array, got {array.dtype}.")
    return view
