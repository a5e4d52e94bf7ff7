"""Models as plain numpy data: canonical hashing, wire conversion, torch conversion.

``ModelState`` is an ordered list of named tensors (numpy arrays) with the
dtype names of ``adapters.torch.FlatSpec`` (``"float32"``, ``"int64"``...).
The server keeps models in this form and never needs torch; clients convert
to and from a torch ``state_dict`` (torch is imported lazily).

* ``digest``: SHA-256 of a canonical serialisation (no pickle): a versioned
  label, then for each tensor in order its name, dtype name, shape and
  little-endian bytes, every field length-prefixed.  The same tensors in the
  same order always give the same digest, on any platform.
* ``float_vector`` / ``with_float_vector``: the floating-point tensors as one
  float64 vector (in order, the same layout as ``adapters.torch.flatten``'s
  ``vector[:spec.num_float]``); integer and bool tensors (e.g. BatchNorm's
  ``num_batches_tracked``) are not averaged and keep the global value.
* ``to_blobs`` / ``from_blobs``: the ``TensorBlob`` tuple of ``ModelReply``.

Built-in architectures (``build_model``): ``"mlp:30,16,2"`` (Linear + ReLU
layers) and ``"logreg:30,2"``, each optionally preceded by a ``Standardize``
layer (``"std+mlp:30,16,2"``) whose ``mean`` and ``std`` buffers are part of
the state_dict, so a standardisation learnt from a secure sum travels with
the model.
"""
from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, Union

import numpy as np
import numpy.typing as npt

from ..messages import TensorBlob
from ..wire import TENSOR_DTYPES

if TYPE_CHECKING:  # torch stays a lazy import at run time
    import torch

__all__ = ["ModelState", "ModelLike", "as_model_state", "build_model", "canonical_bytes"]

_LABEL = b"lepton-secagg/v1/fl-model-state"
_FLOAT = ("float16", "float32", "float64")

#: A model as callers hand it over: a torch module, a state_dict (name -> tensor or array), or a ModelState.
ModelLike = Union["torch.nn.Module", Mapping[str, "torch.Tensor | npt.ArrayLike"], "ModelState"]


def _is_tensor(value: object) -> TypeGuard[torch.Tensor]:
    """Whether ``value`` is a torch tensor, by duck typing (torch need not be imported)."""
    return hasattr(value, "detach")


def _le(dtype_name: str) -> np.dtype[Any]:
    return np.dtype(TENSOR_DTYPES[dtype_name])


@dataclass(frozen=True)
class ModelState:
    """Named tensors in order: ``entries`` is a tuple of ``(name, numpy array)``."""

    entries: tuple[tuple[str, npt.NDArray[Any]], ...]

    def __post_init__(self) -> None:
        names: set[str] = set()
        for name, arr in self.entries:
            if not isinstance(name, str) or not name or name in names:
                raise ValueError(f"tensor names must be unique non-empty strings, got {name!r}.")
            names.add(name)
            if not isinstance(arr, np.ndarray):
                raise TypeError(f"tensor {name!r} must be a numpy array.")
            if self.dtype_name(arr) not in TENSOR_DTYPES:
                raise TypeError(f"tensor {name!r} has dtype {arr.dtype}; supported: {sorted(TENSOR_DTYPES)}.")

    @staticmethod
    def dtype_name(arr: npt.NDArray[Any]) -> str:
        return "bool" if arr.dtype == np.bool_ else arr.dtype.name

    # --- conversions --------------------------------------------------------------

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor | npt.ArrayLike]) -> "ModelState":
        """From a torch ``state_dict`` (or any mapping name -> tensor / array)."""
        entries: list[tuple[str, npt.NDArray[Any]]] = []
        for name, t in state_dict.items():
            if _is_tensor(t):
                if str(t.dtype) == "torch.bfloat16":
                    raise TypeError(f"tensor {name!r} is bfloat16, which numpy (and this wire format) cannot hold.")
                arr = t.detach().cpu().numpy()
            else:
                arr = np.asarray(t)
            entries.append((name, np.array(arr, copy=True)))
        return cls(tuple(entries))

    def to_state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """A torch ``state_dict`` (an OrderedDict of new CPU tensors)."""
        import torch

        return OrderedDict((name, torch.from_numpy(np.array(arr, copy=True))) for name, arr in self.entries)

    def to_blobs(self) -> tuple[TensorBlob, ...]:
        out: list[TensorBlob] = []
        for name, arr in self.entries:
            dt = self.dtype_name(arr)
            out.append(TensorBlob(name, dt, tuple(arr.shape), np.ascontiguousarray(arr, dtype=_le(dt)).tobytes()))
        return tuple(out)

    @classmethod
    def from_blobs(cls, blobs: Iterable[TensorBlob]) -> "ModelState":
        entries: list[tuple[str, npt.NDArray[Any]]] = []
        for b in blobs:
            arr = np.frombuffer(b.data, dtype=_le(b.dtype)).reshape(b.shape)
            entries.append((b.name, arr.astype(arr.dtype.newbyteorder("="), copy=True)))
        return cls(tuple(entries))

    # --- identity -----------------------------------------------------------------

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(canonical_bytes(self)).digest()

    @property
    def structure(self) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
        """``(name, dtype, shape)`` of every tensor: what two versions of one model share."""
        return tuple((n, self.dtype_name(a), tuple(a.shape)) for n, a in self.entries)

    # --- the averaged part ----------------------------------------------------------

    @property
    def num_float(self) -> int:
        return sum(a.size for _, a in self.entries if self.dtype_name(a) in _FLOAT)

    def float_vector(self) -> npt.NDArray[np.float64]:
        parts = [a.reshape(-1).astype(np.float64) for _, a in self.entries if self.dtype_name(a) in _FLOAT]
        return np.concatenate(parts) if parts else np.zeros(0)

    def with_float_vector(self, vector: npt.ArrayLike) -> "ModelState":
        """The same model with its floating-point tensors replaced by ``vector`` (cast to each dtype)."""
        values = np.asarray(vector, dtype=np.float64)
        if values.shape != (self.num_float,):
            raise ValueError(f"expected a float vector of length {self.num_float}, got shape {values.shape}.")
        pos, entries = 0, []
        for name, arr in self.entries:
            if self.dtype_name(arr) in _FLOAT:
                part = values[pos : pos + arr.size].reshape(arr.shape).astype(arr.dtype)
                pos += arr.size
                entries.append((name, part))
            else:
                entries.append((name, arr.copy()))
        return ModelState(tuple(entries))


