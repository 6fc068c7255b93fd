"""`fleet-tui usage`: token use from Claude Code transcripts and Codex rollouts, written by these
tests in the documented formats (RUNTIME-FORMATS.md) and read through the real verb: de-duplication,
skipped and broken lines, local days, Codex deltas and forks, rate-limit samples, attribution to
a real tmux pane's working directory, and incremental re-runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.cli import main as cli
from fleet_tui.control.panes import new_agent_session
from fleet_tui.core.usage import project_folder
from fleet_tui.errors import NotReadYet
from fleet_tui.sources import usage as usage_src


@pytest.fixture(autouse=True)
def utc_minus_5(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time zone UTC-5 (a POSIX TZ string: no tz database needed), so a test can tell
    local days from UTC days."""
    monkeypatch.setenv("TZ", "XST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class World:
    def __init__(self, env: FleetEnv) -> None:
        self.env = env
        self.claude = env.base / "claude"
        self.codex = env.base / "codex"
        self.claude.mkdir()
        os.environ["CLAUDE_CONFIG_DIR"] = str(self.claude)
        os.environ["CODEX_HOME"] = str(self.codex)

    def transcript(
        self, project: str, name: str, lines: list[str], *, append: bool = False
    ) -> Path:
        path = self.claude / "projects" / project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if append else "w") as fh:
            fh.write("".join(line + "\n" for line in lines))
        return path

    def rollout(
        self, name: str, lines: list[dict[str, Any]], *, folder: str = "sessions/2026/06/13"
    ) -> Path:
        path = self.codex / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
        return path

    def run(self, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        rc = cli.main(["usage", *args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    def report(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict[str, Any], str]:
        rc, out, err = self.run("--json", *args, capsys=capsys)
        assert rc == 0, err
        data: dict[str, Any] = json.loads(out)
        assert data["schema"] == "mosaic.fleet.usage/v1"
        return data, err

    def samples(self) -> list[dict[str, Any]]:
        path = self.env.state_dir / "usage.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def world(fleet_env: FleetEnv, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")
    monkeypatch.setenv("CODEX_HOME", "")
    return World(fleet_env)


def assistant(
    msg: str,
    out: int,
    *,
    req: str | None = "req_1",
    ts: str = "2026-06-13T15:00:00.000Z",
    model: str = "claude-opus-4-7",
    inp: int = 10,
    cw: int = 100,
    cr: int = 1000,
    cwd: str | None = "/w/app",
    session: str = "sess-1",
) -> str:
    line: dict[str, Any] = {
        "type": "assistant",
        "sessionId": session,
        "version": "2.1.120",
        "timestamp": ts,
        "isSidechain": False,
        "uuid": f"u-{msg}-{out}",
        "message": {
            "id": msg,
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "ok"}],
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_creation_input_tokens": cw,
                "cache_read_input_tokens": cr,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": cw},
                "speed": "standard",
            },
        },
    }
    if req is not None:
        line["requestId"] = req
    if cwd is not None:
        line["cwd"] = cwd
    return json.dumps(line)


def day(data: dict[str, Any], date: str) -> dict[str, Any]:
    found = [d for d in data["days"] if d["date"] == date]
    assert found, f"no day {date} in {[d['date'] for d in data['days']]}"
    return found[0]


def tokens(d: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        d["input_tokens"],
        d["output_tokens"],
        d["cache_creation_tokens"],
        d["cache_read_tokens"],
        d["total_tokens"],
    )


# -- Claude Code transcripts ---------------------------------------------------------------------


