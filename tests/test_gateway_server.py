"""The reference gateway against a real PostgreSQL and a real server on loopback.

What a client of the register would notice: tokens gate tenants and scopes (401/403), a
tenant's reads never hold another tenant's rows (and the database itself refuses to show them),
bad bodies get the error envelope, the schema is migrated once per version, tokens are stored
hashed and never logged, and the served OpenAPI document is the one kept in the repo.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket as so
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from conftest import wait_until
from pg_support import GatewayServer

from fleet_tui.core.join import build_snapshot
from fleet_tui.server import db
from fleet_tui.server.openapi import OPENAPI_FILE
from fleet_tui.testing.fleets import agent, beats, inputs, pane, roster, socket
from fleet_tui.testing.fleets import heartbeat as spool_heartbeat

NOW: datetime  # taken by `_now` at the start of every test, never at import


@pytest.fixture(autouse=True)
def _now() -> None:
    """The "now" of each test, taken when it starts (the module runs for minutes)."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)


def ts(seconds: float = 0) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def ps_doc(tenant: str, host: str, agents: int = 2, at: float = 0) -> dict[str, Any]:
    return {
        "schema": "mosaic.fleet.ps/v1",
        "generated_at": ts(at),
        "host": host,
        "tenant_id": tenant,
        "heartbeat_timeout_s": 30,
        "sockets": [{"name": "mosaic-fleet", "path": "/tmp/x", "state": "live", "sessions": 1}],
        "agents": [
            {
                "tenant_id": tenant,
                "host": host,
                "name": f"coder{i}",
                "role": "coder",
                "health": "healthy",
                "health_reason": "heartbeat 4 s ago, timeout 30 s",
                "drift": [],
            }
            for i in range(agents)
        ],
        "warnings": [],
    }


def heartbeat(tenant: str, host: str, agent: str, seq: int, state: str = "busy") -> dict[str, Any]:
    return {
        "v": 1, "tenant_id": tenant, "host": host, "agent": agent, "seq": seq,
        "ts": ts(seq - 600), "interval_s": 10, "state": state, "detail": f"step {seq}",
    }  # fmt: skip


def old_changes(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM fleet.heartbeat_changes WHERE agent = 'old'"
        ).fetchone()
    return int(row[0]) if row else -1


def client(gw: GatewayServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=gw.api, headers=headers, timeout=10)


def error_of(r: httpx.Response) -> tuple[int, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return r.status_code, body["error"]["code"]


# -- migrations and tokens ----------------------------------------------------------------------


def test_migrations_are_versioned_recorded_and_idempotent(pg_dsn: str) -> None:
    version, applied = db.migrate(pg_dsn)
    assert version == max(m.version for m in db.migrations())
    assert applied == [m.version for m in db.migrations()] and applied[:2] == [1, 2]
    assert db.migrate(pg_dsn) == (version, [])
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT version, name, checksum FROM fleet.schema_migrations"
        ).fetchall()
        assert rows == [(m.version, m.name, m.checksum) for m in db.migrations()]
        conn.execute("UPDATE fleet.schema_migrations SET checksum = 'x' WHERE version = 1")
        conn.commit()
    with pytest.raises(db.GatewayDbError, match="changed after it was applied"):
        db.migrate(pg_dsn)


