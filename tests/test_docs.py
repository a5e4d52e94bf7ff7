"""The protocol documentation stays in step with the code.

* the state diagrams in docs/protocol.md are what docs/_tools/state_diagrams.py
  generates from the transition tables;
* docs/wire-format.md has a section for every tag of ``wire.TAGS``, listing the
  class's fields in order, and names every message class;
* every test and every code function named in the client-protection table of
  docs/security.md exists.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_secagg import messages, wire

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _section(text: str, heading: str) -> str:
    """The text from ``heading`` to the next heading of the same or a higher level."""
    start = text.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    nxt = re.compile(r"^#{1,%d} " % level, re.M).search(text, start + len(heading))
    return text[start : nxt.start() if nxt else len(text)]


def test_state_diagrams_are_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(DOCS / "_tools" / "state_diagrams.py"), "--check", str(DOCS / "protocol.md")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("tag", sorted(wire.TAGS))
def test_every_tag_has_a_section_with_its_fields_in_order(tag):
    text = (DOCS / "wire-format.md").read_text(encoding="utf-8")
    cls, spec = wire.TAGS[tag]
    heading = f"### `{cls.__name__}` (tag {tag})"
    assert heading in text, f"docs/wire-format.md lacks the heading {heading!r}"
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| `(\w+)` \|", _section(text, heading), re.M)
    documented = [(int(pos), name, codec) for pos, name, codec in rows]
    expected = [(i + 1, name, codec) for i, (name, codec) in enumerate(spec)]
    assert documented == expected, f"{cls.__name__}: the field table differs from wire.TAGS[{tag}]"


def test_every_message_class_is_named_in_the_wire_format():
    text = (DOCS / "wire-format.md").read_text(encoding="utf-8")
    classes = [name for name in messages.__all__ if dataclasses.is_dataclass(getattr(messages, name))]
    assert len(classes) >= 12
    missing = [name for name in classes if f"`{name}`" not in text]
    assert not missing, f"docs/wire-format.md does not name {missing}"


def _protection_rows() -> list[list[str]]:
    text = (DOCS / "security.md").read_text(encoding="utf-8")
    rows = []
    for heading in ("## Client protections", "## Server protections"):
        section = _section(text, heading)
        found = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ")]
        found = [r for r in found if r[0].strip() != "threat"]
        assert len(found) >= 15, f"the table under {heading!r} in docs/security.md is missing or short"
        rows += found
    return rows


def _defined(folder: Path, name: str, pattern: str = "*.py") -> list[Path]:
    needle = re.compile(rf"^\s*(?:(?:async\s+)?def {re.escape(name)}\(|class {re.escape(name)}\b)", re.M)
    return [p for p in folder.rglob(pattern) if needle.search(p.read_text(encoding="utf-8"))]


def test_every_test_in_the_security_table_exists():
    for threat, _, test_cell in _protection_rows():
        names = re.findall(r"`(test_\w+)`", test_cell)
        assert names, f"no test named for threat {threat.strip()!r}"
        where = re.search(r"\((tests/[\w/]+\.py)\)", test_cell)
        path = ROOT / (where.group(1) if where else "tests/test_hostile_server.py")
        for name in names:
            assert path.exists() and _defined(path.parent, name, path.name), f"{path.relative_to(ROOT)} has no def {name}"


def test_every_function_in_the_security_table_exists():
    package = ROOT / "lepton_secagg"
    not_functions = {"completed", "CLIENT_TRANSITIONS", "SERVER_RECEIVE"}  # a round name and tables, named in the checks column
    for threat, check_cell, _ in _protection_rows():
        names = [n.split(".")[-1] for n in re.findall(r"`([\w.]+)`", check_cell)]
        functions = [n for n in names if n not in not_functions]
        assert functions, f"no code check named for threat {threat.strip()!r}"
        for fn in functions:
            assert _defined(package, fn), f"no def {fn} in lepton_secagg/ (threat {threat.strip()!r})"