def test_claude_duplicates_subagents_and_broken_lines(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    good_then_cut = assistant("m9", 7, req="r9")
    main = world.transcript(
        "-w-app",
        "sess-1.jsonl",
        [
            json.dumps(
                {
                    "type": "user",
                    "message": {"role": "user", "content": "hi"},
                    "timestamp": "2026-06-13T14:59:00Z",
                }
            ),
            # one response logged three times, output growing: the largest (50) counts
            assistant("m1", 10, req="r1"),
            assistant("m1", 50, req="r1"),
            # no requestId (a gateway): de-duplicated on the message id alone
            assistant("m2", 5, req=None, inp=1, cw=0, cr=0),
            assistant("m2", 5, req=None, inp=1, cw=0, cr=0),
            # same message id, another request: a different response
            assistant("m1", 3, req="r1b", inp=2, cw=0, cr=0),
            assistant("m3", 999, req="r3", model="<synthetic>"),
            '{"type": "assistant", "message": {"id": "m4", "usage": {"input_tokens": 1,',  # cut
            assistant("m5", 1, req="r5").replace('"output_tokens": 1', '"output_tokens": "many"'),
            "not json at all",
            good_then_cut[: good_then_cut.index('"cache_read_input_tokens"')],
            # 2026-06-14 02:00 UTC is still 2026-06-13 at UTC-5; 06:00 UTC is the 14th
            assistant(
                "m6",
                20,
                req="r6",
                ts="2026-06-14T02:00:00Z",
                model="claude-sonnet-4-5",
                inp=0,
                cw=0,
                cr=0,
            ),
            assistant("m7", 30, req="r7", ts="2026-06-14T06:00:00.5Z", inp=0, cw=0, cr=0),
        ],
    )
    # a sub-agent file repeats m1 with a smaller output, and adds its own response
    world.transcript(
        "-w-app",
        "sess-1/subagents/agent-a1.jsonl",
        [assistant("m1", 30, req="r1"), assistant("m8", 4, req="r8", inp=1, cw=0, cr=0)],
    )
    data, err = world.report(capsys)
    # 13th (local): m1 (10+50+100+1000) + m2 (1+5) + m1/r1b (2+3) + m6 (20) + m8 (1+4)
    assert tokens(day(data, "2026-06-13")) == (14, 82, 100, 1000, 1196)
    assert tokens(day(data, "2026-06-14")) == (0, 30, 0, 0, 30)
    assert [d["date"] for d in data["days"]] == ["2026-06-13", "2026-06-14"]
    d13 = day(data, "2026-06-13")
    assert d13["by_model"]["claude-sonnet-4-5"]["total_tokens"] == 20
    assert d13["by_model"]["claude-opus-4-7"]["total_tokens"] == 1176
    assert "<synthetic>" not in json.dumps(data)
    assert data["totals"]["total_tokens"] == 1226
    # every broken usage line is reported as file:line: why, and nothing else is lost
    assert f"{main}:8: not valid JSON" in err
    assert f"{main}:9: output_tokens: not a number (str)" in err
    assert f"{main}:11: not valid JSON" in err
    assert "Traceback" not in err

    # the human table: one row per day and a total
    rc, out, _ = world.run(capsys=capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["date", "input", "output"]
    assert lines[1].split() == ["2026-06-13", "14", "82", "100", "1,000", "1,196"]
    assert lines[2].split() == ["2026-06-14", "0", "30", "0", "0", "30"]
    assert lines[4].split() == ["total", "14", "112", "100", "1,000", "1,226"]
    assert "Top models: claude-opus-4-7" in out


def test_since_until_and_bad_dates(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.transcript(
        "-w-app",
        "s.jsonl",
        [
            assistant("a", 1, ts="2026-06-10T15:00:00Z", inp=0, cw=0, cr=0),
            assistant("b", 2, ts="2026-06-11T15:00:00Z", inp=0, cw=0, cr=0),
            assistant("c", 4, ts="2026-06-12T15:00:00Z", inp=0, cw=0, cr=0),
        ],
    )
    data, _ = world.report(capsys, "--since", "2026-06-11", "--until", "2026-06-11")
    assert [(d["date"], d["total_tokens"]) for d in data["days"]] == [("2026-06-11", 2)]
    data, _ = world.report(capsys, "--since", "2026-06-11")
    assert data["totals"]["total_tokens"] == 6
    for bad in (
        ["--since", "2026-13-01"],
        ["--until", "yesterday"],
        ["--since", "2026-06-12", "--until", "2026-06-11"],
    ):
        rc, out, err = world.run(*bad, capsys=capsys)
        assert rc == 2, bad
        assert out == ""
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert bad[1] in err


def test_no_data_says_where_it_looked(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = world.run(capsys=capsys)
    assert rc == 0
    assert out.startswith("No token use found")
    assert str(world.claude / "projects") in out
    assert str(world.codex / "sessions") in out
    data, err = world.report(capsys)
    assert data["days"] == []
    assert "No token use found" in err


def test_huge_and_chunk_straddling_lines(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_src, "MAX_LINE_BYTES", 64 * 1024)
    monkeypatch.setattr(usage_src, "CHUNK_BYTES", 4096)
    big = assistant("big", 5, req="rb").replace('"text": "ok"', '"text": "' + "x" * 200_000 + '"')
    lines = [assistant(f"m{i}", 1, req=f"r{i}", inp=0, cw=0, cr=0) for i in range(300)]
    path = world.transcript("-w-app", "s.jsonl", [*lines[:150], big, *lines[150:]])
    data, err = world.report(capsys)
    assert data["totals"]["output_tokens"] == 300  # every line but the huge one, across chunks
    assert f"{path}:151: line longer than 65536 bytes" in err


# -- attribution -----------------------------------------------------------------------------


@pytest.mark.tmux
def test_attribution_to_the_agent_whose_pane_runs_there(
    world: World, fleet_env: FleetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    work = fleet_env.base / "work" / "app"
    (work / "sub").mkdir(parents=True)
    new_agent_session(fleet_env.runner, "mosaic-fleet", "coder0-0", ["sleep", "60"], cwd=str(work))
    world.transcript(
        project_folder(str(work)),
        "s.jsonl",
        [
            assistant("a", 1, cwd=str(work), inp=0, cw=0, cr=0),
            assistant("b", 2, cwd=str(work / "sub"), inp=0, cw=0, cr=0),  # cd'd into a folder
            assistant("c", 4, cwd=None, inp=0, cw=0, cr=0),  # no cwd: the project folder says
        ],
    )
    world.transcript(
        "-elsewhere", "t.jsonl", [assistant("d", 8, cwd="/elsewhere", inp=0, cw=0, cr=0)]
    )
    data, _ = world.report(capsys)
    by_agent = {k: v["total_tokens"] for k, v in day(data, "2026-06-13")["by_agent"].items()}
    assert by_agent == {"coder0-0": 7, "(unattributed)": 8}

    # `--no-agents`: nothing is asked of tmux, everything unattributed
    data, _ = world.report(capsys, "--no-agents")
    assert list(day(data, "2026-06-13")["by_agent"]) == ["(unattributed)"]

    # the dashboard's call: per agent, today (local), incremental
    from fleet_tui.sources.usage import UsageIndex, tokens_today

    now = datetime(2026, 6, 13, 22, 0, tzinfo=UTC)
    with UsageIndex(fleet_env.state_dir, [world.claude], world.codex) as index:
        agents = {str(work): "coder0-0"}
        assert tokens_today(index, agents, now) == {"coder0-0": 7, "(unattributed)": 8}
        world.transcript(
            project_folder(str(work)),
            "s.jsonl",
            [assistant("e", 16, cwd=str(work), inp=0, cw=0, cr=0, ts="2026-06-13T21:00:00Z")],
            append=True,
        )
        assert tokens_today(index, agents, now) == {"coder0-0": 23, "(unattributed)": 8}
        tomorrow = datetime(2026, 6, 14, 12, 0, tzinfo=UTC)
        assert tokens_today(index, agents, tomorrow) == {}

    # the dashboard's provider: agents from the live snapshot, never waits on the files
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.service.collector import FleetCollector
    from fleet_tui.sources.usage import TodayTokens

    snapshot = FleetCollector(FleetConfig.from_flags()).collect()
    provider = TodayTokens(fleet_env.state_dir, [world.claude], world.codex)
    with pytest.raises(NotReadYet):  # starts the first read: nothing known before it ends
        provider(snapshot, now)
    provider.wait(10)
    assert provider(snapshot, now) == {"coder0-0": 23}
    provider.wait(10)
    assert provider(snapshot, datetime(2026, 6, 14, 12, 0, tzinfo=UTC)) == {"coder0-0": 0}
    provider.wait(10)


@pytest.mark.tmux
def test_a_session_a_hook_saw_in_a_pane_is_that_agents_whatever_its_directory(
    world: World, fleet_env: FleetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two agents in one directory cannot be told apart by it (their use is "a+b"); the hook
    in each pane names the session it runs, and the transcripts follow their sessions, also
    one whose lines carry another directory. The dashboard then shows each its own figure."""
    fleet_tui = str(Path(sys.executable).parent / "fleet-tui")
    work = fleet_env.base / "shared"
    work.mkdir()
    for name, sid in (("coder-a", "sess-a"), ("coder-b", "sess-b")):
        payload = json.dumps({"hook_event_name": "SessionStart", "session_id": sid})
        script = f"printf '%s' '{payload}' | '{fleet_tui}' hook claude --no-keepalive; sleep 60"
        new_agent_session(
            fleet_env.runner, "mosaic-fleet", name, ["sh", "-c", script], cwd=str(work)
        )
    sessions = fleet_env.state_dir / "hooks" / "sessions.json"
    wait_until(
        lambda: sessions.exists() and len(json.loads(sessions.read_text())["sessions"]) == 2,
        message="both hooks to note their session",
    )
    folder = project_folder(str(work))
    line = {"inp": 0, "cw": 0, "cr": 0, "cwd": str(work)}
    world.transcript(folder, "a.jsonl", [assistant("a1", 1, session="sess-a", **line)])
    world.transcript(folder, "b.jsonl", [assistant("b1", 2, session="sess-b", **line)])
    elsewhere = {**line, "cwd": "/tmp/elsewhere"}
    world.transcript("-x", "a2.jsonl", [assistant("a2", 4, session="sess-a", **elsewhere)])
    world.transcript("-x", "c.jsonl", [assistant("c1", 8, session="sess-c", **line)])
    data, _ = world.report(capsys)
    by_agent = {k: v["total_tokens"] for k, v in day(data, "2026-06-13")["by_agent"].items()}
    assert by_agent == {"coder-a": 5, "coder-b": 2, "coder-a+coder-b": 8}

    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.service.collector import FleetCollector
    from fleet_tui.sources.usage import TodayTokens

    snapshot = FleetCollector(FleetConfig.from_flags()).collect()
    provider = TodayTokens(fleet_env.state_dir, [world.claude], world.codex)
    now = datetime(2026, 6, 13, 22, 0, tzinfo=UTC)
    # The first call starts the background read; it may or may not be done when the call
    # returns (a race the scheduler decides: the "not read yet" answer has its own test below).
    with contextlib.suppress(NotReadYet):
        provider(snapshot, now)
    provider.wait(10)
    assert provider(snapshot, now) == {"coder-a": 5, "coder-b": 2}
    provider.wait(10)


def test_dashboard_shows_no_token_count_before_the_first_read_is_done(
    world: World, fleet_env: FleetEnv
) -> None:
    """While the cold read runs, an agent's tokens are not known: no entry (the table's "-"),
    never a 0 that reads as "used nothing today"."""
    import sqlite3

    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.service.collector import FleetCollector
    from fleet_tui.sources.usage import TodayTokens, UsageIndex

    work = fleet_env.base / "work"
    work.mkdir()
    new_agent_session(fleet_env.runner, "mosaic-fleet", "coder0-0", ["sleep", "60"], cwd=str(work))
    with UsageIndex(fleet_env.state_dir, [world.claude], world.codex) as index:
        assert index.path is not None
        db = index.path
    world.transcript(
        project_folder(str(work)), "s.jsonl", [assistant("a", 9, cwd=str(work), inp=0, cw=0, cr=0)]
    )
    snapshot = FleetCollector(FleetConfig.from_flags()).collect()
    now = datetime(2026, 6, 13, 22, 0, tzinfo=UTC)
    provider = TodayTokens(fleet_env.state_dir, [world.claude], world.codex)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the first read waits for this writer to finish
    try:
        with pytest.raises(NotReadYet):  # unknown, not {} (and never a 0)
            provider(snapshot, now)
        time.sleep(0.3)
        with pytest.raises(NotReadYet):
            provider(snapshot, now)
        # The collector shows it as "reading", not as fresh data nor as a failure.
        collector = FleetCollector(FleetConfig.from_flags(), usage_provider=provider)
        marks = {s.name: s for s in collector.collect().sources}
        assert marks["usage"].ok and marks["usage"].observed_at is None
        assert marks["usage"].detail == "reading"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    provider.wait(10)
    assert provider(snapshot, now) == {"coder0-0": 9}
    provider.wait(10)


def test_a_first_refresh_waits_for_another_writer_instead_of_failing(
    world: World, fleet_env: FleetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fleet-tui usage` started while another process writes the index (the dashboard's read,
    another `usage`) waits for it, where it failed with "database is locked"."""
    import sqlite3
    import threading

    from fleet_tui.sources.usage import UsageIndex

    with UsageIndex(fleet_env.state_dir, [world.claude], world.codex) as index:
        assert index.path is not None
        db = index.path
    world.transcript("-w-app", "s.jsonl", [assistant("a", 4, inp=0, cw=0, cr=0)])
    blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: blocker.execute("ROLLBACK"))
    release.start()
    try:
        rc, out, err = world.run("--json", "--no-agents", capsys=capsys)
    finally:
        release.join()
        blocker.close()
    assert (rc, err) == (0, "")
    assert json.loads(out)["totals"]["total_tokens"] == 4


def test_a_damaged_index_is_set_aside_and_rebuilt_once(
    world: World, fleet_env: FleetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged index (a crash, a disk error) is said once, moved aside and rebuilt from the
    files: the totals stay right and the next run is incremental again, with no warning."""
    from fleet_tui.sources.usage import index_path

    world.transcript("-w-app", "s.jsonl", [assistant("a", 3, inp=0, cw=0, cr=0)])
    data, err = world.report(capsys, "--no-agents")
    assert data["totals"]["total_tokens"] == 3 and err == ""
    db = index_path(fleet_env.state_dir, [world.claude], world.codex)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"\x00not a database\xff" * 100)
    data, err = world.report(capsys, "--no-agents")
    assert data["totals"]["total_tokens"] == 3
    assert err.count("\n") == 1 and "was damaged" in err and "rebuilt" in err, err
    assert db.with_name(db.name + ".corrupt").exists()
    world.transcript("-w-app", "s.jsonl", [assistant("b", 4, inp=0, cw=0, cr=0)], append=True)
    data, err = world.report(capsys, "--no-agents")
    assert (data["totals"]["total_tokens"], err) == (7, "")


def test_usage_works_without_tmux(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(world.env.base / "empty-bin"))
    world.transcript("-w-app", "s.jsonl", [assistant("a", 1, inp=0, cw=0, cr=0)])
    data, err = world.report(capsys)
    assert day(data, "2026-06-13")["by_agent"] == {
        "(unattributed)": {
            "input_tokens": 0,
            "output_tokens": 1,
            "cache_creation_tokens": 0,
            "cache_read_tokens": 0,
            "total_tokens": 1,
        }
    }
    assert "warning: agents not known, token use left unattributed: tmux is not installed" in err
    assert "Traceback" not in err


# -- incremental -----------------------------------------------------------------------------


def test_incremental_reads_only_what_was_appended(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    path = world.transcript(
        "-w-app",
        "s.jsonl",
        [
            assistant("m1", 10, req="r1", inp=0, cw=0, cr=0),
            assistant("m2", 20, req="r2", inp=0, cw=0, cr=0),
        ],
    )
    data, _ = world.report(capsys)
    assert data["totals"]["total_tokens"] == 30
    # Change an old, already-read line in place (same size, end of file untouched): a re-run
    # that re-read the file would count 90 for m1; an incremental one never looks back.
    text = path.read_text()
    path.write_text(text.replace('"output_tokens": 10,', '"output_tokens": 90,', 1))
    with open(path, "a") as fh:
        fh.write(assistant("m3", 40, req="r3", inp=0, cw=0, cr=0) + "\n")
        # a larger copy of an old response (a resumed session): replaces it, not added
        fh.write(assistant("m2", 25, req="r2", inp=0, cw=0, cr=0) + "\n")
        # a partial last line: not consumed until complete
        partial = assistant("m4", 100, req="r4", inp=0, cw=0, cr=0)
        fh.write(partial[:40])
    data, err = world.report(capsys)
    assert data["totals"]["total_tokens"] == 10 + 25 + 40
    assert err == ""
    with open(path, "a") as fh:
        fh.write(partial[40:] + "\n")
    data, _ = world.report(capsys)
    assert data["totals"]["total_tokens"] == 10 + 25 + 40 + 100
    # nothing appended: same answer
    data, _ = world.report(capsys)
    assert data["totals"]["total_tokens"] == 175

    # truncated and rewritten (smaller): read again from the start; what was counted stays
    # counted once, the new response counts
    path.write_text(assistant("m5", 1000, req="r5", inp=0, cw=0, cr=0) + "\n")
    data, _ = world.report(capsys)
    assert data["totals"]["total_tokens"] == 1175
    # rotated (a new file under the old name, larger than the offset): read again too
    fresh = path.with_suffix(".new")
    fresh.write_text(
        assistant("m5", 1000, req="r5", inp=0, cw=0, cr=0)
        + "\n"
        + assistant("m6", 5000, req="r6", inp=0, cw=0, cr=0)
        + "\n"
    )
    os.rename(fresh, path)
    data, _ = world.report(capsys)
    assert data["totals"]["total_tokens"] == 6175
    # rewritten in place (same inode) and longer than before: the bytes before the remembered
    # offset changed, so it is read again from the start
    inode = path.stat().st_ino
    path.write_text(
        "".join(assistant(f"n{i}", 1, req=f"q{i}", inp=0, cw=0, cr=0) + "\n" for i in range(5))
    )
    assert path.stat().st_ino == inode
    data, err = world.report(capsys)
    assert data["totals"]["total_tokens"] == 6180
    assert err == ""


def test_growing_duplicate_across_runs_and_files(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.transcript("-w-app", "a.jsonl", [assistant("m1", 10, req="r1", inp=0, cw=0, cr=0)])
    data, _ = world.report(capsys)
    assert data["totals"]["output_tokens"] == 10
    # the same response, larger, in another file read by a later run: counted once, largest
    world.transcript(
        "-w-app", "a/subagents/x.jsonl", [assistant("m1", 70, req="r1", inp=0, cw=0, cr=0)]
    )
    data, _ = world.report(capsys)
    assert data["totals"]["output_tokens"] == 70
    # and a smaller copy later changes nothing
    world.transcript("-w-app", "b.jsonl", [assistant("m1", 40, req="r1", inp=0, cw=0, cr=0)])
    data, _ = world.report(capsys)
    assert data["totals"]["output_tokens"] == 70


# -- Codex rollouts --------------------------------------------------------------------------


def _ts(minute: int, second: int = 0) -> str:
    return f"2026-06-13T15:{minute:02d}:{second:02d}.000Z"


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def _count(
    ts: str, info: dict[str, Any] | None, rate_limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "type": "event_msg",
        "payload": {"type": "token_count", "info": info, "rate_limits": rate_limits},
    }


def _usage(inp: int, cached: int, out: int, reasoning: int = 0) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "cached_input_tokens": cached,
        "output_tokens": out,
        "reasoning_output_tokens": reasoning,
        "total_tokens": inp + out,
    }


def _limits(five: float | None, week: float, *, relative: bool = False) -> dict[str, Any]:
    def window(used: float, minutes: int, reset: int) -> dict[str, Any]:
        key = "resets_in_seconds" if relative else "resets_at"
        return {"used_percent": used, "window_minutes": minutes, key: reset}

    limits: dict[str, Any] = {"credits": None, "plan_type": "pro"}
    if five is None:  # an account without the 5-hour window: the weekly one comes first
        limits["primary"] = window(week, 10080, 600 if relative else 1781730000)
    else:
        limits["primary"] = window(five, 300, 120 if relative else 1781290000)
        limits["secondary"] = window(week, 10080, 600 if relative else 1781730000)
    return limits


def test_codex_rollouts_tokens_forks_and_rate_limit_samples(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = [
        {
            "timestamp": _ts(0),
            "type": "session_meta",
            "payload": {"id": "P", "timestamp": _ts(0), "cwd": "/w/cx", "cli_version": "0.58.0"},
        },
        {
            "timestamp": _ts(0, 1),
            "type": "turn_context",
            "payload": {"cwd": "/w/cx", "model": "gpt-5.3-codex"},
        },
        _count(_ts(1), None, _limits(7.0, 77.0)),  # info null: samples only
        _count(
            _ts(1, 30),
            {
                "total_token_usage": _usage(1000, 800, 100),
                "last_token_usage": _usage(1000, 800, 100),
            },
            _limits(7.5, 77.0),
        ),
        # an older build: no last_token_usage, the delta of the totals counts
        _count(
            _ts(2),
            {"total_token_usage": _usage(3000, 2000, 150)},
            _limits(8.0, 77.5, relative=True),
        ),
        _count(_ts(2, 10), {"total_token_usage": _usage(3000, 2000, 150)}),  # all-zero delta
        {
            "timestamp": _ts(3),
            "type": "turn_context",
            "payload": {"cwd": "/w/cx", "model": "gpt-5.5"},
        },
        # a window missing (no 5-hour one here)
        _count(
            _ts(3, 5),
            {"total_token_usage": _usage(3500, 2000, 200), "last_token_usage": _usage(500, 0, 50)},
            _limits(None, 78.0),
        ),
        # only last_token_usage (no totals): replay is told by its timestamp alone
        _count(_ts(3, 30), {"last_token_usage": _usage(100, 0, 10)}),
        '{"timestamp": "2026-06-13T15:04:00Z", "type": "event_msg", "payload": {"type": '
        '"token_count", "info": {"total_tok',
    ]
    path = world.codex / "sessions/2026/06/13/rollout-2026-06-13T15-00-00-P.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in parent))
    data, err = world.report(capsys)
    d = day(data, "2026-06-13")
    # input excludes cached; cached is cache read: 200+800+500+100 in, 800+1200+0+0 cached
    assert tokens(d) == (200 + 800 + 500 + 100, 100 + 50 + 50 + 10, 0, 800 + 1200, 3810)
    assert d["by_model"]["gpt-5.3-codex"]["total_tokens"] == 3150
    assert d["by_model"]["gpt-5.5"]["total_tokens"] == 660
    assert f"{path}:10: not valid JSON" in err

    samples = world.samples()
    got = [(s["window"], s["used_percent"], s["observed_at"]) for s in samples]
    # one per window per minute (the newest of the minute), windows by window_minutes
    assert got == [
        ("5h", 7.5, "2026-06-13T15:01:30.000Z"),
        ("weekly", 77.0, "2026-06-13T15:01:30.000Z"),
        ("5h", 8.0, "2026-06-13T15:02:00.000Z"),
        ("weekly", 77.5, "2026-06-13T15:02:00.000Z"),
        ("weekly", 78.0, "2026-06-13T15:03:05.000Z"),
    ]
    rel = samples[2]
    assert _epoch(rel["resets_at"]) == _epoch(_ts(2)) + 120  # resets_in_seconds + line time
    assert samples[0]["resets_at"] == "2026-06-12T18:46:40.000Z"  # resets_at 1781290000
    for s in samples:
        assert s["account"] == "codex"
        assert s["source"] == "codex-rollout"
        assert s["reset_confidence"] == "provider"
        assert s["window_minutes"] == {"5h": 300, "weekly": 10080}[s["window"]]
        assert s["tenant_id"] and s["host"]

    # a fork: replays the parent's token_count history, first with the original timestamps,
    # then (as builds that re-stamp do) with new ones; then its own turn
    fork = [
        {
            "timestamp": _ts(10),
            "type": "session_meta",
            "payload": {"id": "F", "timestamp": _ts(10), "cwd": "/w/cx", "forked_from_id": "P"},
        },
        *parent[:9],
        _count(
            _ts(10, 1),
            {
                "total_token_usage": _usage(1000, 800, 100),
                "last_token_usage": _usage(1000, 800, 100),
            },
        ),
        _count(
            _ts(10, 2),
            {"total_token_usage": _usage(3500, 2000, 200), "last_token_usage": _usage(500, 0, 50)},
        ),
        {
            "timestamp": _ts(11),
            "type": "turn_context",
            "payload": {"cwd": "/w/cx", "model": "gpt-5.5"},
        },
        _count(_ts(12), {"total_token_usage": _usage(4500, 2500, 260)}, _limits(9.0, 79.0)),
    ]
    world.rollout("rollout-2026-06-13T15-10-00-F.jsonl", fork)
    data, _ = world.report(capsys)
    d = day(data, "2026-06-13")
    # only the fork's own turn is new: delta from the replayed total, 1000 in (500 cached), 60 out
    assert tokens(d) == (1600 + 500, 210 + 60, 0, 2000 + 500, 3810 + 1060)
    samples = world.samples()
    assert [(s["window"], s["used_percent"]) for s in samples[5:]] == [
        ("5h", 9.0),
        ("weekly", 79.0),
    ]

    # archived (moved): not counted again; a re-run appends no sample twice
    archived = world.codex / "archived_sessions" / path.name
    archived.parent.mkdir()
    os.rename(path, archived)
    data, _ = world.report(capsys)
    assert data["totals"]["total_tokens"] == 4870
    assert len(world.samples()) == 7


@pytest.mark.parametrize(
    ("how", "account"),
    [("flag", "openai-pro"), ("budgets", "chatgpt-pro"), ("default", "codex")],
)
def test_codex_samples_account(
    world: World, fleet_env: FleetEnv, capsys: pytest.CaptureFixture[str], how: str, account: str
) -> None:
    world.rollout(
        "rollout-x.jsonl",
        [
            {"timestamp": _ts(0), "type": "session_meta", "payload": {"id": "S"}},
            _count(_ts(1), None, _limits(7.0, 70.0)),
        ],
    )
    budgets = fleet_env.config_home / "mosaic" / "budgets.yaml"
    budgets.parent.mkdir(parents=True)
    if how == "budgets":
        budgets.write_text(
            "version: 1\ntenant_id: acme\naccounts:\n"
            "  - {id: claude-max, provider: anthropic, runtime: claude, regime: subscription}\n"
            "  - {id: chatgpt-pro, provider: openai, runtime: codex, regime: subscription}\n"
        )
    data, _ = world.report(capsys, *(["--account", "openai-pro"] if how == "flag" else []))
    assert data["days"] == []
    assert [(s["account"], s["window"]) for s in world.samples()] == [
        (account, "5h"),
        (account, "weekly"),
    ]


def test_values_out_of_any_range_are_skipped_lines_not_a_crash(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dates that leave the calendar in the local zone, counts too big for the index, NaN (which
    Python's JSON reads) and rate-limit windows no reader accepts: each costs its own line (or
    window) and is named; everything else is counted and recorded."""
    huge = assistant("big", 1, inp=0, cw=0, cr=0).replace(
        '"input_tokens": 0', f'"input_tokens": {10**30}'
    )
    nan = assistant("nan", 1, inp=0, cw=0, cr=0).replace('"input_tokens": 0', '"input_tokens": NaN')
    path = world.transcript(
        "-w-app",
        "s.jsonl",
        [
            assistant("ok", 5, inp=0, cw=0, cr=0),
            assistant("old", 1, inp=0, cw=0, cr=0, ts="0001-01-01T00:00:00Z"),  # UTC-5: year 0
            huge,
            nan,
        ],
    )
    window = {"used_percent": 10.0, "window_minutes": 300, "resets_at": 1781290000}
    world.rollout(
        "rollout-x.jsonl",
        [
            {"timestamp": _ts(0), "type": "session_meta", "payload": {"id": "S"}},
            _count(
                _ts(1),
                None,
                {
                    "primary": window,
                    "secondary": {**window, "window_minutes": 10**30},
                    "third": {**window, "window_minutes": 10080, "used_percent": -3.0},
                    "fourth": {**window, "window_minutes": 60, "used_percent": float("nan")},
                    "fifth": {**window, "window_minutes": 120, "resets_at": 1e20},
                },
            ),
        ],
    )
    rc, out, err = world.run("--json", capsys=capsys)
    assert rc == 0 and "Traceback" not in err and "unexpected error" not in err, err
    data = json.loads(out)
    assert data["totals"]["total_tokens"] == 5
    for line, why in ((2, "timestamp: out of range"), (3, "input_tokens"), (4, "input_tokens")):
        assert f"{path}:{line}: {why}" in err
    samples = [(s["window"], s["used_percent"], s["resets_at"]) for s in world.samples()]
    assert sorted(samples) == [("120m", 10.0, None), ("5h", 10.0, "2026-06-12T18:46:40.000Z")]


def test_usage_as_a_subprocess(world: World, fleet_env: FleetEnv) -> None:
    """The installed entry point: env only, no in-process state."""
    world.transcript("-w-app", "s.jsonl", [assistant("a", 3, inp=0, cw=0, cr=0)])
    res = fleet_env.cli(
        "usage",
        "--json",
        "--no-agents",
        env={"CLAUDE_CONFIG_DIR": str(world.claude), "CODEX_HOME": str(world.codex), "TZ": "UTC"},
    )
    assert res.rc == 0, res.stderr
    assert json.loads(res.stdout)["days"][0]["output_tokens"] == 3


def test_time_zone_change_redoes_the_days(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.transcript(
        "-w-app", "s.jsonl", [assistant("a", 1, ts="2026-06-14T02:00:00Z", inp=0, cw=0, cr=0)]
    )
    world.rollout(
        "rollout-x.jsonl",
        [
            {"timestamp": _ts(0), "type": "session_meta", "payload": {"id": "S"}},
            _count(_ts(1), None, _limits(7.0, 70.0)),
        ],
    )
    data, _ = world.report(capsys)
    assert [d["date"] for d in data["days"]] == ["2026-06-13"]  # 21:00 the day before at UTC-5
    recorded = world.samples()
    assert len(recorded) == 2
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    data, _ = world.report(capsys)
    assert [d["date"] for d in data["days"]] == ["2026-06-14"]
    assert data["totals"]["total_tokens"] == 1
    assert world.samples() == recorded  # the re-read does not record the samples again


def test_concurrent_runs_count_once(world: World, fleet_env: FleetEnv) -> None:
    """The dashboard's poll and a `usage` run share the index: two refreshes at once must not
    count the same lines twice."""
    import subprocess

    lines = [assistant(f"m{i}", 1, req=f"r{i}", inp=0, cw=0, cr=0) for i in range(3000)]
    for n in range(4):
        world.transcript("-w-app", f"s{n}.jsonl", lines[n::4])
    env = {
        **fleet_env.env,
        "CLAUDE_CONFIG_DIR": str(world.claude),
        "CODEX_HOME": str(world.codex),
        "TZ": "UTC",
    }
    argv = [sys.executable, "-m", "fleet_tui", "usage", "--json", "--no-agents"]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert json.loads(out)["totals"]["output_tokens"] == 3000


@pytest.mark.tmux
def test_an_agent_whose_session_ended_keeps_its_day_with_cache_reads_apart(
    world: World, fleet_env: FleetEnv
) -> None:
    """TOKENS counts without cache reads (the detail shows both); an agent whose session ended
    keeps the day's use it made in its directory, in the dashboard, a new dashboard and `ps`;
    a directory a second agent then works in is theirs jointly (no number for either)."""
    from rich.console import Console

    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.core.join import apply_usage
    from fleet_tui.service.collector import FleetCollector
    from fleet_tui.sources.usage import TodayTokens
    from fleet_tui.ui.screens.detail import facts_table

    work, other = fleet_env.base / "work" / "a", fleet_env.base / "work" / "b"
    work.mkdir(parents=True)
    other.mkdir(parents=True)
    fleet_env.write_roster(
        [{"name": "coder0-0", "role": "coder"}, {"name": "coder0-1", "role": "coder"}]
    )
    for name, cwd in (("coder0-0", work), ("coder0-1", other)):
        new_agent_session(fleet_env.runner, "mosaic-fleet", name, ["sleep", "60"], cwd=str(cwd))
    now = datetime.now(UTC)
    ts = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    world.transcript(
        project_folder(str(work)),
        "s.jsonl",
        [
            assistant("a", 20, cwd=str(work), inp=5, cw=100, cr=5000, ts=ts),
            assistant("b", 1, cwd=str(work / "sub"), inp=0, cw=0, cr=700, ts=ts),
        ],
    )

    def one(snapshot: Any, name: str) -> Any:
        return next(a for a in snapshot.agents if a.name == name)

    def answer(provider: TodayTokens, snapshot: Any) -> dict[str, int]:
        with contextlib.suppress(NotReadYet):
            provider(snapshot, now)
        provider.wait(10)
        got = provider(snapshot, now)
        provider.wait(10)
        return got

    collector = FleetCollector(FleetConfig.from_flags())
    snap = collector.collect()
    provider = TodayTokens(fleet_env.state_dir, [world.claude], world.codex)
    got = answer(provider, snap)
    assert got == {"coder0-0": 126, "coder0-1": 0}  # input + output + cache writes
    record = one(apply_usage(snap, got, {}), "coder0-0")
    assert (record.tokens_today, record.cache_read_today) == (126, 5700)
    assert type(record.tokens_today) is int  # the record holds plain numbers (JSON, gateway)
    console = Console(width=200, record=True, color_system=None)
    console.print(facts_table(record, snap))
    text = console.export_text()
    assert "(126) without cache reads" in text and "(5,700)" in text, text

    # The session ends: the row is down and keeps its day.
    fleet_env.tmux("mosaic-fleet", "kill-session", "-t", "=coder0-0")
    snap = collector.collect()
    assert one(snap, "coder0-0").health == "down" and one(snap, "coder0-0").tmux is None
    got = provider(snap, now)
    provider.wait(10)
    assert got == {"coder0-0": 126, "coder0-1": 0} and got["coder0-0"].cache_read == 5700  # type: ignore[attr-defined]
    # A dashboard started later knows it too (the index noted where the agent worked) ...
    assert answer(TodayTokens(fleet_env.state_dir, [world.claude], world.codex), snap) == got
    # ... and so does `ps`.
    env = {"CLAUDE_CONFIG_DIR": str(world.claude), "CODEX_HOME": str(world.codex), "TZ": "XST+5"}
    agents = {a["name"]: a for a in fleet_env.ps_json(env=env)["agents"]}
    assert agents["coder0-0"]["health"] == "down"
    assert (agents["coder0-0"]["tokens_today"], agents["coder0-0"]["cache_read_today"]) == (
        126,
        5700,
    )
    assert agents["coder0-1"]["tokens_today"] == 0
    # ... and `usage` (all four counts there: cache reads included in its total).
    res = fleet_env.cli("usage", "--json", env=env)
    assert res.rc == 0, res
    today = json.loads(res.stdout)["days"][-1]["by_agent"]
    assert today["coder0-0"]["total_tokens"] == 126 + 5700, today
    assert today["coder0-0"]["cache_read_tokens"] == 5700

    # Another agent now works in that directory: whose use it is cannot be told (jointly).
    new_agent_session(fleet_env.runner, "mosaic-fleet", "coder0-0", ["sleep", "60"], cwd=str(other))
    new_agent_session(fleet_env.runner, "mosaic-fleet", "coder0-2", ["sleep", "60"], cwd=str(work))
    snap = collector.collect()
    got = provider(snap, now)
    provider.wait(10)
    got = provider(snap, now)
    assert "coder0-0" not in got and "coder0-2" not in got, got
