"""The one runner for every tmux call: argument lists, a timeout, exact targets, typed errors.

Nothing else in fleet_tui spawns tmux. Facts it is built on: TMUX-FACTS.md (bare `-t name`
prefix-matches, `=NAME:` is exact; a stopped server accepts connections and then hangs; a dead
server leaves its socket file behind).

Every call whose output we read (`run`) passes `-u`: a tmux client whose locale is not UTF-8
(`LANG=C`, or no locale at all, as under cron, systemd or a bare `ssh host cmd`) prints every byte
outside printable ASCII as `_`, the `\x1f` field separator of our formats included, and the
letters of non-ASCII session names, titles and paths too (measured with tmux 3.3a). With `-u` the
output is the same in every locale. It is always decoded as UTF-8, and bytes that are not UTF-8
never raise: they come through as lone surrogates (`surrogateescape`), so a name read from tmux
still targets its session when passed back. A client that hands the terminal over (`argv`, for
attach) keeps tmux's own choice from the operator's locale: it prints to their terminal, not to us.

The command lines fleet_tui sends are built here too ("Recipes", at the end): each says why it is
written the way it is, so that the modules that read (`sources.tmux`, the collector) and the one
that writes (`control`) only choose which recipe to run.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import socket as _socket
import stat
import subprocess
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet_tui.errors import (
    InvalidAgentName,
    SocketDirError,
    TmuxError,
    TmuxNotInstalled,
    TmuxServerGone,
    TmuxTargetMissing,
    TmuxTimeout,
)

DEFAULT_TIMEOUT_S = 3.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_GONE_MARKERS = (
    "no server running",
    "server exited unexpectedly",
    "error connecting to",
    "lost server",
)
# "no current target": a server that holds no session at all answers any `-t` with it (measured
# on 3.3a: one with exit-empty off, and one exiting right after its last session closed, which a
# liveness probe still sees live), so the target is missing, not the call broken.
_MISSING_MARKERS = (
    "can't find session",
    "can't find pane",
    "can't find window",
    "no such session",
    "no current target",
)


def check_session_name(name: str) -> str:
    """Return `name` if tmux keeps it as is and it is a valid agent name, else raise.

    tmux rewrites `.` and `:` (`a.b:c` becomes `a_b_c`), so such a name could never be found
    again; anything outside `[A-Za-z0-9_-]` is refused for the same reason.
    """
    if not name or not _NAME_RE.match(name) or len(name) > 64:
        shown = name.encode("unicode_escape").decode("ascii")[:80]
        why = (
            "tmux rewrites '.' and ':' in session names"
            if ("." in name or ":" in name)
            else "use letters, digits, '_' and '-'"
        )
        raise InvalidAgentName(f"invalid agent name '{shown}': {why}")
    return name


def session_target(name: str) -> str:
    """The exact target of a session's current pane: `=NAME:` (never a bare, prefix-matching name)."""
    return f"={check_session_name(name)}:"


def socket_dir(tmpdir: str | None = None, uid: int | None = None) -> Path:
    """`$TMUX_TMPDIR/tmux-$UID/`, where tmux keeps one socket file per `-L` name."""
    base = tmpdir if tmpdir is not None else os.environ.get("TMUX_TMPDIR") or "/tmp"
    return Path(base) / f"tmux-{os.getuid() if uid is None else uid}"


def check_socket_dir(path: Path) -> bool:
    """True when the folder exists and is ours; False when it does not exist.

    Raises `SocketDirError` when it is not ours or open to others: tmux refuses such a folder
    too, and reading sockets there would show someone else's fleet.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SocketDirError(f"cannot read tmux socket folder {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SocketDirError(f"tmux socket folder {path} is not a directory")
    if st.st_uid != os.getuid():
        raise SocketDirError(
            f"tmux socket folder {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
        )
    if st.st_mode & 0o077:
        raise SocketDirError(
            f"tmux socket folder {path} has unsafe permissions {stat.S_IMODE(st.st_mode):04o} "
            "(tmux wants 0700)"
        )
    return True


class Liveness:
    LIVE = "live"
    STALE = "stale"
    DENIED = "denied"
    MISSING = "missing"


def probe_socket(path: Path, timeout: float = 0.5) -> str:
    """Tell a live server from a stale socket file without starting a process (~0.02 ms).

    A stopped or wedged server still accepts the connection: only a tmux call's timeout tells
    `hung` apart, so this answers `live` for it.
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        return Liveness.MISSING
    except PermissionError:
        return Liveness.DENIED
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOTSOCK):
            return Liveness.STALE
        if exc.errno in (errno.EACCES, errno.EPERM):
            return Liveness.DENIED
        if isinstance(exc, TimeoutError) or exc.errno == errno.EAGAIN:
            return Liveness.LIVE  # the backlog is full: a server is there, busy or hung
        return Liveness.STALE
    finally:
        sock.close()
    return Liveness.LIVE


