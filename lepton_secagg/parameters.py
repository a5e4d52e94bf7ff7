"""SecAgg+ parameters: the Harary-graph degree ``k`` and Shamir threshold ``t``.

``find_secagg_plus_parameters(n, corrupt_fraction, dropout_fraction, mode)``
follows Google's SecAgg+ parameter finder (Bell et al., CCS 2020) as written in
google/federated-compute, ``fcp/secagg/server/graph_parameter_finder.cc`` with
the hypergeometric helpers of ``fcp/secagg/server/distribution_utilities.cc``.
This is a re-implementation in our own words, not a copy; the results are
checked against the pinned table of ``graph_parameter_finder_test.cc``
(``tests/test_parameters.py``).

With ``A = floor(gamma n)`` corrupt clients, ``D = floor(delta n)`` dropouts and
``S = ceil((1 - delta) n)`` survivors (each rate nudged by 1e-14 in the safe
direction, as fcp does), the degree ``k`` is the smallest even number with
``2 <= k < n - 1`` such that

(a) the union bound on the randomly labelled Harary graph H(n, k) becoming
    disconnected once ``A + D`` nodes are removed is below ``2^-41``::

        n (n - k - 1) / 2 * (A + D)! (n - k)! / (n! (A + D - k)!) < 2^-41

    (zero when ``k > A + D``: a k-connected graph survives any ``k - 1``
    removals);
(b) with ``t1`` the smallest integer such that
    ``P[#corrupt neighbours > t1] < 2^-41 / n`` and ``t2`` the smallest integer
    such that ``P[#surviving neighbours <= t2] >= 2^-20 / n`` (hypergeometric
    laws Hyp(n, A, k) and Hyp(n, S, k)), the interval ``(t1, t2]`` is not
    empty.  In ``"active"`` mode (fcp's SEMI_MALICIOUS_SERVER) ``t1`` is first
    raised to ``ceil((t1 + k - 1.25) / 2)`` so that ``2t > k + #corrupt
    neighbours`` also holds with the same probability.

The threshold is ``t = max(t1 + 1, 2)``.  ``k`` excludes the self-edge: each
client's closed neighbourhood has ``k + 1`` members (itself included), which
is what ``hazmat.graph.HararyGraph.neighbors`` returns.

Speed.  fcp scans ``k = 2, 4, 6, ...``; we reach the same first feasible
``k`` with far fewer evaluations.  Condition (a) is monotone in ``k``, so its
boundary is found by bisection.  Condition (b) is *not* monotone in general
(integer rounding makes the margin ``t2 - t1`` wobble), so we do not bisect
it; instead we use a rigorous bound on how fast the margin can grow.  A
sample of ``k + 2`` neighbours contains a sample of ``k``, so both counts grow
by 0, 1 or 2 and so do their quantiles: ``t2`` grows by at most 2 and ``t1``
by at least 0 per step (in active mode the adjusted ``t1`` grows by at least
1).  When the margin is ``m <= 0`` no ``k`` closer than ``ceil((1 - m) / 2)``
steps (``1 - m`` in active mode) can be feasible, so the scan jumps there.
This returns exactly fcp's first feasible ``k`` (tests compare it with a plain
linear scan), in about a hundred evaluations for the largest table row.
"""
from __future__ import annotations

import math
from functools import lru_cache

__all__ = [
    "MODES",
    "SECURITY_PARAMETER",
    "CORRECTNESS_PARAMETER",
    "find_secagg_plus_parameters",
    "full_graph_threshold",
    "corrupt_count",
    "min_sound_threshold",
]

#: the threat models: ``"semi-honest"`` (fcp CURIOUS_SERVER) and ``"active"``
#: (fcp SEMI_MALICIOUS_SERVER: the server may lie about who dropped out).
MODES = ("semi-honest", "active")

