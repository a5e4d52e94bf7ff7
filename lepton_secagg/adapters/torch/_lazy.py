"""torch, imported the first time an adapter function runs, and the unsigned dtypes it has.

No module of this package imports torch at import time (DESIGN.md §4): each
function calls ``_torch()``.
"""
from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _torch() -> ModuleType:
    """The torch module, imported on the first call."""
    import torch

    return torch


def _unsigned(torch: ModuleType, *bits: int) -> tuple[torch.dtype, ...]:
    """The torch unsigned dtypes of these widths that exist (uint16/32/64 came in torch 2.3)."""
    return tuple(d for d in (getattr(torch, f"uint{b}", None) for b in bits) if d is not None)
