"""The demo fleet: stub agents on a PRIVATE tmux socket, with their own roster and state dir.

It never touches the user's own servers or files: the socket is `fleet-demo`, the roster and the
spool live in `$XDG_STATE_HOME/mosaic/fleet-demo/`. It is what a newcomer sees first.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from fleet_tui.config.paths import _xdg
from fleet_tui.control.panes import kill_server, new_agent_session
from fleet_tui.errors import BadInput
from fleet_tui.model.records import SpendRecord, UsageSample
from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.ledger import append_records, spend_path, usage_path
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


def stub_argv(agent: DemoAgent) -> list[str]:
    """The command line of a demo agent's stub runtime."""
    return [
        sys.executable,
        "-m",
        "fleet_tui",
        "stub",
        agent.name,
        "--interval",
        str(DEMO_INTERVAL_S),
        *agent.flags,
    ]


def stub_env(home: Path) -> dict[str, str]:
    """The environment of the demo's stubs (the roster's `env`: `up` starts them the same way)."""
    return {
        **demo_env(home),
        "PYTHONUNBUFFERED": "1",
        "FLEET_STUB_TRANSCRIPTS": str(home / "claude"),
    }


def write_demo_roster(path: Path, agents: list[DemoAgent], host: str) -> None:
    """The demo's roster, with each agent's `command`, `cwd` and `env`: `up`, `restart`, `stop`,
    `supervise` and the dashboard's u/r/x work on the demo as on a real fleet."""
    home = path.parent
    env = stub_env(home)
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
                    "command": shlex.join(stub_argv(a)),
                    "cwd": str(home / "work" / a.name),
                    "env": dict(env),  # a copy each: no YAML anchors in the file
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


DEFAULT_AGENTS = 6


@dataclass(frozen=True)
class DemoStart:
    """What `start_demo` did: `started` a new fleet, `kept` the running one (no size asked, or
    the size it has), or `restarted` it with the size asked for (`was`: the old size)."""

    home: Path
    action: str  # "started" | "kept" | "restarted"
    agents: int
    was: int | None = None

    def summary(self) -> str:
        where = f"on the private tmux socket '{DEMO_SOCKET}'"
        size = f"of {self.agents} agents " if self.agents else ""
        if self.action == "kept":
            return (
                f"A demo fleet {size}was already running {where}: kept it "
                f"(`fleet-tui demo --agents N` restarts it with N agents)."
            )
        if self.action == "restarted":
            return f"The demo fleet of {self.was} agents was restarted with {self.agents} agents {where}."
        return f"A demo fleet of {self.agents} agents started {where}."


def running_size(home: Path) -> int | None:
    """How many agents the demo's roster starts (its always-on agents), None without a roster."""
    try:
        doc = yaml.safe_load((home / "roster.yaml").read_text())
        agents = doc["agents"]
        return sum(1 for a in agents if a.get("lifecycle") != "ephemeral")
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None


def start_demo(
    runner: TmuxRunner, count: int | None, host: str, home: Path | None = None
) -> DemoStart:
    """Start the demo fleet. A running demo is kept when no size is asked (`count` None) or it
    has that size; asked for another size, it is stopped and started again with that size."""
    home = home or demo_home()
    roster = home / "roster.yaml"
    state = home / "state"
    was: int | None = None
    if demo_running(runner):
        size = running_size(home)
        if count is None or count == size:
            return DemoStart(home, "kept", size or 0)
        was = size
        kill_server(runner, DEMO_SOCKET)
        deadline = time.monotonic() + 5
        while demo_running(runner) and time.monotonic() < deadline:
            time.sleep(0.05)
    count = DEFAULT_AGENTS if count is None else count
    agents = demo_agents(count)
    if state.exists():
        shutil.rmtree(state / "heartbeats", ignore_errors=True)
        shutil.rmtree(state / "pings", ignore_errors=True)
    HeartbeatSpool(state).ensure_writable()
    write_demo_roster(roster, agents, host)
    seed_demo_budgets(home, agents, host, datetime.now(UTC))
    env = stub_env(home)
    for a in agents:
        # One working directory per agent: transcripts are matched to agents by it.
        workdir = home / "work" / a.name
        workdir.mkdir(parents=True, exist_ok=True)
        if a.start:
            new_agent_session(runner, DEMO_SOCKET, a.name, stub_argv(a), env=env, cwd=str(workdir))
    # Wait (briefly) for the first heartbeats, so the first view is not all "unknown".
    spool = HeartbeatSpool(state)
    started = [a.name for a in agents if a.start]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(spool.heartbeat_path(n).exists() for n in started):
            break
        time.sleep(0.1)
    return DemoStart(home, "restarted" if was is not None else "started", count, was)


def stop_demo(runner: TmuxRunner) -> bool:
    return kill_server(runner, DEMO_SOCKET) if demo_running(runner) else False


def demo_env(home: Path) -> dict[str, str]:
    return {
        "MOSAIC_FLEET_ROSTER": str(home / "roster.yaml"),
        "MOSAIC_FLEET_STATE_DIR": str(home / "state"),
        "MOSAIC_FLEET_BUDGETS": str(home / "budgets.yaml"),
        # The stubs write Claude Code-shaped transcripts here; the token column reads them.
        "CLAUDE_CONFIG_DIR": str(home / "claude"),
        "CODEX_HOME": str(home / "codex"),
    }


