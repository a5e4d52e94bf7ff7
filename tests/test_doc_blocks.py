"""Every Python block in README.md and docs/ runs as written, or is marked as a fragment on purpose.

A block is a fragment when the line before its opening fence is ``<!-- fragment -->``
(an API outline with names the reader supplies, code for another machine or
an ``await`` outside a coroutine); it is not executed.  Every other block runs
in a fresh namespace; one that imports torch is skipped where torch is not installed.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
MARK = "<!-- fragment -->"


def _blocks():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            line = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(ROOT).as_posix()}:{line}", match.group(1), before.strip() == MARK


BLOCKS = list(_blocks())
RUNNABLE = [(where, code) for where, code, fragment in BLOCKS if not fragment]


def test_blocks_are_found_and_most_of_them_run():
    assert len(BLOCKS) >= 10
    assert {"docs/torch.md", "docs/hazmat.md", "README.md"} <= {where.split(":")[0] for where, _ in RUNNABLE}


def test_every_fragment_mark_stands_before_a_python_block():
    marks = sum(p.read_text(encoding="utf-8").count(MARK) for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
    assert marks == sum(fragment for *_, fragment in BLOCKS)


@pytest.mark.parametrize("where, code", RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_doc_block_runs(where, code):
    if re.search(r"^\s*import torch\b", code, re.M):
        pytest.importorskip("torch")
    exec(compile(code, where, "exec"), {"__name__": "__doc_block__"})
