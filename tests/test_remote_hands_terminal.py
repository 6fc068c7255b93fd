"""Remote hands in a REAL terminal: the dashboard in a pane of a private outer tmux server (as in
test_terminal.py), a remote row of a mapped host (the other host's `ps`, as the gateway's last
answer kept in `gateway-last.json`: the gateway itself is down), a real sshd on loopback and the
other host's own tmux world.

`w` hands the terminal to `ssh -t ... watch -- NAME`: the far agent's pane is on screen through a
READ-ONLY client there, keys never reach it, `C-b d` comes back to the dashboard; `a` does the
same interactively after the typed name. Audited on both hosts.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from datetime import UTC, datetime

import pytest
from conftest import FleetEnv, wait_until
from sshd_support import Sshd
from test_remote_hands import FAR, SOCK, far, far_audit, fresh, sshd  # noqa: F401 (fixtures)
from test_terminal import OUTER, keys, screen, select, wait_screen

pytestmark = pytest.mark.tmux


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def keep_gateway_answer(env: FleetEnv, far_world: FleetEnv, url: str) -> None:
    """The gateway's last answer as a dashboard keeps it: the other host's `ps`."""
    now = datetime.now(UTC).isoformat()
    answer = {
        "schema": "mosaic.fleet.snapshot/v1",
        "hosts": [
            {"host": FAR, "tenant_id": "acme", "observed_at": now, "ps": far_world.ps_json()}
        ],
    }
    env.state_dir.mkdir(parents=True, exist_ok=True)
    doc = {"v": 1, "url": url, "tenant": "acme", "answered_at": now, "answer": answer}
    (env.state_dir / "gateway-last.json").write_text(json.dumps(doc))


def start_dashboard(env: FleetEnv, url: str) -> None:
    env.runner.ensure_socket_dir()
    argv = [
        "env",
        "-u",
        "TMUX",
        "-u",
        "TMUX_PANE",
        f"TMUX_TMPDIR={env.base}",
        f"HOME={env.home}",
        f"XDG_STATE_HOME={env.state_home}",
        f"XDG_CONFIG_HOME={env.config_home}",
        "TERM=xterm-256color",
        "MOSAIC_FLEET_GATEWAY_TOKEN=not-used-the-gateway-is-down",
        sys.executable,
        "-m",
        "fleet_tui",
        "tui",
        "--gateway",
        url,
        "--insecure",
    ]
    env.tmux(
        OUTER,
        "new-session",
        "-d",
        "-s",
        "op",
        "-x",
        "140",
        "-y",
        "30",
        *argv,
        ";",
        "set-option",
        "-g",
        "prefix",
        "C-a",
    )


def far_clients(far_world: FleetEnv) -> list[str]:
    try:
        out = far_world.tmux(
            SOCK, "list-clients", "-F", "#{client_readonly} #{session_name}"
        ).stdout
    except Exception:
        return []
    return [line for line in out.splitlines() if line.strip()]


def test_w_and_a_on_a_mapped_remote_row_hand_the_terminal_to_ssh(
    fleet_env: FleetEnv,
    far: FleetEnv,  # noqa: F811
    sshd: Sshd,  # noqa: F811
) -> None:
    fleet_env.write_roster([{"name": "local-one", "role": "orchestrator"}], tenant="acme")
    fresh(far, "seen-far", ["sh", "-c", "echo FAR-PANE-TEXT; exec cat"])
    url = dead_url()
    keep_gateway_answer(fleet_env, far, url)
    settings = fleet_env.config_home / "mosaic" / "fleet-tui.yaml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"hosts": {FAR: sshd.mapping()}}))
    start_dashboard(fleet_env, url)
    wait_screen(fleet_env, "seen-far", timeout=20)
    select(fleet_env, "seen-far")
    # w: a read-only client on the far host, through ssh -t; what is typed never arrives
    keys(fleet_env, "w")
    wait_until(
        lambda: far_clients(far) == ["1 seen-far"], timeout=20, message="a read-only far client"
    )
    wait_screen(fleet_env, "FAR-PANE-TEXT")
    keys(fleet_env, "-l", "typed-into-a-watch")
    keys(fleet_env, "Enter")
    time.sleep(1.0)
    keys(fleet_env, "C-b", "d")
    wait_until(lambda: far_clients(far) == [], timeout=15, message="the detach")
    wait_screen(fleet_env, "◆ fleet-tui")
    pane = far.tmux(SOCK, "capture-pane", "-p", "-t", "=seen-far:").stdout
    assert "typed-into-a-watch" not in pane
    # a: after the typed name here, an interactive client there
    keys(fleet_env, "a")
    wait_screen(fleet_env, "type seen-far to attach")
    keys(fleet_env, "-l", "seen-far")
    keys(fleet_env, "Enter")
    wait_until(
        lambda: far_clients(far) == ["0 seen-far"], timeout=20, message="an interactive client"
    )
    keys(fleet_env, "-l", "hands-on-text")
    keys(fleet_env, "Enter")
    wait_until(
        lambda: "hands-on-text" in far.tmux(SOCK, "capture-pane", "-p", "-t", "=seen-far:").stdout,
        timeout=10,
        message="the typed text in the far pane",
    )
    keys(fleet_env, "C-b", "d")
    wait_until(lambda: far_clients(far) == [], timeout=15, message="the detach")
    wait_screen(fleet_env, "◆ fleet-tui")
    here = [(a["action"], a["outcome"]) for a in fleet_env.audit_lines()]
    assert ("watch", "detached") in here and ("attach", "detached") in here, here
    assert all("via ssh" in str(a["detail"]) for a in fleet_env.audit_lines())
    there = [a for a in far_audit(far) if a["agent"] == "seen-far"]
    assert {(a["action"], a["surface"]) for a in there} >= {("watch", "ssh"), ("attach", "ssh")}
    assert "Traceback" not in screen(fleet_env)
