"""PostgreSQL and gateway fixtures for the tests (a pytest plugin: `tests.pg_support`).

- `pg_cluster` (session): a private PostgreSQL for this test session (per xdist worker): initdb
  in a temp dir, Unix socket only (see fleet_tui/testing/pgcluster.py); or the server named by
  `FLEET_TEST_PG_DSN` (its user must be able to create databases and roles). With neither, the
  tests that need it are skipped, except under CI (`CI_FLEET=1`, set by `.ci/dev test`), where
  they FAIL: CI must never pass by skipping the register.
- `pg_dsn` (function): a fresh empty database, dropped afterwards.
- `gateway` (function): a migrated database and a real `fleet-tui gateway serve` subprocess on a
  free loopback port: `.url`, `.api`, `.dsn`, `.token(tenants, scopes, hosts)`, `.stop()`, `.start()`
  (same port), `.restart()`, `.log()` (its stdout and stderr so far).
- `module_gateway` (module): the same, shared by the tests of one module.

The server subprocess gets the environment of the session's start (not a test's `fleet_env`
world), so the conftest teardown does not kill it; the fixture stops it.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_tui.testing.pgcluster import PgServer

_BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_FLEET_")}
IN_CI = os.environ.get("CI_FLEET") == "1"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI (CI_FLEET=1): {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL for the gateway tests: {reason}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgServer]:
    try:
        import psycopg  # noqa: F401

        from fleet_tui.testing.pgcluster import ClusterError, find_bindir
    except ImportError as exc:
        _unavailable(f"{exc.name} is not installed (pip install 'fleet-tui[gateway]')")
        raise
    external = os.environ.get("FLEET_TEST_PG_DSN")
    if external:
        yield PgServer(external)
        return
    bindir = find_bindir()
    if bindir is None:
        _unavailable("FLEET_TEST_PG_DSN is unset and no initdb was found (apt install postgresql)")
    assert bindir is not None
    try:
        server = PgServer.private(bindir)
    except ClusterError as exc:
        pytest.fail(f"cannot start a private PostgreSQL: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_dsn(pg_cluster: PgServer) -> Iterator[str]:
    with pg_cluster.database() as dsn:
        yield dsn


class GatewayServer:
    """A real `fleet-tui gateway serve` on 127.0.0.1, its database migrated on start."""

    def __init__(self, dsn: str, folder: Path) -> None:
        self.dsn = dsn
        self.folder = folder
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._logs: list[Path] = []
        self._served = False  # once served, the port is known to clients: keep it
        self.extra_args: list[str] = []  # more `gateway serve` flags, from the next start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api/fleet/v1"

    def start(self, timeout: float = 30.0) -> GatewayServer:
        """Start the server; the first start picks a port, later ones take the same port again.

        The port comes from below the kernel's ephemeral range, so no outgoing connection of
        this machine can take it while the server is stopped; if something holds it anyway
        (another worker's server, a socket not yet closed), the bind is retried until
        `timeout`: a restart waits for its port instead of failing.
        """
        assert self.proc is None, "already running"
        deadline = time.monotonic() + timeout
        if self.port == 0:
            self.port = _quiet_port()
        while True:
            text = self._launch(deadline)
            if text is None:
                return self
            taken = "cannot listen on" in text
            if not taken or time.monotonic() >= deadline:
                raise RuntimeError(f"gateway exited at start: {text.strip()[-600:]}")
            if not self._served:
                self.port = _quiet_port()  # nobody knows this port yet: take another
            time.sleep(0.2)

    def _launch(self, deadline: float) -> str | None:
        """Run one server process: None once it serves, else its output when it exited."""
        logfile = self.folder / f"gateway-{len(self._logs)}.log"
        self._logs.append(logfile)
        argv = [sys.executable, "-m", "fleet_tui", "gateway", "serve", "--dsn", self.dsn]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--pool", "4", *self.extra_args]
        with logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**_BASE_ENV, "PYTHONUNBUFFERED": "1"},
            )
        while time.monotonic() < deadline:
            text = logfile.read_text(errors="replace")
            if "listening on http://127.0.0.1:" in text and "startup complete" in text:
                line = next(x for x in text.splitlines() if "listening on" in x)
                self.port = int(line.split("127.0.0.1:")[1].split()[0])
                self._served = True
                return None
            if self.proc.poll() is not None:
                self.proc = None
                return text
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not start in time: {logfile.read_text()[-600:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> GatewayServer:
        self.stop()
        return self.start()

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self._logs if p.exists())

    def token(
        self,
        tenants: str | list[str] = "acme",
        scopes: str | list[str] = "read",
        hosts: list[str] | None = None,
    ) -> str:
        """A new token; `hosts`: bind a publish token to those hosts."""
        from fleet_tui.server.db import create_token

        ts = [tenants] if isinstance(tenants, str) else tenants
        ss = [scopes] if isinstance(scopes, str) else scopes
        return create_token(self.dsn, ts, ss, hosts=hosts)[1]


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _quiet_port() -> int:
    """A free loopback port below the ephemeral range (outgoing connections never take it)."""
    low = max(1025, _ephemeral_low() - 12000)
    high = _ephemeral_low() - 1
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return 0


@contextlib.contextmanager
def running_gateway(pg: PgServer) -> Iterator[GatewayServer]:
    with pg.database() as dsn, tempfile.TemporaryDirectory(prefix="fleet-gw-") as tmp:
        server = GatewayServer(dsn, Path(tmp))
        try:
            yield server.start()
        finally:
            server.stop()


@pytest.fixture
def gateway(pg_cluster: PgServer) -> Iterator[GatewayServer]:
    with running_gateway(pg_cluster) as server:
        yield server


@pytest.fixture(scope="module")
def module_gateway(pg_cluster: PgServer) -> Iterator[GatewayServer]:
    with running_gateway(pg_cluster) as server:
        yield server
