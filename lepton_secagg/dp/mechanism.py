"""The distributed-DP encoding of one round: what a client sends and what the server decodes.

Theory of operation (client, ``encode``): clip the float update to L2 norm
``clip`` (reported, never silent); rotate it (``rotation``); multiply by
``scale``; round it conditionally (``rounding``) so its norm stays under
``sensitivity``; add integer noise with per-client variance ``noise``
(discrete Gaussian N_Z(0, noise), or Skellam with mu = noise/2); reduce the
result modulo 2^bits.  That ring vector is the client's SecAgg input: the
masks hide it, and the server only ever decodes the sum, which already holds
every surviving client's noise.

Server (``decode``): lift the sum mod 2^bits to the centred range
[-2^(bits-1), 2^(bits-1)), divide by ``scale`` and unrotate.  The result is
the sum of the clipped updates plus the noise and rounding error, whose
expected squared norm is ``expected_error_sq``.

``DdpEncoding.calibrate`` picks the scale the way the DDG paper (Section 4.2)
and TFF's ``DistributedDpSumFactory`` do: the largest scale for which
``k_stddevs`` standard deviations of the aggregate fit in the ring,
2k sqrt((scale clip n)^2 / d + (1/4 + noise) n) <= 2^bits, with the signal
term assuming all n updates point the same way.  The noise is set so the sum
over the *minimum* number of surviving clients has standard deviation
``noise_multiplier * sensitivity``: a dropout can only add privacy, and the
accountant reports epsilon for the clients actually included.  The scale is
also capped so that each client's noise variance stays below 2^24 ring units:
rounding then costs a 2^-26 part of the error, and a larger scale would only
lengthen the samplers' integers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from ..hazmat.ring import dtype_for, modulus_mask
from ..hazmat.rng import Rng
from . import samplers
from .rotation import padded_length, rotate, unrotate
from .rounding import conditional_round, rounded_l2_bound

__all__ = ["MECHANISMS", "DdpEncoding", "encode", "decode"]

MECHANISMS = ("gaussian", "skellam")
DEFAULT_BETA = math.exp(-0.5)
_NOISE_GRID = 64  # a small noise variance is rounded up to a multiple of 1/64
# Past this per-client variance a larger scale buys nothing (rounding adds 1/4, a
# 2^-26 part of the noise) and only makes the exact samplers' integers longer.
MAX_NOISE = 1 << 24


def _round_noise_up(variance: float) -> Fraction:
    """``variance`` rounded up to a short rational (more noise, never less)."""
    if variance >= _NOISE_GRID:
        return Fraction(math.ceil(variance))
    return Fraction(max(1, math.ceil(variance * _NOISE_GRID)), _NOISE_GRID)


@dataclass(frozen=True)
class DdpEncoding:
    """Everything client and server must agree on for one DDP round.

    Attributes:
        mechanism: "gaussian" (distributed discrete Gaussian) or "skellam".
        length: m, the number of float coordinates of an update.
        bits: b, the ring Z_(2^b) the encoded vectors live in (8..64).
        clip: the L2 clipping bound of an update.
        scale: the factor applied after rotation, before rounding.
        noise: each client's noise variance in ring units (a Fraction).
        beta: the conditional-rounding parameter (0 disables the condition).
    """

    mechanism: str
    length: int
    bits: int
    clip: float
    scale: float
    noise: Fraction
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"mechanism must be one of {MECHANISMS}, got {self.mechanism!r}.")
        padded_length(self.length)
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 8 <= self.bits <= 64:
            raise ValueError(f"bits must be an int in 8..64, got {self.bits!r}.")
        for name in ("clip", "scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
        samplers.as_rational(self.noise, "noise")
        if not 0 <= self.beta < 1:
            raise ValueError(f"beta must lie in [0, 1), got {self.beta}.")

    @property
    def padded_length(self) -> int:
        """d, the SecAgg vector length: ``length`` padded to a power of two."""
        return padded_length(self.length)

    @property
    def sensitivity(self) -> float:
        """The L2 norm bound of a rounded, scaled update (ring units): what the noise covers."""
        return rounded_l2_bound(self.scale * self.clip, self.beta, self.padded_length)

    def expected_error_sq(self, count: int) -> float:
        """Expected squared L2 error of a decoded sum of ``count`` clients: d count (1/4 + noise) / scale^2."""
        return self.padded_length * count * (0.25 + float(self.noise)) / self.scale**2

    @classmethod
    def calibrate(
        cls,
        mechanism: str,
        *,
        length: int,
        bits: int,
        clip: float,
        noise_multiplier: float,
        clients: int,
        min_clients: int | None = None,
        k_stddevs: float = 3.0,
        beta: float = DEFAULT_BETA,
    ) -> "DdpEncoding":
        """The encoding whose noisy sum over ``min_clients`` has std ``noise_multiplier * sensitivity``.

        Args:
            clients: the most clients whose inputs can enter one sum (the ring must hold them).
            min_clients: the fewest that can (the noise is calibrated for them); default ``clients``.
            k_stddevs: how many standard deviations of the aggregate the ring must hold.

        Raises:
            ValueError: a bad argument, or ``bits`` too few for any scale.
        """
        min_clients = clients if min_clients is None else min_clients
        for name, value in (("clients", clients), ("min_clients", min_clients)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if min_clients > clients:
            raise ValueError(f"min_clients ({min_clients}) exceeds clients ({clients}).")
        if not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
            raise ValueError(f"noise_multiplier must be a finite number >= 0, got {noise_multiplier!r}.")
        d = padded_length(length)
        half_ring = 2.0 ** bits / 2

        def noise_for(scale: float) -> float:
            total_sd = noise_multiplier * rounded_l2_bound(scale * clip, beta, d)
            return total_sd**2 / min_clients

        def fits(scale: float) -> bool:
            spread = (scale * clip * clients) ** 2 / d + (0.25 + float(_round_noise_up(noise_for(scale)))) * clients
            return k_stddevs * math.sqrt(spread) <= half_ring and noise_for(scale) <= MAX_NOISE

        low, high = 0.0, half_ring / clip
        if not fits(1e-12 * high):
            raise ValueError(f"bits = {bits} cannot hold {clients} noisy updates; raise bits or lower k_stddevs.")
        for _ in range(200):
            middle = (low + high) / 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        if low <= 0:
            raise ValueError(f"bits = {bits} cannot hold {clients} noisy updates; raise bits or lower k_stddevs.")
        return cls(mechanism, length, bits, float(clip), low, _round_noise_up(noise_for(low)), beta)


def encode(
    enc: DdpEncoding, values: npt.ArrayLike, seed: bytes, rng: Rng
) -> tuple[npt.NDArray[np.unsignedinteger[Any]], bool]:
    """One client's ring vector (length ``enc.padded_length``) and whether its update was clipped.

    Args:
        values: the float update, ``enc.length`` finite numbers.
        seed: the round's public 32-byte rotation seed.
        rng: the client's secret randomness (rounding and noise).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.shape != (enc.length,):
        raise ValueError(f"the update must have shape ({enc.length},), got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("the update has NaN or infinite values.")
    norm = float(np.linalg.norm(x))
    clipped = norm > enc.clip
    if clipped:
        x = x * (enc.clip / norm)
    scaled = rotate(x, seed) * enc.scale
    rounded = conditional_round(scaled, enc.sensitivity, rng)
    d = enc.padded_length
    if enc.mechanism == "gaussian":
        noise = samplers.discrete_gaussian(rng, enc.noise, d)
    else:
        noise = samplers.skellam(rng, enc.noise / 2, d)
    ring = (rounded + noise).astype(np.uint64) & np.uint64(modulus_mask(enc.bits))
    return ring.astype(dtype_for(enc.bits)), clipped


def decode(enc: DdpEncoding, total: npt.ArrayLike, seed: bytes) -> npt.NDArray[np.float64]:
    """The float sum of the clipped updates (plus noise) from the ring sum of the clients' vectors."""
    ring = np.asarray(total)
    if ring.shape != (enc.padded_length,):
        raise ValueError(f"the sum must have shape ({enc.padded_length},), got {ring.shape}.")
    lifted = ring.astype(np.uint64).view(np.int64) if enc.bits == 64 else ring.astype(np.int64)
    if enc.bits < 64:
        lifted = np.where(lifted >= 1 << (enc.bits - 1), lifted - (1 << enc.bits), lifted)
    return unrotate(lifted.astype(np.float64) / enc.scale, seed, enc.length)
