"""What every hook adapter shares, at the bottom of the adapters (it imports none of them):
safe detail text, the state dir and its bounded `hooks/hooks.log`, tenant and host, the agent's
heartbeat v1 record in the spool, what a runtime event means (`Event`) and how a hook was asked
for (`HookOptions`). Standard library only (no pydantic).

The records written here have exactly the shape `fleet_tui.model.records.Heartbeat` dumps (the
tests validate them with the model). Problems never reach the terminal: they go to the hooks log.
`event` applies one event end to end; `pane` and `keepalive` build on this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fleet_tui.config.identity import local_identity
from fleet_tui.protocol.clock import format_ts, utcnow
from fleet_tui.protocol.files import (
    JsonObject,
    atomic_write,
    loads_valid,
    open_append,
    read_regular,
)
from fleet_tui.protocol.heartbeat import heartbeats_dir, hooks_dir, pings_dir, write_lock
from fleet_tui.protocol.names import TENANT_RE

DEFAULT_INTERVAL_S = 10.0
MAX_JSON_BYTES = 64 * 1024
MAX_YAML_BYTES = 1 << 20  # the roster's and budgets' own bound
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
LOG_LIMIT_BYTES = 64 * 1024
LOCK_WAIT_S = 1.0
DETAIL_MAX = 80
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Detail text written by an adapter: printable ASCII words only. Stricter than clean_text (which
# every reader applies again before display), and it costs no import of Rich.
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/@()+=,#-]+")
# Escape sequences go whole, payload included (an OSC title, a CSI), as in clean_text.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b[ -/]*[0-~]?",
    re.DOTALL,
)


def safe_detail(text: object, max_len: int = DETAIL_MAX) -> str:
    """A short, plain, printable description built from runtime-supplied words."""
    out = _UNSAFE.sub(" ", _ESCAPES.sub("", str(text))).strip()
    out = re.sub(r"\s+", " ", out)
    return out[: max_len - 1] + "…" if len(out) > max_len else out


def valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(_NAME_RE.match(name))


# -- where: state dir, log -------------------------------------------------------------------


def state_dir_for(flag: str | None) -> Path:
    from fleet_tui.config.paths import state_dir_location

    return state_dir_location(flag).path


def log_problem(state_dir: Path | None, message: str) -> None:
    """One line in `hooks/hooks.log` (kept under LOG_LIMIT_BYTES, one older file); never raises."""
    if state_dir is None:
        return
    with contextlib.suppress(Exception):
        folder = hooks_dir(state_dir)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "hooks.log"
        with contextlib.suppress(OSError):
            if path.stat().st_size > LOG_LIMIT_BYTES:
                os.replace(path, folder / "hooks.log.1")
        line = f"{format_ts(utcnow())} pid={os.getpid()} {safe_detail(message, 300)}\n"
        fd = open_append(path)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


# -- who: tenant and host ----------------------------------------------------------------------


def cached_identity(state_dir: Path, roster_flag: str | None) -> tuple[str, str]:
    """(tenant_id, host) by the one rule (`config.identity.local_identity`): the roster's, else
    the login name and the hostname. The roster's two fields are cached in the state dir by the
    roster file's identity (inode, size, mtime), so most hooks never import YAML. A roster whose
    tenant breaks the tenant rule counts as none, as the full roster load refuses it."""
    from fleet_tui.config.paths import roster_location

    located = roster_location(roster_flag)
    try:
        st = located.path.stat()
    except OSError:
        if located.explicit:
            log_problem(state_dir, f"roster {located.path} not readable: using login and hostname")
        return local_identity(None)
    key = [str(located.path), st.st_ino, st.st_size, st.st_mtime_ns]
    cache = hooks_dir(state_dir) / "identity.json"
    cached = read_json(cache)
    if cached and cached.get("key") == key:
        tenant, host = cached.get("tenant_id"), cached.get("host")
        if isinstance(tenant, str) and re.fullmatch(TENANT_RE, tenant):
            return local_identity(_RosterFields(tenant, host if isinstance(host, str) else None))
    fields = _roster_identity(located.path, state_dir)
    if fields is None:
        return local_identity(None)
    with contextlib.suppress(Exception):
        hooks_dir(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {"key": key, "tenant_id": fields.tenant_id, "host": fields.host}
        atomic_write(cache, json.dumps(record).encode())
    return local_identity(fields)


@dataclass(frozen=True)
class _RosterFields:
    """The two fields of roster.yaml identity needs, read without validating the whole file."""

    tenant_id: str
    host: str | None


def _roster_identity(path: Path, state_dir: Path) -> _RosterFields | None:
    try:
        from fleet_tui.protocol.yamldoc import safe_load_file

        data = safe_load_file(path, MAX_YAML_BYTES)
    except Exception as exc:
        log_problem(state_dir, f"roster {path} unreadable ({type(exc).__name__})")
        return None
    tenant = data.get("tenant_id") if isinstance(data, dict) else None
    if not isinstance(tenant, str) or not re.fullmatch(TENANT_RE, tenant):
        log_problem(state_dir, f"roster {path}: no valid tenant_id")
        return None
    host = data.get("host")
    return _RosterFields(tenant, host if isinstance(host, str) and host else None)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (zombies count as dead)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    rp = raw.rfind(b")")
    return raw[rp + 2 : rp + 3] not in (b"Z", b"X")


# -- the spool, with the standard library ----------------------------------------------------


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> JsonObject | None:
    """A JSON object from a regular file of at most `limit` bytes, its text valid Unicode;
    None for anything else (missing, a FIFO, too large, not JSON)."""
    try:
        data = loads_valid(read_regular(path, limit))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def spool_dirs(state_dir: Path) -> tuple[Path, Path]:
    """Create the spool's folders (and the hooks folder) for a hook's first write."""
    hb, pings = heartbeats_dir(state_dir), pings_dir(state_dir)
    for folder in (hb, pings, hooks_dir(state_dir)):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return hb, pings


def heartbeat_lock(state_dir: Path, agent: str) -> contextlib.AbstractContextManager[bool]:
    """The agent's write lock (`protocol.heartbeat.write_lock`) as a hook takes it: waiting at
    most LOCK_WAIT_S, since a hook must return fast."""
    return write_lock(state_dir, agent, LOCK_WAIT_S)


# -- what an event means, how a hook was asked for ---------------------------------------------------------------


class Event:
    """What a runtime event means for the heartbeat. `state` None keeps the previous state.
    (Plain classes here, not dataclasses: importing `dataclasses` costs a hook ~20 ms.)"""

    __slots__ = ("acks", "detail", "ends_session", "model", "session", "starts_session", "state")

    def __init__(
        self,
        state: str | None,
        detail: str,
        *,
        model: str | None = None,
        acks: list[str] | None = None,
        ends_session: bool = False,
        starts_session: bool = False,
        session: str | None = None,
    ) -> None:
        self.state = state
        self.detail = detail
        self.model = model
        self.acks = acks or []
        self.ends_session = ends_session
        self.starts_session = starts_session
        self.session = session  # the runtime's session id, to be remembered for this agent


class HookOptions:
    """How a hook run was asked for (flags of `hook claude|codex`)."""

    __slots__ = (
        "agent",
        "busy_silence_s",
        "keepalive",
        "keepalive_interval_s",
        "roster",
        "runtime",
        "state_dir",
    )

    def __init__(
        self,
        runtime: str,
        *,
        agent: str | None = None,
        state_dir: str | None = None,
        roster: str | None = None,
        keepalive: bool = True,
        keepalive_interval_s: float = DEFAULT_INTERVAL_S,
        busy_silence_s: float = 900.0,
    ) -> None:
        self.runtime = runtime
        self.agent = agent
        self.state_dir = state_dir
        self.roster = roster
        self.keepalive = keepalive
        self.keepalive_interval_s = keepalive_interval_s
        self.busy_silence_s = busy_silence_s


# -- which agent ran which runtime session (token use is attributed by it) --------------------

_SESSION_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def session_id(value: object) -> str | None:
    """A runtime's session id from a payload (a UUID in practice), None when it is not one."""
    return value if isinstance(value, str) and _SESSION_RE.match(value) else None


def ack_of(text: object) -> list[str]:
    """The message hash of an accepted prompt (hashlib is imported only when there is one)."""
    if not isinstance(text, str) or not text.strip():
        return []
    from fleet_tui.protocol.acks import message_hash

    return [message_hash(text)]


def read_stdin_payload() -> JsonObject | None:
    """The JSON object on stdin (bounded); None when it is absent, too large or not an object."""
    import sys

    try:
        if sys.stdin is None or sys.stdin.isatty():
            return None
        raw = sys.stdin.buffer.read(MAX_PAYLOAD_BYTES + 1)
    except (OSError, ValueError, AttributeError):
        return None
    return parse_payload(raw)


def parse_payload(raw: bytes | str) -> JsonObject | None:
    if len(raw) > MAX_PAYLOAD_BYTES or not raw.strip():
        return None
    try:
        data = loads_valid(raw)  # lone surrogates in agent text become U+FFFD
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def model_name(value: object) -> str | None:
    """A model from a payload: a string, or an object with `id` / `display_name`."""
    if isinstance(value, dict):
        value = value.get("id") or value.get("display_name")
    if isinstance(value, str) and value.strip():
        return safe_detail(value, 64) or None
    return None
