"""Multi-server aggregation with validated inputs: Prio3 per draft-irtf-cfrg-vdaf-20.

The pure parts (fields, XOFs, FLP, circuits, Prio3) live here; see docs/mpc.md.
"""
from __future__ import annotations

from .errors import ReportRejected
from .field import Field64, Field128
from .prio3 import (
    Prio3,
    prio3_count,
    prio3_histogram,
    prio3_multihot_count_vec,
    prio3_sum,
    prio3_sum_vec,
    prio3_sum_vec_with_multiproof,
)

__all__ = [
    "Field64",
    "Field128",
    "Prio3",
    "ReportRejected",
    "prio3_count",
    "prio3_histogram",
    "prio3_multihot_count_vec",
    "prio3_sum",
    "prio3_sum_vec",
    "prio3_sum_vec_with_multiproof",
]
