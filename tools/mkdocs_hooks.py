"""MkDocs hook (mkdocs.yml `hooks:`): links from docs/ to the repository's other files.

The pages link to files outside docs/ relatively (`[CHANGELOG.md](../CHANGELOG.md)`), so that
they work where the repository is browsed. The site holds only docs/: there each such link
becomes its text (a path the reader finds in the checkout), after checking that the file exists,
so that a link to a file that was moved or removed still fails the strict build.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_LOG = logging.getLogger("mkdocs.plugins.statusdb")
_OUTSIDE = re.compile(r"\[([^\]\n]+)\]\(\.\./([^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    def text(match: re.Match[str]) -> str:
        if not (REPO / match[2]).exists():
            _LOG.warning("%s links to ../%s, which does not exist", page.file.src_path, match[2])
        return match[1]

    return _OUTSIDE.sub(text, markdown)
