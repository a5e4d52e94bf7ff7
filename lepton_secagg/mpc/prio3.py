"""Prio3 (draft-irtf-cfrg-vdaf-20, section 7): sharding, verification, aggregation, unsharding.

Theory of operation: the client encodes its measurement, splits it into
additive shares (the helpers' shares expanded from one XOF seed each, the
leader's share the remainder), proves the encoding valid with the FLP and
splits the proof the same way.  Circuits with joint randomness (SumVec,
Histogram, MultihotCountVec) derive it from "parts" that bind each share to
a blind and the report nonce; the client publishes the parts and each
aggregator recomputes its own, so the joint randomness the aggregators use
is checked against the client's in ``verify_next``.

Every step is a pure function on bytes in the draft's encodings (the test
vectors compare them byte for byte); the only randomness is the ``rand``
argument of ``shard`` (``new_report`` draws it from the injectable rng).
Errors: malformed bytes raise ``DecodeError``; a report that fails
verification raises ``ReportRejected`` naming the step.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic

import numpy as np

from ..exceptions import DecodeError
from ..hazmat import rng as _rng
from .circuits import Count, Histogram, MultihotCountVec, Sum, SumVec
from .errors import ReportRejected
from .field import Field, Field64, Field128, FieldVec
from .flp import Agg, Circuit, Flp, Meas
from .xof import XofTurboShake128, format_dst

__all__ = [
    "Prio3",
    "VerifyState",
    "prio3_count",
    "prio3_sum",
    "prio3_sum_vec",
    "prio3_histogram",
    "prio3_multihot_count_vec",
    "prio3_sum_vec_with_multiproof",
]

USAGE_MEAS_SHARE = 1
USAGE_PROOF_SHARE = 2
USAGE_JOINT_RANDOMNESS = 3
USAGE_PROVE_RANDOMNESS = 4
USAGE_QUERY_RANDOMNESS = 5
USAGE_JOINT_RAND_SEED = 6
USAGE_JOINT_RAND_PART = 7


@dataclass(frozen=True)
class VerifyState:
    """An aggregator's state between ``verify_init`` and ``verify_next``."""

    out_share: FieldVec
    corrected_joint_rand_seed: bytes | None


