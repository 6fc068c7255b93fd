"""Lifecycle: start an agent from its roster definition, stop it, remember operator stops.

DESIGN.md "Lifecycle and supervision". Starting (`plan_launch`, then `start`):

- a session named after the agent on its socket, through the one recipe
  (`tmux.new_agent_session`: `@mosaic_agent`, `window-size manual` at 100x30 unless the roster
  says `width`/`height`, `remain-on-exit` so that a command that dies shows as a dead pane);
- the roster's `command` run by the user's LOGIN shell (`$SHELL -l -c COMMAND`; else the shell of
  the passwd entry; else /bin/sh), so that the runtime's bin dir (`~/.local/bin`, nvm, ...) set up
  by the profile is on PATH, also when started by systemd or cron;
- in `cwd` (`~` expanded; absolute; it must exist: nothing is started otherwise; default: home);
- with the roster's `env`, plus `MOSAIC_AGENT=<name>` and where the fleet's files are
  (`MOSAIC_FLEET_STATE_DIR`, `MOSAIC_FLEET_ROSTER`), so that the runtime's hooks find the spool.

Secrets of the fleet never reach the pane (`is_fleet_secret`: the gateway token, any `*_DSN`,
the variables an alerts file names for its channels' tokens and URLs; and, unless the roster's
`env` gives them to the agent, the OTLP exporter's headers: `is_inherited_secret`):

- tmux copies the environment of the client that STARTS a server into the server's global
  environment, and every pane inherits it: the runner used here has them removed
  (`clean_environ`), so a server started by `up` holds none;
- a server that is already running may hold some (started by a shell that had them): they are
  read from `show-environment -g`, the command is run as `env -u VAR ... SHELL -l -c COMMAND`
  (`new-session -e` can only ADD variables), and the session marks them removed
  (`set-environment -r`: `show-environment -t =NAME:` shows `-VAR`; a respawned pane or a new
  window of the session does not get them either). The server's global environment is left as it
  is: it may be the operator's own server, and their shells may need it.

Stopping (`stop_session`): ask the runtime to end where there is a way we are sure of
(`STOP_REQUESTS`), wait up to the grace period for the pane's process to exit, then
`kill-session -t =NAME`. An operator's stop is remembered in `lifecycle/stopped.json` in the
state dir, so that a supervisor leaves that agent alone; `up NAME` forgets it.

Every tmux call goes through the runner with an exact target (`=NAME:` or a `%N` id).
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fleet_tui import telemetry
from fleet_tui import tmux as recipe
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import (
    AgentNotFound,
    AuditUnavailable,
    BadInput,
    FleetError,
    TmuxError,
    TmuxServerGone,
    TmuxTargetMissing,
)
from fleet_tui.model.records import Lifecycle, Roster, RosterAgent
from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.files import atomic_write, exclusive_lock, read_regular
from fleet_tui.sources.lifecycle_state import MAX_BYTES as MAX_STATE_BYTES
from fleet_tui.sources.lifecycle_state import (
    parse_stopped,
    parse_supervise,
    stopped_path,
    supervise_path,
)
from fleet_tui.sources.systemd import current_user
from fleet_tui.tmux import TmuxRunner, check_session_name, probe_socket, session_target

if TYPE_CHECKING:
    from fleet_tui.config.fleet import FleetConfig

T = TypeVar("T")

DEFAULT_WIDTH = 100
DEFAULT_HEIGHT = 30
DEFAULT_GRACE_S = 10.0
DEFAULT_SETTLE_S = 1.5
STATUS_WAIT_S = 3.0  # settle: how much longer a dead pane may take to show its exit status
START_TIMEOUT_S = 10.0  # new-session may start a server and run the login shell's profile
CRASH_LINES = 5  # last lines of a dead pane shown in `up`'s report

# Exact names of the fleet's own credentials; any `*_DSN` and the MOSAIC_FLEET_* variables that
# name a token, secret or password are secrets too (`is_fleet_secret`).
SECRET_NAMES = frozenset(
    {
        "MOSAIC_FLEET_GATEWAY_TOKEN",
        "MOSAIC_FLEET_GATEWAY_DSN",
        "FLEET_TEST_PG_DSN",
        "PGPASSWORD",
    }
)
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "DSN")


class LaunchError(BadInput):
    """An agent cannot be started as its roster says (a cwd that does not exist, a secret in
    its env): one line, nothing started."""


def is_fleet_secret(name: str, extra: Collection[str] = ()) -> bool:
    """Whether the environment variable `name` holds a secret of the fleet."""
    if name in SECRET_NAMES or name in extra or name.endswith("_DSN"):
        return True
    return name.startswith("MOSAIC_FLEET_") and any(w in name for w in _SECRET_WORDS)


# The fleet's own collector credentials (OTLP exporter headers often hold an API key): never
# inherited by a pane, but a roster `env` may give an agent its own.
INHERITED_SECRETS = frozenset(
    f"OTEL_EXPORTER_OTLP_{part}HEADERS" for part in ("", "TRACES_", "METRICS_", "LOGS_")
)


def is_inherited_secret(name: str, extra: Collection[str] = ()) -> bool:
    """Whether a pane must not inherit the variable `name` from the fleet's environment."""
    return name in INHERITED_SECRETS or is_fleet_secret(name, extra)