def shell_exports(home: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """The `export` lines that point a shell at the demo fleet (`eval "$(fleet-tui demo env)"`):
    its roster, state dir, budgets and transcript folders, and the folder of this `fleet-tui`
    on PATH when it is not there yet (a `.venv` made by `.ci/dev`)."""
    environ = os.environ if environ is None else environ
    lines = [
        "# The fleet-tui demo fleet: every verb (ps, probe, send, watch, usage, budget) reads it.",
        "# CLAUDE_CONFIG_DIR and CODEX_HOME point at the demo's transcripts: run your own",
        "# claude or codex in another shell. Stop the fleet: fleet-tui demo down",
    ]
    bindir = Path(sys.executable).parent
    on_path = [p for p in environ.get("PATH", "").split(os.pathsep) if p]
    if (bindir / "fleet-tui").exists() and str(bindir) not in on_path:
        lines.append(f'export PATH={shlex.quote(str(bindir))}:"$PATH"')
    lines += [f"export {k}={shlex.quote(v)}" for k, v in demo_env(home).items()]
    return lines


def seed_demo_budgets(home: Path, agents: list[DemoAgent], host: str, now: datetime) -> None:
    """A budgets.yaml and a few days of usage samples and spend, so `b` has something to show.

    Two subscription accounts (one spending ahead of the even pace, one on pace) and one metered
    API account. The ledgers are re-written at each start, relative to `now`.
    """
    names = [a.name for a in agents if a.start]
    claude = [n for n in names if n in ("orchestrator", "enhancer", "review")]
    codex = [n for n in names if n not in claude]
    weekly_reset = (now + timedelta(days=2, hours=9)).replace(minute=0, second=0, microsecond=0)
    codex_reset = (now + timedelta(days=4, hours=2)).replace(minute=0, second=0, microsecond=0)
    doc = {
        "version": 1,
        "tenant_id": DEMO_TENANT,
        "accounts": [
            {
                "id": "claude-max-a",
                "provider": "anthropic",
                "runtime": "claude",
                "regime": "subscription",
                "agents": claude,
                "windows": [
                    {"name": "5h", "minutes": 300},
                    {
                        "name": "weekly",
                        "minutes": 10080,
                        "resets_at": format_ts(weekly_reset),
                        "reset_confidence": "user",
                    },
                ],
                "pacing": "even",
            },
            {
                "id": "codex-pro",
                "provider": "openai",
                "runtime": "codex",
                "regime": "subscription",
                "agents": codex,
                "windows": [{"name": "weekly", "minutes": 10080}],
                "pacing": "even",
            },
            {
                "id": "openai-api",
                "provider": "openai",
                "regime": "api",
                "ceiling_usd": 200,
                "period": "month",
            },
        ],
        "ladder": ["claude-max-a", "codex-pro", "openai-api"],
        "concurrency": {"max_agents": max(6, len(names))},
    }
    header = "# The fleet-tui demo budgets (written by `fleet-tui demo`; safe to delete).\n"
    (home / "budgets.yaml").write_text(header + yaml.safe_dump(doc, sort_keys=False))

    samples: list[UsageSample] = []

    def window(account: str, name: str, minutes: int, reset: datetime, rate: float) -> None:
        # `rate`: share of the window used per share of the window elapsed (1.0 = even pace).
        start = reset - timedelta(minutes=minutes)
        t = max(start, now - timedelta(days=5))
        while t <= now:
            elapsed = (t - start) / timedelta(minutes=minutes)
            samples.append(
                UsageSample(
                    tenant_id=DEMO_TENANT,
                    host=host,
                    account=account,
                    window=name,
                    window_minutes=minutes,
                    used_percent=round(min(100.0, 100 * elapsed * rate), 1),
                    resets_at=reset,
                    reset_confidence="provider",
                    observed_at=t,
                    source="demo",
                )
            )
            t += timedelta(minutes=15)

    five_h_reset = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    window("claude-max-a", "weekly", 10080, weekly_reset, 1.18)
    window("claude-max-a", "5h", 300, five_h_reset, 0.8)
    window("codex-pro", "weekly", 10080, codex_reset, 0.97)
    spend = [
        SpendRecord(
            tenant_id=DEMO_TENANT,
            host=host,
            ts=now - timedelta(minutes=7 * i + 3),
            agent=codex[i % len(codex)] if codex else names[0],
            account="openai-api",
            model="gpt-5.5",
            input_tokens=12000 + 500 * i,
            output_tokens=1400 + 30 * i,
            cost_usd=round(0.21 + 0.01 * i, 2),
        )
        for i in range(24)
    ]
    state = home / "state"
    usage_path(state).unlink(missing_ok=True)
    spend_path(state).unlink(missing_ok=True)
    samples.sort(key=lambda r: r.observed_at)
    spend.sort(key=lambda r: r.ts)
    append_records(usage_path(state), samples)
    append_records(spend_path(state), spend)


def hostname() -> str:
    return os.uname().nodename
