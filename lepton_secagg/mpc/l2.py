"""A fixed-point vector sum whose clients prove ``||x||_2 <= bound``: the FL circuit that stops poisoning.

Theory of operation (after libprio-rs' ``FixedPointBoundedL2VecSum``, with an
integer norm bound of our choosing): a client's update ``x`` (floats) is
quantised to integers ``q_i = round(x_i * 2^(bits-1))`` in
``[-2^(bits-1), 2^(bits-1) - 1]``; each ``q_i`` travels offset by
``2^(bits-1)`` as ``bits`` binary digits, and the claimed squared norm
``sum q_i^2`` as the draft's "bits plus last weight" digits of an integer in
``[0, max_norm_sq]``.  The circuit checks

1. every digit is 0 or 1 (ParallelSum(Mul) in chunks with joint randomness,
   as SumVec does), so each ``q_i`` and the claimed norm are in range;
2. ``sum q_i^2`` (a second gadget, ParallelSum(Mul) on pairs ``(q_i, q_i)``)
   equals the claimed norm.

Over Field128 with ``length * 4^(bits-1) < p`` the field sum of squares is the
integer one, so (1) and (2) together mean ``||q||_2^2 <= max_norm_sq``: a
scaled-up or out-of-range update cannot be encoded with 0/1 digits, and any
other encoding fails a check except with the FLP's soundness error
(``Flp.soundness_error``, below 2^-100 for the sizes in docs/mpc.md).

The aggregate is the sum of the offset values; ``decode`` removes
``num_measurements * 2^(bits-1)`` and returns signed integers (divide by
``scale`` for floats).
"""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .circuits import bounded_bits
from .field import Field, Field128, FieldVec
from .flp import Circuit, GadgetCall, ParallelSum
from .prio3 import Prio3

__all__ = ["BoundedL2VecSum", "L2_VDAF_ID", "norm_bound_sq", "prio3_bounded_l2_vec_sum"]

# A private-use algorithm id (the draft reserves 0xFFFF0000 and up for such use).
L2_VDAF_ID = 0xFFFF1002


def norm_bound_sq(bound: float, bits: int) -> int:
    """The integer bound on ``sum q_i^2`` for a float L2 bound: ``floor((bound * 2^(bits-1))^2)``.

    The check is then exact on the quantised vector: ``||q / 2^(bits-1)||_2 <= bound``
    up to ``bound - sqrt(floor(..)) / 2^(bits-1)``, below ``2^-(bits-1)``.
    """
    if not bound > 0 or not math.isfinite(bound):
        raise ValueError(f"bound must be a positive finite number, got {bound!r}.")
    return int((bound * 2 ** (bits - 1)) ** 2)


