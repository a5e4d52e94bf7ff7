"""The server session: a sans-I/O state machine over ``_server_rounds``.

The caller feeds each client's message with ``receive(client_id, msg)`` and
decides when a round ends (every live client answered, ``ready()``, or a
deadline passed), then calls ``advance()`` to get the next round's messages.
The core has no clock: timeouts are the caller's policy.  A bad message from
one client gets that client an ``Abort`` and counts it as dropped; it never
aborts the session.  Fewer than ``threshold`` live clients at the end of a
round aborts the session: every live client gets an ``Abort`` and
``result()`` raises ``TooFewSurvivors``.
"""
from __future__ import annotations

from . import _server_rounds
from ._server_rounds import AggregationResult, Refused, ServerState
from ._state import SERVER_ADVANCE, SERVER_RECEIVE, Round
from .config import Config
from .exceptions import Aborted, LocalProtocolError, ReconstructionError, TooFewSurvivors
from .hazmat.rng import Rng, resolve
from .messages import Abort, ClientMessage, ServerMessage

__all__ = ["Server", "AggregationResult"]

# Rounds after which a client whose live neighbourhood is below the threshold
# is dropped at once: it could neither share nor mask safely.
_PRUNED_ROUNDS = (Round.ADVERTISE_KEYS, Round.SHARE_KEYS)


