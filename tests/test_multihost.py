"""Several hosts in one view, end to end: publishers of two simulated hosts (each its own tmux
folder, state dir and roster with its own `host:`), the real reference gateway on real PostgreSQL,
and readers (`ps --gateway`, the dashboard on a LiveSource with a gateway). Also tenant isolation
and the gateway stopped and restarted under a running dashboard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv
from pg_support import GatewayServer

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.control.panes import new_agent_session
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.remote.connection import Backoff, GatewaySettings, Secret
from fleet_tui.service.poll import GATEWAY_CACHE, GatewayFeed, LiveSource
from fleet_tui.tmux import TmuxRunner
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.widgets import FleetTable

pytestmark = pytest.mark.tmux


class OtherHost:
    """A second host on this machine: its own tmux folder, state dir and roster."""

    def __init__(self, world: FleetEnv, tag: str, *, host: str, tenant: str = "acme") -> None:
        self.world = world
        self.base = world.base / tag  # inside the world: its teardown reaps our tmux server
        self.state_dir = self.base / "s"
        self.roster = self.base / "roster.yaml"
        (self.base / "t").mkdir(parents=True)
        self.env = {
            "TMUX_TMPDIR": str(self.base / "t"),
            "MOSAIC_FLEET_STATE_DIR": str(self.state_dir),
            "MOSAIC_FLEET_ROSTER": str(self.roster),
        }
        self.runner = TmuxRunner(tmpdir=str(self.base / "t"), env={**world.env, **self.env})
        self.tenant, self.host = tenant, host

    def fleet(self, *names: str) -> None:
        self.world.write_roster(
            [{"name": n, "role": "coder"} for n in names],
            tenant=self.tenant,
            host=self.host,
            path=self.roster,
        )
        for n in names:
            new_agent_session(
                self.runner, "mosaic-fleet", n, ["sleep", "300"], env={}, width=80, height=24
            )
            self.cli("heartbeat", n, "--state", "busy", "--detail", f"work of {n}")

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        res = self.world.cli(*args, env={**self.env, **(env or {})})
        return res


def publish(who: OtherHost | FleetEnv, gw: GatewayServer, token: str) -> None:
    env = {"MOSAIC_FLEET_GATEWAY_URL": gw.url, "MOSAIC_FLEET_GATEWAY_TOKEN": token}
    res = who.cli("publish", "--once", "--insecure", env=env)
    assert res.rc == 0, res


def local_host(world: FleetEnv) -> None:
    world.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h-a")
    world.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    assert world.cli("heartbeat", "orchestrator", "--state", "idle").rc == 0


def read_env(gw: GatewayServer, token: str) -> dict[str, str]:
    return {"MOSAIC_FLEET_GATEWAY_URL": gw.url, "MOSAIC_FLEET_GATEWAY_TOKEN": token}


def test_two_publishing_hosts_appear_in_one_merged_ps_table(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    local_host(fleet_env)
    b = OtherHost(fleet_env, "b", host="h-b")
    b.fleet("coder-b1", "coder-b2")
    pub = gateway.token("acme", "publish")
    publish(b, gateway, pub)
    publish(fleet_env, gateway, pub)  # the gateway also holds a copy of h-a: it is not shown
    read = gateway.token("acme", "read")
    res = fleet_env.cli("ps", "--json", "--insecure", env=read_env(gateway, read))
    assert res.rc == 0, res
    doc = json.loads(res.stdout)
    rows = sorted((a["host"], a["name"], a["health"]) for a in doc["agents"])
    assert rows == [
        ("h-a", "orchestrator", "healthy"),
        ("h-b", "coder-b1", "healthy"),
        ("h-b", "coder-b2", "healthy"),
    ]
    remote = next(a for a in doc["agents"] if a["name"] == "coder-b1")
    assert "via gateway" in remote["health_reason"]
    assert remote["heartbeat"]["detail"] == "work of coder-b1"
    assert {s["name"]: s["ok"] for s in doc["sources"]}["gateway:h-b"] is True
    table = fleet_env.cli("ps", "--insecure", env={**read_env(gateway, read), "COLUMNS": "150"})
    header = table.stdout.splitlines()[0]
    assert header.split()[:2] == ["HOST", "AGENT"]
    assert any(line.split()[:2] == ["h-b", "coder-b2"] for line in table.stdout.splitlines())
    for out in (res.stdout, res.stderr, table.stdout, table.stderr, gateway.log()):
        assert read not in out and pub not in out


def test_a_read_token_of_tenant_a_never_sees_tenant_b(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    local_host(fleet_env)
    b = OtherHost(fleet_env, "b", host="h-b", tenant="beta")
    b.fleet("secret-agent")
    publish(b, gateway, gateway.token("beta", "publish"))
    c = OtherHost(fleet_env, "c", host="h-c")
    c.fleet("coder-c")
    publish(c, gateway, gateway.token("acme", "publish"))
    acme = gateway.token("acme", "read")

    doc = json.loads(
        fleet_env.cli("ps", "--json", "--insecure", env=read_env(gateway, acme)).stdout
    )
    assert {a["name"] for a in doc["agents"]} == {"orchestrator", "coder-c"}
    assert "secret-agent" not in json.dumps(doc)

    asked = fleet_env.cli(
        "ps", "--json", "--insecure", "--tenant", "beta", env=read_env(gateway, acme)
    )
    assert asked.rc == 0
    doc = json.loads(asked.stdout)
    assert doc["agents"] == [] and "secret-agent" not in asked.stdout + asked.stderr
    assert any("not allowed for this token (403)" in w for w in doc["warnings"])

    bad = fleet_env.cli("ps", "--json", "--insecure", env=read_env(gateway, "fgt_forged"))
    assert any("token refused (401)" in w for w in json.loads(bad.stdout)["warnings"])

    both = gateway.token(["acme", "beta"], "read")
    doc = json.loads(
        fleet_env.cli(
            "ps", "--json", "--insecure", "--tenant", "beta", env=read_env(gateway, both)
        ).stdout
    )
    assert [(a["tenant_id"], a["name"]) for a in doc["agents"]] == [("beta", "secret-agent")]


def row_of(app: FleetApp, name: str) -> str:
    table = app.fleet_screen.query_one(FleetTable)
    for y in range(1, table.size.height):
        line = table.render_line(y).text
        if f" {name} " in f" {line} ":
            return line
    return ""


def status(snapshot: FleetSnapshot | None, name: str) -> tuple[bool, str] | None:
    if snapshot is None:
        return None
    for s in snapshot.sources:
        if s.name == name:
            return s.ok, s.detail or ""
    return None


async def wait_for(pilot: Any, predicate: Any, timeout: float, what: str) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


async def test_dashboard_merges_hosts_degrades_when_the_gateway_stops_and_recovers(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    local_host(fleet_env)
    b = OtherHost(fleet_env, "b", host="h-b")
    b.fleet("coder-b1")
    pub = gateway.token("acme", "publish")
    publish(b, gateway, pub)
    read = gateway.token("acme", "read")
    settings = GatewaySettings(
        url=gateway.url,
        token=Secret(read),
        insecure=True,
        connect_timeout_s=1.0,
        read_timeout_s=2.0,
        deadline_s=3.0,
        stale_after_s=4.0,
        refresh_s=0.2,
    )
    feed = GatewayFeed(
        settings,
        backoff=Backoff(base_s=0.2, cap_s=0.5),
        cache_path=fleet_env.state_dir / GATEWAY_CACHE,  # what LiveSource gives its own feed
    )
    source = LiveSource(FleetConfig.from_flags(), gateway=feed)
    app = FleetApp(source, settings=DashboardSettings(poll_interval_s=0.3))
    try:
        async with app.run_test(size=(170, 40)) as pilot:
            await wait_for(pilot, lambda: "coder-b1" in row_of(app, "coder-b1"), 15, "remote row")
            assert row_of(app, "coder-b1").split()[0] == "h-b"
            assert row_of(app, "orchestrator").split()[0] == "h-a"
            assert status(app.snapshot, "gateway:h-b") == (True, "")

            gateway.stop()
            await wait_for(
                pilot, lambda: status(app.snapshot, "gateway") is not None
                and status(app.snapshot, "gateway")[0] is False,  # type: ignore[index]
                15, "the gateway marked degraded",
            )  # fmt: skip
            snap = app.snapshot
            assert snap is not None
            _ok, gw_detail = status(snap, "gateway")  # type: ignore[misc]
            assert "unreachable" in gw_detail
            assert status(snap, "gateway:h-b")[0] is False  # type: ignore[index]
            remote = next(a for a in snap.agents if a.name == "coder-b1")
            assert "via gateway, stale" in remote.health_reason  # still shown, marked stale
            header = str(app.fleet_screen.query_one("#header").render())
            assert "gateway" in header and "degraded" in header
            assert any(w.startswith(f"gateway {gateway.url}: unreachable") for w in snap.warnings)
            # `ps` during the outage: the local view, the other hosts from the last answer
            # (kept in the state dir) marked stale, and a warning naming the gateway
            down = fleet_env.cli("ps", "--json", "--insecure", env=read_env(gateway, read))
            assert down.rc == 0
            assert f"warning: gateway {gateway.url}: unreachable" in down.stderr
            doc = json.loads(down.stdout)
            reasons = {a["name"]: a["health_reason"] for a in doc["agents"]}
            assert "via gateway" not in reasons["orchestrator"]
            assert reasons["coder-b1"].endswith("via gateway, stale)")
            gateway.start()
            await wait_for(
                pilot, lambda: status(app.snapshot, "gateway") == (True, ""), 15, "recovery"
            )
            # back, but h-b has not published for longer than the threshold: honest about it
            await wait_for(
                pilot,
                lambda: "last published" in (status(app.snapshot, "gateway:h-b") or (0, ""))[1],
                15,
                "h-b marked stale by age",
            )
            publish(b, gateway, pub)
            await wait_for(
                pilot, lambda: status(app.snapshot, "gateway:h-b") == (True, ""), 15, "h-b fresh"
            )
            remote = next(a for a in app.snapshot.agents if a.name == "coder-b1")  # type: ignore[union-attr]
            assert "stale" not in remote.health_reason
            back = fleet_env.cli("ps", "--insecure", env=read_env(gateway, read))
            assert (
                back.rc == 0 and "coder-b1" in back.stdout and "warning: gateway" not in back.stderr
            )
    finally:
        source.close()
    for out in (gateway.log(),):
        assert read not in out


def test_remote_rows_cannot_reach_a_local_pane(fleet_env: FleetEnv, gateway: GatewayServer) -> None:
    """A remote agent may share a pane id or a name with a local one: the dashboard's source
    never captures (or lets actions reach) a local pane for it."""
    local_host(fleet_env)
    b = OtherHost(fleet_env, "b", host="h-b")
    b.fleet("orchestrator")  # same name as the local agent, same pane id %0 in its own server
    publish(b, gateway, gateway.token("acme", "publish"))
    settings = GatewaySettings(url=gateway.url, token=Secret(gateway.token()), insecure=True)
    source = LiveSource(FleetConfig.from_flags(), gateway=settings)
    try:
        source.poll()
        source.gateway.wait(10)  # type: ignore[union-attr]
        snap = source.poll()
    finally:
        source.close()
    remote = next(a for a in snap.agents if a.host == "h-b")
    local = next(a for a in snap.agents if a.host == "h-a")
    assert remote.tmux is not None and remote.socket is None
    assert source.capture(remote) == [] and source.capture_screen(remote) == ""
    assert local.socket == "mosaic-fleet" and source.pane_activity(local) is not None
    assert Path(fleet_env.state_dir).exists()


# -- the merge itself (pure: snapshots and `now` given) ------------------------------------------


def _local(host: str = "h-a") -> FleetSnapshot:
    from datetime import UTC, datetime

    return FleetSnapshot(
        generated_at=datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
        host=host,
        tenant_id="acme",
        heartbeat_timeout_s=30,
        sockets=[],
        agents=[],
        warnings=[],
    )


def _remote(host: str, age_s: float, observed_age_s: float, health: str = "healthy") -> Any:
    from datetime import UTC, datetime, timedelta

    from fleet_tui.core.merge import RemoteHostData
    from fleet_tui.model.records import AgentRecord

    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    rec = AgentRecord.model_validate(
        {
            "tenant_id": "acme",
            "host": host,
            "name": "coder\x1b[2J",
            "role": "coder",
            "alias": None,
            "runtime": "stub",
            "model": None,
            "lifecycle": "always-on",
            "in_roster": True,
            "socket": "mosaic-fleet",
            "session": "coder",
            "tmux": None,
            "systemd": None,
            "process": None,
            "heartbeat": {
                "ts": (now - timedelta(seconds=age_s + observed_age_s)).isoformat(),
                "age_s": age_s,
                "seq": 1,
                "state": "busy",
                "detail": "\x1b]0;x\x07hi",
            },
            "health": health,
            "health_reason": "heartbeat fresh",
            "drift": [],
        }
    )
    snap = _local(host).model_copy(update={"agents": [rec]})
    return RemoteHostData("acme", host, now - timedelta(seconds=observed_age_s), snap)


def test_merge_ages_remote_data_and_never_shows_it_fresher_than_it_is() -> None:
    from datetime import UTC, datetime

    from fleet_tui.core.merge import GatewayView, merge_snapshots
    from fleet_tui.model.records import Health

    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    view = GatewayView(
        url="http://127.0.0.1:1",
        hosts=[_remote("h-a", 1, 1), _remote("h-b", 5, 20), _remote("h-c", 5, 70)],
        answered_at=now,
    )
    merged = merge_snapshots(_local(), view, now, stale_after_s=60)
    by_host = {a.host: a for a in merged.agents}
    assert set(by_host) == {"h-b", "h-c"}  # the gateway's copy of this host is dropped
    b, c = by_host["h-b"], by_host["h-c"]
    assert b.health is Health.HEALTHY and b.heartbeat is not None and b.heartbeat.age_s == 25
    assert b.health_reason == "heartbeat fresh (as of 20 s ago via gateway)"
    # 75 s since its heartbeat, timeout 30 s: no longer healthy, and stale by the threshold
    assert c.health is Health.STALE
    assert c.health_reason == "heartbeat 75 s ago, timeout 30 s (as of 70 s ago via gateway, stale)"
    assert "\x1b" not in c.name + (c.heartbeat.detail or "")  # type: ignore[union-attr]
    status = {s.name: s for s in merged.sources}
    assert status["gateway:h-b"].ok and not status["gateway:h-c"].ok
    assert "last published 70 s ago" in (status["gateway:h-c"].detail or "")
    # a down agent is never raised by the merge
    down = merge_snapshots(
        _local(), GatewayView(url="u", hosts=[_remote("h-d", 5, 1, "down")], answered_at=now), now
    )
    assert down.agents[0].health is Health.DOWN


def test_merge_marks_everything_remote_stale_when_the_gateway_is_down() -> None:
    from datetime import UTC, datetime, timedelta

    from fleet_tui.core.merge import GatewayView, merge_snapshots

    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    view = GatewayView(
        url="http://gw:1",
        hosts=[_remote("h-b", 1, 3)],
        answered_at=now - timedelta(seconds=3),
        error="gateway http://gw:1: unreachable (connection refused)",
    )
    merged = merge_snapshots(_local(), view, now)
    assert merged.warnings == [
        "gateway http://gw:1: unreachable (connection refused); remote hosts as of 3 s ago"
    ]
    assert [a.name for a in merged.agents] == ["coder"]  # still shown...
    assert merged.agents[0].health_reason.endswith("(as of 3 s ago via gateway, stale)")
    status = {s.name: s for s in merged.sources}
    assert not status["gateway"].ok and not status["gateway:h-b"].ok  # ...and marked


def test_budgets_pace_the_usage_samples_other_hosts_published(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """Host h-b's statusline recorded its account's weekly window; `budget --gateway` on h-a
    paces that window (h-a has no sample of its own), and without the gateway it cannot."""
    from datetime import UTC, datetime, timedelta

    from fleet_tui.model.records import UsageSample
    from fleet_tui.protocol.ledger import append_records, usage_path

    local_host(fleet_env)
    budgets = fleet_env.base / "budgets.yaml"
    budgets.write_text(
        "version: 1\ntenant_id: acme\naccounts:\n"
        "  - id: claude-max-a\n    provider: anthropic\n    runtime: claude\n"
        "    regime: subscription\n    windows:\n      - {name: weekly, minutes: 10080}\n"
    )
    b = OtherHost(fleet_env, "b", host="h-b")
    b.fleet("coder-b1")
    now = datetime.now(UTC)
    resets = now + timedelta(days=3)
    append_records(
        usage_path(b.state_dir),
        [
            UsageSample(
                tenant_id="acme",
                host="h-b",
                account="claude-max-a",
                window="weekly",
                window_minutes=10080,
                used_percent=used,
                resets_at=resets,
                reset_confidence="provider",
                observed_at=now - timedelta(minutes=m),
                source="statusline",
            )
            for used, m in ((70.0, 90), (80.0, 2))
        ],
    )
    publish(b, gateway, gateway.token("acme", "publish"))
    read = gateway.token("acme", "read")
    env = {"MOSAIC_FLEET_BUDGETS": str(budgets)}

    def weekly(*flags: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
        res = fleet_env.cli("budget", "--json", *flags, env={**env, **(extra or {})})
        assert res.rc == 0, res
        doc = json.loads(res.stdout)
        return {w["name"]: w for w in doc["accounts"][0]["windows"]}["weekly"]

    assert weekly()["used_percent"] is None  # this host alone knows nothing of the window
    seen = weekly("--insecure", extra=read_env(gateway, read))
    assert seen["used_percent"] == 80.0 and seen["status"] == "ahead"  # ideal: 57 %
    # The dashboard's budget source asks in the background, and paces them at its next load.
    from fleet_tui.config.paths import Located
    from fleet_tui.service.budgets import LiveBudgetSource, report_json

    source = LiveBudgetSource(
        Located(budgets, True),
        fleet_env.state_dir,
        tenant_id="acme",
        host="h-a",
        gateway=GatewaySettings(url=gateway.url, token=Secret(read), insecure=True),
    )
    source.load()
    assert source._gateway_thread is not None
    source._gateway_thread.join(15)
    doc = report_json(source.load())
    assert doc["accounts"][0]["windows"][0]["used_percent"] == 80.0
    # The gateway gone: the local view, and the reason on stderr, never a crash.
    gateway.stop()
    res = fleet_env.cli("budget", "--insecure", env={**env, **read_env(gateway, read)})
    assert res.rc == 0 and "unreachable" in res.stderr, res
    assert read not in res.stdout + res.stderr
