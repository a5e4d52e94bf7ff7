"""Torch tensors as session inputs: quantised and masked on their device, one copy to the host.

``device_ring_input(tensor)`` (a ring vector already quantised, int32/int64)
and ``device_float_input(values, quantizer)`` (a float update) return objects
that ``lepton_secagg.Client.set_input`` accepts (the ``DeviceInput`` seam of
``lepton_secagg.device_input``); the core never imports torch.

Where the work happens (``engine``, as ``adapters.torch.add_masks``):

* device: ``"triton"`` (the fused kernel; CUDA, or CPU tensors under
  ``TRITON_INTERPRET=1``) or ``"torch"`` (torch integer ops).  A float update
  is clipped, scaled and rounded on the device, every mask is added and the
  vector reduced mod 2^bits there; then the masked ring vector is copied once
  into the host array the wire sends (page-locked for a CUDA tensor).
  ChaCha20 only: an explicit device engine with an ``aes128ctr`` session is
  refused when the input is set.
* host: ``"kernel"``, and what ``"auto"`` picks for a CPU tensor or an
  ``aes128ctr`` session: the tensor (float values or ring words) is copied
  once to the host, unmasked, and quantised and masked there by the numpy
  path (``hazmat.pipeline.encode_masked`` / ``hazmat.masking.add_masks``).
  ``"auto"`` on a CUDA ChaCha20 session is the device path (``"triton"`` where
  triton imports, else ``"torch"``).

Either way the masked vector is bit-identical to a numpy client's: the ring
words are the same, and the stochastic rounding of a float update uses the
rounding stream of ``hazmat.pipeline`` (the ``suite`` keystream under a
``round_key`` drawn from the client's rng when the input is set), which on the
device is made by the same ChaCha20 kernel that makes the masks.  So CPU and
GPU clients mix in one session under one configuration.

The tensors are kept by reference: do not change them until the masked
input is sent (``Client.set_float_input``'s rule).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...hazmat import masking, pipeline, ring
from ...hazmat.prg import key_size
from ...hazmat.quantize import Quantizer
from ...hazmat.rng import Rng
from .masking import add_masks
from .quantization import _check_float_vector, _check_quantizer, _check_real_vector, _check_weight, _quantize_with_noise
from .ring import _ring_view, as_ring_numpy

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["device_ring_input", "device_float_input", "DeviceRingInput", "DeviceFloatInput"]

_DEVICE_ENGINES = ("torch", "triton")
_UNIFORM_SCALE = 2.0**-32  # a rounding-stream word w gives the uniform w 2^-32 (hazmat.pipeline)


def _check_engine(engine: object) -> str:
    if engine not in ("auto", "kernel", *_DEVICE_ENGINES):
        raise ValueError(f"engine must be one of ('auto', 'kernel', 'torch', 'triton'), got {engine!r}.")
    return str(engine)


def _masks_on_device(engine: str, tensor: torch.Tensor, suite: str) -> bool:
    """True where the masks are added on the tensor's device.

    ValueError for a device engine on a non-ChaCha20 suite, or one that cannot
    run on this device (``"triton"`` without triton, or on a CPU tensor outside
    the interpreter): ``add_masks`` is asked on an empty tensor of that device,
    so the input is refused when it is set, not in the round.
    """
    if engine in _DEVICE_ENGINES:
        if suite != "chacha20":
            raise ValueError(
                f"engine={engine!r} masks with chacha20 only; this session's prg is {suite}: "
                "use engine='auto' or 'kernel' (masking on the host) or a chacha20 configuration."
            )
        import torch

        add_masks(tensor.new_empty(0, dtype=torch.int32), [], [], suite, engine=engine)
        return True
    return engine == "auto" and suite == "chacha20" and tensor.device.type != "cpu"


def _reduce(tensor: torch.Tensor, bits: int) -> None:
    """``tensor mod 2^bits`` in place on its device (int32/int64 bit patterns)."""
    if bits < 8 * tensor.element_size():
        tensor.bitwise_and_((1 << bits) - 1)


def _to_host(tensor: torch.Tensor, bits: int) -> np.ndarray:
    """The ring tensor copied once into a fresh host array of ``dtype_for(bits)`` (page-locked for CUDA)."""
    import torch
    pinned = tensor.device.type == "cuda"
    host = torch.empty(tensor.numel(), dtype=tensor.dtype, pin_memory=pinned)
    host.copy_(tensor)
    out: np.ndarray = as_ring_numpy(host).view(ring.dtype_for(bits))  # the array keeps the tensor's memory alive
    return out


def _ring_tensor(tensor: Any, length: int, bits: int) -> torch.Tensor:
    """The int32/int64 view of a ring tensor after the checks against the session."""
    import torch
    if not torch.is_tensor(tensor):
        raise TypeError(f"the device input must be a torch tensor, not {type(tensor).__name__}.")
    view: torch.Tensor = _ring_view(torch, tensor, what="the device input").detach()
    want = torch.int32 if bits <= 32 else torch.int64
    if view.dtype != want:
        raise TypeError(f"a {bits}-bit session takes {want} ring tensors (or torch.uint{8 * want.itemsize}), got {tensor.dtype}.")
    if view.dim() != 1 or view.numel() != length:
        raise ValueError(f"the device input must be a 1-D tensor of length {length}, got shape {tuple(view.shape)}.")
    if bits < 8 * view.element_size() and view.numel() and bool((view & ~((1 << bits) - 1)).any()):
        raise ValueError(f"the device input has elements >= 2^{bits}; values must lie in [0, 2^{bits}).")
    return view


@dataclass(frozen=True)
class DeviceRingInput:
    """A ring vector in a torch tensor (int32 / int64 bit patterns); see ``device_ring_input``."""

    tensor: Any = field(repr=False)
    engine: str = "auto"

    def bind(self, length: int, bits: int, suite: str, rng: Rng) -> _BoundRing:
        """Check the tensor against the session (dtype, length, range, engine); it needs no secret."""
        view = _ring_tensor(self.tensor, length, bits)
        return _BoundRing(view, bits, suite, self.engine, _masks_on_device(self.engine, view, suite))


@dataclass(frozen=True)
class _BoundRing:
    tensor: Any = field(repr=False)
    bits: int
    suite: str
    engine: str
    on_device: bool

    def masked(self, keys: Sequence[bytes], signs: Sequence[int]) -> tuple[np.ndarray, None]:
        if self.on_device:
            work = self.tensor.clone()
            add_masks(work, keys, signs, self.suite, engine=self.engine)
            _reduce(work, self.bits)
            return _to_host(work, self.bits), None
        host = _to_host(self.tensor, self.bits)
        masking.add_masks(host, keys, signs, self.suite)
        return ring.reduce(host, self.bits), None

    def unmasked(self) -> np.ndarray:
        return _to_host(self.tensor, self.bits)


@dataclass(frozen=True)
class DeviceFloatInput:
    """A float update in a torch tensor; see ``device_float_input``."""

    values: Any = field(repr=False)
    quantizer: Quantizer
    weight: int | None = None
    engine: str = "auto"

    def bind(self, length: int, bits: int, suite: str, rng: Rng) -> _BoundFloat:
        """Check the update against the session, then draw the rounding-stream key from ``rng``."""
        import torch
        values, quantizer = self.values, self.quantizer
        _check_real_vector(torch, values, "the device input")
        _check_quantizer(quantizer)
        _check_weight(quantizer, self.weight)
        if quantizer.bits != bits:
            raise ValueError(f"the quantizer sums in {quantizer.bits} bits, the session in {bits}.")
        if quantizer.encoded_length(values.numel()) != length:
            raise ValueError(
                f"{values.numel()} values encode to {quantizer.encoded_length(values.numel())} elements; "
                f"the session's vectors have {length}."
            )
        on_device = _masks_on_device(self.engine, values, suite)
        # drawn here, as Client.set_float_input draws it, so both consume the rng alike
        round_key = rng.bytes(key_size(suite))
        return _BoundFloat(values.detach(), quantizer, self.weight, bits, suite, self.engine, on_device, round_key)


@dataclass(frozen=True)
class _BoundFloat:
    values: Any = field(repr=False)
    quantizer: Quantizer
    weight: int | None
    bits: int
    suite: str
    engine: str
    on_device: bool
    round_key: bytes = field(repr=False)

    def masked(self, keys: Sequence[bytes], signs: Sequence[int]) -> tuple[np.ndarray, int]:
        if not self.on_device:
            return pipeline.encode_masked(
                self.quantizer, self._host_values(), weight=self.weight, round_key=self.round_key,
                keys=keys, signs=signs, suite=self.suite,
            )
        encoded, clipped = self._encode_on_device()
        add_masks(encoded, keys, signs, self.suite, engine=self.engine)
        _reduce(encoded, self.bits)
        return _to_host(encoded, self.bits), clipped

    def unmasked(self) -> np.ndarray:
        if not self.on_device:
            return pipeline.quantize_keyed(
                self.quantizer, self._host_values(), weight=self.weight, round_key=self.round_key, suite=self.suite
            )[0]
        return _to_host(self._encode_on_device()[0], self.bits)

    def _host_values(self) -> np.ndarray:
        """The values on the host: a view of a contiguous CPU float32/float64 tensor, else one copy."""
        import torch
        values = self.values
        if values.dtype not in (torch.float32, torch.float64):
            values = _check_float_vector(torch, values)  # e.g. float16 or integers, as float64
        return np.asarray(values.cpu().numpy())

    def _encode_on_device(self) -> tuple[torch.Tensor, int]:
        """Quantise on the device with the rounding stream of ``hazmat.pipeline``; ``(ring tensor, clipped)``."""
        import torch
        x = _check_float_vector(torch, self.values)
        words = torch.zeros(x.numel(), dtype=torch.int32, device=x.device)
        add_masks(words, [self.round_key], [1], self.suite, engine=self.engine)  # the keystream itself
        noise = (words.to(torch.int64) & 0xFFFFFFFF).to(torch.float64).mul_(_UNIFORM_SCALE)
        del words
        encoded, clipped = _quantize_with_noise(torch, x, self.quantizer, self.weight, noise)
        return encoded, int(clipped)


def device_ring_input(tensor: Any, *, engine: str = "auto") -> DeviceRingInput:
    """A quantised ring vector on any torch device, as an input for ``Client.set_input``.

    Args:
        tensor: 1-D int32 (bits <= 32) or int64 (bits > 32) tensor holding the
            uint32 / uint64 ring elements (torch.uint32 / uint64 too), values
            in [0, 2^bits); e.g. ``adapters.torch.quantize`` output.
        engine: ``"auto"``, ``"triton"``, ``"torch"`` or ``"kernel"`` (see the module docstring).

    Raises:
        ValueError: an unknown engine.  The tensor is checked by ``Client.set_input``.
    """
    return DeviceRingInput(tensor, _check_engine(engine))


def device_float_input(values: Any, quantizer: Quantizer, *, weight: int | None = None,
                       engine: str = "auto") -> DeviceFloatInput:
    """A float update on any torch device, quantised and masked there, as an input for ``Client.set_input``.

    The device twin of ``Client.set_float_input``: ``quantizer.encoded_length(len(values))``
    must be ``cfg.vector_length`` and ``quantizer.bits`` must be ``cfg.bits``.
    ``Client.clipped`` reports the clipped values once the masked input is computed.

    Raises:
        ValueError: an unknown engine.  The rest is checked by ``Client.set_input``.
    """
    return DeviceFloatInput(values, quantizer, weight, _check_engine(engine))
