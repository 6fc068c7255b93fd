"""The dashboard's first poll taken by a forked child (service.firstpoll): the same fleet as
the dashboard's own poll, nothing lost when the child fails or hangs, and never forked where a
fork is not safe. Real tmux servers on private sockets; the forks run in a subprocess of the
test (a script), never in the test runner itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.core.infer import ACTIVE_WITHIN_S
from fleet_tui.errors import RosterError
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.remote.connection import GatewaySettings, Secret
from fleet_tui.service.firstpoll import FirstPoll
from fleet_tui.service.poll import LiveSource
from fleet_tui.sources.roster import LoadedRoster, load_roster
from fleet_tui.testing.fleets import big_snapshot
from fleet_tui.tmux import session_target

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter, as the CLI would: the child forked, the settings loaded, then the
# child's snapshot (or the failure) and the dashboard's own poll of the same fleet, as JSON.
SCRIPT = r"""
import json, os, sys, time
from fleet_tui.config.fleet import FleetConfig
from fleet_tui.errors import RosterError
from fleet_tui.config.settings import load_settings
from fleet_tui.service.firstpoll import FirstPoll, dashboard_source

def view(snapshot):
    out = []
    for a in snapshot.agents:
        d = a.model_dump()
        out.append({k: d[k] for k in ("name", "socket", "session", "in_roster", "health",
                                      "state_source", "drift")}
                   | {"pane_pid": (d["tmux"] or {}).get("pane_pid"),
                      "beat": (d["heartbeat"] or {}).get("state"),
                      "inferred": (d["inferred"] or {}).get("state")})
    out.sort(key=lambda r: (r["socket"] or "", r["name"]))
    # the sources the header shows (their details: "reading", a degraded one's reason)
    return out, sorted([src.name, src.ok, src.detail] for src in snapshot.sources)

def reaped(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # FirstPoll reaped it: no zombie left behind
    return False

config = FleetConfig.from_flags()
if sys.argv[1] == "cancel":
    config.tmux_timeout_s = 60.0  # the child would wait this long on the stopped server
first = FirstPoll.start(config)
settings, _ = load_settings()
out = {"forked": first is not None, "pid": first.pid if first else None}
if sys.argv[1] == "cancel":
    import threading
    got = {}
    def taker():  # the dashboard's poll thread, waiting for the child
        got["snapshot"] = first.take()
        got["at"] = time.monotonic()
    waiting = threading.Thread(target=taker)
    waiting.start()
    time.sleep(0.3)  # the child is waiting on the stopped tmux server by now
    t = time.monotonic()
    first.cancel()  # the operator quits
    out["cancel_s"] = time.monotonic() - t
    waiting.join(20)
    out["take_s"] = got["at"] - t if "at" in got else None
    out["taken"] = got.get("snapshot") is not None or first.take() is not None
else:
    taken = first.take()
    out["taken"] = taken is not None
    if taken is not None:
        out["child"] = view(taken[0])
        out["roster"] = [a.name for a in taken[1].roster.agents] if taken[1] else None
    source, _ = dashboard_source(config, settings)  # the dashboard's own, token use and all
    try:
        out["own"] = view(source.poll())
    except Exception as exc:
        out["own_error"] = f"{type(exc).__name__}: {exc}"
out["reaped"] = reaped(first.pid)
print(json.dumps(out))
"""


def run_script(env: FleetEnv, mode: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        env={**env.env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out, proc.stderr


@pytest.mark.tmux
def test_the_childs_first_poll_is_the_fleet_the_dashboard_polls(fleet_env: FleetEnv) -> None:
    """An agent with heartbeats, one guessed from its pane, one not running, and a session
    outside the roster: the child's snapshot shows each as the dashboard's own poll does."""
    fleet_env.write_roster(
        [
            {"name": "orchestrator", "role": "orchestrator"},
            {"name": "enhancer", "role": "enhancer", "runtime": "claude"},
            {"name": "coder1", "role": "coder"},
        ]
    )
    fleet_env.start("mosaic-fleet", "enhancer", ["sleep", "300"])
    fleet_env.start("mosaic-fleet", "scratch", ["sleep", "300"], agent=False)
    fleet_env.stub("mosaic-fleet", "orchestrator", interval=30)
    # The enhancer's state is guessed from its pane: busy while its last output is at most
    # ACTIVE_WITHIN_S old. Both polls must see the same side of that edge (the dashboard's own
    # poll runs a second or two after the child's on a loaded machine): wait until it is past.
    activity = max(
        int(v)
        for v in fleet_env.tmux(
            "mosaic-fleet",
            "display-message",
            "-p",
            "-t",
            session_target("enhancer"),
            "#{window_activity} #{session_activity}",
        ).stdout.split()
    )
    wait_until(
        lambda: time.time() > activity + ACTIVE_WITHIN_S + 1.5,
        timeout=ACTIVE_WITHIN_S + 10,
        message="the enhancer's pane quiet for longer than the busy window",
    )
    out, err = run_script(fleet_env, "same")
    assert out["forked"] and out["taken"], out
    assert out["child"] == out["own"]  # the rows, and the sources the header shows
    rows, sources = out["child"]
    names = {(r["name"], r["health"]) for r in rows}
    assert ("orchestrator", "healthy") in names and ("coder1", "down") in names
    assert {r["name"] for r in rows} >= {"orchestrator", "enhancer", "coder1", "scratch"}
    assert ["usage", True, "reading"] in sources  # as the real token reader's first answer
    assert out["roster"] == ["orchestrator", "enhancer", "coder1"]  # kept as the last good one
    assert err == ""  # the child wrote nothing where the operator would see it
    assert out["reaped"]


@pytest.mark.tmux
def test_a_child_that_fails_leaves_the_first_poll_to_the_dashboard(fleet_env: FleetEnv) -> None:
    """A broken roster: the child gives nothing (and prints nothing); the dashboard's own poll
    reports the roster's error, as it would without the child."""
    fleet_env.write_roster(text="version: 1\ntenant_id: acme\nagents:\n  - name: [oops\n")
    out, err = run_script(fleet_env, "bad")
    assert out["forked"] and not out["taken"]
    assert out["own_error"].startswith("RosterError: ") and "roster.yaml" in out["own_error"]
    assert err == ""
    assert out["reaped"]


@pytest.mark.tmux
def test_quitting_stops_a_child_stuck_on_a_hung_tmux(fleet_env: FleetEnv) -> None:
    """The tmux server stopped (SIGSTOP): the child waits on it, and the dashboard's first
    poll waits on the child. Quitting stops the child at once (SIGTERM, SIGKILL after a
    grace), the waiting poll gives up with nothing, and nothing is taken afterwards."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    server = fleet_env.server_pid("mosaic-fleet")
    os.kill(server, signal.SIGSTOP)
    try:
        out, _ = run_script(fleet_env, "cancel")
    finally:
        os.kill(server, signal.SIGCONT)
    assert out["forked"] and not out["taken"]
    assert out["cancel_s"] < 5.0  # not the tmux timeout (60 s): at most the 1 s grace, 5x
    assert out["take_s"] is not None and out["take_s"] < 5.0  # the waiting poll gave up too
    assert out["reaped"]


def test_no_child_where_a_fork_is_not_safe(
    fleet_env: FleetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not forked with a gateway (its feed belongs to one process), with another thread
    running (a fork copies none), or when the operator turned it off."""
    monkeypatch.delenv("FLEET_TUI_NO_FIRST_POLL", raising=False)  # (conftest's, for the runner)
    config = FleetConfig.from_flags()
    config.gateway = GatewaySettings(url="https://gw.invalid", token=Secret("t"))
    assert FirstPoll.start(config) is None
    config.gateway = None
    monkeypatch.setenv("FLEET_TUI_NO_FIRST_POLL", "1")
    assert FirstPoll.start(config) is None
    monkeypatch.delenv("FLEET_TUI_NO_FIRST_POLL")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="another")
    other.start()
    try:
        assert FirstPoll.start(config) is None
    finally:
        stop.set()
        other.join()