#: statistical security sigma: the protocol leaks with probability < 2^-40.
SECURITY_PARAMETER = 40
#: correctness eta: a run fails (too few surviving neighbours) with probability < 2^-20.
CORRECTNESS_PARAMETER = 20

# fcp splits the 2^-40 evenly over two bad events: each gets 2^-41.
_SIGMA_PER_EVENT = SECURITY_PARAMETER + 1
_LOG_SIGMA_PER_EVENT = -_SIGMA_PER_EVENT * math.log(2.0)
# fcp's kSmall: pushes rate * n away from an integer boundary in the safe direction.
_SMALL = 1e-14
# fcp's CDF summation stops once a term adds less than this relative amount.
_REL_TOL = 1e-16


# --------------------------------------------------------------------------
# Hypergeometric law, after fcp/secagg/server/distribution_utilities.cc.
#
# X = number of "counted" items in a sample of ``sampled`` drawn without
# replacement from ``total`` items.  PMFs are evaluated in log space with
# lgamma; CDFs sum the PMF downwards from x with the ratio recurrence
# p(x-1) = p(x) x (total - counted - sampled + x) / ((counted - x + 1)(sampled - x + 1)),
# stopping once the terms no longer change the sum, and the upper tail is
# evaluated through the complementary law so no sum ever cancels.
# --------------------------------------------------------------------------


class _Hypergeometric:
    __slots__ = ("total", "marked", "sampled")

    def __init__(self, total: int, marked: int, sampled: int):
        self.total = total
        self.marked = marked
        self.sampled = sampled

    def _pmf(self, x: float, counted: int) -> float:
        n, k = self.total, self.sampled
        if x < 0 or x > k or x > counted or n + x < counted + k:
            return 0.0
        lg = math.lgamma
        log_p = (
            lg(k + 1) + lg(counted + 1) + lg(n - counted + 1) + lg(n - k + 1)
            - lg(x + 1) - lg(k - x + 1) - lg(counted - x + 1) - lg(n + 1)
            - lg(n - k - counted + x + 1)
        )
        return math.exp(log_p)

    def _lower_tail(self, x: float, counted: int) -> float:
        """P[X_counted <= x], summed from x downwards."""
        n, k = self.total, self.sampled
        term = self._pmf(x, counted)
        acc = 0.0
        while term > acc * _REL_TOL:
            acc += term
            term = term * x * (n - counted - k + x) / (counted - x + 1) / (k - x + 1)
            x -= 1
        return acc

    def cdf(self, x: float) -> float:
        """P[X <= x]; the upper half is computed as 1 - (the complementary lower tail)."""
        x = math.floor(x)
        mean = self.marked * float(self.sampled) / self.total
        if x > mean:
            return 1.0 - self._lower_tail(self.sampled - x - 1, self.total - self.marked)
        return self._lower_tail(x, self.marked)

    def _quantile(self, q: float, counted: int) -> float:
        """The largest x with P[X_counted <= x] < q (-1 if there is none)."""
        n, k = self.total, self.sampled
        # Start from a lower bound (support edge, or an inverted Hoeffding
        # bound) and walk up; the bound keeps the walk short for large k.
        start = max(-1.0, float(counted + k - n - 1), k * (counted / n - math.sqrt(-math.log(q) / (2 * k))))
        x = math.floor(start)
        acc = self._lower_tail(x, counted)
        term = self._pmf(x, counted)
        while acc < q and x < k:
            if term > 0:
                term = term / (x + 1) / (n - counted - k + x + 1) * (counted - x) * (k - x)
            else:
                term = self._pmf(x + 1, counted)
            acc += term
            x += 1
        return x - 1

    def quantile(self, q: float, complement: bool = False) -> float:
        """fcp's FindQuantile: an integer quantile rounded away from the median.

        Without ``complement``: the largest x with P[X <= x] < q.  With it: the
        smallest x with P[X > x] < q.
        """
        if q > 0.5:
            q = 1.0 - q
            complement = not complement
        if complement:
            return self.sampled - self._quantile(q, self.total - self.marked) - 1
        return self._quantile(q, self.marked)


