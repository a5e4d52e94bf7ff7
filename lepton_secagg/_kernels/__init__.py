"""Masking and quantisation kernels: C when it was built, numpy otherwise; chosen once at import.

``BACKEND`` is ``"c"`` or ``"python"``.  ``LEPTON_SECAGG_PUREPYTHON=1`` in the
environment forces the numpy kernel.  ``_speedups.pyi`` is the contract the C
module keeps; ``_native.py`` is its readable specification.  Callers validate
arguments (``hazmat.masking``, ``hazmat.quantize``) before they reach a kernel.
"""
from __future__ import annotations

import os

from . import _native

if os.environ.get("LEPTON_SECAGG_PUREPYTHON"):
    add_masks = _native.add_masks
    quantize_into = _native.quantize_into
    BACKEND = "python"
else:
    try:
        from ._speedups import add_masks, quantize_into
        BACKEND = "c"
    except ImportError:
        add_masks = _native.add_masks
        quantize_into = _native.quantize_into
        BACKEND = "python"

__all__ = ["BACKEND", "add_masks", "quantize_into"]
