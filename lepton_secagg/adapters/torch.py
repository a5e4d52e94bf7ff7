"""PyTorch adapter: state_dicts to vectors, quantisation and masking on the tensors' device.

Importing this module does not import torch; every function imports it the
first time it runs (DESIGN.md §4), so ``import lepton_secagg.adapters.torch``
is cheap and works where torch is not installed.

* ``flatten`` / ``unflatten``: a ``state_dict`` (or a sequence of tensors) to
  one 1-D **float64** vector and back, with a small JSON-serialisable
  ``FlatSpec`` recording names, shapes, dtypes and devices.  Floating-point
  tensors come first in the vector (``vector[:spec.num_float]``, the part to
  average); integer and bool tensors such as BatchNorm's
  ``num_batches_tracked`` follow, carried exactly, so they round-trip too.
* ``quantize`` / ``dequantize``: ``lepton_secagg.encoding.Quantizer.encode`` /
  ``decode`` on the tensor's device.  Given the same uniform rounding noise the
  integers are bit-identical to the numpy reference; the noise comes from a
  ``torch.Generator``.
* ``add_masks``: ``hazmat.masking.add_masks`` on an int32 / int64 tensor (the
  bit pattern of a uint32 / uint64 ring vector).  ``chacha20`` on a CUDA
  tensor runs in one fused Triton kernel launch (``_triton_chacha20``) when
  triton is installed, else in torch integer ops; either way it never leaves
  the device.  ``aes128ctr`` goes through the CPU kernel.

torch (2.13) has a ``uint32`` dtype but no add/sub for it, while int32 and
int64 arithmetic wraps two's-complement: the bit patterns of int32 and uint32
(int64 and uint64) sums agree, so ring vectors live in int32/int64 tensors.
``as_ring_numpy`` / ``as_ring_tensor`` convert between the two views without
copying.
"""
from __future__ import annotations

import functools
import json
import math
import operator
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..hazmat import masking as _masking
from ..hazmat.quantize import Quantizer, levels as _levels

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "TensorSpec",
    "FlatSpec",
    "flatten",
    "unflatten",
    "quantize",
    "dequantize",
    "add_masks",
    "as_ring_numpy",
    "as_ring_tensor",
    "CHUNK_BLOCKS",
]

#: ChaCha20 blocks (64 bytes each) computed by one batch of torch ops, summed
#: over the keys of the batch, per device type.  On the CPU 2^14 blocks (1 MiB
#: of keystream, ~5 MiB of temporaries) stay in cache and ran fastest; on a GPU
#: 2^18 blocks (16 MiB of keystream, ~80 MiB of temporaries) amortise the
#: kernel launches (about 570 small kernels per batch).  Tests lower them to
#: exercise chunk boundaries cheaply.
CHUNK_BLOCKS = {"cpu": 1 << 14, "default": 1 << 18}

_FORMAT_VERSION = 1
_EXACT_INT = 1 << 53  # float64 holds every integer of magnitude <= 2^53
_CHACHA_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
_ENGINES = ("auto", "torch", "kernel", "triton")


def _torch():
    import torch

    return torch


def _unsigned(torch, *bits: int) -> tuple:
    """The torch unsigned dtypes of these widths that exist (uint16/32/64 came in torch 2.3)."""
    return tuple(d for d in (getattr(torch, f"uint{b}", None) for b in bits) if d is not None)


# ---------------------------------------------------------------------------
# flatten / unflatten