# --------------------------------------------------------------------------
# The finder.
# --------------------------------------------------------------------------


def _counts(n: int, gamma: float, delta: float) -> tuple[int, int, int]:
    """(max corrupt, max dropouts, min survivors), rounded as fcp does."""
    corrupt = math.floor((gamma + _SMALL) * n)
    dropped = math.floor((delta + _SMALL) * n)
    survivors = math.ceil((1.0 - delta - _SMALL) * n)
    return corrupt, dropped, survivors


def _log_disconnect_bound(n: int, k: int, bad: int) -> float:
    """Log of the union bound on H(n, k) disconnecting after ``bad`` random removals.

    A removal set disconnects the ring-based Harary graph only if it contains
    k/2 consecutive ring positions at two disjoint places; there are
    n (n - k - 1) / 2 such pairs of gaps, and a given set of k positions is
    entirely removed with probability bad! (n - k)! / (n! (bad - k)!).
    """
    if k > bad:
        return -math.inf
    lg = math.lgamma
    return (
        math.log(n) + math.log(n - k - 1) - math.log(2.0)
        + lg(bad + 1) + lg(n - k + 1) - lg(n + 1) - lg(bad - k + 1)
    )


def _connected_enough(n: int, k: int, bad: int) -> bool:
    return _log_disconnect_bound(n, k, bad) < _LOG_SIGMA_PER_EVENT


def _thresholds(n: int, k: int, corrupt: int, survivors: int, active: bool) -> tuple[int, int]:
    """(t1, t2) for degree k: a threshold t is acceptable iff t1 < t <= t2."""
    q_correct = 2.0 ** -CORRECTNESS_PARAMETER / n
    survivor_law = _Hypergeometric(n, survivors, k)
    t2 = survivor_law.quantile(q_correct)
    if survivor_law.cdf(t2) < q_correct:
        t2 += 1
    return _security_floor(n, k, corrupt, active, _SIGMA_PER_EVENT), int(t2)


def _security_floor(n: int, k: int, corrupt: int, active: bool, sigma: int) -> int:
    """t1: every threshold above it withstands ``corrupt`` random colluders except with probability 2^-sigma / n."""
    t1 = _Hypergeometric(n, corrupt, k).quantile(2.0 ** -sigma / n, complement=True)
    if active:
        # Semi-malicious server: a threshold above (k + #corrupt neighbours) / 2
        # stops it from collecting both share types of one honest client.
        t1 = math.ceil((t1 + k - 1.25) / 2)
    return int(t1)


def _check_degree(n: int, k: int, gamma: float, delta: float, active: bool) -> int | None:
    """fcp's CheckNumberOfNeighbors: the threshold for degree ``k``, or None."""
    corrupt, dropped, survivors = _counts(n, gamma, delta)
    if not _connected_enough(n, k, corrupt + dropped):
        return None
    t1, t2 = _thresholds(n, k, corrupt, survivors, active)
    if t2 <= t1:
        return None
    return max(t1 + 1, 2)


def _outside_feasible_region(gamma: float, delta: float, active: bool) -> bool:
    """fcp's Create() refuses these rates: no degree can work (or not usefully)."""
    return gamma + (2 * delta if active else delta) > 0.9


def _linear_scan(n: int, gamma: float, delta: float, active: bool) -> tuple[int, int] | None:
    """fcp's search verbatim (k = 2, 4, ... while k < n - 1); the reference for tests."""
    if _outside_feasible_region(gamma, delta, active):
        return None
    for k in range(2, n - 1, 2):
        t = _check_degree(n, k, gamma, delta, active)
        if t is not None:
            return k, t
    return None


