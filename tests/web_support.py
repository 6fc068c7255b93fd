"""What the web tests share: a real `fleet-tui web` process on a free loopback port, logging in
over real HTTP, the processes of a session's app read from /proc."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from fleet_tui.demo.fleet import demo_env

DEMO_AGENTS = ("orchestrator", "enhancer", "review")


def demo_world_env(world: Any, agents: int | None = 4) -> dict[str, str]:
    """Start the demo fleet in `world` (a conftest FleetEnv) and return the environment that
    points at it (its roster, state dir, budgets). `agents` None: the demo's default fleet (with
    `review` waiting for input, first in the table)."""
    size = () if agents is None else ("--agents", str(agents))
    res = world.cli("demo", "up", *size, timeout=60)
    assert res.rc == 0, res
    home = world.state_home / "mosaic" / "fleet-demo"
    return {**world.env, **demo_env(home)}


_SERVE = """
import json, sys
from pathlib import Path
from fleet_tui.web import serve
sys.exit(serve.run("127.0.0.1", 0, state_dir=Path(sys.argv[1]), app_argv=json.loads(sys.argv[2]),
    with_gateway_token=False, cert=None, key=None, behind_proxy=False, max_sessions=8,
    idle_timeout_s=1800.0))
"""


class WebProc:
    """`python -m fleet_tui web --listen 127.0.0.1:0 ARGS`, its URL read from its first line."""

    def __init__(
        self,
        env: dict[str, str],
        *args: str,
        cwd: Path | None = None,
        app_argv: Sequence[str] | None = None,
    ) -> None:
        """With `app_argv`, the same server code (fleet_tui.web.serve) runs that app instead of
        `fleet-tui tui` (a test's wrapper around the dashboard)."""
        self.env = env
        self._skip = len(self.log())  # the log is the state dir's: earlier servers wrote there too
        if app_argv is None:
            argv = [sys.executable, "-m", "fleet_tui", "web", "--listen", "127.0.0.1:0", *args]
        else:
            argv = [sys.executable, "-c", _SERVE, str(self.state_dir), json.dumps(list(app_argv))]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=str(cwd) if cwd else None,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        m = re.search(r"serving on (https?://127\.0\.0\.1:\d+)/", line)
        if not m:
            self.stop()
            raise AssertionError(f"web did not start: {line!r} {self.proc.stderr.read()!r}")
        self.url = m.group(1)

    @property
    def state_dir(self) -> Path:
        return Path(self.env["MOSAIC_FLEET_STATE_DIR"])

    def log(self) -> list[dict[str, Any]]:
        """This server's lines of the web log."""
        path = self.state_dir / "web" / "web.log"
        if not path.exists():
            return []
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return lines[getattr(self, "_skip", 0) :]

    def app_pids(self) -> list[int]:
        return [int(r["pid"]) for r in self.log() if r["event"] == "app started"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def create_token(env: dict[str, str], scope: str, label: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "web", "token", "create", "--scope", scope,
         "--label", label],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res
    return res.stdout.strip().splitlines()[-1]


def new_client() -> aiohttp.ClientSession:
    # unsafe: keep cookies of an IP host (127.0.0.1); no redirects followed unless asked
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login_form(client: aiohttp.ClientSession, url: str) -> str:
    """GET /login: the form's CSRF value (its cookie is now in the client's jar)."""
    async with client.get(url + "/login") as r:
        assert r.status == 200
        page = await r.text()
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


async def login(client: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientResponse:
    csrf = await login_form(client, url)
    r = await client.post(
        url + "/login", data={"token": token, "csrf": csrf}, allow_redirects=False
    )
    await r.read()
    return r


def _stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) of every process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        yield int(entry), stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...


def group_members(pgid: int) -> list[int]:
    """Processes whose process group is `pgid` (the app runs as its own session leader)."""
    return [pid for pid, f in _stats() if f[0] != "Z" and int(f[2]) == pgid]


def children_of(pid: int) -> list[int]:
    return [child for child, f in _stats() if int(f[1]) == pid]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    out = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            out[k.decode()] = v.decode("utf-8", "replace")
    return out


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
