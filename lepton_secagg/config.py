"""The session configuration: validated once, frozen, hashed into the session.

``Config`` fixes everything both sides must agree on before the first
message: the cohort size, the vector length and ring, the neighbourhood graph
(full, or SecAgg+'s permuted Harary graph), the Shamir threshold, the PRG
suite, the threat mode and, in active mode, every client's Ed25519 verify
key.  Its ``digest`` enters the session id, every signature and the graph
seed, so two parties with different configurations cannot complete a session.

Threshold rules (``t`` out of a closed neighbourhood of ``s`` clients, ``s =
k + 1`` with SecAgg+ or ``n`` with the full graph): one rule,
``parameters.min_sound_threshold``, whoever chose ``t``.

* always ``2 <= t <= s``;
* ``t`` must withstand the stated ``corrupt_fraction`` on the graph actually
  used, counted globally (that fraction of all ``n`` clients colludes with
  the server, wherever they sit): on the full graph ``2t > n`` and ``t > c``
  (semi-honest) or ``2t > n + c`` (active), ``c = ceil(corrupt_fraction n)``;
  on a SecAgg+ graph the hypergeometric tail bound of the finder (2^-40);
* ``dropout_fraction`` exempts nothing: it only records what the parameters
  were chosen for;
* active mode needs an explicit ``corrupt_fraction``: the threshold is only as
  good as that number.

"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field, fields

from .hazmat import ring
from .hazmat.graph import HararyGraph, complete_graph
from .hazmat.prg import SUITES
from .hazmat.sign import VERIFY_KEY_SIZE
from .parameters import find_secagg_plus_parameters, full_graph_threshold, min_sound_threshold

__all__ = ["Config", "MODES"]

MODES = ("semi-honest", "active")
_MAX_CLIENTS = 1 << 20
_MAX_LENGTH = 1 << 31
# Below this many clients the full graph is cheap, and sparse graphs the finder
# accepts have tiny neighbourhoods (e.g. k=4, t=2 at n=20): use the full graph.
_SPARSE_FROM = 65


@dataclass(frozen=True, init=False)
class Config:
    """What every party of one aggregation agrees on.

    Args:
        num_clients: n; client ids are 0..n-1.
        vector_length: m, the number of elements each client contributes.
        threshold: t, the Shamir threshold (None: the smallest majority of the neighbourhood that is also sound).
        bits: the ring Z_(2^bits), 1..64 (uint32 up to 32 bits, uint64 above).
        neighbors: k for SecAgg+ (even, < n - 1), or None for the full graph.
        prg: the mask PRG suite, "aes128ctr" or "chacha20".
        mode: "semi-honest" or "active" (signed keys and a consistency-check round).
        corrupt_fraction: the fraction of all clients assumed to collude with the
            server; the threshold must withstand it.  Required in active mode;
            None means 0 in semi-honest mode.
        dropout_fraction: the dropout rate the parameters were chosen for (set by
            ``secagg_plus``; None means the threshold was set by hand).
        identities: active mode: the 32-byte Ed25519 verify key of every client.
        session_label: bytes mixed into the digest (and so the graph), e.g. a round number.
        max_message_bytes: the largest wire message accepted (None: derived from the sizes).

    Raises:
        TypeError / ValueError: a field has the wrong type or an unsafe value.
    """

    num_clients: int
    vector_length: int
    threshold: int
    bits: int
    neighbors: int | None
    prg: str
    mode: str
    corrupt_fraction: float
    dropout_fraction: float | None
    identities: tuple[bytes, ...] | None = field(repr=False)
    session_label: bytes
    max_message_bytes: int

    # An explicit __init__ (init=False above) so that the arguments the
    # validation fills in (threshold, corrupt_fraction, max_message_bytes) may
    # be None while the fields themselves are always set.
    def __init__(
        self,
        num_clients: int,
        vector_length: int,
        threshold: int | None = None,
        bits: int = 32,
        neighbors: int | None = None,
        prg: str = "aes128ctr",
        mode: str = "semi-honest",
        corrupt_fraction: float | None = None,
        dropout_fraction: float | None = None,
        identities: tuple[bytes, ...] | None = None,
        session_label: bytes = b"",
        max_message_bytes: int | None = None,
    ) -> None:
        _set = object.__setattr__
        _int(num_clients, "num_clients", 2, _MAX_CLIENTS)
        _int(vector_length, "vector_length", 1, _MAX_LENGTH)
        _int(bits, "bits", 1, ring.MAX_BITS)
        if prg not in SUITES:
            raise ValueError(f"prg must be one of {sorted(SUITES)}, got {prg!r}.")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if corrupt_fraction is None:
            if mode == "active":
                raise ValueError(
                    "active mode needs corrupt_fraction: the fraction of clients that may collude with the "
                    "server (e.g. 0.1); the threshold is chosen to withstand it."
                )
            corrupt_fraction = 0.0
        _fraction(corrupt_fraction, "corrupt_fraction")
        if dropout_fraction is not None:
            _fraction(dropout_fraction, "dropout_fraction")
            dropout_fraction = float(dropout_fraction)
        n = num_clients
        if neighbors is not None:
            _int(neighbors, "neighbors", 2, n - 2)
            if neighbors % 2:
                raise ValueError(f"neighbors (the Harary graph degree k) must be even, got {neighbors}.")
        for name, value in (
            ("num_clients", num_clients), ("vector_length", vector_length), ("bits", bits), ("neighbors", neighbors),
            ("prg", prg), ("mode", mode), ("corrupt_fraction", float(corrupt_fraction)),  # one digest for 0 and 0.0
            ("dropout_fraction", dropout_fraction),
        ):
            _set(self, name, value)
        s = self.neighborhood_size
        sound = self.min_threshold
        if sound > s:
            raise ValueError(
                f"no threshold is sound for {self._graph_name()} in {self.mode} mode with corrupt_fraction = "
                f"{self.corrupt_fraction}: it would need t >= {sound} of a neighbourhood of {s}; "
                f"use more neighbours (Config.secagg_plus finds them) or the full graph."
            )
        if threshold is None:
            threshold = max(sound, s // 2 + 1)
        _int(threshold, "threshold", 2, s)
        if threshold < sound:
            raise ValueError(
                f"threshold = {threshold} does not withstand corrupt_fraction = {self.corrupt_fraction} "
                f"for {self._graph_name()} in {self.mode} mode; the smallest sound threshold is {sound}."
            )
        _set(self, "threshold", threshold)
        if identities is not None:
            ids = tuple(identities)
            if len(ids) != n or any(not isinstance(k, bytes) or len(k) != VERIFY_KEY_SIZE for k in ids):
                raise ValueError(f"identities must hold {n} verify keys of {VERIFY_KEY_SIZE} bytes each.")
            identities = ids
        _set(self, "identities", identities)
        if not isinstance(session_label, bytes) or len(session_label) > 256:
            raise ValueError("session_label must be bytes, at most 256 of them.")
        _set(self, "session_label", session_label)
        if max_message_bytes is None:
            max_message_bytes = self._default_message_limit()
        _int(max_message_bytes, "max_message_bytes", 1024, 1 << 40)
        _set(self, "max_message_bytes", max_message_bytes)

    @classmethod
    def secagg_plus(
        cls,
        num_clients: int,
        vector_length: int,
        corrupt_fraction: float,
        dropout_fraction: float,
        mode: str = "semi-honest",
        *,
        bits: int = 32,
        prg: str = "aes128ctr",
        identities: tuple[bytes, ...] | None = None,
        session_label: bytes = b"",
        max_message_bytes: int | None = None,
    ) -> "Config":
        """SecAgg+ parameters (k, t) from Bell et al. 2020 via Google's finder.

        Statistical security 2^-40, failure probability 2^-20; ``"active"``
        uses the semi-malicious rule.  Cohorts under 65 clients, and those
        where no sparse graph qualifies, use the full graph with a safe
        threshold (``parameters.full_graph_threshold``).
        """
        found: tuple[int, int] | None = None
        if num_clients >= _SPARSE_FROM:
            found = find_secagg_plus_parameters(num_clients, corrupt_fraction, dropout_fraction, mode)
        if found is None:
            k: int | None = None
            t = full_graph_threshold(num_clients, corrupt_fraction, dropout_fraction, mode)
        else:
            k, t = found
        return cls(
            num_clients=num_clients,
            vector_length=vector_length,
            threshold=t,
            neighbors=k,
            mode=mode,
            corrupt_fraction=corrupt_fraction,
            dropout_fraction=dropout_fraction,
            bits=bits,
            prg=prg,
            identities=identities,
            session_label=session_label,
            max_message_bytes=max_message_bytes,
        )

    @property
    def dtype(self) -> ring.RingDtype:
        """The numpy dtype of vectors: uint32 or uint64."""
        return ring.dtype_for(self.bits)

    @property
    def neighborhood_size(self) -> int:
        """s: the closed neighbourhood of a client (k + 1, or n for the full graph)."""
        return self.num_clients if self.neighbors is None else self.neighbors + 1

    @property
    def digest(self) -> bytes:
        """SHA-256 of a canonical encoding of every field."""
        cached: bytes | None = self.__dict__.get("_digest")
        if cached is None:
            h = hashlib.sha256(b"lepton-secagg/v1/config")
            for f in fields(self):
                value = getattr(self, f.name)
                h.update(_canonical(f.name) + _canonical(value))
            cached = h.digest()
            object.__setattr__(self, "_digest", cached)
        return cached

    @property
    def graph(self) -> HararyGraph:
        """The neighbourhood graph; its permutation seed is derived from ``digest``."""
        cached: HararyGraph | None = self.__dict__.get("_graph")
        if cached is None:
            if self.neighbors is None:
                cached = complete_graph(self.num_clients)
            else:
                seed = hashlib.sha256(b"lepton-secagg/v1/graph-seed" + self.digest).digest()
                cached = HararyGraph(self.num_clients, self.neighbors, seed)
            object.__setattr__(self, "_graph", cached)
        return cached

    @property
    def min_threshold(self) -> int:
        """The smallest threshold sound for this graph, mode and corrupt fraction (may exceed the neighbourhood)."""
        return min_sound_threshold(self.num_clients, self.neighbors, self.corrupt_fraction, self.mode)

    def _graph_name(self) -> str:
        return f"the full graph of {self.num_clients}" if self.neighbors is None else (
            f"the SecAgg+ graph n = {self.num_clients}, k = {self.neighbors}"
        )

    def _default_message_limit(self) -> int:
        per_peer = 256  # generous bound on one peer's entry in any list message
        return self.vector_length * self.dtype.itemsize + per_peer * (self.num_clients + self.neighborhood_size) + 4096


def _int(value: object, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}.")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, got {value}.")


def _fraction(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, not {type(value).__name__}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")


def _canonical(value: object) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"B" + bytes([value])
    if isinstance(value, int):
        return b"I" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"F" + struct.pack(">d", value)
    if isinstance(value, str):
        value = value.encode()
        return b"S" + struct.pack(">I", len(value)) + value
    if isinstance(value, bytes):
        return b"Y" + struct.pack(">I", len(value)) + value
    if isinstance(value, tuple):
        return b"T" + struct.pack(">I", len(value)) + b"".join(_canonical(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} canonically.")
