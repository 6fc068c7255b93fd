"""The keepalive: hooks fire only on events, so between two events it re-writes the last hook
heartbeat (seq+1, a new ts, `via: keepalive:<runtime>`) every interval and answers pings.

One per agent (an flock); started detached by a hook (`ensure_keepalive`). It exits when the
runtime's pid is gone, when the state is `stopping`, or when the heartbeat was written by another
process. It never keeps a wedged agent healthy: while the last hook state is `busy` and no hook
event came for `busy_silence_s`, it stops refreshing, and the agent goes stale honestly.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from fleet_tui.adapters.common import (
    DEFAULT_INTERVAL_S,
    HookOptions,
    heartbeat_lock,
    log_problem,
    pid_alive,
    valid_name,
)
from fleet_tui.protocol.clock import format_ts, parse_ts, utcnow
from fleet_tui.protocol.files import LOCK_FLAGS, JsonObject
from fleet_tui.protocol.heartbeat import hooks_dir, ping_nonce, read_heartbeat, write_heartbeat

POLL_S = 0.5
TAKEOVER_WAIT_S = 3.0


def lock_path(state_dir: Path, agent: str) -> Path:
    return hooks_dir(state_dir) / f"{agent}.keepalive.lock"


def keepalive_running(state_dir: Path, agent: str) -> bool:
    """Whether a keepalive holds the agent's lock (trying the lock costs one open and flock)."""
    return keepalive_runtime(state_dir, agent) is not None


