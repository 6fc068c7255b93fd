"""The stub runtime speaks heartbeat protocol v1: its records read back through the spool's
models, it acks the messages it receives and answers a ping with its nonce."""

from __future__ import annotations

from pathlib import Path

from fleet_tui.demo.stub import Stub
from fleet_tui.protocol.acks import message_hash
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.testing.fleets import NOW


def test_the_stub_beats_acks_and_answers_a_ping(tmp_path: Path) -> None:
    spool = HeartbeatSpool(tmp_path / "state")
    spool.ensure_writable()
    out: list[str] = []
    stub = Stub(
        "s1", spool, tenant_id="acme", host="h1", interval_s=5, write=out.append, clock=lambda: NOW
    )
    stub.beat()
    hb = spool.read_heartbeat("s1").heartbeat
    assert hb is not None
    assert (hb.tenant_id, hb.host, hb.agent, hb.seq, hb.ts) == ("acme", "h1", "s1", 0, NOW)
    assert (hb.state.value, hb.runtime, hb.model, hb.interval_s) == (
        "starting",
        "stub",
        "stub-1",
        5,
    )
    assert (hb.acks, hb.echo, hb.via) == ([], None, None)

    stub.on_message("run the tests\r\n")
    hb = spool.read_heartbeat("s1").heartbeat
    assert hb is not None and hb.seq == 1 and hb.state.value == "busy"
    assert hb.acks == [message_hash("run the tests")]

    spool.write_ping("s1", "nonce-1", NOW)
    stub.check_ping()
    hb = spool.read_heartbeat("s1").heartbeat
    assert hb is not None and (hb.seq, hb.echo) == (2, "nonce-1")
    stub.check_ping()  # the same ping again: no new beat
    assert spool.read_heartbeat("s1").heartbeat.seq == 2  # type: ignore[union-attr]
