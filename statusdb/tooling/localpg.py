"""A local PostgreSQL cluster that statusdb starts for itself.

This is a *development and test* cluster, never a production server:

* it listens on 127.0.0.1 only, on a free port chosen at `initdb` time and stored in the
  cluster's `statusdb.conf` (chosen again if that port is busy when the cluster starts);
* its unix socket lives in a folder next to the data directory that only its owner can enter;
* authentication is `trust` for local connections (unix socket and loopback): any local user
  who can reach 127.0.0.1 can connect as the `postgres` superuser without a password, and
  open replication connections (`create_replica` makes streaming replicas that way);
* `fsync` can be turned off (`LocalCluster(..., fsync=False)`), which is only acceptable for
  throwaway test clusters: a crash can then corrupt the data.

PostgreSQL refuses to run as root. When statusdb runs as root, the server programs (`initdb`,
`pg_ctl`, `postgres`) run as the `postgres` OS user through `runuser -u postgres --`, and the
folders statusdb creates for the cluster are handed to that user. Python itself never runs as
another user.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

__all__ = [
    "ClusterError",
    "LocalCluster",
    "PostgresNotFoundError",
    "default_data_dir",
    "ensure_running",
    "find_bindir",
]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
SERVER_OS_USER = "postgres"
"""The OS user the server runs as when statusdb itself runs as root."""

_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_CONF_NAME = "statusdb.conf"
_PORT_RE = re.compile(r"^\s*port\s*=\s*(\d+)", re.MULTILINE)
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; PostgreSQL appends "/.s.PGSQL.NNNNN"
_START_TIMEOUT_S = 60
_START_ATTEMPTS = 3

INSTALL_HINT = (
    "Install the PostgreSQL 15 server: on Debian/Ubuntu `sudo apt-get install postgresql` "
    "(or postgresql-15), on Fedora `sudo dnf install postgresql-server`, on macOS "
    "`brew install postgresql@15`. Or set STATUSDB_PG_BINDIR to the folder that holds "
    "initdb, pg_ctl and postgres."
)


class ClusterError(RuntimeError):
    """The local cluster could not be set up, started or stopped."""


class PostgresNotFoundError(ClusterError):
    """The PostgreSQL server programs are not installed (or not where we were told)."""


# --------------------------------------------------------------------------------------------
# Locating things


def _has_server_programs(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _SERVER_PROGRAMS)


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 -- fixed argv, no shell
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version))


def find_bindir(bindir: Path | str | None = None) -> Path:
    """The folder holding `initdb`, `pg_ctl` and `postgres`.

    An explicit `bindir` (or `$STATUSDB_PG_BINDIR`) is used as is and must hold them. Otherwise
    look in `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`, then `$PATH`.
    """
    explicit = bindir if bindir is not None else os.environ.get("STATUSDB_PG_BINDIR") or None
    if explicit is not None:
        path = Path(explicit)
        if _has_server_programs(path):
            return path
        raise PostgresNotFoundError(
            f"PostgreSQL server programs (initdb, pg_ctl, postgres) are not in {path}. "
            + INSTALL_HINT
        )
    candidates: list[Path] = []
    from_pg_config = _pg_config_bindir()
    if from_pg_config is not None:
        candidates.append(from_pg_config)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(p) for p in debian)
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if _has_server_programs(candidate):
            return candidate
    raise PostgresNotFoundError(
        "PostgreSQL server programs (initdb, pg_ctl, postgres) were not found: looked in "
        "`pg_config --bindir`, /usr/lib/postgresql/*/bin and $PATH. " + INSTALL_HINT
    )


def _running_as_root() -> bool:
    return os.geteuid() == 0


def default_data_dir() -> Path:
    """Where `ensure_running()` keeps its cluster when not told otherwise.

    `$STATUSDB_DATA_DIR` if set; as root `/var/tmp/statusdb-root/pgdata` (a place the `postgres`
    user can own and traverse); otherwise `$XDG_DATA_HOME/statusdb/pgdata`, by default
    `~/.local/share/statusdb/pgdata`.
    """
    env = os.environ.get("STATUSDB_DATA_DIR")
    if env:
        return Path(env).expanduser().absolute()
    if _running_as_root():
        # Ownership of this predictable path is checked in LocalCluster._prepare_dirs.
        return Path("/var/tmp/statusdb-root/pgdata")  # noqa: S108
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "statusdb" / "pgdata"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # PostgreSQL binds with SO_REUSEADDR too, so TIME_WAIT leftovers don't count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    # A postmaster.pid left by a crash or reboot may name a pid reused by something else.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the signal check
    return b"postgres" in cmdline or b"postmaster" in cmdline


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# The cluster


class LocalCluster:
    """A PostgreSQL cluster in `data_dir`, run by the current user (or `postgres` for root).

    Its log file is `<data_dir's parent>/<data_dir's name>.log` and its unix socket lives in
    `<data_dir's parent>/<data_dir's name>.run/` (or a short folder under the temp dir when
    that path would be too long for a unix socket).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        fsync: bool = True,
        bindir: Path | str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.base_dir = self.data_dir.parent
        self.fsync = fsync
        self._bindir_arg = bindir
        self._bindir: Path | None = None
        self.log_file = self.base_dir / f"{self.data_dir.name}.log"
        self.socket_dir = self._choose_socket_dir()

    def __repr__(self) -> str:
        return f"LocalCluster({str(self.data_dir)!r})"

    # -- facts --------------------------------------------------------------------------

    @property
    def bindir(self) -> Path:
        """The PostgreSQL programs folder (raises PostgresNotFoundError when missing)."""
        if self._bindir is None:
            self._bindir = find_bindir(self._bindir_arg)
        return self._bindir

    @property
    def conf_file(self) -> Path:
        return self.data_dir / _CONF_NAME

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def _postmaster_pid(self) -> list[str] | None:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None

    def is_running(self) -> bool:
        """True when a server process for this data directory is alive."""
        lines = self._postmaster_pid()
        if not lines:
            return False
        try:
            pid = int(lines[0])
        except ValueError:
            return False
        return pid > 0 and _pid_alive(pid)

    @property
    def port(self) -> int:
        """The port the cluster listens (or will listen) on."""
        lines = self._postmaster_pid()
        if lines and len(lines) >= 4 and self.is_running():
            with contextlib.suppress(ValueError):
                return int(lines[3])
        stored = self._stored_port()
        if stored is None:
            raise ClusterError(f"the cluster in {self.data_dir} is not initialized")
        return stored

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq conninfo string for `dbname` on this cluster (TCP on 127.0.0.1)."""
        return make_conninfo(host=HOST, port=self.port, user=SUPERUSER, dbname=dbname)

    # -- life cycle ---------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the cluster with `initdb` (does nothing when it already exists)."""
        if self.is_initialized():
            return
        bindir = self.bindir
        self._prepare_dirs()
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(
                f"{self.data_dir} exists, is not empty and holds no PostgreSQL cluster; "
                "remove it or choose another data directory"
            )
        args = [
            str(bindir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-instructions",
        ]
        if not self.fsync:
            args.append("--no-sync")
        self._run(args, what="initdb")
        self._write_hba()
        postgresql_conf = self.data_dir / "postgresql.conf"
        with postgresql_conf.open("a", encoding="utf-8") as f:
            f.write(
                f"\n# Managed by statusdb.tooling.localpg\ninclude_if_exists = '{_CONF_NAME}'\n"
            )
        self._write_conf(_free_port())

    def start(self) -> None:
        """Start the server and wait until it accepts connections (no-op when running)."""
        if self.is_running():
            return
        if not self.is_initialized():
            raise ClusterError(f"no cluster in {self.data_dir}: call initialize() first")
        bindir = self.bindir
        self._prepare_dirs()
        last_error = ""
        for _attempt in range(_START_ATTEMPTS):
            port = self._stored_port()
            if port is None or not _port_is_free(port):
                port = _free_port()
            self._write_conf(port)
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            result = self._run(
                [
                    str(bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.data_dir),
                    "--log",
                    str(self.log_file),
                    "--wait",
                    "--timeout",
                    str(_START_TIMEOUT_S),
                    "--silent",
                    "start",
                ],
                what="pg_ctl start",
                check=False,
            )
            if result.returncode == 0:
                return
            log_tail = self._log_since(log_offset)
            last_error = _one_line(result.stderr + " " + log_tail)[-800:]
            if "Address already in use" not in log_tail:
                break  # a port race is the only failure worth another try
        raise ClusterError(
            f"could not start PostgreSQL in {self.data_dir} (log: {self.log_file}): {last_error}"
        )

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server (`fast` shutdown by default; `immediate` is a crash, as when the
        machine dies); no-op when it is not running."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode must be smart, fast or immediate, not {mode!r}")
        if not self.is_running():
            return
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "--pgdata",
                str(self.data_dir),
                "--mode",
                mode,
                "--wait",
                "--timeout",
                str(_START_TIMEOUT_S),
                "--silent",
                "stop",
            ],
            what="pg_ctl stop",
        )

    def ensure_database(self, dbname: str) -> str:
        """Create `dbname` on this (running) cluster if missing; return its conninfo."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return self.dsn(dbname)

    def create_replica(self, data_dir: Path | str) -> LocalCluster:
        """A streaming replica of this (running) cluster in `data_dir`, not yet started.

        `pg_basebackup -R` (from the same bindir as this cluster's initdb) copies the cluster
        over the replication protocol on 127.0.0.1 and writes `standby.signal` and
        `primary_conninfo`; `start()` then gives the replica a port and socket folder of its
        own (the copied `statusdb.conf` names the primary's). The replica is a hot standby
        (read-only queries) with this cluster's settings (fsync included).

        The copy streams through a physical replication slot created first (reserving WAL at
        once), which the replica then keeps using: without it, a checkpoint on this cluster
        (another copy's, say) can remove WAL the copy has not streamed yet ("requested WAL
        segment ... has already been removed"). The slot keeps WAL for the replica while it is
        stopped: `remove_replica` stops it and drops the slot.
        Needs the `host replication` line of pg_hba.conf that `initialize()` writes (clusters
        made by older statusdb versions lack it).
        """
        if not self.is_running():
            raise ClusterError(f"the cluster in {self.data_dir} must run to be copied")
        replica = LocalCluster(data_dir, fsync=self.fsync, bindir=self.bindir)
        if replica.data_dir.exists() and any(replica.data_dir.iterdir()):
            raise ClusterError(f"{replica.data_dir} exists and is not empty")
        basebackup = self.bindir / "pg_basebackup"
        if not os.access(basebackup, os.X_OK):
            raise PostgresNotFoundError(f"pg_basebackup is not in {self.bindir}. " + INSTALL_HINT)
        replica._prepare_dirs()
        slot = replica.slot_name
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_create_physical_replication_slot(%s, true)"
                " WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = %s)",
                (slot, slot),
            )
        args = [
            str(basebackup),
            "--slot",
            slot,
            "--pgdata",
            str(replica.data_dir),
            "--dbname",
            make_conninfo(host=HOST, port=self.port, user=SUPERUSER),
            "--write-recovery-conf",
            "--wal-method",
            "stream",
            "--checkpoint",
            "fast",
        ]
        if not self.fsync:
            args.append("--no-sync")
        try:
            replica._run(args, what="pg_basebackup")
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                self.remove_replica(replica)
            raise
        return replica

    @property
    def slot_name(self) -> str:
        """The replication slot this cluster uses when it is a replica (`create_replica`)."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return f"statusdb_replica_{digest}"

    def remove_replica(self, replica: LocalCluster) -> None:
        """Stop `replica` (immediately) and drop its replication slot on this cluster, so
        that this cluster no longer keeps WAL for it. Its folder is left to the caller."""
        replica.stop(mode="immediate")
        if self.is_running():
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (replica.slot_name,),
                )

    def is_replica(self) -> bool:
        """True when this data directory is a standby (has `standby.signal`)."""
        return (self.data_dir / "standby.signal").is_file()

    # -- helpers ------------------------------------------------------------------------

    def _choose_socket_dir(self) -> Path:
        preferred = self.base_dir / f"{self.data_dir.name}.run"
        if len(str(preferred)) + len("/.s.PGSQL.65535") <= _MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"statusdb-{os.geteuid()}-{digest}"

    def _stored_port(self) -> int | None:
        try:
            match = _PORT_RE.search(self.conf_file.read_text(encoding="utf-8"))
        except OSError:
            return None
        return int(match.group(1)) if match else None

    def _write_conf(self, port: int) -> None:
        settings = [
            "# Written by statusdb.tooling.localpg: a local development/test cluster.",
            f"port = {port}",
            f"listen_addresses = '{HOST}'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "unix_socket_permissions = 0700",
            "logging_collector = off",
        ]
        if not self.fsync:
            settings += [
                "# Test cluster: durability traded for speed. Never use with data you keep.",
                "fsync = off",
                "synchronous_commit = off",
                "full_page_writes = off",
            ]
        self.conf_file.write_text("\n".join(settings) + "\n", encoding="utf-8")
        self._give_to_server_user(self.conf_file)

    def _write_hba(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# statusdb local development cluster: trust, local connections only.\n"
            "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
            "local   all       all                 trust\n"
            "host    all       all   127.0.0.1/32  trust\n"
            "host    all       all   ::1/128       trust\n"
            "# Streaming replicas on this machine (LocalCluster.create_replica).\n"
            "local   replication  all              trust\n"
            "host    replication  all  127.0.0.1/32  trust\n",
            encoding="utf-8",
        )
        self._give_to_server_user(hba)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(offset)
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _server_user(self) -> pwd.struct_passwd | None:
        """The OS user to run PostgreSQL programs as, or None for the current user."""
        if not _running_as_root():
            return None
        try:
            return pwd.getpwnam(SERVER_OS_USER)
        except KeyError:
            raise ClusterError(
                "running as root: PostgreSQL refuses to run as root and there is no "
                f"'{SERVER_OS_USER}' OS user to run it as. Install the postgresql package "
                "(it creates that user) or run statusdb as a normal user."
            ) from None

    def _give_to_server_user(self, path: Path) -> None:
        user = self._server_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _prepare_dirs(self) -> None:
        """Create the base, data and socket folders; as root hand new ones to `postgres`."""
        user = self._server_user()
        created: list[Path] = []
        for directory in (*reversed(self.data_dir.parents), self.data_dir, self.socket_dir):
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                continue
            created.append(directory)
        if user is None:
            return
        for directory in (self.base_dir, self.data_dir, self.socket_dir):
            info = directory.lstat()
            if directory.is_symlink() or info.st_uid not in (0, user.pw_uid):
                raise ClusterError(
                    f"{directory} is a symlink or belongs to another user (uid {info.st_uid}); "
                    "refusing to run a cluster there as root"
                )
        for directory in {*created, self.data_dir, self.socket_dir}:
            os.chown(directory, user.pw_uid, user.pw_gid)
        check = self._run(
            ["test", "-w", str(self.base_dir), "-a", "-x", str(self.base_dir)],
            what="access check",
            check=False,
        )
        if check.returncode != 0:
            raise ClusterError(
                f"running as root, PostgreSQL runs as the '{SERVER_OS_USER}' user, who cannot "
                f"write to {self.base_dir} (or reach it: /root is usually mode 700). Choose a "
                f"data directory elsewhere (STATUSDB_DATA_DIR), e.g. under /var/tmp."
            )

    def _command(self, args: Sequence[str]) -> list[str]:
        if self._server_user() is None:
            return list(args)
        runuser = shutil.which("runuser")
        if runuser is not None:
            return [runuser, "-u", SERVER_OS_USER, "--", *args]
        sudo = shutil.which("sudo")
        if sudo is not None:
            return [sudo, "-n", "-u", SERVER_OS_USER, "--", *args]
        raise ClusterError(
            "running as root, but neither runuser nor sudo is available to run PostgreSQL as "
            f"the '{SERVER_OS_USER}' user; run statusdb as a normal user instead"
        )

    def _run(
        self, args: Sequence[str], *, what: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.setdefault("LC_ALL", "C")
        try:
            result = subprocess.run(  # noqa: S603 -- argv list, no shell
                self._command(args),
                capture_output=True,
                text=True,
                env=env,
                cwd="/",  # the postgres user may not be able to enter our working directory
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise ClusterError(f"{what} could not run: {exc}") from exc
        if check and result.returncode != 0:
            detail = _one_line(result.stderr or result.stdout)[-800:]
            raise ClusterError(f"{what} failed for {self.data_dir}: {detail}")
        return result


# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(base_dir: Path) -> Iterator[None]:
    """Serialize concurrent `ensure_running` calls on one data directory."""
    lock_path = base_dir / ".statusdb.lock"
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def ensure_running(data_dir: Path | None = None, *, fsync: bool = True) -> LocalCluster:
    """Initialize (first time only) and start the local cluster; reuse it when it exists."""
    cluster = LocalCluster(data_dir if data_dir is not None else default_data_dir(), fsync=fsync)
    if cluster.is_running():
        return cluster
    cluster.bindir  # noqa: B018 -- fail early, with the install hint, before creating folders
    cluster._prepare_dirs()
    with _locked(cluster.base_dir):
        cluster.initialize()
        cluster.start()
    return cluster
