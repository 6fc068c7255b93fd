"""One hook event, end to end: which agent the hook runs for (its pane, and whether that
session is a fleet agent at all), which process is the runtime, the agent's next heartbeat, the
runtime session it runs, and a keepalive for the time between events.

The top of the hook path: it uses `common` (the shared pieces), `pane` and `keepalive`, which
never import it back. Standard library only, like the rest of the hook path.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime
from pathlib import Path

from fleet_tui.adapters.common import (
    DEFAULT_INTERVAL_S,
    MAX_YAML_BYTES,
    Event,
    HookOptions,
    cached_identity,
    heartbeat_lock,
    log_problem,
    read_json,
    spool_dirs,
    valid_name,
)
from fleet_tui.protocol.clock import utcnow
from fleet_tui.protocol.files import JsonObject, atomic_write
from fleet_tui.protocol.heartbeat import (
    STATES,
    heartbeat_record,
    hooks_dir,
    ping_nonce,
    read_heartbeat,
    write_heartbeat,
)

# The sockets whose sessions are all agents (core.join.FLEET_SOCKETS, spelled out here so that
# hooks do not import the model; tests/test_hooks.py checks they agree).
FLEET_SOCKETS = ("mosaic-fleet", "mosaic-factory")


def fleet_member(state_dir: Path, roster_flag: str | None, name: str, socket: str) -> bool:
    """Whether session `name` on `socket` is a fleet agent as the dashboard decides it: a fleet
    socket, a socket the roster names, or an agent name of the roster. The roster's sockets and
    names are cached by the roster file's identity, as `cached_identity` does."""
    if socket in FLEET_SOCKETS:
        return True
    from fleet_tui.config.paths import roster_location

    located = roster_location(roster_flag)
    try:
        st = located.path.stat()
    except OSError:
        return False
    key = [str(located.path), st.st_ino, st.st_size, st.st_mtime_ns]
    cache = hooks_dir(state_dir) / "membership.json"
    cached = read_json(cache)
    if cached and cached.get("key") == key:
        sockets, names = _strings(cached.get("sockets")), _strings(cached.get("names"))
    else:
        sockets, names = _roster_members(located.path)
        with contextlib.suppress(Exception):
            hooks_dir(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            doc = {"key": key, "sockets": sockets, "names": names}
            atomic_write(cache, json.dumps(doc).encode())
    return socket in sockets or name in names


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _roster_members(path: Path) -> tuple[list[str], list[str]]:
    try:
        from fleet_tui.protocol.yamldoc import safe_load_file

        data = safe_load_file(path, MAX_YAML_BYTES)
    except Exception:
        return [], []
    if not isinstance(data, dict):
        return [], []
    agents = [a for a in data.get("agents") or [] if isinstance(a, dict)]
    sockets = [data.get("socket_name"), *(a.get("socket_name") for a in agents)]
    names = [a.get("name") for a in agents]
    return [s for s in sockets if isinstance(s, str)], [n for n in names if isinstance(n, str)]


_RUNTIME_NAMES = {
    "claude": ("claude", "claude-code"),
    "codex": ("codex", "codex-tui", "codex-exec"),
}

# -- the runtime's pid: the first ancestor that is the runtime ---------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    lp, rp = raw.find(b"("), raw.rfind(b")")
    if lp < 0 or rp < 0:
        return None
    fields = raw[rp + 2 :].split()
    try:
        return raw[lp + 1 : rp].decode("utf-8", "replace"), int(fields[1])
    except (IndexError, ValueError):
        return None


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:4] if a]


def is_runtime(runtime: str, comm: str, argv: list[str]) -> bool:
    names = _RUNTIME_NAMES.get(runtime, (runtime,))
    candidates = [comm.lower(), *(os.path.basename(a).lower() for a in argv[:3])]
    for name in candidates:
        base = name.removesuffix(".js").removesuffix(".mjs").removesuffix(".exe")
        if base in names:
            return True
    if comm == "node" or comm.startswith("node"):
        return any(n in a.lower() for a in argv for n in names)
    return False


_LAUNCHERS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "env", "timeout", "nice"})


def runtime_pid(runtime: str, start: int | None = None, depth: int = 12) -> int:
    """The first ancestor of this process that is the runtime. When none is (an unknown build,
    a wrapper), the first ancestor that is not a shell or launcher: the shell a runtime starts
    a hook command in exits with the hook, and a dead pid would mark the agent unresponsive."""
    parent = os.getppid() if start is None else start
    pid = parent
    fallback: int | None = None
    for _ in range(depth):
        if pid <= 1:
            break
        st = _stat(pid)
        if st is None:
            break
        comm, ppid = st
        if is_runtime(runtime, comm, _argv(pid)):
            return pid
        if fallback is None and comm not in _LAUNCHERS:
            fallback = pid
        pid = ppid
    return fallback or parent


# -- which agent ran which runtime session (token use is attributed by it) --------------------

SESSIONS_FILE = "sessions.json"
MAX_SESSIONS = 2048


