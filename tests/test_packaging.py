"""The built wheel works on its own: SQL files inside the package, `statusdb migrate` runs.

Builds a wheel from this checkout, installs it into a fresh virtualenv outside the checkout and
runs it from an unrelated folder, so nothing can silently come from the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# One xdist worker builds this module's module-scoped fixtures once (not once per worker).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def outside() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="statusdb-packaging-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STATUSDB_", "PYTHON", "VIRTUAL_ENV", "PG"))
    }


@pytest.fixture(scope="module")
def wheel(outside: Path, clean_env: dict[str, str]) -> Path:
    dist = outside / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        cwd=outside,
        env=clean_env,
    )
    (built,) = dist.glob("statusdb-*.whl")
    return built


@pytest.fixture(scope="module")
def venv_bin(outside: Path, wheel: Path, clean_env: dict[str, str]) -> Path:
    # A venv without pip of its own (ensurepip is ~3 s of CPU): the checkout's pip installs
    # into it (--python). Nothing byte-compiled at install: what the tests import compiles then.
    venv = outside / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=outside, env=clean_env)
    python = str(venv / "bin" / "python")
    pip_install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    _run([*pip_install, "--no-compile", str(wheel)], cwd=outside, env=clean_env)
    return venv / "bin"


def _repo_files(folder: str) -> list[str]:
    return sorted(p.name for p in (REPO / folder).iterdir() if p.is_file())


def test_wheel_carries_sql_and_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for folder, packaged_as in (
        ("statusdb/db/sql", "statusdb/db/sql"),
        ("migrations", "statusdb/_data/migrations"),
    ):
        packaged = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith(f"{packaged_as}/"))
        assert packaged == _repo_files(folder)
    assert "statusdb/tooling/cli.py" in names
    assert "statusdb/py.typed" in names  # PEP 561: mypy checks callers against our types


def test_installed_package_finds_its_sql(
    venv_bin: Path, outside: Path, clean_env: dict[str, str]
) -> None:
    probe = (
        "import json, statusdb, statusdb.db.resources as r; "
        "print(json.dumps([statusdb.__file__, str(r.sql_dir()), str(r.migrations_dir())]))"
    )
    workdir = outside / "elsewhere"
    workdir.mkdir(exist_ok=True)
    out = _run([str(venv_bin / "python"), "-c", probe], cwd=workdir, env=clean_env).stdout
    package_file, sql_dir, migrations_dir = (Path(p) for p in json.loads(out))
    package_dir = package_file.parent
    assert package_dir.is_relative_to(venv_bin.parent)
    assert not package_dir.is_relative_to(REPO)
    assert sql_dir == package_dir / "db" / "sql"
    assert migrations_dir == package_dir / "_data" / "migrations"
    assert sorted(p.name for p in sql_dir.iterdir()) == _repo_files("statusdb/db/sql")
    assert sorted(p.name for p in migrations_dir.iterdir()) == _repo_files("migrations")


def test_installed_cli_migrates(
    venv_bin: Path, outside: Path, clean_env: dict[str, str], empty_dsn: str
) -> None:
    workdir = outside / "elsewhere"
    workdir.mkdir(exist_ok=True)
    statusdb = str(venv_bin / "statusdb")
    out = _run([statusdb, "migrate", "--dsn", empty_dsn], cwd=workdir, env=clean_env).stdout
    expected = sorted(
        n.removesuffix(".sql")
        for n in _repo_files("migrations")
        if n.endswith(".sql") and not n.endswith(".rollback.sql")
    )
    assert out.splitlines() == [f"applied {m}" for m in expected]
    status = _run([statusdb, "status", "--dsn", empty_dsn], cwd=workdir, env=clean_env).stdout
    assert [line.split() for line in status.splitlines()] == [["applied", m] for m in expected]


# -- typed for users (PEP 561) --------------------------------------------------------------

_TYPED_OK = """\
from typing import Any

import psycopg

from statusdb import pages, teams, views
from statusdb.errors import NotFound


def page_name(conn: psycopg.Connection[Any], slug: str) -> str | None:
    view = views.page_view(conn, slug)
    return None if view is None else view.page.name


def make_team(conn: psycopg.Connection[Any]) -> str:
    try:
        return teams.create(conn, name="Platform").id
    except NotFound:
        raise


def page_ids(conn: psycopg.Connection[Any], team_id: str) -> list[str]:
    return [page.id for page in pages.list_for_team(conn, team_id)]
"""

#: Two mistakes a typed statusdb catches: a row field with the wrong type, a missing keyword.
_TYPED_WRONG = """\
from typing import Any

import psycopg

from statusdb import teams, views


def page_name(conn: psycopg.Connection[Any], slug: str) -> int:
    view = views.page_view(conn, slug)
    return 0 if view is None else view.page.name


def make_team(conn: psycopg.Connection[Any]) -> None:
    teams.create(conn, title="Platform")
"""


def test_installed_package_is_typed_for_mypy(
    venv_bin: Path, outside: Path, clean_env: dict[str, str]
) -> None:
    """A service checking its code with `mypy --strict` sees statusdb's types (py.typed).

    One mypy run over two scripts (one cold start): good.py must have no error, wrong.py the
    two mistakes. The checkout's dev mypy resolves imports in the wheel's fresh venv.
    """
    workdir = outside / "service"
    workdir.mkdir(exist_ok=True)
    (workdir / "good.py").write_text(_TYPED_OK)
    (workdir / "wrong.py").write_text(_TYPED_WRONG)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--python-executable",
            str(venv_bin / "python"),
            "--cache-dir",
            str(outside / "mypy-cache"),
            "good.py",
            "wrong.py",
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=clean_env,
        check=False,
    )
    out = result.stdout + result.stderr
    assert "import-untyped" not in out, out
    assert "good.py" not in out, out
    assert "wrong.py:10: error: Incompatible return value type" in out, out
    assert 'wrong.py:14: error: Unexpected keyword argument "title"' in out, out