@dataclass(frozen=True)
class TensorSpec:
    """Where one tensor lives in the flat vector, and what it was.

    ``name`` is the state_dict key (None for a sequence), ``dtype`` the torch
    dtype's name without ``torch.`` (``"float32"``, ``"int64"``, ``"bool"``),
    ``device`` its ``str(tensor.device)``, ``offset`` its first element.
    """

    name: str | None
    shape: tuple[int, ...]
    dtype: str
    device: str
    offset: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class FlatSpec:
    """How to turn a flat vector back into the tensors it came from.

    Attributes:
        entries: one ``TensorSpec`` per tensor, in the input's order.
        mapping: True for a state_dict (``unflatten`` returns an OrderedDict),
            False for a sequence (it returns a list).
        num_float: ``vector[:num_float]`` holds the floating-point tensors; the
            rest holds integer and bool tensors (exclude them from averaging).
        numel: the vector's length.
        metadata: the state_dict's ``_metadata`` (module versions) as JSON, or None.

    ``to_dict()`` gives plain JSON types; ``FlatSpec.from_dict`` validates and
    rebuilds.  Neither needs torch.
    """

    entries: tuple[TensorSpec, ...]
    mapping: bool
    num_float: int
    numel: int
    metadata: str | None = None

    @property
    def names(self) -> tuple[str | None, ...]:
        return tuple(e.name for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _FORMAT_VERSION,
            "mapping": self.mapping,
            "num_float": self.num_float,
            "numel": self.numel,
            "metadata": self.metadata,
            "entries": [
                {"name": e.name, "shape": list(e.shape), "dtype": e.dtype, "device": e.device, "offset": e.offset}
                for e in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlatSpec:
        """Rebuild a spec from ``to_dict()`` output; ValueError if it is inconsistent."""
        try:
            if data["version"] != _FORMAT_VERSION:
                raise ValueError(f"unsupported FlatSpec version {data['version']!r}; this library reads {_FORMAT_VERSION}.")
            mapping = data["mapping"]
            entries = tuple(
                TensorSpec(
                    name=e["name"],
                    shape=tuple(operator.index(s) for s in e["shape"]),
                    dtype=e["dtype"],
                    device=e["device"],
                    offset=operator.index(e["offset"]),
                )
                for e in data["entries"]
            )
            spec = cls(
                entries=entries,
                mapping=mapping,
                num_float=operator.index(data["num_float"]),
                numel=operator.index(data["numel"]),
                metadata=data.get("metadata"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a FlatSpec dict: {exc!r}") from None
        spec._validate()
        return spec

    def _validate(self) -> None:
        if not isinstance(self.mapping, bool):
            raise ValueError("FlatSpec.mapping must be a bool.")
        if self.metadata is not None and not isinstance(self.metadata, str):
            raise ValueError("FlatSpec.metadata must be a JSON string or None.")
        spans = []
        for e in self.entries:
            if self.mapping and not isinstance(e.name, str):
                raise ValueError("a state_dict spec needs a str name for every entry.")
            if not self.mapping and e.name is not None:
                raise ValueError("a sequence spec has no names.")
            if not isinstance(e.dtype, str) or not isinstance(e.device, str):
                raise ValueError("dtype and device must be strings.")
            if any(s < 0 for s in e.shape) or e.offset < 0:
                raise ValueError(f"negative shape or offset in {e}.")
            spans.append((e.offset, e.offset + e.numel))
        spans.sort()
        position = 0
        for start, stop in spans:
            if start != position:
                raise ValueError("the entries do not tile the vector.")
            position = stop
        if position != self.numel or not 0 <= self.num_float <= self.numel:
            raise ValueError("numel / num_float disagree with the entries.")


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(torch, name: str):
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown torch dtype {name!r} in the spec.")
    return dtype


def flatten(tensors, *, device=None) -> tuple[torch.Tensor, FlatSpec]:
    """Concatenate a state_dict (or a sequence of tensors) into one 1-D float64 vector.

    Args:
        tensors: an ordered mapping name -> tensor (``model.state_dict()``), or
            a list/tuple of tensors.
        device: where the vector goes; default the first tensor's device (CPU
            when there are no tensors).

    Returns:
        ``(vector, spec)``.  ``vector`` is float64 and detached: the floating
        tensors first (``vector[:spec.num_float]``, in input order), then the
        integer and bool tensors.  float16/bfloat16/float32/float64 values, and
        integers of magnitude <= 2^53, are exact in float64.

    Raises:
        TypeError: not a mapping or sequence of dense real tensors, or a key
            that is not a str.
        ValueError: an int64/uint64 value beyond +-2^53 (not exact in float64).
    """
    torch = _torch()
    if isinstance(tensors, Mapping):
        items = list(tensors.items())
        for name, _ in items:
            if not isinstance(name, str):
                raise TypeError(f"state_dict keys must be str, got {type(name).__name__}.")
        mapping = True
        metadata = _metadata_json(getattr(tensors, "_metadata", None))
    elif isinstance(tensors, Sequence) and not isinstance(tensors, (str, bytes)) and not torch.is_tensor(tensors):
        items = [(None, t) for t in tensors]
        mapping = False
        metadata = None
    else:
        raise TypeError(
            f"flatten takes a state_dict (a mapping name -> tensor) or a list of tensors, not {type(tensors).__name__}."
        )
    for name, t in items:
        where = f" {name!r}" if name is not None else ""
        if not torch.is_tensor(t):
            raise TypeError(f"entry{where} is a {type(t).__name__}, not a tensor.")
        if t.layout != torch.strided or t.is_quantized:
            raise TypeError(f"entry{where} is not a dense tensor (layout {t.layout}); only strided tensors are supported.")
        if t.is_complex():
            raise TypeError(f"entry{where} is complex ({t.dtype}); only real tensors are supported.")
    if device is None:
        device = items[0][1].device if items else torch.device("cpu")
    device = torch.device(device)
    floats = [(n, t) for n, t in items if t.is_floating_point()]
    others = [(n, t) for n, t in items if not t.is_floating_point()]
    offsets: dict[int, int] = {}
    parts = []
    position = 0
    for name, t in floats + others:
        flat = t.detach().reshape(-1)
        if not t.is_floating_point() and t.dtype != torch.bool:
            flat = _exact_integers(torch, flat, name)
        parts.append(flat.to(device=device, dtype=torch.float64))
        offsets[id(t)] = position
        position += flat.numel()
    vector = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=device)
    entries = tuple(
        TensorSpec(name=n, shape=tuple(t.shape), dtype=_dtype_name(t.dtype), device=str(t.device), offset=offsets[id(t)])
        for n, t in items
    )
    num_float = sum(t.numel() for _, t in floats)
    return vector, FlatSpec(entries=entries, mapping=mapping, num_float=num_float, numel=position, metadata=metadata)


def _exact_integers(torch, flat, name):
    """``flat`` as a tensor float64 holds exactly; ValueError for values beyond 2^53."""
    if flat.dtype in (torch.int64, *_unsigned(torch, 64)) and flat.numel():
        signed = flat.view(torch.int64)  # uint64 above 2^63 shows as negative, so it fails the test
        low = -_EXACT_INT if flat.dtype == torch.int64 else 0
        if bool(((signed < low) | (signed > _EXACT_INT)).any()):
            where = f" {name!r}" if name is not None else ""
            raise ValueError(
                f"integer tensor{where} has values beyond 2^53, which float64 cannot carry exactly; "
                "leave it out of the flattened tensors."
            )
        return signed
    if flat.dtype in _unsigned(torch, 16, 32):
        return flat.to(torch.int64)
    return flat.view(torch.int64) if flat.dtype in _unsigned(torch, 64) else flat


def _metadata_json(metadata) -> str | None:
    if not metadata:
        return None
    try:
        return json.dumps([[key, value] for key, value in metadata.items()], allow_nan=False)
    except (TypeError, ValueError, AttributeError):
        return None  # not JSON-able: dropped (torch's loaders treat missing metadata as version 1)


def unflatten(vector, spec: FlatSpec, *, device=None):
    """Rebuild the tensors of ``spec`` from a flat vector (the inverse of ``flatten``).

    Args:
        vector: a 1-D floating tensor of length ``spec.numel`` (e.g. the vector
            from ``flatten``, or an averaged one).
        spec: the ``FlatSpec`` from ``flatten`` (or ``FlatSpec.from_dict``).
        device: put every tensor there; default each tensor's recorded device.

    Returns:
        An ``OrderedDict`` name -> tensor (with the recorded ``_metadata``) for
        a state_dict spec, a list of tensors for a sequence spec.  Tensors are
        contiguous and new (never views of ``vector``).  Integer tensors are
        rounded to the nearest integer, bool tensors are ``value != 0``; for a
        vector straight from ``flatten`` every tensor is bit-identical to its
        original (NaN payloads aside).

    Raises:
        TypeError / ValueError: not a tensor, not 1-D floating, or the wrong length.
    """
    torch = _torch()
    if not isinstance(spec, FlatSpec):
        raise TypeError(f"spec must be a FlatSpec, not {type(spec).__name__}.")
    if not torch.is_tensor(vector):
        raise TypeError(f"vector must be a torch tensor, not {type(vector).__name__}.")
    if not vector.is_floating_point():
        raise TypeError(f"vector must be a floating-point tensor, got {vector.dtype}.")
    if vector.dim() != 1 or vector.numel() != spec.numel:
        raise ValueError(f"vector must be 1-D of length {spec.numel}, got shape {tuple(vector.shape)}.")
    out = []
    for e in spec.entries:
        dtype = _dtype_from_name(torch, e.dtype)
        target = torch.device(device) if device is not None else torch.device(e.device)
        part = vector.detach()[e.offset : e.offset + e.numel]
        if dtype == torch.bool:
            t = part != 0
        elif dtype.is_floating_point:
            t = part.to(dtype)
        else:
            rounded = torch.round(part.to(torch.float64))
            if dtype in _unsigned(torch, 64):
                t = rounded.to(torch.int64).view(dtype)  # torch has no float -> uint64 cast
            elif dtype in _unsigned(torch, 16, 32):
                t = rounded.to(torch.int64).to(dtype)
            else:
                t = rounded.to(dtype)
        t = t.to(target).reshape(e.shape)
        if t.data_ptr() == part.data_ptr() and t.numel():
            t = t.clone()  # same dtype and device: never hand out views of the vector
        out.append(t.contiguous())
    if not spec.mapping:
        return out
    result = OrderedDict((e.name, t) for e, t in zip(spec.entries, out))
    if spec.metadata is not None:
        result._metadata = OrderedDict((key, value) for key, value in json.loads(spec.metadata))
    return result


# ---------------------------------------------------------------------------
# quantisation


def quantize(tensor, quantizer: Quantizer, *, weight: int | None = None, generator=None) -> tuple[torch.Tensor, int]:
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


def _quantize_with_noise(torch, x, quantizer: Quantizer, weight, noise):
    """The deterministic part of ``quantize``: ``noise`` is uniform in [0, 1), one per element.

    Mirrors ``hazmat.quantize.quantize`` and ``Quantizer.encode`` operation for operation.
    """
    clip = quantizer.clip
    count = _levels(clip, quantizer.step)
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
    if quantizer.weighted:
        # w q <= max_weight L < 2^bits; int64 wraps like uint64, and the cast to int32
        # truncates mod 2^32 like numpy's unsafe uint64 -> uint32 cast.
        encoded = torch.empty(ints.numel() + 1, dtype=ring, device=x.device)
        encoded[:-1] = ints.mul_(weight)
        encoded[-1] = weight
    else:
        encoded = ints.to(ring)
    return encoded, clipped


def dequantize(sum_tensor, quantizer: Quantizer, count: int):
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
    grid = 2 * quantizer.clip / _levels(quantizer.clip, quantizer.step)
    if not quantizer.weighted:
        values = _checked_float64(torch, total, count * quantizer.levels, f"{count} clients")
        return values.mul_(grid).sub_(count * quantizer.clip)
    weight = int(total[-1]) & ((1 << (8 * total.element_size())) - 1)
    if not count <= weight <= count * quantizer.max_weight:
        raise ValueError(
            f"the weight slot holds {weight}, outside [{count}, {count * quantizer.max_weight}] for {count} clients; "
            "the count is wrong or the sum is corrupted."
        )
    values = _checked_float64(torch, total[:-1], weight * quantizer.levels, f"a total weight of {weight}")
    return values.mul_(grid).sub_(weight * quantizer.clip).div_(weight), weight


def _checked_float64(torch, t, bound: int, who: str):
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


def _unsigned_to_float64(torch, t):
    """The unsigned value of each int64 bit pattern, correctly rounded to float64."""
    high = ((t >> 32) & 0xFFFFFFFF).to(torch.float64) * 4294967296.0  # exact
    return high + (t & 0xFFFFFFFF).to(torch.float64)  # one correctly rounded addition


def _check_quantizer(quantizer) -> None:
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a lepton_secagg.encoding.Quantizer, not {type(quantizer).__name__}.")


def _check_weight(quantizer: Quantizer, weight) -> None:
    if quantizer.weighted:
        if weight is None:
            raise ValueError(f"this Quantizer is weighted; pass weight= an int in 1..{quantizer.max_weight}.")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise TypeError(f"weight must be an int, not {type(weight).__name__}.")
        if not 1 <= weight <= quantizer.max_weight:
            raise ValueError(f"weight {weight} is outside 1..max_weight = {quantizer.max_weight}.")
    elif weight is not None:
        raise ValueError("this Quantizer has no weight slot; create it with max_weight= to send weights.")


def _check_float_vector(torch, tensor):
    if not torch.is_tensor(tensor):
        raise TypeError(f"values must be a torch tensor, not {type(tensor).__name__}.")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"values must be real numbers, got dtype {tensor.dtype}.")
    if tensor.dim() != 1:
        raise ValueError(f"values must be a 1-D vector, got shape {tuple(tensor.shape)}.")
    x = tensor.detach()
    if x.dtype in _unsigned(torch, 64):
        x = _unsigned_to_float64(torch, x.view(torch.int64))  # torch has no uint64 -> float cast
    elif x.dtype in _unsigned(torch, 16, 32):
        x = x.to(torch.int64)
    return x.to(torch.float64)


# ---------------------------------------------------------------------------
# ring views


def _ring_view(torch, tensor, what="the vector"):
    """``tensor`` as int32/int64 (a view, no copy); TypeError for other dtypes."""
    if tensor.dtype in (torch.int32, torch.int64):
        return tensor
    if tensor.dtype in _unsigned(torch, 32):
        return tensor.view(torch.int32)
    if tensor.dtype in _unsigned(torch, 64):
        return tensor.view(torch.int64)
    raise TypeError(
        f"{what} must be int32 or int64 (the bit patterns of uint32 / uint64 ring elements), or torch.uint32 / "
        f"torch.uint64; got {tensor.dtype}."
    )


def as_ring_numpy(tensor) -> np.ndarray:
    """The numpy uint32 / uint64 view of a CPU int32 / int64 (or uint32 / uint64) tensor; no copy.

    Writes through the view change the tensor.  TypeError for other dtypes or
    a tensor not on the CPU.
    """
    torch = _torch()
    if not torch.is_tensor(tensor):
        raise TypeError(f"expected a torch tensor, not {type(tensor).__name__}.")
    if tensor.device.type != "cpu":
        raise TypeError(f"the tensor is on {tensor.device}; move it to the CPU first (tensor.cpu()).")
    view = _ring_view(torch, tensor).detach()
    return view.numpy().view(np.uint32 if view.dtype == torch.int32 else np.uint64)


def as_ring_tensor(array: np.ndarray):
    """The int32 / int64 torch view of a numpy uint32 / uint64 array (e.g. ``Quantizer.encode`` output); no copy."""
    torch = _torch()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, not {type(array).__name__}.")
    if array.dtype == np.uint32:
        return torch.from_numpy(array.view(np.int32))
    if array.dtype == np.uint64:
        return torch.from_numpy(array.view(np.int64))
    raise TypeError(f"expected a uint32 or uint64 array, got {array.dtype}.")


# ---------------------------------------------------------------------------
# masking


def add_masks(tensor, keys, signs, suite: str = "chacha20", offset: int = 0, *, engine: str = "auto", threads=None):
    """``tensor += sign_i * PRG(keys[i])`` in place (mod 2^32 or 2^64); returns ``tensor``.

    Bit-identical to ``hazmat.masking.add_masks`` on the uint32 / uint64 view
    of the tensor: ``mask_i`` is the ``suite`` keystream of ``keys[i]`` from
    byte ``offset * itemsize``, read as little-endian words.

    Args:
        tensor: a 1-D int32 or int64 tensor (the bit pattern of uint32 / uint64
            ring elements; torch.uint32 / torch.uint64 are accepted too), on
            any device, any stride.
        keys: PRG keys, each ``prg.key_size(suite)`` bytes.
        signs: +1 or -1 for each key.
        suite: ``"chacha20"`` or ``"aes128ctr"``.
        offset: the element index of ``tensor[0]`` in the mask streams.
        engine: how the masks are computed.

            * ``"triton"``: the fused Triton ChaCha20 kernel, all keys in one
              launch on a CUDA tensor (on a CPU tensor only under
              ``TRITON_INTERPRET=1``, Triton's interpreter).  chacha20 only.
            * ``"torch"``: ChaCha20 in torch integer ops on the tensor's device
              (quarter rounds on int32 tensors holding many blocks and keys at
              once, ``CHUNK_BLOCKS`` blocks per batch).  chacha20 only.
            * ``"kernel"``: the CPU kernel (``hazmat.masking.add_masks``, C or
              numpy); zero-copy for a CPU tensor, else the tensor is copied to
              the CPU and back.
            * ``"auto"`` (default): ``"kernel"`` for CPU tensors (the C kernel
              is far faster there); for chacha20 on a CUDA tensor ``"triton"``
              when triton imports, else ``"torch"``; ``"torch"`` for chacha20
              on other devices; ``"kernel"`` for aes128ctr on other devices
              (no GPU AES, see docs/torch.md: the data makes a round trip
              through host memory).
        threads: worker threads of the CPU kernel (see ``hazmat.masking``).

    Raises:
        TypeError: not a tensor, a wrong dtype, non-bytes keys.
        ValueError: not 1-D, a wrong key size, a bad sign or offset, a range
            past the end of the stream, an unknown suite or engine, an engine
            that cannot run this suite or device (``"triton"`` without triton,
            or on a CPU tensor outside the interpreter).
    """
    torch = _torch()
    if not torch.is_tensor(tensor):
        raise TypeError(f"tensor must be a torch tensor, not {type(tensor).__name__}.")
    vector = _ring_view(torch, tensor, what="tensor")
    if vector.dim() != 1:
        raise ValueError(f"tensor must be 1-D, got shape {tuple(vector.shape)}.")
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}.")
    keys, signs = _masking.check_mask_arguments(keys, signs, suite, offset, vector.numel(), vector.element_size())
    if engine in ("torch", "triton") and suite != "chacha20":
        raise ValueError(f"engine={engine!r} implements chacha20 only; {suite} runs on the CPU kernel (engine='kernel').")
    engine = _choose_engine(engine, vector.device, suite)
    if engine == "triton":
        kernel = _triton_kernel()
        if kernel is None:
            raise ValueError("engine='triton' needs the triton package (pip install 'lepton-secagg[gpu]').")
        if vector.device.type != "cuda" and not (vector.device.type == "cpu" and kernel.interpreted()):
            raise ValueError(
                f"engine='triton' runs on CUDA tensors (or CPU tensors under TRITON_INTERPRET=1); "
                f"the tensor is on {vector.device}."
            )
    if not keys or vector.numel() == 0:
        return tensor
    with torch.no_grad():
        if engine == "kernel":
            if vector.device.type == "cpu":
                _masking.add_masks(as_ring_numpy(vector), keys, signs, suite, offset, threads)
            else:
                host = vector.cpu()
                _masking.add_masks(as_ring_numpy(host), keys, signs, suite, offset, threads)
                vector.copy_(host)
        else:
            work = vector if vector.is_contiguous() else vector.contiguous()
            if engine == "triton":
                _triton_add(torch, kernel, work, keys, signs, offset)
            else:
                _chacha20_add(torch, work, keys, signs, offset)
            if work is not vector:
                vector.copy_(work)
    return tensor


def _choose_engine(engine: str, device, suite: str) -> str:
    """The engine ``"auto"`` stands for on this device and suite; any other engine as given."""
    if engine != "auto":
        return engine
    if device.type == "cpu" or suite != "chacha20":
        return "kernel"
    return "triton" if device.type == "cuda" and _triton_kernel() is not None else "torch"


@functools.cache
def _triton_kernel():
    """The Triton kernel module, imported on first use; None where triton does not import."""
    try:
        from . import _triton_chacha20
    except ImportError:
        return None
    return _triton_chacha20


def _key_words(torch, keys, device):
    """int32 (len(keys), 8): the little-endian words of each 32-byte ChaCha20 key, on ``device``."""
    words = np.frombuffer(b"".join(keys), dtype="<u4").astype(np.uint32).view(np.int32).reshape(len(keys), 8)
    return torch.from_numpy(words).to(device)


def _triton_add(torch, kernel, vector, keys, signs, offset: int) -> None:
    """Add the signed ChaCha20 masks to a contiguous int32/int64 ``vector`` in one Triton launch."""
    device = vector.device
    sign_masks = torch.tensor([0 if s > 0 else -1 for s in signs], dtype=vector.dtype, device=device)
    key_words = _key_words(torch, keys, device)
    if device.type == "cuda":
        with torch.cuda.device(device):  # Triton launches on the current device
            kernel.add_masks(vector, key_words, sign_masks, offset)
    else:
        kernel.add_masks(vector, key_words, sign_masks, offset)


def _chacha20_add(torch, vector, keys, signs, offset: int) -> None:
    """Add the signed ChaCha20 masks to a contiguous int32/int64 ``vector`` (torch ops only)."""
    device = vector.device
    words_per_element = vector.element_size() // 4
    per_block = 16 // words_per_element  # elements per 64-byte block
    n = vector.numel()
    first_block, skip = divmod(offset, per_block)
    nblocks = -(-(skip + n) // per_block)
    budget = CHUNK_BLOCKS.get(device.type, CHUNK_BLOCKS["default"])
    blocks_per_pass = min(nblocks, budget)
    keys_per_pass = max(1, budget // blocks_per_pass)
    key_words = _key_words(torch, keys, device)
    for start in range(0, nblocks, blocks_per_pass):
        nb = min(blocks_per_pass, nblocks - start)
        # elements of this pass: stream elements [start*per_block, (start+nb)*per_block) relative to the first block
        lo = max(start * per_block, skip)
        hi = min((start + nb) * per_block, skip + n)
        for k0 in range(0, len(keys), keys_per_pass):
            k1 = min(len(keys), k0 + keys_per_pass)
            stream = _chacha20_blocks(torch, key_words[k0:k1], first_block + start, nb)
            if words_per_element == 2:
                stream = stream.view(torch.int64)  # little-endian word pairs = the uint64 element
            target = vector[lo - skip : hi - skip]
            for j in range(k1 - k0):
                part = stream[j, lo - start * per_block : hi - start * per_block]
                if signs[k0 + j] > 0:
                    target.add_(part)
                else:
                    target.sub_(part)


def _rotl_(x, r: int, tmp) -> None:
    """Rotate the 32-bit words of int32 ``x`` left by ``r``, in place.

    ``<<`` on int32 wraps (it shifts the bit pattern); ``>>`` is arithmetic,
    so the bits shifted in from the sign are masked off.
    """
    import torch

    torch.bitwise_right_shift(x, 32 - r, out=tmp)
    tmp.bitwise_and_((1 << r) - 1)
    x.bitwise_left_shift_(r)
    x.bitwise_or_(tmp)


def _quarter_rounds(a, b, c, d, tmp) -> None:
    """RFC 8439 quarter rounds on four rows at once (each row: one word of every column)."""
    a.add_(b); d.bitwise_xor_(a); _rotl_(d, 16, tmp)  # noqa: E702
    c.add_(d); b.bitwise_xor_(c); _rotl_(b, 12, tmp)  # noqa: E702
    a.add_(b); d.bitwise_xor_(a); _rotl_(d, 8, tmp)  # noqa: E702
    c.add_(d); b.bitwise_xor_(c); _rotl_(b, 7, tmp)  # noqa: E702


def _chacha20_blocks(torch, key_words, first_block: int, nb: int):
    """Keystream blocks ``first_block .. first_block + nb`` for each key: int32 (keys, nb * 16).

    ``key_words`` is int32 (keys, 8), the little-endian words of each key; the
    nonce is zero.  The state is held as (4 rows, 4 columns, keys * nb): a
    column round is one quarter round on the four rows; a diagonal round is
    one on rows 1, 2, 3 rotated left by 1, 2, 3 columns.
    """
    device = key_words.device
    g = key_words.shape[0]
    state = torch.empty((4, 4, g, nb), dtype=torch.int32, device=device)
    state[0] = torch.tensor(_CHACHA_CONSTANTS, dtype=torch.int32, device=device).view(4, 1, 1)
    state[1] = key_words[:, :4].t().unsqueeze(-1)
    state[2] = key_words[:, 4:].t().unsqueeze(-1)
    counter = torch.arange(first_block, first_block + nb, dtype=torch.int64, device=device)
    state[3, 0] = counter.to(torch.int32).view(1, nb)  # counters >= 2^31 wrap to their bit pattern
    state[3, 1:] = 0  # the all-zero nonce
    initial = state.view(4, 4, g * nb)
    x = initial.clone()
    a, b, c, d = x[0], x[1], x[2], x[3]
    tmp = torch.empty_like(a)
    for _ in range(10):
        _quarter_rounds(a, b, c, d, tmp)
        b2, c2, d2 = b.roll(-1, 0), c.roll(-2, 0), d.roll(-3, 0)
        _quarter_rounds(a, b2, c2, d2, tmp)
        b.copy_(b2.roll(1, 0))
        c.copy_(c2.roll(2, 0))
        d.copy_(d2.roll(3, 0))
    x.add_(initial)
    return x.view(16, g, nb).permute(1, 2, 0).contiguous().view(g, nb * 16)


from ._torch_seam import device_float_input as device_float_input, device_ring_input as device_ring_input  # noqa: E402  the device seam (issue 13)
