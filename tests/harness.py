"""Step-by-step sessions for tests that poke at one round (h11's ConnectionPair idea)."""
from __future__ import annotations

import dataclasses

import numpy as np

import lepton_secagg as ls
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.testing import make_identities


class Session:
    """A server and its clients, advanced one round at a time through the wire codec."""

    def __init__(self, cfg: ls.Config, seed: int = 7, without_input=()):
        if cfg.mode == "active" and cfg.identities is None:
            self.identities = make_identities(cfg.num_clients, seed)
            cfg = dataclasses.replace(cfg, identities=tuple(i.verify_key for i in self.identities))
        else:
            self.identities = [None] * cfg.num_clients
        self.cfg = cfg
        root = DeterministicRng(seed)
        self.server = ls.Server(cfg)
        self.clients = [ls.Client(cfg, i, rng=root.fork(f"c{i}"), identity=self.identities[i]) for i in range(cfg.num_clients)]
        self.inputs = [np.arange(cfg.vector_length, dtype=np.uint64).astype(cfg.dtype) * (i + 1) for i in range(cfg.num_clients)]
        for c, x in zip(self.clients, self.inputs):
            if c.client_id not in without_input:
                c.set_input(x)
        self.requests: dict = {}
        self.history: list[dict] = []  # requests of every round, in order

    def wire(self, msg):
        return ls.decode(ls.encode(msg), self.cfg)

    def start(self, skip=()):
        for c in self.clients:
            if c.client_id not in skip:
                assert self.server.receive(c.client_id, self.wire(c.start())) is None
        return self.advance()

    def advance(self):
        self.requests = {cid: self.wire(m) for cid, m in self.server.advance().items()}
        self.history.append(self.requests)
        return self.requests

    def answer(self, skip=()):
        """Every live client answers its request; returns the replies."""
        replies = {}
        for cid, req in sorted(self.requests.items()):
            if cid in skip or isinstance(req, ls.Abort):
                continue
            replies[cid] = self.wire(self.clients[cid].receive(req))
            assert self.server.receive(cid, replies[cid]) is None
        return replies

    def key_entry(self, cid: int) -> ls.KeyEntry:
        """Client ``cid``'s keys and seed commitment as relayed to it in share_keys."""
        return self.clients[cid]._state.peers[cid]

    def run_to(self, round_name: str, skip=()):
        """Advance until the clients' pending request is for ``round_name``."""
        self.start(skip)
        while self.clients[self._first_live(skip)].round.value != round_name:
            self.answer(skip)
            self.advance()
        return self.requests

    def _first_live(self, skip):
        return next(c for c in range(self.cfg.num_clients) if c not in skip)
