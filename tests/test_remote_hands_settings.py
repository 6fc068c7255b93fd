"""`hosts:` in fleet-tui.yaml (config/settings.py): how the dashboard maps a host of the merged
view to an ssh destination. A bad entry drops only itself with a one-line notice naming it; a
destination that would be an ssh option, a host name outside DESIGN's pattern and an option that
turns host-key checking off are refused."""

from __future__ import annotations

from pathlib import Path

from fleet_tui.config.settings import load_settings


def load(tmp_path: Path, text: str) -> tuple[dict[str, object], list[str]]:
    cfg = tmp_path / "fleet-tui.yaml"
    cfg.write_text(text, encoding="utf-8")
    settings, notice = load_settings(cfg)
    return dict(settings.hosts), (notice or "").splitlines()


def test_a_host_mapping_loads_with_its_defaults(tmp_path: Path) -> None:
    hosts, notices = load(
        tmp_path,
        "hosts:\n"
        "  second-host: {ssh: ops@10.0.0.2, fleet_tui: ~/.local/bin/fleet-tui, port: 2222}\n"
        "  w.example.org: {ssh: w1}\n",
    )
    assert notices == []
    second = hosts["second-host"]
    assert second.ssh == "ops@10.0.0.2" and second.port == 2222  # type: ignore[attr-defined]
    assert second.fleet_tui == "~/.local/bin/fleet-tui"  # type: ignore[attr-defined]
    plain = hosts["w.example.org"]
    assert plain.fleet_tui == "fleet-tui" and plain.port is None  # type: ignore[attr-defined]
    assert plain.ssh_options == [] and plain.connect_timeout_s == 10  # type: ignore[attr-defined]


def test_bad_entries_drop_only_themselves_with_a_notice_each(tmp_path: Path) -> None:
    hosts, notices = load(
        tmp_path,
        "theme: fleet-light\n"
        "hosts:\n"
        "  good: {ssh: ops@good}\n"
        "  injected: {ssh: '-oProxyCommand=touch /tmp/pwned'}\n"
        "  spaced: {ssh: 'ops@h -p 1'}\n"
        "  'bad host/../x': {ssh: h}\n"
        "  -dash: {ssh: h}\n"
        "  lax: {ssh: lax, ssh_options: [-o, StrictHostKeyChecking=no]}\n"
        "  badport: {ssh: h, port: 70000}\n"
        "  nossh: {fleet_tui: fleet-tui}\n"
        "  optcmd: {ssh: h, fleet_tui: '--help'}\n",
    )
    assert sorted(hosts) == ["badport", "good", "lax", "optcmd"]
    assert hosts["lax"].ssh_options == []  # type: ignore[attr-defined]
    assert hosts["badport"].port is None  # type: ignore[attr-defined]
    assert hosts["optcmd"].fleet_tui == "fleet-tui"  # type: ignore[attr-defined]
    text = "\n".join(notices)
    assert "hosts.injected.ssh" in text and "cannot start with '-'" in text
    assert "hosts.spaced.ssh" in text
    assert "hosts.bad host/../x" in text and "hosts.-dash" in text
    assert "StrictHostKeyChecking=no and known hosts in /dev/null are refused" in text
    assert "hosts.badport.port" in text and "hosts.nossh: no ssh" in text
    assert all(line.endswith("; ignored") for line in notices)


def test_the_readme_hosts_example_loads_as_written(tmp_path: Path) -> None:
    import re

    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    after = text[text.index("## Remote hands") :]
    block = re.search(r"```yaml\n(.*?)```", after, re.DOTALL)
    assert block, "no yaml block in README's Remote hands"
    hosts, notices = load(tmp_path, block.group(1))
    assert notices == []
    second = hosts["second-host"]
    assert second.ssh == "ops@10.0.0.2" and second.port == 2222  # type: ignore[attr-defined]
    assert second.ssh_options == ["-F", "~/.ssh/fleet_config"]  # type: ignore[attr-defined]


def test_a_tilde_in_ssh_options_is_this_users_home() -> None:
    from fleet_tui.config.settings import HostSettings
    from fleet_tui.control.remote_hands import RemoteHost

    host = RemoteHost("h", HostSettings(ssh="h", ssh_options=["-F", "~/.ssh/fleet_config"]))
    argv = host.argv("stream", ["--", "a"])
    assert str(Path.home() / ".ssh" / "fleet_config") in argv


def test_every_spelling_that_turns_host_key_checking_off_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from fleet_tui.config.settings import HostSettings

    for options in (
        ["-oStrictHostKeyChecking=false"],
        ["-o", "StrictHostKeyChecking=Off"],
        ["-o", "StrictHostKeyChecking no"],
        ["-o", "stricthostkeychecking='no'"],
        ["-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=/dev/null"],
        ["-oGlobalKnownHostsFile=/dev/null"],
    ):
        with pytest.raises(ValidationError):
            HostSettings(ssh="ops@h", ssh_options=options)
    # what keeps checking on is taken as written
    for options in (
        ["-o", "StrictHostKeyChecking=accept-new"],
        ["-o", "StrictHostKeyChecking=yes"],
    ):
        assert HostSettings(ssh="ops@h", ssh_options=options).ssh_options == options
