"""Masking, quantisation, packing and fused client kernels: C when it was built, numpy otherwise; chosen once at import.

``BACKEND`` is ``"c"`` or ``"python"``.  ``LEPTON_SECAGG_PUREPYTHON=1`` in the
environment forces the numpy kernel.  ``_speedups.pyi`` is the contract the C
module keeps; ``_native.py`` is its readable specification.  Callers validate
arguments (``hazmat.masking``, ``hazmat.quantize``) before they reach a kernel.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from . import _native

NAMES = ("add_masks", "quantize_into", "encode_masked", "pack_bits", "unpack_bits")


def _select() -> tuple[ModuleType, str]:
    if not os.environ.get("LEPTON_SECAGG_PUREPYTHON"):
        try:
            from . import _speedups
            return _speedups, "c"
        except ImportError:
            pass
    return _native, "python"


if TYPE_CHECKING:
    # Both backends keep the contract in _speedups.pyi; type-check callers against it.
    from . import _speedups as _module

    BACKEND: str
else:
    _module, BACKEND = _select()
add_masks = _module.add_masks
quantize_into = _module.quantize_into
encode_masked = _module.encode_masked
pack_bits = _module.pack_bits
unpack_bits = _module.unpack_bits

# The Prio3 field kernels are a second extension (src_ext/field/); chosen the same way.
if os.environ.get("LEPTON_SECAGG_PUREPYTHON"):
    field_transform, field_dot, FIELD_BACKEND = _native.field_transform, _native.field_dot, "python"
else:
    try:
        from ._field import dot as field_dot, transform as field_transform
        FIELD_BACKEND = "c"
    except ImportError:
        field_transform, field_dot, FIELD_BACKEND = _native.field_transform, _native.field_dot, "python"

__all__ = ["BACKEND", "FIELD_BACKEND", "NAMES", *NAMES, "field_transform", "field_dot"]
