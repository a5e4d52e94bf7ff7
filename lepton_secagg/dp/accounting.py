"""Privacy accounting for distributed DP: Renyi DP per round, composed over rounds.

Theory of operation: each round releases the noisy sum of the included
clients' encoded updates.  Its Renyi DP curve eps(alpha) comes from the
paper of the mechanism, evaluated on the *actual* numbers (scale, rounded
sensitivity, per-client noise, clients included):

* distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, Proposition 14
  of arXiv:2102.06387): with n clients each adding N_Z(0, s^2),
  tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 s^2 k/(k+1)), and
  l2 = Delta_2 / sqrt(n s^2), l1 = Delta_1 / sqrt(n s^2),
  eps(alpha) = min(alpha l2^2/2 + tau d, alpha/2 (l2^2 + 2 l1 tau + tau^2 d), alpha/2 (l2 + sqrt(d) tau)^2).
* Skellam (Agarwal, Kairouz, Liu 2021, Theorem 3.5 of arXiv:2110.04995), with
  mu = n times each client's noise variance (a sum of Skellams is Skellam):
  eps(alpha) = alpha Delta_2^2/(2 mu) + min(((2 alpha - 1) Delta_2^2 + 6 Delta_1)/(4 mu^2), 3 Delta_1/(2 mu)).

``dp-accounting`` has neither mechanism, so these curves are ours; the
library supplies what it does have: the conversion from RDP to (epsilon,
delta) (``compute_epsilon``) and, as the reference our bounds are checked
against, the Gaussian mechanism and its Poisson-subsampled form.  Client
sampling with rate q < 1 uses the general Poisson-subsampling bound of
Zhu and Wang (ICML 2019, Theorem 6) on our curve, for integer orders.
Composition over rounds adds the curves.

Dropouts: the noise is calibrated for the minimum number of survivors
(``DdpEncoding.calibrate``); the ``Accountant`` records each round with the
number of clients actually included, so the reported epsilon is the one the
surviving noise really gives (more survivors: more noise, smaller epsilon).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon
from scipy.special import gammaln, logsumexp

from .mechanism import DEFAULT_BETA, DdpEncoding
from .rounding import rounded_l1_bound

__all__ = [
    "ORDERS",
    "ddg_rdp",
    "skellam_rdp",
    "subsampled_rdp",
    "round_rdp",
    "epsilon_from_rdp",
    "Accountant",
    "Plan",
]

#: integer Renyi orders (the subsampling bound needs integers)
ORDERS = tuple(range(2, 65)) + tuple(range(72, 257, 8))


def ddg_rdp(
    orders: Sequence[int], *, l2: float, l1: float, client_variance: float, clients: int, dim: int
) -> npt.NDArray[np.float64]:
    """RDP of the sum of ``clients`` discrete Gaussians N_Z(0, client_variance) (DDG Proposition 14)."""
    alpha = np.asarray(orders, dtype=np.float64)
    k = np.arange(1, clients, dtype=np.float64)
    tau = 10 * float(np.exp(-2 * math.pi**2 * client_variance * k / (k + 1)).sum())
    sd = math.sqrt(clients * client_variance)
    l2s, l1s = l2 / sd, l1 / sd
    curve: npt.NDArray[np.float64] = np.minimum.reduce([
        alpha * l2s**2 / 2 + tau * dim,
        alpha / 2 * (l2s**2 + 2 * l1s * tau + tau**2 * dim),
        alpha / 2 * (l2s + math.sqrt(dim) * tau) ** 2,
    ])
    return curve


def skellam_rdp(orders: Sequence[int], *, l2: float, l1: float, variance: float) -> npt.NDArray[np.float64]:
    """RDP of the Skellam mechanism whose noise has ``variance`` per coordinate (Skellam Theorem 3.5)."""
    alpha = np.asarray(orders, dtype=np.float64)
    mu = variance
    return alpha * l2**2 / (2 * mu) + np.minimum(((2 * alpha - 1) * l2**2 + 6 * l1) / (4 * mu**2), 3 * l1 / (2 * mu))


def subsampled_rdp(orders: Sequence[int], rdp: npt.ArrayLike, q: float) -> npt.NDArray[np.float64]:
    """The RDP after Poisson sampling with rate q of a mechanism with curve ``rdp`` (Zhu and Wang 2019, Thm 6).

    ``orders`` must be integers >= 2 and ``rdp`` its values at every integer
    order in 2..max(orders) reachable from ``orders`` (pass the full ladder).
    """
    ints = [int(a) for a in orders]
    curve = dict(zip(ints, np.asarray(rdp, dtype=np.float64)))
    if q == 1:
        return np.array([curve[a] for a in ints])
    if not 0 < q < 1:
        raise ValueError(f"the sampling rate must lie in (0, 1], got {q}.")
    lq, l1q = math.log(q), math.log1p(-q)
    ladder = np.arange(2, max(ints) + 1)
    missing = [int(j) for j in ladder if int(j) not in curve]
    if missing:
        raise ValueError(f"subsampled_rdp needs the curve at every integer order up to {max(ints)}; {missing[0]} is missing.")
    eps = np.array([curve[int(j)] for j in ladder])
    out = []
    for a in ints:
        j, e = ladder[: a - 1], eps[: a - 1]
        log_binom = gammaln(a + 1) - gammaln(j + 1) - gammaln(a - j + 1)
        factor = np.where(j == 2, 0.0, math.log(3))
        terms = factor + log_binom + j * lq + (a - j) * l1q + (j - 1) * e
        head = (a - 1) * l1q + math.log(a * q - q + 1)
        out.append(min(float(logsumexp(np.append(terms, head))) / (a - 1), curve[a]))
    return np.array(out)


def _ladder(orders: Sequence[int]) -> list[int]:
    return list(range(2, max(int(a) for a in orders) + 1))


def round_rdp(
    enc: DdpEncoding, included: int, orders: Sequence[int] = ORDERS, sampling_rate: float = 1.0
) -> npt.NDArray[np.float64]:
    """The RDP curve of one round of ``enc`` whose sum holds ``included`` clients' noise."""
    if isinstance(included, bool) or not isinstance(included, int) or included < 1:
        raise ValueError(f"included must be a positive int, got {included!r}.")
    ladder = _ladder(orders) if sampling_rate < 1 else [int(a) for a in orders]
    l2 = enc.sensitivity
    l1 = rounded_l1_bound(l2, enc.padded_length)
    v = float(enc.noise)
    if enc.mechanism == "gaussian":
        curve = ddg_rdp(ladder, l2=l2, l1=l1, client_variance=v, clients=included, dim=enc.padded_length)
    else:
        curve = skellam_rdp(ladder, l2=l2, l1=l1, variance=included * v)
    full = subsampled_rdp(ladder, curve, sampling_rate)
    index = {a: i for i, a in enumerate(ladder)}
    return np.array([full[index[int(a)]] for a in orders])