def remember_session(state_dir: Path, session: str, agent: str, now: float) -> None:
    """Note in `hooks/sessions.json` that `session` runs as `agent` (`usage` then attributes
    the session's transcript to it, whatever its working directory). Written only when the
    session is new or moved; the oldest entries go past MAX_SESSIONS."""
    path = hooks_dir(state_dir) / SESSIONS_FILE
    with heartbeat_lock(state_dir, "sessions"):
        doc = read_json(path, MAX_SESSIONS * 256) or {}
        known = doc.get("sessions")
        known = known if isinstance(known, dict) else {}
        entry = known.get(session)
        if isinstance(entry, list) and entry[:1] == [agent]:
            return
        known[session] = [agent, round(now, 3)]
        if len(known) > MAX_SESSIONS:

            def age(item: tuple[str, object]) -> float:
                v = item[1]
                if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int | float):
                    return float(v[1])
                return 0.0

            known = dict(sorted(known.items(), key=age)[-MAX_SESSIONS:])
        atomic_write(path, json.dumps({"v": 1, "sessions": known}).encode())


# -- one event, end to end -------------------------------------------------------------------


def build_heartbeat(
    prev: JsonObject | None,
    *,
    tenant_id: str,
    host: str,
    agent: str,
    now: datetime,
    state: str,
    detail: str | None,
    runtime: str,
    model: str | None,
    pid: int,
    echo: str | None,
    via: str,
    new_acks: list[str] | None = None,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> JsonObject:
    """The next heartbeat v1 record a hook writes (`protocol.heartbeat.heartbeat_record`).
    `seq` continues the previous one when it came from the same runtime pid, else restarts."""
    prev = prev or {}
    prev_seq = prev.get("seq")
    same_run = prev.get("pid") == pid and isinstance(prev_seq, int)
    seq = prev_seq + 1 if same_run and isinstance(prev_seq, int) else 0
    acks = _strings(prev.get("acks"))
    if new_acks:
        from fleet_tui.protocol.acks import add_ack

        for digest in new_acks:
            acks = add_ack(acks, digest)
    prev_model = prev.get("model") if same_run else None
    usage = prev.get("usage")
    return heartbeat_record(
        tenant_id=tenant_id,
        host=host,
        agent=agent,
        seq=max(seq, 0),
        ts=now,
        interval_s=interval_s,
        state=state,
        detail=detail,
        runtime=runtime,
        model=model or (prev_model if isinstance(prev_model, str) else None),
        pid=pid,
        echo=echo,
        acks=acks,
        usage=usage if isinstance(usage, dict) else None,
        via=via,
    )


def apply_event(opts: HookOptions, event: Event, state_dir: Path) -> JsonObject | None:
    """Find the agent, write its next heartbeat, start a keepalive if none runs. Raises on
    trouble (the caller logs it); returns the record written, or None when no agent is known."""
    if opts.agent:
        agent: str | None = opts.agent
    else:
        from fleet_tui.adapters.pane import pane_agent

        found = pane_agent(os.environ, state_dir)
        agent = found.name if found is not None else None
        if (
            found is not None
            and not found.marked
            and not fleet_member(state_dir, opts.roster, found.name, found.socket)
        ):
            # Hooks installed for the user fire in every Claude Code or Codex session; one in
            # an operator's own tmux session is not an agent: no heartbeat, no keepalive.
            log_problem(
                state_dir,
                f"hook {opts.runtime}: session {found.name!r} on socket {found.socket!r} is not "
                "a fleet agent (no @mosaic_agent, not a fleet socket, not in the roster): ignored",
            )
            return None
    if agent is None:
        log_problem(state_dir, f"hook {opts.runtime}: no agent (no --agent, not in a tmux pane)")
        return None
    if not valid_name(agent):
        log_problem(state_dir, f"hook {opts.runtime}: invalid agent name")
        return None
    spool_dirs(state_dir)
    tenant, host = cached_identity(state_dir, opts.roster)
    pid = runtime_pid(opts.runtime)
    with heartbeat_lock(state_dir, agent):
        prev = read_heartbeat(state_dir, agent)
        prev_state = prev.get("state") if prev else None
        state = event.state or (prev_state if prev_state in STATES else "idle")
        echo = ping_nonce(state_dir, agent) or (prev.get("echo") if prev else None)
        record = build_heartbeat(
            prev,
            tenant_id=tenant,
            host=host,
            agent=agent,
            now=utcnow(),
            state=str(state),
            detail=event.detail,
            runtime=opts.runtime,
            model=event.model,
            pid=pid,
            echo=echo if isinstance(echo, str) else None,
            via=f"hook:{opts.runtime}",
            new_acks=event.acks,
            interval_s=opts.keepalive_interval_s,
        )
        write_heartbeat(state_dir, agent, record)
    if event.session:
        remember_session(state_dir, event.session, agent, time.time())
    if opts.keepalive and not event.ends_session:
        from fleet_tui.adapters.keepalive import ensure_keepalive

        ensure_keepalive(state_dir, agent, pid, opts)
    return record
