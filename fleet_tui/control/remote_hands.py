"""Remote hands (DESIGN.md "Remote hands"): the ONE way to run a fleet-tui verb on another host
of the merged view, over the system's OpenSSH client.

A host is reachable when `hosts:` in fleet-tui.yaml maps it (config.settings.HostSettings); the
command is always

    ssh -o BatchMode=yes -o ConnectTimeout=N [-p PORT] [-t] [SSH_OPTIONS...] -- DEST
        env MOSAIC_FLEET_SURFACE=ssh FLEET_TUI VERB [OPTIONS] -- NAME [...]

- ssh joins the words after DEST into one command line for the remote shell: every word is
  shell-quoted (`shlex.quote`; a leading `~/` of the fleet_tui command is left to the remote
  shell to expand). The agent's name is checked against DESIGN's pattern before it is sent, and
  follows `--`, so a name starting with `-` is never an option there. The destination cannot
  start with `-` (settings refuse it) and follows `--`, so ssh never reads it as an option.
- Host-key checking, keys and agents are the user's own: never StrictHostKeyChecking=no, no
  known_hosts or key of ours. BatchMode: ssh never asks for a password or a host key; it fails
  with a message this module turns into one clear line (`explain`).
- `-t` only for `watch` and `attach` (they hand the terminal over); every other call has a
  timeout on our side too (`run`), so nothing hangs on a host that accepts and never answers.
- The remote verb audits itself on that host with surface `ssh` (the env word above, see
  control.audit.cli_surface); this side audits too (`RemoteHands`: surface `tui`, detail
  "via ssh DEST"), the "started" line first (no record, no action).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_tui import __version__
from fleet_tui.config.settings import HostSettings
from fleet_tui.control.actions import Handover, check_agent_name, need_client
from fleet_tui.control.audit import SURFACE_ENV, record_agent_action
from fleet_tui.control.panes import operator_server
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import (
    EXIT_FAILURE,
    EXIT_NOT_CONFIRMED,
    EXIT_REFUSED,
    AuditUnavailable,
    FleetError,
    Refused,
)
from fleet_tui.model.records import AgentRecord

SSH = "ssh"
TTY_VERBS = frozenset({"watch", "attach"})
LIFECYCLE_VERBS = frozenset({"start", "stop", "restart"})
SEND_TIMEOUT_S = 10.0  # how long the remote `send --verify` waits for the runtime's ack
LIFECYCLE_TIMEOUT_S = 60.0  # a remote stop waits up to its grace period, a start settles
MARGIN_S = 15.0  # on top of the connect timeout and the verb's own time: the call's deadline


class RemoteError(FleetError):
    """A remote verb could not be run, or failed there: one clear line."""

    exit_code = EXIT_FAILURE


class HostUnreachable(RemoteError):
    """The host did not answer (timeout), refused the connection, or has no address."""


class HostKeyRefused(RemoteError):
    """ssh refused the host's key: it changed, or it is not known (BatchMode never asks)."""

    exit_code = EXIT_REFUSED


class AuthRefused(RemoteError):
    """ssh authentication was refused there (Permission denied)."""

    exit_code = EXIT_REFUSED


class RemoteMissing(RemoteError):
    """No fleet-tui at the configured command on that host (exit 127 or 126)."""


class RemoteTooOld(RemoteError):
    """The fleet-tui there does not know the verb or an option (argparse's exit 2)."""


