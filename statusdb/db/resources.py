"""Where statusdb's SQL files live, installed or in a checkout.

The named queries are package data (`statusdb/db/sql/`). The migrations stay at the repository
root (`migrations/`), and a wheel carries them inside the package (`statusdb/_data/migrations`);
an editable install or a checkout reads them at the root. Callers never need to know which.
"""

from __future__ import annotations

from pathlib import Path

_DB_DIR = Path(__file__).resolve().parent
_PACKAGE_DIR = _DB_DIR.parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"statusdb cannot find its {name}/ folder: looked in {_PACKAGE_DIR / '_data'} and "
        f"{_PACKAGE_DIR.parent}. Reinstall the statusdb package."
    )


def sql_dir() -> Path:
    """The folder of named query files (`*.sql`), inside the package."""
    return _DB_DIR / "sql"


def migrations_dir() -> Path:
    """The folder of yoyo migrations (`NNNN_name.sql` + `NNNN_name.rollback.sql`)."""
    return _find("migrations")