class Server:
    """The server of one aggregation session.

    Args:
        cfg: the session configuration.
        rng: randomness source (kept for symmetry with ``Client``; the server draws no secrets).
    """

    def __init__(self, cfg: Config, rng: Rng | None = None) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {type(cfg).__name__}.")
        if cfg.mode == "active" and cfg.identities is None:
            raise ValueError("active mode needs cfg.identities, every client's verify key.")
        self._cfg = cfg
        self._rng = resolve(rng)
        self._round = Round.ADVERTISE_KEYS
        self._state = ServerState(live=set(range(cfg.num_clients)))
        self._advance_table = SERVER_ADVANCE[cfg.mode]

    @property
    def round(self) -> Round:
        """The round whose replies the server is collecting (or a terminal state)."""
        return self._round

    @property
    def live(self) -> frozenset[int]:
        """Clients still expected to answer in this round."""
        return frozenset(self._state.live)

    @property
    def pending(self) -> frozenset[int]:
        """Live clients that have not answered this round yet."""
        return frozenset(self._state.live - self._state.replied)

    def receive(self, client_id: int, msg: ClientMessage) -> Abort | None:
        """Record one client's message; returns an ``Abort`` for that client if it is refused.

        Raises:
            LocalProtocolError: the session is over, or ``client_id`` is not a valid id.
        """
        if self._round in (Round.COMPLETED, Round.ABORTED):
            raise LocalProtocolError(f"the session is {self._round.value}; it takes no more messages.", round=self._round.value)
        if isinstance(client_id, bool) or not isinstance(client_id, int) or not 0 <= client_id < self._cfg.num_clients:
            raise LocalProtocolError(f"client_id must be in 0..{self._cfg.num_clients - 1}, got {client_id!r}.")
        st = self._state
        if client_id not in st.live:
            return Abort(f"client {client_id} is no longer part of this session.")
        if self._round is Round.MASKED_INPUT and client_id in st.replied:
            # Its masked input is already in the running sum, so it stays a
            # survivor of this round whatever it sends now; it is told to stop
            # and will count as dropped in the next round.
            return None if isinstance(msg, Abort) else Abort(f"client {client_id} answered round masked_input twice.")
        if isinstance(msg, Abort):
            self._drop(client_id)
            return None
        try:
            if client_id in st.replied:
                raise Refused(f"client {client_id} answered round {self._round.value} twice.", round=self._round.value, client_id=client_id)
            name = SERVER_RECEIVE.get((self._round, type(msg)))
            if name is None:
                raise Refused(f"{type(msg).__name__} is not expected in round {self._round.value}.", round=self._round.value, client_id=client_id)
            if getattr(msg, "sender", client_id) != client_id:
                raise Refused(f"a message on client {client_id}'s channel claims to come from client {msg.sender}.", round=self._round.value, client_id=client_id)
            handler: _server_rounds.ReceiveHandler = getattr(_server_rounds, name)
            handler(self._cfg, st, client_id, msg)
        except Refused as exc:
            self._drop(client_id)
            return Abort(str(exc))
        st.replied.add(client_id)
        return None

    def ready(self) -> bool:
        """True when every live client has answered this round."""
        return self._round not in (Round.COMPLETED, Round.ABORTED) and self._state.replied >= self._state.live

    def advance(self) -> dict[int, ServerMessage]:
        """Close the round: non-responders are dropped; returns {client_id: next message}.

        Raises:
            LocalProtocolError: the session is already over.
        """
        if self._round in (Round.COMPLETED, Round.ABORTED):
            raise LocalProtocolError(f"the session is {self._round.value}; there is no round to advance.", round=self._round.value)
        st, cfg = self._state, self._cfg
        for cid in st.live - st.replied:
            self._drop(cid)
        aborts: dict[int, Abort] = {}
        for pass_ in range(2):  # before pruning, so the error counts real survivors; and after
            if len(st.live) < cfg.threshold:
                return {**aborts, **self._abort(TooFewSurvivors(
                    f"only {len(st.live)} clients remain after round {self._round.value}; the threshold is {cfg.threshold}.",
                    survivors=len(st.live), threshold=cfg.threshold, round=self._round.value))}
            if pass_ == 0 and self._round in _PRUNED_ROUNDS:
                aborts = self._prune()
        if self._round not in _PRUNED_ROUNDS:
            stuck = self._unrecoverable()
            if stuck is not None:
                return self._abort(stuck)
        name, next_round = self._advance_table[self._round]
        try:
            close: _server_rounds.CloseHandler = getattr(_server_rounds, name)
            out = close(cfg, st)
        except (TooFewSurvivors, ReconstructionError) as exc:
            error = exc if isinstance(exc, Aborted) else Aborted(f"unmasking failed: {exc}", round=self._round.value)
            return self._abort(error)
        st.replied = set()
        self._round = next_round
        return {**aborts, **out}

    def result(self) -> AggregationResult:
        """The sum and the included ids.

        Raises:
            TooFewSurvivors / Aborted: the session ended without a result.
            LocalProtocolError: the session is still running.
        """
        if self._state.error is not None:
            raise self._state.error
        if self._state.result is None:
            raise LocalProtocolError(f"the session is still in round {self._round.value}; no result yet.", round=self._round.value)
        return self._state.result

    def _drop(self, cid: int) -> None:
        self._state.live.discard(cid)
        self._state.replied.discard(cid)
        self._state.dropped.setdefault(cid, self._round.value)

    def _prune(self) -> dict[int, Abort]:
        """Drop clients with fewer than t live neighbours (themselves included), until none is left."""
        st, cfg = self._state, self._cfg
        aborts: dict[int, Abort] = {}
        changed = True
        while changed:
            changed = False
            for cid in sorted(st.live):
                if sum(1 for v in cfg.graph.neighbors(cid) if v in st.live) < cfg.threshold:
                    self._drop(cid)
                    aborts[cid] = Abort(f"fewer than {cfg.threshold} of client {cid}'s neighbours are live.")
                    changed = True
        return aborts

    def _unrecoverable(self) -> TooFewSurvivors | None:
        """Once masked inputs are in, every client whose masks must be removed needs t live neighbours."""
        st, cfg = self._state, self._cfg
        alive = st.live
        survivors = set(st.survivors) if st.survivors else alive
        for cid in sorted(st.sharers):
            nbhd = cfg.graph.neighbors(cid)
            if cid not in survivors and not any(v in survivors for v in nbhd):
                continue  # a dropped client with no surviving neighbour leaves no mask to remove
            count = sum(1 for v in nbhd if v in alive)
            if count < cfg.threshold:
                return TooFewSurvivors(
                    f"only {count} of client {cid}'s neighbours remain after round {self._round.value}; "
                    f"{cfg.threshold} are needed to remove its masks.",
                    survivors=count, threshold=cfg.threshold, round=self._round.value)
        return None

    def _abort(self, error: Aborted) -> dict[int, ServerMessage]:
        out: dict[int, ServerMessage] = {cid: Abort(str(error)) for cid in sorted(self._state.live)}
        self._state.error = error
        self._state.live = set()
        self._state.total = None
        self._round = Round.ABORTED
        return out

    def __repr__(self) -> str:
        return f"Server(round={self._round.value}, live={len(self._state.live)})"
