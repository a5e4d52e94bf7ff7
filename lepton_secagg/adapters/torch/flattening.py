"""``flatten`` / ``unflatten``: a ``state_dict`` (or a sequence of tensors) to one float64 vector and back.

The layout is ``lepton_secagg.arrays``' (floating tensors first, then integer
and bool tensors, carried exactly), and so is its description: ``FlatSpec``
is an ``arrays.ArraySpec`` whose entries (``TensorSpec``, an
``arrays.ArrayEntry``) also record each tensor's device, and which also
keeps the state_dict's ``_metadata``.  Neither class needs torch.
"""
from __future__ import annotations

import json
import operator
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from ...arrays import _EXACT_INT, ArrayEntry, ArraySpec
from ._lazy import _torch, _unsigned

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor, dtype as TorchDtype  # for annotations inside functions, where a local named torch hides the module

@dataclass(frozen=True)
class TensorSpec(ArrayEntry):
    """Where one tensor lives in the flat vector, and what it was: an ``arrays.ArrayEntry`` plus its device.

    ``name`` is the state_dict key (None for a sequence), ``dtype`` the torch
    dtype's name without ``torch.`` (``"float32"``, ``"int64"``, ``"bool"``:
    numpy's name for the same type wherever numpy has one; it has no
    ``"bfloat16"``), ``offset`` its first element, ``device`` its
    ``str(tensor.device)``.
    """

    device: str


@dataclass(frozen=True)
class FlatSpec(ArraySpec):
    """How to turn a flat vector back into the tensors it came from: an ``arrays.ArraySpec`` of ``TensorSpec``.

    Attributes:
        entries: one ``TensorSpec`` per tensor, in the input's order.
        mapping: True for a state_dict (``unflatten`` returns an OrderedDict),
            False for a sequence (it returns a list).
        num_float: ``vector[:num_float]`` holds the floating-point tensors; the
            rest holds integer and bool tensors (exclude them from averaging).
        numel: the vector's length.
        metadata: the state_dict's ``_metadata`` (module versions) as JSON, or None.

    ``to_dict()`` gives plain JSON types (``ArraySpec.to_dict`` plus each
    entry's ``device`` and the ``metadata``, so ``ArraySpec.from_dict`` reads
    it too); ``FlatSpec.from_dict`` validates and rebuilds.  Neither needs
    torch.  Dtype names are torch's, so they are not checked against numpy.
    """

    entries: tuple[TensorSpec, ...]
    metadata: str | None = None

    @property
    def names(self) -> tuple[str | None, ...]:
        return tuple(e.name for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        for entry, spec in zip(data["entries"], self.entries):
            entry["device"] = spec.device
        data["metadata"] = self.metadata
        return data

    @classmethod
    def _entry_from_dict(cls, e: Mapping[str, Any]) -> TensorSpec:
        # torch dtype names, kept as written (not numpy's)
        return TensorSpec(
            name=e["name"],
            shape=tuple(operator.index(s) for s in e["shape"]),
            dtype=e["dtype"],
            device=e["device"],
            offset=operator.index(e["offset"]),
        )

    @classmethod
    def _extra_from_dict(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"metadata": data.get("metadata")}

    def _validate(self) -> None:
        if self.metadata is not None and not isinstance(self.metadata, str):
            raise ValueError("FlatSpec.metadata must be a JSON string or None.")
        if not all(isinstance(e.dtype, str) and isinstance(e.device, str) for e in self.entries):
            raise ValueError("dtype and device must be strings.")
        self._validate_layout()
        if not 0 <= self.num_float <= self.numel:
            raise ValueError("numel / num_float disagree with the entries.")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(torch: ModuleType, name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown torch dtype {name!r} in the spec.")
    checked: TorchDtype = dtype
    return checked


def flatten(
    tensors: Mapping[str, torch.Tensor] | Sequence[torch.Tensor], *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, FlatSpec]:
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
    items: list[tuple[str | None, Tensor]]
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
    parts: list[Tensor] = []
    position = 0
    for name, t in floats + others:
        flat = t.detach().reshape(-1)
        if not t.is_floating_point() and t.dtype != torch.bool:
            flat = _exact_integers(torch, flat, name)
        parts.append(flat.to(device=device, dtype=torch.float64))
        offsets[id(t)] = position
        position += flat.numel()
    vector: Tensor = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=device)
    entries = tuple(
        TensorSpec(name=n, shape=tuple(t.shape), dtype=_dtype_name(t.dtype), device=str(t.device), offset=offsets[id(t)])
        for n, t in items
    )
    num_float = sum(t.numel() for _, t in floats)
    return vector, FlatSpec(entries=entries, mapping=mapping, num_float=num_float, numel=position, metadata=metadata)


def _exact_integers(torch: ModuleType, flat: torch.Tensor, name: str | None) -> torch.Tensor:
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


def _metadata_json(metadata: Mapping[str, object] | None) -> str | None:
    if not metadata:
        return None
    try:
        return json.dumps([[key, value] for key, value in metadata.items()], allow_nan=False)
    except (TypeError, ValueError, AttributeError):
        return None  # not JSON-able: dropped (torch's loaders treat missing metadata as version 1)


def unflatten(
    vector: torch.Tensor, spec: FlatSpec, *, device: torch.device | str | None = None
) -> OrderedDict[str, torch.Tensor] | list[torch.Tensor]:
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
    # a mapping spec names every entry (FlatSpec._validate)
    result = OrderedDict((cast(str, e.name), t) for e, t in zip(spec.entries, out))
    if spec.metadata is not None:
        # torch's state_dict convention: an OrderedDict carrying a _metadata attribute, which OrderedDict does not declare
        metadata = OrderedDict((key, value) for key, value in json.loads(spec.metadata))
        result._metadata = metadata  # type: ignore[attr-defined]
    return result
