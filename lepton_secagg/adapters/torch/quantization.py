"""``quantize`` / ``dequantize``: ``encoding.Quantizer.encode`` / ``decode`` on the tensor's device.

Given the same uniform rounding noise the integers are bit-identical to the
numpy reference; the noise comes from a ``torch.Generator`` seeded from the
OS (not a secret: the masks hide it, DESIGN.md §3).
"""
from __future__ import annotations

import math
import os
from types import ModuleType
from typing import TYPE_CHECKING

from ...hazmat.quantize import Quantizer, levels as _levels
from ._lazy import _torch, _unsigned
from .ring import _ring_view

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor  # for annotations inside functions, where a parameter named torch hides the module


def quantize(
    tensor: torch.Tensor, quantizer: Quantizer, *, weight: int | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """``quantizer.encode`` on the tensor's device.

    Clips to [-clip, clip], rounds stochastically onto the grid (floor plus a
    Bernoulli draw with the fractional part as probability: unbiased), and
    appends the weight slot for a weighted quantizer.

    Args:
        tensor: a 1-D real tensor (any float or integer dtype, finite values).
        quantizer: a ``lepton_secagg.encoding.Quantizer``.
        weight: the client's weight, 1..max_weight, iff the quantizer is weighted.
        generator: a ``torch.Generator`` on the tensor's device for the
            rounding noise; None draws a fresh one seeded from ``os.urandom``
            (not torch's default generator, whose fixed default seed would give
            every client the same noise).

    Returns:
        ``(ints, clipped)``: an int32 tensor (the uint32 bit pattern) for
        ``quantizer.bits <= 32``, int64 (uint64 pattern) above, of length
        ``quantizer.encoded_length(len(tensor))`` on the tensor's device, and
        the number of clipped values.  Given the same uniform noise the
        integers equal ``quantizer.encode``'s bit for bit.

    Raises:
        TypeError / ValueError: as ``Quantizer.encode``, plus a generator that
        is not a ``torch.Generator`` on the tensor's device.
    """
    torch = _torch()
    x = _check_float_vector(torch, tensor)
    _check_quantizer(quantizer)
    _check_weight(quantizer, weight)
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(int.from_bytes(os.urandom(8), "little"))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, not {type(generator).__name__}.")
    elif generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device} but the tensor is on {x.device}.")
    noise = torch.rand(x.shape, generator=generator, dtype=torch.float64, device=x.device)
    return _quantize_with_noise(torch, x, quantizer, weight, noise)


