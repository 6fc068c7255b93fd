"""The collector's spool read across polls: a heartbeat is decoded once per change, and every
change is seen, however fresh (real files in a temporary state dir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.paths import Located
from fleet_tui.model.records import AgentState
from fleet_tui.protocol import files as files_mod
from fleet_tui.service.collector import FleetCollector
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.testing.fleets import heartbeat


@pytest.fixture
def collector(tmp_path: Path) -> FleetCollector:
    roster = tmp_path / "roster.yaml"
    roster.write_text("version: 1\ntenant_id: jarvis\nagents: []\n")
    return FleetCollector(FleetConfig(Located(roster, True), tmp_path / "state"))


def spool_of(collector: FleetCollector) -> HeartbeatSpool:
    collector.spool.ensure_writable()
    return collector.spool


def test_a_fresh_heartbeat_is_decoded_once_while_its_bytes_hold(
    collector: FleetCollector,
) -> None:
    spool = spool_of(collector)
    for name in ("c1", "c2", "c3"):
        spool.write_heartbeat(heartbeat(name, seq=1))
    first, _ = collector._read_spool()
    assert collector.heartbeats_decoded == 3
    # The files are seconds-fresh (their stat is not trusted yet): read again, not decoded.
    for _ in range(3):
        again, _ = collector._read_spool()
        assert again == first
    assert collector.heartbeats_decoded == 3
    # One agent beats: only its file is decoded again, and the poll shows the new record.
    spool.write_heartbeat(heartbeat("c2", seq=2, state=AgentState.IDLE))
    after, _ = collector._read_spool()
    assert collector.heartbeats_decoded == 4
    c2 = after["c2"].heartbeat
    assert c2 is not None and (c2.seq, c2.state) == (2, AgentState.IDLE)
    assert after["c1"] == first["c1"] and after["c3"] == first["c3"]


def test_a_same_size_rewrite_in_place_is_seen(collector: FleetCollector) -> None:
    """The case the freshness rule exists for: same inode, same size, same clock tick."""
    spool = spool_of(collector)
    spool.write_heartbeat(heartbeat("c1", detail="aaaa"))
    before, _ = collector._read_spool()
    path = spool.heartbeat_path("c1")
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b'"aaaa"', b'"bbbb"'))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same mtime as before
    after, _ = collector._read_spool()
    assert before["c1"].heartbeat is not None and before["c1"].heartbeat.detail == "aaaa"
    assert after["c1"].heartbeat is not None and after["c1"].heartbeat.detail == "bbbb"


def test_settled_files_are_not_opened_and_a_rewrite_with_the_same_bytes_is_not_decoded(
    collector: FleetCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spool_of(collector)
    spool.write_heartbeat(heartbeat("c1"))
    spool.heartbeat_path("bad").write_text("not json")
    monkeypatch.setattr(files_mod, "_SETTLED_NS", 0)  # every file counts as settled
    first, _ = collector._read_spool()
    assert first["bad"].error == "heartbeat file is not JSON"
    opened: list[str] = []
    real = spool.heartbeat_bytes
    monkeypatch.setattr(spool, "heartbeat_bytes", lambda a, p=None: opened.append(a) or real(a, p))
    again, _ = collector._read_spool()
    assert again == first and opened == []
    # Rewritten with the same bytes (a new inode): read, not decoded; its new mtime is kept.
    data = spool.heartbeat_path("c1").read_bytes()
    decoded = collector.heartbeats_decoded
    spool.heartbeat_path("c1").unlink()
    spool.heartbeat_path("c1").write_bytes(data)
    third, _ = collector._read_spool()
    assert opened == ["c1"] and collector.heartbeats_decoded == decoded
    assert third["c1"].heartbeat == first["c1"].heartbeat
    assert third["c1"].mtime == spool.heartbeat_path("c1").stat().st_mtime
    # Gone: gone from the read too.
    spool.heartbeat_path("c1").unlink()
    gone, _ = collector._read_spool()
    assert "c1" not in gone and gone["bad"] == first["bad"]
