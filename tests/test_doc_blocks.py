"""Every Python block in README.md and docs/ runs as written, or is marked as a fragment on purpose.

The line before a block's opening fence may hold one marker:

* ``<!-- fragment: REASON -->``: the block is not executed, and REASON says why it
  cannot run in a test (code for another machine, a runtime that only a
  deployment has, a side-by-side comparison that is not one program).  A
  fragment marker without a reason fails the suite.
* ``<!-- continues -->``: the block runs after the previous block of the same
  file, in the namespace that block left (so it may use its names); the
  previous block must itself run.

Every other block runs in a fresh namespace, in a fresh temporary working
directory (so a block may write the files it names).  A block that needs an
optional package (torch, flwr, matplotlib, scikit-learn) is skipped where that
package is not installed; one that names ``"cuda"`` or calls ``.cuda()`` is
skipped where torch sees no CUDA device.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
FRAGMENT = re.compile(r"<!-- fragment(?::\s*(?P<reason>.*?))?\s*-->")
CONTINUES = "<!-- continues -->"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks():
    """(where, code, marker line) of every Python block, in file order."""
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            line = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(ROOT).as_posix()}:{line}", match.group(1), before


BLOCKS = list(_blocks())


def _is_fragment(marker: str) -> bool:
    """Whether the marker line before a block makes it a fragment (with or without a reason)."""
    return FRAGMENT.fullmatch(marker) is not None


def _chain(index: int) -> list[tuple[str, str]]:
    """The blocks that run, in order, to run block ``index``: those it continues, then itself."""
    where, code, marker = BLOCKS[index]
    if marker != CONTINUES:
        return [(where, code)]
    previous = BLOCKS[index - 1] if index else None
    if previous is None or previous[0].split(":")[0] != where.split(":")[0] or _is_fragment(previous[2]):
        raise AssertionError(f"{where}: {CONTINUES} needs a runnable block before it in the same file")
    return [*_chain(index - 1), (where, code)]


RUNNABLE = [(BLOCKS[i][0], _chain(i)) for i in range(len(BLOCKS)) if not _is_fragment(BLOCKS[i][2])]


def test_blocks_are_found_and_most_of_them_run():
    assert len(BLOCKS) >= 10
    files = {"README.md", "docs/fl.md", "docs/hazmat.md", "docs/integrations/flower.md", "docs/torch.md", "docs/transport.md"}
    assert files <= {where.split(":")[0] for where, _ in RUNNABLE}
    assert len(RUNNABLE) >= len(BLOCKS) - 2


def test_every_marker_stands_before_a_python_block():
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS)
    assert len(FRAGMENT.findall(text)) == sum(_is_fragment(marker) for *_, marker in BLOCKS)
    assert text.count(CONTINUES) == sum(marker == CONTINUES for *_, marker in BLOCKS)


def test_every_fragment_says_why():
    bare = [where for where, _, marker in BLOCKS if _is_fragment(marker) and not FRAGMENT.fullmatch(marker)["reason"]]
    assert not bare, f"fragment markers without a reason (write <!-- fragment: why it cannot run -->): {bare}"


OPTIONAL = {"torch", "flwr", "matplotlib", "sklearn"}  # packages of the extras, absent from a plain install


def _skip_without_cuda(code: str) -> None:
    if re.search(r"\.cuda\(\)|[\"']cuda[\"']", code):
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")


@pytest.mark.parametrize("where, chain", RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_doc_block_runs(where, chain, tmp_path, monkeypatch):
    for _, code in chain:
        _skip_without_cuda(code)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_block__"}
    for block_where, code in chain:
        try:
            exec(compile(code, block_where, "exec"), namespace)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in OPTIONAL:
                raise
            pytest.skip(f"{block_where} needs {exc.name}, not installed here")
