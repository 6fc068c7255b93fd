"""The publisher against the real reference gateway on real PostgreSQL: delivery, the on-disk
queue through an outage (nothing promised is lost: counted on the server side), its bound, bad
ledger lines, rejected batches set aside, exit codes, and the token never written anywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, wait_until
from pg_support import GatewayServer

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.remote.connection import Backoff, GatewaySettings, Secret
from fleet_tui.remote.push import GatewayPush
from fleet_tui.service.publisher import QUEUE_DIR, Publisher, QueueLimits

pytestmark = pytest.mark.tmux

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def usage_line(
    i: int, *, tenant: str = "acme", host: str = "h-a", used: float = 10.0, **kw: Any
) -> str:
    return json.dumps(
        kw
        | {
            "tenant_id": tenant,
            "host": host,
            "account": "claude-max-a",
            "window": "5h",
            "window_minutes": 300,
            "used_percent": used + i % 50,
            "resets_at": None,
            "reset_confidence": "unknown",
            "observed_at": (T0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "source": "test",
        }
        | kw
    )


def spend_line(i: int) -> str:
    return json.dumps(
        {
            "tenant_id": "acme",
            "host": "h-a",
            "ts": (T0 + timedelta(seconds=i)).isoformat(),
            "agent": "orchestrator",
            "account": "openai-api",
            "model": "gpt-5",
            "mission": None,
            "task": None,
            "input_tokens": 100 + i,
            "output_tokens": 10,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.01,
            "projected_tokens": None,
        }
    )


def append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def server_count(gw: GatewayServer, table: str, tenant: str = "acme") -> int:
    import psycopg

    with psycopg.connect(gw.dsn) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM fleet.{table} WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def host_a(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h-a")
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    assert fleet_env.cli("heartbeat", "orchestrator", "--state", "busy").rc == 0


def pub_env(gw: GatewayServer, token: str) -> dict[str, str]:
    return {"MOSAIC_FLEET_GATEWAY_URL": gw.url, "MOSAIC_FLEET_GATEWAY_TOKEN": token}


def queue_files(fleet_env: FleetEnv) -> list[str]:
    folder = fleet_env.state_dir / QUEUE_DIR
    return sorted(p.name for p in folder.glob("*.json")) if folder.exists() else []


def test_publish_once_delivers_everything_and_the_outage_loses_nothing(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    host_a(fleet_env)
    token = gateway.token("acme", "publish")
    env = pub_env(gateway, token)
    usage, spend = fleet_env.state_dir / "usage.jsonl", fleet_env.state_dir / "spend.jsonl"
    append(usage, [usage_line(i) for i in range(5)])
    append(spend, [spend_line(i) for i in range(2)])

    res = fleet_env.cli("publish", "--once", "--insecure", env=env)
    assert res.rc == 0, res
    assert "published to" in res.stdout and "5 usage" in res.stdout and "1 heartbeat" in res.stdout
    assert server_count(gateway, "usage_samples") == 5
    assert server_count(gateway, "spend_records") == 2
    assert server_count(gateway, "host_snapshots") == 1
    assert queue_files(fleet_env) == []

    gateway.stop()
    append(usage, [usage_line(i) for i in range(5, 12)])
    append(spend, [spend_line(2)])
    assert fleet_env.cli("heartbeat", "orchestrator", "--state", "idle").rc == 0
    down = fleet_env.cli("publish", "--once", "--insecure", env=env)
    assert down.rc == 4, down
    assert "unreachable" in down.stderr and "queued for later" in down.stderr
    assert down.stderr.count("\n") == 1
    # --once has exited: no 'retry in 1 s' that nothing will do; the next run sends them
    assert "retry in" not in down.stderr and "the next publish sends them first" in down.stderr
    kinds = [name.split(".")[1] for name in queue_files(fleet_env)]
    assert sorted(kinds) == ["heartbeat", "snapshot", "spend", "usage"]
    # a second cycle while down: the snapshot is superseded, the usage batch is kept
    append(usage, [usage_line(12)])
    again = fleet_env.cli("publish", "--once", "--insecure", env=env)
    assert again.rc == 4
    kinds = [name.split(".")[1] for name in queue_files(fleet_env)]
    assert kinds.count("snapshot") == 1 and kinds.count("usage") == 2

    gateway.start()
    back = fleet_env.cli("publish", "--once", "--insecure", env=env)
    assert back.rc == 0, back
    assert queue_files(fleet_env) == []
    assert server_count(gateway, "usage_samples") == 13  # every line, once
    assert server_count(gateway, "spend_records") == 3
    # the token is in no output and in no file of the state dir
    outputs = res.stdout + res.stderr + down.stdout + down.stderr + back.stdout + back.stderr
    assert token not in outputs
    for path in fleet_env.state_dir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_a_full_queue_stops_reading_the_ledger_and_says_so_then_catches_up(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    host_a(fleet_env)
    token = gateway.token("acme", "publish")
    gateway.stop()
    usage = fleet_env.state_dir / "usage.jsonl"
    append(usage, [usage_line(i) for i in range(450)])  # 3 batches of up to 200
    config = FleetConfig.from_flags()
    settings = GatewaySettings(
        url=gateway.url, token=Secret(token), insecure=True, connect_timeout_s=1.0
    )
    with GatewayPush(settings) as client:
        pub = Publisher(
            config,
            client,
            limits=QueueLimits(max_files=3, max_bytes=1 << 20),
            backoff=Backoff(base_s=0.01, cap_s=0.01),
        )
        first = pub.cycle()
        assert first.error is not None and first.error.kind == "unreachable"
        # snapshot + heartbeat + usage fill 3 files; the second usage batch takes the
        # heartbeat's place (the snapshot says as much); the third is not read, and said so
        full = [w for w in first.warnings if "gateway queue full" in w]
        assert "dropped 1 older queued heartbeat" in full[0]
        assert "usage.jsonl is not read past line 400" in full[-1]
        assert sorted(n.split(".")[1] for n in queue_files(fleet_env)) == [
            "snapshot",
            "usage",
            "usage",
        ]
        assert first.queued["usage"] == 400
        gateway.start()
        time.sleep(0.02)
        second = pub.cycle()
        assert second.error is None and second.drained, second
        third = pub.cycle()  # the lines left in the ledger come now
        assert third.drained and third.delivered.get("usage") == 50
    assert server_count(gateway, "usage_samples") == 450


def test_bad_ledger_lines_are_named_and_skipped_the_rest_is_published(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    host_a(fleet_env)
    env = pub_env(gateway, gateway.token("acme", "publish"))
    usage = fleet_env.state_dir / "usage.jsonl"
    append(usage, [usage_line(0), "{not json", '{"tenant_id": "acme"}', usage_line(1)])
    append(usage, [usage_line(2, tenant="other")])
    res = fleet_env.cli("publish", "--insecure", env=env)
    assert res.rc == 2, res  # delivered what was valid; 3 lines never will be: a person must look
    assert "3 invalid, not published" in res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert any(f"{usage}:2:" in w and "not published" in w for w in warnings)
    assert any(f"{usage}:3: host:" in w for w in warnings)
    assert any(f"{usage}:5: tenant_id:" in w for w in warnings)
    assert server_count(gateway, "usage_samples") == 2
    # the same lines are not warned about (nor sent) twice
    again = fleet_env.cli("publish", "--insecure", env=env)
    assert again.rc == 0 and "warning" not in again.stderr


def test_a_batch_the_gateway_rejects_is_set_aside_with_a_warning_and_the_rest_flows(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    host_a(fleet_env)
    env = pub_env(gateway, gateway.token("acme", "publish"))
    usage = fleet_env.state_dir / "usage.jsonl"
    queue = fleet_env.state_dir / QUEUE_DIR
    queue.mkdir(parents=True)
    (queue / "000000000001.usage.-.json").write_text(  # queued by an earlier publisher
        json.dumps(
            {
                "route": "/usage",
                "idempotency_key": "k",
                "body": [json.loads(usage_line(0, window_minutes=0))],  # refused by the gateway
            }
        )
    )
    res = fleet_env.cli("publish", "--insecure", env=env)
    assert res.rc == 2, res
    assert "gateway refused 1 of 1 usage records" in res.stderr and "1 set aside" in res.stderr
    rejected = list((fleet_env.state_dir / QUEUE_DIR / "rejected").glob("*.usage.*.json"))
    assert len(rejected) == 1  # kept on disk, not dropped silently
    append(usage, [usage_line(1)])
    assert fleet_env.cli("publish", "--insecure", env=env).rc == 0
    assert server_count(gateway, "usage_samples") == 1


def test_a_wrong_gateway_address_sets_nothing_aside_and_the_right_one_delivers_it_all(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """A 404 from the gateway (an address with a wrong path) is no verdict on the data: it
    stays queued (not in rejected/), exit 2 says what to fix; the API's own address
    (.../api/fleet/v1) is taken for the gateway's."""
    host_a(fleet_env)
    token = gateway.token("acme", "publish")
    append(fleet_env.state_dir / "usage.jsonl", [usage_line(i) for i in range(3)])
    wrong = {**pub_env(gateway, token), "MOSAIC_FLEET_GATEWAY_URL": gateway.url + "/fleet"}
    res = fleet_env.cli("publish", "--insecure", env=wrong)
    assert res.rc == 2 and "not the gateway API (404)" in res.stderr, res
    assert res.stderr.count("\n") == 1
    assert not (fleet_env.state_dir / QUEUE_DIR / "rejected").exists()
    assert server_count(gateway, "usage_samples") == 0
    api = {**pub_env(gateway, token), "MOSAIC_FLEET_GATEWAY_URL": gateway.api + "/"}
    ok = fleet_env.cli("publish", "--insecure", env=api)
    assert ok.rc == 0, ok
    assert f"published to {gateway.url}:" in ok.stdout
    assert server_count(gateway, "usage_samples") == 3 and queue_files(fleet_env) == []


