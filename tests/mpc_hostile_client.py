"""A hostile Prio3 client for the loopback test: uploads an over-bound update with a forged norm claim.

Run: python -m tests.mpc_hostile_client HOST:PORT LEADER.pub HELPER.pub TASK LENGTH BITS
"""
from __future__ import annotations

import asyncio
import sys

import numpy as np

from lepton_secagg.mpc.l2 import BoundedL2VecSum, norm_bound_sq, prio3_bounded_l2_vec_sum
from lepton_secagg.mpc.service import submit


class ForgedNorm(BoundedL2VecSum):
    """Real entries (far over the bound), norm digits claiming exactly the bound."""

    def __init__(self, honest):
        self.__dict__.update(honest.__dict__)

    def encode(self, measurement):
        digits = [((int(v) + self.offset) >> i) & 1 for v in measurement for i in range(self.bits)]
        return np.array(digits + list(self.norm.encode([self.max_norm_sq])), dtype=object)


def main(argv):
    address, leader_pub, helper_pub, task, length, bits = argv
    length, bits = int(length), int(bits)
    vdaf = prio3_bounded_l2_vec_sum(2, length, bits, norm_bound_sq(1.0, bits))
    vdaf.flp.circuit = ForgedNorm(vdaf.flp.circuit)
    huge = np.full(length, 2 ** (bits - 1) - 1)  # every entry at the top of its range: norm >> bound
    host, port = address.rsplit(":", 1)
    keys = [bytes.fromhex(open(p).read().strip()) for p in (leader_pub, helper_pub)]
    accepted, reason = asyncio.run(submit(host, int(port), vdaf, task.encode(), huge, *keys))
    print("accepted" if accepted else f"rejected: {reason}")
    return 0 if not accepted else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
