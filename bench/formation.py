"""A pg_auto_failover formation on loopback: a monitor, a primary and a synchronous standby.

Used by the failover tests (tests/test_failover.py) and the failover bench (bench/failover.py).
Debian's `postgresql-15-auto-failover` provides `pg_autoctl`; without it `find_pg_autoctl()`
returns None and the callers skip.

As root, PostgreSQL refuses to run, so every `pg_autoctl` runs as the `postgres` OS user (as
statusdb.tooling.localpg does); as a normal user it runs as that user. Each node's `pg_autoctl
run` (the keeper, which starts and supervises its PostgreSQL) is a process group of its own, so
that `kill_node` can SIGKILL a whole node (keeper and postgres: killing postgres alone only
makes its keeper restart it, no failover) and `stop` can reap whatever is left. `pg_autoctl`
stats every entry of PATH, so it runs with a clean environment: PATH is the server's bindir,
/usr/bin and /bin; HOME and the XDG folders are the formation's own (pg_autoctl keeps its
configuration and state there), so formations never see each other's.

Everything is loopback, trust authentication, no SSL: a throwaway test formation.
`tuned=True` shortens pg_auto_failover's failure detection and promotion timeouts
(`TUNED_MONITOR_SETTINGS`, `TUNED_KEEPER_SETTINGS`); `tuned=False` keeps its defaults.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

HOST = "127.0.0.1"
DBNAME = "statusdb"
SERVER_OS_USER = "postgres"

#: Monitor settings (milliseconds) for fast failure detection, where pg_auto_failover allows:
#: the defaults are 5000 / 5000 / 2 / 2000 / 20000 / 30000 (about 30-60 s to a promotion).
TUNED_MONITOR_SETTINGS: dict[str, int] = {
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 2000,
    "pgautofailover.primary_demote_timeout": 3000,
}
#: Keeper settings (seconds). network_partition_timeout (a primary cut off from the monitor and
#: its standbys demotes itself after it) stays below primary_demote_timeout, so that two
#: primaries never accept writes at once; defaults 20 and 5.
TUNED_KEEPER_SETTINGS: dict[str, int] = {
    "timeout.network_partition_timeout": 2,
    "timeout.prepare_promotion_walreceiver": 1,
}
#: PostgreSQL settings of the data nodes: a throwaway formation (the process, not the machine,
#: is what the tests kill, so fsync off loses nothing; synchronous_commit stays on).
#: full_page_writes stays on: pg_rewind (an old primary rejoining) needs it.
NODE_SETTINGS: dict[str, str] = {"fsync": "off"}


_INITDB = ("--auth", "trust", "-E", "UTF8")


def find_pg_autoctl() -> tuple[Path, Path] | None:
    """`(pg_autoctl, the PostgreSQL bindir)` if pg_auto_failover is installed, else None."""
    autoctl = shutil.which("pg_autoctl") or (
        "/usr/bin/pg_autoctl" if Path("/usr/bin/pg_autoctl").exists() else None
    )
    if autoctl is None:
        return None
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists() and (
            candidate.parent / "lib" / "pgautofailover.so"
        ).exists():
            return Path(autoctl), candidate
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class FormationError(RuntimeError):
    """The formation did not come up (or do what was asked) in time; the message says what."""


class Node:
    """One pg_auto_failover node (the monitor or a data node) and its `pg_autoctl run`."""

    def __init__(self, formation: Formation, name: str) -> None:
        self.formation = formation
        self.name = name
        self.pgdata = formation.base / name
        self.port = _free_port()
        self.log = formation.base / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def dsn(self, dbname: str = DBNAME, **extra: Any) -> str:
        parts = {"host": HOST, "port": self.port, "user": "postgres", "dbname": dbname}
        parts.update(extra)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def run(self, args: list[str]) -> None:
        """Start `pg_autoctl <args>` (a long-running service) in a process group of its own."""
        self.process = self.formation.spawn(args, self.log)

    def kill(self) -> None:
        """SIGKILL the node's whole process group (keeper and its PostgreSQL), and any
        postmaster of its data folder left outside it."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            self.process = None
        pid_file = self.pgdata / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError, PermissionError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
        # Children of a killed postmaster exit by themselves once they notice; wait for them
        # to release the port (a restarted node binds it again).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._port_busy():
            time.sleep(0.1)

    def _port_busy(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((HOST, self.port)) == 0


class Formation:
    """A monitor, a primary (`node1`) and a synchronous standby (`node2`) on loopback.

    `start()` sets it up (about 10-20 s) and applies statusdb's migrations to database
    `statusdb`; `conninfo()` is the formation's multi-host URI; `kill_node(name)` kills a node;
    `restart_node(name)` starts its keeper again (an old primary rejoins as a standby, through
    pg_rewind); `stop()` tears everything down (also after a failed start).
    """

    def __init__(self, base: Path | None = None, *, tuned: bool = True) -> None:
        found = find_pg_autoctl()
        if found is None:
            raise FormationError(
                "pg_auto_failover is not installed (apt-get install postgresql-15-auto-failover)"
            )
        self.autoctl, self.bindir = found
        self.tuned = tuned
        self.root = os.geteuid() == 0
        self._own_base = base is None
        self.base = Path(tempfile.mkdtemp(prefix="statusdb-formation-")) if base is None else base
        self.base.mkdir(parents=True, exist_ok=True)
        self._chown(self.base)
        for sub in ("config", "data", "run"):  # pg_autoctl's (else: /tmp/pg_autoctl, shared)
            (self.base / sub).mkdir(mode=0o700, exist_ok=True)
            self._chown(self.base / sub)
        self.monitor = Node(self, "monitor")
        self.nodes = {name: Node(self, name) for name in ("node1", "node2")}

    # -- processes ------------------------------------------------------------------------

    def _server_user(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam(SERVER_OS_USER) if self.root else None

    def _chown(self, path: Path) -> None:
        user = self._server_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _env(self) -> dict[str, str]:
        home = str(self.base)
        return {
            "PATH": f"{self.bindir}:/usr/bin:/bin",
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_DATA_HOME": f"{home}/data",
            "XDG_RUNTIME_DIR": f"{home}/run",
            "PGHOST": home,  # unix sockets in the formation's folder, reachable by its user
            "PGUSER": "postgres",  # the superuser's name whatever the OS user (initdb -U)
            "LC_ALL": "C.UTF-8",
        }

    def _popen_args(self) -> dict[str, Any]:
        user = self._server_user()
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        return {"env": self._env(), "cwd": str(self.base), "stdin": subprocess.DEVNULL, **extra}

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            self._chown(log)
            return subprocess.Popen(  # noqa: S603 -- argv list, no shell
                [str(self.autoctl), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._popen_args(),
            )

    def autoctl_run(self, args: list[str], *, timeout: float = 60) -> str:
        """Run a short `pg_autoctl` command; its output; FormationError if it fails."""
        result = subprocess.run(  # noqa: S603 -- argv list, no shell
            [str(self.autoctl), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self._popen_args(),
        )
        if result.returncode != 0:
            raise FormationError(
                f"pg_autoctl {' '.join(args)} failed: {(result.stderr or result.stdout)[-2000:]}"
            )
        return str(result.stdout)

    # -- the formation --------------------------------------------------------------------

    def monitor_uri(self) -> str:
        return (
            f"postgres://autoctl_node@{HOST}:{self.monitor.port}/pg_auto_failover?sslmode=disable"
        )

    def conninfo(self, **extra: Any) -> str:
        """The formation's multi-host conninfo: finds the primary (target_session_attrs)."""
        hosts = ",".join(HOST for _ in self.nodes)
        ports = ",".join(str(n.port) for n in self.nodes.values())
        parts: dict[str, Any] = {
            "host": hosts,
            "port": ports,
            "user": "postgres",
            "dbname": DBNAME,
            "target_session_attrs": "read-write",
            "connect_timeout": 2,
        }
        parts.update(extra)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def states(self) -> dict[str, tuple[str, str]]:
        """Each data node's (reported state, goal state), as the monitor sees them."""
        with psycopg.connect(self.monitor.dsn("pg_auto_failover"), connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node"
            ).fetchall()
        return {name: (reported, goal) for name, reported, goal in rows}

    def primary_name(self) -> str | None:
        """The node the monitor has as primary (reported and goal both primary-like), if any."""
        for name, (reported, goal) in self._states_or_empty().items():
            if reported == goal and reported in ("primary", "wait_primary", "single"):
                return name
        return None

    def _states_or_empty(self) -> dict[str, tuple[str, str]]:
        try:
            return self.states()
        except psycopg.Error:
            return {}

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float) -> float:
        """Poll `predicate` every 0.1 s; the seconds it took; FormationError after `timeout`."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise FormationError(
                    f"timed out after {timeout:.0f} s waiting for {what}; states: "
                    f"{self._states_or_empty()}; logs in {self.base}"
                )
            time.sleep(0.1)
        return time.monotonic() - start

    def wait_states(self, wanted: dict[str, str], timeout: float = 60) -> float:
        def reached() -> bool:
            states = self._states_or_empty()
            return all(states.get(name) == (state, state) for name, state in wanted.items())

        return self.wait(f"states {wanted}", reached, timeout)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        m = self.monitor
        self._initdb(m)
        m.run(
            [
                "create", "monitor", "--pgdata", str(m.pgdata), "--pgport", str(m.port),
                "--hostname", HOST, "--auth", "trust", "--no-ssl", "--run",
            ]
        )  # fmt: skip
        self.wait("the monitor", self._monitor_ready, 30)
        if self.tuned:
            with psycopg.connect(m.dsn("pg_auto_failover"), autocommit=True) as conn:
                for name, value in TUNED_MONITOR_SETTINGS.items():
                    conn.execute(
                        sql.SQL("ALTER SYSTEM SET {} = {}").format(
                            sql.Identifier(name), sql.Literal(value)
                        )
                    )
                conn.execute("SELECT pg_reload_conf()")
        first = True
        for node in self.nodes.values():
            if first:
                self._initdb(node)
            self._create_node(node)
            if first:
                self.wait_states({node.name: "single"})
                first = False
        self.wait_states({"node1": "primary", "node2": "secondary"}, timeout=90)
        self._apply_migrations()

    def _initdb(self, node: Node) -> None:
        """initdb `node`'s folder ourselves, so that its unix sockets go to the formation's
        folder (the compiled-in /var/run/postgresql is not writable by a normal user);
        pg_autoctl takes over an initialized folder. A standby's comes from a base backup."""
        result = subprocess.run(  # noqa: S603 -- argv list, no shell
            [str(self.bindir / "initdb"), "-D", str(node.pgdata), "-U", "postgres", *_INITDB],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._popen_args(),
        )
        if result.returncode != 0:
            raise FormationError(f"initdb {node.pgdata} failed: {result.stderr[-2000:]}")
        with (node.pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\nunix_socket_directories = '{self.base}'\n")
            if node is not self.monitor:
                conf.writelines(f"{k} = '{v}'\n" for k, v in NODE_SETTINGS.items())

    def _monitor_ready(self) -> bool:
        try:
            with psycopg.connect(self.monitor.dsn("pg_auto_failover"), connect_timeout=1) as c:
                c.execute("SELECT count(*) FROM pgautofailover.node")
            return True
        except psycopg.Error:
            return False

    def _create_node(self, node: Node) -> None:
        # `create` without --run initializes the node (initdb or a base backup of the
        # primary) and registers it; the keeper settings are set before it first runs.
        self.autoctl_run(
            [
                "create", "postgres", "--pgdata", str(node.pgdata), "--pgport", str(node.port),
                "--hostname", HOST, "--name", node.name, "--dbname", DBNAME,
                "--monitor", self.monitor_uri(), "--auth", "trust", "--no-ssl",
            ],
            timeout=120,
        )  # fmt: skip
        if self.tuned:
            for name, value in TUNED_KEEPER_SETTINGS.items():
                self.autoctl_run(["config", "set", "--pgdata", str(node.pgdata), name, str(value)])
        node.run(["run", "--pgdata", str(node.pgdata)])

    def _apply_migrations(self) -> None:
        from statusdb.infra import migrations

        migrations.apply(self.conninfo())

    # -- failures -------------------------------------------------------------------------

    def kill_node(self, name: str) -> None:
        """SIGKILL node `name`'s keeper and PostgreSQL processes."""
        self.nodes[name].kill()

    def restart_node(self, name: str) -> None:
        """Start node `name`'s keeper again (`pg_autoctl run`): it rejoins the formation."""
        node = self.nodes[name]
        node.run(["run", "--pgdata", str(node.pgdata)])

    def stop(self) -> None:
        """Stop every node and the monitor (`pg_autoctl stop`, then SIGKILL what is left)."""
        for node in [*self.nodes.values(), self.monitor]:
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(FormationError, subprocess.TimeoutExpired, OSError):
                    self.autoctl_run(["stop", "--pgdata", str(node.pgdata)], timeout=15)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=15)
            node.kill()
        if self._own_base and not os.environ.get("STATUSDB_KEEP_FORMATION"):
            shutil.rmtree(self.base, ignore_errors=True)  # set that variable to keep the logs


@contextlib.contextmanager
def running(*, tuned: bool = True) -> Iterator[Formation]:
    """A started formation, stopped and deleted afterwards."""
    formation = Formation(tuned=tuned)
    formation.start()
    try:
        yield formation
    finally:
        formation.stop()
