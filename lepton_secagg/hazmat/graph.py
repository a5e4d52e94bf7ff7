"""The SecAgg+ communication graph: a Harary graph with seed-permuted labels.

The Harary graph H(n, k), k even, puts n nodes on a ring and links each ring
position to the k/2 positions before it and the k/2 after it; it is
k-regular and k-connected.  SecAgg+ (Bell et al., CCS 2020) relabels its nodes
with a random permutation so that the server cannot choose who neighbours
whom.  The layout follows google/federated-compute
``fcp/secagg/server/secret_sharing_harary_graph.{h,cc}``: only the
permutation (ring position -> node) and its inverse (node -> ring position)
are stored, so adjacency is O(1) and a neighbourhood O(k); like fcp, each
node's neighbourhood includes the node itself (the self-edge: a client keeps
one Shamir share of its own secrets).

Unlike fcp, where the server draws the permutation, ours is a deterministic
function of a public 32-byte seed so that every client can recompute the
graph and check what it is told.  The derivation (version 1) is:

1. ``key = SHA-256(b"lepton-secagg/v1/graph-permutation" || seed)[:16]``;
2. the stream is AES-128 in counter mode under ``key``, counter block a
   128-bit big-endian integer starting at 0 (IV = 0^16), i.e.
   ``hazmat.prg.keystream("aes128ctr", key, ...)``; it is read as consecutive
   32-bit little-endian words;
3. ``perm = [0, 1, ..., n - 1]``; for ``i = n - 1`` down to ``1``: draw
   ``j`` uniform in ``[0, i]`` by rejection (take the next word ``w``,
   ``j = w & (2^bitlen(i) - 1)``, retry while ``j > i``), then swap
   ``perm[i]`` and ``perm[j]`` (Fisher-Yates);
4. ``perm[p]`` is the node at ring position ``p``.

The rejection sampling makes every permutation exactly equally likely given
a uniform stream.
"""
from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from typing import Protocol

import numpy as np
from Crypto.Cipher import AES

__all__ = ["HararyGraph", "complete_graph", "derive_permutation", "PERMUTATION_LABEL"]

#: domain-separation label of the permutation key derivation
PERMUTATION_LABEL = b"lepton-secagg/v1/graph-permutation"

_SEED_SIZE = 32
_MAX_NODES = 1 << 31  # node ids fit in a signed 32-bit int


class _Stream(Protocol):
    def encrypt(self, plaintext: bytes) -> bytes: ...


def _check_seed(seed: object) -> bytes:
    if not isinstance(seed, (bytes, bytearray)):
        raise TypeError(f"the graph seed must be bytes, not {type(seed).__name__}.")
    if len(seed) != _SEED_SIZE:
        raise ValueError(f"the graph seed must be {_SEED_SIZE} bytes, got {len(seed)}.")
    return bytes(seed)


def _check_num_nodes(num_nodes: object) -> int:
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int):
        raise TypeError(f"num_nodes must be an int, not {type(num_nodes).__name__}.")
    if not 1 <= num_nodes < _MAX_NODES:
        raise ValueError(f"num_nodes must be between 1 and {_MAX_NODES - 1}, got {num_nodes}.")
    return num_nodes


def _words(cipher: _Stream, count: int) -> Iterator[int]:
    """The keystream of ``cipher`` as 32-bit little-endian words, fetched ``count`` at a time."""
    while True:
        yield from np.frombuffer(cipher.encrypt(bytes(4 * count)), dtype="<u4").tolist()


