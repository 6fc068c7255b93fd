"""Heartbeat spool v1: atomic writes, and reads that say why a file is unusable, never raise."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from fleet_tui.errors import EXIT_BAD_INPUT, StateDirError
from fleet_tui.model.records import AgentState, Ping
from fleet_tui.protocol.files import atomic_write
from fleet_tui.protocol.heartbeat import MAX_HEARTBEAT_BYTES
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.testing.fleets import BUILDERS_NOW as NOW
from fleet_tui.testing.fleets import heartbeat


@pytest.fixture
def spool(tmp_path: Path) -> HeartbeatSpool:
    s = HeartbeatSpool(tmp_path / "state")
    s.ensure_writable()
    return s


def put(spool: HeartbeatSpool, agent: str, content: str | bytes) -> None:
    path = spool.heartbeat_path(agent)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)


def valid_record(agent: str = "c1") -> dict[str, object]:
    return json.loads(heartbeat(agent).model_dump_json())  # type: ignore[no-any-return]


# -- writing -----------------------------------------------------------------------------


def test_write_then_read_round_trip(spool: HeartbeatSpool) -> None:
    hb = heartbeat("coder0-0", seq=3, state=AgentState.WAITING_INPUT, detail="needs a decision")
    path = spool.write_heartbeat(hb)
    assert path == spool.state_dir / "heartbeats" / "coder0-0.json"
    read = spool.read_heartbeat("coder0-0")
    assert read.error is None and not read.missing
    assert read.heartbeat == hb
    assert read.mtime is not None
    on_disk = json.loads(path.read_text())
    assert on_disk["v"] == 1 and on_disk["ts"] == "2026-11-26T03:59:56.000Z"
    assert (on_disk["tenant_id"], on_disk["host"]) == ("jarvis", "w-jarvis")


def test_write_creates_the_spool_folders_and_leaves_no_temp_files(tmp_path: Path) -> None:
    spool = HeartbeatSpool(tmp_path / "a" / "b")
    for seq in range(5):
        spool.write_heartbeat(heartbeat("c1", seq=seq))
    assert sorted(os.listdir(spool.heartbeats)) == ["c1.json"]
    assert spool.read_heartbeat("c1").heartbeat is not None
    assert spool.read_heartbeat("c1").heartbeat.seq == 4  # type: ignore[union-attr]
    assert spool.heartbeats.is_dir() and spool.pings.is_dir()


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(
    spool: HeartbeatSpool,
) -> None:
    spool.write_heartbeat(heartbeat("c1", seq=1))
    target = spool.heartbeat_path("blocked")
    target.mkdir()  # rename onto a directory fails
    with pytest.raises(OSError):
        atomic_write(target, b"{}")
    assert sorted(os.listdir(spool.heartbeats)) == ["blocked.json", "c1.json"]
    assert spool.read_heartbeat("c1").heartbeat is not None
    # Through the spool, the same failure is a StateDirError naming the folder.
    with pytest.raises(StateDirError, match=r"cannot write in .*heartbeats"):
        spool.write_heartbeat(heartbeat("blocked", seq=1))
    assert sorted(os.listdir(spool.heartbeats)) == ["blocked.json", "c1.json"]


def test_state_dir_under_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    spool = HeartbeatSpool(blocker / "state")
    with pytest.raises(StateDirError) as info:
        spool.ensure_writable()
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert str(blocker / "state") in str(info.value)
    assert "not a directory" in str(info.value)
    with pytest.raises(StateDirError):
        spool.write_heartbeat(heartbeat("c1"))
    assert blocker.read_text() == "x"


def test_state_dir_that_is_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("x")
    with pytest.raises(StateDirError, match="not writable"):
        HeartbeatSpool(blocker).ensure_writable()


def test_heartbeats_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "heartbeats").write_text("x")
    with pytest.raises(StateDirError, match="is not a directory"):
        HeartbeatSpool(tmp_path).ensure_writable()


# -- reading: every broken file degrades one agent, with a reason -------------------------------


def test_no_file_is_missing_not_an_error(spool: HeartbeatSpool) -> None:
    read = spool.read_heartbeat("nobody")
    assert read.missing
    assert read.heartbeat is None and read.error is None


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99])
def test_truncated_json(spool: HeartbeatSpool, fraction: float) -> None:
    """A half-written file (a writer that does not rename) says so, wherever it was cut."""
    full = spool.heartbeat_path("c1")
    spool.write_heartbeat(heartbeat("c1"))
    data = full.read_bytes()
    put(spool, "c1", data[: int(len(data) * fraction)])
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error == "heartbeat file is truncated (JSON ends early)"
    assert not read.missing


@pytest.mark.parametrize("content", ["hello world", "v=1 agent=c1", "{'v': 1}"])
def test_not_json(spool: HeartbeatSpool, content: str) -> None:
    put(spool, "c1", content)
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error == "heartbeat file is not JSON"


def test_empty_file(spool: HeartbeatSpool) -> None:
    put(spool, "c1", "  \n")
    assert spool.read_heartbeat("c1").error == "heartbeat file is empty"


def test_not_utf8(spool: HeartbeatSpool) -> None:
    put(spool, "c1", b'{"v": 1, "detail": "\xff\xfe"}')
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error is not None and "UTF-8" in read.error


@pytest.mark.parametrize("content", ["[]", "[1, 2]", '"text"', "42", "null"])
def test_json_that_is_not_an_object(spool: HeartbeatSpool, content: str) -> None:
    put(spool, "c1", content)
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error == "heartbeat file is not a JSON object"


@pytest.mark.parametrize("version", [2, 0, "1"])
def test_wrong_version(spool: HeartbeatSpool, version: object) -> None:
    record = valid_record()
    record["v"] = version
    put(spool, "c1", json.dumps(record))
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error == f"heartbeat version {version!r} is not 1"


@pytest.mark.parametrize(
    "field", ["tenant_id", "host", "agent", "seq", "ts", "interval_s", "state"]
)
def test_missing_required_field(spool: HeartbeatSpool, field: str) -> None:
    record = valid_record()
    del record[field]
    put(spool, "c1", json.dumps(record))
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error is not None
    assert read.error.startswith(f"heartbeat invalid: {field}: ")


@pytest.mark.parametrize(
    ("field", "value"), [("state", "dancing"), ("seq", -1), ("ts", "yesterday"), ("seq", "x")]
)
def test_invalid_field_value(spool: HeartbeatSpool, field: str, value: object) -> None:
    record = valid_record()
    record[field] = value
    put(spool, "c1", json.dumps(record))
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error is not None and read.error.startswith(f"heartbeat invalid: {field}: ")


def test_unknown_fields_are_kept_for_a_growing_contract(spool: HeartbeatSpool) -> None:
    record = valid_record()
    record["future_field"] = {"x": 1}
    put(spool, "c1", json.dumps(record))
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is not None
    assert read.heartbeat.model_extra == {"future_field": {"x": 1}}


def test_heartbeat_naming_another_agent_is_refused(spool: HeartbeatSpool) -> None:
    put(spool, "c1", json.dumps(valid_record("c2")))
    read = spool.read_heartbeat("c1")
    assert read.heartbeat is None
    assert read.error == "heartbeat names agent 'c2', not 'c1'"


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_1mb_file_is_rejected_without_reading_it_all(spool: HeartbeatSpool) -> None:
    size = 1 << 20
    record = valid_record()
    record["detail"] = ""
    record["detail"] = "x" * (size - len(json.dumps(record)))
    data = json.dumps(record).encode()
    assert len(data) == size
    put(spool, "c1", data)
    before = _rchar()
    read = spool.read_heartbeat("c1")
    read_bytes = _rchar() - before
    assert read.heartbeat is None
    assert read.error == f"heartbeat file is {len(data)} bytes (limit {MAX_HEARTBEAT_BYTES})"
    assert read_bytes < 4 * MAX_HEARTBEAT_BYTES, f"read {read_bytes} bytes of a {len(data)} file"


def test_a_file_at_the_limit_is_still_read(spool: HeartbeatSpool) -> None:
    record = valid_record()
    record["detail"] = ""
    record["detail"] = "d" * (MAX_HEARTBEAT_BYTES - len(json.dumps(record)))
    data = json.dumps(record).encode()
    assert len(data) == MAX_HEARTBEAT_BYTES
    put(spool, "c1", data)
    assert spool.read_heartbeat("c1").heartbeat is not None


def test_one_broken_heartbeat_does_not_affect_another(spool: HeartbeatSpool) -> None:
    put(spool, "bad", "{")
    spool.write_heartbeat(heartbeat("good"))
    assert spool.read_heartbeat("bad").error is not None
    assert spool.read_heartbeat("good").heartbeat is not None


# -- pings -------------------------------------------------------------------------------


def test_ping_round_trip(spool: HeartbeatSpool) -> None:
    ts = NOW - timedelta(seconds=3)
    written = spool.write_ping("c1", "nonce-123", ts)
    assert written == Ping(nonce="nonce-123", ts=ts)
    assert spool.read_ping("c1") == written
    on_disk = json.loads(spool.ping_path("c1").read_text())
    assert on_disk == {"nonce": "nonce-123", "ts": "2026-11-26T03:59:57.000Z"}
    assert sorted(os.listdir(spool.pings)) == ["c1.json"]


def test_a_new_ping_replaces_the_old_one(spool: HeartbeatSpool) -> None:
    spool.write_ping("c1", "first", NOW)
    spool.write_ping("c1", "second", NOW)
    ping = spool.read_ping("c1")
    assert ping is not None and ping.nonce == "second"


@pytest.mark.parametrize(
    "content", [None, "", "not json", "[]", '{"nonce": "x"}', '{"nonce": "x", "ts": "never"}']
)
def test_unusable_ping_reads_as_no_ping(spool: HeartbeatSpool, content: str | None) -> None:
    if content is not None:
        spool.ping_path("c1").write_text(content)
    assert spool.read_ping("c1") is None


def test_oversized_ping_reads_as_no_ping(spool: HeartbeatSpool) -> None:
    spool.ping_path("c1").write_text(
        json.dumps({"nonce": "n" * 10_000, "ts": "2026-11-26T04:00:00Z"})
    )
    assert spool.read_ping("c1") is None


def test_json_nested_past_the_decoders_limit_is_a_bad_file_not_a_crash(
    spool: HeartbeatSpool,
) -> None:
    """`[[[[...` within the size bounds used to raise RecursionError out of the reader (and
    `fleet-tui ps` said "unexpected error"): it is a file that is not JSON, like any other."""
    put(spool, "c1", "[" * 60_000)
    read = spool.read_heartbeat("c1")
    assert (read.heartbeat, read.error) == (None, "heartbeat file is not JSON")
    put(spool, "c2", '{"v": 1, "detail": ' + "[" * 20_000 + "]" * 20_000 + "}")
    assert spool.read_heartbeat("c2").error == "heartbeat file is not JSON"
    spool.ping_path("c1").write_text("[" * 4000)
    assert spool.read_ping("c1") is None
