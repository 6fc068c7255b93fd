"""systemd --user source: parse one `systemctl --user show` of many units; say "no systemd" plainly."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_tui.model.records import SystemdScan
from fleet_tui.sources.systemd import linger_enabled, parse_show, scan_systemd

# `systemctl --user show -p Id,LoadState,ActiveState,SubState,UnitFileState \
#    mosaic-agent@orchestrator.service mosaic-agent@coder1.service nope.service
#    mosaic-agent@enhancer.service`
SHOW = """\
Id=mosaic-agent@orchestrator.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled

Id=mosaic-agent@coder1.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=disabled

Id=nope.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=

Id=mosaic-agent@enhancer.service
LoadState=loaded
ActiveState=activating
SubState=auto-restart
UnitFileState=enabled-runtime
"""


def test_parse_show_reads_every_block() -> None:
    units = parse_show(SHOW)
    assert list(units) == [
        "mosaic-agent@orchestrator.service",
        "mosaic-agent@coder1.service",
        "nope.service",
        "mosaic-agent@enhancer.service",
    ]
    orch = units["mosaic-agent@orchestrator.service"]
    assert (orch.load_state, orch.active_state, orch.sub_state, orch.unit_file_state) == (
        "loaded",
        "active",
        "running",
        "enabled",
    )
    assert orch.enabled is True
    coder = units["mosaic-agent@coder1.service"]
    assert (coder.active_state, coder.sub_state, coder.enabled) == ("failed", "failed", False)
    enh = units["mosaic-agent@enhancer.service"]
    assert (enh.active_state, enh.sub_state, enh.enabled) == ("activating", "auto-restart", True)


def test_a_unit_systemd_does_not_know_is_not_enabled() -> None:
    nope = parse_show(SHOW)["nope.service"]
    assert nope.load_state == "not-found"
    assert nope.active_state == "inactive"
    assert nope.unit_file_state is None  # empty value, not ""
    assert nope.enabled is False


@pytest.mark.parametrize(
    ("file_state", "enabled"),
    [
        ("enabled", True),
        ("enabled-runtime", True),
        ("indirect", True),
        ("generated", True),
        ("alias", True),
        ("disabled", False),
        ("masked", False),
        ("static", False),
        ("linked", False),
        ("", None),
    ],
)
def test_enabled_follows_unit_file_state(file_state: str, enabled: bool | None) -> None:
    text = f"Id=u.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState={file_state}\n"
    assert parse_show(text)["u.service"].enabled is enabled


def test_parse_show_tolerates_property_order_crlf_and_extra_blank_lines() -> None:
    text = (
        "\r\n"
        "ActiveState=active\r\nId=a.service\r\nSubState=running\r\n\r\n\r\n"
        "UnitFileState=enabled\nLoadState=loaded\nId=b.service\nActiveState=inactive\n\n"
    )
    units = parse_show(text)
    assert set(units) == {"a.service", "b.service"}
    assert units["a.service"].active_state == "active"
    assert units["a.service"].load_state is None
    assert units["b.service"].active_state == "inactive"
    assert units["b.service"].enabled is True


def test_parse_show_keeps_equals_signs_in_values_and_skips_blocks_without_id() -> None:
    text = "Id=x.service\nSubState=a=b\n\nLoadState=loaded\nActiveState=active\n"
    units = parse_show(text)
    assert list(units) == ["x.service"]
    assert units["x.service"].sub_state == "a=b"


def test_parse_show_of_nothing() -> None:
    assert parse_show("") == {}


def test_scan_without_the_systemd_run_dir_says_no_systemd(tmp_path: Path) -> None:
    scan = scan_systemd(["mosaic-agent@a.service"], run_dir=tmp_path / "absent")
    assert scan.available is False
    assert scan.reason is not None and scan.reason.startswith("no systemd")
    assert str(tmp_path / "absent") in scan.reason
    assert scan.units == {}
    assert scan.label == scan.reason


def test_scan_with_the_real_default_path_matches_this_machine() -> None:
    scan = scan_systemd(["mosaic-agent@a.service"])
    if Path("/run/systemd/system").exists():  # a host with systemd: never the "absent" story
        assert scan.reason != "no systemd (/run/systemd/system absent)"
    else:  # this CI: the plain "no systemd" state, without calling systemctl
        assert scan.available is False
        assert scan.reason == "no systemd (/run/systemd/system absent)"


def test_scan_without_systemctl_on_path_says_no_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    scan = scan_systemd(["u.service"], run_dir=tmp_path)
    assert scan.available is False
    assert scan.reason == "no systemd (systemctl not installed)"


def test_linger_is_a_file_named_after_the_user(tmp_path: Path) -> None:
    (tmp_path / "alice").touch()
    assert linger_enabled("alice", root=tmp_path) is True
    assert linger_enabled("bob", root=tmp_path) is False


def test_scan_label() -> None:
    assert SystemdScan(True).label == "available"
    assert SystemdScan(False).label == "unavailable"


def test_a_systemctl_answer_that_is_not_utf8_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a unit description or state with a byte that is not UTF-8 (a stand-in systemctl prints it)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "systemctl"
    fake.write_bytes(
        b"#!/bin/sh\nprintf 'Id=mosaic-agent@a.service\\nLoadState=loaded\\n"
        b"ActiveState=active\\nSubState=r\\377unning\\nUnitFileState=enabled\\n'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    scan = scan_systemd(["mosaic-agent@a.service"], run_dir=tmp_path)
    assert scan.available is True, scan.reason
    unit = scan.units["mosaic-agent@a.service"]
    assert unit.active_state == "active"