def derive_permutation(num_nodes: int, seed: bytes) -> list[int]:
    """The ring-position -> node permutation of ``num_nodes`` nodes under ``seed``.

    See the module docstring for the exact, versioned derivation.
    """
    n = _check_num_nodes(num_nodes)
    seed = _check_seed(seed)
    key = hashlib.sha256(PERMUTATION_LABEL + seed).digest()[:16]
    cipher = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=0)

    perm = list(range(n))
    # About 1.5 words per index on average (the acceptance rate is above 1/2);
    # the stream is fetched in chunks and read on for as long as needed.
    draw = _words(cipher, n + n // 2 + 64).__next__
    for i in range(n - 1, 0, -1):
        mask = (1 << i.bit_length()) - 1
        j = draw() & mask
        while j > i:
            j = draw() & mask
        perm[i], perm[j] = perm[j], perm[i]
    return perm


class HararyGraph:
    """H(n, k) with node labels permuted by a seed; neighbourhoods include the node.

    Args:
        num_nodes: n >= 1.
        degree: k, even, with 0 < k < n; k == n - 1 (any parity) or None
            means the complete graph, where every node neighbours every node.
        seed: 32 bytes from which the label permutation is derived; may be
            None for the complete graph (whose labels need no permutation).

    Attributes:
        num_nodes: n.
        degree: k, the number of neighbours of a node other than itself
            (n - 1 for the complete graph).
        seed: the seed, or None for an unseeded complete graph.
        is_complete: True when every node neighbours every node.
    """

    __slots__ = ("num_nodes", "degree", "seed", "is_complete", "_half", "_perm", "_inv")

    def __init__(self, num_nodes: int, degree: int | None, seed: bytes | None):
        n = _check_num_nodes(num_nodes)
        if degree is not None:
            if isinstance(degree, bool) or not isinstance(degree, int):
                raise TypeError(f"degree must be an int or None, not {type(degree).__name__}.")
            if not 0 < degree < n and degree != n - 1:
                raise ValueError(f"degree must satisfy 0 < degree < num_nodes = {n}, got {degree}.")
        complete = degree is None or degree == n - 1
        if degree is not None and not complete and degree % 2:
            raise ValueError(f"degree must be even for a Harary graph (or num_nodes - 1 for the complete graph), got {degree}.")
        if seed is None and not complete:
            raise TypeError("a seed is required for a Harary graph that is not complete.")
        self.num_nodes = n
        self.degree: int = n - 1 if complete or degree is None else degree
        self.seed = None if seed is None else _check_seed(seed)
        self.is_complete = complete
        self._half = self.degree // 2
        self._perm: array[int] | None
        self._inv: array[int] | None
        if complete:
            self._perm = self._inv = None
        else:
            perm = derive_permutation(n, _check_seed(seed))
            inv = np.empty(n, dtype=np.int64)
            inv[np.asarray(perm, dtype=np.int64)] = np.arange(n, dtype=np.int64)
            self._perm = array("l", perm)
            self._inv = array("l", inv.tolist())

    @classmethod
    def complete(cls, num_nodes: int) -> "HararyGraph":
        """The complete graph on ``num_nodes`` nodes (classic SecAgg)."""
        return cls(num_nodes, None, None)

    # -- queries ----------------------------------------------------------

    def _check_node(self, node: object) -> int:
        if isinstance(node, bool) or not isinstance(node, (int, np.integer)):
            raise TypeError(f"a node id must be an int, not {type(node).__name__}.")
        node = int(node)
        if not 0 <= node < self.num_nodes:
            raise ValueError(f"node {node} is not in the graph (ids are 0 to {self.num_nodes - 1}).")
        return node

    def position(self, node: int) -> int:
        """The ring position of ``node`` (the inverse permutation)."""
        node = self._check_node(node)
        return node if self._inv is None else self._inv[node]

    def node_at(self, position: int) -> int:
        """The node at ring ``position`` (the permutation)."""
        position = self._check_node(position)
        return position if self._perm is None else self._perm[position]

    @property
    def permutation(self) -> np.ndarray:
        """A read-only copy of the ring-position -> node permutation."""
        out = np.arange(self.num_nodes, dtype=np.int64) if self._perm is None else np.array(self._perm, dtype=np.int64)
        out.flags.writeable = False
        return out

    def is_neighbor(self, a: int, b: int) -> bool:
        """True iff ``b`` is in the closed neighbourhood of ``a`` (a node neighbours itself)."""
        a = self._check_node(a)
        b = self._check_node(b)
        if self._inv is None:  # the complete graph
            return True
        d = abs(self._inv[a] - self._inv[b])
        return min(d, self.num_nodes - d) <= self._half

    def neighbors(self, a: int) -> tuple[int, ...]:
        """The closed neighbourhood of ``a``: ``degree + 1`` node ids, ascending, ``a`` included."""
        a = self._check_node(a)
        n = self.num_nodes
        if self._perm is None or self._inv is None:  # the complete graph
            return tuple(range(n))
        p = self._inv[a]
        perm = self._perm
        return tuple(sorted(perm[(p + d) % n] for d in range(-self._half, self._half + 1)))

    def neighbor_index(self, a: int, b: int) -> int | None:
        """The index of ``b`` in ``neighbors(a)``, or None if they are not neighbours."""
        if not self.is_neighbor(a, b):
            return None
        if self.is_complete:
            return int(b)
        return bisect_left(self.neighbors(a), int(b))

    # -- comparison -------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HararyGraph):
            return NotImplemented
        if self.is_complete or other.is_complete:
            return self.is_complete and other.is_complete and self.num_nodes == other.num_nodes
        return (self.num_nodes, self.degree, self.seed) == (other.num_nodes, other.degree, other.seed)

    def __hash__(self) -> int:
        if self.is_complete:
            return hash(("complete", self.num_nodes))
        return hash((self.num_nodes, self.degree, self.seed))

    def __repr__(self) -> str:
        if self.is_complete:
            return f"HararyGraph.complete({self.num_nodes})"
        return f"HararyGraph(num_nodes={self.num_nodes}, degree={self.degree}, seed=<{(self.seed or b'')[:4].hex()}...>)"


def complete_graph(num_nodes: int) -> HararyGraph:
    """The complete graph on ``num_nodes`` nodes: every node neighbours every node."""
    return HararyGraph.complete(num_nodes)