@lru_cache(maxsize=1024)
def _find(n: int, gamma: float, delta: float, active: bool) -> tuple[int, int] | None:
    # fcp refuses instances that cannot be feasible for any k (its Create());
    # the caller falls back to the full graph, exactly as fcp's server does.
    if _outside_feasible_region(gamma, delta, active):
        return None
    if n < 4:  # no even k with 2 <= k < n - 1
        return None
    corrupt, dropped, survivors = _counts(n, gamma, delta)
    bad = corrupt + dropped
    k_max = n - 2 if n % 2 == 0 else n - 3  # largest even k < n - 1

    # (a) is monotone in k: bisect for the first even k that passes it.
    if not _connected_enough(n, k_max, bad):
        return None
    lo, hi = 0, k_max // 2  # in units of 2; hi passes, lo (k = 0) is a sentinel
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _connected_enough(n, 2 * mid, bad):
            hi = mid
        else:
            lo = mid
    k = 2 * hi

    # (b) with skip-ahead: the margin t2 - t1 rises by at most 2 per step of
    # k (by at most 1 in active mode), so from an infeasible margin m <= 0 the
    # next candidate is ceil((1 - m) / 2) steps ahead (1 - m in active mode).
    while k <= k_max:
        t1, t2 = _thresholds(n, k, corrupt, survivors, active)
        margin = t2 - t1
        if margin >= 1:
            return k, max(t1 + 1, 2)
        steps = (1 - margin) if active else -(-(1 - margin) // 2)
        k += 2 * max(1, steps)
    return None


def _check_common(num_clients: object, corrupt_fraction: object, dropout_fraction: object, mode: object) -> tuple[int, float, float, bool]:
    if isinstance(num_clients, bool) or not isinstance(num_clients, int):
        raise TypeError(f"num_clients must be an int, not {type(num_clients).__name__}.")
    if num_clients < 1:
        raise ValueError(f"num_clients must be at least 1, got {num_clients}.")
    rates = []
    for name, value in (("corrupt_fraction", corrupt_fraction), ("dropout_fraction", dropout_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a float, not {type(value).__name__}.")
        value = float(value)
        if not (0.0 <= value < 1.0):  # also rejects NaN
            raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
        rates.append(value)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    return num_clients, rates[0], rates[1], mode == "active"


def find_secagg_plus_parameters(
    num_clients: int,
    corrupt_fraction: float,
    dropout_fraction: float,
    mode: str = "semi-honest",
) -> tuple[int, int] | None:
    """The SecAgg+ Harary degree ``k`` and Shamir threshold ``t``, or None.

    Args:
        num_clients: the cohort size n.
        corrupt_fraction: gamma in [0, 1), the fraction of clients that may
            collude with the server.
        dropout_fraction: delta in [0, 1), the fraction of clients that may
            drop out before the end.
        mode: ``"semi-honest"`` or ``"active"`` (fcp's semi-malicious server).

    Returns:
        ``(k, t)``: k even, excluding the self-edge (each client talks to k
        others), and ``2 <= t <= k``; the protocol then leaks with probability
        below 2^-40 and fails for lack of surviving neighbours with probability
        below 2^-20.  None when no even ``k < n - 1`` satisfies the inequalities
        (small cohorts, or fcp's infeasible regions gamma + delta > 0.9,
        resp. gamma + 2 delta > 0.9 in active mode): the caller then uses the
        full graph with ``full_graph_threshold``.

    Raises:
        TypeError, ValueError: for arguments out of range or of the wrong type.

    Results are cached; every entry of fcp's table up to n = 10^6 takes
    milliseconds.  fcp caps n at 10^6 for lack of tests; we do not.
    """
    n, gamma, delta, active = _check_common(num_clients, corrupt_fraction, dropout_fraction, mode)
    return _find(n, gamma, delta, active)


def full_graph_threshold(
    num_clients: int,
    corrupt_fraction: float,
    dropout_fraction: float,
    mode: str = "semi-honest",
) -> int:
    """A safe Shamir threshold for classic SecAgg over the complete graph.

    With ``c = ceil(gamma n)`` possibly corrupt clients and
    ``s = n - floor(delta n)`` clients guaranteed to survive:

    * semi-honest: a majority above the colluders, ``max(floor(n/2) + 1, c + 1)``;
      it must not exceed ``s``;
    * active: ``floor((n + c) / 2) + 1``, i.e. the smallest t with
      ``2t > n + c``, so that a server lying about dropouts cannot obtain both
      share types of one honest client; it must not exceed ``s``.

    Raises:
        ValueError: when the survivors cannot reach a safe threshold (the
            message gives the numbers), or for arguments out of range.
        TypeError: for arguments of the wrong type.
    """
    n, gamma, delta, active = _check_common(num_clients, corrupt_fraction, dropout_fraction, mode)
    corrupt = corrupt_count(n, gamma)
    survivors = n - math.floor(delta * n + 1e-9)
    if active:
        t = (n + corrupt) // 2 + 1
        if t > survivors:
            raise ValueError(
                f"an active-mode threshold must satisfy 2t > n + corrupt = {n + corrupt}, so t = {t}, "
                f"but with n = {n} and dropout_fraction = {delta} only {survivors} clients are "
                f"guaranteed to survive; lower corrupt_fraction or dropout_fraction "
                f"(active mode needs roughly corrupt_fraction + 2 * dropout_fraction < 1)."
            )
        return t
    t = max(n // 2 + 1, corrupt + 1)
    if t > survivors:
        raise ValueError(
            f"a semi-honest full-graph threshold must be a majority above the {corrupt} possibly corrupt "
            f"clients, so t = {t}, but with n = {n} and dropout_fraction = {delta} only {survivors} clients "
            f"are guaranteed to survive; lower corrupt_fraction or dropout_fraction (below 0.5)."
        )
    return t


def corrupt_count(num_clients: int, corrupt_fraction: float) -> int:
    """c = ceil(corrupt_fraction * n): the colluders a full-graph threshold must withstand."""
    return math.ceil(corrupt_fraction * num_clients - 1e-9)


def min_sound_threshold(
    num_clients: int,
    neighbors: int | None,
    corrupt_fraction: float,
    mode: str = "semi-honest",
    security_bits: int = SECURITY_PARAMETER,
) -> int:
    """The smallest Shamir threshold that withstands ``corrupt_fraction`` colluders on this graph.

    ``corrupt_fraction`` is global: that fraction of all ``n`` clients collude
    with the server, wherever they sit in the graph.

    * Full graph (``neighbors`` None), ``c = corrupt_count(n, corrupt_fraction)``:
      semi-honest ``2t > n`` and ``t > c``; active ``2t > n + c``.
    * SecAgg+ graph of degree ``k``: the colluders among a client's ``k``
      neighbours follow the hypergeometric law Hyp(n, floor(gamma n), k), and
      ``t`` must exceed its ``2^-(security_bits + 1) / n`` upper quantile
      (active: exceed ``(quantile + k - 1.25) / 2``), the bound
      ``find_secagg_plus_parameters`` applies, so its ``(k, t)`` pass and a
      hand-set pair weaker than the bound does not.

    The result may exceed the neighbourhood size: then no threshold is sound
    on this graph, and the caller must refuse it.
    """
    n, gamma, _, active = _check_common(num_clients, corrupt_fraction, 0.0, mode)
    if isinstance(security_bits, bool) or not isinstance(security_bits, int) or not 1 <= security_bits <= 256:
        raise ValueError(f"security_bits must be an int in 1..256, got {security_bits!r}.")
    if neighbors is None:
        c = corrupt_count(n, gamma)
        return (n + c) // 2 + 1 if active else max(n // 2 + 1, c + 1)
    corrupt, _, _ = _counts(n, gamma, 0.0)
    return max(_security_floor(n, neighbors, corrupt, active, security_bits + 1) + 1, 2)