class Prio3(Generic[Meas, Agg]):
    """One Prio3 instance: an FLP circuit, a number of aggregators and of proofs.

    Args:
        vdaf_id: the 32-bit algorithm id bound into every domain separation tag.
        circuit: the validity circuit (``circuits.py`` or ``l2.py``).
        shares: number of aggregators, 2..255.
        num_proofs: independent FLP proofs per report, 1..255 (soundness
            error falls as its power).
    """

    NONCE_SIZE = 16
    xof = XofTurboShake128

    def __init__(self, vdaf_id: int, circuit: Circuit[Meas, Agg], shares: int, num_proofs: int = 1):
        if isinstance(shares, bool) or not isinstance(shares, int) or not 2 <= shares <= 255:
            raise ValueError(f"shares must be an integer in [2, 255], got {shares!r}.")
        if isinstance(num_proofs, bool) or not isinstance(num_proofs, int) or not 1 <= num_proofs <= 255:
            raise ValueError(f"num_proofs must be an integer in [1, 255], got {num_proofs!r}.")
        self.ID = vdaf_id
        self.SHARES = shares
        self.PROOFS = num_proofs
        self.flp = Flp(circuit)
        self.field: type[Field] = circuit.field
        self.SEED_SIZE = self.VERIFY_KEY_SIZE = self.xof.SEED_SIZE
        self.uses_joint_rand = self.flp.JOINT_RAND_LEN > 0
        self.RAND_SIZE = shares * self.SEED_SIZE * (2 if self.uses_joint_rand else 1)

    # --- the client -----------------------------------------------------------
    def new_report(self, ctx: bytes, measurement: Meas, rng: _rng.Rng | None = None) -> tuple[bytes, bytes, list[bytes]]:
        """Shard ``measurement`` with fresh randomness: ``(nonce, public_share, input_shares)``."""
        source = _rng.resolve(rng)
        nonce = source.bytes(self.NONCE_SIZE)
        public_share, input_shares = self.shard(ctx, measurement, nonce, source.bytes(self.RAND_SIZE))
        return nonce, public_share, input_shares

    def shard(self, ctx: bytes, measurement: Meas, nonce: bytes, rand: bytes) -> tuple[bytes, list[bytes]]:
        """The public share and one input share per aggregator (leader first), encoded."""
        if len(nonce) != self.NONCE_SIZE:
            raise ValueError(f"nonce must be {self.NONCE_SIZE} bytes, got {len(nonce)}.")
        if len(rand) != self.RAND_SIZE:
            raise ValueError(f"rand must be {self.RAND_SIZE} bytes, got {len(rand)}.")
        p, s = self.field.MODULUS, self.SEED_SIZE
        seeds = [rand[i : i + s] for i in range(0, len(rand), s)]
        meas = self.flp.circuit.encode(measurement)
        step = 2 if self.uses_joint_rand else 1
        helper_seeds = seeds[0 : (self.SHARES - 1) * step : step]
        helper_blinds = seeds[1 : (self.SHARES - 1) * step : step] if self.uses_joint_rand else []
        rest = seeds[(self.SHARES - 1) * step :]
        leader_blind, prove_seed = (rest[0], rest[1]) if self.uses_joint_rand else (b"", rest[0])

        leader_meas = meas
        parts = []
        for j, seed in enumerate(helper_seeds, start=1):
            helper_meas = self._helper_meas_share(ctx, j, seed)
            leader_meas = (leader_meas - helper_meas) % p
            if self.uses_joint_rand:
                parts.append(self._joint_rand_part(ctx, j, helper_blinds[j - 1], helper_meas, nonce))
        joint_rands = self.field.zeros(0)  # a circuit without joint randomness reads none
        if self.uses_joint_rand:
            parts.insert(0, self._joint_rand_part(ctx, 0, leader_blind, leader_meas, nonce))
            joint_rands = self._joint_rands(ctx, self._joint_rand_seed(ctx, parts))

        prove_rands = self.xof.expand_into_vec(
            self.field, prove_seed, self._dst(USAGE_PROVE_RANDOMNESS, ctx), bytes([self.PROOFS]),
            self.flp.PROVE_RAND_LEN * self.PROOFS,
        )
        proofs = []
        for k in range(self.PROOFS):
            prove_rand = prove_rands[k * self.flp.PROVE_RAND_LEN : (k + 1) * self.flp.PROVE_RAND_LEN]
            joint_rand = self._slice(joint_rands, k, self.flp.JOINT_RAND_LEN)
            proofs.append(self.flp.prove(meas, prove_rand, joint_rand))
        leader_proofs = np.concatenate(proofs)
        for j, seed in enumerate(helper_seeds, start=1):
            leader_proofs = (leader_proofs - self._helper_proofs_share(ctx, j, seed)) % p

        encode = self.field.encode_vec
        shares = [encode(leader_meas) + encode(leader_proofs) + leader_blind]
        shares += [seed + (helper_blinds[j] if self.uses_joint_rand else b"") for j, seed in enumerate(helper_seeds)]
        return b"".join(parts), shares

    # --- the aggregators ------------------------------------------------------
    def verify_init(self, verify_key: bytes, ctx: bytes, agg_id: int, nonce: bytes, public_share: bytes,
                    input_share: bytes) -> tuple[VerifyState, bytes]:
        """Aggregator ``agg_id``'s state and verifier share for one report."""
        if len(verify_key) != self.VERIFY_KEY_SIZE:
            raise ValueError(f"verify_key must be {self.VERIFY_KEY_SIZE} bytes, got {len(verify_key)}.")
        if not 0 <= agg_id < self.SHARES:
            raise ValueError(f"agg_id must lie in [0, {self.SHARES - 1}], got {agg_id}.")
        if len(nonce) != self.NONCE_SIZE:
            raise ValueError(f"nonce must be {self.NONCE_SIZE} bytes, got {len(nonce)}.")
        parts = self._decode_public_share(public_share)
        meas_share, proofs_share, blind = self._expand_input_share(ctx, agg_id, input_share)
        out_share = self.flp.circuit.truncate(meas_share)

        corrected_seed, own_part, joint_rands = None, b"", self.field.zeros(0)
        if self.uses_joint_rand:
            own_part = self._joint_rand_part(ctx, agg_id, blind, meas_share, nonce)
            parts[agg_id] = own_part
            corrected_seed = self._joint_rand_seed(ctx, parts)
            joint_rands = self._joint_rands(ctx, corrected_seed)

        query_rands = self.xof.expand_into_vec(
            self.field, verify_key, self._dst(USAGE_QUERY_RANDOMNESS, ctx), bytes([self.PROOFS]) + nonce,
            self.flp.QUERY_RAND_LEN * self.PROOFS,
        )
        verifiers = []
        for k in range(self.PROOFS):
            verifiers.append(self.flp.query(
                meas_share,
                self._slice(proofs_share, k, self.flp.PROOF_LEN),
                self._slice(query_rands, k, self.flp.QUERY_RAND_LEN),
                self._slice(joint_rands, k, self.flp.JOINT_RAND_LEN),
                self.SHARES,
            ))
        share = self.field.encode_vec(np.concatenate(verifiers)) + own_part
        return VerifyState(out_share, corrected_seed), share

    def verifier_shares_to_message(self, ctx: bytes, verifier_shares: list[bytes]) -> bytes:
        """Combine all aggregators' verifier shares; refuse the report unless every proof verifies."""
        if len(verifier_shares) != self.SHARES:
            raise ValueError(f"expected {self.SHARES} verifier shares, got {len(verifier_shares)}.")
        n = self.flp.VERIFIER_LEN * self.PROOFS * self.field.ENCODED_SIZE
        tail = self.SEED_SIZE if self.uses_joint_rand else 0
        total, parts = self.field.zeros(self.flp.VERIFIER_LEN * self.PROOFS), []
        for i, share in enumerate(verifier_shares):
            if len(share) != n + tail:
                raise DecodeError(f"verifier share {i}: expected {n + tail} bytes, got {len(share)}.")
            total = (total + self.field.decode_vec(share[:n], what=f"verifier share {i}")) % self.field.MODULUS
            parts.append(share[n:])
        for k in range(self.PROOFS):
            if not self.flp.decide(self._slice(total, k, self.flp.VERIFIER_LEN)):
                raise ReportRejected(f"proof {k} does not verify.", step="verifier_shares_to_message")
        return self._joint_rand_seed(ctx, parts) if self.uses_joint_rand else b""

    def verify_next(self, ctx: bytes, state: VerifyState, message: bytes) -> FieldVec:
        """The output share, once the joint randomness the client used is confirmed."""
        expected = state.corrected_joint_rand_seed or b""
        if len(message) != len(expected):
            raise DecodeError(f"verifier message: expected {len(expected)} bytes, got {len(message)}.")
        if message != expected:
            raise ReportRejected("the joint randomness does not match the client's.", step="verify_next")
        return state.out_share

    def aggregate(self, out_shares: Iterable[FieldVec]) -> FieldVec:
        """Sum of output shares (an aggregate share)."""
        agg = self.field.zeros(self.flp.OUTPUT_LEN)
        for out in out_shares:
            agg = (agg + out) % self.field.MODULUS
        return agg

    def encode_agg_share(self, agg_share: FieldVec) -> bytes:
        return self.field.encode_vec(agg_share)

    def decode_agg_share(self, data: bytes) -> FieldVec:
        vec = self.field.decode_vec(data, what="aggregate share")
        if len(vec) != self.flp.OUTPUT_LEN:
            raise DecodeError(f"aggregate share: expected {self.flp.OUTPUT_LEN} elements, got {len(vec)}.")
        return vec

    def unshard(self, agg_shares: list[bytes], num_measurements: int) -> Agg:
        """The aggregate result from every aggregator's encoded aggregate share."""
        if len(agg_shares) != self.SHARES:
            raise ValueError(f"expected {self.SHARES} aggregate shares, got {len(agg_shares)}.")
        agg = self.aggregate(self.decode_agg_share(a) for a in agg_shares)
        return self.flp.circuit.decode(agg, num_measurements)

    # --- derivations ------------------------------------------------------------
    def _dst(self, usage: int, ctx: bytes) -> bytes:
        return format_dst(0, self.ID, usage) + ctx

    def _helper_meas_share(self, ctx: bytes, agg_id: int, seed: bytes) -> FieldVec:
        return self.xof.expand_into_vec(self.field, seed, self._dst(USAGE_MEAS_SHARE, ctx), bytes([agg_id]),
                                        self.flp.MEAS_LEN)

    def _helper_proofs_share(self, ctx: bytes, agg_id: int, seed: bytes) -> FieldVec:
        return self.xof.expand_into_vec(self.field, seed, self._dst(USAGE_PROOF_SHARE, ctx),
                                        bytes([self.PROOFS, agg_id]), self.flp.PROOF_LEN * self.PROOFS)

    def _joint_rand_part(self, ctx: bytes, agg_id: int, blind: bytes, meas_share: FieldVec, nonce: bytes) -> bytes:
        binder = bytes([agg_id]) + nonce + self.field.encode_vec(meas_share)
        return self.xof.derive_seed(blind, self._dst(USAGE_JOINT_RAND_PART, ctx), binder)

    def _joint_rand_seed(self, ctx: bytes, parts: list[bytes]) -> bytes:
        return self.xof.derive_seed(bytes(self.SEED_SIZE), self._dst(USAGE_JOINT_RAND_SEED, ctx), b"".join(parts))

    def _joint_rands(self, ctx: bytes, seed: bytes) -> FieldVec:
        return self.xof.expand_into_vec(self.field, seed, self._dst(USAGE_JOINT_RANDOMNESS, ctx),
                                        bytes([self.PROOFS]), self.flp.JOINT_RAND_LEN * self.PROOFS)

    @staticmethod
    def _slice(vec: FieldVec, k: int, length: int) -> FieldVec:
        return vec[k * length : (k + 1) * length]

    def _decode_public_share(self, data: bytes) -> list[bytes]:
        """The joint randomness parts, one per aggregator (none without joint randomness)."""
        expected = self.SHARES * self.SEED_SIZE if self.uses_joint_rand else 0
        if len(data) != expected:
            raise DecodeError(f"public share: expected {expected} bytes, got {len(data)}.")
        return [data[i : i + self.SEED_SIZE] for i in range(0, expected, self.SEED_SIZE)]

    def _expand_input_share(self, ctx: bytes, agg_id: int, data: bytes) -> tuple[FieldVec, FieldVec, bytes]:
        """Measurement share, proofs share and blind (empty without joint randomness)."""
        blind_len = self.SEED_SIZE if self.uses_joint_rand else 0
        if agg_id == 0:
            size = self.field.ENCODED_SIZE
            meas_len, proofs_len = self.flp.MEAS_LEN * size, self.flp.PROOF_LEN * self.PROOFS * size
            if len(data) != meas_len + proofs_len + blind_len:
                raise DecodeError(f"leader input share: expected {meas_len + proofs_len + blind_len} bytes, "
                                  f"got {len(data)}.")
            meas = self.field.decode_vec(data[:meas_len], what="leader measurement share")
            proofs = self.field.decode_vec(data[meas_len : meas_len + proofs_len], what="leader proof share")
            blind = data[meas_len + proofs_len :]
        else:
            if len(data) != self.SEED_SIZE + blind_len:
                raise DecodeError(f"helper input share: expected {self.SEED_SIZE + blind_len} bytes, got {len(data)}.")
            seed, blind = data[: self.SEED_SIZE], data[self.SEED_SIZE :]
            meas = self._helper_meas_share(ctx, agg_id, seed)
            proofs = self._helper_proofs_share(ctx, agg_id, seed)
        return meas, proofs, blind


