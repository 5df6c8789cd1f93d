"""Where statusdb's SQL files live, installed or in a checkout.

A wheel carries `sql/` and `migrations/` inside the package (`statusdb/_data/`); a checkout or an
editable install keeps them at the repository root. Callers never need to know which.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"statusdb cannot find its {name}/ folder: looked in {_PACKAGE_DIR / '_data'} and "
        f"{_PACKAGE_DIR.parent}. Reinstall the statusdb package."
    )


def sql_dir() -> Path:
    """The folder of named query files (`*.sql`)."""
    return _find("sql")


def migrations_dir() -> Path:
    """The folder of yoyo migrations (`NNNN_name.sql` + `NNNN_name.rollback.sql`)."""
    return _find("migrations")