class RemoteFailed(RemoteError):
    """The remote verb ran and failed: its own exit code (3 not found, 4 not confirmed, 5
    refused...) and its one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotMapped(Refused):
    """A remote row whose host has no `hosts:` entry: pane actions stay refused."""


def unmapped_line(host: str) -> str:
    shown = clean_text(host, max_len=64)
    return f"map host {shown} under hosts: in fleet-tui.yaml"


def _quote(word: str) -> str:
    """One word for the remote shell; `~/...` keeps its tilde unquoted (the remote HOME)."""
    if word == "~":
        return "~"
    if word.startswith("~/"):
        rest = word[2:]
        return "~/" + shlex.quote(rest) if rest else "~/"
    return shlex.quote(word)


@dataclass(frozen=True)
class RemoteResult:
    rc: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class RemoteHost:
    """One mapped host: `name` as the merged view shows it, `settings` its `hosts:` entry."""

    name: str
    settings: HostSettings
    ssh: str = SSH

    @property
    def dest(self) -> str:
        return self.settings.ssh

    @property
    def where(self) -> str:
        """How a line names it: `host NAME (DEST)`."""
        return f"host {clean_text(self.name, max_len=64)} ({clean_text(self.dest, max_len=80)})"

    def remote_words(self, verb: str, args: Sequence[str]) -> list[str]:
        """The remote command's words, before quoting: env, fleet-tui, verb, its arguments."""
        try:
            command = shlex.split(self.settings.fleet_tui)
        except ValueError:
            command = [self.settings.fleet_tui]
        return ["env", f"{SURFACE_ENV}=ssh", *command, verb, *args]

    def argv(self, verb: str, args: Sequence[str], *, tty: bool | None = None) -> list[str]:
        """The whole ssh argv for `VERB ARGS` on this host (see the module doc)."""
        s = self.settings
        if s.ssh.startswith("-"):  # the settings refuse it; never let one through
            raise Refused(f"{self.where}: an ssh destination cannot start with '-'")
        use_tty = verb in TTY_VERBS if tty is None else tty
        argv = [
            self.ssh,
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(round(s.connect_timeout_s), 1)}",
        ]
        if s.port is not None:
            argv += ["-p", str(s.port)]
        argv.append("-t" if use_tty else "-T")
        argv += [os.path.expanduser(o) if o.startswith("~") else o for o in s.ssh_options]
        remote = " ".join(_quote(w) for w in self.remote_words(verb, args))
        return [*argv, "--", s.ssh, remote]

    def run(
        self, verb: str, args: Sequence[str], *, input: str | None = None, timeout_s: float
    ) -> RemoteResult:
        """Run `VERB ARGS` there and wait at most `timeout_s` (plus the connect timeout); a
        failure to reach the host or to run fleet-tui raises its RemoteError, a failure of
        the verb itself raises RemoteFailed with its exit code."""
        deadline = self.settings.connect_timeout_s + timeout_s
        try:
            proc = subprocess.run(
                self.argv(verb, args, tty=False),
                input=(input or "").encode("utf-8", "replace"),
                capture_output=True,
                timeout=deadline,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostUnreachable(
                f"{self.where} did not answer within {deadline:g} s: {verb} not confirmed"
            ) from None
        except OSError as exc:
            raise RemoteError(f"ssh could not be started: {exc.strerror or exc}") from None
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        problem = self.explain(proc.returncode, err, verb, stdout=out)
        if problem is not None:
            raise problem
        return RemoteResult(proc.returncode, out, err)

    def explain(self, rc: int, stderr: str, verb: str, *, stdout: str = "") -> RemoteError | None:
        """The RemoteError for exit status `rc` with `stderr` (ssh's or the remote verb's;
        else the verb's last line on `stdout`, as `up` reports there), or None for success."""
        if rc == 0:
            return None
        if rc == 255:
            return self._ssh_error(stderr)
        said = _last_line(stderr) or _last_line(stdout)
        if rc in (126, 127):
            return RemoteMissing(
                f"{self.where}: no fleet-tui at '{clean_text(self.settings.fleet_tui)}' there "
                f"(exit {rc}{': ' + said if said else ''}); set hosts.{self.name}.fleet_tui "
                "in fleet-tui.yaml"
            )
        if rc == 2 and ("invalid choice" in stderr or "unrecognized arguments" in stderr):
            return RemoteTooOld(
                f"{self.where}: the fleet-tui there is too old for `{verb}`: it needs "
                f"fleet-tui >= {__version__} (the one with `stream`)"
            )
        # the far verb's own failure (3 no agent, 4 not confirmed, 5 refused...): its line
        return RemoteFailed(f"on {self.where}: {said or f'exit {rc}'}", rc)

    def _ssh_error(self, stderr: str) -> RemoteError:
        text = stderr.lower()
        said = _last_line(stderr)
        if "remote host identification has changed" in text or "has changed and you" in text:
            return HostKeyRefused(
                f"{self.where}: its host key CHANGED since it was recorded in your known_hosts: "
                "refused (check with the host's owner before you replace it)"
            )
        if "host key verification failed" in text or "host key is known" in text:
            return HostKeyRefused(
                f"{self.where}: its host key is not in your known_hosts (BatchMode does not "
                f"ask): check it and record it once with 'ssh {clean_text(self.dest)}'"
            )
        if "permission denied" in text or "too many authentication failures" in text:
            return AuthRefused(
                f"{self.where}: ssh authentication refused there ({said or 'permission denied'}):"
                " your key or agent is not accepted"
            )
        if "timed out" in text:
            return HostUnreachable(
                f"{self.where} did not answer within "
                f"{self.settings.connect_timeout_s:g} s (ssh: {said or 'timed out'})"
            )
        unreachable = (
            "connection refused",
            "no route to host",
            "could not resolve hostname",
            "name or service not known",
            "network is unreachable",
            "connection closed",
            "connection reset",
            "kex_exchange_identification",
        )
        if any(u in text for u in unreachable):
            return HostUnreachable(f"{self.where} cannot be reached: {said or 'ssh failed'}")
        return RemoteError(f"ssh to {self.where} failed: {said or 'exit 255'}")


def _last_line(text: str) -> str:
    """The last non-empty line of `text`, safe, without the `fleet-tui: ` prefix."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    line = clean_text(lines[-1], max_len=300)
    return line.removeprefix("fleet-tui: ")


@dataclass(frozen=True)
class RemoteSend:
    """A remote `send --verify` that was accepted: the remote verb's own line."""

    line: str


class RemoteHands:
    """The dashboard's pane and lifecycle actions on remote rows whose host is mapped. Every
    action writes a local audit record first (surface `tui`, detail "via ssh DEST"; no
    record, no action), then its outcome; the remote verb audits itself there."""

    def __init__(
        self,
        hosts: Mapping[str, HostSettings],
        state_dir: Path,
        *,
        surface: str = "tui",
        ssh: str = SSH,
    ) -> None:
        self.hosts = dict(hosts)
        self.state_dir = state_dir
        self.surface = surface
        self.ssh = ssh

    def host(self, record: AgentRecord) -> RemoteHost:
        """The mapped host of `record` (a remote row); NotMapped (a Refused) otherwise."""
        settings = self.hosts.get(record.host)
        if settings is None:
            raise NotMapped(unmapped_line(record.host))
        return RemoteHost(record.host, settings, self.ssh)

    def mapped(self, record: AgentRecord) -> bool:
        return record.host in self.hosts

    # -- the audit ----------------------------------------------------------------------------
    def _record(self, action: str, record: AgentRecord, outcome: str, detail: str) -> None:
        record_agent_action(self.state_dir, record, action, outcome, detail, surface=self.surface)

    def intent(self, action: str, record: AgentRecord, detail: str = "") -> RemoteHost:
        """The mapped host, after the "started" record (raises AuditUnavailable: do not act)."""
        check_agent_name(record.name)
        target = self.host(record)
        self._record(action, record, "started", _via(target, detail))
        return target

    def audit(self, action: str, record: AgentRecord, outcome: str, detail: str = "") -> None:
        """An outcome line (best effort: the "started" one was written before)."""
        settings = self.hosts.get(record.host)
        via = _via(RemoteHost(record.host, settings, self.ssh), detail) if settings else detail
        with contextlib.suppress(AuditUnavailable):
            self._record(action, record, outcome, via)

    # -- the verbs ------------------------------------------------------------------------------
    def stream_argv(self, record: AgentRecord, *, lines: int | None = None) -> list[str]:
        """`ssh ... stream --color always --follow -- NAME`: the remote pane, sanitized there
        (and again by the reader here). Not audited here, as a local stream's screen is not;
        the remote verb audits its pipe there."""
        check_agent_name(record.name)
        args = ["--color", "always", "--follow"]
        if lines is not None:
            args += ["--lines", str(int(lines))]
        return self.host(record).argv("stream", [*args, "--", record.name])

    def send(
        self, record: AgentRecord, text: str, *, timeout_s: float = SEND_TIMEOUT_S
    ) -> RemoteSend:
        """`send --verify --timeout T -- NAME -` with the message on stdin (blocking: call it
        from a worker thread). Audited here by hash and length, never by text."""
        from fleet_tui.control.panes import clean_message
        from fleet_tui.protocol.acks import message_hash

        cleaned = clean_message(text)
        digest = f"{message_hash(cleaned)} length={len(cleaned)}"
        target = self.intent("send", record, digest)
        args = ["--verify", "--timeout", f"{timeout_s:g}", "--", record.name, "-"]
        try:
            res = target.run("send", args, input=text, timeout_s=timeout_s + MARGIN_S)
        except RemoteFailed as exc:
            outcome = "unconfirmed" if exc.exit_code == EXIT_NOT_CONFIRMED else "failed"
            self.audit("send", record, outcome, f"{digest} {exc}"[:300])
            raise
        except RemoteError as exc:
            self.audit("send", record, "failed", f"{digest} {exc}"[:300])
            raise
        line = _last_line(res.stdout) or "accepted"
        self.audit("send", record, "accepted", digest)
        return RemoteSend(line)

    def lifecycle(self, record: AgentRecord, verb: str) -> str:
        """`up -- NAME`, `stop --yes -- NAME` or `restart --yes -- NAME` there, after the
        local typed confirmation (blocking: call it from a worker thread); the remote verb's
        report line."""
        if verb not in LIFECYCLE_VERBS:
            raise ValueError(f"unknown lifecycle verb {verb!r}")
        target = self.intent(verb, record)
        remote_verb = "up" if verb == "start" else verb
        args = ["--", record.name] if verb == "start" else ["--yes", "--", record.name]
        try:
            res = target.run(remote_verb, args, timeout_s=LIFECYCLE_TIMEOUT_S)
        except RemoteError as exc:
            self.audit(verb, record, "failed", str(exc)[:300])
            raise
        line = _last_line(res.stdout) or f"{verb} done"
        self.audit(verb, record, "done", line[:200])
        return line

    def handover(self, record: AgentRecord, *, interactive: bool) -> Handover:
        """`ssh -t ... watch -- NAME` or `attach --yes -- NAME` (after the local typed
        confirmation): in a plain terminal run in the foreground (the dashboard suspends);
        inside tmux in a popup on the operator's server, so that `C-b d` reaches the remote
        tmux and not the operator's own client (TMUX-FACTS "Handing the terminal over")."""
        from fleet_tui import tmux as recipe

        verb = "attach" if interactive else "watch"
        env = dict(os.environ)
        args = ["--yes", "--", record.name] if interactive else ["--", record.name]
        check_agent_name(record.name)
        argv = self.host(record).argv(verb, args, tty=True)
        inside = operator_server(env) is not None
        if inside:
            need_client("tmux", env)  # a popup needs a client to be drawn on
        target = self.intent(verb, record, "popup" if inside else "attach")
        if not inside:
            return Handover(argv, blocking=True, env=env)
        title = f" fleet-tui: {'ATTACHED to' if interactive else 'watching'} {record.name} "
        title += f"on {clean_text(target.name, max_len=40)} over ssh "
        # a failing ssh (host key, timeout...) keeps its message on screen until Enter
        keep = (
            '"$@" || { rc=$?; printf "\\n[fleet-tui] ssh ended with status %s: press Enter" '
            '"$rc"; read _; exit "$rc"; }'
        )
        command = shlex.join(["sh", "-c", keep, "sh", *argv])
        popup = recipe.popup("tmux", command, title=title)
        return Handover(popup, blocking=False, env=env)


def _via(target: RemoteHost, detail: str = "") -> str:
    via = f"via ssh {clean_text(target.dest, max_len=80)}"
    return f"{detail} {via}".strip() if detail else via
