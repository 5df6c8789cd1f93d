"""Every Python block of README.md and docs/*.md runs as written, alone, against a freshly
migrated database.

A newcomer copies one block into a file, not the whole page: each block is extracted and run by
itself in a fresh interpreter (this venv's python), in an empty folder, with `STATUSDB_DSN`
naming this test's own freshly migrated database. Blocks that listen or loop are bounded, so
each must finish within the timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT_S = 60

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, int, str]]:
    """(page, line number, code) of every ```python block, in order."""
    found = []
    for page in PAGES:
        text = page.read_text()
        name = page.relative_to(ROOT).as_posix()
        found += [
            (name, text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)
        ]
    return found


BLOCKS = _blocks()


def test_the_pages_have_python_blocks() -> None:
    assert len(BLOCKS) >= 10
    assert any(page == "README.md" for page, _, _ in BLOCKS)


@pytest.mark.parametrize(
    ("page", "line", "code"), BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS]
)
def test_readme_block_runs_alone(page: str, line: int, code: str, dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "STATUSDB_"))}
    env["STATUSDB_DSN"] = dsn
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"{page} block at line {line} failed:\n{result.stdout}\n{result.stderr}"
    )