class _Given:
    def __init__(self, taken: tuple[FleetSnapshot, LoadedRoster | None] | None) -> None:
        self.taken = taken
        self.takes = 0

    def take(self) -> tuple[FleetSnapshot, LoadedRoster | None] | None:
        self.takes += 1
        return self.taken


@pytest.mark.tmux
def test_the_source_serves_the_first_snapshot_then_polls_in_full(fleet_env: FleetEnv) -> None:
    """`use_first`: the next poll is the given snapshot; the one after it is the source's own,
    in full even when asked for heartbeats only: tmux listed, and the token and budget
    providers asked (the dashboard's first poll of them). A first poll with no snapshot to give
    is the source's own."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    given = big_snapshot(3)
    asked: list[str] = []

    def usage(snapshot: FleetSnapshot, now: datetime) -> dict[str, int]:
        asked.append("usage")
        return {}

    source = LiveSource(FleetConfig.from_flags(), usage_provider=usage)
    first = _Given((given, None))
    source.use_first(first)
    assert source.poll() is given and asked == []
    own = source.poll(heartbeats_only=True)
    assert first.takes == 1 and asked == ["usage"]
    row = next(a for a in own.agents if a.name == "orchestrator")
    assert row.tmux is not None and row.tmux.pane_pid == fleet_env.pane_pid(
        "mosaic-fleet", "orchestrator"
    )
    again = LiveSource(FleetConfig.from_flags())
    again.use_first(_Given(None))
    assert any(a.name == "orchestrator" and a.tmux for a in again.poll().agents)


@pytest.mark.tmux
def test_a_roster_broken_before_the_dashboards_own_first_read_keeps_the_childs(
    fleet_env: FleetEnv,
) -> None:
    """The roster the child read is the dashboard's last good one: broken right after the
    first frame, the fleet still shows with it and says why, as when the dashboard had read
    it itself (it does not stop at the roster's error)."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    config = FleetConfig.from_flags()
    good = load_roster(fleet_env.roster_path)
    source = LiveSource(config)
    source.use_first(_Given((big_snapshot(3), good)))
    source.poll()
    fleet_env.write_roster(text="version: 1\ntenant_id: acme\nagents:\n  - name: [oops\n")
    shown = source.poll()
    assert [a.name for a in shown.agents if a.in_roster] == ["orchestrator"]
    assert any("showing the last good roster" in w for w in shown.warnings)
    fresh = LiveSource(config)  # without the child's roster: the error, as before the change
    with pytest.raises(RosterError):
        fresh.poll()
