"""The validity circuits of draft-irtf-cfrg-vdaf-20, section 7.4: Count, Sum, SumVec, Histogram, MultihotCountVec.

Each class encodes a measurement into field elements, says when an encoding
is valid (``eval`` returns zeros) and maps the aggregate back.  Bounded
integers use the draft's "bits plus a last weight" encoding: ``bits - 1``
binary digits and one digit of weight ``max - (2^(bits-1) - 1)``, so every
value in ``[0, max]`` and nothing else is representable by 0/1 digits.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

from .field import Field, FieldVec
from .flp import Circuit, GadgetCall, Mul, ParallelSum, PolyEval

Meas = TypeVar("Meas")

__all__ = ["Count", "Sum", "SumVec", "Histogram", "MultihotCountVec", "bounded_bits"]


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


class bounded_bits:
    """The "bits plus last weight" encoding of integers in ``[0, max_value]``."""

    def __init__(self, field: type[Field], max_value: int, name: str = "max_measurement"):
        _positive(name, max_value)
        self.bits = max_value.bit_length()
        if 2**self.bits >= field.MODULUS:
            raise ValueError(f"{name} must be below 2^{field.MODULUS.bit_length() - 1} for {field.NAME}.")
        self.max_value = max_value
        self.last_weight = max_value - (2 ** (self.bits - 1) - 1)
        self.weights = np.array([1 << i for i in range(self.bits - 1)] + [self.last_weight], dtype=object)

    def encode(self, values: Sequence[int] | FieldVec) -> FieldVec:
        """Digits of each value, ``bits`` per value, concatenated."""
        ints = np.asarray(values, dtype=object)
        high = ints > 2 ** (self.bits - 1) - 1
        base = ints - high * self.last_weight
        digits = np.empty((len(ints), self.bits), dtype=object)
        for i in range(self.bits - 1):
            digits[:, i] = (base >> i) & 1
        digits[:, -1] = high.astype(int)
        return digits.reshape(-1)

    def decode(self, field: type[Field], digits: FieldVec) -> FieldVec:
        """The weighted digit sums (linear, so it works on shares)."""
        rows = np.asarray(digits, dtype=object).reshape(-1, self.bits)
        sums: FieldVec = (rows * self.weights % field.MODULUS).sum(axis=1) % field.MODULUS
        return sums


def _check_ints(name: str, values: Iterable[object], low: int, high: int, length: int | None = None, *,
                allow_bool: bool = False) -> FieldVec:
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers, not {type(values).__name__}.") from None
    if length is not None and len(items) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(items)}.")
    ints: list[int] = []
    for x in items:
        if (isinstance(x, (bool, np.bool_)) and not allow_bool) or not isinstance(x, (int, np.integer, np.bool_)):
            raise TypeError(f"{name} entries must be integers, got {type(x).__name__}.")
        value = int(x)
        if not low <= value <= high:
            raise ValueError(f"{name} entries must lie in [{low}, {high}], got {value}.")
        ints.append(value)
    return np.array(ints, dtype=np.object_)


class Count(Circuit[int, int]):
    """A 0/1 measurement; aggregates to the number of ones."""

    MEAS_LEN = OUTPUT_LEN = EVAL_OUTPUT_LEN = 1
    JOINT_RAND_LEN = 0
    GADGET_CALLS = [1]

    def __init__(self, field: type[Field]):
        self.field = field
        self.GADGETS = [Mul()]

    def encode(self, measurement: int) -> FieldVec:
        return _check_ints("measurement", [measurement], 0, 1)

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        square = call(0, np.array([[meas[0], meas[0]]], dtype=object))[0]
        return np.array([(square - meas[0]) % self.field.MODULUS], dtype=object)

    def truncate(self, meas: FieldVec) -> FieldVec:
        return meas[:1]

    def decode(self, output: FieldVec, num_measurements: int) -> int:
        return int(output[0])


class Sum(Circuit[int, int]):
    """An integer in ``[0, max_measurement]``; aggregates to the sum."""

    JOINT_RAND_LEN = 0
    OUTPUT_LEN = 1

    def __init__(self, field: type[Field], max_measurement: int):
        self.field = field
        self.enc = bounded_bits(field, max_measurement)
        self.max_measurement = max_measurement
        self.MEAS_LEN = self.EVAL_OUTPUT_LEN = self.enc.bits
        self.GADGETS = [PolyEval([0, -1, 1])]
        self.GADGET_CALLS = [self.enc.bits]

    def encode(self, measurement: int) -> FieldVec:
        return self.enc.encode(_check_ints("measurement", [measurement], 0, self.max_measurement))

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        return call(0, np.asarray(meas, dtype=object)[:, None])

    def truncate(self, meas: FieldVec) -> FieldVec:
        return self.enc.decode(self.field, meas)

    def decode(self, output: FieldVec, num_measurements: int) -> int:
        return int(output[0])


class _Chunked(Circuit[Meas, list[int]]):
    """Circuits whose digits are checked 0/1 by ParallelSum(Mul) in chunks with joint randomness."""

    def _setup(self, field: type[Field], meas_len: int, output_len: int, chunk_length: int) -> None:
        _positive("chunk_length", chunk_length)
        self.field = field
        self.chunk_length = chunk_length
        self.MEAS_LEN, self.OUTPUT_LEN = meas_len, output_len
        self.GADGETS = [ParallelSum(chunk_length)]
        self.GADGET_CALLS = [(meas_len + chunk_length - 1) // chunk_length]
        self.JOINT_RAND_LEN = self.GADGET_CALLS[0]

    def range_check(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> int:
        return self.chunked_bit_check(meas, joint_rand, num_shares, call, self.chunk_length, self.MEAS_LEN)

    def decode(self, output: FieldVec, num_measurements: int) -> list[int]:
        return [int(x) for x in output]


class SumVec(_Chunked[Sequence[int]]):
    """``length`` integers, each in ``[0, max_measurement]``; aggregates to the elementwise sum."""

    EVAL_OUTPUT_LEN = 1

    def __init__(self, field: type[Field], length: int, max_measurement: int, chunk_length: int):
        _positive("length", length)
        self.enc = bounded_bits(field, max_measurement)
        self.length, self.max_measurement = length, max_measurement
        self._setup(field, length * self.enc.bits, length, chunk_length)

    def encode(self, measurement: Sequence[int]) -> FieldVec:
        return self.enc.encode(_check_ints("measurement", measurement, 0, self.max_measurement, self.length))

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        return np.array([self.range_check(meas, joint_rand, num_shares, call)], dtype=object)

    def truncate(self, meas: FieldVec) -> FieldVec:
        return self.enc.decode(self.field, meas)


class Histogram(_Chunked[int]):
    """A bucket index in ``[0, length)``; aggregates to the bucket counts."""

    EVAL_OUTPUT_LEN = 2

    def __init__(self, field: type[Field], length: int, chunk_length: int):
        self.length = _positive("length", length)
        self._setup(field, length, length, chunk_length)

    def encode(self, measurement: int) -> FieldVec:
        (index,) = _check_ints("measurement", [measurement], 0, self.length - 1)
        out = self.field.zeros(self.length)
        out[index] = 1
        return out

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        p = self.field.MODULUS
        sum_check = (int(np.asarray(meas, dtype=object).sum()) - self.field.inv(num_shares)) % p
        return np.array([self.range_check(meas, joint_rand, num_shares, call), sum_check], dtype=object)

    def truncate(self, meas: FieldVec) -> FieldVec:
        return meas


class MultihotCountVec(_Chunked[Sequence[int]]):
    """A 0/1 vector of ``length`` entries with at most ``max_weight`` ones; aggregates to the counts."""

    EVAL_OUTPUT_LEN = 2

    def __init__(self, field: type[Field], length: int, max_weight: int, chunk_length: int):
        self.length = _positive("length", length)
        if not 0 < max_weight <= length:
            raise ValueError(f"max_weight must lie in [1, length={length}], got {max_weight}.")
        self.max_weight = max_weight
        self.enc = bounded_bits(field, max_weight, "max_weight")
        self._setup(field, length + self.enc.bits, length, chunk_length)

    def encode(self, measurement: Sequence[int]) -> FieldVec:
        bits = _check_ints("measurement", measurement, 0, 1, self.length, allow_bool=True)
        weight = int(bits.sum())
        if weight > self.max_weight:
            raise ValueError(f"measurement has {weight} ones, more than max_weight={self.max_weight}.")
        return np.concatenate([bits, self.enc.encode([weight])])

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        p = self.field.MODULUS
        meas = np.asarray(meas, dtype=object)
        weight = int(meas[: self.length].sum())
        reported = int(self.enc.decode(self.field, meas[self.length :])[0])
        return np.array([self.range_check(meas, joint_rand, num_shares, call), (weight - reported) % p], dtype=object)

    def truncate(self, meas: FieldVec) -> FieldVec:
        return meas[: self.length]
