"""Every Python block of the README runs as written (the quick start, the array example)."""
from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_the_quick_start_and_the_array_example():
    assert len(BLOCKS) >= 2
    assert "ls.testing.simulate" in BLOCKS[0] and "ls.arrays.plan" in BLOCKS[1]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {})
