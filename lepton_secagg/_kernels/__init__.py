"""Masking, quantisation, packing and fused client kernels: C when it was built, numpy otherwise; chosen once at import.

``BACKEND`` is ``"c"`` or ``"python"``.  ``LEPTON_SECAGG_PUREPYTHON=1`` in the
environment forces the numpy kernel.  ``_speedups.pyi`` is the contract the C
module keeps; ``_native.py`` is its readable specification.  Callers validate
arguments (``hazmat.masking``, ``hazmat.quantize``) before they reach a kernel.
"""
from __future__ import annotations

import os

from . import _native

NAMES = ("add_masks", "quantize_into", "encode_masked", "pack_bits", "unpack_bits")


def _select():
    if not os.environ.get("LEPTON_SECAGG_PUREPYTHON"):
        try:
            from . import _speedups
            return _speedups, "c"
        except ImportError:
            pass
    return _native, "python"


_module, BACKEND = _select()
add_masks = _module.add_masks
quantize_into = _module.quantize_into
encode_masked = _module.encode_masked
pack_bits = _module.pack_bits
unpack_bits = _module.unpack_bits

__all__ = ["BACKEND", "NAMES", *NAMES]
