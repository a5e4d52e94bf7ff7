"""The SecAgg+ Harary graph (lepton_secagg.hazmat.graph)."""
from __future__ import annotations

import hashlib
from collections import deque

import numpy as np
import pytest

from lepton_secagg.hazmat.graph import PERMUTATION_LABEL, HararyGraph, complete_graph, derive_permutation
from lepton_secagg.hazmat.prg import keystream

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))

# (num_nodes, degree) pairs covering odd/even n, k = 2, k = n - 2, k = n - 1 (n odd).
SHAPES = [(3, 2), (5, 2), (5, 4), (6, 4), (7, 6), (10, 4), (11, 8), (16, 14), (64, 6), (101, 30), (150, 32)]


def _reference_permutation(n: int, seed: bytes) -> list[int]:
    """The spec of the module docstring, read word by word through hazmat.prg."""
    key = hashlib.sha256(PERMUTATION_LABEL + seed).digest()[:16]
    counter = 0

    def word() -> int:
        nonlocal counter
        w = int.from_bytes(keystream("aes128ctr", key, 4, offset=4 * counter), "little")
        counter += 1
        return w

    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        bits = i.bit_length()
        while True:
            j = word() % (1 << bits)
            if j <= i:
                break
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _is_connected(graph: HararyGraph, removed=frozenset()) -> bool:
    alive = [v for v in range(graph.num_nodes) if v not in removed]
    if not alive:
        return True
    seen = {alive[0]}
    queue = deque([alive[0]])
    while queue:
        a = queue.popleft()
        for b in graph.neighbors(a):
            if b not in seen and b not in removed:
                seen.add(b)
                queue.append(b)
    return len(seen) == len(alive)


# -- the permutation ------------------------------------------------------------


def test_permutation_known_answer():
    # Pinned: changing the derivation changes every client's graph.
    assert derive_permutation(16, SEED) == [13, 12, 4, 6, 1, 0, 15, 11, 7, 5, 10, 14, 8, 9, 2, 3]
    assert derive_permutation(16, OTHER_SEED) == [11, 4, 14, 7, 6, 10, 8, 3, 13, 0, 15, 2, 9, 12, 1, 5]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 33, 100, 257])
def test_permutation_matches_reference(n):
    assert derive_permutation(n, SEED) == _reference_permutation(n, SEED)


@pytest.mark.parametrize("n", [1, 2, 10, 1000, 4097])
def test_permutation_is_a_bijection(n):
    perm = derive_permutation(n, SEED)
    assert sorted(perm) == list(range(n))
    graph = HararyGraph(n, None, SEED) if n < 4 else HararyGraph(n, 2, SEED)
    for node in range(n):
        assert graph.node_at(graph.position(node)) == node
    if not graph.is_complete:
        assert list(graph.permutation) == perm
        assert not graph.permutation.flags.writeable


def test_permutation_is_roughly_uniform():
    # Every node lands in every position about equally often over many seeds.
    n, trials = 5, 3000
    counts = np.zeros((n, n), dtype=int)
    for s in range(trials):
        perm = derive_permutation(n, hashlib.sha256(s.to_bytes(4, "big")).digest())
        counts[np.arange(n), perm] += 1
    expected = trials / n
    assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected))


# -- structure ------------------------------------------------------------------


@pytest.mark.parametrize("n,k", SHAPES)
def test_regular_closed_neighbourhoods(n, k):
    graph = HararyGraph(n, k, SEED)
    for a in range(n):
        nbrs = graph.neighbors(a)
        assert len(nbrs) == k + 1
        assert len(set(nbrs)) == k + 1
        assert a in nbrs
        assert list(nbrs) == sorted(nbrs)
        assert all(0 <= b < n for b in nbrs)


@pytest.mark.parametrize("n,k", SHAPES)
def test_symmetric_and_is_neighbor_agrees(n, k):
    graph = HararyGraph(n, k, SEED)
    sets = [set(graph.neighbors(a)) for a in range(n)]
    for a in range(n):
        for b in range(n):
            assert (b in sets[a]) == (a in sets[b])
            assert graph.is_neighbor(a, b) == (b in sets[a])
            index = graph.neighbor_index(a, b)
            if b in sets[a]:
                assert graph.neighbors(a)[index] == b
            else:
                assert index is None


