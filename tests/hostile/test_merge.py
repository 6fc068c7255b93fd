"""The merge of local and remote hosts against spoofed and hostile gateway rows, with the real
reference gateway on real PostgreSQL and real tmux: a row whose host only LOOKS like this host
never becomes local (no socket to act on, `remote=True`), future-dated data is never fresh, and
a partly invalid answer degrades to a warning instead of losing every host."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import FleetEnv
from pg_support import GatewayServer

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.core.merge import GatewayView, RemoteHostData, merge_snapshots
from fleet_tui.model.records import FleetSnapshot, Health
from fleet_tui.remote.client import parse_snapshot_answer
from fleet_tui.remote.connection import GatewaySettings, Secret
from fleet_tui.service.poll import LiveSource

pytestmark = pytest.mark.tmux


def store_row(gw: GatewayServer, host: str, ps: dict[str, Any], observed: datetime) -> None:
    """A row as a hostile (or older, laxer) gateway would hold it: written straight into the
    register's table, past any check of the gateway's routes."""
    import psycopg

    with psycopg.connect(gw.dsn) as conn:
        conn.execute("INSERT INTO fleet.tenants (tenant_id) VALUES ('acme') ON CONFLICT DO NOTHING")
        conn.execute(
            "INSERT INTO fleet.host_snapshots (tenant_id, host, observed_at, agents, ps)"
            " VALUES ('acme', %s, %s, %s, %s)",
            [host, observed, len(ps["agents"]), json.dumps(ps)],
        )


def respelled(doc: dict[str, Any], host: str, rename: dict[str, str]) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    out["host"] = host
    for a in out["agents"]:
        a["host"] = host
        a["name"] = rename.get(a["name"], a["name"])
    return out


def test_a_row_spelled_like_this_host_is_never_local(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """The gateway holds this host's own `ps` document under `h-a\\u200b` (invisible char) and
    under `h-a\\x1b[m` (sanitized to `h-a` for display), each with the local pane's socket and
    pane id. The first is recognised as this host's copy and dropped; the second is shown as
    remote with no socket: no row from the gateway can make the dashboard act on a local pane."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h-a")
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    assert fleet_env.cli("heartbeat", "orchestrator", "--state", "busy").rc == 0
    mine = fleet_env.ps_json()
    assert mine["agents"][0]["socket"] == "mosaic-fleet"
    now = datetime.now(UTC)
    store_row(gateway, "h-a\u200b", respelled(mine, "h-a\u200b", {"orchestrator": "zw"}), now)
    store_row(gateway, "h-a\x1b[m", respelled(mine, "h-a\x1b[m", {}), now)
    settings = GatewaySettings(url=gateway.url, token=Secret(gateway.token()), insecure=True)
    source = LiveSource(FleetConfig.from_flags(), gateway=settings)
    try:
        source.poll()
        source.gateway.wait(10)  # type: ignore[union-attr]
        snap = source.poll()
    finally:
        source.close()
    assert "zw" not in {a.name for a in snap.agents}  # this host's copy: dropped
    local = [a for a in snap.agents if not a.remote]
    assert [(a.host, a.name, a.socket) for a in local] == [("h-a", "orchestrator", "mosaic-fleet")]
    spoofed = [a for a in snap.agents if a.remote]
    assert len(spoofed) == 1 and spoofed[0].name == "orchestrator"
    assert spoofed[0].host == "h-a"  # looks like this host once sanitized...
    assert spoofed[0].socket is None  # ...but nothing to act on
    assert source.capture(spoofed[0]) == [] and source.pane_activity(spoofed[0]) is None


def _local(now: datetime) -> FleetSnapshot:
    return FleetSnapshot(
        generated_at=now, host="h-a", tenant_id="acme", heartbeat_timeout_s=30,
        sockets=[], agents=[], warnings=[],
    )  # fmt: skip