class BoundedL2VecSum(Circuit[npt.ArrayLike, list[int]]):
    """Signed ``bits``-bit fixed-point vectors of ``length`` entries with squared norm at most ``max_norm_sq``.

    Args:
        length: entries per vector (>= 1).
        bits: bits per entry, 2..32; entries lie in ``[-2^(bits-1), 2^(bits-1) - 1]``.
        max_norm_sq: bound on ``sum q_i^2`` (integers), at least 1.
        chunk_length: pairs per gadget call for the digit check; ``None`` picks
            ``~sqrt(digits)`` (the proof-size optimum).
        norm_chunk_length: entries per gadget call for the norm; ``None`` picks ``~sqrt(length)``.
    """

    EVAL_OUTPUT_LEN = 2

    def __init__(self, length: int, bits: int, max_norm_sq: int, chunk_length: int | None = None,
                 norm_chunk_length: int | None = None, field: type[Field] = Field128):
        for name, value, low, high in (("length", length, 1, 1 << 40), ("bits", bits, 2, 32),
                                       ("max_norm_sq", max_norm_sq, 1, 1 << 100)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}.")
        if length * 4 ** (bits - 1) >= field.MODULUS // 2:
            raise ValueError(f"length * 4^(bits-1) must stay below half the {field.NAME} modulus.")
        self.field = field
        self.length, self.bits, self.max_norm_sq = length, bits, max_norm_sq
        self.offset = 1 << (bits - 1)
        self.norm = bounded_bits(field, max_norm_sq, "max_norm_sq")
        self.entry_weights = np.array([1 << i for i in range(bits)], dtype=object)
        self.MEAS_LEN = length * bits + self.norm.bits
        self.OUTPUT_LEN = length
        self.chunk_length = chunk_length or max(1, math.isqrt(self.MEAS_LEN))
        self.norm_chunk_length = norm_chunk_length or max(1, math.isqrt(length))
        self.GADGETS = [ParallelSum(self.chunk_length), ParallelSum(self.norm_chunk_length)]
        self.GADGET_CALLS = [-(-self.MEAS_LEN // self.chunk_length), -(-length // self.norm_chunk_length)]
        self.JOINT_RAND_LEN = self.GADGET_CALLS[0]

    @property
    def scale(self) -> int:
        """Fixed-point scale: a float ``x`` travels as ``round(x * scale)``."""
        return self.offset

    def quantise(self, update: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Round a float vector to the circuit's integers, clipping each entry to the representable range."""
        x = np.asarray(update, dtype=np.float64).reshape(-1)
        if x.shape != (self.length,):
            raise ValueError(f"update must have {self.length} entries, got {x.size}.")
        if not np.all(np.isfinite(x)):
            raise ValueError("update has a NaN or infinite entry.")
        return np.clip(np.rint(x * self.scale), -self.offset, self.offset - 1).astype(np.int64)

    def encode(self, measurement: npt.ArrayLike) -> FieldVec:
        q = np.asarray(measurement)
        if q.shape != (self.length,) or not np.issubdtype(q.dtype, np.integer):
            raise ValueError(f"measurement must be {self.length} integers (use quantise() for floats).")
        if q.min() < -self.offset or q.max() > self.offset - 1:
            raise ValueError(f"measurement entries must lie in [{-self.offset}, {self.offset - 1}].")
        norm_sq = int((q.astype(object) ** 2).sum())
        if norm_sq > self.max_norm_sq:
            raise ValueError(f"measurement has squared norm {norm_sq}, above max_norm_sq={self.max_norm_sq}.")
        u = (q.astype(np.int64) + self.offset).astype(np.uint64)
        digits = ((u[:, None] >> np.arange(self.bits, dtype=np.uint64)) & 1).astype(object).reshape(-1)
        return np.concatenate([digits, self.norm.encode([norm_sq])])

    def _offset_values(self, meas: FieldVec) -> FieldVec:
        """Each entry's ``q_i + 2^(bits-1)`` from its digits (linear, works on shares)."""
        rows = np.asarray(meas[: self.length * self.bits], dtype=object).reshape(self.length, self.bits)
        values: FieldVec = (rows * self.entry_weights % self.field.MODULUS).sum(axis=1) % self.field.MODULUS
        return values

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        p = self.field.MODULUS
        meas = np.asarray(meas, dtype=np.object_)
        range_check = self.chunked_bit_check(meas, joint_rand, num_shares, call, self.chunk_length, self.MEAS_LEN)
        # q_i share = u_i share - offset / s: the constant splits evenly over the s shares.
        q = (self._offset_values(meas) - self.offset * self.field.inv(num_shares)) % p
        calls = self.GADGET_CALLS[1]
        padded = self.field.zeros(calls * self.norm_chunk_length)
        padded[: self.length] = q
        pairs = padded.reshape(calls, self.norm_chunk_length)
        rows = np.empty((calls, 2 * self.norm_chunk_length), dtype=object)
        rows[:, 0::2] = pairs
        rows[:, 1::2] = pairs
        norm_sq = int(call(1, rows).sum() % p)
        claimed = int(self.norm.decode(self.field, meas[self.length * self.bits :])[0])
        return np.array([range_check, (norm_sq - claimed) % p], dtype=object)

    def truncate(self, meas: FieldVec) -> FieldVec:
        return self._offset_values(meas)

    def decode(self, output: FieldVec, num_measurements: int) -> list[int]:
        p = self.field.MODULUS
        sums = [(int(x) - num_measurements * self.offset) % p for x in output]
        return [s - p if s > p // 2 else s for s in sums]


def prio3_bounded_l2_vec_sum(shares: int, length: int, bits: int, max_norm_sq: int, *, num_proofs: int = 1,
                             chunk_length: int | None = None,
                             norm_chunk_length: int | None = None) -> Prio3[npt.ArrayLike, list[int]]:
    """Prio3 with the bounded-L2 circuit over Field128 (id ``L2_VDAF_ID``)."""
    return Prio3(L2_VDAF_ID, BoundedL2VecSum(length, bits, max_norm_sq, chunk_length, norm_chunk_length),
                 shares, num_proofs)
