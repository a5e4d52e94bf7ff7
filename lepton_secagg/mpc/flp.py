"""The generic fully linear proof (FLP) of draft-irtf-cfrg-vdaf-20, section 7.3 ([BBCGGI19], Thm 4.3).

Theory of operation: a validity circuit (``circuits.py``) is an affine
function of the encoded measurement plus calls to a few *gadgets* (small
degree-2 polynomials).  The prover records the inputs of every call of a
gadget as the values of its *wire polynomials* at the ``p``-th roots of
unity (value 0 is a random seed, values 1..calls the call inputs), and sends
the *gadget polynomial* ``G = g(wires)`` as its values at the first
``2(p - 1) + 1`` of the ``2p``-th roots.  The verifier, holding only additive
shares, re-runs the circuit taking each gadget output from ``G``, and checks
``G(t) == g(wires(t))`` at a random point ``t``: both sides are linear in the
shares, so each aggregator computes its share of them and only the sums are
revealed (the *verifier*).

Circuits call gadgets in batches (one matrix row per call), so the whole
circuit is a handful of vectorised passes; the call order inside a batch is
the spec's call order.  Only degree-2 gadgets are supported, which covers
every circuit of the draft: it makes the gadget polynomial's missing
``2p``-th value a closed form (its top coefficient is zero).
"""
from __future__ import annotations

from typing import Callable, Generic, Sequence, TypeVar

import numpy as np

from .errors import ReportRejected
from .field import Field, FieldVec

__all__ = ["Gadget", "Mul", "PolyEval", "ParallelSum", "Circuit", "Flp", "next_power_of_2"]


def next_power_of_2(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


class Gadget:
    """A degree-2 polynomial map from ``ARITY`` field elements to one, evaluated row-wise."""

    ARITY: int
    DEGREE = 2

    def eval(self, field: type[Field], rows: FieldVec) -> FieldVec:
        """Outputs for a matrix of inputs of shape ``(calls, ARITY)``."""
        raise NotImplementedError


class Mul(Gadget):
    """``x * y``."""

    ARITY = 2

    def eval(self, field: type[Field], rows: FieldVec) -> FieldVec:
        products: FieldVec = rows[:, 0] * rows[:, 1] % field.MODULUS
        return products


class PolyEval(Gadget):
    """A univariate polynomial of degree 2 (coefficients lowest first), e.g. ``x^2 - x``."""

    ARITY = 1

    def __init__(self, coeffs: Sequence[int]):
        trimmed = list(coeffs)
        while trimmed and trimmed[-1] == 0:
            trimmed.pop()
        if len(trimmed) != 3:
            raise ValueError(f"PolyEval: only degree-2 polynomials are supported, got {len(trimmed) - 1}.")
        self.coeffs = trimmed

    def eval(self, field: type[Field], rows: FieldVec) -> FieldVec:
        x, p = rows[:, 0], field.MODULUS
        acc: FieldVec = np.full(len(x), self.coeffs[-1] % p, dtype=object)
        for c in reversed(self.coeffs[:-1]):
            acc = (acc * x + c) % p
        return acc


class ParallelSum(Gadget):
    """``sum_i x_{2i} * x_{2i+1}`` over ``count`` pairs: ``count`` Mul gadgets summed."""

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"ParallelSum: count must be at least 1, got {count}.")
        self.count = count
        self.ARITY = 2 * count

    def eval(self, field: type[Field], rows: FieldVec) -> FieldVec:
        sums: FieldVec = (rows[:, 0::2] * rows[:, 1::2] % field.MODULUS).sum(axis=1) % field.MODULUS
        return sums


# The circuit asks for gadget outputs through this: (gadget index, input rows) -> outputs.
GadgetCall = Callable[[int, FieldVec], FieldVec]

# A circuit's measurement type and the type its decoded aggregate has.
Meas = TypeVar("Meas")
Agg = TypeVar("Agg")


