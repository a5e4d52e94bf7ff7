"""The public annotations are precise: mypy --strict catches misuse of the protocol core (issue 12).

Two snippets go through ``mypy.api.run`` (strict, unreachable code
reported) against this checkout's ``lepton_secagg``: one misuses the API on
every marked line and must get exactly those errors (line and error code),
the other uses it correctly and must pass.  Were a signature to fall back to
``Any`` or ``Optional``, a marked misuse would go unreported, or a correct
line would be reported, and the test would fail.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed (it comes with the dev extra)")

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """\
import random

import numpy as np

import lepton_secagg as ls
from lepton_secagg import wire
from lepton_secagg.hazmat.quantize import Quantizer
from lepton_secagg.hazmat.ring import RingVector
from lepton_secagg.messages import (
    Abort, AdvertiseKeys, ClientMessage, MaskedInput, MaskedInputRequest, ServerMessage, ShareKeys, ShareKeysRequest,
)

cfg = ls.Config(num_clients=5, vector_length=4)
client = ls.Client(cfg, 0)
server = ls.Server(cfg)
quantizer = Quantizer(clip=1.0, num_clients=5)
advert = client.start()
request = ShareKeysRequest(b"", ())
"""

# Each misuse carries the error code mypy must report on its line, and nothing else may be reported.
MISUSE = """\
client.receive(advert)  # E: call-overload  (a client message handed to the client)
server.receive(0, request)  # E: arg-type  (a server message handed to the server)
wrong_reply: MaskedInput = client.receive(request)  # E: assignment  (a share_keys request gets ShareKeys)
text: str = server.result()  # E: assignment
first: ShareKeys = server.advance()[0]  # E: assignment  (the server sends requests, not client replies)
if cfg.threshold is None:
    print("never")  # E: unreachable  (threshold is always set after construction)
if quantizer.step is None:
    print("never")  # E: unreachable  (so is the quantizer's step)
missing: None = cfg.corrupt_fraction  # E: assignment
wire.decode(b"").sender  # E: union-attr  (not every message has a sender)
MaskedInput(0, np.zeros(4, dtype=np.float64))  # E: arg-type  (a ring vector is uint32 or uint64)
ls.Client(cfg, 1, rng=random.Random())  # E: arg-type  (secrets only from an Rng)
"""

CORRECT = """\
sent: AdvertiseKeys = advert
reply: ShareKeys = client.receive(request)
gone: None = client.receive(Abort("bye"))
masked: MaskedInput = client.receive(MaskedInputRequest(b"", ()))
refusal: Abort | None = server.receive(0, advert)
requests: dict[int, ServerMessage] = server.advance()
anything: ClientMessage | None = client.receive(requests[0])
threshold: int = cfg.threshold + 1
limit: int = cfg.max_message_bytes
step: float = quantizer.step
total: RingVector = server.result().sum
included: tuple[int, ...] = ls.testing.simulate(cfg, [np.zeros(4, dtype=np.uint32)] * 5).included
encoded, clipped = quantizer.encode(np.zeros(3))
words: RingVector = encoded
"""

_MARK = re.compile(r"#\s*E:\s*([a-z-]+)")
_REPORTED = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[int, str]]]:
    """Run mypy once on both snippets; file name -> {(line, error code)}."""
    tmp = tmp_path_factory.mktemp("typing")
    config = tmp / "mypy.ini"
    # mypy_path: this checkout's package, whatever else is installed; follow_imports=silent:
    # the package is analysed for its types, and only the snippets' own errors are reported.
    config.write_text(textwrap.dedent(f"""\
        [mypy]
        strict = True
        warn_unreachable = True
        follow_imports = silent
        mypy_path = {ROOT}
        cache_dir = {tmp / "cache"}
        show_error_codes = True
        """))
    files = {}
    for name, body in (("misuse.py", MISUSE), ("correct.py", CORRECT)):
        path = tmp / name
        path.write_text(PRELUDE + body)
        files[name] = str(path)
    stdout, stderr, _ = api.run(["--config-file", str(config), "--no-error-summary", *files.values()])
    assert not stderr, stderr
    found: dict[str, set[tuple[int, str]]] = {name: set() for name in files}
    for line in stdout.splitlines():
        m = _REPORTED.match(line)
        if m is None:
            assert ": note: " in line, f"unexpected mypy output: {line}"
            continue
        found[Path(m["file"]).name].add((int(m["line"]), m["code"]))
    return found


def _expected(body: str) -> set[tuple[int, str]]:
    offset = PRELUDE.count("\n")
    return {(offset + i + 1, m[1]) for i, text in enumerate(body.splitlines()) if (m := _MARK.search(text))}


def test_misuse_is_reported_line_by_line(reports: dict[str, set[tuple[int, str]]]) -> None:
    expected = _expected(MISUSE)
    assert len(expected) == 11
    assert reports["misuse.py"] == expected


def test_correct_use_passes_strict(reports: dict[str, set[tuple[int, str]]]) -> None:
    assert reports["correct.py"] == set()