def _quantize_with_noise(
    torch: ModuleType, x: torch.Tensor, quantizer: Quantizer, weight: int | None, noise: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """The deterministic part of ``quantize``: ``noise`` is uniform in [0, 1), one per element.

    Mirrors ``hazmat.quantize.quantize`` and ``Quantizer.encode`` operation for operation.
    """
    clip = quantizer.clip
    count = _levels_of(quantizer)
    magnitude = x.abs()
    if x.numel() and not math.isfinite(float(magnitude.max())):  # max propagates NaN
        raise ValueError("values contain NaN or infinity; only finite values can be quantised.")
    clipped = int(torch.count_nonzero(magnitude > clip))
    del magnitude
    scaled = torch.clamp(x, -clip, clip).add_(clip).mul_(count / (2 * clip))
    q = torch.floor(scaled)
    q.add_(noise < scaled.sub_(q))  # floor + Bernoulli(fractional part)
    q.clamp_(max=float(count))  # exact: a Quantizer has at most 2^53 levels
    ints = q.to(torch.int64)
    ring = torch.int32 if quantizer.bits <= 32 else torch.int64
    encoded: Tensor
    if weight is not None:  # quantizer.weighted: _check_weight lets a weight through iff there is a slot for it
        # w q <= max_weight L < 2^bits; int64 wraps like uint64, and the cast to int32
        # truncates mod 2^32 like numpy's unsafe uint64 -> uint32 cast.
        encoded = torch.empty(ints.numel() + 1, dtype=ring, device=x.device)
        encoded[:-1] = ints.mul_(weight)
        encoded[-1] = weight
    else:
        encoded = ints.to(ring)
    return encoded, clipped


def dequantize(sum_tensor: torch.Tensor, quantizer: Quantizer, count: int) -> torch.Tensor | tuple[torch.Tensor, int]:
    """``quantizer.decode`` on a torch sum: the float64 result on the sum's device.

    Args:
        sum_tensor: the 1-D sum mod 2^bits of ``count`` clients' encodings, as
            int32 (uint32 bit pattern), int64 (uint64 bit pattern), or
            torch.uint32 / torch.uint64.
        quantizer: the ``Quantizer`` the clients encoded with.
        count: how many clients are in the sum.

    Returns:
        Unweighted: the float64 sum of the clients' clipped vectors.
        Weighted: ``(mean, total_weight)``, as ``Quantizer.decode``.

    Raises:
        TypeError / ValueError: as ``Quantizer.decode``.
    """
    torch = _torch()
    _check_quantizer(quantizer)
    if not torch.is_tensor(sum_tensor):
        raise TypeError(f"the sum must be a torch tensor, not {type(sum_tensor).__name__}.")
    total = _ring_view(torch, sum_tensor, what="the sum")
    if total.dim() != 1 or total.numel() < quantizer.encoded_length(1):
        raise ValueError(
            f"the sum must be a 1-D vector of length >= {quantizer.encoded_length(1)}, got shape {tuple(total.shape)}."
        )
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, not {type(count).__name__}.")
    if not 1 <= count <= quantizer.num_clients:
        raise ValueError(f"count = {count} must lie in 1..num_clients = {quantizer.num_clients}.")
    grid = 2 * quantizer.clip / _levels_of(quantizer)
    if not quantizer.weighted:
        values = _checked_float64(torch, total, count * quantizer.levels, f"{count} clients")
        return values.mul_(grid).sub_(count * quantizer.clip)
    max_weight = quantizer.max_weight
    assert max_weight is not None  # quantizer.weighted
    weight = int(total[-1]) & ((1 << (8 * total.element_size())) - 1)
    if not count <= weight <= count * max_weight:
        raise ValueError(
            f"the weight slot holds {weight}, outside [{count}, {count * max_weight}] for {count} clients; "
            "the count is wrong or the sum is corrupted."
        )
    values = _checked_float64(torch, total[:-1], weight * quantizer.levels, f"a total weight of {weight}")
    return values.mul_(grid).sub_(weight * quantizer.clip).div_(weight), weight


def _checked_float64(torch: ModuleType, t: torch.Tensor, bound: int, who: str) -> torch.Tensor:
    """The unsigned values of int32 / int64 bit patterns ``t`` as float64; ValueError above ``bound``."""
    if t.dtype == torch.int32:
        u32 = _unsigned(torch, 32) if t.device.type == "cpu" else ()  # uint32 casts: surely on the CPU only
        values = t.view(u32[0]).to(torch.float64) if u32 else (t.to(torch.int64) & 0xFFFFFFFF).to(torch.float64)
        bad = bool(values.numel()) and float(values.max()) > bound  # both sides exact: below 2^33
    elif not t.numel():
        return t.to(torch.float64)
    else:
        low, high = (int(v) for v in torch.aminmax(t))
        if bound < 1 << 63:
            bad = low < 0 or high > bound
        else:  # a negative int64 is the unsigned value v + 2^64, which exceeds bound iff v > bound - 2^64
            bad = low < 0 and bool(((t < 0) & (t > bound - (1 << 64))).any())
        values = _unsigned_to_float64(torch, t) if low < 0 else t.to(torch.float64)  # both correctly rounded
    if bad:
        raise ValueError(
            f"a sum element exceeds {bound}, the most {who} can produce; the count is wrong or the sum is corrupted."
        )
    return values


def _unsigned_to_float64(torch: ModuleType, t: torch.Tensor) -> torch.Tensor:
    """The unsigned value of each int64 bit pattern, correctly rounded to float64."""
    high = ((t >> 32) & 0xFFFFFFFF).to(torch.float64) * 4294967296.0  # exact
    return high + (t & 0xFFFFFFFF).to(torch.float64)  # one correctly rounded addition


def _check_quantizer(quantizer: object) -> None:
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a lepton_secagg.encoding.Quantizer, not {type(quantizer).__name__}.")


def _check_weight(quantizer: Quantizer, weight: object) -> None:
    if quantizer.max_weight is not None:  # quantizer.weighted
        if weight is None:
            raise ValueError(f"this Quantizer is weighted; pass weight= an int in 1..{quantizer.max_weight}.")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise TypeError(f"weight must be an int, not {type(weight).__name__}.")
        if not 1 <= weight <= quantizer.max_weight:
            raise ValueError(f"weight {weight} is outside 1..max_weight = {quantizer.max_weight}.")
    elif weight is not None:
        raise ValueError("this Quantizer has no weight slot; create it with max_weight= to send weights.")


def _check_real_vector(torch: ModuleType, tensor: torch.Tensor, what: str = "values") -> None:
    """TypeError / ValueError unless ``tensor`` is a 1-D tensor of real numbers (``what`` names it in the message)."""
    if not torch.is_tensor(tensor):
        raise TypeError(f"{what} must be a torch tensor, not {type(tensor).__name__}.")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{what} must be real numbers, got dtype {tensor.dtype}.")
    if tensor.dim() != 1:
        raise ValueError(f"{what} must be a 1-D vector, got shape {tuple(tensor.shape)}.")


def _check_float_vector(torch: ModuleType, tensor: torch.Tensor) -> torch.Tensor:
    _check_real_vector(torch, tensor)
    x = tensor.detach()
    if x.dtype in _unsigned(torch, 64):
        x = _unsigned_to_float64(torch, x.view(torch.int64))  # torch has no uint64 -> float cast
    elif x.dtype in _unsigned(torch, 16, 32):
        x = x.to(torch.int64)
    return x.to(torch.float64)


def _levels_of(quantizer: Quantizer) -> int:
    """``levels(clip, step)``, the largest quantised value, computed as ``Quantizer.encode`` does."""
    step = quantizer.step
    assert step is not None  # Quantizer.__post_init__ always sets it; None is a constructor argument only
    return _levels(quantizer.clip, step)
