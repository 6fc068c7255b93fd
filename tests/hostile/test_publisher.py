"""The publisher against hostile queue contents and faults, with the real reference gateway on
real PostgreSQL: a batch holding one record the gateway refuses (the other records arrive, the
bad one is set aside and counted), queue files that are `null`, keyless, FIFOs or /dev/zero,
strings that are not valid Unicode, a gateway that keeps failing on one item, and a full disk
under `publish --every` (a private tmpfs in a private mount namespace)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, unavailable, wait_until
from pg_support import GatewayServer

from fleet_tui.service.publisher import QUEUE_DIR, REJECTED_DIR

pytestmark = pytest.mark.tmux


def usage_record(i: int, **kw: Any) -> dict[str, Any]:
    t0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    return {
        "tenant_id": "acme",
        "host": "h-a",
        "account": "claude-max-a",
        "window": "5h",
        "window_minutes": 300,
        "used_percent": 10.0 + i % 50,
        "resets_at": None,
        "reset_confidence": "unknown",
        "observed_at": (t0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
        "source": "test",
    } | kw


def server_count(gw: GatewayServer, table: str) -> int:
    import psycopg

    with psycopg.connect(gw.dsn) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM fleet.{table} WHERE tenant_id = 'acme'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def host_a(world: FleetEnv) -> None:
    world.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h-a")
    world.start("mosaic-fleet", "orchestrator", ["sleep", "300"])
    assert world.cli("heartbeat", "orchestrator", "--state", "busy").rc == 0


def pub_env(gw: GatewayServer) -> dict[str, str]:
    token = gw.token("acme", "publish")
    return {"MOSAIC_FLEET_GATEWAY_URL": gw.url, "MOSAIC_FLEET_GATEWAY_TOKEN": token}


def queue_dir(world: FleetEnv) -> Path:
    folder = world.state_dir / QUEUE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def queued(kind: str, body: Any, key: str = "k") -> bytes:
    route = {"usage": "/usage", "heartbeat": "/heartbeats", "spend": "/spend"}[kind]
    return json.dumps({"route": route, "idempotency_key": key, "body": body}).encode()


def test_one_refused_record_of_a_batch_is_set_aside_and_the_100_others_arrive(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """A batch of 101 records queued by an earlier publisher, one of which the gateway refuses
    (422 invalid_items): the 100 good ones are delivered, the bad one is set aside on disk,
    and the exit code (2) and the output say so."""
    host_a(fleet_env)
    records = [usage_record(i) for i in range(101)]
    records[57] = usage_record(57, window_minutes=0)  # a window the gateway refuses
    (queue_dir(fleet_env) / "000000000001.usage.-.json").write_bytes(queued("usage", records))
    res = fleet_env.cli("publish", "--once", "--insecure", env=pub_env(gateway))
    assert server_count(gateway, "usage_samples") == 100
    assert res.rc == 2, res
    assert "Traceback" not in res.stderr
    assert "1 set aside in" in res.stderr and "100 usage" in res.stderr
    aside = list((fleet_env.state_dir / QUEUE_DIR / REJECTED_DIR).iterdir())
    assert len(aside) == 1
    kept = json.loads(aside[0].read_text())
    assert [r["window_minutes"] for r in kept["records"]] == [0]
    assert "window_minutes" in kept["reasons"][0]
    assert not list((fleet_env.state_dir / QUEUE_DIR).glob("*.usage.*"))
    again = fleet_env.cli("publish", "--once", "--insecure", env=pub_env(gateway))
    assert again.rc == 0, again  # nothing left behind, nothing counted twice


def test_corrupt_queue_files_are_set_aside_and_never_block_what_follows(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """`null`, a file missing a key, a FIFO and a link to /dev/zero in the queue: each is set
    aside with a warning (no hang, no traceback), the good batch after them arrives; a heartbeat
    holding a lone surrogate is delivered with U+FFFD in its place."""
    host_a(fleet_env)
    q = queue_dir(fleet_env)
    (q / "000000000001.usage.-.json").write_bytes(b"null")
    (q / "000000000002.usage.-.json").write_bytes(b'{"route": "/usage", "body": [{}]}')
    os.mkfifo(q / "000000000003.spend.-.json")
    os.symlink("/dev/zero", q / "000000000004.usage.-.json")
    beat = json.loads(json.dumps(fleet_env.heartbeat("orchestrator")))
    beat["detail"] = "half \ud800 a pair"
    beat["seq"] = int(beat["seq"]) + 1
    (q / "000000000005.heartbeat.orchestrator.json").write_bytes(queued("heartbeat", beat))
    good = [usage_record(i) for i in range(10)]
    (q / "000000000006.usage.-.json").write_bytes(queued("usage", good))
    res = fleet_env.cli("publish", "--once", "--insecure", env=pub_env(gateway), timeout=60)
    assert "Traceback" not in res.stderr, res
    assert server_count(gateway, "usage_samples") == 10
    assert res.rc == 2, res
    assert "4 set aside in" in res.stderr
    for n in (1, 2, 3, 4):
        assert f"0000000000{n:02d}" in res.stderr
    aside = sorted(p.name for p in (q / REJECTED_DIR).iterdir())
    assert [name[:12] for name in aside] == [f"{n:012d}" for n in (1, 2, 3, 4)]
    assert sorted(p.name for p in q.glob("*.json")) == []
    import psycopg

    with psycopg.connect(gateway.dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM fleet.heartbeats WHERE tenant_id = 'acme'"
        ).fetchone()
    assert row is not None and row[0] == 1
    assert fleet_env.cli("publish", "--once", "--insecure", env=pub_env(gateway)).rc == 0


def test_a_full_disk_pauses_publish_every_which_catches_up_when_there_is_room(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """The queue folder on a 96 KiB tmpfs (in a private mount namespace), the gateway down and
    1500 ledger lines: queuing hits ENOSPC; `publish --every` says so and keeps running; once
    the gateway is back it drains, reads on and delivers every line exactly once."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], check=False).returncode:
        unavailable("no private mount namespace here (unshare -rm)")
    host_a(fleet_env)
    env = {**fleet_env.env, **pub_env(gateway)}
    lines = "".join(json.dumps(usage_record(i)) + "\n" for i in range(1500))
    (fleet_env.state_dir / "usage.jsonl").write_text(lines)
    q = queue_dir(fleet_env)
    gateway.stop()
    script = 'mount -t tmpfs -o size=96k none "$1" && shift && exec "$@"'
    argv = [unshare, "-rm", "sh", "-c", script, "sh", str(q)]
    argv += [sys.executable, "-m", "fleet_tui", "publish", "--every", "0.3", "--insecure"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(fleet_env.base),
    )  # fmt: skip
    try:
        time.sleep(4.0)
        assert proc.poll() is None, proc.communicate()
        gateway.start()
        wait_until(
            lambda: server_count(gateway, "usage_samples") == 1500,
            timeout=60,
            interval=0.5,
            message="every ledger line delivered",
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "no space left" in err.lower(), err
    assert "Traceback" not in err
    assert out.splitlines()[-1].startswith("stopped")


def test_an_item_the_gateway_keeps_failing_on_is_set_aside_after_bounded_tries(
    fleet_env: FleetEnv,
) -> None:
    """A gateway (real HTTP on loopback) that answers 500 to one queued batch, every time:
    each `publish --once` tries it once (exit 4), and after MAX_TRIES runs it is set aside
    and the batch queued after it is delivered."""
    import threading

    from test_gateway_client import FakeGateway

    from fleet_tui.service.publisher import MAX_TRIES

    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}], host="h-a")
    server = FakeGateway()

    def reply(h: Any) -> None:
        body = server.posts[-1][1] if server.posts else b""
        if b"poison" in body:
            h.send_json(500, {"error": {"code": "internal", "message": "internal error"}})
        else:
            h.send_json(200, {"accepted": 1, "stored": 1})

    server.reply = reply
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        q = queue_dir(fleet_env)
        bad = [usage_record(0, source="poison")]
        (q / "000000000001.usage.-.json").write_bytes(queued("usage", bad))
        good = [usage_record(i) for i in range(1, 4)]
        (q / "000000000002.usage.-.json").write_bytes(queued("usage", good))
        env = {"MOSAIC_FLEET_GATEWAY_URL": server.url, "MOSAIC_FLEET_GATEWAY_TOKEN": "t0k"}
        runs = [fleet_env.cli("publish", "--once", "--insecure", env=env) for _ in range(MAX_TRIES)]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert [r.rc for r in runs] == [4] * (MAX_TRIES - 1) + [2], runs
    assert f"failed on it {MAX_TRIES} times" in runs[-1].stderr
    assert "1 set aside in" in runs[-1].stderr and "3 usage" in runs[-1].stderr
    delivered = [json.loads(b) for p, b in server.posts if p.endswith("/usage")]
    assert [r["source"] for r in delivered[-1]] == ["test"] * 3
    assert sum(1 for p, b in server.posts if b"poison" in b) == MAX_TRIES
    assert [p.name[:12] for p in (q / REJECTED_DIR).iterdir()] == ["000000000001"]


