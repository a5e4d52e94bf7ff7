"""Fixed-point quantisation of float vectors into Z_(2^bits) for summation.

Theory of operation: a value x is clipped to [-clip, clip] (``quantize``
reports how many values were clipped; it never clips silently), shifted to
[0, 2 clip] and divided by ``step``, then rounded stochastically: floor plus a
Bernoulli draw with the fractional part as its probability, so the expected
integer is exactly (x + clip) / step and rounding errors average out in a sum
instead of accumulating a bias.  The integers lie in [0, L] with
L = round(2 clip / step) levels; ``step`` is taken as 2 clip / L so the grid
ends exactly at +-clip.

A sum of n clients lies in [0, n L].  It must not wrap modulo 2^bits, so a
configuration is accepted only if n L < 2^bits (``bits_needed``); the sum of
``count`` clients then dequantises exactly as ``sum * step - count * clip``.

Weighted averages: a client with integer weight w (1 <= w <= max_weight, e.g.
its number of examples) sends w q instead of q, plus a last slot holding w.
The sums are then sum(w_i q_i) and W = sum(w_i), and the weighted mean is
(sum(w_i q_i) step - W clip) / W, with no weight ever sent in the clear.  Each
element's rounding error stays below one step, whatever the weights; the bit
budget becomes n max_weight L < 2^bits.

Stochastic rounding needs no secret randomness (its outcome is hidden by the
masks anyway), so it uses a numpy ``Generator``: PCG64 seeded by the OS, or
one the caller passes in for reproducible tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _kernels
from .ring import RingDtype, RingVector, dtype_for

__all__ = ["Quantizer", "DEFAULT_RANGE", "bits_needed", "bits_for_precision", "levels", "quantize", "dequantize"]


# float64 has a 53-bit mantissa: a finer grid adds nothing and would not
# survive the step <-> levels round trip.
_MAX_LEVELS = 1 << 53
#: Flower's default quantization range, 2^22: where a precision is not given,
#: the FL layer and the Flower workflow default to its step, 2 clip / 2^22.
DEFAULT_RANGE = 1 << 22


def levels(clip: float, step: float) -> int:
    """L = round(2 clip / step), the largest quantised value; ValueError if below 1."""
    clip = _check_positive("clip", clip)
    step = _check_positive("step", step)
    count = round(2 * clip / step)
    if count < 1:
        raise ValueError(f"step = {step} is wider than the whole range 2*clip = {2 * clip}; choose a smaller step.")
    return count


def bits_needed(num_clients: int, clip: float, step: float, max_weight: int = 1) -> int:
    """The number of bits that hold a sum of ``num_clients`` quantised values without wrapping.

    That is the bit length of ``num_clients * max_weight * levels(clip, step)``.
    """
    _check_count("num_clients", num_clients)
    _check_count("max_weight", max_weight)
    return (num_clients * max_weight * levels(clip, step)).bit_length()


def bits_for_precision(num_clients: int, clip: float, precision: float, max_weight: int | None = None, max_bits: int = 64) -> int:
    """The smallest ring width whose finest grid step is at most ``precision`` with no possible wrap.

    The grid needs L = ceil(2 clip / precision) levels and a sum of
    ``num_clients`` encodings (weights up to ``max_weight``) needs
    ``bits_needed`` bits; ``Quantizer(clip=clip, bits=b, ...)`` then takes the
    finest step that fits b, which is at most ``precision``.

    Raises:
        ValueError: no width up to ``max_bits`` reaches ``precision``; the
            message gives the best step available.
    """
    clip = _check_positive("clip", clip)
    precision = _check_positive("precision", precision)
    budget = _check_count("num_clients", num_clients) * (1 if max_weight is None else _check_count("max_weight", max_weight))
    count = max(math.ceil(2 * clip / precision), 1)
    bits = (budget * count).bit_length()
    if bits > max_bits or count > _MAX_LEVELS:
        best = 2 * clip / max(min(((1 << max_bits) - 1) // budget, _MAX_LEVELS), 1)
        raise ValueError(
            f"a step of {precision:.3g} for {num_clients} clients"
            f"{'' if max_weight is None else f' with weights up to {max_weight}'} needs {bits} bits "
            f"(more than {max_bits}) or more levels than float64 expresses; the best step available is {best:.3g}."
        )
    return bits


def quantize(
    values: npt.ArrayLike, clip: float, step: float, *, rng: np.random.Generator | None = None
) -> tuple[npt.NDArray[np.uint64], int]:
    """Clip ``values`` to [-clip, clip] and round them stochastically onto the grid.

    Args:
        values: a float (or integer) array-like of any shape, all finite.
        clip: the clipping bound, > 0.
        step: the grid spacing, > 0 (taken as 2 clip / levels(clip, step)).
        rng: a numpy Generator for the rounding (None: PCG64 seeded by the OS).

    Returns:
        ``(q, clipped)``: a uint64 array of the same shape with elements in
        [0, levels(clip, step)], and how many values lay outside [-clip, clip].

    Raises:
        TypeError: values that are not real numbers, or a bad rng.
        ValueError: NaN or infinite values, or bad clip or step.
    """
    count = levels(clip, step)
    array = _check_values(values)
    generator = _check_generator(rng)
    q = np.empty(array.shape, dtype=np.uint64)
    return q, _quantize_into(array, clip, count, generator, q, 1)


def dequantize(total: npt.ArrayLike, count: int, clip: float, step: float) -> npt.NDArray[np.float64]:
    """The float sum of ``count`` clients from the sum ``total`` of their quantised values."""
    _check_count("count", count)
    return _dequantize(total, count, _check_positive("clip", clip), levels(clip, step))


def _dequantize(total: npt.ArrayLike, count: int, clip: float, count_levels: int) -> npt.NDArray[np.float64]:
    return np.asarray(total, dtype=np.float64) * (2 * clip / count_levels) - count * clip


@dataclass(frozen=True, kw_only=True, init=False)
class Quantizer:
    """A validated quantisation configuration shared by the clients and the server.

    Args:
        clip: values are clipped to [-clip, clip].
        step: the grid spacing; None chooses the finest one whose sum fits in
            ``bits``.  It is stored as 2 clip / levels.
        bits: the ring Z_(2^bits) the vectors are summed in, 1..64.
        num_clients: the most clients whose vectors are ever summed.
        max_weight: None for plain sums; else the largest integer weight, and
            encoded vectors carry a weight slot (see the module docstring).

    Raises:
        TypeError / ValueError: bad arguments, or a sum that could wrap.
    """

    clip: float
    step: float
    bits: int
    num_clients: int
    max_weight: int | None
    levels: int = field(init=False)

    # An explicit __init__ (init=False above) so that ``step`` may be None as
    # an argument while the field always holds the grid spacing.
    def __init__(
        self, *, clip: float, step: float | None = None, bits: int = 32, num_clients: int, max_weight: int | None = None
    ) -> None:
        for name, value in (("clip", clip), ("step", step), ("bits", bits), ("num_clients", num_clients), ("max_weight", max_weight)):
            object.__setattr__(self, name, value)
        clip = _check_positive("clip", self.clip)
        dtype_for(self.bits)
        _check_count("num_clients", self.num_clients)
        if self.max_weight is not None:
            _check_count("max_weight", self.max_weight)
        budget = self.num_clients * (self.max_weight or 1)
        largest = (1 << self.bits) - 1
        weights = f" with weights up to {self.max_weight}" if self.weighted else ""
        if budget > largest:
            raise ValueError(
                f"{self.bits} bits cannot hold a sum of {self.num_clients} clients{weights}, even at one level; "
                f"use at least {budget.bit_length()} bits."
            )
        if step is None:
            count = min(largest // budget, _MAX_LEVELS)
        else:
            count = levels(clip, step)
            if count > _MAX_LEVELS:
                raise ValueError(
                    f"step = {step} gives {count} levels, finer than float64 values can express "
                    f"(at most 2^53); use a step of at least {2 * clip / _MAX_LEVELS:.6g}."
                )
            if budget * count > largest:
                raise ValueError(
                    f"a sum of {self.num_clients} clients{weights} at {count} levels (2*clip/step) needs "
                    f"{(budget * count).bit_length()} bits, but bits = {self.bits}, so it could wrap; raise bits, "
                    f"lower num_clients{' or max_weight' if self.weighted else ''}, or use a step of at least "
                    f"{2 * clip / (largest // budget):.6g}."
                )
        object.__setattr__(self, "clip", clip)
        object.__setattr__(self, "step", 2 * clip / count)
        object.__setattr__(self, "levels", count)

    @property
    def weighted(self) -> bool:
        """True when encoded vectors carry a weight slot."""
        return self.max_weight is not None

    @property
    def dtype(self) -> RingDtype:
        """The dtype of encoded vectors: ``ring.dtype_for(bits)``."""
        return dtype_for(self.bits)

    def encoded_length(self, length: int) -> int:
        """The length of the encoding of a ``length``-element vector (plus the weight slot)."""
        return length + int(self.weighted)

    def encode(
        self, values: npt.ArrayLike, *, weight: int | None = None, rng: np.random.Generator | None = None
    ) -> tuple[RingVector, int]:
        """Quantise a 1-D float vector for summation.

        Args:
            values: the 1-D vector of finite floats.
            weight: the client's weight, 1..max_weight, when the quantizer is
                weighted; must be None otherwise.
            rng: a numpy Generator for stochastic rounding (None: from the OS).

        Returns:
            ``(encoded, clipped)``: an array of ``self.dtype`` of length
            ``encoded_length(len(values))``, and how many values were clipped.
        """
        array = _check_values(values)
        if array.ndim != 1:
            raise ValueError(f"values must be a 1-D vector, got shape {array.shape}.")
        if self.max_weight is not None:  # weighted
            if weight is None:
                raise ValueError(f"this Quantizer is weighted; pass weight= an int in 1..{self.max_weight}.")
            _check_count("weight", weight)
            if weight > self.max_weight:
                raise ValueError(f"weight {weight} exceeds max_weight = {self.max_weight}.")
        elif weight is not None:
            raise ValueError("this Quantizer has no weight slot; create it with max_weight= to send weights.")
        count = self.levels  # the one count the bit budget was checked with; never recomputed from step
        generator = _check_generator(rng)
        encoded = np.empty(self.encoded_length(array.size), dtype=self.dtype)
        if weight is not None:  # weighted: weight was checked above
            # w q <= max_weight L < 2^bits, so the kernel's wrap to the ring width never bites
            clipped = _quantize_into(array, self.clip, count, generator, encoded[:-1], weight)
            encoded[-1] = weight
        else:
            clipped = _quantize_into(array, self.clip, count, generator, encoded, 1)
        return encoded, clipped

    def decode(
        self, sum_vector: npt.ArrayLike, count: int
    ) -> npt.NDArray[np.float64] | tuple[npt.NDArray[np.float64], int]:
        """Dequantise the sum (mod 2^bits) of ``count`` clients' encodings.

        Returns:
            Unweighted: the float64 sum of the clients' (clipped) vectors.
            Weighted: ``(mean, total_weight)``, the weighted mean as float64
            and the sum of the weights.

        Raises:
            TypeError: ``sum_vector`` is not an integer array.
            ValueError: count outside 1..num_clients, or a sum no ``count``
                clients can produce (a wrong count, or a corrupted sum).
        """
        total = np.asarray(sum_vector)
        if total.dtype.kind not in "ui":
            raise TypeError(f"the sum must be an integer array, got dtype {total.dtype}.")
        if total.ndim != 1 or total.size < self.encoded_length(1):
            raise ValueError(f"the sum must be a 1-D vector of length >= {self.encoded_length(1)}, got shape {total.shape}.")
        _check_count("count", count)
        if count > self.num_clients:
            raise ValueError(f"count = {count} exceeds num_clients = {self.num_clients}, so the sum may have wrapped.")
        if total.dtype.kind == "i" and (total < 0).any():
            raise ValueError("the sum has negative elements; it must lie in [0, 2^bits).")
        if self.max_weight is None:  # unweighted
            _check_sum_bound(total, count * self.levels, f"{count} clients")
            return _dequantize(total, count, self.clip, self.levels)
        weight = int(total[-1])
        if not count <= weight <= count * self.max_weight:
            raise ValueError(
                f"the weight slot holds {weight}, outside [{count}, {count * self.max_weight}] for {count} clients; "
                "the count is wrong or the sum is corrupted."
            )
        values = total[:-1]
        _check_sum_bound(values, weight * self.levels, f"a total weight of {weight}")
        return _dequantize(values, weight, self.clip, self.levels) / weight, weight


def _quantize_into(
    array: npt.NDArray[np.float64], clip: float, count: int, generator: np.random.Generator, out: npt.NDArray[Any], weight: int
) -> int:
    """``out = weight * q`` for the quantised ``array``; returns the clipped count.

    One fused kernel pass (``_kernels.quantize_into``: C, or its numpy
    specification) after the generator draws the uniforms, one per element:
    quantising a model is on every client's critical path.
    """
    array = np.ascontiguousarray(array)  # a copy only for strided views
    uniforms = generator.random(array.shape)
    scale = count / (2 * clip)
    # The kernels take at most 2^63 levels so that every q fits a uint64; a grid that fine
    # (Quantizer allows 2^53) is far below float64 resolution anyway.
    return _kernels.quantize_into(array, uniforms, out, float(clip), scale, min(count, 1 << 63), weight)


def _check_sum_bound(total: npt.NDArray[Any], bound: int, who: str) -> None:
    if total.size and int(total.max()) > bound:
        raise ValueError(
            f"a sum element exceeds {bound}, the most {who} can produce; the count is wrong or the sum is corrupted."
        )


def _check_values(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"values must be real numbers, got dtype {array.dtype}.")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError("values contain NaN or infinity; only finite values can be quantised.")
    return array


def _check_generator(rng: object) -> np.random.Generator:
    if rng is None:
        return np.random.Generator(np.random.PCG64())
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, not {type(rng).__name__}.")
    return rng


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}.")
    return float(value)


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return value
