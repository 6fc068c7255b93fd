"""The gateway read client against a tiny loopback HTTP server of ours that answers nonsense:
garbage, 500s, slow or dribbling answers, other tenants' rows, an echoed token. The dashboard and
`ps` must degrade with a clear reason, never crash, never hang beyond the timeouts, and never show
the token. Also: token files, addresses, TLS rules, backoff."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.errors import BadInput
from fleet_tui.model.records import PS_SCHEMA
from fleet_tui.remote.client import SNAPSHOT_SCHEMA, GatewayClient
from fleet_tui.remote.connection import (
    Backoff,
    GatewayError,
    GatewaySettings,
    Secret,
    check_gateway_url,
    gateway_settings,
    load_token,
)
from fleet_tui.service.poll import GatewayFeed, LiveSource

TOKEN = "fgt_s3cr3t-token-value-0123456789"

Reply = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: FakeGateway

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Authorization", "")))
        self.server.reply(self)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.posts.append((self.path, self.rfile.read(length)))
        self.server.reply(self)

    def send_json(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode() if not isinstance(data, bytes) else data
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeGateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str]] = []
        self.posts: list[tuple[str, bytes]] = []
        self.reply: Reply = lambda h: h.send_json(200, answer([]))

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeouts are the point of some tests)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    server = FakeGateway()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def remote_agent(name: str, host: str, tenant: str = "acme", **kw: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "tenant_id": tenant, "host": host, "name": name, "role": "coder", "alias": None,
        "runtime": "stub", "model": None, "lifecycle": "always-on", "in_roster": True,
        "socket": "mosaic-fleet", "session": name,
        "tmux": {"session_id": "$1", "pane_id": "%1", "pane_pid": 4242, "pane_dead": False,
                 "current_command": "python", "attached_clients": 0,
                 "activity_at": now.isoformat(), "idle_s": 1.0},
        "systemd": None, "process": None,
        "heartbeat": {"ts": now.isoformat(), "age_s": 2.0, "seq": 3, "state": "busy",
                      "detail": "working"},
        "health": "healthy", "health_reason": "heartbeat 2 s ago, timeout 30 s", "drift": [],
    }  # fmt: skip
    data.update(kw)
    return data


def host_row(host: str, agents: list[dict[str, Any]], *, tenant: str = "acme",
             age_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    observed = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
    ps = {"schema": PS_SCHEMA, "generated_at": observed, "host": host, "tenant_id": tenant,
          "heartbeat_timeout_s": 30, "sockets": [], "agents": agents, "warnings": []}  # fmt: skip
    return {"host": host, "tenant_id": tenant, "observed_at": observed, "ps": ps}


def answer(hosts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SNAPSHOT_SCHEMA, "hosts": hosts}


def gw_env(fake: FakeGateway) -> dict[str, str]:
    return {"MOSAIC_FLEET_GATEWAY_URL": fake.url, "MOSAIC_FLEET_GATEWAY_TOKEN": TOKEN}


def settings(url: str, **kw: Any) -> GatewaySettings:
    base: dict[str, Any] = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "deadline_s": 1.5}
    base.update(kw)
    return GatewaySettings(url=url, token=Secret(TOKEN), insecure=True, **base)


# -- the happy path, through the command line ----------------------------------------------------


def test_ps_merges_a_remote_host_and_marks_where_it_comes_from(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h1")
    fake.reply = lambda h: h.send_json(
        200,
        answer(
            [
                host_row("h1", [remote_agent("orchestrator", "h1")]),  # the gateway's copy of us
                host_row("h2", [remote_agent("coder-b", "h2")], age_s=5),
            ]
        ),
    )
    res = fleet_env.cli("ps", "--json", "--insecure", env=gw_env(fake))
    assert res.rc == 0, res.stderr
    doc = json.loads(res.stdout)
    by_name = {(a["host"], a["name"]): a for a in doc["agents"]}
    # local tmux is the truth for h1: the local record (no session: down), not the gateway's
    assert by_name[("h1", "orchestrator")]["health"] == "down"
    assert len([a for a in doc["agents"] if a["name"] == "orchestrator"]) == 1
    remote = by_name[("h2", "coder-b")]
    assert "via gateway" in remote["health_reason"]
    assert remote["heartbeat"]["age_s"] >= 7.0  # 2 s old when published, published 5 s ago
    status = {s["name"]: s for s in doc["sources"]}
    assert status["gateway:h2"]["ok"] is True and status["gateway"]["ok"] is True
    assert fake.requests[0] == ("/api/fleet/v1/snapshot?tenant=acme", f"Bearer {TOKEN}")
    assert TOKEN not in res.stdout + res.stderr
    table = fleet_env.cli("ps", "--insecure", env={**gw_env(fake), "COLUMNS": "160"})
    assert "HOST" in table.stdout and "h2" in table.stdout and "coder-b" in table.stdout


# -- nonsense answers: degraded with a reason, no crash, no hang ---------------------------------

NONSENSE: dict[str, tuple[Reply, str]] = {
    "garbage": (lambda h: h.send_json(200, b"\x00\xff<html>surprise"), "not JSON"),
    "server error echoing the token": (
        lambda h: h.send_json(
            500, {"error": {"code": "internal", "message": f"boom {h.headers['Authorization']}"}}
        ),
        "server error (500)",
    ),
    "wrong schema": (lambda h: h.send_json(200, {"schema": "x/v9", "hosts": []}), "schema"),
    "hosts not a list": (lambda h: h.send_json(200, {"schema": SNAPSHOT_SCHEMA}), "hosts"),
    "refused token": (
        lambda h: h.send_json(401, {"error": {"code": "unauthorized", "message": "bad token"}}),
        "token refused (401)",
    ),
    "a login page": (
        lambda h: h.send_json(200, b"<!DOCTYPE html><html><body>Sign in</body></html>"),
        "an HTML page, not JSON: is this the gateway's address?",
    ),
    "a proxy's 404 page": (
        lambda h: h.send_json(404, b"<html><head><title>404 Not Found</title></head></html>"),
        "not the gateway API (404): an HTML page",
    ),
    "escape sequences": (
        lambda h: h.send_json(503, {"error": {"message": "\x1b]0;pwned\x07\x1b[2Jdown"}}),
        "server error (503)",
    ),
}


@pytest.mark.parametrize("case", list(NONSENSE))
def test_ps_degrades_on_nonsense_with_one_clear_reason(
    fleet_env: FleetEnv, fake: FakeGateway, case: str
) -> None:
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h1")
    fake.reply, reason = NONSENSE[case]
    res = fleet_env.cli("ps", "--json", "--insecure", env=gw_env(fake))
    assert res.rc == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [a["name"] for a in doc["agents"]] == ["orchestrator"]  # the local view survives
    gw = next(s for s in doc["sources"] if s["name"] == "gateway")
    assert gw["ok"] is False and reason in gw["detail"]
    warning = next(w for w in doc["warnings"] if w.startswith(f"gateway {fake.url}"))
    assert reason in warning and "\n" not in warning and "\x1b" not in warning
    assert res.stderr == f"warning: {warning}\n"  # said on stderr too, once
    assert TOKEN not in res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_rows_of_another_tenant_are_never_shown(fleet_env: FleetEnv, fake: FakeGateway) -> None:
    fleet_env.write_roster([], host="h1")
    fake.reply = lambda h: h.send_json(
        200,
        answer(
            [
                host_row("h9", [remote_agent("spy", "h9", tenant="other")], tenant="other"),
                host_row(
                    "h2", [remote_agent("ok", "h2"), remote_agent("sneak", "h2", tenant="other")]
                ),
            ]
        ),
    )
    doc = fleet_env.ps_json("--insecure", env=gw_env(fake))
    names = {a["name"] for a in doc["agents"]}
    assert names == {"ok"}
    assert any("another tenant" in w for w in doc["warnings"])


def test_a_slow_or_dribbling_gateway_is_cut_at_the_deadline_and_polls_stay_fast(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    fleet_env.write_roster([], host="h1")
    release = threading.Event()

    def dribble(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        for _ in range(100):  # one byte every 0.1 s: never a read timeout, only the deadline
            if release.wait(0.1):
                return
            try:
                h.wfile.write(b" ")
                h.wfile.flush()
            except OSError:
                return

    fake.reply = dribble
    # A deadline far above a local poll's quiet time (~0.1 s), so that "the poll did not wait
    # for the gateway" holds on a loaded machine too.
    source = LiveSource(FleetConfig.from_flags(), gateway=settings(fake.url, deadline_s=5.0))
    try:
        t0 = time.monotonic()
        first = source.poll()
        assert time.monotonic() - t0 < 4.0  # the fetch runs beside the poll, never waited for
        assert first.agents == []
        gw = next(s for s in first.sources if s.name == "gateway")
        assert gw.ok is False and "no answer yet" in (gw.detail or "")
        source.gateway.wait(20)  # type: ignore[union-attr]
        second = source.poll()
        gw = next(s for s in second.sources if s.name == "gateway")
        assert gw.ok is False and "no complete answer within 5 s" in (gw.detail or "")
    finally:
        release.set()
        source.close()


def test_a_gateway_that_never_answers_times_out(fake: FakeGateway) -> None:
    gate = threading.Event()
    fake.reply = lambda h: (gate.wait(10), h.send_json(200, answer([])))  # type: ignore[func-returns-value]
    client = GatewayClient(settings(fake.url, read_timeout_s=0.5))
    try:
        t0 = time.monotonic()
        with pytest.raises(GatewayError) as err:
            client.fetch_snapshot("acme")
        assert time.monotonic() - t0 < 3.0
        assert err.value.kind == "timeout" and "no answer within 0.5 s" in str(err.value)
    finally:
        gate.set()
        client.close()


def test_unreachable_gateway_backs_off_and_polls_never_overlap(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster([], host="h1")
    # a port nobody listens on: bind, note it, close
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    feed = GatewayFeed(
        settings(f"http://127.0.0.1:{port}", refresh_s=0.0),
        backoff=Backoff(base_s=0.5, cap_s=4.0, rng=lambda: 1.0),
    )
    source = LiveSource(FleetConfig.from_flags(), gateway=feed)
    try:
        source.poll()
        feed.wait(5)
        snap = source.poll()  # within the backoff: no second request
        feed.wait(5)
        assert feed.fetches == 1 and feed.backoff.failures == 1
        warning = next(w for w in snap.warnings if w.startswith("gateway "))
        assert "unreachable" in warning and "connection refused" in warning
        time.sleep(0.6)
        source.poll()
        feed.wait(5)
        assert feed.fetches == 2 and feed.backoff.failures == 2
        assert feed.backoff.wait_s(time.monotonic()) > 0.5  # the second wait is longer
    finally:
        source.close()


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rolls = iter([0.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    b = Backoff(base_s=1.0, cap_s=8.0, rng=lambda: next(rolls))
    delays = [b.failed(0.0) for _ in range(6)]
    assert delays == [0.5, 2.0, 3.0, 8.0, 8.0, 8.0]
    assert not b.ready(7.9) and b.ready(8.0)
    b.succeeded()
    assert b.ready(0.0) and b.failures == 0


# -- token and address rules ---------------------------------------------------------------------


def test_a_token_file_readable_by_others_is_refused_in_one_line(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    path = fleet_env.base / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    res = fleet_env.cli("ps", "--gateway", fake.url, "--insecure", "--token-file", str(path))
    assert res.rc == 2
    assert res.stderr.count("\n") == 1 and "mode 0644" in res.stderr and "chmod 600" in res.stderr
    assert TOKEN not in res.stdout + res.stderr
    assert fake.requests == []
    path.chmod(0o600)
    fleet_env.write_roster([], host="h1")
    ok = fleet_env.cli("ps", "--gateway", fake.url, "--insecure", "--token-file", str(path))
    assert ok.rc == 0, ok.stderr
    assert fake.requests[0][1] == f"Bearer {TOKEN}"


def test_load_token_rules(tmp_path: Path) -> None:
    assert load_token(None, {}) is None
    assert load_token(None, {"MOSAIC_FLEET_GATEWAY_TOKEN": " abc "}) == Secret("abc")
    f = tmp_path / "t"
    f.write_text("two words")
    f.chmod(0o600)
    with pytest.raises(BadInput, match="one word"):
        load_token(str(f), {})
    with pytest.raises(BadInput, match="no such file"):
        load_token(str(tmp_path / "missing"), {})
    secret = Secret(TOKEN)
    assert TOKEN not in repr(secret) + str(secret)
    assert TOKEN not in repr(GatewaySettings(url="https://gw.example", token=secret))


@pytest.mark.parametrize(
    ("url", "insecure", "why"),
    [
        ("http://gw.example.com", False, "use https"),
        ("http://gw.example.com", True, "only accepted for a loopback"),
        ("https://gw.example.com", True, "only accepted for a loopback"),
        ("http://127.0.0.1:8080", False, "pass --insecure"),
        ("ftp://127.0.0.1", True, "expected http(s)"),
        ("https://user:pw@gw.example.com", False, "not in the address"),
    ],
)
def test_addresses_and_tls_rules(url: str, insecure: bool, why: str) -> None:
    with pytest.raises(BadInput, match=why.replace("(", r"\(").replace(")", r"\)")):
        check_gateway_url(url, insecure=insecure)


def test_accepted_addresses() -> None:
    assert check_gateway_url("https://gw.example.com/", insecure=False) == "https://gw.example.com"
    assert check_gateway_url("http://localhost:9/", insecure=True) == "http://localhost:9"
    assert check_gateway_url("https://[::1]:8443", insecure=True) == "https://[::1]:8443"
    # the API's own address names the same gateway
    assert check_gateway_url("https://gw.example.com/api/fleet/v1/", insecure=False) == (
        "https://gw.example.com"
    )
    assert check_gateway_url("https://gw.example.com/fleet/api/fleet/v1", insecure=False) == (
        "https://gw.example.com/fleet"
    )


def test_no_token_is_a_one_line_error(fleet_env: FleetEnv, fake: FakeGateway) -> None:
    res = fleet_env.cli("ps", "--gateway", fake.url, "--insecure")
    assert res.rc == 2 and "no token" in res.stderr and res.stderr.count("\n") == 1
    with pytest.raises(BadInput, match="need a gateway"):
        gateway_settings(None, insecure=True, environ={})


def test_url_from_the_environment_and_insecure_only_from_the_operator(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    fleet_env.write_roster([], host="h1")
    res = fleet_env.cli("ps", "--json", env=gw_env(fake))
    assert res.rc == 2 and "plain http" in res.stderr  # the environment cannot say --insecure
    assert os.environ.get("MOSAIC_FLEET_GATEWAY_URL") is None


def test_publish_to_a_failing_gateway_exits_4_and_keeps_everything_queued(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    fleet_env.write_roster([], host="h1")
    usage = fleet_env.state_dir / "usage.jsonl"
    usage.parent.mkdir(parents=True)
    usage.write_text(
        json.dumps({"tenant_id": "acme", "host": "h1", "account": "a", "window": "5h",
                    "used_percent": 5, "observed_at": "2026-11-26T06:00:00Z", "source": "t"})
        + "\n"
    )  # fmt: skip
    fake.reply = lambda h: h.send_json(500, {"error": {"code": "internal", "message": "db down"}})
    res = fleet_env.cli("publish", "--once", "--insecure", env=gw_env(fake))
    assert res.rc == 4, res
    assert "server error (500): db down" in res.stderr and "queued for later" in res.stderr
    queued = sorted(
        p.name.split(".")[1] for p in (fleet_env.state_dir / "gateway-queue").glob("*.json")
    )
    assert queued == ["snapshot", "usage"]
    assert [p for p, _ in fake.posts] == ["/api/fleet/v1/snapshot"]  # stopped at the first failure
    fake.reply = lambda h: h.send_json(200, {"accepted": 1, "stored": 1})
    ok = fleet_env.cli("publish", "--once", "--insecure", env=gw_env(fake))
    assert ok.rc == 0, ok
    sent = [p for p, _ in fake.posts[1:]]
    # the queued usage first, then this run's snapshot (it superseded the queued one)
    assert sent == ["/api/fleet/v1/usage", "/api/fleet/v1/snapshot"]
    assert json.loads(fake.posts[1][1])[0]["used_percent"] == 5
    assert TOKEN not in res.stdout + res.stderr + ok.stdout + ok.stderr


def test_publish_to_something_that_is_not_the_gateway_keeps_everything_for_later(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    """A wrong address (a web server's 404 page) or a busy proxy (429) is no verdict on the data:
    nothing is set aside as rejected, the ledger's lines wait in the queue, and the error is one
    plain line (no HTML); once the address leads to the gateway, everything is delivered."""
    fleet_env.write_roster([], host="h1")
    usage = fleet_env.state_dir / "usage.jsonl"
    usage.parent.mkdir(parents=True)
    usage.write_text(
        json.dumps({"tenant_id": "acme", "host": "h1", "account": "a", "window": "5h",
                    "used_percent": 5, "observed_at": "2026-11-26T06:00:00Z", "source": "t"})
        + "\n"
    )  # fmt: skip
    queue = fleet_env.state_dir / "gateway-queue"
    page = b"<!DOCTYPE html>\n<html><body><h1>Not Found</h1></body></html>"
    fake.reply = lambda h: h.send_json(404, page)
    res = fleet_env.cli("publish", "--once", "--insecure", env=gw_env(fake))
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "not the gateway API (404)" in res.stderr
    assert "<" not in res.stderr and "queued in" in res.stderr
    assert sorted(p.name.split(".")[1] for p in queue.glob("*.json")) == ["snapshot", "usage"]
    assert not (queue / "rejected").exists()
    fake.reply = lambda h: h.send_json(429, {"error": {"code": "busy", "message": "slow down"}})
    busy = fleet_env.cli("publish", "--once", "--insecure", env=gw_env(fake))
    assert busy.rc == 4 and "(429)" in busy.stderr and "queued for later" in busy.stderr, busy
    assert not (queue / "rejected").exists()
    fake.reply = lambda h: h.send_json(200, {"accepted": 1, "stored": 1})
    ok = fleet_env.cli("publish", "--once", "--insecure", env=gw_env(fake))
    assert ok.rc == 0, ok
    usage_posts = [body for path, body in fake.posts if path == "/api/fleet/v1/usage"]
    assert json.loads(usage_posts[-1])[0]["used_percent"] == 5
    assert list(queue.glob("*.json")) == []


def test_the_last_answer_is_kept_for_the_next_run_of_the_same_gateway_and_tenant_only(
    fleet_env: FleetEnv, fake: FakeGateway
) -> None:
    fleet_env.write_roster([], host="h1")
    fleet_env.state_dir.mkdir(parents=True)
    fake.reply = lambda h: h.send_json(200, answer([host_row("h2", [remote_agent("b", "h2")])]))
    assert [a["name"] for a in fleet_env.ps_json("--insecure", env=gw_env(fake))["agents"]] == ["b"]
    fake.reply = lambda h: h.send_json(503, {"error": {"message": "down"}})
    doc = fleet_env.ps_json("--insecure", env=gw_env(fake))
    assert [a["name"] for a in doc["agents"]] == ["b"]
    assert doc["agents"][0]["health_reason"].endswith("via gateway, stale)")
    assert any("server error (503)" in w and "remote hosts as of" in w for w in doc["warnings"])
    # another tenant asked: the kept answer (of acme) is not shown
    other = fleet_env.ps_json("--insecure", "--tenant", "beta", env=gw_env(fake))
    assert other["agents"] == []
    assert TOKEN.encode() not in (fleet_env.state_dir / "gateway-last.json").read_bytes()


def test_the_dashboard_verb_hands_its_gateway_flags_to_the_live_source(
    fleet_env: FleetEnv, fake: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleet_tui.cli.main
    import fleet_tui.ui.launch
    from fleet_tui.cli.main import main

    seen: list[LiveSource] = []

    def fake_dashboard(config: FleetConfig, **kw: object) -> int:  # stands in for the Textual app
        seen.append(LiveSource(config))
        return 0

    monkeypatch.setattr(fleet_tui.ui.launch, "run_dashboard", fake_dashboard)
    monkeypatch.setattr(fleet_tui.cli.main, "_has_tty", lambda: True)  # pytest's stdio is no TTY
    monkeypatch.setenv("MOSAIC_FLEET_GATEWAY_TOKEN", TOKEN)
    assert main(["--gateway", fake.url, "--insecure"]) == 0
    assert main(["tui", "--gateway", fake.url, "--insecure"]) == 0
    feeds = [s.gateway for s in seen]
    assert all(f is not None and f.settings.url == fake.url for f in feeds)
    assert main(["tui"]) == 0 and seen[-1].gateway is None
    for s in seen:
        s.close()