class Circuit(Generic[Meas, Agg]):
    """A validity circuit and its encoding (the spec's ``Valid``); subclasses fill the lengths.

    ``eval`` must call each gadget ``GADGET_CALLS[i]`` times in all (rows summed
    over its calls of ``call``) and return ``EVAL_OUTPUT_LEN`` elements that are
    all zero exactly when the measurement is valid.
    """

    field: type[Field]
    MEAS_LEN: int
    JOINT_RAND_LEN: int
    OUTPUT_LEN: int
    EVAL_OUTPUT_LEN: int
    GADGETS: list[Gadget]
    GADGET_CALLS: list[int]

    def encode(self, measurement: Meas) -> FieldVec:
        raise NotImplementedError

    def eval(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall) -> FieldVec:
        raise NotImplementedError

    def truncate(self, meas: FieldVec) -> FieldVec:
        raise NotImplementedError

    def decode(self, output: FieldVec, num_measurements: int) -> Agg:
        raise NotImplementedError

    # --- shared helpers for the chunked range checks ----------------------
    def chunked_bit_check(self, meas: FieldVec, joint_rand: FieldVec, num_shares: int, call: GadgetCall,
                          chunk_length: int, count: int) -> int:
        """``sum_i sum_j r_i^(j+1) x_ij (x_ij - 1/s)`` over the first ``count`` entries, in chunks.

        Zero (with high probability over ``r``) iff every checked entry is 0 or 1;
        the ``1/s`` makes the constant add up over ``s`` shares.
        """
        p = self.field.MODULUS
        calls = self.GADGET_CALLS[0]
        padded = self.field.zeros(calls * chunk_length)
        padded[:count] = meas[:count]
        x = padded.reshape(calls, chunk_length)
        r_powers = np.empty((calls, chunk_length), dtype=object)
        r_powers[:, 0] = joint_rand[:calls]
        for j in range(1, chunk_length):
            r_powers[:, j] = r_powers[:, j - 1] * joint_rand[:calls] % p
        rows = np.empty((calls, 2 * chunk_length), dtype=object)
        rows[:, 0::2] = r_powers * x % p
        rows[:, 1::2] = (x - self.field.inv(num_shares)) % p
        return int(call(0, rows).sum() % p)


class _Recorder(Generic[Meas, Agg]):
    """Collects the input rows of each gadget's calls; answers with true or proof-given outputs."""

    def __init__(self, circuit: Circuit[Meas, Agg], outputs: Callable[[int, FieldVec, int], FieldVec]):
        self.rows: list[list[FieldVec]] = [[] for _ in circuit.GADGETS]
        self._circuit, self._outputs = circuit, outputs

    def __call__(self, index: int, rows: FieldVec) -> FieldVec:
        done = sum(len(r) for r in self.rows[index])
        if done + len(rows) > self._circuit.GADGET_CALLS[index]:
            raise ValueError(f"circuit calls gadget {index} more than GADGET_CALLS says.")
        self.rows[index].append(rows)
        return self._outputs(index, rows, done)

    def wires(self, index: int, seeds: FieldVec, p: int) -> FieldVec:
        """The ``(ARITY, p)`` wire values: seeds, then one column per call, then zeros."""
        g = self._circuit.GADGETS[index]
        wires = self._circuit.field.zeros((g.ARITY, p))
        wires[:, 0] = seeds
        calls = np.concatenate(self.rows[index]) if self.rows[index] else wires[:, :0].T
        if len(calls) != self._circuit.GADGET_CALLS[index]:
            raise ValueError(f"circuit called gadget {index} {len(calls)} times, not {self._circuit.GADGET_CALLS[index]}.")
        wires[:, 1 : 1 + len(calls)] = calls.T
        return wires


