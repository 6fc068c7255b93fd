"""The dogfood stub runtime: runs in a tmux pane and speaks heartbeat protocol v1.

It prints believable agent activity, heartbeats every `interval_s`, answers pings within a
fraction of a second, and acks every message it receives (Enter submits; bracketed paste keeps a
multi-line message whole). `--fail-after S` makes it a wedged agent: output goes on, heartbeats
and ping answers stop, which is exactly what "healthy is not pane alive" is about. Its records
are `protocol.heartbeat.heartbeat_record`s, as the hook adapters write them.

With `FLEET_STUB_TRANSCRIPTS=DIR` (the demo sets it) it also writes a Claude Code-shaped
transcript under `DIR/projects/`, one assistant line per step, so that `fleet-tui usage` and the
dashboard's token column have something real to read.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sys
import termios
import time
import tty
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

from fleet_tui.model.records import AgentState
from fleet_tui.protocol.acks import add_ack, message_hash
from fleet_tui.protocol.clock import format_ts, utcnow
from fleet_tui.protocol.files import open_append
from fleet_tui.protocol.heartbeat import heartbeat_record
from fleet_tui.sources.spool import HeartbeatSpool

PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"

_FILES = [
    "src/fleet/join.py",
    "src/fleet/health.py",
    "tests/test_join.py",
    "README.md",
    "src/api/routes.ts",
    "src/api/auth.ts",
    "docs/runbook.md",
    "pyproject.toml",
]
_TASKS = [
    "fix flaky heartbeat test",
    "add tenant filter",
    "review PR #412",
    "refactor pacing",
    "write migration 0007",
    "triage CI failure",
    "update runbook",
    "tighten sanitizer",
]
_TOOLS = [
    lambda r: f"Read({r.choice(_FILES)}) ⎿ {r.randint(40, 400)} lines",
    lambda r: f"Edit({r.choice(_FILES)}) ⎿ +{r.randint(1, 40)} -{r.randint(0, 20)}",
    lambda r: f"Bash(pytest -q) ⎿ {r.randint(20, 300)} passed in {r.uniform(0.5, 9):.1f}s",
    lambda r: (
        f'Grep("{r.choice(["tenant_id", "heartbeat", "TODO", "resets_at"])}") ⎿ {r.randint(1, 30)} matches'
    ),
    lambda r: f"Bash(git diff --stat) ⎿ {r.randint(1, 9)} files changed",
]


@dataclass
class InputParser:
    """Turns terminal bytes into submitted messages: Enter submits, a bracketed paste is kept
    whole (its newlines are part of the message), backspace edits, other escapes are ignored."""

    buffer: bytearray = field(default_factory=bytearray)
    pending: bytearray = field(default_factory=bytearray)
    in_paste: bool = False

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        self.pending += data
        while self.pending:
            chunk = self.pending
            if chunk.startswith(b"\x1b"):
                if PASTE_START.startswith(bytes(chunk[:6])) and len(chunk) < 6:
                    break  # wait for the rest of the marker
                if chunk.startswith(PASTE_START):
                    self.in_paste = True
                    del self.pending[:6]
                    continue
                if chunk.startswith(PASTE_END):
                    self.in_paste = False
                    del self.pending[:6]
                    continue
                # some other escape sequence (arrows...): drop ESC [ params final
                i = 1
                if len(chunk) > 1 and chunk[1:2] == b"[":
                    i = 2
                    while i < len(chunk) and not (0x40 <= chunk[i] <= 0x7E):
                        i += 1
                    i += 1
                del self.pending[: min(i, len(chunk))]
                continue
            b = chunk[0]
            del self.pending[:1]
            if b in (0x0D, 0x0A):
                if self.in_paste:
                    self.buffer += b"\n"
                else:
                    text = self.buffer.decode("utf-8", "replace")
                    self.buffer.clear()
                    if text.strip():
                        out.append(text)
            elif b in (0x7F, 0x08):
                if self.buffer:
                    del self.buffer[-1:]
            elif b == 0x15:  # ^U
                self.buffer.clear()
            elif b >= 0x20 or b == 0x09:
                self.buffer.append(b)
        return out


class StubTranscript:
    """Appends Claude Code transcript lines (RUNTIME-FORMATS.md) for the stub's made-up work."""

    def __init__(self, root: Path, name: str, model: str, rng: random.Random) -> None:
        cwd = os.getcwd()
        self.folder = root / "projects" / cwd.replace("/", "-")
        self.session = f"{zlib.crc32(name.encode()):08x}-stub-{os.getpid()}"
        self.path = self.folder / f"{self.session}.jsonl"
        self.cwd, self.model, self.rng = cwd, model, rng
        self.n = 0

    def response(self, output_tokens: int, ts: datetime) -> None:
        self.n += 1
        r = self.rng
        line = {
            "type": "assistant",
            "sessionId": self.session,
            "timestamp": format_ts(ts),
            "requestId": f"req_{self.session}_{self.n}",
            "cwd": self.cwd,
            "message": {
                "id": f"msg_{self.session}_{self.n}",
                "role": "assistant",
                "model": self.model,
                "usage": {
                    "input_tokens": r.randint(3, 40),
                    "output_tokens": output_tokens,
                    "cache_creation_input_tokens": r.randint(0, 3000),
                    "cache_read_input_tokens": r.randint(5000, 40000),
                },
            },
        }
        with contextlib.suppress(OSError):  # a demo nicety; never stops the stub
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = open_append(self.path, 0o644)
            try:
                os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                os.close(fd)


