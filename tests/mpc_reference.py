"""A slow, independent Prio3 for cross-checking lepton_secagg.mpc (tests only).

Written straight from draft-irtf-cfrg-vdaf-20 with plain Python lists: one
gadget call at a time, wire polynomials by a naive inverse DFT, gadget
polynomials multiplied coefficient by coefficient, and the verifier's
gadget value at ``t`` by Lagrange interpolation through the points the proof
gives (no NTT, no closed-form completion, no numpy).  It shares only the
primitives (TurboSHAKE128 from pycryptodome) with the library.  It is checked
against an official SumVec vector before it is trusted with ours.
"""
from __future__ import annotations

from Crypto.Hash import TurboSHAKE128

VERSION = 18


class F:
    def __init__(self, modulus: int, size: int, gen: int, order: int):
        self.p, self.size, self.gen, self.order = modulus, size, gen, order

    def root(self, n):
        return pow(self.gen, self.order // n, self.p)

    def inv(self, x):
        return pow(x, self.p - 2, self.p)

    def enc(self, vec):
        return b"".join(x.to_bytes(self.size, "little") for x in vec)

    def dec(self, data):
        return [int.from_bytes(data[i : i + self.size], "little") for i in range(0, len(data), self.size)]


F64 = F(2**32 * 4294967295 + 1, 8, pow(7, 4294967295, 2**32 * 4294967295 + 1), 2**32)
P128 = 2**66 * 4611686018427387897 + 1
F128 = F(P128, 16, pow(7, 4611686018427387897, P128), 2**66)


class Xof:
    def __init__(self, seed, dst, binder):
        self.h = TurboSHAKE128.new(domain=1)
        self.h.update(len(dst).to_bytes(2, "little") + dst + bytes([len(seed)]) + seed + binder)

    def vec(self, field, n):
        out, mask = [], (1 << field.p.bit_length()) - 1
        while len(out) < n:
            x = int.from_bytes(self.h.read(field.size), "little") & mask
            if x < field.p:
                out.append(x)
        return out


def dst(vdaf_id, usage, ctx):
    return bytes([VERSION, 0]) + vdaf_id.to_bytes(4, "big") + usage.to_bytes(2, "big") + ctx


def npow2(n):
    k = 1
    while k < n:
        k *= 2
    return k


# --- circuits: scalar code, one gadget call at a time ---------------------------
class SumVecRef:
    """SumVec(length, max_measurement, chunk) over a given field."""

    def __init__(self, field, length, max_measurement, chunk):
        self.f, self.length, self.chunk = field, length, chunk
        self.bits = max_measurement.bit_length()
        self.last = max_measurement - (2 ** (self.bits - 1) - 1)
        self.meas_len = length * self.bits
        self.calls = [-(-self.meas_len // chunk)]
        self.arity = [2 * chunk]
        self.joint_rand_len = self.calls[0]
        self.eval_len = 1

    def encode(self, m):
        out = []
        for v in m:
            hi = v > 2 ** (self.bits - 1) - 1
            base = v - self.last if hi else v
            out += [(base >> i) & 1 for i in range(self.bits - 1)] + [int(hi)]
        return out

    def gadget(self, i, x):
        return sum(x[2 * j] * x[2 * j + 1] for j in range(len(x) // 2)) % self.f.p

    def bit_check(self, meas, jr, s, call, count, chunk):
        p, total = self.f.p, 0
        for i in range(-(-count // chunk)):
            inputs, r = [], jr[i]
            for j in range(chunk):
                idx = i * chunk + j
                x = meas[idx] if idx < count else 0
                inputs += [r * x % p, (x - self.f.inv(s)) % p]
                r = r * jr[i] % p
            total = (total + call(0, inputs)) % p
        return total

    def eval(self, meas, jr, s, call):
        return [self.bit_check(meas, jr, s, call, self.meas_len, self.chunk)]

    def truncate(self, meas):
        w = [1 << i for i in range(self.bits - 1)] + [self.last]
        return [sum(w[k] * meas[i * self.bits + k] for k in range(self.bits)) % self.f.p for i in range(self.length)]


class L2Ref(SumVecRef):
    """The bounded-L2 vector sum, written from its description in docs/mpc.md."""

    def __init__(self, length, bits, max_norm_sq, chunk, norm_chunk):
        self.f, self.length, self.ebits, self.chunk, self.norm_chunk = F128, length, bits, chunk, norm_chunk
        self.nbits = max_norm_sq.bit_length()
        self.last = max_norm_sq - (2 ** (self.nbits - 1) - 1)
        self.meas_len = length * bits + self.nbits
        self.calls = [-(-self.meas_len // chunk), -(-length // norm_chunk)]
        self.arity = [2 * chunk, 2 * norm_chunk]
        self.joint_rand_len = self.calls[0]
        self.eval_len = 2

    def encode(self, q):
        out = []
        for v in q:
            out += [((v + 2 ** (self.ebits - 1)) >> i) & 1 for i in range(self.ebits)]
        n = sum(v * v for v in q)
        hi = n > 2 ** (self.nbits - 1) - 1
        base = n - self.last if hi else n
        return out + [(base >> i) & 1 for i in range(self.nbits - 1)] + [int(hi)]

    def offsets(self, meas):
        e = self.ebits
        return [sum(meas[i * e + k] << k for k in range(e)) % self.f.p for i in range(self.length)]

    def eval(self, meas, jr, s, call):
        p = self.f.p
        bits_ok = self.bit_check(meas, jr, s, call, self.meas_len, self.chunk)
        q = [(u - 2 ** (self.ebits - 1) * self.f.inv(s)) % p for u in self.offsets(meas)]
        norm = 0
        for i in range(self.calls[1]):
            inputs = []
            for j in range(self.norm_chunk):
                idx = i * self.norm_chunk + j
                x = q[idx] if idx < self.length else 0
                inputs += [x, x]
            norm = (norm + call(1, inputs)) % p
        tail = meas[self.length * self.ebits :]
        claimed = (sum(tail[k] << k for k in range(self.nbits - 1)) + self.last * tail[-1]) % p
        return [bits_ok, (norm - claimed) % p]

    def truncate(self, meas):
        return self.offsets(meas)


# --- the FLP, naively ----------------------------------------------------------------
def coeffs_from_roots(f, values):
    n = len(values)
    w_inv = f.inv(f.root(n))
    n_inv = f.inv(n)
    return [sum(v * pow(w_inv, i * k, f.p) for i, v in enumerate(values)) * n_inv % f.p for k in range(n)]


def horner(f, c, x):
    acc = 0
    for a in reversed(c):
        acc = (acc * x + a) % f.p
    return acc


def poly_mul(f, a, b):
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] = (out[i + j] + x * y) % f.p
    return out


def interp_eval(f, xs, ys, t):
    total = 0
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        num = den = 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * (t - xj) % f.p
                den = den * (xi - xj) % f.p
        total = (total + yi * num * f.inv(den)) % f.p
    return total


def prove(c, meas, prove_rand, jr):
    f = c.f
    records = [[] for _ in c.arity]

    def call(i, x):
        records[i].append(x)
        return c.gadget(i, x)

    c.eval(meas, jr, 1, call)
    proof, off = [], 0
    for i, arity in enumerate(c.arity):
        p = npow2(1 + c.calls[i])
        seeds = prove_rand[off : off + arity]
        off += arity
        wires = [[seeds[j]] + [r[j] for r in records[i]] + [0] * (p - 1 - len(records[i])) for j in range(arity)]
        polys = [coeffs_from_roots(f, w) for w in wires]
        g = [0]
        for j in range(0, arity, 2):
            prod = poly_mul(f, polys[j], polys[j + 1])
            g = [(x + y) % f.p for x, y in zip(g + [0] * (len(prod) - len(g)), prod)]
        w2 = f.root(2 * p)
        proof += seeds + [horner(f, g, pow(w2, k, f.p)) for k in range(2 * (p - 1) + 1)]
    return proof


def query(c, meas, proof, query_rand, jr, s):
    f = c.f
    parts, off = [], 0
    for i, arity in enumerate(c.arity):
        p = npow2(1 + c.calls[i])
        parts.append((proof[off : off + arity], proof[off + arity : off + arity + 2 * p - 1], p))
        off += arity + 2 * p - 1
    records = [[] for _ in c.arity]

    def call(i, x):
        records[i].append(x)
        return parts[i][1][2 * len(records[i])]

    out = c.eval(meas, jr, s, call)
    if c.eval_len > 1:
        v = sum(r * o for r, o in zip(query_rand, out)) % f.p
        query_rand = query_rand[c.eval_len :]
    else:
        v = out[0]
    verifier = [v]
    for i, arity in enumerate(c.arity):
        seeds, gvals, p = parts[i]
        t = query_rand[i]
        wires = [[seeds[j]] + [r[j] for r in records[i]] + [0] * (p - 1 - len(records[i])) for j in range(arity)]
        verifier += [horner(f, coeffs_from_roots(f, w), t) for w in wires]
        w2 = f.root(2 * p)
        verifier.append(interp_eval(f, [pow(w2, k, f.p) for k in range(2 * p - 1)], gvals, t))
    return verifier


def decide(c, verifier):
    if verifier[0] != 0:
        return False
    off = 1
    for i, arity in enumerate(c.arity):
        if c.gadget(i, verifier[off : off + arity]) != verifier[off + arity]:
            return False
        off += arity + 1
    return True


# --- Prio3 (joint randomness circuits only), naively ------------------------------------
class Prio3Ref:
    def __init__(self, vdaf_id, circuit, shares, proofs=1):
        self.id, self.c, self.s, self.proofs = vdaf_id, circuit, shares, proofs
        self.proof_len = sum(a + 2 * npow2(1 + n) - 1 for a, n in zip(circuit.arity, circuit.calls))
        self.qlen = len(circuit.arity) + (circuit.eval_len if circuit.eval_len > 1 else 0)

    def _vec(self, seed, usage, ctx, binder, n):
        return Xof(seed, dst(self.id, usage, ctx), binder).vec(self.c.f, n)

    def _seed(self, seed, usage, ctx, binder):
        return Xof(seed, dst(self.id, usage, ctx), binder).h.read(32)

    def _part(self, ctx, agg, blind, meas, nonce):
        return self._seed(blind, 7, ctx, bytes([agg]) + nonce + self.c.f.enc(meas))

    def _jr(self, ctx, parts):
        seed = self._seed(bytes(32), 6, ctx, b"".join(parts))
        return seed, self._vec(seed, 3, ctx, bytes([self.proofs]), self.c.joint_rand_len * self.proofs)

    def shard(self, ctx, measurement, nonce, rand):
        f, p = self.c.f, self.c.f.p
        seeds = [rand[i : i + 32] for i in range(0, len(rand), 32)]
        meas = self.c.encode(measurement)
        leader = list(meas)
        parts = []
        for j in range(1, self.s):
            k, blind = seeds[2 * (j - 1)], seeds[2 * (j - 1) + 1]
            share = self._vec(k, 1, ctx, bytes([j]), len(meas))
            leader = [(a - b) % p for a, b in zip(leader, share)]
            parts.append(self._part(ctx, j, blind, share, nonce))
        leader_blind, k_prove = seeds[2 * (self.s - 1)], seeds[2 * (self.s - 1) + 1]
        parts.insert(0, self._part(ctx, 0, leader_blind, leader, nonce))
        _, jr = self._jr(ctx, parts)
        pr_len = sum(self.c.arity)
        prove_rands = self._vec(k_prove, 4, ctx, bytes([self.proofs]), pr_len * self.proofs)
        proofs = []
        for k in range(self.proofs):
            proofs += prove(self.c, meas, prove_rands[k * pr_len : (k + 1) * pr_len],
                            jr[k * self.c.joint_rand_len : (k + 1) * self.c.joint_rand_len])
        for j in range(1, self.s):
            share = self._vec(seeds[2 * (j - 1)], 2, ctx, bytes([self.proofs, j]), len(proofs))
            proofs = [(a - b) % p for a, b in zip(proofs, share)]
        shares = [f.enc(leader) + f.enc(proofs) + leader_blind]
        shares += [seeds[2 * (j - 1)] + seeds[2 * (j - 1) + 1] for j in range(1, self.s)]
        return b"".join(parts), shares

    def verify_init(self, key, ctx, agg, nonce, public, share):
        f, n = self.c.f, self.c.meas_len
        if agg == 0:
            vec = f.dec(share[:-32])
            meas, proofs, blind = vec[:n], vec[n:], share[-32:]
        else:
            meas = self._vec(share[:32], 1, ctx, bytes([agg]), n)
            proofs = self._vec(share[:32], 2, ctx, bytes([self.proofs, agg]), self.proof_len * self.proofs)
            blind = share[32:]
        parts = [public[i : i + 32] for i in range(0, len(public), 32)]
        parts[agg] = self._part(ctx, agg, blind, meas, nonce)
        seed, jr = self._jr(ctx, parts)
        qr = self._vec(key, 5, ctx, bytes([self.proofs]) + nonce, self.qlen * self.proofs)
        ver = []
        for k in range(self.proofs):
            ver += query(self.c, meas, proofs[k * self.proof_len : (k + 1) * self.proof_len],
                         qr[k * self.qlen : (k + 1) * self.qlen],
                         jr[k * self.c.joint_rand_len : (k + 1) * self.c.joint_rand_len], self.s)
        return (self.c.truncate(meas), seed), f.enc(ver) + parts[agg]

    def verifier_shares_to_message(self, ctx, shares):
        f = self.c.f
        total = None
        for s in shares:
            v = f.dec(s[:-32])
            total = v if total is None else [(a + b) % f.p for a, b in zip(total, v)]
        per = len(total) // self.proofs
        if not all(decide(self.c, total[k * per : (k + 1) * per]) for k in range(self.proofs)):
            return None
        return self._seed(bytes(32), 6, ctx, b"".join(s[-32:] for s in shares))
