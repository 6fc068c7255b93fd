"""Control: the ONLY code that creates agent sessions, types into panes, attaches or pipes.

Everything here changes a tmux server, so every call uses exact targets (`=NAME:` or ids) through
the one runner. Observation code never imports this module.

Sending (`send_message`) follows TMUX-FACTS.md "Typing into a pane": leave copy mode first, strip
control characters (no `\x03`, no paste terminator `\x1b[201~` can survive), type one line with
`send-keys -l --`, paste several lines as one bracketed paste, then press Enter separately.

Watching and attaching hand the operator's terminal to a tmux client: this module only builds the
argument lists (`watch_argv`, `attach_argv`, `popup_argv`, `switch_argv`, `plan_handover`); the
caller runs them with the terminal. `popup_argv` and `switch_argv` are the ONLY commands that talk
to the operator's own tmux server (the one named by `$TMUX`), never to an agent's.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet_tui import tmux as recipe
from fleet_tui.errors import (
    EXIT_NOT_FOUND,
    BadInput,
    FleetError,
    TmuxError,
    TmuxServerGone,
    TmuxTargetMissing,
)
from fleet_tui.model.records import Heartbeat
from fleet_tui.protocol.acks import message_hash
from fleet_tui.tmux import TmuxRunner, check_session_name


def new_agent_session(
    runner: TmuxRunner,
    socket: str,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    width: int = 160,
    height: int = 48,
    cwd: str | None = None,
) -> None:
    """Start `argv` in a new detached session `name`, marked as an agent.

    The window gets a fixed size once, now (`window-size manual`), so that later watchers never
    resize the agent; the pane stays visible after its process exits (`remain-on-exit`), which
    is how a crash shows up as `pane_dead` instead of a silently vanished session.
    """
    check_session_name(name)
    runner.ensure_socket_dir()
    runner.run(
        socket,
        *recipe.new_agent_session(name, argv, width=width, height=height, cwd=cwd, env=env),
    )


def kill_server(runner: TmuxRunner, socket: str) -> bool:
    """Stop the server on `socket`; False when none was running."""
    try:
        runner.run(socket, "kill-server")
    except TmuxServerGone:
        return False
    return True


# -- typing into a pane ---------------------------------------------------------------------------

# C0 controls but TAB and LF, DEL, C1 controls. ESC (0x1b) is a C0 control: with it gone no escape
# sequence (a paste terminator `\x1b[201~`, a cursor move, an OSC) can be typed into the agent.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PANE_ID_RE = re.compile(r"^%[0-9]+$")
# tmux refuses commands longer than about 16 KiB (its message size); longer single lines are
# pasted instead of typed.
_MAX_TYPED_BYTES = 4096


class ControlError(FleetError):
    """The pane cannot take this action: no session, the pane is gone or dead, or its input is
    off. The command line reports it as "agent not found" (exit 3): there is no live target."""

    exit_code = EXIT_NOT_FOUND


@dataclass(frozen=True)
class SendResult:
    """What was delivered: `hash` is the protocol v1 hash of the text actually typed (the one a
    runtime acks), `length` its length in characters."""

    pane_id: str
    hash: str
    length: int
    lines: int
    method: Literal["keys", "paste"]
    left_mode: bool


def clean_message(text: str) -> str:
    """The text as it will be delivered: `\r\n` and `\r` become `\n`, control characters other
    than `\n` and `\t` are removed, trailing whitespace is removed (the hash drops it anyway)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_RE.sub("", text).rstrip()


def _check_pane_id(pane_id: str) -> str:
    if not _PANE_ID_RE.match(pane_id):
        raise BadInput(f"invalid tmux pane id '{pane_id[:20]}' (expected %N)")
    return pane_id


