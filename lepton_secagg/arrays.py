"""numpy arrays to ring vectors and back: the array-level API.

Frameworks hand over a list of numpy arrays (Flower's ``NDArrays``) or a
mapping name -> array (a torch ``state_dict`` as numpy).  This module is the
numpy counterpart of ``lepton_secagg.adapters.torch``'s ``flatten`` /
``unflatten`` and derives the ``Quantizer`` and ``Config`` that fit them, so
``vector_length`` and ``num_clients`` never have to be kept in step by hand.

* ``flatten(arrays) -> (vector, spec)``: one 1-D float64 vector; floating
  arrays first (``vector[:spec.num_float]``), integer and bool arrays after,
  carried exactly (the torch adapter's layout, so a torch ``FlatSpec.to_dict()``
  reads as an ``ArraySpec``).
* ``unflatten(vector, spec)``: the arrays back, in their dtypes and shapes.
* ``ArraySpec``: names, shapes, dtypes, offsets; ``to_json`` / ``from_json``.
* ``plan(arrays or spec, num_clients, clip, ...) -> ArrayPlan``: the matching
  ``Quantizer`` and ``Config`` (ring width from a target precision, or given),
  with ``encode(arrays)`` for each client and ``decode(sum, count)`` for the
  result.
"""
from __future__ import annotations

import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .config import Config
from .hazmat.quantize import DEFAULT_RANGE, Quantizer, bits_for_precision

if TYPE_CHECKING:  # typing.Self is 3.11+; annotations are not evaluated at run time
    from typing import Self

__all__ = ["ArrayEntry", "ArraySpec", "ArrayPlan", "flatten", "unflatten", "plan", "GRAPHS"]

Arrays = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]

#: ``plan``'s graph choices: the full graph, or SecAgg+'s sparse graph with (k, t) from the finder.
GRAPHS = ("full", "secagg_plus")

_FORMAT_VERSION = 1  # also the torch adapter's FlatSpec version: the two dict formats agree
_EXACT_INT = 1 << 53  # float64 holds every integer of magnitude <= 2^53