# --- the draft's instantiations -------------------------------------------------
def prio3_count(shares: int = 2) -> Prio3[int, int]:
    return Prio3(0x00000001, Count(Field64), shares)


def prio3_sum(shares: int, max_measurement: int) -> Prio3[int, int]:
    return Prio3(0x00000002, Sum(Field64, max_measurement), shares)


def prio3_sum_vec(shares: int, length: int, max_measurement: int, chunk_length: int) -> Prio3[Sequence[int], list[int]]:
    return Prio3(0x00000003, SumVec(Field128, length, max_measurement, chunk_length), shares)


def prio3_histogram(shares: int, length: int, chunk_length: int) -> Prio3[int, list[int]]:
    return Prio3(0x00000004, Histogram(Field128, length, chunk_length), shares)


def prio3_multihot_count_vec(
    shares: int, length: int, max_weight: int, chunk_length: int
) -> Prio3[Sequence[int], list[int]]:
    return Prio3(0x00000005, MultihotCountVec(Field128, length, max_weight, chunk_length), shares)


def prio3_sum_vec_with_multiproof(shares: int, field: type[Field], num_proofs: int, length: int,
                                  max_measurement: int, chunk_length: int) -> Prio3[Sequence[int], list[int]]:
    """The draft's experimental multiproof SumVec (id 0xFFFFFFFF), e.g. Field64 with 3 proofs."""
    return Prio3(0xFFFFFFFF, SumVec(field, length, max_measurement, chunk_length), shares, num_proofs)
