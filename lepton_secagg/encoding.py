"""Turning float model updates into ring vectors and back: the public quantisation API.

See ``lepton_secagg.hazmat.quantize`` for the scheme (clipping, unbiased
stochastic rounding, the bit budget, weighted averages).
"""
from __future__ import annotations

from .hazmat.quantize import Quantizer, bits_needed, dequantize, levels, quantize

__all__ = ["Quantizer", "bits_needed", "levels", "quantize", "dequantize"]
