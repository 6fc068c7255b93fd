"""Remote hands over a REAL sshd on loopback (tests/sshd_support.py), with a second private
world (its own tmux and state dir) as the other host.

What an operator notices: a mapped host's agent streams (sanitized there and here), takes a
message with its ack, and stops on request, audited on BOTH hosts (surface ssh there, "via ssh"
here); a changed or unknown host key, refused auth, a dead or silent port, a missing or too old
remote fleet-tui each give one clear line, in time; an unmapped host refuses and says how to
map it. The argv never disables host-key checking and quotes every remote word.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FleetEnv, wait_until
from sshd_support import Sshd, keygen, start_sshd

from fleet_tui.config.settings import HostSettings
from fleet_tui.control.remote_hands import (
    AuthRefused,
    HostKeyRefused,
    HostUnreachable,
    RemoteFailed,
    RemoteHands,
    RemoteHost,
    RemoteMissing,
    RemoteTooOld,
)
from fleet_tui.errors import Refused
from fleet_tui.model.records import AgentRecord
from fleet_tui.ui.lifecycle import refusal
from fleet_tui.ui.remote import refusal_for

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"
FAR = "far-host"
HOSTILE = (
    "\\033]52;c;Y2xpcGJvYXJkIQ==\\007\\033[2J\\033]0;TITLE-ZERO\\007"
    "\\033]8;;http://evil.example/\\033\\\\link\\033]8;;\\033\\\\\\302\\233999C"
    "\\033[32mgreen\\033[0m words\\n"
)


@pytest.fixture(scope="module")
def far() -> Iterator[FleetEnv]:
    """The other host's world: its own tmux sockets, state and config (roster host far-host)."""
    world = FleetEnv()
    try:
        world.write_roster(
            [
                {"name": "coder", "role": "coder", "command": "exec sleep 600"},
                {"name": "sayer", "role": "coder"},
            ],
            tenant="acme",
            host=FAR,
        )
        yield world
    finally:
        world.close()


@pytest.fixture(scope="module")
def sshd(far: FleetEnv) -> Iterator[Sshd]:
    server = start_sshd(far.base / "sshd", far)
    try:
        yield server
    finally:
        server.stop()


def remote_record(far: FleetEnv, name: str) -> AgentRecord:
    """The other host's row as the merged view would hold it: from its own `ps --json`,
    marked remote (as the gateway's rows are)."""
    doc = far.ps_json()
    row = next(a for a in doc["agents"] if a["name"] == name)
    return AgentRecord.model_validate(row).model_copy(update={"remote": True})


def hands_for(env: FleetEnv, sshd: Sshd, **overrides: object) -> RemoteHands:
    mapping = HostSettings.model_validate(sshd.mapping(**overrides))
    return RemoteHands({FAR: mapping}, env.state_dir)


def host_for(sshd: Sshd, **overrides: object) -> RemoteHost:
    return RemoteHost(FAR, HostSettings.model_validate(sshd.mapping(**overrides)))


def far_audit(far: FleetEnv) -> list[dict[str, object]]:
    return far.audit_lines()


def fresh(far: FleetEnv, name: str, argv: list[str]) -> None:
    """(Re)start the other host's agent `name` running `argv`."""
    try:
        far.tmux(SOCK, "kill-session", "-t", f"={name}")
    except Exception:
        pass
    far.start(SOCK, name, argv)


def test_the_argv_keeps_host_key_checking_and_quotes_every_remote_word() -> None:
    host = RemoteHost(
        "h",
        HostSettings(
            ssh="ops@10.0.0.2",
            fleet_tui='"~/my bin/fleet-tui"',  # a command line: quotes group words
            port=2222,
            connect_timeout_s=7,
        ),
    )
    argv = host.argv("send", ["--verify", "--", "-x;rm", "-"])
    assert argv[:8] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=7", "-p", "2222", "-T"]
    assert argv[-3:-1] == ["--", "ops@10.0.0.2"]  # the destination after --: never an option
    assert not any("StrictHostKeyChecking" in a or "UserKnownHostsFile" in a for a in argv)
    remote = argv[-1]
    assert remote.startswith("env MOSAIC_FLEET_SURFACE=ssh ~/'my bin/fleet-tui' send ")
    assert shlex.split(remote)[-3:] == ["--", "-x;rm", "-"]  # one word each, as sent
    assert "'-x;rm'" in remote
    tty = host.argv("attach", ["--yes", "--", "a"])
    assert "-t" in tty and "-T" not in tty  # a terminal only for watch and attach
    hands = RemoteHands({"h": host.settings}, Path("/nonexistent"))
    bad = AgentRecord.model_validate({**_minimal_row(), "name": "a b", "host": "h", "remote": True})
    with pytest.raises(Refused):
        hands.stream_argv(bad)  # a name outside the pattern is never sent