def pane_fields(runner: TmuxRunner, socket: str, pane_id: str, *fields: str) -> list[str]:
    """Read `#{field}` values of one pane. `display-message` answers rc=0 with empty fields for a
    pane that does not exist, so the pane's own id is read back and compared."""
    _check_pane_id(pane_id)
    fmt = recipe.field_format(["pane_id", *fields])
    try:
        out = runner.run(socket, *recipe.display(fmt, pane_id)).stdout
    except TmuxTargetMissing as exc:
        raise ControlError(f"tmux pane {pane_id} on '{socket}' does not exist: {exc}") from None
    values = out.rstrip("\n").split(recipe.FIELD_SEP)
    if values[0] != pane_id or len(values) != len(fields) + 1:
        raise ControlError(f"tmux pane {pane_id} on '{socket}' does not exist (any more)")
    return values[1:]


def send_message(runner: TmuxRunner, socket: str, pane_id: str, text: str) -> SendResult:
    """Type `text` into the pane `pane_id` (an exact `%N` id) and press Enter: the safe recipe.

    1. a pane in a mode (copy mode swallows keys) is taken out of it with `copy-mode -q`;
    2. the text is cleaned (`clean_message`); empty text is refused (`BadInput`);
    3. one line is typed with `send-keys -l -- TEXT` (a leading `-` is no flag, a trailing `;`
       is escaped so that tmux does not take it as a command separator); several lines are
       loaded into a uniquely named buffer from stdin and pasted with `paste-buffer -p -d -r`
       (bracketed paste when the program asked for it, newlines kept as `\n`, buffer deleted);
    4. a separate `send-keys Enter` submits.

    A missing or dead pane, or one whose input is disabled, raises `ControlError`. Returns the hash of the
    text actually delivered, which the runtime's heartbeat `acks` will carry once it accepts it.
    """
    cleaned = clean_message(text)
    if not cleaned.strip():
        raise BadInput("empty message: nothing to send")
    in_mode, dead, input_off = pane_fields(
        runner, socket, pane_id, "pane_in_mode", "pane_dead", "pane_input_off"
    )
    if dead == "1":
        raise ControlError(f"tmux pane {pane_id} on '{socket}' is dead: its process has exited")
    if input_off == "1":
        raise ControlError(f"tmux pane {pane_id} on '{socket}' has its input disabled")
    left_mode = in_mode == "1"
    if left_mode:
        runner.run(socket, *recipe.leave_mode(pane_id))
    multi = "\n" in cleaned or len(cleaned.encode()) > _MAX_TYPED_BYTES
    if multi:
        buffer = f"fleet-msg-{os.getpid()}-{secrets.token_hex(6)}"
        runner.run(socket, *recipe.load_buffer(buffer), input=cleaned)
        try:
            runner.run(socket, *recipe.paste_buffer(buffer, pane_id))
        except TmuxError:
            try:
                runner.run(socket, *recipe.delete_buffer(buffer))
            except TmuxError:
                pass
            raise
    else:
        runner.run(socket, *recipe.type_text(pane_id, cleaned))
    runner.run(socket, *recipe.press_enter(pane_id))
    return SendResult(
        pane_id=pane_id,
        hash=message_hash(cleaned),
        length=len(cleaned),
        lines=cleaned.count("\n") + 1,
        method="paste" if multi else "keys",
        left_mode=left_mode,
    )


def ack_accepted(
    before: Sequence[str] | None, after: Sequence[str], digest: str, *, newer: bool
) -> bool:
    """Whether the acks `after` show that `digest` was accepted since `before` was read (just
    before sending); `newer` says the heartbeat holding `after` was written after `before`'s.

    A hash new in the list: accepted. One that was already there (the same text sent again) must
    have moved closer to the end, since a runtime moves a re-accepted hash to the end. One that
    was already the LAST cannot move: any newer heartbeat that still ends with it counts (the
    protocol cannot tell a re-acceptance apart there).
    """
    if digest not in after:
        return False
    if not before or digest not in before:
        return True

    def from_end(acks: Sequence[str]) -> int:
        return list(acks)[::-1].index(digest)

    old, new = from_end(before), from_end(after)
    if old == 0:
        return newer and new == 0
    return new < old


