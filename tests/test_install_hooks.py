"""`fleet-tui install-hooks`: merges our hooks into Claude Code's and Codex's settings and takes
them out again, keeping everything else, through the real executable."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet_tui.model.records import Heartbeat
from tests.conftest import FleetEnv

FLEET_TUI = str(Path(sys.executable).parent / "fleet-tui")
CLAUDE_EVENTS = {
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "Stop",
    "StopFailure",
    "SessionEnd",
}

THEIR_SETTINGS: dict[str, Any] = {
    "model": "opus",
    "env": {"FOO": "bar"},
    "permissions": {"allow": ["Bash(npm test:*)"], "deny": []},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/bin/guard.sh"}]}
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done", "timeout": 3}]}],
    },
    "includeCoAuthoredBy": False,
}


def run(env: FleetEnv, *args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [FLEET_TUI, "install-hooks", *args],
        capture_output=True,
        text=True,
        env={**env.env, **(extra_env or {})},
        timeout=30,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def our_commands(settings: dict[str, Any], event: str) -> list[str]:
    return [
        h["command"]
        for group in settings.get("hooks", {}).get(event, [])
        for h in group["hooks"]
        if "fleet-tui" in h["command"]
    ]


def test_claude_round_trip_keeps_their_content(fleet_env: FleetEnv) -> None:
    path = fleet_env.home / ".claude" / "settings.json"
    path.parent.mkdir()
    original = json.dumps(THEIR_SETTINGS, indent=4)
    path.write_text(original)

    rc, out, err = run(fleet_env, "--runtime", "claude")
    assert (rc, err) == (0, ""), err
    assert "wrote" in out
    installed = json.loads(path.read_text())
    for event in CLAUDE_EVENTS:
        assert our_commands(installed, event) == [f"{FLEET_TUI} hook claude"], event
    tool_groups = [g for g in installed["hooks"]["PreToolUse"] if "fleet-tui" in str(g)]
    assert tool_groups[0]["matcher"] == "*" and tool_groups[0]["hooks"][0]["timeout"] == 5
    assert installed["statusLine"] == {"type": "command", "command": f"{FLEET_TUI} statusline"}
    for key in ("model", "env", "permissions", "includeCoAuthoredBy"):
        assert installed[key] == THEIR_SETTINGS[key]
    assert installed["hooks"]["PreToolUse"][0] == THEIR_SETTINGS["hooks"]["PreToolUse"][0]
    assert installed["hooks"]["Stop"][0] == THEIR_SETTINGS["hooks"]["Stop"][0]
    assert json.loads(path.with_name("settings.json.bak-fleet-tui").read_text()) == THEIR_SETTINGS

    # Installing again adds nothing and does not even rewrite the file.
    before = path.read_bytes()
    rc, out, _ = run(fleet_env, "--runtime", "claude")
    assert rc == 0 and "nothing to change" in out
    assert path.read_bytes() == before

    rc, out, err = run(fleet_env, "--runtime", "claude", "--uninstall")
    assert (rc, err) == (0, "")
    assert json.loads(path.read_text()) == THEIR_SETTINGS


def test_claude_keeps_their_status_line_and_says_so(fleet_env: FleetEnv) -> None:
    path = fleet_env.base / "settings.json"
    theirs = {"statusLine": {"type": "command", "command": "~/bin/my-status"}}
    path.write_text(json.dumps(theirs))
    rc, out, _ = run(fleet_env, "--runtime", "claude", "--settings", str(path))
    assert rc == 0
    assert len([line for line in out.splitlines() if "statusLine" in line]) == 1
    installed = json.loads(path.read_text())
    assert installed["statusLine"] == theirs["statusLine"]
    assert set(installed["hooks"]) == CLAUDE_EVENTS
    run(fleet_env, "--runtime", "claude", "--settings", str(path), "--uninstall")
    assert json.loads(path.read_text()) == theirs


def test_claude_config_dir_dry_run_and_new_file(fleet_env: FleetEnv) -> None:
    first, second = fleet_env.base / "cfg1", fleet_env.base / "cfg2"
    extra = {"CLAUDE_CONFIG_DIR": f"{first},{second}"}
    rc, out, _ = run(fleet_env, "--runtime", "claude", "--dry-run", extra_env=extra)
    assert rc == 0
    assert "+++ " + str(first / "settings.json") in out and "hook claude" in out
    assert "nothing written" in out
    assert not first.exists()
    rc, _, _ = run(fleet_env, "--runtime", "claude", extra_env=extra)
    assert rc == 0
    assert set(json.loads((first / "settings.json").read_text())["hooks"]) == CLAUDE_EVENTS
    assert not second.exists()


@pytest.mark.parametrize(
    "text",
    ['{"model": "opus",\n  "hooks": {', '["a list"]', '{"hooks": ["not", "an object"]}'],
    ids=["truncated", "not an object", "hooks not an object"],
)
def test_claude_bad_settings_are_left_untouched(fleet_env: FleetEnv, text: str) -> None:
    path = fleet_env.base / "settings.json"
    path.write_text(text)
    rc, out, err = run(fleet_env, "--runtime", "claude", "--settings", str(path))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
    assert path.read_text() == text
    assert not path.with_name("settings.json.bak-fleet-tui").exists()


def test_installed_claude_command_writes_a_heartbeat(fleet_env: FleetEnv) -> None:
    path = fleet_env.base / "settings.json"
    run(fleet_env, "--runtime", "claude", "--settings", str(path))
    settings = json.loads(path.read_text())
    command = our_commands(settings, "UserPromptSubmit")[0]
    payload = {"hook_event_name": "UserPromptSubmit", "prompt": "hi", "session_id": "s"}
    proc = subprocess.run(
        [*shlex.split(command), "--agent", "w1", "--no-keepalive"],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=fleet_env.env,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    hb = Heartbeat.model_validate_json(fleet_env.heartbeat_path("w1").read_text())
    assert hb.state.value == "busy"


CODEX_CONFIG = """\
# my codex settings
model = "gpt-5.3-codex"  # the default model
approval_policy = "on-request"