def clean_environ(environ: Mapping[str, str], extra: Collection[str] = ()) -> dict[str, str]:
    """`environ` without the fleet's secrets (and without `TMUX`/`TMUX_PANE`): the environment
    of the tmux client that may start a server, whose global environment every pane inherits."""
    return {
        k: v
        for k, v in environ.items()
        if not is_inherited_secret(k, extra) and k not in ("TMUX", "TMUX_PANE")
    }


def alert_secret_names(alerts_path: Path) -> set[str]:
    """The variables an alerts file names for its channels' secrets (`token_env`, `url_env`: a
    webhook URL is itself a secret). An unreadable or invalid file names none (`alerts` reports
    it)."""
    from fleet_tui.sources.alerts import load_alerts

    try:
        if not alerts_path.exists():
            return set()
        channels = load_alerts(alerts_path).config.channels
    except Exception:  # someone else's file to report: never in the way of `up`
        return set()
    return {v for c in channels for v in (c.token_env, c.url_env) if v}


def lifecycle_runner(
    *, environ: Mapping[str, str] | None = None, extra_secrets: Collection[str] = ()
) -> TmuxRunner:
    """A runner whose tmux clients carry no fleet secret (see `clean_environ`)."""
    env = clean_environ(os.environ if environ is None else environ, extra_secrets)
    return TmuxRunner(env=env, timeout=3.0)  # new-session gets START_TIMEOUT_S


def _executable(path: str | None) -> bool:
    return bool(path) and os.path.isabs(str(path)) and os.access(str(path), os.X_OK)


def login_shell(environ: Mapping[str, str] | None = None) -> str:
    """The user's login shell: `$SHELL`, else the passwd entry's, else /bin/sh."""
    env = os.environ if environ is None else environ
    shell = env.get("SHELL")
    if _executable(shell):
        return str(shell)
    try:
        entry = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        entry = ""
    return entry if _executable(entry) else "/bin/sh"


# -- planning a start -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How one agent is started: `shell -l -c command` in `cwd` with `env`, on `socket`."""

    name: str
    socket: str
    runtime: str
    command: str
    shell: str
    cwd: str
    env: dict[str, str]
    width: int
    height: int

    def argv(self, unset: Sequence[str] = ()) -> list[str]:
        """The pane's argv; `unset` variables are removed first (`env -u`: `-e` only adds)."""
        prefix = ["env", *(a for v in unset for a in ("-u", v))] if unset else []
        return [*prefix, self.shell, "-l", "-c", self.command]

    def describe(self) -> str:
        """One line for `--dry-run` (the names of the env variables, not their values)."""
        extra = sorted(k for k in self.env if not k.startswith("MOSAIC_"))
        env = f", env {' '.join(extra)}" if extra else ""
        return (
            f"{self.shell} -l -c {clean_text(self.command, max_len=200)!r} in "
            f"{clean_text(self.cwd)} (socket {self.socket}, {self.width}x{self.height}{env})"
        )


def expand_cwd(cwd: str | None, home: str | None = None) -> str:
    """The working directory a roster `cwd` names: `~` expanded; absent = the home directory.
    A relative path is refused (it would depend on where `up` happens to run)."""
    home = home or os.path.expanduser("~")
    if not cwd:
        return home
    if cwd == "~" or cwd.startswith("~/"):
        path = home + cwd[1:]
    else:
        path = os.path.expanduser(cwd)
    if not os.path.isabs(path):
        raise LaunchError(f"cwd '{clean_text(cwd)}' is relative: write it absolute or from '~'")
    return os.path.normpath(path)


def plan_launch(
    roster: Roster,
    agent: RosterAgent,
    *,
    state_dir: Path,
    roster_path: Path | None,
    environ: Mapping[str, str] | None = None,
    extra_secrets: Collection[str] = (),
) -> Launch | None:
    """How `agent` is started, or None when its roster entry has no `command` (not startable:
    never guessed). Raises `LaunchError` for a cwd that is not a directory or an `env` that
    names a fleet secret."""
    if agent.command is None or not agent.command.strip():
        return None
    env_in = os.environ if environ is None else environ
    cwd = expand_cwd(agent.cwd, env_in.get("HOME"))
    if not os.path.isdir(cwd):
        why = "is not a directory" if os.path.exists(cwd) else "does not exist"
        raise LaunchError(f"cwd {clean_text(cwd)} {why}")
    env: dict[str, str] = {}
    for key, value in (agent.env or {}).items():
        if is_fleet_secret(key, extra_secrets):
            raise LaunchError(f"env {key}: a fleet secret never goes to an agent's pane")
        env[key] = value
    env["MOSAIC_AGENT"] = agent.name
    env["MOSAIC_FLEET_STATE_DIR"] = str(state_dir)
    if roster_path is not None:
        env["MOSAIC_FLEET_ROSTER"] = str(roster_path)
    return Launch(
        name=check_session_name(agent.name),
        socket=roster.agent_socket(agent),
        runtime=agent.runtime,
        command=agent.command,
        shell=login_shell(env_in),
        cwd=cwd,
        env=env,
        width=agent.width or DEFAULT_WIDTH,
        height=agent.height or DEFAULT_HEIGHT,
    )