class Flp(Generic[Meas, Agg]):
    """Prove, query and decide for one circuit; lengths as in the spec."""

    def __init__(self, circuit: Circuit[Meas, Agg]):
        self.circuit = circuit
        self.field = circuit.field
        for g in circuit.GADGETS:
            if g.DEGREE != 2:
                raise ValueError("Flp: only degree-2 gadgets are supported.")
        self.MEAS_LEN = circuit.MEAS_LEN
        self.OUTPUT_LEN = circuit.OUTPUT_LEN
        self.JOINT_RAND_LEN = circuit.JOINT_RAND_LEN
        self.PROVE_RAND_LEN = sum(g.ARITY for g in circuit.GADGETS)
        self.QUERY_RAND_LEN = len(circuit.GADGETS) + (circuit.EVAL_OUTPUT_LEN if circuit.EVAL_OUTPUT_LEN > 1 else 0)
        self._p = [next_power_of_2(1 + calls) for calls in circuit.GADGET_CALLS]
        self.PROOF_LEN = sum(g.ARITY + 2 * (p - 1) + 1 for g, p in zip(circuit.GADGETS, self._p))
        self.VERIFIER_LEN = 1 + sum(g.ARITY + 1 for g in circuit.GADGETS)

    def soundness_error(self) -> float:
        """An upper bound on the chance that one proof of an invalid input is accepted.

        Each gadget test is a nonzero polynomial of degree ``2(p - 1)`` hit at a
        random point outside the ``p``-th roots; the chunked digit checks are
        polynomials of degree ``chunk_length`` in one joint random value each;
        reducing several circuit outputs costs ``1/|F|`` more.
        """
        size = self.field.MODULUS
        gadget = sum(2 * (p - 1) for p in self._p) / (size - max(self._p))
        joint = getattr(self.circuit, "chunk_length", 0) if self.JOINT_RAND_LEN else 0
        reduce = 1 if self.circuit.EVAL_OUTPUT_LEN > 1 else 0
        return gadget + (joint + reduce) / size

    def prove(self, meas: FieldVec, prove_rand: FieldVec, joint_rand: FieldVec) -> FieldVec:
        """The proof: per gadget, its wire seeds then its gadget polynomial's values."""
        field, circuit = self.field, self.circuit
        rec: _Recorder[Meas, Agg] = _Recorder(circuit, lambda i, rows, _done: circuit.GADGETS[i].eval(field, rows))
        circuit.eval(meas, joint_rand, 1, rec)
        parts, offset = [], 0
        for i, (g, p) in enumerate(zip(circuit.GADGETS, self._p)):
            seeds = prove_rand[offset : offset + g.ARITY]
            offset += g.ARITY
            wires = rec.wires(i, seeds, p)
            # G at the 2p-th roots: the even ones are the p-th roots, where the wires are
            # known; the odd ones are the coset s * w_p^k, one size-p transform per wire.
            coset = field.coset_values(wires)
            gadget_values = np.empty(2 * p, dtype=object)
            gadget_values[0::2] = g.eval(field, wires.T)
            gadget_values[1::2] = g.eval(field, coset.T)
            parts += [seeds, gadget_values[: 2 * (p - 1) + 1]]
        return np.concatenate(parts)

    def query(self, meas: FieldVec, proof: FieldVec, query_rand: FieldVec, joint_rand: FieldVec,
              num_shares: int) -> FieldVec:
        """This share's verifier: reduced circuit output, then per gadget the wire and gadget checks."""
        field, circuit, prime = self.field, self.circuit, self.field.MODULUS
        seeds, polys, offset = [], [], 0
        for g, p in zip(circuit.GADGETS, self._p):
            seeds.append(proof[offset : offset + g.ARITY])
            offset += g.ARITY
            polys.append(self._complete(proof[offset : offset + 2 * (p - 1) + 1], 2 * p))
            offset += 2 * (p - 1) + 1

        # Call k of gadget i answers G_i(alpha^k), the (2k)-th of the 2p-th roots.
        def outputs(i: int, rows: FieldVec, done: int) -> FieldVec:
            answers: FieldVec = polys[i][2 * (done + 1) : 2 * (done + len(rows)) + 1 : 2]
            return answers

        rec: _Recorder[Meas, Agg] = _Recorder(circuit, outputs)
        out = np.asarray(circuit.eval(meas, joint_rand, num_shares, rec), dtype=object)
        if circuit.EVAL_OUTPUT_LEN > 1:
            v = int((out * query_rand[: circuit.EVAL_OUTPUT_LEN] % prime).sum() % prime)
            query_rand = query_rand[circuit.EVAL_OUTPUT_LEN :]
        else:
            v = int(out[0])
        verifier = [np.array([v], dtype=object)]
        for i, (g, p) in enumerate(zip(circuit.GADGETS, self._p)):
            t = int(query_rand[i])
            if pow(t, p, prime) == 1:
                # t would be a wire node: the verifier would leak a gadget input.
                raise ReportRejected("the query point is a root of unity.", step="verify_init")
            wires = rec.wires(i, seeds[i], p)
            verifier.append(field.lagrange_eval(wires, t))
            verifier.append(field.lagrange_eval(polys[i][None, :], t))
        return np.concatenate(verifier)

    def decide(self, verifier: FieldVec) -> bool:
        """Accept iff the circuit output is zero and every gadget check holds."""
        if len(verifier) != self.VERIFIER_LEN:
            return False
        if verifier[0] != 0:
            return False
        offset = 1
        for g in self.circuit.GADGETS:
            wire_checks = verifier[offset : offset + g.ARITY]
            offset += g.ARITY
            if g.eval(self.field, wire_checks[None, :])[0] != verifier[offset]:
                return False
            offset += 1
        return True

    def _complete(self, values: FieldVec, n: int) -> FieldVec:
        """Append the ``n``-th value of a polynomial of degree < n - 1 given its first ``n - 1`` values.

        The top coefficient ``(1/n) sum_i y_i w^i`` is zero, so
        ``y_(n-1) = -w * sum_(i < n-1) y_i w^i``.
        """
        prime = self.field.MODULUS
        w = self.field.root(n)
        partial = int((values * self.field.powers(w, n - 1) % prime).sum() % prime)
        return np.concatenate([values, np.array([(-w * partial) % prime], dtype=object)])