class Stub:
    def __init__(
        self,
        name: str,
        spool: HeartbeatSpool,
        *,
        tenant_id: str,
        host: str,
        interval_s: float = 5.0,
        fail_after_s: float | None = None,
        waiting: bool = False,
        model: str | None = "stub-1",
        write: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.name = name
        self.spool = spool
        self.tenant_id, self.host = tenant_id, host
        self.interval_s = interval_s
        self.fail_after_s = fail_after_s
        self.model = model
        self.write = write or self._stdout
        self.clock = clock
        self.rng = random.Random(zlib.crc32(name.encode()))
        self.seq = 0
        self.acks: list[str] = []
        self.echo: str | None = None
        self.state = AgentState.STARTING
        self.detail = "starting up"
        self.started = time.monotonic()
        self.waiting = waiting
        self.task = self.rng.choice(_TASKS)
        self.last_beat = 0.0
        self.next_output = 0.0
        self.busy_until = 0.0
        self.ping_seen: str | None = None
        self.stop = False
        root = os.environ.get("FLEET_STUB_TRANSCRIPTS")
        self.transcript = (
            StubTranscript(Path(root), name, f"claude-{model or 'stub'}", self.rng)
            if root
            else None
        )

    @staticmethod
    def _stdout(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    @property
    def failed(self) -> bool:
        return self.fail_after_s is not None and time.monotonic() - self.started > self.fail_after_s

    def beat(self) -> None:
        if self.failed:
            return
        hb = heartbeat_record(
            tenant_id=self.tenant_id,
            host=self.host,
            agent=self.name,
            seq=self.seq,
            ts=self.clock(),
            interval_s=self.interval_s,
            state=self.state,
            detail=self.detail,
            runtime="stub",
            model=self.model,
            pid=os.getpid(),
            echo=self.echo,
            acks=self.acks,
            usage={"input_tokens": 0, "output_tokens": 0},
        )
        self.spool.write_heartbeat(hb)
        self.seq += 1
        self.last_beat = time.monotonic()

    def check_ping(self) -> None:
        ping = self.spool.read_ping(self.name)
        if ping is None or ping.nonce == self.ping_seen:
            return
        self.ping_seen = ping.nonce
        if self.failed:
            return
        self.echo = ping.nonce
        self.beat()

    def on_message(self, text: str) -> None:
        digest = message_hash(text)
        self.acks = add_ack(self.acks, digest)
        first = text.strip().splitlines()[0] if text.strip() else ""
        lines = text.count("\n") + 1
        self.write(
            f"\r\n\x1b[1;36m» message\x1b[0m ({len(text)} chars, {lines} line(s)) "
            f"{digest[:19]}…\r\n  {first[:70]}\r\n"
        )
        self.waiting = False
        self.state = AgentState.BUSY
        self.detail = f"working on: {first[:40]}" if first else "working on a message"
        self.busy_until = time.monotonic() + self.rng.uniform(3, 8)
        self.beat()

    def activity(self) -> None:
        now = time.monotonic()
        if now < self.next_output:
            return
        r = self.rng
        if self.waiting:
            if self.state is not AgentState.WAITING_INPUT:
                self.state = AgentState.WAITING_INPUT
                self.detail = "permission: edit src/fleet/join.py?"
                self.write(
                    "\r\n\x1b[1;33m? Allow Edit(src/fleet/join.py)?\x1b[0m "
                    "(send any message to answer)\r\n"
                )
                self.beat()
            self.next_output = now + 5
            return
        if self.state in (AgentState.STARTING, AgentState.IDLE) and now >= self.busy_until:
            if self.state is AgentState.STARTING or r.random() < 0.5:
                self.task = r.choice(_TASKS)
                self.state, self.detail = AgentState.BUSY, self.task
                self.busy_until = now + r.uniform(6, 20)
                self.write(f"\r\n\x1b[1m● {self.task}\x1b[0m\r\n")
                self.beat()
            self.next_output = now + r.uniform(1, 3)
            return
        if self.state is AgentState.BUSY and now >= self.busy_until:
            self.state, self.detail = AgentState.IDLE, "waiting for the next task"
            self.write(f"\x1b[32m✓ done:\x1b[0m {self.task}\r\n\x1b[2m> _\x1b[0m\r\n")
            self.busy_until = now + r.uniform(4, 12)
            self.beat()
            self.next_output = now + r.uniform(2, 5)
            return
        if self.state is AgentState.BUSY:
            tool = r.choice(_TOOLS)(r)
            self.write(f"  \x1b[2m⎿\x1b[0m {tool}\r\n")
            tokens = r.randint(200, 4000)
            self.detail = f"{self.task} ({tokens} tokens)"
            if self.transcript is not None:
                self.transcript.response(tokens, self.clock())
        self.next_output = now + r.uniform(0.4, 2.5)

    def tick(self) -> None:
        self.check_ping()
        self.activity()
        if time.monotonic() - self.last_beat >= self.interval_s:
            self.beat()


def run_stub(stub: Stub, stdin_fd: int = 0) -> int:
    """Run until a signal; the terminal is put in cbreak mode with bracketed paste on."""
    parser = InputParser()
    is_tty = os.isatty(stdin_fd)
    saved = termios.tcgetattr(stdin_fd) if is_tty else None

    def stop(signum: int, frame: FrameType | None) -> None:
        stub.stop = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        if is_tty:
            tty.setcbreak(stdin_fd)
            new = termios.tcgetattr(stdin_fd)
            new[3] &= ~termios.ECHO
            termios.tcsetattr(stdin_fd, termios.TCSANOW, new)
            stub.write("\x1b[?2004h")
        stub.write(
            f"\x1b[1mstub runtime\x1b[0m agent={stub.name} tenant={stub.tenant_id} "
            f"interval={stub.interval_s:g}s pid={os.getpid()}\r\n"
        )
        stub.beat()
        stdin_open = True
        while not stub.stop:
            fds = [stdin_fd] if stdin_open else []
            try:
                ready, _, _ = select.select(fds, [], [], 0.1)
            except InterruptedError:
                continue
            if ready:
                try:
                    data = os.read(stdin_fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    stdin_open = False
                for message in parser.feed(data):
                    stub.on_message(message)
            stub.tick()
        stub.state, stub.detail = AgentState.STOPPING, "signal received"
        stub.beat()
        return 0
    finally:
        if is_tty and saved is not None:
            stub.write("\x1b[?2004l")
            with contextlib.suppress(termios.error):
                termios.tcsetattr(stdin_fd, termios.TCSANOW, saved)
