"""Hostile inputs to the reference gateway, against a real PostgreSQL and a real server on loopback.

What a publisher or a reader of the register would notice:
- names, hosts and tenants outside the DESIGN patterns are refused (422 naming the field);
- text that is not valid Unicode (a lone surrogate, encoded surrogates, NaN) is 422, never 500;
- a publish token bound to a host writes only that host's rows (403 for any other);
- per-tenant caps of hosts and snapshot bytes (413 naming the cap) keep every reader's answer
  whole; a host silent past the retention is forgotten;
- a missing or bad token is answered before the body is read, and a flood of bad tokens from
  one address is refused (429, Retry-After) without a database lookup;
- one invalid item of a batch is named by index and nothing of that batch is stored; the rest,
  sent again, is stored; the local models refuse exactly what the gateway refuses;
- a record dated ahead of the gateway's clock never locks out the honest ones that follow.
"""

from __future__ import annotations

import json
import os
import socket as so
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from pg_support import GatewayServer
from pydantic import ValidationError

from fleet_tui.model.records import SpendRecord, UsageSample


def stamp(seconds: float = 0) -> str:
    """RFC 3339 UTC `seconds` from now (now taken at the call)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def ps_doc(tenant: str, host: str, names: list[str], at: float = -1, pad: int = 0) -> Any:
    return {
        "schema": "mosaic.fleet.ps/v1", "generated_at": stamp(at), "host": host,
        "tenant_id": tenant, "heartbeat_timeout_s": 30, "sockets": [],
        "agents": [{"tenant_id": tenant, "host": host, "name": n, "role": "coder"} for n in names],
        "warnings": ["x" * pad] if pad else [],
    }  # fmt: skip


def beat(tenant: str, host: str, agent: str, seq: int = 1, at: float = -1) -> dict[str, Any]:
    return {"v": 1, "tenant_id": tenant, "host": host, "agent": agent, "seq": seq,
            "ts": stamp(at), "interval_s": 10, "state": "busy", "detail": f"step {seq}"}  # fmt: skip


def sample(tenant: str, host: str = "h1", **over: Any) -> dict[str, Any]:
    base = {"tenant_id": tenant, "host": host, "account": "claude-max-a", "window": "weekly",
            "window_minutes": 10080, "used_percent": 12.5, "observed_at": stamp(-60),
            "source": "statusline"}  # fmt: skip
    return {**base, **over}


def client(gw: GatewayServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=gw.api, headers=headers, timeout=20)


def error(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    assert set(body) == {"error"}, body
    return r.status_code, body["error"]["code"], body["error"]["message"]


def raw_post(gw: GatewayServer, path: str, body: bytes, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(f"{gw.api}{path}", content=body, headers=headers, timeout=20)


# -- names, hosts and tenants (item 2) ----------------------------------------------------------


def test_names_hosts_and_tenants_outside_the_patterns_are_422_naming_the_field(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("pat", "publish")) as c:
        assert c.post("/snapshot", json=ps_doc("pat", "h1", ["coder0"])).status_code == 200
        for host in ("bad host", "../etc", "-lead", "h\u200b1", "h" * 254):
            doc = ps_doc("pat", host, [])
            status, code, message = error(c.post("/snapshot", json=doc))
            assert (status, code) == (422, "validation_error") and message.startswith("host:")
        for name in ("../../x", "a b", "coder\x1b[31m", "c" * 65, ""):
            status, code, message = error(c.post("/snapshot", json=ps_doc("pat", "h1", [name])))
            assert (status, code) == (422, "validation_error")
            assert message.startswith("agents.0.name:"), message
        status, code, message = error(c.post("/heartbeats", json=beat("pat", "h1", "../x")))
        assert (status, code) == (422, "validation_error") and message.startswith("agent:")
        spend = {"tenant_id": "pat", "host": "h1", "ts": stamp(-5), "account": "api",
                 "agent": "a/b", "cost_usd": 0.1}  # fmt: skip
        r = c.post("/spend", json=[spend])
        assert r.status_code == 422, r.text
        (item,) = r.json()["error"]["items"]
        assert item["index"] == 0 and item["message"].startswith("agent:")
        status, code, message = error(c.post("/usage", json=sample("pat", host="a b")))
        assert (status, code) == (422, "validation_error") and message.startswith("host:")
    with client(gw, gw.token("pat", "read")) as c:
        (host,) = c.get("/snapshot").json()["hosts"]
    assert host["host"] == "h1"  # nothing of the refused documents was stored


# -- text that is not valid Unicode (item 7) -----------------------------------------------------


def test_lone_surrogates_encoded_surrogates_and_nan_are_422_never_500(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    token = gw.token("uni", ["publish", "read"])
    hb = json.dumps(beat("uni", "h1", "a1"))
    lone = hb.replace('"step 1"', '"step \\ud800 end"')
    status, code, message = error(raw_post(gw, "/heartbeats", lone.encode(), token))
    assert (status, code) == (422, "validation_error"), message
    assert message.startswith("detail:") and "Unicode" in message
    # in a batch: the item is named, with the field
    batch = "[" + hb + "," + lone.replace("a1", "a2") + "]"
    r = raw_post(gw, "/heartbeats", batch.encode(), token)
    assert r.status_code == 422 and r.json()["error"]["items"] == [
        {"index": 1, "message": "detail: not valid Unicode (a lone surrogate)"}
    ]
    doc = json.dumps(ps_doc("uni", "h1", ["a1"])).replace(
        '"warnings": []', '"warnings": ["\\udfff"]'
    )
    status, _code, message = error(raw_post(gw, "/snapshot", doc.encode(), token))
    assert status == 422 and message.startswith("warnings.0:"), message
    encoded = hb.replace("step 1", "step \udc80").encode("utf-8", "surrogatepass")  # ED B2 80
    status, _code, message = error(raw_post(gw, "/heartbeats", encoded, token))
    assert status == 422 and "UTF-8" in message
    nan = json.dumps([sample("uni")]).replace("12.5", "NaN")
    status, _code, message = error(raw_post(gw, "/usage", nan.encode(), token))
    assert status == 422 and "NaN" in message
    pair = hb.replace('"step 1"', '"step \\ud83d\\ude00"')  # a valid pair is fine
    assert raw_post(gw, "/heartbeats", pair.encode(), token).json() == {"accepted": 1, "stored": 1}
    assert "Traceback" not in gw.log() and "internal error" not in gw.log()
    with psycopg.connect(gw.dsn) as conn:
        row = conn.execute(
            "SELECT record->>'detail' FROM fleet.heartbeats WHERE tenant_id = 'uni'"
        ).fetchone()
    assert row == ("step \U0001f600",)


# -- host-bound tokens, caps, retention (item 3) ------------------------------------------------


def test_a_publish_token_bound_to_a_host_writes_only_that_host(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    py = [sys.executable, "-m", "fleet_tui", "gateway", "token", "create", "--dsn", gw.dsn]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_FLEET_")}
    out = subprocess.run(
        [*py, "--tenant", "hb", "--scope", "publish", "--host", "h-x"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "host(s) h-x" in out.stdout
    token = out.stdout.strip().splitlines()[-1]
    with client(gw, token) as c:
        assert c.post("/snapshot", json=ps_doc("hb", "h-x", ["a1"])).json()["stored"] == 1
        assert c.post("/heartbeats", json=[beat("hb", "h-x", "a1")]).status_code == 200
        assert c.post("/usage", json=[sample("hb", host="h-x")]).status_code == 200
        for route, body in (
            ("/snapshot", ps_doc("hb", "h-y", ["a1"])),
            ("/heartbeats", [beat("hb", "h-x", "a1", 2), beat("hb", "h-y", "a1")]),
            ("/usage", [sample("hb", host="h-y")]),
            ("/spend", {"tenant_id": "hb", "host": "h-y", "ts": stamp(), "account": "api"}),
        ):
            status, code, message = error(c.post(route, json=body))
            assert (status, code) == (403, "forbidden") and "'h-y'" in message, (route, message)
        status, _code, _m = error(c.put("/budgets", json={"version": 1, "tenant_id": "hb"}))
        assert status == 403  # tenant-wide: not for a host-bound token
    with client(gw, gw.token("hb", "read")) as c:
        assert [h["host"] for h in c.get("/snapshot").json()["hosts"]] == ["h-x"]
    with psycopg.connect(gw.dsn) as conn:
        seq = conn.execute("SELECT seq FROM fleet.heartbeats WHERE tenant_id = 'hb'").fetchall()
    assert seq == [(1,)]  # the batch naming h-y was refused whole
    listed = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "gateway", "token", "list", "--dsn", gw.dsn],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert any(" h-x " in line and "publish" in line for line in listed.stdout.splitlines())
    out = subprocess.run(
        [*py, "--tenant", "hb", "--scope", "read", "--host", "h-x"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "--scope publish" in out.stderr
    out = subprocess.run(
        [*py, "--tenant", "hb", "--scope", "publish", "--host", "../h"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "--host '../h'" in out.stderr


def test_caps_of_hosts_and_bytes_per_tenant_keep_the_answer_whole(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("cap", "publish")) as c:
        for i in range(64):
            assert c.post("/snapshot", json=ps_doc("cap", f"h{i:02d}", ["a"])).status_code == 200
        status, code, message = error(c.post("/snapshot", json=ps_doc("cap", "h-made-up", ["a"])))
        assert (status, code) == (413, "cap_reached") and "(64)" in message, message
        assert c.post("/snapshot", json=ps_doc("cap", "h05", ["b"])).json()["stored"] == 1
    big = 3_900_000  # nine of these, under made-up hosts, once broke every reader
    with client(gw, gw.token("capb", "publish")) as c:
        answers = [
            c.post("/snapshot", json=ps_doc("capb", f"m{i}", ["a"], pad=big)) for i in range(9)
        ]
    assert [r.status_code for r in answers[:4]] == [200] * 4
    assert {r.status_code for r in answers[4:]} == {413}
    assert str(16 * 1024 * 1024) in error(answers[4])[2]
    with client(gw, gw.token("capb", "read")) as c:
        r = c.get("/snapshot")
    assert r.status_code == 200 and len(r.content) < 17 * 1024 * 1024
    assert [h["host"] for h in r.json()["hosts"]] == ["m0", "m1", "m2", "m3"]


def test_made_up_agents_hit_the_cap_of_heartbeats_per_tenant(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("capc", "publish", hosts=["h1"])) as c:
        for part in range(4):  # 4 x 4096 = 16384 agents, the cap
            batch = [beat("capc", "h1", f"a{part}-{i}") for i in range(4096)]
            assert c.post("/heartbeats", json=batch).json()["stored"] == 4096
        status, code, message = error(c.post("/heartbeats", json=beat("capc", "h1", "one-more")))
        assert (status, code) == (413, "cap_reached") and "16384" in message
        again = beat("capc", "h1", "a0-0", seq=2)  # a known agent still reports
        assert c.post("/heartbeats", json=again).json() == {"accepted": 1, "stored": 1}


def test_an_answer_past_its_cap_leaves_out_and_names_hosts(module_gateway: GatewayServer) -> None:
    """Rows stored before the caps (or with them raised) never make GET /snapshot fail whole."""
    gw = module_gateway
    with client(gw, gw.token("ans", "publish")) as c:
        for host in ("a1", "a2", "a3"):
            assert c.post("/snapshot", json=ps_doc("ans", host, ["x"])).status_code == 200
    with psycopg.connect(gw.dsn) as conn:  # as if a2 held a 20 MiB document
        conn.execute("UPDATE fleet.host_snapshots SET ps_bytes = 20971520 WHERE host = 'a2'")
        conn.execute("UPDATE fleet.host_snapshots SET ps_bytes = 10485760 WHERE host = 'a3'")
    with client(gw, gw.token("ans", "read")) as c:
        answer = c.get("/snapshot").json()
    assert [h["host"] for h in answer["hosts"]] == ["a1", "a2"]
    assert answer["omitted_hosts"] == ["a3"]


def test_a_silent_host_is_forgotten_after_the_retention(gateway: GatewayServer) -> None:
    with client(gateway, gateway.token("ret", "publish")) as c:
        for host in ("old", "live"):
            assert c.post("/snapshot", json=ps_doc("ret", host, ["a1"])).status_code == 200
            assert c.post("/heartbeats", json=beat("ret", host, "a1")).status_code == 200
    with psycopg.connect(gateway.dsn) as conn:  # 'old' was last heard of 8 days ago
        for table in ("host_snapshots", "heartbeats"):
            conn.execute(
                f"UPDATE fleet.{table} SET received_at = now() - interval '8 days'"
                " WHERE host = 'old'"
            )
    with client(gateway, gateway.token("ret", "read")) as c:
        assert [h["host"] for h in c.get("/snapshot").json()["hosts"]] == ["live"]
    with client(gateway, gateway.token("ret", "publish")) as c:  # a new host arrives
        assert c.post("/snapshot", json=ps_doc("ret", "new", ["a1"])).status_code == 200
        assert c.post("/heartbeats", json=beat("ret", "new", "a1")).status_code == 200
    with psycopg.connect(gateway.dsn) as conn:
        rows = conn.execute(
            "SELECT 'snap', host FROM fleet.host_snapshots UNION ALL"
            " SELECT 'beat', host FROM fleet.heartbeats ORDER BY 1, 2"
        ).fetchall()
    assert rows == [("beat", "live"), ("beat", "new"), ("snap", "live"), ("snap", "new")]


def test_the_retention_is_a_flag_of_serve(gateway: GatewayServer) -> None:
    gateway.extra_args = ["--host-retention-days", "0.5"]
    gateway.restart()
    with client(gateway, gateway.token("ret2", ["publish", "read"])) as c:
        for host in ("h1", "h2"):
            assert c.post("/snapshot", json=ps_doc("ret2", host, ["a1"])).status_code == 200
        with psycopg.connect(gateway.dsn) as conn:  # h1: 13 hours ago; h2: 11 hours ago
            for host, hours in (("h1", 13), ("h2", 11)):
                conn.execute(
                    "UPDATE fleet.host_snapshots SET received_at = now() - make_interval(hours => %s)"
                    " WHERE host = %s",
                    [hours, host],
                )
        assert [h["host"] for h in c.get("/snapshot").json()["hosts"]] == ["h2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOSAIC_FLEET_")}
    argv = [sys.executable, "-m", "fleet_tui", "gateway", "serve", "--dsn", gateway.dsn]
    out = subprocess.run(
        [*argv, "--host-retention-days", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "--host-retention-days" in out.stderr


# -- auth before the body, bad-token floods (item 5) ---------------------------------------------


def test_a_missing_or_bad_token_is_answered_before_the_body_is_read(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    for auth in ("", "Authorization: Bearer fleet_not-a-token\r\n"):
        with so.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
            sock.sendall(
                (
                    "POST /api/fleet/v1/snapshot HTTP/1.1\r\nHost: x\r\n"
                    f"{auth}Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n"
                ).encode()
            )  # ... and never the body
            sock.settimeout(5)
            head = sock.recv(4096).decode(errors="replace")
        assert head.startswith("HTTP/1.1 401"), head
    body = json.dumps(ps_doc("t", "h", ["a"], pad=3_900_000)).encode()
    with client(gw) as c:  # a whole 4 MB body without a token: a clean 401, not a reset
        r = c.post("/snapshot", content=body, headers={"Content-Type": "application/json"})
    assert error(r)[:2] == (401, "unauthorized")


def test_a_flood_of_bad_tokens_is_refused_without_a_lookup(gateway: GatewayServer) -> None:
    good = gateway.token("fl", "read")
    statuses = []
    with client(gateway, "fleet_guess") as c:
        for _ in range(30):
            statuses.append(c.get("/snapshot", params={"tenant": "fl"}))
    codes = [r.status_code for r in statuses]
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 10, codes
    retry = int(statuses[-1].headers["Retry-After"])
    assert 1 <= retry <= 60
    assert error(statuses[-1])[1] == "too_many_failures"
    with client(gateway, good) as c:  # while limited, this address gets no lookup at all
        assert c.get("/snapshot", params={"tenant": "fl"}).status_code == 429
    assert httpx.get(f"{gateway.url}/healthz", timeout=10).status_code == 200


# -- batches: one schema, named items (item 11) ----------------------------------------------------


def test_a_poisoned_batch_names_its_bad_items_and_stores_none_of_it(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    good = [sample("poi", account=f"acct-{i}", observed_at=stamp(-100 + i)) for i in range(4)]
    bad = {
        1: sample("poi", window_minutes=0),
        3: sample("poi", account="a" * 300),
        4: sample("poi", window=""),
        6: sample("poi", window_minutes=2**31),
        7: sample("poi", window="weekly\u200b"),  # would show as a second "weekly" row
    }
    batch: list[dict[str, Any]] = []
    goods = iter(good)
    for i in range(9):
        batch.append(bad[i] if i in bad else next(goods))
    with client(gw, gw.token("poi", "publish")) as c:
        r = c.post("/usage", json=batch)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_items" and err["message"] == "5 of 9 items invalid"
        assert [i["index"] for i in err["items"]] == [1, 3, 4, 6, 7]
        fields = [i["message"].split(":")[0] for i in err["items"]]
        assert fields == ["window_minutes", "account", "window", "window_minutes", "window"]
        with client(gw, gw.token("poi", "read")) as reader:
            assert reader.get("/budgets").json()["accounts"] == []  # nothing of it stored
        rest = [item for i, item in enumerate(batch) if i not in bad]
        assert c.post("/usage", json=rest).json() == {"accepted": 4, "stored": 4}
        spend_bad = {"tenant_id": "poi", "host": "h1", "ts": stamp(), "account": "api",
                     "input_tokens": 2**63}  # fmt: skip
        spend_ok = {**spend_bad, "input_tokens": 5}
        r = c.post("/spend", json=[spend_ok, spend_bad])
        assert [i["index"] for i in r.json()["error"]["items"]] == [1]
    # the local models refuse exactly what the gateway refused, and take what it took
    for item in bad.values():
        with pytest.raises(ValidationError):
            UsageSample.model_validate(item)
    for item in rest:
        UsageSample.model_validate(item)
    with pytest.raises(ValidationError):
        SpendRecord.model_validate(spend_bad)
    for local_bad in ({"used_percent": float("nan")}, {"observed_at": "2026-01-01T00:00:00"}):
        with pytest.raises(ValidationError):
            UsageSample.model_validate(sample("poi", **local_bad))


# -- clock skew (item 12) ----------------------------------------------------------------------


def test_a_record_dated_ahead_never_locks_out_the_honest_ones(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("skew", ["publish", "read"])) as c:
        ahead = c.post("/snapshot", json=ps_doc("skew", "h1", ["a1"], at=240))  # clock 4 min fast
        assert ahead.json()["stored"] == 1
        assert c.post("/heartbeats", json=beat("skew", "h1", "a1", 1, at=240)).json()["stored"] == 1
        # the clock is fixed: the honest records that follow replace the ones dated ahead
        honest = c.post("/snapshot", json=ps_doc("skew", "h1", ["a1", "a2"], at=-1))
        assert honest.json() == {"accepted": 1, "stored": 1}
        assert c.post("/heartbeats", json=beat("skew", "h1", "a1", 2)).json()["stored"] == 1
        time.sleep(0.3)
        before = datetime.now(UTC)
        (host,) = c.get("/snapshot").json()["hosts"]
        # a queued older record still does not replace the newer one
        late = c.post("/snapshot", json=ps_doc("skew", "h1", ["a1"], at=-30))
        assert late.json() == {"accepted": 1, "stored": 0}
    assert [a["name"] for a in host["ps"]["agents"]] == ["a1", "a2"]
    received = datetime.fromisoformat(host["received_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=30) < received <= before
    assert isinstance(host["age_s"], float) and 0.2 <= host["age_s"] < 30
    with psycopg.connect(gw.dsn) as conn:
        seq = conn.execute("SELECT seq FROM fleet.heartbeats WHERE tenant_id = 'skew'").fetchone()
    assert seq == (2,)