def test_a_host_bound_token_refusal_is_said_clearly_and_the_queue_is_kept(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    from fleet_tui.server.db import create_token

    host_a(fleet_env)
    token = create_token(gateway.dsn, ["acme"], ["publish"], hosts=["h-z"])[1]
    env = {"MOSAIC_FLEET_GATEWAY_URL": gateway.url, "MOSAIC_FLEET_GATEWAY_TOKEN": token}
    res = fleet_env.cli("publish", "--once", "--insecure", env=env)
    assert res.rc == 2 and "(403)" in res.stderr, res
    assert "as host 'h-a'" in res.stderr and "queued in" in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    kinds = sorted(p.name.split(".")[1] for p in (fleet_env.state_dir / QUEUE_DIR).glob("*.json"))
    assert kinds == ["heartbeat", "snapshot"]
    assert not (fleet_env.state_dir / QUEUE_DIR / REJECTED_DIR).exists()


def test_text_that_is_not_valid_unicode_never_stops_the_publisher(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """A lone surrogate in what the collector gives (a heartbeat's detail): the cycle neither
    raises nor loses the snapshot; the gateway stores it with U+FFFD in its place."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.model.records import FleetSnapshot
    from fleet_tui.remote.connection import GatewaySettings, Secret
    from fleet_tui.remote.push import GatewayPush
    from fleet_tui.service.collector import FleetCollector
    from fleet_tui.service.publisher import Publisher

    host_a(fleet_env)

    class Collector(FleetCollector):
        def collect(self, *args: Any, **kw: Any) -> FleetSnapshot:
            snap = super().collect(*args, **kw)
            agents = []
            for a in snap.agents:
                hb = a.heartbeat
                if hb is not None:
                    a = a.model_copy(
                        update={"heartbeat": hb.model_copy(update={"detail": "x\ud800y"})}
                    )
                agents.append(a)
            return snap.model_copy(update={"agents": agents})

    config = FleetConfig.from_flags()
    token = Secret(gateway.token("acme", "publish"))
    settings = GatewaySettings(url=gateway.url, token=token, insecure=True)
    with GatewayPush(settings) as client:
        pub = Publisher(config, client, collector=Collector(config, keep_last_good=True))
        result = pub.cycle()
    assert result.error is None and result.delivered.get("snapshot") == 1, result
    import psycopg

    with psycopg.connect(gateway.dsn) as conn:
        row = conn.execute(
            "SELECT ps::text FROM fleet.host_snapshots WHERE tenant_id = 'acme'"
        ).fetchone()
    assert row is not None and "x\ufffdy" in json.loads(row[0])["agents"][0]["heartbeat"]["detail"]


def test_one_refused_heartbeat_of_a_group_is_set_aside_and_the_others_arrive(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    """Queued heartbeats go in one POST; the gateway names the invalid one (422
    invalid_items): that file is set aside, the others are resent at once and stored."""
    host_a(fleet_env)
    beat = fleet_env.heartbeat("orchestrator")
    assert beat is not None
    q = queue_dir(fleet_env)
    for n, agent in enumerate(["coder-1", "bad name!", "coder-2"], start=1):
        body = beat | {"agent": agent}
        key = agent if " " not in agent else "bad"
        (q / f"{n:012d}.heartbeat.{key}.json").write_bytes(queued("heartbeat", body))
    res = fleet_env.cli("publish", "--once", "--insecure", env=pub_env(gateway))
    assert res.rc == 2, res
    assert "1 set aside in" in res.stderr and "000000000002.heartbeat.bad.json" in res.stderr
    import psycopg

    with psycopg.connect(gateway.dsn) as conn:
        rows = conn.execute(
            "SELECT agent FROM fleet.heartbeats WHERE tenant_id = 'acme' ORDER BY agent"
        ).fetchall()
    assert [r[0] for r in rows] == ["coder-1", "coder-2", "orchestrator"]
    assert [p.name for p in (q / REJECTED_DIR).iterdir()] == ["000000000002.heartbeat.bad.json"]