def keepalive_runtime(state_dir: Path, agent: str) -> int | None:
    """The runtime pid the agent's running keepalive serves (0 when unknown); None when none
    runs."""
    try:
        fd = os.open(lock_path(state_dir, agent), LOCK_FLAGS, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            return None
        try:
            fields = os.pread(fd, 64, 0).split()
            return int(fields[1]) if len(fields) == 2 else 0
        except (OSError, ValueError):
            return 0
    finally:
        os.close(fd)  # closing drops a lock taken here
    return None


def ensure_keepalive(state_dir: Path, agent: str, pid: int, opts: HookOptions) -> bool:
    """Start a keepalive for the agent unless one runs for this runtime pid; never waits for
    it. True if started. (One left from a previous runtime start exits by itself within a
    poll; the new one waits for its lock.)"""
    serving = keepalive_runtime(state_dir, agent)
    if serving is not None and serving in (0, pid):
        return False
    # The module itself, not `fleet-tui hook keepalive`: the same loop without building the
    # CLI (which imports pydantic), so each agent's keepalive stays small in memory.
    argv = [
        sys.executable,
        "-m",
        "fleet_tui.adapters.keepalive",
        "--agent",
        agent,
        "--pid",
        str(pid),
        "--runtime",
        opts.runtime,
        "--state-dir",
        str(state_dir.absolute()),  # it runs in "/"
        "--interval",
        f"{opts.keepalive_interval_s:g}",
        "--busy-silence",
        f"{opts.busy_silence_s:g}",
    ]
    import subprocess

    try:
        # A new session, no terminal, stdio on /dev/null: the hook returns at once and the
        # keepalive outlives it (re-parented when the hook exits).
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    except OSError as exc:
        log_problem(state_dir, f"keepalive for {agent} not started: {exc.strerror}")
        return False
    return True


class Keepalive:
    """The loop of one keepalive; `step(now)` is one look at the spool."""

    def __init__(
        self,
        state_dir: Path,
        agent: str,
        pid: int,
        runtime: str = "claude",
        interval_s: float = DEFAULT_INTERVAL_S,
        busy_silence_s: float = 900.0,
        poll_s: float = POLL_S,
    ) -> None:
        self.state_dir = state_dir
        self.agent = agent
        self.pid = pid
        self.runtime = runtime
        self.interval_s = interval_s
        self.busy_silence_s = busy_silence_s
        self.poll_s = poll_s
        self.last_event: datetime | None = None
        self.seen: tuple[object, object] | None = None
        self.why_stopped = ""

    def step(self, now: datetime) -> bool:
        """One look at the spool: refresh or answer a ping if due. False when it must exit."""
        if not pid_alive(self.pid):
            self.why_stopped = f"runtime pid {self.pid} is gone"
            return False
        hb = read_heartbeat(self.state_dir, self.agent)
        stop = self._stop_reason(hb)
        if stop or hb is None:
            self.why_stopped = stop or "no heartbeat"
            return False
        via = str(hb.get("via"))
        if via.startswith("hook:") and self.seen != (hb.get("seq"), hb.get("ts")):
            self.last_event = parse_ts(hb.get("ts")) or now
        if self.last_event is None:
            self.last_event = now
        if hb.get("state") == "busy" and (
            (now - self.last_event).total_seconds() > self.busy_silence_s
        ):
            return True  # wedged or very long turn: no refresh, no ping answer
        nonce = ping_nonce(self.state_dir, self.agent)
        ping_due = nonce is not None and nonce != hb.get("echo")
        written = parse_ts(hb.get("ts"))
        refresh_due = written is None or (now - written).total_seconds() >= self.interval_s
        if ping_due or refresh_due:
            self._refresh(now)
        return True

    def _stop_reason(self, hb: JsonObject | None) -> str | None:
        if hb is None:
            return "no heartbeat"
        if hb.get("pid") != self.pid:
            return "heartbeat written by another process"
        via = str(hb.get("via") or "")
        if not (via.startswith("hook:") or via.startswith("keepalive:")):
            return "heartbeat written by the runtime itself"
        if hb.get("state") == "stopping":
            return "session ended"
        return None

    def _refresh(self, now: datetime) -> None:
        with heartbeat_lock(self.state_dir, self.agent):
            hb = read_heartbeat(self.state_dir, self.agent)
            seq = hb.get("seq") if hb is not None else None
            if hb is None or self._stop_reason(hb) or not isinstance(seq, int):
                return
            nonce = ping_nonce(self.state_dir, self.agent)
            record = dict(hb)
            record["seq"] = seq + 1
            record["ts"] = format_ts(now)
            record["via"] = f"keepalive:{self.runtime}"
            if nonce is not None:
                record["echo"] = nonce
            write_heartbeat(self.state_dir, self.agent, record)
            self.seen = (record["seq"], record["ts"])

    def run(self) -> int:
        fd = _take_lock(lock_path(self.state_dir, self.agent), TAKEOVER_WAIT_S)
        if fd is None:
            return 0  # another keepalive serves this agent
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {self.pid}\n".encode())
            while self.step(utcnow()):
                time.sleep(self.poll_s)
        finally:
            os.close(fd)
        log_problem(self.state_dir, f"keepalive of {self.agent} exits: {self.why_stopped}")
        return 0


def _take_lock(path: Path, wait_s: float) -> int | None:
    """The keepalive lock, waiting up to `wait_s` for an older keepalive (of a previous runtime
    start) to notice that it is no longer needed and exit."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, LOCK_FLAGS, 0o600)
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.1)


def run_keepalive(
    state_dir: Path,
    agent: str,
    pid: int,
    *,
    runtime: str,
    interval_s: float,
    busy_silence_s: float,
) -> int:
    if not valid_name(agent) or pid <= 1:
        log_problem(state_dir, "keepalive: invalid agent name or pid")
        return 0
    try:
        return Keepalive(state_dir, agent, pid, runtime, interval_s, busy_silence_s).run()
    except Exception as exc:
        log_problem(state_dir, f"keepalive of {agent} failed: {type(exc).__name__}: {exc}")
        return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m fleet_tui.adapters.keepalive` (what hooks start): the arguments of
    `fleet-tui hook keepalive`."""
    import argparse

    p = argparse.ArgumentParser(prog="fleet-tui hook keepalive")
    p.add_argument("--agent", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--runtime", default="claude")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S)
    p.add_argument("--busy-silence", type=float, default=900.0)
    args = p.parse_args(argv)
    return run_keepalive(
        Path(args.state_dir),
        args.agent,
        args.pid,
        runtime=args.runtime,
        interval_s=max(args.interval, 0.1),
        busy_silence_s=args.busy_silence,
    )


if __name__ == "__main__":
    raise SystemExit(main())