def as_model_state(model: ModelLike) -> ModelState:
    """``model`` as a ``ModelState`` (a torch module's or a mapping's tensors copied)."""
    if isinstance(model, ModelState):
        return model
    return ModelState.from_state_dict(model if isinstance(model, Mapping) else model.state_dict())


def canonical_bytes(state: ModelState) -> bytes:
    """The canonical serialisation hashed into ``ModelState.digest``."""
    out = [_LABEL, struct.pack(">I", len(state.entries))]
    for name, arr in state.entries:
        dt = ModelState.dtype_name(arr)
        raw_name, raw_dt = name.encode("utf-8"), dt.encode()
        out += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_dt)), raw_dt, struct.pack(">I", arr.ndim)]
        out += [struct.pack(">Q", d) for d in arr.shape]
        data = np.ascontiguousarray(arr, dtype=_le(dt)).tobytes()
        out += [struct.pack(">Q", len(data)), data]
    return b"".join(out)


# --- built-in architectures ---------------------------------------------------------


def build_model(architecture: str) -> torch.nn.Sequential:
    """A fresh torch module for a built-in architecture string.

    ``"mlp:30,16,2"``: Linear(30,16), ReLU, Linear(16,2).  ``"logreg:30,2"``:
    Linear(30,2).  A ``"std+"`` prefix adds a first ``Standardize(30)`` layer
    (buffers ``0.mean`` and ``0.std``).

    Raises:
        ValueError: an unknown architecture (pass your own module to ``Client.load_model(model=...)``).
    """
    import torch
    from torch import nn

    class Standardize(nn.Module):
        """(x - mean) / std with the statistics as buffers (part of the state_dict)."""

        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self, features: int):
            super().__init__()
            self.register_buffer("mean", torch.zeros(features))
            self.register_buffer("std", torch.ones(features))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.mean) / self.std

    arch = architecture
    standardize = arch.startswith("std+")
    if standardize:
        arch = arch[4:]
    kind, _, sizes = arch.partition(":")
    try:
        dims = [int(s) for s in sizes.split(",")]
    except ValueError:
        dims = []
    if kind not in ("mlp", "logreg") or len(dims) < 2 or (kind == "logreg" and len(dims) != 2) or min(dims) < 1:
        raise ValueError(
            f"unknown architecture {architecture!r}; built-in ones are 'mlp:IN,HIDDEN...,OUT' and 'logreg:IN,OUT' "
            "(optionally prefixed 'std+'); for another model pass model= to load_model."
        )
    layers: list[nn.Module] = [Standardize(dims[0])] if standardize else []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