def epsilon_from_rdp(rdp: Sequence[float] | npt.NDArray[np.float64], delta: float, orders: Sequence[int] = ORDERS) -> float:
    """(epsilon, delta) from an RDP curve, by ``dp_accounting``'s conversion."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}.")
    return float(compute_epsilon(list(orders), list(rdp), delta)[0])


@dataclass
class Accountant:
    """Running privacy spend of a training run: one RDP curve per round, added up.

    Attributes:
        delta: the target delta.
        sampling_rate: the probability that a client takes part in a round.
        rounds: (mechanism, bits, included clients, per-client noise, epsilon so far) per round.
    """

    delta: float
    sampling_rate: float = 1.0
    rounds: list[tuple[str, int, int, float, float]] = field(default_factory=list)
    _rdp: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(ORDERS)), repr=False)

    def record(self, enc: DdpEncoding, included: int) -> float:
        """Add one round whose sum held ``included`` clients; return epsilon so far."""
        self._rdp = self._rdp + round_rdp(enc, included, ORDERS, self.sampling_rate)
        eps = self.epsilon
        self.rounds.append((enc.mechanism, enc.bits, included, float(enc.noise), eps))
        return eps

    @property
    def epsilon(self) -> float:
        """Epsilon at ``delta`` of every round recorded so far (0 before the first)."""
        if not self.rounds and not self._rdp.any():
            return 0.0
        return epsilon_from_rdp(self._rdp, self.delta)


@dataclass(frozen=True)
class Plan:
    """A training run's privacy plan: both directions between noise and epsilon.

    Attributes:
        mechanism: "gaussian" or "skellam".
        clients: clients per round (the ring holds this many).
        rounds: the number of rounds.
        delta: the target delta.
        clip: the L2 clip of an update.
        bits: the ring width b.
        length: the number of float coordinates of an update.
        sampling_rate: the probability that a given client is in a round.
        min_clients: the fewest survivors the noise is calibrated for (default ``clients``).
        k_stddevs, beta: see ``DdpEncoding.calibrate``.
    """

    mechanism: str
    clients: int
    rounds: int
    delta: float
    clip: float
    bits: int
    length: int
    sampling_rate: float = 1.0
    min_clients: int | None = None
    k_stddevs: float = 3.0
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds must be a positive int, got {self.rounds!r}.")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"sampling_rate must lie in (0, 1], got {self.sampling_rate}.")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta}.")

    @property
    def survivors(self) -> int:
        """The number of clients the noise is calibrated for."""
        return self.clients if self.min_clients is None else self.min_clients

    def encoding(self, noise_multiplier: float) -> DdpEncoding:
        """The per-round encoding for a central noise multiplier (noise std / sensitivity at the minimum survivors)."""
        return DdpEncoding.calibrate(
            self.mechanism, length=self.length, bits=self.bits, clip=self.clip,
            noise_multiplier=noise_multiplier, clients=self.clients, min_clients=self.min_clients,
            k_stddevs=self.k_stddevs, beta=self.beta,
        )

    def epsilon(self, enc: DdpEncoding, survivors: int | None = None) -> float:
        """Epsilon after ``rounds`` rounds of ``enc``, each with ``survivors`` clients included (default the minimum)."""
        survivors = self.survivors if survivors is None else survivors
        return epsilon_from_rdp(self.rounds * round_rdp(enc, survivors, ORDERS, self.sampling_rate), self.delta)

    def noise_for(self, epsilon: float) -> DdpEncoding:
        """The encoding with the least noise whose epsilon (at the minimum survivors) is at most ``epsilon``.

        Raises:
            ValueError: epsilon is not reachable at these bits (the ring cannot hold enough noise).
        """
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}.")
        low, high = 0.0, 1.0
        while self.epsilon(self.encoding(high)) > epsilon:
            low, high = high, high * 2
            if high > 1e4:
                raise ValueError(f"epsilon = {epsilon} is out of reach with bits = {self.bits}; raise bits or epsilon.")
        for _ in range(40):
            middle = (low + high) / 2
            if self.epsilon(self.encoding(middle)) > epsilon:
                low = middle
            else:
                high = middle
        return self.encoding(high)
