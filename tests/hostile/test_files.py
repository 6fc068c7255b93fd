"""Hostile files fleet-tui reads, through the real CLI in a subprocess under a timeout.

- a FIFO, a link to a FIFO or `/dev/zero` as a heartbeat, a ping, the roster, the budgets file,
  a ledger or a transcript: nothing hangs; the one file is named with a one-line reason;
- a lone surrogate in a heartbeat: `ps --json` still prints valid UTF-8 for the whole fleet;
- YAML alias bombs in the roster or budgets: refused in one line, fast;
- concurrent `heartbeat` writers: no `seq` increment lost;
- a usage window name carrying escapes: refused with its line, never a second 'weekly' row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FleetEnv

KINDS = ("fifo", "link-to-fifo", "dev-zero")
TIMEOUT = 20.0  # a hang fails the test (subprocess.TimeoutExpired); quiet runs take ~0.5 s


def make_special(path: Path, kind: str) -> None:
    """Put a FIFO, a symlink to a FIFO or a symlink to /dev/zero at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-to-fifo":
        target = path.parent / f".{path.name}.fifo"
        os.mkfifo(target)
        path.symlink_to(target)
    else:
        path.symlink_to("/dev/zero")


def _agent(doc: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(a for a in doc["agents"] if a["name"] == name)


def _write_hb(env: FleetEnv, name: str, **over: object) -> Path:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    hb = {
        "v": 1,
        "tenant_id": "acme",
        "host": "h1",
        "agent": name,
        "seq": 1,
        "ts": now,
        "interval_s": 10.0,
        "state": "busy",
        "detail": "ok",
        **over,
    }
    path = env.heartbeat_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hb))  # ensure_ascii: a lone surrogate goes as "\ud800"
    return path


# -- item 6: special files ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_heartbeat_file_degrades_its_agent_and_nothing_hangs(
    fleet_env: FleetEnv, kind: str
) -> None:
    fleet_env.write_roster(
        [{"name": "good", "role": "orchestrator"}, {"name": "bad", "role": "coder"}]
    )
    _write_hb(fleet_env, "good")
    make_special(fleet_env.heartbeat_path("bad"), kind)
    res = fleet_env.cli("ps", "--json", timeout=TIMEOUT)
    assert res.rc == 0, res
    doc = json.loads(res.stdout)
    assert _agent(doc, "good")["heartbeat"]["detail"] == "ok"
    warned = [w for w in doc["warnings"] if "bad.json" in w]
    assert warned and "not a regular file" in warned[0], doc["warnings"]
    human = fleet_env.cli("ps", timeout=TIMEOUT)
    assert human.rc == 0 and "good" in human.stdout, human


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_ping_file_is_ignored_and_nothing_hangs(fleet_env: FleetEnv, kind: str) -> None:
    fleet_env.write_roster([{"name": "good", "role": "orchestrator"}])
    _write_hb(fleet_env, "good")
    make_special(fleet_env.state_dir / "pings" / "good.json", kind)
    res = fleet_env.cli("ps", "--json", timeout=TIMEOUT)
    assert res.rc == 0, res
    assert _agent(json.loads(res.stdout), "good")["heartbeat"]["detail"] == "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_roster_is_one_line_exit_2(fleet_env: FleetEnv, kind: str) -> None:
    make_special(fleet_env.roster_path, kind)
    res = fleet_env.cli("ps", timeout=TIMEOUT)
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "not a regular file" in res.stderr, res.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_budgets_file_is_one_line_exit_2(fleet_env: FleetEnv, kind: str) -> None:
    path = fleet_env.base / "budgets.yaml"
    make_special(path, kind)
    res = fleet_env.cli("budget", "--budgets", str(path), timeout=TIMEOUT)
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "not a regular file" in res.stderr, res.stderr


