"""The README's quick start runs as written."""
from __future__ import annotations

import pathlib
import re


def test_readme_quick_start_runs():
    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