def _minimal_row() -> dict[str, object]:
    return {
        "tenant_id": "acme",
        "host": FAR,
        "name": "x",
        "role": None,
        "alias": None,
        "runtime": None,
        "model": None,
        "lifecycle": None,
        "in_roster": False,
        "socket": None,
        "session": None,
        "tmux": None,
        "systemd": None,
        "process": None,
        "heartbeat": None,
        "health": "unknown",
        "health_reason": "",
        "drift": [],
    }


def test_stream_over_ssh_is_sanitized_and_its_pipe_closes_with_the_connection(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    trig = far.base / "go-streamer"
    script = (
        f"echo ready; while [ ! -e {trig} ]; do sleep 0.05; done; printf '{HOSTILE}'; "
        "echo LATER; exec sleep 600"
    )
    fresh(far, "streamer", ["sh", "-c", script])
    wait_until(
        lambda: "ready" in far.tmux(SOCK, "capture-pane", "-p", "-t", "=streamer:").stdout,
        message="the remote pane",
    )
    record = remote_record(far, "streamer")
    hands = hands_for(fleet_env, sshd)
    proc = subprocess.Popen(
        hands.stream_argv(record), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    data = b""
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + 20
        while b"LATER" not in data:
            assert time.monotonic() < deadline, data
            if b"ready" in data and not trig.exists():
                wait_until(lambda: _piped(far, "streamer"), message="the remote pipe")
                trig.touch()
            chunk = os.read(fd, 65536)
            assert chunk, f"ended early: {data!r} {sshd.log()}"
            data += chunk
    finally:
        proc.send_signal(signal.SIGTERM)  # the operator leaves the stream
        proc.wait(timeout=10)
    text = data.decode()
    assert "\x1b[32mgreen" in text  # colours kept (--color always), canonical
    stripped = text.replace("\x1b[32m", "").replace("\x1b[m", "").replace("\x1b[0m", "")
    assert "\x1b" not in stripped and "\x07" not in stripped and "\x9b" not in stripped
    for secret in ("Y2xpcGJvYXJkIQ", "TITLE-ZERO", "evil.example"):
        assert secret not in text
    # the connection closed: the remote stream noticed its reader gone and closed its pipe
    wait_until(lambda: not _piped(far, "streamer"), timeout=15, message="the remote pipe closed")
    pipes = [a for a in far_audit(far) if a["action"] == "pipe" and a["agent"] == "streamer"]
    assert [a["outcome"] for a in pipes] == ["started", "opened", "closed"]
    assert {a["surface"] for a in pipes} == {"ssh"}


def _piped(world: FleetEnv, name: str) -> bool:
    out = world.tmux(SOCK, "display-message", "-p", "-t", f"={name}:", "#{pane_pipe}").stdout
    return out.strip() == "1"


def test_send_verify_over_ssh_gets_the_ack_and_is_audited_on_both_hosts(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    try:
        far.tmux(SOCK, "kill-session", "-t", "=sayer")
    except Exception:
        pass
    far.stub(SOCK, "sayer")
    record = remote_record(far, "sayer")
    hands = hands_for(fleet_env, sshd)
    sent = hands.send(record, "hello from the other host")
    assert "accepted in" in sent.line
    here = [a for a in fleet_env.audit_lines() if a["action"] == "send"]
    assert [a["outcome"] for a in here] == ["started", "accepted"]
    assert all(a["surface"] == "tui" and "via ssh" in str(a["detail"]) for a in here)
    assert all("hello" not in json.dumps(a) for a in here)  # by hash and length, never text
    there = [a for a in far_audit(far) if a["action"] == "send" and a["agent"] == "sayer"]
    assert [a["outcome"] for a in there][-2:] == ["started", "accepted"]
    assert {a["surface"] for a in there} == {"ssh"}
    assert here[0]["detail"].split()[0] == there[-1]["detail"].split()[0]  # the same hash


def test_a_missing_remote_agent_is_said_in_one_line(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    record = remote_record(far, "sayer").model_copy(update={"name": "nobody-here"})
    with pytest.raises(RemoteFailed) as err:
        hands_for(fleet_env, sshd).send(record, "hi")
    assert err.value.exit_code == 3
    assert "no agent named 'nobody-here'" in str(err.value) and "\n" not in str(err.value)
    here = [a["outcome"] for a in fleet_env.audit_lines() if a["action"] == "send"]
    assert here == ["started", "failed"]


def test_stop_over_ssh_after_the_local_confirmation(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    far.cli("up", "coder")
    wait_until(lambda: _has(far, "coder"), message="the remote agent")
    record = remote_record(far, "coder")
    line = hands_for(fleet_env, sshd).lifecycle(record, "stop")
    assert "coder" in line
    assert not _has(far, "coder")
    there = [a for a in far_audit(far) if a["action"] == "stop" and a["agent"] == "coder"]
    assert there and {a["surface"] for a in there} == {"ssh"}
    here = [(a["action"], a["outcome"]) for a in fleet_env.audit_lines()]
    assert here == [("stop", "started"), ("stop", "done")]


def _has(world: FleetEnv, name: str) -> bool:
    try:
        world.tmux(SOCK, "has-session", "-t", f"={name}")
    except Exception:
        return False
    return True


def test_a_changed_host_key_is_refused_with_the_clear_line(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "other")
    pub = (tmp_path / "other.pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    host = host_for(
        sshd, ssh_options=["-F", str(sshd.client_config), "-o", f"UserKnownHostsFile={known}"]
    )
    with pytest.raises(HostKeyRefused) as err:
        host.run("stream", ["--", "x"], timeout_s=10)
    assert "host key CHANGED" in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_host_key_is_not_accepted_silently(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    host = host_for(
        sshd, ssh_options=["-F", str(sshd.client_config), "-o", f"UserKnownHostsFile={known}"]
    )
    with pytest.raises(HostKeyRefused) as err:
        host.run("stream", ["--", "x"], timeout_s=10)
    assert "not in your known_hosts" in str(err.value)
    assert known.read_text() == ""  # nothing recorded on our own


def test_a_refused_key_is_said(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "stranger")
    config = tmp_path / "ssh_config"
    config.write_text(
        sshd.client_config.read_text().replace(
            str(sshd.folder / "client_key"), str(tmp_path / "stranger")
        )
    )
    host = host_for(sshd, ssh_options=["-F", str(config)])
    with pytest.raises(AuthRefused) as err:
        host.run("stream", ["--", "x"], timeout_s=10)
    assert "authentication refused" in str(err.value)


def test_a_dead_port_and_a_silent_one_fail_within_the_connect_timeout(sshd: Sshd) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable) as err:
        host_for(sshd, port=closed, connect_timeout_s=2).run("stream", ["--", "x"], timeout_s=10)
    assert "cannot be reached" in str(err.value) and "refused" in str(err.value).lower()
    assert time.monotonic() - t0 < 20  # refused at once when quiet (~0.3 s)
    with socket.socket() as silent:  # accepts the connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(HostUnreachable) as err:
            host_for(sshd, port=port, connect_timeout_s=2).run("stream", ["--", "x"], timeout_s=10)
        took = time.monotonic() - t0
    assert "did not answer within 2 s" in str(err.value)
    # "within 2 s": ssh's own connect timeout ended it (our deadline for the call would say
    # 12 s); nothing hangs (2 s when quiet, 10x over for a loaded machine)
    assert took < 20, took


def test_a_missing_or_too_old_remote_fleet_tui_is_said(sshd: Sshd) -> None:
    missing = host_for(sshd, fleet_tui="/nonexistent/bin/fleet-tui")
    with pytest.raises(RemoteMissing) as err:
        missing.run("stream", ["--", "x"], timeout_s=10)
    assert "no fleet-tui at '/nonexistent/bin/fleet-tui'" in str(err.value)
    assert f"hosts.{FAR}.fleet_tui" in str(err.value)
    # an older fleet-tui: the real CLI without the stream verb (argparse's own answer)
    old = sshd.folder / "fleet-tui-old"
    old.write_text(
        "#!/bin/sh\n"
        f"exec '{sys.executable}' -c 'import sys, fleet_tui.cli.main as m; "
        'm.EXTENSION_VERBS.pop("stream"); '
        "m.EXTENSIONS = tuple(dict.fromkeys(m.EXTENSION_VERBS.values())); "
        'sys.exit(m.main())\' "$@"\n'
    )
    old.chmod(0o755)
    with pytest.raises(RemoteTooOld) as err:
        host_for(sshd, fleet_tui=str(old)).run("stream", ["--", "x"], timeout_s=20)
    assert "too old for `stream`" in str(err.value) and "fleet-tui >=" in str(err.value)


def test_an_unmapped_host_refuses_and_says_how_to_map_it(fleet_env: FleetEnv) -> None:
    record = AgentRecord.model_validate({**_minimal_row(), "name": "coder", "remote": True})
    hands = RemoteHands({"another-host": HostSettings(ssh="h")}, fleet_env.state_dir)
    line = refusal_for("stream", record, hands)
    assert line == (
        f"stream: coder runs on host {FAR}: map host {FAR} under hosts: in fleet-tui.yaml"
    )
    assert refusal_for("stream", record, None) == line
    assert refusal("stop", record, None, None, hands) is not None
    assert f"map host {FAR} under hosts: in fleet-tui.yaml" in str(
        refusal("stop", record, None, None, hands)
    )
    mapped = RemoteHands({FAR: HostSettings(ssh="h")}, fleet_env.state_dir)
    assert refusal_for("stream", record, mapped) is None
    assert refusal("stop", record, None, None, mapped) is None


# -- the dashboard ------------------------------------------------------------------------------


def dashboard(extra: list[AgentRecord], hosts: dict[str, object]):  # type: ignore[no-untyped-def]
    """A live dashboard of this (local) world whose polls also carry `extra` remote rows (as
    the gateway's merge would), with `hosts:` mapped as given."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.config.settings import DashboardSettings
    from fleet_tui.control.actions import LiveActions
    from fleet_tui.service.poll import LiveSource
    from fleet_tui.ui.app import FleetApp

    class WithRemoteRows(LiveSource):
        def poll(self, *, heartbeats_only: bool = False):  # type: ignore[no-untyped-def]
            snap = super().poll(heartbeats_only=heartbeats_only)
            return snap.model_copy(update={"agents": [*snap.agents, *extra]})

    config = FleetConfig.from_flags()
    source = WithRemoteRows(config, systemd_interval_s=30)
    settings = DashboardSettings.model_validate({"poll_interval_s": 3600, "hosts": hosts})
    return FleetApp(
        source, settings=settings, actions=LiveActions(source.runner, config.state_dir, config)
    )


def shown(app) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot, predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not seen within {timeout} s")


async def test_s_on_a_mapped_remote_row_streams_its_pane_over_ssh(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    from fleet_tui.ui.remote import RemoteStreamScreen

    script = f"printf '{HOSTILE}'; echo FROM-THE-FAR-HOST; exec sleep 600"
    fresh(far, "faraway", ["sh", "-c", script])
    wait_until(
        lambda: (
            "FROM-THE-FAR-HOST" in far.tmux(SOCK, "capture-pane", "-p", "-t", "=faraway:").stdout
        ),
        message="the remote pane",
    )
    row = remote_record(far, "faraway")
    app = dashboard([row], {FAR: sshd.mapping()})
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        app.fleet_screen.go_to_agent(row.key)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, RemoteStreamScreen), 5, "stream")
        await wait_for(pilot, lambda: "FROM-THE-FAR-HOST" in shown(app), 20, "the remote pane")
        text = shown(app)
        assert "green words" in text and "over ssh" in text
        for secret in ("Y2xpcGJvYXJkIQ", "TITLE-ZERO", "evil.example"):
            assert secret not in text
        await wait_for(pilot, lambda: _piped(far, "faraway"), 10, "the remote pipe")
        await pilot.press("escape")  # leaving ends the ssh process; the far side closes its pipe
        await wait_for(pilot, lambda: not _piped(far, "faraway"), 15, "the remote pipe closed")
    pipes = [a for a in far_audit(far) if a["action"] == "pipe" and a["agent"] == "faraway"]
    assert {a["surface"] for a in pipes} == {"ssh"}


async def test_s_on_an_unmapped_remote_row_refuses_with_the_hint(
    fleet_env: FleetEnv, far: FleetEnv
) -> None:
    row = AgentRecord.model_validate({**_minimal_row(), "name": "lonely", "remote": True})
    app = dashboard([row], {"some-other-host": {"ssh": "x"}})
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        app.fleet_screen.go_to_agent(row.key)
        for key in ("s", "w", "m"):
            await pilot.press(key)
        hint = f"map host {FAR} under hosts: in fleet-tui.yaml"
        await wait_for(
            pilot,
            lambda: sum(hint in str(n.message) for n in app._notifications) >= 3,
            5,
            "the hint for s, w and m",
        )
        assert app.screen is app.fleet_screen  # nothing opened


async def test_x_and_m_on_a_mapped_remote_row_run_over_ssh_after_the_local_dialogs(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    from fleet_tui.ui.dialogs import ComposeMessageScreen, ConfirmLifecycleScreen

    try:
        far.tmux(SOCK, "kill-session", "-t", "=sayer")
    except Exception:
        pass
    far.stub(SOCK, "sayer")
    far.cli("up", "coder")
    wait_until(lambda: _has(far, "coder"), message="the remote agent")
    sayer, coder = remote_record(far, "sayer"), remote_record(far, "coder")
    app = dashboard([sayer, coder], {FAR: sshd.mapping()})

    def toasts() -> list[str]:
        return [str(n.message) for n in app._notifications]

    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        app.fleet_screen.go_to_agent(sayer.key)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeMessageScreen), 5, "composer")
        await pilot.press(*"ship it", "ctrl+s")
        await wait_for(pilot, lambda: any("accepted in" in t for t in toasts()), 30, "the ack")
        app.fleet_screen.go_to_agent(coder.key)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmLifecycleScreen), 5, "dialog")
        await pilot.press(*"coder", "enter")
        await wait_for(pilot, lambda: any("on far-host" in t for t in toasts()), 30, "the stop")
    assert not _has(far, "coder")
    here = [(a["action"], a["outcome"]) for a in fleet_env.audit_lines()]
    assert ("send", "accepted") in here and ("stop", "done") in here
    assert all("via ssh" in str(a["detail"]) for a in fleet_env.audit_lines())
    there = [a for a in far_audit(far) if a["action"] in ("send", "stop")]
    assert {a["surface"] for a in there} == {"ssh"}


def test_watch_from_a_dashboard_inside_tmux_opens_ssh_in_a_popup(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside tmux, `C-b d` must reach the FAR tmux client, not the operator's own: the ssh
    runs in a popup on the operator's server (a plain `C-b d` there detaches the far client and
    the popup closes)."""
    from test_flow import OperatorTerminal

    fresh(far, "popped", ["sh", "-c", "echo IN-THE-POPUP; exec cat"])
    term = OperatorTerminal(fleet_env, 160, 50, "outer")
    try:
        wait_until(
            lambda: fleet_env.tmux("outer", "list-clients", "-F", "#{client_name}").stdout.strip(),
            message="the operator's client",
        )
        sock = fleet_env.runner.socket_path("outer")
        pid = fleet_env.tmux("outer", "display-message", "-p", "#{pid}").stdout.strip()
        monkeypatch.setenv("TMUX", f"{sock},{pid},0")
        pane = fleet_env.tmux("outer", "display-message", "-p", "-t", "=dash:", "#{pane_id}")
        monkeypatch.setenv("TMUX_PANE", pane.stdout.strip())
        hands = hands_for(fleet_env, sshd)
        handover = hands.handover(remote_record(far, "popped"), interactive=False)
        assert not handover.blocking  # a popup: the dashboard keeps running
        popup = subprocess.Popen(handover.argv, env=handover.env)
        try:
            wait_until(
                lambda: (
                    "1 popped"
                    in far.tmux(
                        SOCK, "list-clients", "-F", "#{client_readonly} #{session_name}"
                    ).stdout
                ),
                timeout=20,
                message="a read-only far client in the popup",
            )
            wait_until(lambda: b"IN-THE-POPUP" in term.read(), message="the far pane in the popup")
            assert b"over ssh" in term.out  # the popup's title says where it is
            far.tmux(SOCK, "detach-client", "-s", "=popped")
            assert popup.wait(timeout=15) == 0
        finally:
            if popup.poll() is None:
                popup.kill()
    finally:
        term.close()
        fleet_env.tmux("outer", "kill-server", check=False)
    here = [(a["action"], a["outcome"], a["detail"]) for a in fleet_env.audit_lines()]
    assert here[0][:2] == ("watch", "started") and "popup via ssh" in str(here[0][2])


async def test_s_says_on_screen_when_the_far_fleet_tui_is_missing(
    fleet_env: FleetEnv, far: FleetEnv, sshd: Sshd
) -> None:
    from fleet_tui.ui.remote import RemoteStreamScreen

    row = AgentRecord.model_validate({**_minimal_row(), "name": "anyone", "remote": True})
    app = dashboard([row], {FAR: sshd.mapping(fleet_tui="/nonexistent/fleet-tui")})
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.polls >= 1, 10, "the first poll")
        app.fleet_screen.go_to_agent(row.key)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, RemoteStreamScreen), 5, "stream")
        await wait_for(pilot, lambda: "no fleet-tui at" in shown(app), 20, "the reason")
        assert "hosts.far-host.fleet_tui" in shown(app)
