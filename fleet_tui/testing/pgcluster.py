"""A throwaway PostgreSQL for tests and benchmarks: `PgServer` makes and drops databases on a
server, either a private cluster it starts (`PgServer.private`: initdb + pg_ctl in a temp dir) or
one named by a DSN whose user may create databases and roles.

The private cluster listens only on a Unix socket inside its own 0700 folder (no TCP), trust auth
for the cluster's superuser. When run as root the cluster runs as the `postgres` system user
(PostgreSQL refuses root) through `runuser`. Binaries: `FLEET_TEST_PG_BIN`, else the newest
`/usr/lib/postgresql/*/bin` (Debian), else `initdb` on PATH. Needs psycopg (the `gateway` extra)
for the databases, not for the cluster.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def find_bindir() -> Path | None:
    """The folder holding `initdb`, `pg_ctl` and `postgres`, or None when none is installed."""
    env = os.environ.get("FLEET_TEST_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


class ClusterError(RuntimeError):
    """The private cluster could not be created or started."""


class PrivateCluster:
    """One private cluster: `start()`, `dsn(dbname)`, `stop()` (removes everything)."""

    def __init__(self, bindir: Path, *, prefix: str = "fleet-pg-", durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable  # False (tests): fsync and synchronous commit off
        # as root, somewhere the `postgres` user can reach (TMPDIR may be root's own folder)
        base = "/tmp" if os.getuid() == 0 and os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        self.data = self.root / "data"
        self.sockdir = self.root / "sock"
        self.port = 5432  # only names the socket file; the folder is private
        self._as: list[str] = []
        self.superuser = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            try:
                pg = pwd.getpwnam("postgres")
            except KeyError:
                raise ClusterError("running as root and there is no 'postgres' user") from None
            os.chown(self.root, pg.pw_uid, pg.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
            self.superuser = "postgres"
        self.sockdir.mkdir()
        if self._as:
            pg = pwd.getpwnam("postgres")
            os.chown(self.sockdir, pg.pw_uid, pg.pw_gid)

    def _run(self, *argv: str) -> None:
        cmd = [*self._as, *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ClusterError(f"{Path(argv[0]).name} failed: {' / '.join(tail)}")

    def start(self) -> PrivateCluster:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data), "-A", "trust", "-U", self.superuser,
            "--no-sync", "-E", "UTF8", "--locale", "C",
        )  # fmt: skip
        opts = (
            f"-c listen_addresses='' -c unix_socket_directories={self.sockdir} "
            f"-c port={self.port} -c max_connections=100"
        )
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for the cluster's superuser."""
        return f"host={self.sockdir} port={self.port} user={self.superuser} dbname={dbname}"

    def stop(self) -> None:
        """Stop the server (immediately) and remove its folder."""
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired, OSError):
            if (self.data / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        shutil.rmtree(self.root, ignore_errors=True)


class PgServer:
    """A PostgreSQL server throwaway databases are made on: `admin_dsn` connects as a user who
    may create databases and roles; `cluster`, when it is a private one this object stops."""

    def __init__(self, admin_dsn: str, cluster: PrivateCluster | None = None) -> None:
        self.admin_dsn = admin_dsn
        self.cluster = cluster

    @classmethod
    def private(cls, bindir: Path, *, prefix: str = "fleet-pg-", durable: bool = False) -> PgServer:
        """Start a private cluster (see `PrivateCluster`); raises ClusterError, leaving nothing
        behind."""
        cluster = PrivateCluster(bindir, prefix=prefix, durable=durable)
        try:
            cluster.start()
        except ClusterError:
            cluster.stop()
            raise
        return cls(cluster.dsn(), cluster)

    def stop(self) -> None:
        """Stop and remove the private cluster, if this server is one (else nothing)."""
        if self.cluster is not None:
            self.cluster.stop()

    def dsn(self, dbname: str) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn, dbname=dbname)

    def create_database(self) -> str:
        """A new empty database (a random name); returns its name."""
        import psycopg

        name = f"fleet_t_{secrets.token_hex(5)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name` (its connections closed); a failure is ignored."""
        import psycopg

        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.admin_dsn, autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database for the block: yields its DSN, drops it afterwards."""
        name = self.create_database()
        try:
            yield self.dsn(name)
        finally:
            self.drop_database(name)
