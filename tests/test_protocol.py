"""The file contracts: heartbeat protocol v1 (the message hash that `acks` carry, the last-16
ack list) and the usage ledger's lines as the light writers build them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fleet_tui.model.records import UsageSample
from fleet_tui.protocol import ledger
from fleet_tui.protocol.acks import MAX_ACKS, add_ack, message_hash, normalise_message


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_hash_is_sha256_of_the_utf8_text() -> None:
    assert message_hash("run the tests") == sha("run the tests")
    assert message_hash("héllo 中文") == sha("héllo 中文")
    assert message_hash("") == sha("")
    assert len(message_hash("x")) == len("sha256:") + 64


@pytest.mark.parametrize(
    "variant",
    [
        "line one\nline two",
        "line one\r\nline two",
        "line one\rline two",
        "line one\r\nline two\r\n",
        "line one\nline two   ",
        "line one\nline two\n\n\t \n",
        "line one\rline two \r\n",
    ],
)
def test_line_endings_and_trailing_whitespace_do_not_change_the_hash(variant: str) -> None:
    assert message_hash(variant) == sha("line one\nline two")


def test_crlf_is_one_newline_not_two() -> None:
    assert normalise_message("a\r\nb") == "a\nb"
    assert normalise_message("a\r\rb") == "a\n\nb"
    assert message_hash("a\r\nb") != message_hash("a\n\nb")


def test_leading_whitespace_and_inner_text_matter() -> None:
    assert message_hash("  hello") != message_hash("hello")
    assert message_hash("hello world") != message_hash("hello  world")
    assert message_hash("Hello") != message_hash("hello")


def test_add_ack_appends_newest_last_without_touching_the_input() -> None:
    acks = [message_hash("a")]
    out = add_ack(acks, message_hash("b"))
    assert out == [message_hash("a"), message_hash("b")]
    assert acks == [message_hash("a")]


def test_add_ack_keeps_only_the_last_16() -> None:
    acks: list[str] = []
    digests = [message_hash(f"message {i}") for i in range(40)]
    for d in digests:
        acks = add_ack(acks, d)
        assert len(acks) <= MAX_ACKS
    assert MAX_ACKS == 16
    assert acks == digests[-16:]


def test_add_ack_of_a_repeated_message_moves_it_to_the_end_once() -> None:
    a, b, c = (message_hash(x) for x in "abc")
    assert add_ack([a, b, c], a) == [b, c, a]
    full = [message_hash(str(i)) for i in range(16)]
    again = add_ack(full, full[0])
    assert len(again) == 16
    assert again[-1] == full[0]
    assert again.count(full[0]) == 1
    assert again[:-1] == full[1:]


# -- usage.jsonl lines built without pydantic (the statusLine's) ------------------------------

OBSERVED = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)  # whole milliseconds


def sample(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "host": "h1",
        "account": "claude-max-a",
        "window": "5h",
        "window_minutes": 300,
        "used_percent": 37.5,
        "resets_at": datetime.fromtimestamp(1781290000, UTC),
        "reset_confidence": "provider",
        "observed_at": OBSERVED,
        "source": "statusline",
    }
    return {**fields, **over}


@pytest.mark.parametrize("resets_at", [datetime.fromtimestamp(1781290000, UTC), None])
def test_a_usage_sample_is_the_line_the_model_writes(resets_at: datetime | None) -> None:
    built = ledger.usage_sample(**sample(resets_at=resets_at))
    model = UsageSample(**sample(resets_at=resets_at))
    assert ledger.record_line(built) == ledger.record_line(model)
    assert UsageSample.model_validate_json(ledger.record_line(built)) == model


@pytest.mark.parametrize(
    "over",
    [
        {"tenant_id": "a b"},
        {"tenant_id": ""},
        {"host": "-h"},
        {"host": "h1\n"},
        {"account": "acct\u200b"},
        {"account": " acct"},
        {"account": ""},
        {"window": "5h\x1b[m"},
        {"window_minutes": 0},
        {"used_percent": float("nan")},
        {"used_percent": float("inf")},
        {"observed_at": datetime(2026, 5, 1, 12, 0)},
        {"resets_at": datetime(2026, 5, 1, 12, 0)},
        {"source": "s" * 256},
    ],
)
def test_a_usage_sample_the_model_refuses_is_refused(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        UsageSample(**sample(**over))
    with pytest.raises(ValueError, match="usage sample refused"):
        ledger.usage_sample(**sample(**over))


def test_append_records_takes_dicts_and_models_alike(tmp_path: Path) -> None:
    path = tmp_path / "state" / "usage.jsonl"
    model = UsageSample(**sample())
    assert ledger.append_records(path, [ledger.usage_sample(**sample()), model]) == 2
    assert ledger.append_records(path, []) == 0
    first, second = path.read_bytes().splitlines()
    assert first == second == model.model_dump_json().encode()
    assert json.loads(first)["observed_at"] == "2026-05-01T12:00:00.123Z"


# -- heartbeat records and files as the light writers make them -------------------------------


def test_a_heartbeat_record_is_the_line_the_model_writes() -> None:
    from fleet_tui.model.records import AgentState, Heartbeat
    from fleet_tui.protocol.files import json_bytes
    from fleet_tui.protocol.heartbeat import STATES, heartbeat_record

    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "host": "h1",
        "agent": "coder0-0",
        "seq": 17,
        "ts": OBSERVED,
        "interval_s": 10.0,
        "state": AgentState.BUSY,
        "detail": "running tests é",
        "runtime": "codex",
        "model": "gpt-5.5",
        "pid": 12345,
        "echo": "n1",
        "acks": [message_hash("a")],
        "usage": {"input_tokens": 0, "output_tokens": 0},
        "via": "hook:codex",
    }
    record = heartbeat_record(**fields)
    assert json_bytes(record) == json_bytes(Heartbeat(v=1, **fields))
    assert json_bytes(heartbeat_record(**{**fields, "via": None})) == json_bytes(
        Heartbeat(v=1, **{k: v for k, v in fields.items() if k != "via"})
    )
    assert STATES == tuple(s.value for s in AgentState)


def test_the_writers_look_at_a_heartbeat_and_a_ping(tmp_path: Path) -> None:
    from fleet_tui.protocol import heartbeat as hbp

    for folder in (hbp.heartbeats_dir(tmp_path), hbp.pings_dir(tmp_path)):
        folder.mkdir()
    assert hbp.read_heartbeat(tmp_path, "a1") is None
    assert hbp.load_heartbeat(tmp_path, "a1") == (None, None, None)  # no file: no error
    record = hbp.heartbeat_record(
        tenant_id="t", host="h", agent="a1", seq=0, ts=OBSERVED, interval_s=10, state="idle"
    )
    path = hbp.write_heartbeat(tmp_path, "a1", record)
    assert path == tmp_path / "heartbeats" / "a1.json"
    assert hbp.read_heartbeat(tmp_path, "a1") == record
    assert hbp.read_heartbeat(tmp_path, "a2") is None
    (tmp_path / "heartbeats" / "a2.json").write_text(json.dumps({**record, "agent": "a1"}))
    assert hbp.read_heartbeat(tmp_path, "a2") is None  # names another agent
    assert hbp.version_problem({"v": 2}) == "heartbeat version 2 is not 1"
    assert hbp.version_problem(record) is None
    assert hbp.ping_nonce(tmp_path, "a1") is None
    hbp.write_ping(tmp_path, "a1", {"nonce": "n1", "ts": "2026-05-01T12:00:00.000Z"})
    assert hbp.ping_nonce(tmp_path, "a1") == "n1"
    hbp.ping_path(tmp_path, "a1").write_bytes(b"{" + b" " * hbp.MAX_PING_BYTES + b"}")
    assert hbp.ping_nonce(tmp_path, "a1") is None  # too large
    with hbp.write_lock(tmp_path, "a1", 0.1) as locked:
        assert locked and hbp.write_lock_path(tmp_path, "a1").exists()
        with hbp.write_lock(tmp_path, "a1", 0.05) as again:
            assert not again  # held: the second writer goes on without it after the wait


def test_atomic_write_replaces_whole_with_the_mode_set_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    from fleet_tui.protocol.files import atomic_write

    target = tmp_path / "f.json"
    atomic_write(target, "é", 0o640)
    assert target.read_text() == "é" and target.stat().st_mode & 0o777 == 0o640
    atomic_write(target, b"{}")
    assert target.read_bytes() == b"{}" and target.stat().st_mode & 0o777 == 0o600
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        atomic_write(tmp_path / "d", b"x")  # a rename onto a directory fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.json"]