@dataclass(frozen=True)
class TmuxResult:
    stdout: str
    stderr: str
    returncode: int


# Credentials of ours that a tmux server (and thus an agent's pane) must never inherit.
SECRET_ENV = ("MOSAIC_FLEET_GATEWAY_TOKEN", "MOSAIC_FLEET_GATEWAY_DSN")


class TmuxRunner:
    """Runs tmux against one socket folder. Every call names its socket explicitly.

    `socket` is a `-L` name resolved inside the folder (so the runner always passes `-S PATH`):
    a test's runner with its own `TMUX_TMPDIR` can never reach the user's servers.
    """

    def __init__(
        self,
        *,
        tmpdir: str | None = None,
        binary: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.tmpdir = tmpdir if tmpdir is not None else os.environ.get("TMUX_TMPDIR") or "/tmp"
        self._binary = binary
        self.timeout = timeout
        base_env = dict(os.environ if env is None else env)
        base_env["TMUX_TMPDIR"] = self.tmpdir
        base_env.pop("TMUX", None)  # never let an outer tmux pick the server for us
        base_env.pop("TMUX_PANE", None)
        # A tmux server started through us copies this environment into its global one, and
        # so into every pane: agents must never see the gateway's credentials.
        for secret in SECRET_ENV:
            base_env.pop(secret, None)
        self._env = base_env

    @property
    def socket_dir(self) -> Path:
        return socket_dir(self.tmpdir)

    def ensure_socket_dir(self) -> Path:
        """Create this user's socket folder as tmux would (mode 0700) before starting a server
        with `-S`; tmux only creates it itself for `-L`."""
        folder = self.socket_dir
        if not check_socket_dir(folder):
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
            check_socket_dir(folder)
        return folder

    def socket_path(self, socket: str) -> Path:
        if "/" in socket or socket in ("", ".", ".."):
            raise SocketDirError(f"invalid tmux socket name '{socket}'")
        return self.socket_dir / socket

    @property
    def binary(self) -> str:
        if self._binary is None:
            found = shutil.which("tmux", path=self._env.get("PATH"))
            if found is None:
                raise TmuxNotInstalled(
                    "tmux is not installed (no 'tmux' on PATH); install it, e.g. "
                    "'apt-get install tmux'"
                )
            self._binary = found
        return self._binary

    def argv(self, socket: str, *args: str) -> list[str]:
        """The full argument list of a call, for the few callers that must exec tmux themselves
        (attach hands the terminal over)."""
        return [self.binary, "-S", str(self.socket_path(socket)), *args]

    def run(
        self,
        socket: str,
        *args: str,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> TmuxResult:
        """Run one tmux command on `socket` and return its output, or raise a typed error."""
        argv = [self.binary, "-u", "-S", str(self.socket_path(socket)), *args]
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                text=True,
                encoding="utf-8",  # never the locale's: tmux -u writes UTF-8 in every locale
                errors="surrogateescape",
                timeout=limit,
                env=self._env,
                stdin=None if input is not None else subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TmuxTimeout(
                f"tmux server '{socket}' did not answer within {limit:g} s (hung?)", socket=socket
            ) from exc
        except FileNotFoundError as exc:
            self._binary = None
            raise TmuxNotInstalled(
                "tmux is not installed (no 'tmux' on PATH); install it, e.g. 'apt-get install tmux'"
            ) from exc
        result = TmuxResult(proc.stdout, proc.stderr, proc.returncode)
        if check and proc.returncode != 0:
            raise self._classify(socket, args, result)
        return result

    @staticmethod
    def _classify(socket: str, args: Sequence[str], result: TmuxResult) -> TmuxError:
        err = result.stderr.strip()
        low = err.lower()
        verb = args[0] if args else "tmux"
        if any(m in low for m in _GONE_MARKERS):
            return TmuxServerGone(f"no tmux server on socket '{socket}'", socket=socket, stderr=err)
        if any(m in low for m in _MISSING_MARKERS):
            return TmuxTargetMissing(
                f"tmux {verb} on '{socket}': {err.splitlines()[0] if err else 'target not found'}",
                socket=socket,
                stderr=err,
            )
        first = err.splitlines()[0] if err else f"exit status {result.returncode}"
        return TmuxError(f"tmux {verb} on '{socket}' failed: {first}", socket=socket, stderr=err)


# -- Recipes: the command lines fleet_tui sends ---------------------------------------------------
# Argument lists after the socket (`runner.run(socket, *recipe(...))`), except the few marked as
# whole argv. Targets are always exact: `=NAME:` (`session_target`) or a `%N` pane id.

FIELD_SEP = "\x1f"  # between the fields of one format: a byte no name, path or title holds
_CONTROL_CLASS = "[\x01-\x1f\x7f]"


def field_format(fields: Iterable[str], *, scrubbed: Collection[str] = ()) -> str:
    """`#{a}<US>#{b}...`: one line per pane/answer, fields split on `FIELD_SEP`. tmux prints
    most fields raw; the agent-controlled ones named in `scrubbed` (a command name, a working
    directory) get their control characters replaced by `?` by tmux itself (the `s/` modifier),
    so a directory named "a<US>b" or "a<LF>b" cannot shift the fields or split the line, while
    printable text, UTF-8 included, is kept exactly."""
    return FIELD_SEP.join(
        "#{s/" + _CONTROL_CLASS + "/?/:" + f + "}" if f in scrubbed else "#{" + f + "}"
        for f in fields
    )


def literal(arg: str) -> str:
    """tmux ends a command at an argument ending in ';' unless it ends in '\\;'."""
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def list_panes(fmt: str) -> list[str]:
    """Every pane of the server in ONE call (`-a`): a scan costs one process per socket."""
    return ["list-panes", "-a", "-F", fmt]


def display(fmt: str, pane_id: str | None = None) -> list[str]:
    """`display-message -p [-t %N] FMT`: formats of one pane (or of the server, e.g. `#{pid}`).
    It answers rc=0 with empty fields for a pane that does not exist: read `#{pane_id}` back."""
    return ["display-message", "-p", *(["-t", pane_id] if pane_id else []), fmt]


def capture(
    pane_id: str, *, history: int | None = None, escapes: bool = False, joined: bool = True
) -> list[str]:
    """`capture-pane -p -J`: the pane's text, wrapped lines joined (`-J`; `joined=False` keeps
    the screen's own rows, to redraw it as it is); `history` lines of scrollback before the
    screen (`-S -N`); `escapes` keeps the SGR colours (`-e`)."""
    args = ["capture-pane", "-p"]
    if escapes:
        args.append("-e")
    if joined:
        args.append("-J")
    if history is not None:
        args += ["-S", f"-{int(history)}"]
    return [*args, "-t", pane_id]


def capture_batch(pane_ids: Sequence[str], sep: str) -> list[str]:
    """Several panes read by ONE tmux process: `capture-pane ; display-message SEP ; ...`. A
    process start costs ~5 ms, reading a screen almost nothing; each screen is followed by a
    line `sep` (make it unguessable: a pane could print it). A pane gone meanwhile stops the
    command list there (rc != 0, "can't find"): ask again for the panes after it. tmux refuses
    a command line of more than ~16 KB (about 200 panes): keep batches well below that."""
    args: list[str] = []
    for pane_id in pane_ids:
        args += [*capture(pane_id), ";", *display(sep), ";"]
    return args[:-1]


def new_agent_session(
    name: str,
    argv: Sequence[str],
    *,
    width: int,
    height: int,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """A detached session `name` running `argv`, marked as an agent (`@mosaic_agent`), with a
    fixed window size (`window-size manual`: later watchers never resize the agent) that stays
    after its process exits (`remain-on-exit`: a crash shows as `pane_dead`). ONE command list:
    the options are set before the server can reap a process that exits at once (separate
    calls lost such a session, and with it the server)."""
    args = [
        "new-session",
        "-d",
        "-s",
        check_session_name(name),
        "-x",
        str(width),
        "-y",
        str(height),
    ]
    if cwd:
        args += ["-c", cwd]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    target = session_target(name)
    return [
        *args,
        *(literal(a) for a in argv),
        ";",
        "set-option", "-t", target, "@mosaic_agent", "1",
        ";",
        "set-option", "-w", "-t", target, "window-size", "manual",
        ";",
        "set-option", "-w", "-t", target, "remain-on-exit", "on",
    ]  # fmt: skip


def leave_mode(pane_id: str) -> list[str]:
    """`copy-mode -q`: out of copy mode (it swallows keys) before typing."""
    return ["copy-mode", "-q", "-t", pane_id]


def type_text(pane_id: str, text: str) -> list[str]:
    """`send-keys -l -- TEXT`: literal keys (`-l`: no key names), a leading '-' is no flag
    (`--`), a trailing ';' no command separator (`literal`). Enter is pressed separately."""
    return ["send-keys", "-t", pane_id, "-l", "--", literal(text)]


def press_enter(pane_id: str) -> list[str]:
    """A separate `send-keys Enter`: submits what was typed or pasted."""
    return ["send-keys", "-t", pane_id, "Enter"]


def load_buffer(buffer: str) -> list[str]:
    """`load-buffer -b NAME -`: the text comes on stdin (no length limit of a command line)."""
    return ["load-buffer", "-b", buffer, "-"]


def paste_buffer(buffer: str, pane_id: str) -> list[str]:
    """`paste-buffer -p -d -r`: bracketed paste when the program asked for it (`-p`), newlines
    kept as LF (`-r`), the buffer deleted after (`-d`)."""
    return ["paste-buffer", "-p", "-d", "-r", "-b", buffer, "-t", pane_id]


def delete_buffer(buffer: str) -> list[str]:
    """A buffer whose paste failed: never left behind with the operator's text in it."""
    return ["delete-buffer", "-b", buffer]


def pipe_to_file(pane_id: str, path: str) -> list[str]:
    """`pipe-pane -t %N 'exec cat >> PATH'`: the pane's raw output appended to `path`. Never
    `-o` (a toggle: it would CLOSE a pipe opened meanwhile). pipe-pane expands formats in its
    command, so '#' is written '##'."""
    return ["pipe-pane", "-t", pane_id, "exec cat >> " + shlex.quote(path).replace("#", "##")]


def close_pipe(pane_id: str) -> list[str]:
    """`pipe-pane` with no command closes the pane's pipe."""
    return ["pipe-pane", "-t", pane_id]


def fix_window_size(name: str) -> list[str]:
    """`window-size manual`: no client attaching, read-only or not, resizes the agent."""
    return ["set-option", "-w", "-t", session_target(name), "window-size", "manual"]


def attach(name: str, *, read_only: bool) -> list[str]:
    """`attach-session [-r] -t =NAME:`: `-r` is a read-only client, keys never reach the agent."""
    return ["attach-session", *(["-r"] if read_only else []), "-t", session_target(name)]


def attach_command(socket_path: str, name: str, *, read_only: bool = False) -> list[str]:
    """Whole argv, for the operator to paste into a shell (the `y a` copy):
    `tmux -S PATH attach-session [-r] -t =NAME:`, plain `tmux` from their PATH."""
    return ["tmux", "-S", socket_path, *attach(name, read_only=read_only)]


def popup(
    binary: str,
    command: str,
    *,
    width: str = "90%",
    height: str = "90%",
    title: str | None = None,
) -> list[str]:
    """Whole argv, for the OPERATOR's server (plain `tmux`, inherited `$TMUX`):
    `display-popup -E -w W -h H [-T TITLE] COMMAND`. A popup larger than the operator's
    terminal is refused by tmux ("height too large"): give sizes that fit, or percentages. The
    popup's command is not format expanded by tmux (measured, 3.3a): pass it as one
    shell-quoted string; the title is (a '#' in it is written '##')."""
    args = [binary, "display-popup", "-E", "-w", width, "-h", height]
    if title:
        args += ["-T", title.replace("#", "##")]
    return [*args, command]


def cue(text: str) -> list[str]:
    """`display-message -d 0 TEXT`: a message in the client's status line that stays until a
    key is pressed (a read-only client's keys do not clear it). Chained after `attach-session`
    or `switch-client` (`;`) it is shown on THAT client only: nothing of the agent's session
    changes for anyone else. TEXT is format expanded (`#{prefix}`): escape what is not ours."""
    return ["display-message", "-d", "0", text]


def window_size(name: str) -> list[str]:
    """`#{window_width}<US>#{window_height}` of the agent session's current window."""
    return display(field_format(["window_width", "window_height"]), session_target(name))


def switch_client(binary: str, name: str) -> list[str]:
    """Whole argv, for the OPERATOR's server: `switch-client -t =NAME:` moves their client."""
    return [binary, "switch-client", "-t", session_target(name)]


def client_info(binary: str) -> list[str]:
    """Whole argv, for the OPERATOR's server: `#{client_name}<US>#{client_width}<US>
    #{client_height}`, empty when no client is attached (a popup would fail with "no current
    client"); the size is what a popup must fit in."""
    return [binary, *display(field_format(["client_name", "client_width", "client_height"]))]
