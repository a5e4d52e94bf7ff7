"""The seam through which an input that lives on a device (a GPU tensor) joins a session.

The core never sees a tensor.  ``Client.set_input`` takes, besides a numpy
vector, any object with the ``DeviceInput`` shape; an adapter
(``lepton_secagg.adapters.torch``: ``device_ring_input``,
``device_float_input``) provides it.  The session asks it for two things:

1. ``bind(length, bits, suite, rng)``, once, in ``set_input``: check that the
   input fits the session (raise TypeError / ValueError naming what is
   wrong), draw from ``rng`` (the client's one source of secrets) whatever
   secret randomness the input needs, e.g. the key of the stochastic-rounding
   stream, and return a ``BoundDeviceInput``;
2. ``masked(keys, signs)``, in the masked-input round: add ``sign_i *
   PRG(keys[i])`` (the session's ``suite``, offset 0) and reduce mod
   2^bits where the data lives, then copy the result to host memory once, as
   the fresh numpy ``dtype_for(bits)`` array the wire sends.

The masked vector must be bit-identical to what a numpy client with the same
ring input (or the same float input and rng) would send, so one session can
mix device and host clients under one configuration.  ``unmasked()`` gives
the unmasked ring vector on the host, for ``Client.export_state``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .hazmat.ring import dtype_for
from .hazmat.rng import Rng

__all__ = ["DeviceInput", "BoundDeviceInput", "check_host_vector"]


class BoundDeviceInput(Protocol):
    """A device input checked against one session (what ``DeviceInput.bind`` returns)."""

    def masked(self, keys: Sequence[bytes], signs: Sequence[int]) -> tuple[np.ndarray, int | None]:
        """``(masked ring vector on the host, clipped count or None)``; ValueError for unencodable values (NaN)."""
        ...

    def unmasked(self) -> np.ndarray:
        """The ring vector ``masked`` masks, on the host (the same rounding, so a restored client sends the same)."""
        ...


@runtime_checkable
class DeviceInput(Protocol):
    """An update held outside host memory that quantises and masks itself where it lives."""

    def bind(self, length: int, bits: int, suite: str, rng: Rng) -> BoundDeviceInput:
        """Check the input against the session and draw its secrets from ``rng``; TypeError / ValueError if it does not fit."""
        ...


def check_host_vector(vector: object, length: int, bits: int, who: str) -> np.ndarray:
    """``vector`` if it is what a device input must hand back (a 1-D ``dtype_for(bits)`` array of ``length``).

    Only the type and shape are checked here (a pass over the values would
    cost as much as the copy itself); ``wire`` refuses elements >= 2^bits.

    Raises:
        TypeError: ``who`` returned something else (a bug in the adapter).
    """
    dtype = dtype_for(bits)
    if not isinstance(vector, np.ndarray) or vector.dtype != dtype or vector.shape != (length,):
        got = f"{vector.dtype} {vector.shape}" if isinstance(vector, np.ndarray) else type(vector).__name__
        raise TypeError(f"{who} must return a 1-D {dtype} numpy array of length {length}, got {got}.")
    return vector
