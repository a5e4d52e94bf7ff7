"""Reports and batches: the Python API a framework calls around the Prio3 steps (sans-I/O).

``make_report`` is the client side.  ``Aggregator`` is one aggregator's side
of a batch: it refuses a report id it has seen (replay), runs
``verify_init``, and after the verifier message keeps the output share; the
aggregate share is released only for a batch of at least ``min_batch_size``
accepted reports.  ``aggregate_in_process`` drives every aggregator in one
process (simulation, tests, the poisoning demo); the network services in
``mpc/service.py`` drive the same objects over TCP.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic

from ..exceptions import DecodeError, LocalProtocolError
from ..hazmat.rng import Rng
from .field import FieldVec
from .flp import Agg, Meas
from .errors import ReportRejected
from .prio3 import Prio3, VerifyState

__all__ = ["Report", "make_report", "Aggregator", "BatchResult", "aggregate_in_process"]


@dataclass(frozen=True)
class Report:
    """One client's upload: a 16-byte report id (the Prio3 nonce), the public share, one input share per aggregator."""

    report_id: bytes
    public_share: bytes
    input_shares: tuple[bytes, ...]


def make_report(vdaf: Prio3[Meas, Agg], ctx: bytes, measurement: Meas, rng: Rng | None = None) -> Report:
    """Encode, prove and shard ``measurement``; the report id is a fresh random nonce."""
    nonce, public, shares = vdaf.new_report(ctx, measurement, rng)
    return Report(nonce, public, tuple(shares))


@dataclass
class Aggregator(Generic[Meas, Agg]):
    """One aggregator's state for one batch.

    Args:
        vdaf: the Prio3 instance (same parameters at every aggregator).
        agg_id: 0 for the leader, 1.. for helpers.
        verify_key: the secret shared by the aggregators (never by clients).
        ctx: application context bound into every derivation.
        min_batch_size: the fewest accepted reports whose aggregate share is released.
    """

    vdaf: Prio3[Meas, Agg]
    agg_id: int
    verify_key: bytes
    ctx: bytes
    min_batch_size: int = 1
    seen: set[bytes] = field(default_factory=set)
    pending: dict[bytes, VerifyState] = field(default_factory=dict)
    out_shares: dict[bytes, FieldVec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_batch_size < 1:
            raise ValueError(f"min_batch_size must be at least 1, got {self.min_batch_size}.")

    def start(self, report_id: bytes, public_share: bytes, input_share: bytes) -> bytes:
        """``verify_init`` for a new report; returns this aggregator's verifier share."""
        if report_id in self.seen:
            raise ReportRejected(f"report id {report_id.hex()} was already seen (replay).", step="verify_init")
        self.seen.add(report_id)
        state, share = self.vdaf.verify_init(self.verify_key, self.ctx, self.agg_id, report_id, public_share,
                                             input_share)
        self.pending[report_id] = state
        return share

    def finish(self, report_id: bytes, message: bytes) -> None:
        """``verify_next``: keep the output share if the verifier message confirms the report."""
        state = self.pending.pop(report_id)
        self.out_shares[report_id] = self.vdaf.verify_next(self.ctx, state, message)

    def drop(self, report_id: bytes) -> None:
        """Forget a report the batch refused (its id stays seen)."""
        self.pending.pop(report_id, None)

    def aggregate_share(self, report_ids: Iterable[bytes]) -> bytes:
        """The encoded aggregate share over ``report_ids`` (all accepted here)."""
        ids = list(report_ids)
        if len(ids) < self.min_batch_size:
            raise LocalProtocolError(f"batch of {len(ids)} reports is below min_batch_size={self.min_batch_size}.")
        missing = [i.hex() for i in ids if i not in self.out_shares]
        if missing:
            raise LocalProtocolError(f"reports {missing[:3]} are not accepted at aggregator {self.agg_id}.")
        share = self.vdaf.aggregate(self.out_shares.pop(i) for i in ids)
        return self.vdaf.encode_agg_share(share)


@dataclass(frozen=True)
class BatchResult(Generic[Agg]):
    """The outcome of one batch: the aggregate, the accepted ids, and why each other report was refused."""

    result: Agg
    accepted: tuple[bytes, ...]
    rejected: dict[bytes, str]


def verify_report(vdaf: Prio3[Meas, Agg], ctx: bytes, aggregators: list[Aggregator[Meas, Agg]], report: Report) -> None:
    """Run one report through every aggregator; raise ``ReportRejected``/``DecodeError`` if refused."""
    if any(report.report_id in agg.seen for agg in aggregators):
        raise ReportRejected(f"report id {report.report_id.hex()} was already seen (replay).", step="verify_init")
    try:
        shares = [agg.start(report.report_id, report.public_share, report.input_shares[agg.agg_id])
                  for agg in aggregators]
        message = vdaf.verifier_shares_to_message(ctx, shares)
        for agg in aggregators:
            agg.finish(report.report_id, message)
    except (ReportRejected, DecodeError):
        for agg in aggregators:
            agg.drop(report.report_id)
            agg.out_shares.pop(report.report_id, None)
        raise


def aggregate_in_process(
    vdaf: Prio3[Meas, Agg], verify_key: bytes, ctx: bytes, reports: Iterable[Report], *, min_batch_size: int = 1
) -> BatchResult[Agg]:
    """Verify and aggregate ``reports`` with all aggregators in this process; invalid reports are left out."""
    aggregators = [Aggregator(vdaf, i, verify_key, ctx, min_batch_size) for i in range(vdaf.SHARES)]
    accepted: list[bytes] = []
    rejected: dict[bytes, str] = {}
    for report in reports:
        if len(report.input_shares) != vdaf.SHARES:
            rejected[report.report_id] = f"expected {vdaf.SHARES} input shares, got {len(report.input_shares)}"
            continue
        try:
            verify_report(vdaf, ctx, aggregators, report)
        except (ReportRejected, DecodeError) as exc:
            rejected[report.report_id] = str(exc)
        else:
            accepted.append(report.report_id)
    shares = [agg.aggregate_share(accepted) for agg in aggregators]
    return BatchResult(vdaf.unshard(shares, len(accepted)), tuple(accepted), rejected)
