"""The process source names the runtime under a pane from real processes (issue 12, item 10).

Claude Code from its native installer runs as `~/.local/share/claude/versions/2.1.x` (its
command name is the version), and Codex's native binary is `codex-<target triple>` (the release
archives and older npm packages) or `.../vendor/<target triple>/codex/codex` (npm now). Each is
played here by a copy of `sleep` at such a path, started in a real tmux pane, and `ps --json`
must say which runtime it is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import FleetEnv, wait_until

from fleet_tui.sources.procs import detect_runtime

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"


def _install(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sleep = shutil.which("sleep")
    assert sleep is not None
    shutil.copy2(sleep, path)
    return path


def _runtimes(world: FleetEnv) -> dict[str, str | None]:
    data = world.ps_json("--all")
    return {
        a["name"]: (a["process"] or {}).get("runtime_detected")
        for a in data["agents"]
        if a["tmux"] is not None
    }


def test_native_installs_are_recognised_in_real_panes(fleet_env: FleetEnv) -> None:
    home = fleet_env.home
    claude = _install(home / ".local/share/claude/versions/2.1.3")
    # through a link with a neutral name: only the executable's own path tells
    launcher = home / "bin" / "agent-main"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.symlink_to(claude)
    codex_release = _install(home / "opt/codex/bin/codex-x86_64-unknown-linux-musl")
    codex_vendor = _install(
        home / "lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex"
    )
    plain = _install(home / "opt/tools/2.1.3")  # a version-named binary that is not Claude

    fleet_env.start(SOCK, "claude-path", [str(claude), "300"], agent=False)
    fleet_env.start(SOCK, "claude-link", [str(launcher), "300"], agent=False)
    fleet_env.start(SOCK, "codex-release", [str(codex_release), "300"], agent=False)
    fleet_env.start(SOCK, "codex-vendor", [str(codex_vendor), "300"], agent=False)
    fleet_env.start(SOCK, "other", [str(plain), "300"], agent=False)

    found = wait_until(
        lambda: r if len(r := _runtimes(fleet_env)) == 5 else None,
        timeout=10,
        message="five panes in ps",
    )
    assert found == {
        "claude-path": "claude",
        "claude-link": "claude",
        "codex-release": "codex",
        "codex-vendor": "codex",
        "other": None,
    }


def test_detect_runtime_from_paths() -> None:
    home = os.path.expanduser("~")
    cases = {
        (f"{home}/.local/share/claude/versions/2.1.3", ()): "claude",
        ("2.1.3", (f"{home}/.local/share/claude/versions/2.1.3",)): "claude",
        ("node", ("node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js")): "claude",
        ("codex-x86_64-un", ("/opt/codex-x86_64-unknown-linux-musl",)): "codex",
        ("codex-aarch64-u", ("codex-aarch64-unknown-linux-gnu",)): "codex",
        ("node", ("node", "/usr/lib/node_modules/@openai/codex/bin/codex.js")): "codex",
        ("2.1.3", ("/opt/tools/2.1.3",)): None,
        ("less", ("less", "codex-x86_64-notes.txt")): None,
        ("versions", ("/srv/claude/versions",)): None,
        ("sleep", ("sleep", "300")): None,
    }
    for (comm, argv), want in cases.items():
        if comm.startswith("/"):
            got = detect_runtime("2.1.3", [], exe=comm)
        else:
            got = detect_runtime(comm, list(argv))
        assert got == want, (comm, argv, got)


def test_a_warm_collector_follows_panes_that_come_go_and_change_process(
    fleet_env: FleetEnv,
) -> None:
    """A collector kept across polls (the dashboard's) keeps per-process state: a pane that
    appears, one whose process is replaced and one that ends must all show on the next poll."""
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.service.collector import FleetCollector

    codex = _install(fleet_env.home / "opt/codex/bin/codex-x86_64-unknown-linux-musl")
    fleet_env.start(SOCK, "stays", ["sleep", "300"])
    fleet_env.start(SOCK, "changes", ["sleep", "300"])
    fleet_env.start(SOCK, "ends", ["sleep", "300"])
    collector = FleetCollector(FleetConfig.from_flags(), runner=fleet_env.runner)

    def runtimes() -> dict[str, tuple[int | None, str | None]]:
        return {
            a.name: (a.process.pid, a.process.runtime_detected) if a.process else (None, None)
            for a in collector.collect().agents
            if a.tmux is not None and not a.tmux.pane_dead
        }

    first = wait_until(
        lambda: r if len(r := runtimes()) == 3 else None, timeout=10, message="three panes"
    )
    assert {name: rt for name, (_, rt) in first.items()} == dict.fromkeys(first, None)
    fleet_env.tmux(SOCK, "respawn-pane", "-k", "-t", "=changes:", str(codex), "300")
    fleet_env.tmux(SOCK, "kill-session", "-t", "=ends")
    fleet_env.start(SOCK, "new", [str(codex), "301"])
    after = runtimes()
    assert set(after) == {"stays", "changes", "new"}
    assert after["stays"] == first["stays"]  # the same process, still walked
    assert after["changes"][1] == "codex" and after["changes"][0] != first["changes"][0]
    assert after["new"][1] == "codex"
