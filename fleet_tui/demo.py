"""The demo fleet: stub agents on a PRIVATE tmux socket, with their own roster and state dir.

It never touches the user's own servers or files: the socket is `fleet-demo`, the roster and the
spool live in `$XDG_STATE_HOME/mosaic/fleet-demo/`. It is what a newcomer sees first.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleet_tui.control import kill_server, new_agent_session
from fleet_tui.errors import BadInput
from fleet_tui.paths import _xdg
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.tmux import Liveness, TmuxRunner, probe_socket

DEMO_SOCKET = "fleet-demo"
DEMO_TENANT = "demo"
DEMO_TIMEOUT_S = 10
DEMO_INTERVAL_S = 2


@dataclass(frozen=True)
class DemoAgent:
    name: str
    role: str
    alias: str | None = None
    model: str | None = None
    flags: tuple[str, ...] = ()
    start: bool = True
    lifecycle: str = "always-on"


def demo_home() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "mosaic" / "fleet-demo"


def demo_agents(count: int) -> list[DemoAgent]:
    """orchestrator, enhancer, coders, one waiting for input, one wedged; and a research agent
    that is ephemeral and not running."""
    if count < 2:
        raise BadInput("--agents: the smallest fleet is 2 agents (orchestrator and enhancer)")
    agents = [
        DemoAgent("orchestrator", "orchestrator", "Mos", "opus"),
        DemoAgent("enhancer", "enhancer", "Lens", "sonnet"),
    ]
    extra = count - 2
    specials = []
    if extra >= 3:
        specials.append(DemoAgent("review", "code-review", None, "sonnet", ("--waiting",)))
        specials.append(DemoAgent("coder9", "coder", None, "haiku", ("--fail-after", "15")))
    for i in range(extra - len(specials)):
        agents.append(DemoAgent(f"coder0-{i}", "coder", None, "sonnet"))
    agents += specials
    agents.append(
        DemoAgent("research", "research", None, None, (), start=False, lifecycle="ephemeral")
    )
    return agents


def write_demo_roster(path: Path, agents: list[DemoAgent], host: str) -> None:
    doc = {
        "version": 1,
        "tenant_id": DEMO_TENANT,
        "host": host,
        "socket_name": DEMO_SOCKET,
        "heartbeat_timeout_s": DEMO_TIMEOUT_S,
        "agents": [
            {
                k: v
                for k, v in {
                    "name": a.name,
                    "role": a.role,
                    "alias": a.alias,
                    "runtime": "stub",
                    "model": a.model,
                    "lifecycle": a.lifecycle,
                }.items()
                if v is not None
            }
            for a in agents
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# The fleet-tui demo roster (written by `fleet-tui demo`; safe to delete).\n"
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))


def demo_running(runner: TmuxRunner) -> bool:
    return probe_socket(runner.socket_path(DEMO_SOCKET)) == Liveness.LIVE


def start_demo(runner: TmuxRunner, count: int, host: str, home: Path | None = None) -> Path:
    """Start the demo fleet (idempotent: a running demo is left as it is). Returns its home."""
    home = home or demo_home()
    roster = home / "roster.yaml"
    state = home / "state"
    if demo_running(runner):
        return home
    agents = demo_agents(count)
    if state.exists():
        shutil.rmtree(state / "heartbeats", ignore_errors=True)
        shutil.rmtree(state / "pings", ignore_errors=True)
    HeartbeatSpool(state).ensure_writable()
    write_demo_roster(roster, agents, host)
    env = {
        "MOSAIC_FLEET_ROSTER": str(roster),
        "MOSAIC_FLEET_STATE_DIR": str(state),
        "PYTHONUNBUFFERED": "1",
    }
    for a in agents:
        if not a.start:
            continue
        argv = [
            sys.executable,
            "-m",
            "fleet_tui",
            "stub",
            a.name,
            "--interval",
            str(DEMO_INTERVAL_S),
            *a.flags,
        ]
        new_agent_session(runner, DEMO_SOCKET, a.name, argv, env=env, cwd=str(home))
    # Wait (briefly) for the first heartbeats, so the first view is not all "unknown".
    spool = HeartbeatSpool(state)
    started = [a.name for a in agents if a.start]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(spool.heartbeat_path(n).exists() for n in started):
            break
        time.sleep(0.1)
    return home


def stop_demo(runner: TmuxRunner) -> bool:
    return kill_server(runner, DEMO_SOCKET) if demo_running(runner) else False


def demo_env(home: Path) -> dict[str, str]:
    return {
        "MOSAIC_FLEET_ROSTER": str(home / "roster.yaml"),
        "MOSAIC_FLEET_STATE_DIR": str(home / "state"),
    }


def hostname() -> str:
    return os.uname().nodename