[profiles.fast]
# a faster profile
model = "gpt-5.3-codex-mini"

[mcp_servers.docs]
command = "docs-mcp"
args = ["--port", "9000"]
"""


def test_codex_round_trip_preserves_comments(fleet_env: FleetEnv) -> None:
    home = fleet_env.base / "codex"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(CODEX_CONFIG)
    theirs_hooks: dict[str, Any] = {
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]},
        "other": 1,
    }
    (home / "hooks.json").write_text(json.dumps(theirs_hooks))
    extra = {"CODEX_HOME": str(home)}

    rc, out, err = run(fleet_env, "--runtime", "codex", extra_env=extra)
    assert (rc, err) == (0, "")
    text = config.read_text()
    assert f'notify = ["{FLEET_TUI}", "hook", "codex"]' in text
    assert "# a faster profile" in text and "# the default model" in text
    import tomllib

    parsed = tomllib.loads(text)
    assert parsed["notify"] == [FLEET_TUI, "hook", "codex"]  # top level, not in a table
    assert parsed["profiles"]["fast"]["model"] == "gpt-5.3-codex-mini"
    hooks = json.loads((home / "hooks.json").read_text())
    assert hooks["other"] == 1
    assert hooks["hooks"]["Stop"][0] == theirs_hooks["hooks"]["Stop"][0]
    assert our_commands(hooks, "PermissionRequest") == [f"{FLEET_TUI} hook codex"]

    rc, out, _ = run(fleet_env, "--runtime", "codex", extra_env=extra)
    assert rc == 0 and "nothing to change" in out
    rc, _, _ = run(fleet_env, "--runtime", "codex", "--uninstall", extra_env=extra)
    assert rc == 0
    assert config.read_text() == CODEX_CONFIG
    assert json.loads((home / "hooks.json").read_text()) == theirs_hooks


def test_codex_does_not_clobber_another_notify(fleet_env: FleetEnv) -> None:
    config = fleet_env.base / "config.toml"
    original = 'notify = ["/usr/bin/say-done"]\nmodel = "o3"\n'
    config.write_text(original)
    rc, out, err = run(fleet_env, "--runtime", "codex", "--settings", str(config))
    assert rc == 2 and out == "" and err.count("\n") == 1 and "--force" in err
    assert config.read_text() == original
    assert not (fleet_env.base / "hooks.json").exists()
    rc, out, _ = run(fleet_env, "--runtime", "codex", "--settings", str(config), "--force")
    assert rc == 0 and "say-done" in out
    import tomllib

    assert tomllib.loads(config.read_text())["notify"] == [FLEET_TUI, "hook", "codex"]


def test_codex_uninstall_after_force_puts_their_notify_back(fleet_env: FleetEnv) -> None:
    """--force replaced the operator's notify; --uninstall must not leave Codex with none
    (the backup file is overwritten by the uninstall's own backup, so it cannot be the way)."""
    import tomllib

    config = fleet_env.base / "config.toml"
    config.write_text('model = "o3"\nnotify = ["/usr/bin/say-done", "--loud"]\n')
    args = ("--runtime", "codex", "--settings", str(config))
    assert run(fleet_env, *args, "--force")[0] == 0
    assert run(fleet_env, *args)[1].startswith("install: nothing to change")  # idempotent
    rc, out, err = run(fleet_env, *args, "--uninstall")
    assert (rc, err) == (0, "") and "restored" in out
    parsed = tomllib.loads(config.read_text())
    assert parsed == {"model": "o3", "notify": ["/usr/bin/say-done", "--loud"]}
    assert "fleet-tui" not in config.read_text()


def test_a_symlinked_settings_file_stays_a_link(fleet_env: FleetEnv) -> None:
    dotfiles = fleet_env.base / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "claude-settings.json"
    target.write_text('{"model": "sonnet"}')
    link = fleet_env.base / "settings.json"
    link.symlink_to(target)
    rc, _, err = run(fleet_env, "--runtime", "claude", "--settings", str(link))
    assert (rc, err) == (0, "")
    assert link.is_symlink()
    assert set(json.loads(target.read_text())["hooks"]) == CLAUDE_EVENTS