def _answer(now: datetime, observed: datetime, **row: Any) -> dict[str, Any]:
    agent = {
        "tenant_id": "acme", "host": "h-b", "name": "coder", "role": "coder",
        "lifecycle": "always-on", "in_roster": True, "socket": "mosaic-fleet",
        "session": "coder", "health": "healthy", "health_reason": "heartbeat 1 s ago",
        "heartbeat": {"ts": observed.isoformat(), "age_s": 1.0, "seq": 1, "state": "busy",
                      "detail": None},
        "alias": None, "runtime": "stub", "model": None, "tmux": None, "systemd": None,
        "process": None, "drift": [],
    }  # fmt: skip
    ps = {"schema": "mosaic.fleet.ps/v1", "generated_at": observed.isoformat(), "host": "h-b",
          "tenant_id": "acme", "heartbeat_timeout_s": 30, "agents": [agent]}  # fmt: skip
    host = {"host": "h-b", "tenant_id": "acme", "observed_at": observed.isoformat(), "ps": ps}
    return {"schema": "mosaic.fleet.snapshot/v1", "hosts": [host | row]}


def test_a_host_dated_in_the_future_that_went_silent_is_not_shown_fresh() -> None:
    """A publisher 4 minutes fast published once and went silent: 75 s after the gateway got
    it, the host is stale and its agent no longer healthy (the gateway's `age_s` is used), and
    no age on screen is negative."""
    now = datetime.now(UTC)
    observed = now + timedelta(minutes=4)  # its clock is fast
    answer = parse_snapshot_answer(_answer(now, observed, age_s=75.0), "acme", now)
    host = answer.hosts[0]
    view = GatewayView(
        url="http://gw",
        hosts=[RemoteHostData(host.tenant_id, host.host, host.observed_at, host.snapshot,
                              age_s=host.age_s, fetched_at=answer.fetched_at)],
        answered_at=now,
    )  # fmt: skip
    merged = merge_snapshots(_local(now), view, now, stale_after_s=60)
    agent = merged.agents[0]
    assert agent.remote and agent.health is not Health.HEALTHY
    assert "75 s ago" in agent.health_reason and "-" not in agent.health_reason
    status = {s.name: s for s in merged.sources}["gateway:h-b"]
    assert not status.ok
    # without the gateway's age: aged from when it was first seen, never 0 s for ever
    later = now + timedelta(seconds=75)
    old_view = GatewayView(
        url="http://gw",
        hosts=[RemoteHostData("acme", "h-b", observed, host.snapshot, fetched_at=now)],
        answered_at=now,
    )
    merged = merge_snapshots(_local(later), old_view, later, stale_after_s=60)
    assert merged.agents[0].health is not Health.HEALTHY
    assert not {s.name: s for s in merged.sources}["gateway:h-b"].ok


def test_a_partly_invalid_or_oversized_answer_keeps_the_valid_hosts() -> None:
    """Nonsense rows, a row without a valid time, a host answered twice and a host with more
    agents than the cap: each is named in a warning, what is valid is kept (once)."""
    from fleet_tui.remote.client import MAX_AGENTS_PER_HOST

    now = datetime.now(UTC)
    doc = _answer(now, now)
    good = doc["hosts"][0]
    big = json.loads(json.dumps(good))
    big["host"] = big["ps"]["host"] = "h-big"
    agent = big["ps"]["agents"][0] | {"host": "h-big"}
    big["ps"]["agents"] = [agent | {"name": f"c{i}"} for i in range(MAX_AGENTS_PER_HOST + 7)]
    doc["hosts"] += ["nonsense", {"host": "h-c", "tenant_id": "acme", "observed_at": "no"}]
    doc["hosts"] += [json.loads(json.dumps(good)), big]
    answer = parse_snapshot_answer(doc, "acme", now)
    assert [h.host for h in answer.hosts] == ["h-b", "h-big"]
    assert len(answer.hosts[1].snapshot.agents) == MAX_AGENTS_PER_HOST
    text = "\n".join(answer.warnings)
    assert "hosts[1] invalid" in text and "hosts[2] invalid" in text
    assert "h-b answered twice" in text
    assert f"h-big: {MAX_AGENTS_PER_HOST + 7} agents: only the first" in text