def always_on(roster: Roster) -> list[RosterAgent]:
    return [a for a in roster.agents if a.lifecycle is Lifecycle.ALWAYS_ON]


# -- what runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaneState:
    """The first pane of an agent's session: alive, or dead with its exit status."""

    pane_id: str
    pid: int | None
    dead: bool
    status: int | None


_PANE_FIELDS = ("pane_id", "pane_pid", "pane_dead", "pane_dead_status")


def session_state(runner: TmuxRunner, socket: str, name: str) -> PaneState | None:
    """The agent's session's first pane, or None when there is no such session (or no server).
    A hung server raises `TmuxTimeout`."""
    path = runner.socket_path(socket)
    if probe_socket(path) != recipe.Liveness.LIVE:
        return None
    fmt = recipe.field_format(_PANE_FIELDS)
    try:
        out = runner.run(socket, "list-panes", "-s", "-t", session_target(name), "-F", fmt)
    except (TmuxServerGone, TmuxTargetMissing):
        return None
    lines = [line for line in out.stdout.splitlines() if line]
    if not lines:
        return None
    pane_id, pid, dead, status = [*lines[0].split(recipe.FIELD_SEP), "", "", "", ""][:4]
    return PaneState(
        pane_id=pane_id,
        pid=int(pid) if pid.isdigit() else None,
        dead=dead == "1",
        status=int(status) if status.lstrip("-").isdigit() else None,
    )


def server_secrets(runner: TmuxRunner, socket: str, extra: Collection[str] = ()) -> list[str]:
    """The fleet secrets in the global environment of the (running) server on `socket`."""
    if probe_socket(runner.socket_path(socket)) != recipe.Liveness.LIVE:
        return []
    try:
        out = runner.run(socket, "show-environment", "-g").stdout
    except (TmuxServerGone, TmuxTargetMissing):
        return []
    names = []
    for line in out.splitlines():
        if "=" in line and not line.startswith("-"):
            key = line.split("=", 1)[0]
            if is_inherited_secret(key, extra):
                names.append(key)
    return sorted(set(names))


def last_lines(
    runner: TmuxRunner, socket: str, pane_id: str, count: int = CRASH_LINES
) -> list[str]:
    """The last non-empty lines of a pane (a dead one's last words), sanitized."""
    try:
        out = runner.run(socket, *recipe.capture(pane_id, history=200)).stdout
    except TmuxError:
        return []
    lines = [clean_text(line, max_len=200).rstrip() for line in out.splitlines()]
    # tmux's own "Pane is dead (status 3, <date>)" line (remain-on-exit) says nothing new
    lines = [line for line in lines if line.strip() and not line.startswith("Pane is dead (")]
    return lines[-count:]


# -- starting ---------------------------------------------------------------------------------------


@dataclass
class StartResult:
    """What became of one start: `outcome` is started | already_running | down | error (and,
    from `start_agents`, not_startable | left_stopped | would_start)."""

    name: str
    outcome: str
    detail: str = ""
    pane: PaneState | None = None
    last: list[str] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)
    socket: str = ""
    launch: Launch | None = None


def start(
    runner: TmuxRunner, launch: Launch, *, extra_secrets: Collection[str] = ()
) -> StartResult:
    """Create the agent's session as `launch` says. A live session is left alone
    ("already_running"); a session whose pane died is closed first and started anew."""
    state = session_state(runner, launch.socket, launch.name)
    if state is not None and not state.dead:
        return StartResult(launch.name, "already_running", f"pane {state.pane_id}", state)
    if state is not None:
        kill_session(runner, launch.socket, launch.name)
    # what the roster gives the agent itself stays (a fleet secret never gets that far)
    unset = [v for v in server_secrets(runner, launch.socket, extra_secrets) if v not in launch.env]
    target = session_target(launch.name)
    scrub: list[str] = []
    for var in unset:
        scrub += [";", "set-environment", "-t", target, "-r", var]
    runner.ensure_socket_dir()
    args = recipe.new_agent_session(
        launch.name,
        launch.argv(unset),
        width=launch.width,
        height=launch.height,
        cwd=launch.cwd,
        env=launch.env,
    )
    try:
        try:
            runner.run(launch.socket, *args, *scrub, timeout=START_TIMEOUT_S)
        except TmuxServerGone:
            # The server was exiting (its last session, this agent's dead one, just closed) and
            # dropped the call before making the session: once it is gone, a new one starts.
            _wait_gone(runner.socket_path(launch.socket))
            runner.run(launch.socket, *args, *scrub, timeout=START_TIMEOUT_S)
    except TmuxError as exc:
        if "duplicate session" in exc.stderr:
            return StartResult(launch.name, "already_running", "started meanwhile by someone else")
        return StartResult(launch.name, "error", str(exc))
    return StartResult(launch.name, "started", unset=unset)


