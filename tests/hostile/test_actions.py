"""Hostile inputs to the dashboard's pane actions (`fleet_tui.control.actions`), on REAL tmux.

- a row whose tmux coordinates point at the operator's own shell (a remote row from the gateway,
  a non-agent session, a spoofed socket/pane) never gets a keystroke or a pipe there;
- an agent name built to climb out of the state dir never becomes a file path;
- an audit log that cannot be written (read-only state dir, a directory, a FIFO, /dev/full)
  refuses the action: nothing is typed, nothing is piped, nothing hangs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import FleetEnv, unavailable, wait_until

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.control.actions import LiveActions, log_path
from fleet_tui.control.audit import record_action
from fleet_tui.control.panes import ControlError
from fleet_tui.errors import AuditUnavailable, Refused
from fleet_tui.model.records import AgentRecord
from fleet_tui.service.collector import FleetCollector

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"


@pytest.fixture
def fleet(fleet_env: FleetEnv) -> FleetEnv:
    """An agent `orchestrator` (runs `cat`: what is typed shows in its pane) and the
    operator's own shell pane `shell` on the DEFAULT socket (not an agent)."""
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    fleet_env.start(SOCK, "orchestrator", ["cat"])
    fleet_env.start("default", "shell", ["cat"], agent=False)
    return fleet_env


def _records(env: FleetEnv) -> dict[str, AgentRecord]:
    snap = FleetCollector(FleetConfig.from_flags()).collect()
    return {a.name: a for a in snap.agents}


def _pane_id(env: FleetEnv, socket: str, name: str) -> str:
    return env.tmux(socket, "display-message", "-p", "-t", f"={name}:", "#{pane_id}").stdout.strip()


def _screen(env: FleetEnv, socket: str, name: str) -> str:
    return env.tmux(socket, "capture-pane", "-p", "-t", f"={name}:").stdout


def _pipe(env: FleetEnv, socket: str, name: str) -> str:
    out = env.tmux(socket, "display-message", "-p", "-t", f"={name}:", "#{pane_pipe}")
    return out.stdout.strip()


def _actions(env: FleetEnv) -> LiveActions:
    return LiveActions(env.runner, env.state_dir, FleetConfig.from_flags())


def _aimed_at_shell(env: FleetEnv, record: AgentRecord, **update: object) -> AgentRecord:
    """`record` with the shell pane's coordinates (what a forged gateway row would carry)."""
    assert record.tmux is not None
    tmux = record.tmux.model_copy(update={"pane_id": _pane_id(env, "default", "shell")})
    return record.model_copy(update={"socket": "default", "tmux": tmux, **update})


# -- item 1: pane actions never use a record's coordinates ---------------------------------------


def test_a_remote_row_aimed_at_the_operators_shell_is_refused(fleet: FleetEnv) -> None:
    actions = _actions(fleet)
    forged = _aimed_at_shell(fleet, _records(fleet)["orchestrator"], remote=True)
    with pytest.raises(Refused, match="remote"):
        actions.send(forged, "echo SPOOFED")
    with pytest.raises(Refused, match="remote"):
        actions.open_log(forged)
    for interactive in (False, True):
        with pytest.raises(Refused, match="remote"):
            actions.handover(forged, interactive=interactive)
    assert "SPOOFED" not in _screen(fleet, "default", "shell")
    assert "SPOOFED" not in _screen(fleet, SOCK, "orchestrator")  # not even the same-named agent
    assert _pipe(fleet, "default", "shell") == "0"
    assert _pipe(fleet, SOCK, "orchestrator") == "0"


def test_a_local_row_with_spoofed_coordinates_reaches_the_agent_not_the_shell(
    fleet: FleetEnv,
) -> None:
    actions = _actions(fleet)
    spoofed = _aimed_at_shell(fleet, _records(fleet)["orchestrator"])
    actions.send(spoofed, "hello agent")
    wait_until(
        lambda: "hello agent" in _screen(fleet, SOCK, "orchestrator"), message="text in the agent"
    )
    path, _state = actions.open_log(spoofed)
    assert path is not None and path.name == f"{SOCK}.orchestrator.log"
    assert _pipe(fleet, SOCK, "orchestrator") == "1"
    assert _pipe(fleet, "default", "shell") == "0"
    assert "hello agent" not in _screen(fleet, "default", "shell")


def test_a_session_that_is_no_agent_gets_no_keys_and_no_pipe(fleet: FleetEnv) -> None:
    actions = _actions(fleet)
    shell = _records(fleet)["shell"]  # the collector shows it (not an agent)
    assert not shell.is_agent
    with pytest.raises(ControlError, match="not an agent"):
        actions.send(shell, "echo SPOOFED")
    with pytest.raises(ControlError, match="not an agent"):
        actions.open_log(shell)
    assert "SPOOFED" not in _screen(fleet, "default", "shell")
    assert _pipe(fleet, "default", "shell") == "0"