def wait_for_ack(
    read: Callable[[], Heartbeat | None],
    before: Heartbeat | None,
    digest: str,
    *,
    timeout_s: float,
    poll_s: float = 0.05,
) -> float | None:
    """Seconds until the runtime's heartbeat (`read()`) accepts `digest`, judged against the
    heartbeat read just before sending (`ack_accepted`); None when `timeout_s` passes first."""
    t0 = time.monotonic()
    while True:
        hb = read()
        if hb is not None:
            newer = before is None or (hb.pid, hb.seq, hb.ts) != (before.pid, before.seq, before.ts)
            if ack_accepted(before.acks if before else None, hb.acks, digest, newer=newer):
                return time.monotonic() - t0
        if time.monotonic() - t0 >= timeout_s:
            return None
        time.sleep(poll_s)


# -- the pane's output as a stream log ------------------------------------------------------------

PipeState = Literal["opened", "ours", "existing"]
# (socket path, pane id) -> log path, for the pipes this process opened.
_OPENED_PIPES: dict[tuple[str, str], Path] = {}


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def pipe_writes_to(runner: TmuxRunner, socket: str, path: Path | str) -> bool:
    """Whether a job of the tmux server on `socket` (a `pipe-pane` command is a child of the
    server) holds `path` open: how a pipe is recognised as OURS for sure, also one opened by an
    earlier dashboard (the log's path, `logs/<socket>.<agent>.log`, is the marker)."""
    try:
        pid = int(runner.run(socket, *recipe.display("#{pid}")).stdout.strip())
    except (TmuxError, ValueError):
        return False
    want = os.path.realpath(path)
    for child in _children(pid):
        try:
            fds = os.listdir(f"/proc/{child}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{child}/fd/{fd}") == want:
                    return True
            except OSError:
                continue
    return False