def _wait_gone(path: Path, limit_s: float = 2.0, poll_s: float = 0.02) -> None:
    """Wait (at most `limit_s`) until no server answers on `path` any more."""
    deadline = time.monotonic() + limit_s
    while probe_socket(path) == recipe.Liveness.LIVE and time.monotonic() < deadline:
        time.sleep(poll_s)


def zombie_status(state: PaneState) -> PaneState:
    """A dead pane whose exit status tmux has not filled in, with the status read from its
    process: tmux 3.3a now and then misses the SIGCHLD of a process that exits at once (measured:
    3 of 20 starts of `bash -l -c 'exit 3'`), so the pane is dead (its terminal closed) but
    `pane_dead_status` stays empty until tmux reaps its next child, and the process waits as a
    zombie whose `exit_code` (/proc/PID/stat, field 52, Linux >= 3.5) is the waitpid status.
    Unchanged when that cannot be read (not a zombie, gone, another system)."""
    if state.pid is None:
        return state
    try:
        with open(f"/proc/{state.pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return state
    if len(fields) < 50 or fields[0] != "Z" or not fields[49].isdigit():
        return state
    code = int(fields[49])
    if code & 0x7F:  # killed by a signal: the shell's convention
        return replace(state, status=128 + (code & 0x7F))
    return replace(state, status=(code >> 8) & 0xFF)


def settle(
    runner: TmuxRunner,
    launches: Sequence[Launch],
    results: dict[str, StartResult],
    *,
    settle_s: float = DEFAULT_SETTLE_S,
    poll_s: float = 0.1,
) -> None:
    """Watch the agents just started for `settle_s`: one whose command exited at once (a crash
    loop in the making) becomes "down" with its exit status and last lines of output."""
    todo = {la.name: la for la in launches if results[la.name].outcome == "started"}
    deadline = time.monotonic() + settle_s
    # a pane seen dead without its status yet gets this much longer for it (a loaded machine)
    status_deadline = deadline + STATUS_WAIT_S
    while todo:
        unreaped = False
        for name, la in list(todo.items()):
            state = session_state(runner, la.socket, name)
            res = results[name]
            if state is not None and state.dead and state.status is None:
                state = zombie_status(state)
            if state is None:
                res.outcome, res.detail = "down", "its session is gone (the command exited)"
                del todo[name]
            elif state.dead and state.status is None and time.monotonic() < status_deadline:
                unreaped = True  # tmux marks the pane dead before it has reaped the status
                continue
            elif state.dead:
                res.outcome, res.pane = "down", state
                code = "?" if state.status is None else str(state.status)
                res.detail = f"the command exited at once (exit status {code})"
                res.last = last_lines(runner, la.socket, state.pane_id)
                del todo[name]
            else:
                res.pane = state
        now = time.monotonic()
        if not todo or now >= status_deadline or (now >= deadline and not unreaped):
            break
        time.sleep(poll_s)


# -- stopping ---------------------------------------------------------------------------------------

# What each runtime is sent to ask it to end, when we are sure it honours it. `stub` ends on
# SIGINT (C-c on its terminal) and writes a last heartbeat saying `stopping`. Claude Code has
# `/exit` and Codex `/quit`, but typed into a composer that holds an operator's half-written text
# they would become part of a message to the model: nothing is typed into them; their session is
# closed (tmux sends the pane's process SIGHUP, as a closed terminal would).
STOP_REQUESTS: dict[str, list[str]] = {"stub": ["C-c"]}


@dataclass
class StopResult:
    name: str
    outcome: str  # stopped | not_running
    detail: str = ""
    asked: bool = False
    ended_after: float | None = None


def kill_session(runner: TmuxRunner, socket: str, name: str) -> bool:
    """`kill-session -t =NAME`; False when there was no such session (or no server)."""
    try:
        runner.run(socket, "kill-session", "-t", f"={check_session_name(name)}")
    except (TmuxServerGone, TmuxTargetMissing):
        return False
    return True


def stop_session(
    runner: TmuxRunner,
    socket: str,
    name: str,
    runtime: str,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    poll_s: float = 0.1,
) -> StopResult:
    """Ask the runtime to end (`STOP_REQUESTS`), wait up to `grace_s` for its pane's process to
    exit, then close the session. Nothing asked: closed at once (waiting would change nothing)."""
    state = session_state(runner, socket, name)
    if state is None:
        return StopResult(name, "not_running", "no session")
    keys = STOP_REQUESTS.get(runtime)
    asked = False
    ended: float | None = None
    if not state.dead and keys:
        try:
            runner.run(socket, *recipe.leave_mode(state.pane_id))
            runner.run(socket, "send-keys", "-t", state.pane_id, *keys)
            asked = True
        except (TmuxServerGone, TmuxTargetMissing):
            return StopResult(name, "not_running", "the session ended meanwhile")
        t0 = time.monotonic()
        while time.monotonic() - t0 < grace_s:
            now = session_state(runner, socket, name)
            if now is None or now.dead:
                ended = time.monotonic() - t0
                break
            time.sleep(poll_s)
    killed = kill_session(runner, socket, name)
    if state.dead:
        detail = "its process had already exited; session closed"
    elif ended is not None:
        detail = f"the runtime ended {ended:.1f} s after {'+'.join(keys or [])}; session closed"
    elif asked:
        detail = f"still running after the {grace_s:g} s grace period: session killed"
    else:
        detail = f"no stop request known for runtime '{runtime}': session closed (SIGHUP)"
    if not killed and ended is None and not state.dead:
        detail = "the session ended meanwhile"
    return StopResult(name, "stopped", detail, asked, ended)


# -- operator stops, remembered -------------------------------------------------------------------


def read_stopped(state_dir: Path) -> dict[str, dict[str, object]]:
    """Agents an operator stopped on purpose: name -> {ts, user, uid, surface}. A missing file
    is none; an unreadable or invalid one raises `BadInput` naming it (a supervisor must not
    take "cannot tell" for "none")."""
    path = stopped_path(state_dir)
    try:
        raw = read_regular(path, MAX_STATE_BYTES)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse_stopped(raw)
    except ValueError:
        raise BadInput(f"{path}: not a stopped-agents file (JSON with 'agents')") from None


def _update_stopped(state_dir: Path, change: dict[str, dict[str, object] | None]) -> None:
    path = stopped_path(state_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadInput(f"{path.parent}: cannot create: {exc.strerror or exc}") from None
    with exclusive_lock(path.parent / ".stopped.lock", 5.0):
        agents = read_stopped(state_dir)
        for name, entry in change.items():
            if entry is None:
                agents.pop(name, None)
            else:
                agents[name] = entry
        data = json.dumps({"v": 1, "agents": agents}, indent=1, sort_keys=True) + "\n"
        try:
            atomic_write(path, data, mode=0o600)
        except OSError as exc:
            raise BadInput(f"{path}: cannot write: {exc.strerror or exc}") from None


def remember_stop(state_dir: Path, name: str, *, now: datetime, surface: str) -> None:
    """Record that an operator stopped `name` on purpose (who, when, from where)."""
    entry: dict[str, object] = {
        "ts": format_ts(now),
        "user": current_user(),
        "uid": os.getuid(),
        "surface": surface,
    }
    _update_stopped(state_dir, {name: entry})


def forget_stops(state_dir: Path, names: Iterable[str]) -> list[str]:
    """Forget the operator stops of `names` (they are being started on purpose); returns those
    that were remembered."""
    known = read_stopped(state_dir)
    gone = [n for n in names if n in known]
    if gone:
        _update_stopped(state_dir, {n: None for n in gone})
    return gone


# -- the supervisor's state: restart times and holds -----------------------------------------------


def read_supervise(state_dir: Path) -> dict[str, Any]:
    """supervise.json (`sources.lifecycle_state.parse_supervise`): missing = empty; unreadable
    or invalid raises `BadInput` naming it (a held agent must not be taken for a free one)."""
    path = supervise_path(state_dir)
    try:
        raw = read_regular(path, MAX_STATE_BYTES)
    except FileNotFoundError:
        return {"agents": {}, "last_restart": None}
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse_supervise(raw)
    except ValueError:
        raise BadInput(f"{path}: not a supervise state file (JSON with 'agents')") from None


def update_supervise(state_dir: Path, change: Callable[[dict[str, Any]], T]) -> T:
    """Read supervise.json, let `change` edit it in place (`{"agents": {...}, "last_restart"}`),
    write it back atomically if it changed, all under the lifecycle folder's flock (two
    supervisors, or a supervisor and an operator's `up`, never lose each other's update).
    Returns what `change` returns."""
    path = supervise_path(state_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadInput(f"{path.parent}: cannot create: {exc.strerror or exc}") from None
    with exclusive_lock(path.parent / ".supervise.lock", 5.0):
        doc = read_supervise(state_dir)
        before = json.dumps(doc, sort_keys=True)
        out = change(doc)
        if json.dumps(doc, sort_keys=True) != before:
            data = json.dumps({"v": 1, **doc}, indent=1, sort_keys=True) + "\n"
            try:
                atomic_write(path, data, mode=0o600)
            except OSError as exc:
                raise BadInput(f"{path}: cannot write: {exc.strerror or exc}") from None
    return out


def release_holds(state_dir: Path, names: Iterable[str]) -> list[str]:
    """Release the supervisor's holds on `names` (an operator starts them on purpose) and
    forget their restart times (they get the supervisor's full allowance again); returns the
    names that were held."""
    wanted = list(names)
    if not supervise_path(state_dir).exists():
        return []

    def change(doc: dict[str, Any]) -> list[str]:
        agents = doc["agents"]
        held = [n for n in wanted if n in agents and agents[n].get("held") is not None]
        for n in wanted:
            agents.pop(n, None)
        return held

    return update_supervise(state_dir, change)


# -- operator calls: the CLI, the dashboard and the supervisor -------------------------------------
#
# Each call loads the roster, finds the agent(s), plans BEFORE it changes anything (an agent that
# cannot be started again is not stopped), audits itself with the caller's `surface` (`cli`,
# `tui`, `supervise`): the "started" record is written first and an action whose record cannot
# be written is refused (`AuditUnavailable`, exit 5), then the outcome. Audit records written
# after the action that fail are passed to `warn` (one line each), never raised.

Warn = Callable[[str], None]


def _ignore(_line: str) -> None:
    return None


@dataclass
class FleetRoster:
    """The configuration and roster one lifecycle call works from."""

    config: FleetConfig
    roster: Roster
    path: Path
    tenant: str
    host: str

    def agent(self, name: str) -> RosterAgent | None:
        return next((a for a in self.roster.agents if a.name == name), None)

    def extra_secrets(self) -> set[str]:
        return alert_secret_names(self.config.alerts.path)

    def plan(self, agent: RosterAgent, extra: Collection[str] = ()) -> Launch | None:
        return plan_launch(
            self.roster,
            agent,
            state_dir=self.config.state_dir,
            roster_path=self.path,
            extra_secrets=extra,
        )


def load_fleet_roster(config: FleetConfig, action: str = "start") -> FleetRoster:
    """The roster `config` names; `BadInput` when there is none (`RosterError` when invalid)."""
    from fleet_tui.config.fleet import load_configured_roster
    from fleet_tui.config.identity import local_identity

    loaded = load_configured_roster(config)
    if loaded is None:
        raise BadInput(
            f"no roster at {config.roster.path}: {action} starts and stops agents "
            "from their roster definition (--roster PATH, env MOSAIC_FLEET_ROSTER)"
        )
    tenant, host = local_identity(loaded.roster)
    return FleetRoster(config, loaded.roster, loaded.path, tenant, host)


def audit_action(
    fleet: FleetRoster,
    *,
    action: str,
    agent: str,
    outcome: str,
    detail: str = "",
    surface: str,
    required: bool = False,
    now: datetime | None = None,
    warn: Warn = _ignore,
) -> None:
    """One audit record. A `required` one (written before the action) that cannot be written
    raises `AuditUnavailable` (the action must not happen); otherwise `warn` gets one line.
    With traces on, also an event of the current `fleet.lifecycle.*` span (and its attributes:
    the last record's agent and outcome)."""
    from fleet_tui.control.audit import audit_path, record_action

    if telemetry.enabled():
        said = {"tenant": fleet.tenant, "host": fleet.host, "agent": agent, "outcome": outcome}
        telemetry.note(**said, surface=surface, action=action)
        telemetry.event("fleet.audit", **said, action=action)

    try:
        record_action(
            fleet.config.state_dir,
            now=now or datetime.now(UTC),
            tenant_id=fleet.tenant,
            host=fleet.host,
            action=action,
            agent=agent,
            outcome=outcome,
            detail=detail[:500],
            surface=surface,
        )
    except (OSError, AuditUnavailable) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if required:
            raise AuditUnavailable(
                f"{action} {agent}: refused: the audit log "
                f"{audit_path(fleet.config.state_dir)} cannot be written ({why})"
            ) from None
        warn(f"warning: audit log not written: {why}")


def find_agent(
    fleet: FleetRoster, name: str, *, action: str, surface: str, warn: Warn = _ignore
) -> RosterAgent:
    """The roster agent `name`; `InvalidAgentName` (exit 2) for a name tmux would rewrite,
    `AgentNotFound` (exit 3, audited) for one not in the roster."""
    check_session_name(name)
    agent = fleet.agent(name)
    if agent is not None:
        return agent
    audit_action(
        fleet,
        action=action,
        agent=name,
        outcome="not_found",
        detail="not in the roster",
        surface=surface,
        warn=warn,
    )
    near = sorted(a.name for a in fleet.roster.agents if name in a.name or a.name in name)
    hint = f" (did you mean {', '.join(near[:3])}?)" if near else ""
    raise AgentNotFound(
        f"no agent named '{clean_text(name, max_len=64)}' in the roster "
        f"{clean_text(str(fleet.path))}{hint}"
    )


def _start_audit(
    fleet: FleetRoster,
    *,
    surface: str,
    now: datetime | None,
    warn: Warn,
    enabled: bool = True,
) -> Callable[..., None]:
    """`audit(name, outcome, detail, required=False)`: a `start` record of `surface` (nothing
    when not `enabled`: a dry run)."""

    def audit(name: str, outcome: str, detail: str, *, required: bool = False) -> None:
        if enabled:
            audit_action(
                fleet,
                action="start",
                agent=name,
                outcome=outcome,
                detail=detail,
                surface=surface,
                required=required,
                now=now,
                warn=warn,
            )

    return audit


def _start_planned(
    fleet: FleetRoster,
    runner: TmuxRunner,
    launches: Sequence[Launch],
    results: dict[str, StartResult],
    *,
    surface: str,
    settle_s: float,
    extra: Collection[str],
    warn: Warn,
    now: datetime | None,
) -> None:
    """Start `launches` (audited `start`: the record first), then watch them for `settle_s`."""
    audit = _start_audit(fleet, surface=surface, now=now, warn=warn)
    for la in launches:
        try:
            state = session_state(runner, la.socket, la.name)
        except FleetError as exc:
            results[la.name] = StartResult(la.name, "error", str(exc), socket=la.socket)
            audit(la.name, "failed", str(exc))
            continue
        if state is not None and not state.dead:
            results[la.name] = StartResult(la.name, "already_running", pane=state, socket=la.socket)
            audit(la.name, "already_running", f"pane {state.pane_id}")
            continue
        audit(la.name, "started", f"socket {la.socket}", required=True)
        try:
            results[la.name] = start(runner, la, extra_secrets=extra)
        except FleetError as exc:
            results[la.name] = StartResult(la.name, "error", str(exc))
        results[la.name].socket = la.socket
    settle(runner, launches, results, settle_s=settle_s)
    for la in launches:
        res = results[la.name]
        if res.outcome == "started":
            audit(la.name, "running", f"pane {res.pane.pane_id if res.pane else '?'}")
        elif res.outcome == "down":
            audit(la.name, "down", res.detail + "".join(f" | {x}" for x in res.last))
        elif res.outcome == "error":
            audit(la.name, "failed", res.detail)


@telemetry.traced("fleet.lifecycle.start")
def start_agents(
    config: FleetConfig,
    names: Sequence[str] = (),
    *,
    dry_run: bool = False,
    surface: str = "cli",
    settle_s: float = DEFAULT_SETTLE_S,
    now: datetime | None = None,
    warn: Warn = _ignore,
    fleet: FleetRoster | None = None,
) -> list[StartResult]:
    """`up`: start the named agents (any lifecycle; their operator stops and supervisor holds
    are forgotten), or with no names every always-on agent without a live session that no
    operator stopped on purpose. One result per agent, in roster (or argument) order, outcome:
    started | already_running | down (exited at once: detail, last lines) | error (a bad cwd,
    env or tmux failure) | not_startable (no command) | left_stopped (stopped on purpose; detail
    says by whom) | would_start (`dry_run`: detail is the launch; nothing changes, no audit).
    Raises `BadInput` (no roster, a bad name, an unreadable stopped.json), `AgentNotFound` (a
    name not in the roster: nothing started), `AuditUnavailable` (refused)."""
    fleet = fleet or load_fleet_roster(config)
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        check_session_name(name)
    agents = (
        [find_agent(fleet, n, action="start", surface=surface, warn=warn) for n in wanted]
        if wanted
        else always_on(fleet.roster)
    )
    extra = fleet.extra_secrets()
    stopped = read_stopped(config.state_dir)
    results: dict[str, StartResult] = {}
    launches: list[Launch] = []

    audit = _start_audit(fleet, surface=surface, now=now, warn=warn, enabled=not dry_run)
    for agent in agents:
        socket = fleet.roster.agent_socket(agent)
        if not wanted and agent.name in stopped:
            who = stopped[agent.name]
            user, ts = clean_text(str(who.get("user"))), clean_text(str(who.get("ts")))
            detail = f"stopped by {user} at {ts}"
            results[agent.name] = StartResult(agent.name, "left_stopped", detail, socket=socket)
            continue
        try:
            launch = fleet.plan(agent, extra)
        except LaunchError as exc:
            results[agent.name] = StartResult(agent.name, "error", str(exc), socket=socket)
            audit(agent.name, "failed", str(exc))
            continue
        if launch is None:
            why = "no command in the roster"
            results[agent.name] = StartResult(agent.name, "not_startable", why, socket=socket)
            audit(agent.name, "not_startable", why)
            continue
        launches.append(launch)
    if dry_run:
        runner = lifecycle_runner(extra_secrets=extra)
        for la in launches:
            state = session_state(runner, la.socket, la.name)
            if state is not None and not state.dead:
                res = StartResult(la.name, "already_running", pane=state, socket=la.socket)
            else:
                res = StartResult(la.name, "would_start", la.describe(), socket=la.socket)
                res.launch = la
            results[la.name] = res
        return [results[a.name] for a in agents]
    if wanted and launches:
        on_purpose = [la.name for la in launches]
        forget_stops(config.state_dir, on_purpose)
        release_holds(config.state_dir, on_purpose)
    runner = lifecycle_runner(extra_secrets=extra)
    _start_planned(
        fleet,
        runner,
        launches,
        results,
        surface=surface,
        settle_s=settle_s,
        extra=extra,
        warn=warn,
        now=now,
    )
    return [results[a.name] for a in agents]


@telemetry.traced("fleet.lifecycle.stop")
def stop_agent(
    config: FleetConfig,
    name: str,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    surface: str = "cli",
    confirm: Callable[[FleetRoster, str], None] | None = None,
    now: datetime | None = None,
    warn: Warn = _ignore,
    fleet: FleetRoster | None = None,
) -> StopResult:
    """`stop`: ask the runtime to end, close the session after `grace_s`, remember the stop
    (a plain `up` and the supervisor leave the agent alone until `up NAME`). `confirm` (the
    CLI's typed name) is called once the agent is found, before anything happens; it raises to
    refuse. Outcome stopped | not_running (also remembered). Raises `BadInput` (no roster, a bad
    name), `AgentNotFound`, `AuditUnavailable`, and a `FleetError` from tmux (audited failed)."""
    fleet = fleet or load_fleet_roster(config, "stop")
    agent = find_agent(fleet, name, action="stop", surface=surface, warn=warn)
    if confirm is not None:
        confirm(fleet, name)

    def audit(outcome: str, detail: str, *, required: bool = False) -> None:
        audit_action(
            fleet,
            action="stop",
            agent=name,
            outcome=outcome,
            detail=detail,
            surface=surface,
            required=required,
            now=now,
            warn=warn,
        )

    audit("started", f"grace {grace_s:g} s", required=True)
    try:
        runner = lifecycle_runner()
        socket = fleet.roster.agent_socket(agent)
        res = stop_session(runner, socket, name, agent.runtime, grace_s=grace_s)
        remember_stop(config.state_dir, name, now=now or datetime.now(UTC), surface=surface)
    except FleetError as exc:
        audit("failed", str(exc))
        raise
    said = "was not running" if res.outcome == "not_running" else "stopped"
    audit("stopped", f"{said} ({res.detail})")
    return res


@dataclass
class RestartResult:
    """What `restart_agent` did: the stop (stopped | not_running), then the start."""

    name: str
    stop: StopResult
    start: StartResult

    @property
    def failed(self) -> bool:
        return self.start.outcome not in ("started", "already_running")


@telemetry.traced("fleet.lifecycle.restart")
def restart_agent(
    config: FleetConfig,
    name: str,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    surface: str = "cli",
    settle_s: float = DEFAULT_SETTLE_S,
    confirm: Callable[[FleetRoster, str], None] | None = None,
    action: str = "restart",
    now: datetime | None = None,
    warn: Warn = _ignore,
    fleet: FleetRoster | None = None,
) -> RestartResult:
    """`restart`: plan the start first (not startable or a bad cwd/env: `BadInput`, audited,
    NOTHING stopped), `confirm` (raises to refuse), then stop the session if there is one,
    start from the roster and watch it `settle_s`. An operator's restart (any surface but
    `supervise`) forgets the agent's stop and supervisor hold. `action` is the audit action
    (the supervisor audits a start of a missing session as `start`). Raises `BadInput`,
    `AgentNotFound`, `AuditUnavailable`, and a `FleetError` from tmux (audited failed)."""
    fleet = fleet or load_fleet_roster(config, action)
    agent = find_agent(fleet, name, action=action, surface=surface, warn=warn)

    def audit(outcome: str, detail: str, *, required: bool = False) -> None:
        audit_action(
            fleet,
            action=action,
            agent=name,
            outcome=outcome,
            detail=detail,
            surface=surface,
            required=required,
            now=now,
            warn=warn,
        )

    extra = fleet.extra_secrets()
    try:
        launch = fleet.plan(agent, extra)
    except LaunchError as exc:
        audit("failed", str(exc))
        raise BadInput(f"{action} {name}: {exc}; nothing stopped") from None
    if launch is None:
        audit("not_startable", "no command in the roster")
        raise BadInput(
            f"{action} {name}: not startable (no command in the roster); nothing stopped "
            f"('fleet-tui stop {name}' only stops it)"
        )
    if confirm is not None:
        confirm(fleet, name)
    audit("started", f"grace {grace_s:g} s", required=True)
    runner = lifecycle_runner(extra_secrets=extra)
    try:
        stopped = stop_session(runner, launch.socket, name, agent.runtime, grace_s=grace_s)
        if surface != "supervise":
            forget_stops(config.state_dir, [name])
            release_holds(config.state_dir, [name])
        res = start(runner, launch, extra_secrets=extra)
        res.socket = launch.socket
        settle(runner, [launch], {name: res}, settle_s=settle_s)
    except FleetError as exc:
        audit("failed", str(exc))
        raise
    outcome = {"started": "running", "already_running": "already_running"}.get(
        res.outcome, "down" if res.outcome == "down" else "failed"
    )
    detail = f"{stopped.detail}; {res.detail}".strip("; ")
    if res.outcome == "down" and res.last:
        detail += "".join(f" | {x}" for x in res.last)
    audit(outcome, detail)
    return RestartResult(name, stopped, res)