def test_cli_token_create_prints_once_and_stores_only_the_hash(pg_dsn: str) -> None:
    py = [sys.executable, "-m", "fleet_tui", "gateway"]
    env = {**os.environ, "MOSAIC_FLEET_GATEWAY_DSN": pg_dsn}
    out = subprocess.run([*py, "migrate"], env=env, capture_output=True, text=True, check=False)
    latest = max(m.version for m in db.migrations())
    assert out.returncode == 0 and f"version {latest}" in out.stdout, out
    argv = [*py, "token", "create", "--tenant", "acme", "--tenant", "beta", "--scope", "read"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("fleet_") and len(token) > 40
    assert out.stdout.count(token) == 1 and token not in out.stderr
    with psycopg.connect(pg_dsn) as conn:
        dump = conn.execute("SELECT t::text FROM fleet.tokens t").fetchall()
        (digest, tenants, scopes) = conn.execute(
            "SELECT token_hash, tenants, scopes FROM fleet.tokens"
        ).fetchone() or (None, None, None)
    assert token not in repr(dump)
    assert digest == hashlib.sha256(token.encode()).digest()
    assert (tenants, scopes) == (["acme", "beta"], ["read"])
    listed = subprocess.run([*py, "token", "list"], env=env, capture_output=True, text=True)
    assert "acme,beta" in listed.stdout and token not in listed.stdout
    argv = [*py, "token", "create", "--tenant", "acme", "--scope", "publish"]
    assert subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0
    listed = subprocess.run([*py, "token", "list"], env=env, capture_output=True, text=True)
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["ID", "TENANTS", "SCOPES", "HOSTS", "CREATED", "STATE", "LABEL"]
    assert len(lines) == 2  # a column per field, aligned under its header for every token
    created = {m.start() for line in lines for m in [re.search(r"\d{4}-\d\d-\d\dT", line)] if m}
    assert created == {header.index("CREATED")}
    assert {line.index("active") for line in lines} == {header.index("STATE")}


def test_without_the_gateway_extra_the_cli_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if the extra were not installed
        "from fleet_tui.cli.main import main\n"
        "sys.exit(main(['gateway', 'migrate', '--dsn', 'dbname=x']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "pip install 'fleet-tui[gateway]'" in out.stderr


def test_cli_errors_are_one_line(pg_dsn: str) -> None:
    py = [sys.executable, "-m", "fleet_tui", "gateway"]
    env = {k: v for k, v in os.environ.items() if k != "MOSAIC_FLEET_GATEWAY_DSN"}
    out = subprocess.run([*py, "migrate"], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "--dsn" in out.stderr and len(out.stderr.splitlines()) == 1
    bad = pg_dsn.replace("dbname=", "dbname=no_such_db_") if "dbname=" in pg_dsn else pg_dsn + "x"
    out = subprocess.run([*py, "serve", "--dsn", bad], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "cannot connect" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run(
        [*py, "token", "create", "--dsn", pg_dsn, "--tenant", "a b", "--scope", "read"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "--tenant 'a b'" in out.stderr  # bad input, said before
    assert len(out.stderr.splitlines()) == 1  # any database is touched


# -- auth ---------------------------------------------------------------------------------------


def test_missing_bad_revoked_tokens_are_401_scope_and_tenant_are_403(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw) as c:
        assert error_of(c.get("/snapshot", params={"tenant": "t1"})) == (401, "unauthorized")
    with client(gw, "fleet_not-a-token") as c:
        assert error_of(c.get("/snapshot", params={"tenant": "t1"})) == (401, "unauthorized")
    reader = gw.token("t1", "read")
    with client(gw, reader) as c:
        assert c.get("/snapshot", params={"tenant": "t1"}).status_code == 200
        assert error_of(c.get("/snapshot", params={"tenant": "t2"})) == (403, "forbidden")
        assert error_of(c.post("/snapshot", json=ps_doc("t1", "h1"))) == (403, "forbidden")
    publisher = gw.token("t1", "publish")
    with client(gw, publisher) as c:
        assert error_of(c.get("/snapshot", params={"tenant": "t1"})) == (403, "forbidden")
        assert error_of(c.post("/snapshot", json=ps_doc("t2", "h1"))) == (403, "forbidden")
        assert c.post("/snapshot", json=ps_doc("t1", "h1")).json() == {"accepted": 1, "stored": 1}
    (tok,) = [t for t in db.list_tokens(gw.dsn) if t.scopes == ("read",) and t.tenants == ("t1",)]
    assert db.revoke_token(gw.dsn, tok.token_id)
    with client(gw, reader) as c:
        assert error_of(c.get("/snapshot", params={"tenant": "t1"})) == (401, "unauthorized")


def test_auth_is_judged_before_the_body(module_gateway: GatewayServer) -> None:
    """No token, or a token without the route's scope, is refused (401/403) whatever the body:
    malformed JSON or a wrong shape does not turn the refusal into a validation answer."""
    gw = module_gateway
    reader, publisher = gw.token("ab1", "read"), gw.token("ab1", "publish")

    def bad_json(c: httpx.Client, path: str) -> httpx.Response:
        return c.post(path, content=b"{not json", headers={"content-type": "application/json"})

    with client(gw) as c:
        assert error_of(bad_json(c, "/heartbeats")) == (401, "unauthorized")
        assert error_of(c.post("/heartbeats", json={})) == (401, "unauthorized")
    with client(gw, "fleet_not-a-token") as c:
        assert error_of(bad_json(c, "/snapshot")) == (401, "unauthorized")
    with client(gw, reader) as c:
        assert error_of(c.post("/heartbeats", json={})) == (403, "forbidden")
        assert error_of(bad_json(c, "/usage")) == (403, "forbidden")
        assert error_of(c.get("/snapshot", params={"tenant": "x" * 200})) == (
            422, "validation_error",
        )  # fmt: skip
    with client(gw, publisher) as c:  # the right token: now the body is judged
        assert error_of(c.post("/heartbeats", json={})) == (422, "validation_error")
        assert error_of(bad_json(c, "/usage")) == (422, "validation_error")


def test_tenant_a_never_sees_tenant_b(module_gateway: GatewayServer) -> None:
    gw = module_gateway
    pub_a, pub_b = gw.token("alpha-co", "publish"), gw.token("bravo-co", "publish")
    for token, tenant, host in (
        (pub_a, "alpha-co", "w-alpha"),
        (pub_b, "bravo-co", "w-bravo"),
        (pub_b, "bravo-co", "w-bravo2"),
    ):
        with client(gw, token) as c:
            assert c.post("/snapshot", json=ps_doc(tenant, host, 3)).status_code == 200
            hb = [heartbeat(tenant, host, f"coder{i}", 1) for i in range(3)]
            assert c.post("/heartbeats", json=hb).json() == {"accepted": 3, "stored": 3}
            usage = {
                "tenant_id": tenant, "host": host, "account": f"acct-{tenant}", "window": "5h",
                "window_minutes": 300, "used_percent": 10, "observed_at": ts(), "source": "t",
            }  # fmt: skip
            assert c.post("/usage", json=[usage]).status_code == 200
    with client(gw, gw.token("alpha-co", "read")) as c:
        snap = c.get("/snapshot", params={"tenant": "alpha-co"}).json()
        budgets = c.get("/budgets").json()  # the token's only tenant
        assert error_of(c.get("/budgets", params={"tenant": "bravo-co"})) == (403, "forbidden")
    assert snap["schema"] == "mosaic.fleet.snapshot/v1"
    assert [(h["host"], h["tenant_id"]) for h in snap["hosts"]] == [("w-alpha", "alpha-co")]
    assert "bravo-co" not in json.dumps(snap)
    assert [a["account"] for a in budgets["accounts"]] == ["acct-alpha-co"]
    with client(gw, gw.token(["alpha-co", "bravo-co"], "read")) as c:
        both = c.get("/snapshot", params={"tenant": "bravo-co"}).json()
        assert error_of(c.get("/snapshot")) == (422, "validation_error")  # which tenant?
    assert [h["host"] for h in both["hosts"]] == ["w-bravo", "w-bravo2"]
    host = both["hosts"][0]
    assert host["observed_at"] == host["ps"]["generated_at"].replace("Z", ".000Z")
    assert datetime.fromisoformat(host["received_at"]) >= NOW - timedelta(seconds=5)
    assert len(host["ps"]["agents"]) == 3


def test_row_level_security_hides_other_tenants_from_a_raw_query(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    for tenant in ("rls-a", "rls-b"):
        with client(gw, gw.token(tenant, "publish")) as c:
            assert c.post("/snapshot", json=ps_doc(tenant, f"h-{tenant}")).status_code == 200
    with psycopg.connect(gw.dsn) as conn:
        role = conn.execute(
            "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = %s", [db.APP_ROLE]
        ).fetchone()
        assert role == (False, False)
        owner_sees = conn.execute("SELECT count(*) FROM fleet.host_snapshots").fetchone()
        assert owner_sees is not None and owner_sees[0] >= 2
        conn.execute(f"SET ROLE {db.APP_ROLE}")
        conn.execute("SELECT set_config('fleet.tenant', 'rls-a', false)")
        # no tenant filter at all: the database still answers only rls-a's rows
        rows = conn.execute("SELECT tenant_id, host FROM fleet.host_snapshots").fetchall()
        assert rows == [("rls-a", "h-rls-a")]
        tenants = conn.execute("SELECT tenant_id FROM fleet.tenants").fetchall()
        assert tenants == [("rls-a",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM fleet.tokens")
        conn.rollback()
        conn.execute(f"SET ROLE {db.APP_ROLE}")
        conn.execute("SELECT set_config('fleet.tenant', 'rls-a', false)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO fleet.host_snapshots (tenant_id, host, observed_at, agents, ps)"
                " VALUES ('rls-b', 'x', now(), 0, '{}')"
            )
        conn.rollback()
        conn.execute(f"SET ROLE {db.APP_ROLE}")
        assert conn.execute("SELECT count(*) FROM fleet.host_snapshots").fetchone() == (0,)
        updated = conn.execute("UPDATE fleet.host_snapshots SET agents = 99").rowcount
        assert updated == 0  # no tenant set: nothing visible, nothing touched


# -- bodies -------------------------------------------------------------------------------------


def test_bad_bodies_and_routes_get_the_error_envelope(module_gateway: GatewayServer) -> None:
    gw = module_gateway
    with client(gw, gw.token("v1", ["publish", "read"])) as c:
        assert error_of(c.post("/snapshot", content=b"{not json")) == (422, "validation_error")
        r = c.post("/snapshot", json={**ps_doc("v1", "h"), "generated_at": "yesterday"})
        assert error_of(r) == (422, "validation_error") and "generated_at" in r.text
        doc = ps_doc("v1", "h")
        doc["agents"][1]["host"] = "elsewhere"
        r = c.post("/snapshot", json=doc)
        assert error_of(r) == (422, "validation_error") and "another host" in r.text
        doc = ps_doc("v1", "h")
        doc["agents"][0]["tenant_id"] = "v1"
        doc["schema"] = "mosaic.fleet.ps/v2"
        assert error_of(c.post("/snapshot", json=doc)) == (422, "validation_error")
        r = c.post("/heartbeats", json={**heartbeat("v1", "h", "a", 1), "state": "dancing"})
        assert error_of(r) == (422, "validation_error") and "state" in r.text
        assert error_of(c.post("/heartbeats", json=[])) == (422, "validation_error")
        big = b'{"x": "' + b"a" * (4 * 1024 * 1024) + b'"}'
        assert error_of(c.post("/usage", content=big)) == (413, "payload_too_large")

        def chunks() -> Any:
            for _ in range(5):
                yield b"a" * (1024 * 1024)

        assert error_of(c.post("/usage", content=chunks())) == (413, "payload_too_large")
        assert error_of(c.get("/nowhere")) == (404, "not_found")
        assert error_of(c.delete("/snapshot")) == (405, "method_not_allowed")
        assert c.get("/snapshot").status_code == 200  # the server still answers


def test_nul_in_untrusted_text_is_stored_as_a_replacement_character(
    module_gateway: GatewayServer,
) -> None:
    """PostgreSQL cannot store NUL; a pane title holding one must not make a host vanish."""
    gw = module_gateway
    doc = ps_doc("nul", "h")
    doc["warnings"] = ["title\x00end", "a literal \\u0000 stays"]
    with client(gw, gw.token("nul", ["publish", "read"])) as c:
        assert c.post("/snapshot", json=doc).json() == {"accepted": 1, "stored": 1}
        hb = {**heartbeat("nul", "h", "a", 1), "detail": "nul\x00here"}
        assert c.post("/heartbeats", json=hb).json() == {"accepted": 1, "stored": 1}
        (host,) = c.get("/snapshot").json()["hosts"]
    assert host["ps"]["warnings"] == ["title\ufffdend", "a literal \\u0000 stays"]
    with psycopg.connect(gw.dsn) as conn:
        row = conn.execute(
            "SELECT record->>'detail' FROM fleet.heartbeats WHERE tenant_id = 'nul'"
        ).fetchone()
    assert row == ("nul\ufffdhere",)


def test_heartbeats_keep_the_latest_and_each_change_of_state(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("hb", "publish")) as c:
        batch = [
            heartbeat("hb", "h", "a", s, st) for s, st in ((1, "busy"), (2, "busy"), (3, "idle"))
        ]
        assert c.post("/heartbeats", json=batch).json() == {"accepted": 3, "stored": 1}
        # a late, older heartbeat (a publisher draining its queue) does not replace the newer one
        assert c.post("/heartbeats", json=heartbeat("hb", "h", "a", 2)).json() == {
            "accepted": 1, "stored": 0,
        }  # fmt: skip
        assert (
            c.post("/heartbeats", json=heartbeat("hb", "h", "a", 4, "idle")).json()["stored"] == 1
        )
    with psycopg.connect(gw.dsn) as conn:
        latest = conn.execute(
            "SELECT seq, state FROM fleet.heartbeats WHERE tenant_id = 'hb'"
        ).fetchall()
        changes = conn.execute(
            "SELECT seq, prev_state, state FROM fleet.heartbeat_changes"
            " WHERE tenant_id = 'hb' ORDER BY ts"
        ).fetchall()
    assert latest == [(4, "idle")]
    assert changes == [(1, None, "busy"), (3, "busy", "idle")]


def test_usage_and_spend_are_idempotent_and_feed_budgets(module_gateway: GatewayServer) -> None:
    gw = module_gateway
    usage = [
        {"tenant_id": "bu", "host": "h", "account": "claude-max-a", "window": "weekly",
         "window_minutes": 10080, "used_percent": p, "observed_at": ts(i), "source": "statusline"}
        for i, p in enumerate((10.0, 12.5))
    ]  # fmt: skip
    spend = {"tenant_id": "bu", "host": "h", "ts": ts(), "account": "openai-api",
             "model": "gpt-5.5", "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.25}  # fmt: skip
    policy = {"version": 1, "tenant_id": "bu", "accounts": [
        {"id": "claude-max-a", "provider": "anthropic", "regime": "subscription"},
        {"id": "openai-api", "provider": "openai", "regime": "api", "ceiling_usd": 200}]}  # fmt: skip
    with client(gw, gw.token("bu", "publish")) as c:
        assert c.post("/usage", json=usage).json() == {"accepted": 2, "stored": 2}
        assert c.post("/usage", json=usage).json() == {"accepted": 2, "stored": 0}  # a retry
        assert c.post("/spend", json=[spend]).json() == {"accepted": 1, "stored": 1}
        assert c.post("/spend", json=spend).json() == {"accepted": 1, "stored": 0}
        assert c.put("/budgets", json=policy).status_code == 200
    with client(gw, gw.token("bu", "read")) as c:
        answer = c.get("/budgets", params={"tenant": "bu"}).json()
    assert answer["schema"] == "mosaic.fleet.budgets/v1" and answer["policy"]["tenant_id"] == "bu"
    accounts = {a["account"]: a for a in answer["accounts"]}
    assert list(accounts) == ["claude-max-a", "openai-api"]
    (window,) = accounts["claude-max-a"]["windows"]
    assert window["used_percent"] == 12.5 and window["window"] == "weekly"
    assert accounts["openai-api"]["policy"]["ceiling_usd"] == 200
    assert accounts["openai-api"]["spend"]["cost_usd"] == 0.25
    assert accounts["openai-api"]["spend"]["records"] == 1


def test_older_snapshot_is_not_applied_and_data_survives_a_restart(gateway: GatewayServer) -> None:
    token = gateway.token("rs", ["publish", "read"])
    with client(gateway, token) as c:
        assert c.post("/snapshot", json=ps_doc("rs", "h", 1, at=-10)).json()["stored"] == 1
        assert len(c.get("/snapshot").json()["hosts"][0]["ps"]["agents"]) == 1
        assert c.post("/snapshot", json=ps_doc("rs", "h", 2, at=-5)).json()["stored"] == 1
        assert len(c.get("/snapshot").json()["hosts"][0]["ps"]["agents"]) == 2  # the newer one
        assert c.post("/snapshot", json=ps_doc("rs", "h", 5, at=-15)).json() == {
            "accepted": 1, "stored": 0,
        }  # fmt: skip
    with psycopg.connect(gateway.dsn) as conn:  # a change of state older than the retention
        conn.execute(
            "INSERT INTO fleet.heartbeat_changes (tenant_id, host, agent, ts, seq, state)"
            " VALUES ('rs', 'h', 'old', now() - interval '30 days', 1, 'busy')"
        )
    port = gateway.port
    gateway.restart()
    assert gateway.port == port
    wait_until(lambda: old_changes(gateway.dsn) == 0, message="old history pruned at start")
    with client(gateway, token) as c:
        (host,) = c.get("/snapshot").json()["hosts"]
    assert len(host["ps"]["agents"]) == 2
    latest = max(m.version for m in db.migrations())
    assert f"version {latest})" in gateway.log()  # the restart found the schema migrated already


def test_a_restart_waits_for_its_port_while_something_else_holds_it(
    gateway: GatewayServer,
) -> None:
    """Clients know the gateway by its port: a restart while another socket still holds that
    port (a busy machine) waits for it instead of failing, and comes back on the same port."""
    port = gateway.port
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    assert port < low  # below the ephemeral range: no outgoing connection takes it meanwhile
    gateway.stop()
    holder = so.socket(so.AF_INET, so.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    holder.listen(1)

    def release_once_refused() -> None:
        wait_until(lambda: "cannot listen on" in gateway.log(), timeout=30, message="refused")
        holder.close()

    thread = threading.Thread(target=release_once_refused, daemon=True)
    thread.start()
    try:
        gateway.start()
    finally:
        thread.join(30)
        holder.close()
    assert gateway.port == port
    assert "Address already in use" in gateway.log()
    assert httpx.get(f"{gateway.url}/healthz", timeout=5).json() == {"status": "ok"}


def test_a_real_ps_document_round_trips(module_gateway: GatewayServer) -> None:
    """What `ps --json` prints (the core join's FleetSnapshot) is what the register accepts and
    answers back, unchanged."""
    r = roster(agent("orchestrator", "orchestrator"), agent("coder0", "coder"))
    snap = build_snapshot(
        inputs(
            socket("mosaic-fleet", pane("orchestrator", pid=12), pane("coder0", pid=13)),
            roster=r,
            heartbeats=beats(spool_heartbeat("orchestrator"), spool_heartbeat("coder0")),
        )
    )
    gw = module_gateway
    with client(gw, gw.token(snap.tenant_id, ["publish", "read"])) as c:
        r1 = c.post(
            "/snapshot", content=snap.to_json(), headers={"Content-Type": "application/json"}
        )
        assert r1.json() == {"accepted": 1, "stored": 1}, r1.text
        (host,) = c.get("/snapshot").json()["hosts"]
    assert host["ps"] == json.loads(snap.to_json())
    assert (host["host"], host["tenant_id"]) == (snap.host, snap.tenant_id)


def test_database_outage_answers_503_and_the_gateway_recovers(gateway: GatewayServer) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = str(conninfo_to_dict(gateway.dsn)["dbname"])
    admin = make_conninfo(gateway.dsn, dbname="postgres")
    token = gateway.token("out", "read")

    def refuse(allow: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
            if not allow:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [name],
                )

    refuse(False)
    try:
        with client(gateway, token) as c:
            assert error_of(c.get("/snapshot")) == (503, "unavailable")
        r = httpx.get(f"{gateway.url}/healthz", timeout=15)
        assert error_of(r) == (503, "unavailable")
    finally:
        refuse(True)
    with client(gateway, token) as c:
        wait_until(
            lambda: c.get("/snapshot").status_code == 200, timeout=30, interval=0.5,
            message="the gateway answers again once the database is back",
        )  # fmt: skip


# -- documents and logs -------------------------------------------------------------------------


def test_served_openapi_equals_the_document_in_the_repo(module_gateway: GatewayServer) -> None:
    served = httpx.get(f"{module_gateway.api}/openapi.json", timeout=10).json()
    kept = json.loads(OPENAPI_FILE.read_text())
    assert served == kept, "run: python -m fleet_tui.server.openapi"
    assert set(kept["paths"]) >= {
        "/api/fleet/v1/snapshot", "/api/fleet/v1/heartbeats", "/api/fleet/v1/budgets",
        "/api/fleet/v1/usage", "/api/fleet/v1/spend", "/healthz",
    }  # fmt: skip
    host = kept["components"]["schemas"]["HostSnapshot"]
    assert {"received_at", "age_s"} <= set(host["required"])
    items = kept["components"]["schemas"]["ErrorBody"]["properties"]["items"]
    assert "InvalidItem" in json.dumps(items)


def test_healthz_and_tokens_never_logged(module_gateway: GatewayServer) -> None:
    gw = module_gateway
    assert httpx.get(f"{gw.url}/healthz", timeout=10).json() == {"status": "ok"}
    token = gw.token("logs", "read")
    with client(gw, token) as c:
        c.get("/snapshot")
        c.get("/snapshot", params={"tenant": "other"})
    log = gw.log()
    assert "GET /api/fleet/v1/snapshot" in log  # the access log is on ...
    assert token not in log and token[:16] not in log  # ... and never holds a token
