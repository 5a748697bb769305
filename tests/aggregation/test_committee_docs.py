"""docs/committee.md: the powmod_many example runs and prints what the page says it prints."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "committee.md"


def test_bigmod_example_prints_what_the_page_says():
    text = DOC.read_text()
    parts = re.split(r"```python\n(.*?)```", text, flags=re.S)
    mine = [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2) if "powmod_many" in parts[i]]
    assert len(mine) == 1
    code, after = mine[0]
    want = re.match(r"\s*prints `([^`]+)`", after).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    assert out.getvalue().strip() == want