@pytest.mark.parametrize("n,k", SHAPES)
def test_ring_structure_before_relabelling(n, k):
    # Node at ring position p neighbours exactly positions p - k/2 .. p + k/2.
    graph = HararyGraph(n, k, SEED)
    for p in range(n):
        expected = sorted(graph.node_at((p + d) % n) for d in range(-(k // 2), k // 2 + 1))
        assert list(graph.neighbors(graph.node_at(p))) == expected


@pytest.mark.parametrize("n,k", SHAPES)
def test_connected(n, k):
    assert _is_connected(HararyGraph(n, k, SEED))


def test_k_connected():
    # H(n, k) survives the removal of any k - 1 nodes; probe many random sets.
    rng = np.random.default_rng(1)
    n, k = 40, 6
    graph = HararyGraph(n, k, SEED)
    for _ in range(200):
        removed = frozenset(rng.choice(n, size=k - 1, replace=False).tolist())
        assert _is_connected(graph, removed)
    # k consecutive ring positions at two places do disconnect it.
    cut = frozenset(graph.node_at(p) for p in list(range(0, k // 2)) + list(range(n // 2, n // 2 + k // 2)))
    assert not _is_connected(graph, cut)


# -- determinism ------------------------------------------------------------------


def test_deterministic_by_seed():
    a = HararyGraph(200, 10, SEED)
    b = HararyGraph(200, 10, bytearray(SEED))
    assert a == b and hash(a) == hash(b)
    assert all(a.neighbors(v) == b.neighbors(v) for v in range(200))


def test_different_seeds_differ():
    a = HararyGraph(200, 10, SEED)
    b = HararyGraph(200, 10, OTHER_SEED)
    assert a != b
    assert list(a.permutation) != list(b.permutation)
    assert any(a.neighbors(v) != b.neighbors(v) for v in range(200))


# -- the complete graph -------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda n: complete_graph(n), lambda n: HararyGraph.complete(n),
                                  lambda n: HararyGraph(n, None, None), lambda n: HararyGraph(n, n - 1, SEED)])
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_complete_graph(make, n):
    graph = make(n)
    assert graph.is_complete
    assert graph.degree == n - 1
    assert graph.num_nodes == n
    for a in range(n):
        assert graph.neighbors(a) == tuple(range(n))
        assert all(graph.is_neighbor(a, b) for b in range(n))
        assert graph.neighbor_index(a, n - 1) == n - 1
    assert graph == complete_graph(n)


def test_odd_n_harary_with_k_n_minus_1_is_complete():
    graph = HararyGraph(7, 6, SEED)
    assert graph.is_complete and graph.neighbors(3) == tuple(range(7))


def test_large_graph_is_cheap():
    graph = HararyGraph(100_000, 38, SEED)
    assert len(graph.neighbors(12345)) == 39
    assert graph.is_neighbor(12345, graph.neighbors(12345)[0])


# -- argument validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((10, 3, SEED), ValueError, "even"),
        ((10, 0, SEED), ValueError, "0 < degree"),
        ((10, -2, SEED), ValueError, "0 < degree"),
        ((10, 10, SEED), ValueError, "0 < degree"),
        ((10, 12, SEED), ValueError, "0 < degree"),
        ((0, None, None), ValueError, "num_nodes"),
        ((10, 4, bytes(31)), ValueError, "32 bytes"),
        ((10, 4, bytes(33)), ValueError, "32 bytes"),
        ((10, 4, "x" * 32), TypeError, "bytes"),
        ((10, 4, None), TypeError, "seed is required"),
        ((10.0, 4, SEED), TypeError, "num_nodes"),
        ((True, None, None), TypeError, "num_nodes"),
        ((10, 4.0, SEED), TypeError, "degree"),
        ((10, True, SEED), TypeError, "degree"),
    ],
)
def test_argument_validation(args, error, match):
    with pytest.raises(error, match=match):
        HararyGraph(*args)


@pytest.mark.parametrize("args", [(10, 3, SEED), (10, 4, bytes(5)), (10, 4, None), (0, None, None)])
def test_messages_are_sentences(args):
    with pytest.raises((TypeError, ValueError)) as info:
        HararyGraph(*args)
    assert str(info.value).endswith(".")


def test_node_validation():
    graph = HararyGraph(10, 4, SEED)
    with pytest.raises(ValueError, match="not in the graph"):
        graph.neighbors(10)
    with pytest.raises(ValueError, match="not in the graph"):
        graph.is_neighbor(-1, 0)
    with pytest.raises(TypeError, match="int"):
        graph.neighbors("0")
    assert graph.neighbors(np.int64(3)) == graph.neighbors(3)
    with pytest.raises(ValueError, match="32 bytes"):
        derive_permutation(10, b"short")