BUDGETS = """\
version: 1
tenant_id: acme
accounts:
  - id: claude-max-a
    provider: anthropic
    runtime: claude
    regime: subscription
    windows:
      - {name: 5h, minutes: 300}
      - {name: weekly, minutes: 10080}
"""


def _usage_line(window: str, used: float, n: int) -> str:
    now = datetime.now(UTC) - timedelta(minutes=10 - n)
    return json.dumps(
        {
            "tenant_id": "acme",
            "host": "h1",
            "account": "claude-max-a",
            "window": window,
            "window_minutes": 10080 if "weekly" in window else 300,
            "used_percent": used,
            "observed_at": now.isoformat().replace("+00:00", "Z"),
            "source": "test",
        }
    )


@pytest.mark.parametrize("ledger", ["usage.jsonl", "spend.jsonl"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_special_ledger_is_a_warning_and_budget_still_answers(
    fleet_env: FleetEnv, kind: str, ledger: str
) -> None:
    bpath = fleet_env.base / "budgets.yaml"
    bpath.write_text(BUDGETS)
    make_special(fleet_env.state_dir / ledger, kind)
    res = fleet_env.cli("budget", "--json", "--budgets", str(bpath), timeout=TIMEOUT)
    assert res.rc == 0, res
    assert f"{ledger}: not a regular file" in res.stdout + res.stderr, res


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_transcript_is_skipped_and_usage_answers(fleet_env: FleetEnv, kind: str) -> None:
    project = fleet_env.home / ".claude" / "projects" / "p"
    make_special(project / "s1.jsonl", kind)
    make_special(fleet_env.home / ".codex" / "sessions" / "rollout-1.jsonl", kind)
    res = fleet_env.cli("usage", "--json", "--no-agents", timeout=TIMEOUT)
    assert res.rc == 0, res
    json.loads(res.stdout)


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_sessions_note_does_not_hang_usage(fleet_env: FleetEnv, kind: str) -> None:
    make_special(fleet_env.state_dir / "hooks" / "sessions.json", kind)
    res = fleet_env.cli("usage", "--json", timeout=TIMEOUT)  # agents: the hooks' note is read
    assert res.rc == 0, res


# -- item 7: lone surrogates ----------------------------------------------------------------


def test_a_lone_surrogate_in_one_heartbeat_leaves_ps_json_valid(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(
        [{"name": "good", "role": "orchestrator"}, {"name": "odd", "role": "coder"}]
    )
    _write_hb(fleet_env, "good")
    _write_hb(fleet_env, "odd", detail="x\ud800y", model="m\udfff")
    proc = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "ps", "--json"],
        env=fleet_env.env,
        capture_output=True,
        timeout=TIMEOUT,
        cwd=str(fleet_env.base),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.decode("utf-8"))  # strict UTF-8
    assert _agent(doc, "odd")["heartbeat"]["detail"] == "x\ufffdy"
    assert _agent(doc, "good")["heartbeat"]["detail"] == "ok"


def test_the_spool_hands_the_model_valid_text(fleet_env: FleetEnv) -> None:
    """What `publish` and the dashboard get from the spool is valid Unicode: it serialises."""
    from fleet_tui.sources.spool import HeartbeatSpool

    _write_hb(fleet_env, "odd", detail="x\ud800y", acks=["\udc00"])
    ping = fleet_env.state_dir / "pings" / "odd.json"
    ping.parent.mkdir(parents=True, exist_ok=True)
    ping.write_text(json.dumps({"nonce": "n\ud800", "ts": "2026-12-04T00:00:00Z"}))
    spool = HeartbeatSpool(fleet_env.state_dir)
    hb = spool.read_heartbeat("odd").heartbeat
    assert hb is not None and hb.detail == "x\ufffdy" and hb.acks == ["\ufffd"]
    hb.model_dump_json().encode("utf-8")
    got = spool.read_ping("odd")
    assert got is not None and got.nonce == "n\ufffd"


# -- item 8: YAML alias bombs ---------------------------------------------------------------


def _bomb(levels: int = 9, width: int = 9) -> str:
    rows = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        rows.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(rows) + "\n"


def _many_aliases(n: int = 200_000) -> str:
    return 'x: &x "lol"\ny: [' + ", ".join(["*x"] * n) + "]\n"


@pytest.mark.parametrize("shape", ["laughs", "many"])
def test_an_alias_bomb_roster_is_refused_fast(fleet_env: FleetEnv, shape: str) -> None:
    body = _bomb() if shape == "laughs" else _many_aliases()
    fleet_env.write_roster(text="version: 1\ntenant_id: acme\nagents: []\n" + body)
    res = fleet_env.cli("ps", timeout=TIMEOUT)
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "alias" in res.stderr, res.stderr


@pytest.mark.parametrize("shape", ["laughs", "many"])
def test_an_alias_bomb_budgets_is_refused_fast(fleet_env: FleetEnv, shape: str) -> None:
    body = _bomb() if shape == "laughs" else _many_aliases()
    bpath = fleet_env.base / "budgets.yaml"
    bpath.write_text(BUDGETS + body)
    res = fleet_env.cli("budget", "--budgets", str(bpath), timeout=TIMEOUT)
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "alias" in res.stderr, res.stderr


def test_a_recursive_alias_is_refused(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(text="version: 1\ntenant_id: acme\nagents: &l [*l]\n")
    res = fleet_env.cli("ps", timeout=TIMEOUT)
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "alias" in res.stderr, res.stderr


def test_the_hooks_quick_yaml_look_is_bounded_too(fleet_env: FleetEnv) -> None:
    from fleet_tui.protocol.yamldoc import safe_load_file

    path = fleet_env.base / "r.yaml"
    path.write_text(_bomb())
    [got] = _finishes(lambda: safe_load_file(path, 1 << 20), timeout=TIMEOUT)
    assert isinstance(got, ValueError) and "alias" in str(got), got


def test_a_few_aliases_still_work(fleet_env: FleetEnv) -> None:
    fleet_env.write_roster(
        text="version: 1\ntenant_id: acme\nx: &d {runtime: stub}\n"
        "agents:\n  - {name: a, role: orchestrator, <<: *d}\n  - {name: b, <<: *d}\n"
    )
    res = fleet_env.cli("ps", "--json", timeout=TIMEOUT)
    # the roster schema refuses the unknown top-level key 'x', in one line: not an alias error
    assert "alias" not in res.stderr, res


# -- item 13: concurrent heartbeat writers, window names ------------------------------------


def test_concurrent_heartbeat_writers_lose_no_seq(fleet_env: FleetEnv) -> None:
    first = fleet_env.cli("heartbeat", "a1", "--state", "busy", timeout=TIMEOUT)
    assert first.rc == 0, first
    n = 16
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fleet_tui", "heartbeat", "a1", "--state", "busy"],
            env=fleet_env.env,
            cwd=str(fleet_env.base),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    hb = fleet_env.heartbeat("a1")
    assert hb is not None and hb["seq"] == n, hb


def test_the_locked_update_loses_no_seq(fleet_env: FleetEnv) -> None:
    """The spool's own read-modify-write (`HeartbeatSpool.update_heartbeat`), from concurrent
    processes: every increment lands."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fleet_tui.sources.spool import HeartbeatSpool\n"
        "spool = HeartbeatSpool(Path(sys.argv[1]))\n"
        "def bump(prev, ping):\n"
        "    return prev.model_copy(update={'seq': prev.seq + 1})\n"
        "for _ in range(20):\n"
        "    spool.update_heartbeat('a1', bump)\n"
    )
    _write_hb(fleet_env, "a1", seq=0)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(fleet_env.state_dir)], env=fleet_env.env)
        for _ in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    hb = fleet_env.heartbeat("a1")
    assert hb is not None and hb["seq"] == 80, hb


@pytest.mark.parametrize(
    "dirty",
    ["weekly\x1b[0m", "week\u200bly", "weekly\u202e", "weekly\x00", "weekly\ud800", "\x07weekly"],
)
def test_a_window_name_with_escapes_is_refused_with_its_line(
    fleet_env: FleetEnv, dirty: str
) -> None:
    bpath = fleet_env.base / "budgets.yaml"
    bpath.write_text(BUDGETS)
    ledger = fleet_env.state_dir / "usage.jsonl"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_text(_usage_line("weekly", 10.0, 1) + "\n" + _usage_line(dirty, 50.0, 2) + "\n")
    res = fleet_env.cli("budget", "--json", "--budgets", str(bpath), timeout=TIMEOUT)
    assert res.rc == 0, res
    doc = json.loads(res.stdout)
    text = json.dumps(doc)
    assert "usage.jsonl:2: window:" in text, text
    windows = [w["name"] for a in doc["accounts"] for w in a.get("windows") or []]
    assert windows.count("weekly") == 1 and len(windows) == 2, windows


# -- writers that append: a FIFO with no reader must not block them ---------------------------


def _finishes(fn: Callable[[], object], timeout: float = 10.0) -> list[object]:
    """Run `fn` in a daemon thread; fail (instead of hanging the suite) when it blocks."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} blocked for {timeout:g} s"
    return out


@pytest.mark.parametrize("kind", ("fifo", "link-to-fifo"))
def test_a_fifo_as_the_hooks_log_never_blocks_a_hook(fleet_env: FleetEnv, kind: str) -> None:
    from fleet_tui.adapters.common import log_problem

    make_special(fleet_env.state_dir / "hooks" / "hooks.log", kind)
    _finishes(lambda: log_problem(fleet_env.state_dir, "a problem"))


@pytest.mark.parametrize("kind", ("fifo", "link-to-fifo", "dev-zero"))
def test_a_special_ledger_refuses_an_append_at_once(fleet_env: FleetEnv, kind: str) -> None:
    from fleet_tui.model.records import UsageSample
    from fleet_tui.protocol.files import NotRegularFile
    from fleet_tui.protocol.ledger import append_records, usage_path

    path = usage_path(fleet_env.state_dir)
    make_special(path, kind)
    sample = UsageSample.model_validate(json.loads(_usage_line("weekly", 1.0, 1)))
    [got] = _finishes(lambda: append_records(path, [sample]))
    assert isinstance(got, NotRegularFile), got


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_runtime_settings_file_is_one_line_exit_2(fleet_env: FleetEnv, kind: str) -> None:
    make_special(fleet_env.home / ".claude" / "settings.json", kind)
    res = fleet_env.cli("install-hooks", "--runtime", "claude", timeout=TIMEOUT)
    assert res.rc == 2, res
    assert res.stderr.count("\n") == 1 and "not a regular file" in res.stderr, res.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_a_special_ledger_checkpoint_is_ignored_and_budget_answers(
    fleet_env: FleetEnv, kind: str
) -> None:
    """The ledgers' checkpoints are caches in the state dir: a FIFO or /dev/zero there is
    ignored (the ledger is read again), never waited on."""
    bpath = fleet_env.base / "budgets.yaml"
    bpath.write_text(BUDGETS)
    fleet_env.state_dir.mkdir(parents=True, exist_ok=True)
    (fleet_env.state_dir / "usage.jsonl").write_text(
        "".join(_usage_line("weekly", 10.0 + n, n) + "\n" for n in range(3))
    )
    for name in ("usage", "spend"):
        make_special(fleet_env.state_dir / f"{name}.jsonl.checkpoint", kind)
    res = fleet_env.cli("budget", "--json", "--budgets", str(bpath), timeout=TIMEOUT)
    assert res.rc == 0, res
    weekly = [
        w for a in json.loads(res.stdout)["accounts"] for w in a["windows"] if w["name"] == "weekly"
    ]
    assert weekly and weekly[0]["used_percent"] == 12.0
