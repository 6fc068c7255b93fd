"""A REAL OpenSSH server on loopback for the remote-hands tests, and a second private world
behind it playing "the other host".

`start_sshd(folder, remote_world)`: `sshd -D -e -f CONFIG` on a free loopback port with a
throwaway host key (ssh-keygen) and one authorized key, both in `folder`; the client side gets
an ssh_config of its own (`Sshd.client_config`: UserKnownHostsFile holding exactly that host key,
IdentityFile, IdentitiesOnly, no agent), handed to ssh through the hosts mapping's
`ssh_options: [-F, FILE]` (never a product default). The remote fleet-tui command is a wrapper
script that points fleet-tui at the remote world (its TMUX_TMPDIR, XDG state and config
folders) and runs this interpreter's fleet_tui: the "remote host" is that world's tmux and
state dir.

Needs /usr/sbin/sshd (Debian `openssh-server`; .ci/dev installs it) and ssh-keygen; as root sshd
also needs /run/sshd (created here) and `PermitRootLogin prohibit-password`, `StrictModes no`.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import FleetEnv, unavailable

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


@dataclass
class Sshd:
    folder: Path
    port: int
    proc: subprocess.Popen[bytes]
    client_config: Path
    known_hosts: Path
    wrapper: Path
    user: str

    @property
    def dest(self) -> str:
        return f"{self.user}@127.0.0.1"

    def mapping(self, **overrides: object) -> dict[str, object]:
        """A `hosts:` entry reaching this server."""
        entry: dict[str, object] = {
            "ssh": self.dest,
            "port": self.port,
            "fleet_tui": str(self.wrapper),
            "connect_timeout_s": 5,
            "ssh_options": ["-F", str(self.client_config)],
        }
        entry.update(overrides)
        return entry

    def log(self) -> str:
        try:
            return (self.folder / "sshd.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wrapper_script(path: Path, world: FleetEnv) -> None:
    """The remote `fleet-tui`: this interpreter's fleet_tui, in `world`'s folders."""
    env = {
        k: world.env[k]
        for k in ("TMUX_TMPDIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "HOME", "LANG", "LC_ALL")
    }
    exports = "".join(f"export {k}='{v}'\n" for k, v in env.items())
    path.write_text(
        "#!/bin/sh\n"
        "unset TMUX TMUX_PANE MOSAIC_FLEET_ROSTER MOSAIC_FLEET_STATE_DIR\n"
        f"{exports}"
        "export PYTHONUNBUFFERED=1\n"
        f"cd '{world.base}'\n"
        f"exec '{sys.executable}' -m fleet_tui \"$@\"\n"
    )
    path.chmod(0o755)


def start_sshd(folder: Path, remote: FleetEnv) -> Sshd:
    if (
        not os.path.exists(SSHD)
        or shutil.which("ssh") is None
        or shutil.which("ssh-keygen") is None
    ):
        unavailable("no OpenSSH server/client here (Debian openssh-server; .ci/dev installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    keygen(folder / "host_key")
    keygen(folder / "client_key")
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PidFile none\n"
        "StrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "PrintMotd no\n"
        "MaxStartups 50:30:100\n"
        "MaxSessions 50\n"
    )
    known = folder / "known_hosts"
    host_pub = (folder / "host_key.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    client = folder / "ssh_config"
    client.write_text(
        "Host *\n"
        f"  UserKnownHostsFile {known}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        f"  IdentityFile {folder / 'client_key'}\n"
        "  IdentitiesOnly yes\n"
        "  IdentityAgent none\n"
        "  LogLevel ERROR\n"
    )
    wrapper = folder / "fleet-tui-remote"
    wrapper_script(wrapper, remote)
    log = open(folder / "sshd.log", "wb")
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    sshd = Sshd(folder, port, proc, client, known, wrapper, getpass.getuser())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited: {sshd.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return sshd
        time.sleep(0.05)
    sshd.stop()
    raise AssertionError(f"sshd did not listen on {port}: {sshd.log()}")