def ensure_pipe_log(
    runner: TmuxRunner,
    socket: str,
    pane_id: str,
    path: Path | str,
    *,
    before_open: Callable[[], None] | None = None,
) -> PipeState:
    """Make sure the pane's raw output is appended to `path` (for the dashboard's stream log).

    - no pipe on the pane (`#{pane_pipe}` 0): call `before_open` (the audit record: when it
      raises, nothing is opened), empty the log, open a pipe,
      `pipe-pane -t %ID 'exec cat >> PATH'` (never `-o`: it is a toggle and would CLOSE a pipe
      opened meanwhile); answer "opened";
    - a pipe already there: do NOTHING (never close or replace someone's pipe); answer "ours"
      when this process opened it or a job of the pane's server writes to `path`
      (`pipe_writes_to`: ours from an earlier run), else "existing" (the caller then falls back
      to `capture-pane`).

    The log folder is created 0700 and the file 0600 (pane output may hold secrets). Close the
    pipe with `close_pipe_log` when nobody streams any more.
    """
    log = Path(path)
    (pipe,) = pane_fields(runner, socket, pane_id, "pane_pipe")
    key = (str(runner.socket_path(socket)), pane_id)
    if pipe == "1":
        if _OPENED_PIPES.get(key) == log or pipe_writes_to(runner, socket, log):
            _OPENED_PIPES[key] = log
            return "ours"
        return "existing"
    if before_open is not None:
        before_open()
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # never through a link (a link to another file would have it emptied), never blocking
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW
    try:
        fd = os.open(log, flags, 0o600)
    except OSError as exc:
        raise ControlError(f"stream log {log}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ControlError(f"stream log {log} is not a regular file")
    finally:
        os.close(fd)
    runner.run(socket, *recipe.pipe_to_file(pane_id, str(log)))
    _OPENED_PIPES[key] = log
    return "opened"


def close_pipe_log(
    runner: TmuxRunner, socket: str, pane_id: str, path: Path | str | None = None
) -> bool:
    """Close the pane's pipe only when one is open AND it is ours: this process opened it, or
    (given `path`) a job of the server writes to `path`. True if closed.

    (If someone replaced our pipe with theirs meanwhile, tmux cannot tell us: that pipe would be
    closed too, unless `path` is given and the check by path finds no writer.)
    """
    key = (str(runner.socket_path(socket)), pane_id)
    opened = _OPENED_PIPES.pop(key, None)
    if opened is None and path is None:
        return False
    try:
        (pipe,) = pane_fields(runner, socket, pane_id, "pane_pipe")
    except TmuxError:
        return False
    if pipe != "1":
        return False
    if path is not None and not pipe_writes_to(runner, socket, path):
        return False
    runner.run(socket, *recipe.close_pipe(pane_id))
    return True


# -- watching and attaching -----------------------------------------------------------------------


def prepare_watch(runner: TmuxRunner, socket: str, name: str) -> None:
    """Fix the agent window's size (`window-size manual`) so that no client attaching to it,
    read-only or not, resizes the agent. Idempotent; never saved and restored around a watch
    (two operators watching at once would race, TMUX-FACTS.md)."""
    runner.run(socket, *recipe.fix_window_size(name))


def handover_cue(name: str, *, read_only: bool, how: str = "attach") -> str:
    """What the operator's tmux client says while it shows an agent: which it is (watching,
    read-only, or attached: keys reach the agent) and how to return (`C-b d` detaches; after a
    client switch `C-b L` goes back). Format expanded by tmux (`#{prefix}` is the operator's
    prefix key there); the name's '#' is escaped. Short: a status line of 60 columns shows it
    whole for a short name (tmux cuts what does not fit)."""
    shown = name.replace("#", "##")
    back = "#{prefix} L" if how == "switch" else "#{prefix} d"
    if read_only:
        return f"fleet-tui WATCHING {shown} (read-only): {back} returns"
    return f"fleet-tui ATTACHED to {shown} (keys go to it): {back} returns"


def watch_argv(runner: TmuxRunner, socket: str, name: str) -> list[str]:
    """`tmux -S SOCK attach -r -t =NAME: ; display-message -d 0 CUE`: a read-only client (keys
    never reach the agent) whose status line says so and how to return (`handover_cue`)."""
    cue = recipe.cue(handover_cue(name, read_only=True))
    return runner.argv(socket, *recipe.attach(name, read_only=True), ";", *cue)


def attach_argv(runner: TmuxRunner, socket: str, name: str) -> list[str]:
    """`tmux -S SOCK attach -t =NAME: ; display-message -d 0 CUE`: an interactive client (the
    explicit takeover) whose status line says so until the first key."""
    cue = recipe.cue(handover_cue(name, read_only=False))
    return runner.argv(socket, *recipe.attach(name, read_only=False), ";", *cue)


def exec_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run `watch_argv`/`attach_argv` with: without `TMUX`/`TMUX_PANE` (the
    socket is given with `-S`; a set `TMUX` would make tmux refuse to nest)."""
    env = dict(os.environ if environ is None else environ)
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    return env


def window_size(runner: TmuxRunner, socket: str, name: str) -> tuple[int, int] | None:
    """The agent's window size (columns, rows), or None when tmux does not say."""
    try:
        out = runner.run(socket, *recipe.window_size(name)).stdout.strip()
        w, h = out.split(recipe.FIELD_SEP)
        return int(w), int(h)
    except (TmuxError, ValueError):
        return None


def popup_size(window: tuple[int, int] | None, client: tuple[int, int] | None) -> tuple[str, str]:
    """`-w`/`-h` of a popup that shows the agent's whole window: its size plus the border
    (2 columns, 2 rows) and the inner client's status line (1 row), never larger than the
    operator's terminal (tmux refuses that popup); 90 % of it when a size is unknown."""
    if window is None or client is None:
        return "90%", "90%"
    return str(max(min(window[0] + 2, client[0]), 10)), str(max(min(window[1] + 3, client[1]), 5))


def popup_argv(
    runner: TmuxRunner,
    socket: str,
    name: str,
    *,
    read_only: bool = True,
    client_size: tuple[int, int] | None = None,
) -> list[str]:
    """`tmux display-popup -E -w W -h H -T TITLE 'env -u TMUX tmux -S SOCK attach [-r] -t
    =NAME: ; display-message ...'`.

    For a dashboard that runs inside tmux (`$TMUX` set). This command is issued to the
    OPERATOR's server: plain `tmux`, run with the inherited environment, whose `$TMUX` names
    that server (the one place fleet_tui talks to it). Inside the popup `C-b d` detaches and the
    popup closes; the dashboard keeps running behind it. The popup fits the agent's window
    (`popup_size`, given the operator's terminal size `client_size`); its title and the inner
    client's status line say which agent, watched or attached, and how to return. The popup's
    command is not format expanded by tmux (measured, 3.3a): it is passed as one shell-quoted
    string.
    """
    inner = watch_argv(runner, socket, name) if read_only else attach_argv(runner, socket, name)
    command = "env -u TMUX -u TMUX_PANE " + shlex.join(inner)
    width, height = popup_size(window_size(runner, socket, name), client_size)
    verb = "watching" if read_only else "ATTACHED to"
    title = f" fleet-tui: {verb} {name}{' (read-only)' if read_only else ''} "
    return recipe.popup(runner.binary, command, width=width, height=height, title=title)


def switch_argv(runner: TmuxRunner, name: str) -> list[str]:
    """`tmux switch-client -t =NAME: ; display-message -d 0 CUE` for a dashboard inside tmux
    on the SAME server as the agent: the operator's client moves to the agent's session (`C-b
    L` returns, which its status line says). Issued to the operator's server (plain `tmux`,
    inherited `$TMUX`). Interactive: never use it to watch (`switch-client -r` leaves the client
    read-only when it returns), use `popup_argv`."""
    cue = recipe.cue(handover_cue(name, read_only=False, how="switch"))
    return [*recipe.switch_client(runner.binary, name), ";", *cue]


def operator_server(environ: Mapping[str, str] | None = None) -> str | None:
    """The socket path of the tmux server the operator's terminal runs in (`$TMUX`), or None."""
    value = (os.environ if environ is None else environ).get("TMUX", "")
    path = value.split(",", 1)[0]
    return path or None


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True)
class HandoverPlan:
    """How to give the operator's terminal to a tmux client: run `argv` with `env` (what
    `plan_handover` decides; `actions.Handover` is what the dashboard is handed to run).

    `how`: "attach" (plain terminal: a child with the terminal; the caller suspends its UI),
    "popup" (inside tmux: a popup on the operator's server; the caller keeps running),
    "switch" (inside tmux, same server, interactive only: the operator's client moves over).
    """

    argv: list[str]
    env: dict[str, str]
    how: Literal["attach", "popup", "switch"]


def plan_handover(
    runner: TmuxRunner,
    socket: str,
    name: str,
    *,
    read_only: bool,
    environ: Mapping[str, str] | None = None,
    client_size: tuple[int, int] | None = None,
) -> HandoverPlan:
    """Pick the way to watch (`read_only`) or attach to agent `name` from this terminal.

    Outside tmux: `attach [-r]` with the terminal. Inside tmux: a popup on the operator's server,
    except an interactive attach on the same server, which switches the client. A watch never
    uses `switch-client`: the operator's client would not be read-only. `client_size` (the
    operator's terminal, columns and rows) lets the popup fit the agent's window.
    """
    env = dict(os.environ if environ is None else environ)
    outer = operator_server(env)
    if outer is None:
        argv = watch_argv(runner, socket, name) if read_only else attach_argv(runner, socket, name)
        return HandoverPlan(argv, exec_env(env), "attach")
    if not read_only and _same_file(outer, runner.socket_path(socket)):
        return HandoverPlan(switch_argv(runner, name), env, "switch")
    popup = popup_argv(runner, socket, name, read_only=read_only, client_size=client_size)
    return HandoverPlan(popup, env, "popup")