def test_a_roster_agent_on_its_own_plain_socket_is_reached(fleet_env: FleetEnv) -> None:
    """A roster without `socket_name` keeps its agents on tmux's default socket, in plain
    sessions (no marker): the roster makes them agents there, and only there."""
    fleet_env.write_roster([{"name": "worker", "role": "coder"}], socket_name=None)
    fleet_env.start("default", "worker", ["cat"], agent=False)
    fleet_env.start("elsewhere", "worker", ["cat"], agent=False)
    records = [
        a for a in FleetCollector(FleetConfig.from_flags()).collect().agents if a.name == "worker"
    ]
    on_default = next(a for a in records if a.socket == "default")
    _actions(fleet_env).send(on_default, "reached")
    wait_until(lambda: "reached" in _screen(fleet_env, "default", "worker"), message="the text")
    # the same name in a plain session on another socket is no agent: that row is refused
    on_other = next(a for a in records if a.socket == "elsewhere")
    with pytest.raises(ControlError, match="is not an agent"):
        _actions(fleet_env).send(on_other, "not reached")
    assert "reached" not in _screen(fleet_env, "elsewhere", "worker")


# -- item 2: no path traversal through a name ----------------------------------------------------


def test_an_agent_name_never_climbs_out_of_the_state_dir(fleet: FleetEnv) -> None:
    escaped = fleet.base / "elsewhere"
    name = "x/../../../../../../../../" + str(escaped).lstrip("/") + "/escaped"
    forged = _records(fleet)["orchestrator"].model_copy(update={"name": name})
    with pytest.raises(Refused, match="not a valid agent name"):
        _actions(fleet).open_log(forged)
    with pytest.raises(Refused, match="not a valid agent name"):
        log_path(fleet.state_dir, SOCK, name)
    assert not escaped.exists()
    assert not list(fleet.base.rglob("*escaped*"))
    # a socket name is mapped to a plain file name, inside logs/
    odd = log_path(fleet.state_dir, "../../up", "orchestrator")
    assert odd.parent == fleet.state_dir / "logs"
    assert ".." not in odd.name and "/" not in odd.name


def test_a_link_in_the_logs_folder_never_sends_output_elsewhere(fleet: FleetEnv) -> None:
    actions = _actions(fleet)
    record = _records(fleet)["orchestrator"]
    logs = fleet.state_dir / "logs"
    logs.mkdir(parents=True)
    link = logs / f"{SOCK}.orchestrator.log"
    # to a file inside the state dir (the audit log): never emptied or written through
    audit = fleet.state_dir / "audit.jsonl"
    audit.write_text('{"action": "earlier"}\n')
    link.symlink_to(audit)
    with pytest.raises(ControlError, match="stream log"):
        actions.open_log(record)
    assert audit.read_text().startswith('{"action": "earlier"}\n')
    assert _pipe(fleet, SOCK, "orchestrator") == "0"
    # to a file outside the state dir
    precious = fleet.base / "precious.txt"
    precious.write_text("keep me\n")
    link.unlink()
    link.symlink_to(precious)
    with pytest.raises(Refused, match="leaves the state dir"):
        actions.open_log(record)
    assert precious.read_text() == "keep me\n"
    # the whole logs folder a link out of the state dir
    link.unlink()
    logs.rmdir()
    outside = fleet.base / "outside"
    outside.mkdir()
    logs.symlink_to(outside)
    with pytest.raises(Refused, match="leaves the state dir"):
        actions.open_log(record)
    assert list(outside.iterdir()) == []
    assert _pipe(fleet, SOCK, "orchestrator") == "0"


# -- item 4: the audit log fails closed ----------------------------------------------------------


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """A folder nobody may write into: mode 0555, and (root ignores modes) immutable."""
    folder.chmod(0o555)
    immutable = False
    if os.geteuid() == 0:
        res = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if res.returncode != 0:
            folder.chmod(0o755)
            unavailable("cannot make a folder read-only for root here (no chattr +i)")
        immutable = True
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        folder.chmod(0o755)


