"""The documentation site (docs/, mkdocs.yml) stays whole: the README's Quickstart is the one
that opens docs/getting-started.md, the docstring reference names every public module, and
every page is in the site's navigation. (`make lint` builds the site with `--strict`.)
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import statusdb

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _section(text: str, title: str) -> str:
    """The `## title` section of a Markdown text, up to the next `## ` heading or the infra
    block's end marker."""
    body = ("\n" + text).split(f"\n## {title}\n", 1)[1]
    body = re.split(r"\n## |\n<!-- END infra sections -->", body, maxsplit=1)[0]
    return body


def test_the_readme_quickstart_is_the_getting_started_one() -> None:
    readme = _section((ROOT / "README.md").read_text(), "Quickstart")
    site = _section((DOCS / "getting-started.md").read_text(), "Quickstart")
    # The README links into the site's page; the page links to its own sections.
    assert readme.replace("docs/getting-started.md#", "#") == site


def test_the_docstring_reference_names_every_public_module() -> None:
    named = set(re.findall(r"^::: statusdb\.(\w+)$", (DOCS / "reference.md").read_text(), re.M))
    public = {
        name for name in statusdb.__all__ if isinstance(getattr(statusdb, name), types.ModuleType)
    }
    assert named == public


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s+([\w-]+\.md)$", config, re.M))
    assert listed == {page.name for page in DOCS.glob("*.md")}
