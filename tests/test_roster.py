"""roster.yaml v1: errors name the file, the line and the field (DESIGN.md "roster.yaml")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet_tui.errors import EXIT_BAD_INPUT, RosterError
from fleet_tui.model.records import Lifecycle
from fleet_tui.sources.roster import load_roster, parse_roster

GOOD = """\
version: 1
tenant_id: jarvis            # required
host: w-jarvis
socket_name: mosaic-fleet
heartbeat_timeout_s: 30
agents:
  - name: orchestrator
    role: orchestrator
    alias: Mos
    runtime: claude
    model: opus
    unit: mosaic-agent@orchestrator.service
  - name: enhancer
    role: enhancer
    runtime: codex
  - name: coder0-0
    role: coder
    lifecycle: ephemeral
    socket_name: mosaic-factory
"""

FLOOR_OK_HEAD = """\
version: 1
tenant_id: jarvis
agents:
  - name: orchestrator
    role: orchestrator
  - name: enhancer
    role: enhancer
"""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "roster.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str | bytes) -> str:
    path = write(tmp_path, text)
    with pytest.raises(RosterError) as info:
        load_roster(path)
    assert info.value.exit_code == EXIT_BAD_INPUT == 2
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert "\n" not in msg
    return msg


def test_the_design_example_loads_with_every_field(tmp_path: Path) -> None:
    loaded = load_roster(write(tmp_path, GOOD))
    r = loaded.roster
    assert (r.version, r.tenant_id, r.host, r.socket_name, r.heartbeat_timeout_s) == (
        1,
        "jarvis",
        "w-jarvis",
        "mosaic-fleet",
        30,
    )
    assert [a.name for a in r.agents] == ["orchestrator", "enhancer", "coder0-0"]
    orch = r.agents[0]
    assert (orch.alias, orch.runtime, orch.model, orch.unit) == (
        "Mos",
        "claude",
        "opus",
        "mosaic-agent@orchestrator.service",
    )
    assert orch.lifecycle is Lifecycle.ALWAYS_ON  # the default
    assert r.agents[2].lifecycle is Lifecycle.EPHEMERAL
    assert r.agent_socket(r.agents[0]) == "mosaic-fleet"
    assert r.agent_socket(r.agents[2]) == "mosaic-factory"
    assert loaded.warnings == []
    assert loaded.path == tmp_path / "roster.yaml"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RosterError, match=r"nope\.yaml: roster not found") as info:
        load_roster(path)
    assert info.value.exit_code == 2


def test_a_directory_is_not_a_roster(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="directory"):
        load_roster(tmp_path)


def test_not_yaml_names_file_and_line(tmp_path: Path) -> None:
    text = "version: 1\ntenant_id: jarvis\nagents:\n  - name: [unclosed\n    role: coder\n"
    msg = error_of(tmp_path, text)
    m = re.match(rf"{re.escape(str(tmp_path / 'roster.yaml'))}:(\d+): not valid YAML", msg)
    assert m, msg
    assert int(m.group(1)) in (4, 5)


def test_tab_indentation_is_not_yaml_and_names_the_line(tmp_path: Path) -> None:
    text = "version: 1\ntenant_id: jarvis\nagents:\n\t- name: a\n"
    msg = error_of(tmp_path, text)
    assert ":4: not valid YAML" in msg


def test_a_yaml_list_is_not_a_roster(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "- version: 1\n")
    assert "must be a mapping" in msg


@pytest.mark.parametrize(
    ("value", "shown"), [("2", "2"), ("'1'", "'1'"), ("1.5", "1.5"), ("true", "True")]
)
def test_wrong_version_names_the_line_and_what_was_found(
    tmp_path: Path, value: str, shown: str
) -> None:
    msg = error_of(tmp_path, f"# fleet\ntenant_id: jarvis\nversion: {value}\nagents: []\n")
    assert "roster.yaml:3: version: " in msg
    assert "version 1" in msg
    assert f"got {shown}" in msg


def test_missing_version(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "tenant_id: jarvis\nagents: []\n")
    assert "version" in msg and "missing" in msg


def test_invalid_agent_field_names_file_line_and_field(tmp_path: Path) -> None:
    text = FLOOR_OK_HEAD.replace("  - name: enhancer", "  - name: bad name!")
    msg = error_of(tmp_path, text)
    # agents[1].name is on line 6 of the file
    assert msg.startswith(f"{tmp_path / 'roster.yaml'}:6: agents[1].name: "), msg
    assert "'bad name!'" in msg


def test_invalid_field_deeper_in_the_file_gets_its_own_line(tmp_path: Path) -> None:
    text = FLOOR_OK_HEAD + "  - name: c1\n    role: coder\n    lifecycle: sometimes\n"
    msg = error_of(tmp_path, text)
    assert ":10: agents[2].lifecycle: " in msg
    assert "sometimes" in msg


def test_missing_required_field_names_the_agent(tmp_path: Path) -> None:
    text = FLOOR_OK_HEAD + "  - name: c1\n"
    msg = error_of(tmp_path, text)
    assert ":8: agents[2].role: " in msg
    assert "required" in msg.lower()


def test_missing_tenant(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "version: 1\nagents: []\n")
    assert ": tenant_id: " in msg


def test_bad_timeout(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "version: 1\ntenant_id: j\nheartbeat_timeout_s: 0\n")
    assert ":3: heartbeat_timeout_s: " in msg


@pytest.mark.parametrize("name", ["coder.1", '"a:b"'])
def test_a_name_tmux_would_rewrite_is_refused_and_says_why(tmp_path: Path, name: str) -> None:
    text = FLOOR_OK_HEAD + f"  - name: {name}\n    role: coder\n"
    msg = error_of(tmp_path, text)
    assert ":8: agents[2].name: " in msg
    assert "tmux rewrites" in msg
    assert "'.'" in msg and "':'" in msg


def test_duplicate_agent_names(tmp_path: Path) -> None:
    text = FLOOR_OK_HEAD + "  - name: orchestrator\n    role: coder\n"
    msg = error_of(tmp_path, text)
    assert ":8: agents[2].name: 'orchestrator' is already defined (agents[0])" in msg


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "version: 1\ntenant_id: a\ntenant_id: b\n")
    assert ":3: duplicate key 'tenant_id'" in msg


def test_two_orchestrators_is_an_error(tmp_path: Path) -> None:
    text = FLOOR_OK_HEAD + "  - name: orch2\n    role: orchestrator\n"
    msg = error_of(tmp_path, text)
    assert ":9: agents[2].role: " in msg
    assert "second orchestrator" in msg
    assert "orch2" in msg and "'orchestrator'" in msg


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (FLOOR_OK_HEAD + "colour: red\n", 8, "colour"),
        (FLOOR_OK_HEAD + "    colour: red\n", 8, "agents[1].colour"),
    ],
)
def test_unknown_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    msg = error_of(tmp_path, text)
    assert f":{line}: {field}: unknown field" in msg


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        (["orchestrator"], ["enhancer"]),
        (["enhancer", "coder"], ["orchestrator"]),
        (["coder"], ["orchestrator", "enhancer"]),
        ([], ["orchestrator", "enhancer"]),
    ],
)
def test_below_the_two_agent_floor_is_a_warning_not_an_error(
    tmp_path: Path, roles: list[str], missing: list[str]
) -> None:
    agents = "".join(f"  - name: a{i}\n    role: {role}\n" for i, role in enumerate(roles))
    text = (
        "version: 1\ntenant_id: jarvis\nagents:\n" + agents
        if roles
        else ("version: 1\ntenant_id: jarvis\nagents: []\n")
    )
    loaded = load_roster(write(tmp_path, text))
    assert len(loaded.warnings) == len(missing)
    for role, warning in zip(missing, loaded.warnings, strict=True):
        assert f"no {role}" in warning
        assert "two-agent floor" in warning
        assert str(tmp_path / "roster.yaml") in warning


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    msg = error_of(tmp_path, b"version: 1\ntenant_id: jarvis\nagents:\n  - name: caf\xe9\n")
    assert ":4: roster is not UTF-8" in msg


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    msg = error_of(tmp_path, text)
    assert "empty" in msg


def test_a_huge_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n" + "#" * (2 << 20) + "\n")
    with pytest.raises(RosterError, match="larger than"):
        load_roster(path)


def test_parse_roster_uses_the_given_path_in_messages() -> None:
    with pytest.raises(RosterError, match=r"^/etc/x/roster\.yaml:2: version: "):
        parse_roster("tenant_id: j\nversion: 3\n", Path("/etc/x/roster.yaml"))


def test_a_roster_is_parsed_once_while_its_file_is_unchanged_and_again_when_it_changed(
    tmp_path: Path,
) -> None:
    """The dashboard's budgets and its poller read the roster at start, then every poll: one
    parse while the file is unchanged; an edit is seen at the next read, even one that keeps
    the size and puts the old modification time back."""
    import os
    import time

    from fleet_tui.protocol.files import stable_key

    path = tmp_path / "roster.yaml"
    text = "version: 1\ntenant_id: acme\nagents:\n  - name: aaaa\n    role: coder\n"
    path.write_text(text)
    old = path.stat().st_mtime_ns

    def settled() -> None:  # a file just written may change again unseen: not cached before
        deadline = time.monotonic() + 10
        while stable_key(str(path), path.stat()) is None and time.monotonic() < deadline:
            time.sleep(0.05)

    settled()
    first = load_roster(path)
    assert load_roster(path) is first  # not parsed again
    path.write_text(text.replace("aaaa", "bbbb"))  # same size, same inode
    os.utime(path, ns=(old, old))  # and the same mtime: only the change time moved
    settled()
    assert [a.name for a in load_roster(path).roster.agents] == ["bbbb"]
    path.write_text("version: 1\ntenant_id: acme\nagents: [\n")
    with pytest.raises(RosterError, match="not valid YAML"):
        load_roster(path)