def test_no_age_is_ever_printed_negative() -> None:
    """A heartbeat dated 1123 days ahead: the helpers say so, never '-1123 d ago'."""
    from fleet_tui.core.timefmt import human_ago, human_duration

    future = -1123 * 86400.0
    assert human_duration(future) == "1123 d in the future"
    assert human_ago(future) == "1123 d in the future (clock skew?)"
    assert human_ago(75.0) == "75 s ago" and human_duration(75.0) == "75 s"
    for value in (future, -0.5, -90.0, -7300.0, float("nan"), float("-inf")):
        for text in (human_duration(value), human_ago(value)):
            assert text == "-" or "-" not in text, (value, text)


def test_remote_ages_that_lie_never_keep_a_silent_host_healthy() -> None:
    """A remote row whose heartbeat age is negative or NaN, or which claims `healthy` with no
    heartbeat at all, from a host silent for 200 s: none of them is shown healthy, and no
    reason prints a negative age."""
    now = datetime.now(UTC)
    doc = _answer(now, now - timedelta(seconds=200))
    agents = doc["hosts"][0]["ps"]["agents"]
    base = agents[0]
    agents[:] = [
        base | {"name": "neg", "heartbeat": base["heartbeat"] | {"age_s": -1e6}},
        base | {"name": "nan", "heartbeat": base["heartbeat"] | {"age_s": float("nan")}},
        base | {"name": "nohb", "heartbeat": None},
    ]
    answer = parse_snapshot_answer(json.loads(json.dumps(doc)), "acme", now)
    assert len(answer.hosts[0].snapshot.agents) == 3, answer.warnings
    h = answer.hosts[0]
    view = GatewayView(
        url="http://gw",
        hosts=[RemoteHostData(h.tenant_id, h.host, h.observed_at, h.snapshot, fetched_at=now)],
        answered_at=now,
    )
    merged = merge_snapshots(_local(now), view, now, stale_after_s=60)
    assert {a.name: a.health for a in merged.agents} == {
        "neg": Health.UNRESPONSIVE,  # 200 s, over 3x the 30 s timeout
        "nan": Health.UNRESPONSIVE,
        "nohb": Health.UNRESPONSIVE,
    }
    assert all(" -" not in a.health_reason for a in merged.agents)


def test_a_budgets_answer_full_of_invalid_samples_keeps_the_valid_ones_in_one_warning() -> None:
    """500 invalid samples and 2 valid ones (real HTTP on loopback): the 2 are kept, and the
    500 are one warning with a count, not 500 lines."""
    import threading

    from test_gateway_client import FakeGateway

    from fleet_tui.remote.client import GatewayClient

    now = datetime.now(UTC)
    good = {
        "tenant_id": "acme", "host": "h-b", "account": "claude-max-a", "window": "5h",
        "window_minutes": 300, "used_percent": 12.5, "resets_at": None,
        "reset_confidence": "unknown", "observed_at": now.isoformat(), "source": "test",
    }  # fmt: skip
    windows = [good | {"used_percent": "lots"}] * 500 + [good, good | {"window": "weekly"}]
    server = FakeGateway()
    server.reply = lambda h: h.send_json(200, {"accounts": [{"windows": windows}]})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        settings = GatewaySettings(url=server.url, token=Secret("t0k"), insecure=True)
        with GatewayClient(settings) as client:
            samples, warnings = client.fetch_budget_samples("acme")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert [s.window for s in samples] == ["5h", "weekly"]
    assert len(warnings) == 1 and "500 budgets sample(s) left out" in warnings[0], warnings