def test_a_read_token_cannot_publish_exit_2_and_nothing_is_lost(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    host_a(fleet_env)
    append(fleet_env.state_dir / "usage.jsonl", [usage_line(0)])
    res = fleet_env.cli("publish", "--insecure", env=pub_env(gateway, gateway.token("acme")))
    assert res.rc == 2 and "(403)" in res.stderr and "queued in" in res.stderr
    ok = fleet_env.cli(
        "publish", "--insecure", env=pub_env(gateway, gateway.token("acme", "publish"))
    )
    assert ok.rc == 0 and server_count(gateway, "usage_samples") == 1


def test_records_queued_under_an_old_tenant_do_not_block_the_queue_after_the_fix(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """The README path: tokens made for the roster's tenant, but the first publish ran as
    another tenant (403, queued). Once the roster names the right tenant, the old tenant's
    queued heartbeat is set aside (kept on disk, said on stderr) instead of failing every run."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], tenant="other")
    fleet_env.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    assert fleet_env.cli("heartbeat", "orchestrator", "--state", "busy").rc == 0
    env = pub_env(gateway, gateway.token("acme", "publish"))
    first = fleet_env.cli("publish", "--insecure", env=env)
    assert first.rc == 2 and "(403)" in first.stderr, first
    assert "this host publishes as tenant 'other': the roster's tenant_id" in first.stderr
    assert any(".heartbeat." in f for f in queue_files(fleet_env))
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], tenant="acme")
    fixed = fleet_env.cli("publish", "--insecure", env=env)
    assert fixed.rc == 2 and "1 set aside in" in fixed.stderr, fixed  # said, counted, kept
    assert "is for tenant 'other', this host now publishes as 'acme'" in fixed.stderr
    assert queue_files(fleet_env) == []
    aside = list((fleet_env.state_dir / QUEUE_DIR / "rejected").glob("*.heartbeat.*.json"))
    assert len(aside) == 1 and '"tenant_id":"other"' in aside[0].read_text().replace(" ", "")
    assert server_count(gateway, "host_snapshots") == 1
    assert fleet_env.cli("publish", "--insecure", env=env).rc == 0


def test_publish_every_prints_one_line_per_cycle_and_stops_on_sigterm(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    host_a(fleet_env)
    env: dict[str, Any] = {**fleet_env.env, **pub_env(gateway, gateway.token("acme", "publish"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", "publish", "--every", "0.3", "--insecure"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(fleet_env.base),
    )
    try:
        wait_until(lambda: server_count(gateway, "host_snapshots") == 1, timeout=15)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) >= 3 and all("published to" in x for x in lines[:-1])
    assert lines[-1].startswith("stopped")


def test_publish_without_a_gateway_or_with_bad_flags_is_bad_input(fleet_env: FleetEnv) -> None:
    res = fleet_env.cli("publish")
    assert res.rc == 2 and "no gateway" in res.stderr
    res = fleet_env.cli("publish", "--once", "--every", "5", "--gateway", "https://x")
    assert res.rc == 2