@dataclass(frozen=True)
class ArrayEntry:
    """Where one array lives in the flat vector: name (None in a list), shape, numpy dtype name, first element."""

    name: str | None
    shape: tuple[int, ...]
    dtype: str
    offset: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ArraySpec:
    """How to turn a flat vector back into the arrays it came from.

    Attributes:
        entries: one ``ArrayEntry`` per array, in the input's order.
        mapping: True for a mapping (``unflatten`` returns a dict), False for a list.
        num_float: ``vector[:num_float]`` holds the floating-point arrays.
        numel: the vector's length.
    """

    entries: tuple[ArrayEntry, ...]
    mapping: bool
    num_float: int
    numel: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (the torch adapter's ``FlatSpec.to_dict`` format, without devices)."""
        return {
            "version": _FORMAT_VERSION,
            "mapping": self.mapping,
            "num_float": self.num_float,
            "numel": self.numel,
            "entries": [{"name": e.name, "shape": list(e.shape), "dtype": e.dtype, "offset": e.offset} for e in self.entries],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a spec from ``to_dict()`` (or a torch ``FlatSpec.to_dict()``); ValueError if it is inconsistent."""
        name = cls.__name__
        try:
            if data["version"] != _FORMAT_VERSION:
                raise ValueError(f"unsupported {name} version {data['version']!r}; this library reads {_FORMAT_VERSION}.")
            entries = tuple(cls._entry_from_dict(e) for e in data["entries"])
            spec = cls(entries, data["mapping"], operator.index(data["num_float"]), operator.index(data["numel"]),
                       **cls._extra_from_dict(data))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not {'an' if name[0] in 'AEIOU' else 'a'} {name} dict: missing or mistyped {exc}") from None
        spec._validate()
        return spec

    @classmethod
    def _entry_from_dict(cls, e: Mapping[str, Any]) -> ArrayEntry:
        """One entry of ``to_dict()['entries']`` (a subclass adds its own fields)."""
        return ArrayEntry(
            name=e["name"],
            shape=tuple(operator.index(s) for s in e["shape"]),
            dtype=_dtype_name(e["dtype"]),
            offset=operator.index(e["offset"]),
        )

    @classmethod
    def _extra_from_dict(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor arguments a subclass adds to the four above (none here)."""
        return {}

    @classmethod
    def from_json(cls, text: str | bytes) -> ArraySpec:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"an ArraySpec must be JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("an ArraySpec must be a JSON object.")
        return cls.from_dict(data)

    def _validate(self) -> None:
        self._validate_layout()
        floats = sum(e.numel for e in self.entries if np.dtype(e.dtype).kind == "f")
        if self.num_float != floats:
            raise ValueError("numel / num_float disagree with the entries.")

    def _validate_layout(self) -> None:
        """The checks that need no dtype (shared with the torch adapter's ``FlatSpec``): names, shapes, tiling."""
        if not isinstance(self.mapping, bool):
            raise ValueError(f"{type(self).__name__}.mapping must be a bool.")
        spans = []
        for e in self.entries:
            if self.mapping != isinstance(e.name, str) or (not self.mapping and e.name is not None):
                raise ValueError("a mapping spec needs a str name for every entry, a list spec none.")
            if any(s < 0 for s in e.shape) or e.offset < 0:
                raise ValueError(f"negative shape or offset in {e}.")
            spans.append((e.offset, e.offset + e.numel))
        position = 0
        for start, stop in sorted(spans):
            if start != position:
                raise ValueError("the entries do not tile the vector.")
            position = stop
        if position != self.numel:
            raise ValueError("numel / num_float disagree with the entries.")


def _dtype_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError("dtype")
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise ValueError(f"unknown numpy dtype {name!r} in the spec.") from None
    if dtype.kind not in "fiub":
        raise ValueError(f"dtype {name!r} in the spec is not a real number or bool type.")
    return dtype.name


def flatten(arrays: Arrays) -> tuple[np.ndarray, ArraySpec]:
    """Concatenate a list (or a mapping name -> array) of numpy arrays into one 1-D float64 vector.

    Returns:
        ``(vector, spec)``: the floating arrays first (``vector[:spec.num_float]``,
        in input order), then the integer and bool arrays.  float16/32/64 values
        and integers of magnitude <= 2^53 are exact in float64.

    Raises:
        TypeError: not a list or mapping of real numpy arrays, or a key that is not a str.
        ValueError: an integer beyond +-2^53 (not exact in float64).
    """
    if isinstance(arrays, Mapping):
        items: list[tuple[str | None, Any]] = list(arrays.items())
        for name, _ in items:
            if not isinstance(name, str):
                raise TypeError(f"mapping keys must be str, got {type(name).__name__}.")
        mapping = True
    elif isinstance(arrays, Sequence) and not isinstance(arrays, (str, bytes)):
        items = [(None, a) for a in arrays]
        mapping = False
    else:
        raise TypeError(f"flatten takes a list of numpy arrays or a mapping name -> array, not {type(arrays).__name__}.")
    checked = []
    for index, (name, a) in enumerate(items):
        where = repr(name) if name is not None else f"#{index}"
        if not isinstance(a, (np.ndarray, np.generic)):
            raise TypeError(f"array {where} is a {type(a).__name__}, not a numpy array.")
        a = np.asarray(a)
        if a.dtype.kind not in "fiub":
            raise TypeError(f"array {where} has dtype {a.dtype}; only real numbers and bool are supported.")
        if a.dtype.kind in "iu" and a.size and (int(a.max()) > _EXACT_INT or int(a.min()) < -_EXACT_INT):
            raise ValueError(f"integer array {where} has values beyond 2^53, which float64 cannot carry exactly.")
        checked.append((name, a))
    ordered = [p for p in checked if p[1].dtype.kind == "f"] + [p for p in checked if p[1].dtype.kind != "f"]
    offsets: dict[int, int] = {}
    position = 0
    for _, a in ordered:
        offsets[id(a)] = position
        position += a.size
    vector = np.concatenate([a.reshape(-1).astype(np.float64) for _, a in ordered]) if ordered else np.zeros(0)
    entries = tuple(ArrayEntry(n, tuple(a.shape), a.dtype.name, offsets[id(a)]) for n, a in checked)
    num_float = sum(a.size for _, a in checked if a.dtype.kind == "f")
    return vector, ArraySpec(entries, mapping, num_float, position)


def unflatten(vector: np.ndarray, spec: ArraySpec) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Rebuild the arrays of ``spec`` from a flat vector (the inverse of ``flatten``).

    Integer arrays are rounded to the nearest integer, bool arrays are
    ``value != 0``; arrays are new (never views of ``vector``).

    Raises:
        TypeError: ``spec`` is not an ArraySpec, or ``vector`` is not a real array.
        ValueError: ``vector`` is not 1-D of length ``spec.numel``.
    """
    if not isinstance(spec, ArraySpec):
        raise TypeError(f"spec must be an ArraySpec, not {type(spec).__name__}.")
    flat = np.asarray(vector)
    if flat.dtype.kind not in "fiu":
        raise TypeError(f"vector must hold real numbers, got dtype {flat.dtype}.")
    if flat.shape != (spec.numel,):
        raise ValueError(f"vector must be 1-D of length {spec.numel} (spec.numel), got shape {flat.shape}.")
    out = []
    for e in spec.entries:
        part = flat[e.offset : e.offset + e.numel].astype(np.float64)
        dtype = np.dtype(e.dtype)
        if dtype.kind == "b":
            a = part != 0
        elif dtype.kind == "f":
            a = part.astype(dtype)
        else:
            a = np.rint(part).astype(dtype)
        out.append(a.reshape(e.shape))
    if spec.mapping:
        return {str(e.name): a for e, a in zip(spec.entries, out)}
    return out


@dataclass(frozen=True)
class ArrayPlan:
    """A matching ``spec``, ``quantizer`` and ``config`` for securely summing arrays (made by ``plan``).

    ``config.vector_length`` is ``quantizer.encoded_length(spec.numel)`` and
    ``config.bits`` is ``quantizer.bits``; both count ``config.num_clients``.
    """

    spec: ArraySpec
    quantizer: Quantizer
    config: Config

    def encode(self, arrays: Arrays, *, weight: int | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """One client's ring vector (``Client.set_input``'s input) from arrays shaped as ``spec``.

        Raises:
            ValueError: the arrays do not match the spec (names, shapes, dtypes),
                or a weight problem (see ``Quantizer.encode``).
        """
        vector, spec = flatten(arrays)
        if spec != self.spec:
            raise ValueError(f"the arrays do not match the plan's spec: {_difference(spec, self.spec)}.")
        encoded, _ = self.quantizer.encode(vector, weight=weight, rng=rng)
        return encoded

    def decode(self, total: np.ndarray, count: int) -> list[np.ndarray] | dict[str, np.ndarray]:
        """The mean of ``count`` clients' arrays from their ring sum (weighted mean for a weighted plan).

        The weighted total weight is ``quantizer.decode(total, count)[1]``.
        """
        decoded = self.quantizer.decode(total, count)
        mean = decoded[0] if isinstance(decoded, tuple) else decoded / count  # a tuple when weighted
        return unflatten(mean, self.spec)


def _difference(got: ArraySpec, want: ArraySpec) -> str:
    if len(got.entries) != len(want.entries):
        return f"{len(got.entries)} arrays, the plan has {len(want.entries)}"
    for index, (g, w) in enumerate(zip(got.entries, want.entries)):
        if g != w:
            where = repr(w.name) if w.name is not None else f"#{index}"
            return f"array {where} is {g.shape} {g.dtype} (named {g.name!r}), the plan has {w.shape} {w.dtype}"
    return "a list where the plan has a mapping, or the reverse"


def plan(
    arrays: Arrays | ArraySpec,
    num_clients: int,
    clip: float,
    *,
    bits: int | None = None,
    precision: float | None = None,
    max_weight: int | None = None,
    graph: str = "full",
    threshold: int | None = None,
    corrupt_fraction: float | None = None,
    dropout_fraction: float | None = None,
    mode: str = "semi-honest",
    **config_fields: Any,
) -> ArrayPlan:
    """The ``Quantizer`` and ``Config`` for ``num_clients`` clients summing arrays shaped like ``arrays``.

    Args:
        arrays: example arrays (a list or a mapping; values are not used) or their ``ArraySpec``.
        num_clients: n, the cohort size.
        clip: values are clipped to [-clip, clip].
        bits: the ring width; or None to derive it from ``precision``.
        precision: the coarsest grid step acceptable (default ``2 * clip /
            DEFAULT_RANGE``, Flower's step); the ring is the smallest whose
            finest step meets it with no possible wrap (``bits_for_precision``).
            Give ``bits`` or ``precision``, not both.
        max_weight: None for a plain mean; else the largest integer weight
            (e.g. examples per client) of a weighted mean.
        graph: ``"full"`` (threshold by hand or the sound default) or
            ``"secagg_plus"`` ((k, t) from ``corrupt_fraction`` and
            ``dropout_fraction``, both required).
        threshold, corrupt_fraction, dropout_fraction, mode, config_fields:
            passed on to ``Config`` (e.g. ``prg``, ``identities``, ``session_label``).

    Raises:
        TypeError / ValueError: bad arguments, naming the field and the allowed values.
    """
    if isinstance(arrays, ArraySpec):
        spec = arrays
    else:
        _, spec = flatten(arrays)
    if spec.numel == 0:
        raise ValueError("arrays: nothing to aggregate (no elements).")
    if bits is not None and precision is not None:
        raise ValueError("give bits or precision, not both.")
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}.")
    if bits is None:
        target = precision if precision is not None else 2 * clip / DEFAULT_RANGE
        bits = bits_for_precision(num_clients, clip, target, max_weight)
    quantizer = Quantizer(clip=clip, bits=bits, num_clients=num_clients, max_weight=max_weight)
    length = quantizer.encoded_length(spec.numel)
    if graph == "secagg_plus":
        if corrupt_fraction is None or dropout_fraction is None or threshold is not None:
            raise ValueError("graph='secagg_plus' needs corrupt_fraction and dropout_fraction, and picks the threshold itself.")
        config = Config.secagg_plus(num_clients, length, corrupt_fraction, dropout_fraction, mode, bits=bits, **config_fields)
    else:
        config = Config(
            num_clients=num_clients,
            vector_length=length,
            threshold=threshold,
            bits=bits,
            mode=mode,
            corrupt_fraction=corrupt_fraction,
            dropout_fraction=dropout_fraction,
            **config_fields,
        )
    return ArrayPlan(spec, quantizer, config)