def _broken_logs() -> list[tuple[str, Callable[[Path], contextlib.AbstractContextManager[None]]]]:
    def as_dir(audit: Path) -> contextlib.AbstractContextManager[None]:
        audit.mkdir()
        return contextlib.nullcontext()

    def as_fifo(audit: Path) -> contextlib.AbstractContextManager[None]:
        os.mkfifo(audit)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def as_fifo_with_reader(audit: Path) -> Iterator[None]:
        os.mkfifo(audit)
        fd = os.open(audit, os.O_RDONLY | os.O_NONBLOCK)
        try:
            yield
        finally:
            os.close(fd)

    def as_dev_full(audit: Path) -> contextlib.AbstractContextManager[None]:
        audit.symlink_to("/dev/full")
        return contextlib.nullcontext()

    def read_only_dir(audit: Path) -> contextlib.AbstractContextManager[None]:
        return _read_only(audit.parent)

    return [
        ("directory", as_dir),
        ("fifo", as_fifo),
        ("fifo-with-reader", as_fifo_with_reader),
        ("dev-full", as_dev_full),
        ("read-only-dir", read_only_dir),
    ]


def _bounded(fn: Callable[[], object], timeout: float = 20.0) -> BaseException | None:
    """Run `fn` in a thread; fail if it does not return within `timeout` (a hang)."""
    box: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            box[0] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the action hung on the audit log"
    return box[0]


@pytest.mark.parametrize("kind", [k for k, _ in _broken_logs()])
def test_an_unwritable_audit_log_refuses_the_action(fleet: FleetEnv, kind: str) -> None:
    make = dict(_broken_logs())[kind]
    actions = _actions(fleet)
    record = _records(fleet)["orchestrator"]
    fleet.state_dir.mkdir(parents=True, exist_ok=True)
    audit = fleet.state_dir / "audit.jsonl"
    with make(audit):
        err = _bounded(lambda: actions.send(record, "UNAUDITED"))
        assert isinstance(err, AuditUnavailable), err
        assert err.exit_code == 5
        assert str(err).startswith(f"audit log {audit}:") and "refused" in str(err)
        assert "\n" not in str(err)
        err = _bounded(lambda: actions.open_log(record))
        assert isinstance(err, AuditUnavailable), err
        err = _bounded(lambda: actions.handover(record, interactive=False))
        assert isinstance(err, AuditUnavailable), err
    assert "UNAUDITED" not in _screen(fleet, SOCK, "orchestrator")
    assert _pipe(fleet, SOCK, "orchestrator") == "0"


def test_record_action_on_a_fifo_without_reader_fails_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "audit.jsonl")
    from datetime import UTC, datetime

    err = _bounded(
        lambda: record_action(
            tmp_path,
            now=datetime.now(UTC),
            tenant_id="t",
            host="h",
            action="send",
            agent="a",
            outcome="started",
        )
    )
    assert isinstance(err, AuditUnavailable)


# -- issue 12 item 11: a popup that cannot be shown says so ---------------------------------------


def _inside_tmux_without_client(env: FleetEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard runs in a pane of an operator server that has NO client attached."""
    env.start("outer", "dash", ["cat"], agent=False)
    sock = env.runner.socket_path("outer")
    monkeypatch.setenv("TMUX", f"{sock},{env.server_pid('outer')},0")
    monkeypatch.setenv("TMUX_PANE", _pane_id(env, "outer", "dash"))


def test_watch_in_a_popup_without_a_client_is_refused_with_the_reason(
    fleet: FleetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inside_tmux_without_client(fleet, monkeypatch)
    actions = _actions(fleet)
    record = _records(fleet)["orchestrator"]
    for interactive in (False, True):
        with pytest.raises(ControlError, match="no tmux client is attached"):
            actions.handover(record, interactive=interactive)
    assert not [e for e in fleet.audit_lines() if e["outcome"] == "started"]


def test_a_detached_handover_that_fails_is_reported_and_audited(
    fleet: FleetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from fleet_tui.control.actions import Handover
    from fleet_tui.control.panes import plan_handover

    _inside_tmux_without_client(fleet, monkeypatch)
    actions = _actions(fleet)
    record = _records(fleet)["orchestrator"]
    # the popup itself, as if the client went away between the check and the popup
    plan = plan_handover(fleet.runner, SOCK, "orchestrator", read_only=True)
    assert plan.how == "popup"
    failing = Handover(plan.argv, blocking=False, env=plan.env)
    reason = asyncio.run(actions.run_detached("watch", record, failing))
    assert reason is not None and "status 1" in reason and "no current client" in reason
    last = fleet.audit_lines()[-1]
    assert (last["action"], last["outcome"]) == ("watch", "failed")
    assert "no current client" in last["detail"]
    ok = Handover(["true"], blocking=False, env=fleet.env)
    assert asyncio.run(actions.run_detached("watch", record, ok)) is None
    assert fleet.audit_lines()[-1]["outcome"] == "detached"
