"""The collector: runs the sources and joins them into one `FleetSnapshot`.

Used by `ps` once and by the dashboard's poller on a schedule (it keeps the process sampler, so
CPU is a rate between polls). Blocking: call it off the UI thread.

Claude Code's own session status files (sources/claude_sessions.py) are read on every poll,
heartbeat-only polls too (a `stat` per file of a pane's Claude Code process, opened only when it
changed): for a Claude agent without a heartbeat they give its state before the pane is guessed.

Panes without a heartbeat are read (their last visible lines) so the join can infer their
state; agents with a heartbeat are never captured, and a pane is captured again only when it
showed something new, a bounded number per poll, in parallel, each call with a timeout.
Optional providers give each agent's token use today and its budget; a provider that fails
marks its source degraded and the last good answer is kept.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from fleet_tui import telemetry
from fleet_tui import tmux as recipe
from fleet_tui.config.fleet import FleetConfig, load_configured_roster
from fleet_tui.config.identity import local_identity
from fleet_tui.core.infer import DEFAULT_RULES, TAIL_LINES, InferenceRules
from fleet_tui.core.join import (
    FleetInputs,
    JoinCache,
    apply_usage,
    build_snapshot,
    inference_targets,
)
from fleet_tui.core.sanitize import clean_text
from fleet_tui.errors import NotReadYet, RosterError, TmuxError
from fleet_tui.model.records import (
    BudgetBrief,
    FleetSnapshot,
    InferredState,
    PaneRow,
    SocketScan,
    SourceStatus,
    SpoolRead,
    SystemdScan,
    TreeSample,
)
from fleet_tui.protocol.clock import utcnow
from fleet_tui.protocol.files import FileKey, stable_key
from fleet_tui.sources.claude_sessions import ClaudeSessionFiles
from fleet_tui.sources.lifecycle_state import read_lifecycle_marks
from fleet_tui.sources.procs import ProcessSampler, pid_alive
from fleet_tui.sources.roster import LoadedRoster
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.sources.systemd import scan_systemd
from fleet_tui.sources.tmux import scan_all
from fleet_tui.tmux import TmuxRunner

if TYPE_CHECKING:
    from fleet_tui.model.validated import Ping

Clock = Callable[[], datetime]
T = TypeVar("T")
# What the lead wires in: token use today by agent name (usage scanner), and the budget brief
# of each agent's account by agent name (budget engine). Called in the poll thread with the
# snapshot just built and `now`.
READING = "reading"  # the detail of a source whose first read is still running
UsageProvider = Callable[[FleetSnapshot, datetime], Mapping[str, int]]
BudgetProvider = Callable[[FleetSnapshot, datetime], Mapping[str, BudgetBrief]]

CAPTURE_MAX_PER_POLL = 256  # panes read per poll at most (the oldest reads first)
# Panes read by ONE tmux process (`capture-pane ; display-message SEP ; capture-pane ...`): a
# process start costs ~5 ms, reading a screen almost nothing; tmux refuses a command line of
# more than ~16 KB (about 200 panes), so batches stay well below that.
CAPTURE_BATCH = 32
CAPTURE_WORKERS = 4
CAPTURE_TIMEOUT_S = 2.0
# tmux activity times have a 1 s resolution: a pane read within this long of its last output
# may have shown more in the same second, so it is read again on the next poll.
CAPTURE_SETTLE_S = 2.0


class _BeatEntry(NamedTuple):
    """A heartbeat as last read: the file's identity (None while too fresh to trust), the
    read, and the bytes it was decoded from (None when the file could not be read)."""

    key: FileKey | None
    read: SpoolRead
    raw: bytes | None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class FleetCollector:
    """Collects snapshots; one instance per poller (keeps CPU sampling state)."""

    def __init__(
        self,
        config: FleetConfig,
        *,
        runner: TmuxRunner | None = None,
        clock: Clock = utcnow,
        sampler: ProcessSampler | None = None,
        keep_last_good: bool = False,
        systemd_interval_s: float = 0.0,
        inference: InferenceRules = DEFAULT_RULES,
        inference_notices: Sequence[str] = (),
        usage_provider: UsageProvider | None = None,
        budget_provider: BudgetProvider | None = None,
        provider_interval_s: float = 0.0,
        capture_limit: int = CAPTURE_MAX_PER_POLL,
        claude_sessions: ClaudeSessionFiles | None = None,
    ) -> None:
        self.config = config
        self.runner = runner or TmuxRunner(timeout=config.tmux_timeout_s)
        self.clock = clock
        self.sampler = sampler or ProcessSampler()
        self.claude_sessions = claude_sessions or ClaudeSessionFiles(proc=self.sampler.proc)
        self.spool = HeartbeatSpool(config.state_dir)
        # Polls are far more frequent than file changes (the roster is parsed again only when
        # its file changed: sources.roster). A heartbeat (~50-100 us to decode and validate)
        # is not even opened while its identity (path, device, inode, size, mtime, ctime)
        # holds; a changed or fresh one is read (~10 us) and decoded again only when its bytes
        # differ from the last read.
        self._beat_cache: dict[str, _BeatEntry] = {}
        self.heartbeats_decoded = 0  # heartbeat files decoded so far (for tests and benchmarks)
        self.keep_last_good = keep_last_good
        self.systemd_interval_s = systemd_interval_s
        self._last_roster: LoadedRoster | None = None
        self._last_good_roster_seen = False
        self._last_scans: list[SocketScan] | None = None
        self._last_processes: dict[int, TreeSample] = {}
        self._systemd_cache: tuple[datetime, list[str], SystemdScan] | None = None
        self._marks: dict[str, tuple[datetime | None, bool, str | None]] = {}
        # The last join's records: a poll builds again only the agents whose inputs changed.
        self.join_cache = JoinCache()
        self._scan_pool: ThreadPoolExecutor | None = None
        # The rules come from whoever builds the collector (the CLI reads the settings file's
        # `inference` section); its notices are said in every snapshot's warnings.
        self.inference = inference
        self._inference_notices = list(inference_notices)
        self.capture_limit = capture_limit
        # (socket, pane id) -> (what identified the pane's screen, when read, its lines)
        self._captures: dict[tuple[str, str], tuple[tuple[object, ...], float, list[str]]] = {}
        self.captures_made = 0  # panes read so far (for tests and benchmarks)
        self.capture_calls = 0  # tmux processes started to read them
        self.usage_provider = usage_provider
        self.budget_provider = budget_provider
        self.provider_interval_s = provider_interval_s
        self._tokens: Mapping[str, int] = {}
        self._budgets: Mapping[str, BudgetBrief] = {}
        self._provided_at: dict[str, datetime] = {}

    def keep_roster(self, loaded: LoadedRoster) -> None:
        """`loaded` was read and was good (by the dashboard's first poll, taken elsewhere):
        with `keep_last_good`, a roster that turns bad before this collector's own first
        read keeps it and says so, as if this collector had read it."""
        self._last_roster = loaded
        self._last_good_roster_seen = True

    def _load_roster(self) -> LoadedRoster | None:
        return load_configured_roster(self.config)  # parsed again only when the file changed

    def _read_spool(self) -> tuple[dict[str, SpoolRead], dict[str, Ping]]:
        beats: dict[str, SpoolRead] = {}
        pings: dict[str, Ping] = {}
        beat_cache: dict[str, _BeatEntry] = {}
        for folder, is_beat in ((self.spool.heartbeats, True), (self.spool.pings, False)):
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                fname = entry.name
                if not fname.endswith(".json") or fname.startswith("."):
                    continue
                agent = fname[:-5]
                if is_beat:
                    try:
                        key = stable_key(entry.path, entry.stat())
                    except OSError:
                        key = None
                    cached = self._beat_cache.get(agent)
                    if key is not None and cached is not None and cached.key == key:
                        beats[agent] = cached.read
                        beat_cache[agent] = cached
                        continue
                    read, raw = self._read_beat(agent, entry.path, cached)
                    beats[agent] = read
                    if key is not None or raw is not None:
                        beat_cache[agent] = _BeatEntry(key, read, raw)
                else:
                    ping = self.spool.read_ping(agent)
                    if ping is not None:
                        pings[agent] = ping
        self._beat_cache = beat_cache
        return beats, pings

    def _read_beat(
        self, agent: str, path: str, cached: _BeatEntry | None
    ) -> tuple[SpoolRead, bytes | None]:
        """A heartbeat file whose identity changed or is too fresh to trust: read it, and decode
        it only when its bytes are not those of the last read (a fresh file stays fresh for
        `_SETTLED_NS`, so it would otherwise be decoded again on every poll in that time)."""
        got = self.spool.heartbeat_bytes(agent, path)
        if isinstance(got, SpoolRead):
            return got, None
        raw, mtime = got
        if cached is not None and cached.raw is not None and cached.raw == raw:
            read = cached.read
            return (read if read.mtime == mtime else replace(read, mtime=mtime)), raw
        self.heartbeats_decoded += 1
        return self.spool.decode_heartbeat(agent, raw, mtime), raw

    def collect(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        """One snapshot. Raises only for what the user must fix (roster, socket folder, no tmux).

        `heartbeats_only` re-reads the spool and joins it with the last tmux, process and
        systemd observations (what the dashboard does when a heartbeat file changes). systemd
        is asked at most every `systemd_interval_s`. With `keep_last_good`, a roster that
        turns bad while running keeps the last good one and says so in the warnings.

        With traces on (`fleet_tui.telemetry`): one `fleet.poll` span, each source's time in
        milliseconds as its attributes (`fleet.poll.tmux_ms`, ...).
        """
        if not telemetry.enabled():
            return self._collect(heartbeats_only, {})
        with telemetry.span("fleet.poll", heartbeats_only=heartbeats_only) as span:
            times: dict[str, float] = {}
            snapshot = self._collect(heartbeats_only, times)
            span.set(
                tenant=snapshot.tenant_id,
                host=snapshot.host,
                agents=len(snapshot.agents),
                **{f"fleet.poll.{k}_ms": round(v * 1000, 3) for k, v in times.items()},
            )
            return snapshot

    def _collect(self, heartbeats_only: bool, times: dict[str, float]) -> FleetSnapshot:
        clock = time.perf_counter
        t0 = clock()
        now = self.clock()
        warnings: list[str] = []
        try:
            loaded = self._load_roster()
            self._last_roster = loaded
            self._marks["roster"] = (now, True, None)
        except RosterError as exc:
            if not (self.keep_last_good and self._last_good_roster_seen):
                raise
            loaded = self._last_roster
            self._marks["roster"] = (
                self._marks.get("roster", (None, True, None))[0],
                False,
                str(exc),
            )
            warnings.append(f"{exc} (showing the last good roster)")
        self._last_good_roster_seen = True
        times["roster"] = clock() - t0
        roster = loaded.roster if loaded else None
        tenant, host = local_identity(roster)
        scans = self._last_scans
        if scans is None:  # nothing observed yet to reuse: a full poll, providers and all
            heartbeats_only = False
        walked_now = False  # the process trees walked in this poll (not a past one's)
        if heartbeats_only and scans is not None:
            t0 = clock()
            beats, pings = self._read_spool()
            dead = self._dead_pids(beats, host)
            times["heartbeats"] = clock() - t0
            processes = self._last_processes
        else:
            _ = self.runner.binary  # tmux missing is one clear error, not N degraded sockets
            if self._scan_pool is None:  # one thread kept for the collector's life
                self._scan_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan")

            def scan() -> list[SocketScan]:
                t0 = clock()
                try:
                    return scan_all(self.runner)
                finally:
                    times["tmux"] = clock() - t0

            tmux_future = self._scan_pool.submit(scan)
            # While tmux answers (the scan waits on subprocesses): the spool and its pids.
            # (Walking the last listing's process trees here as well was tried: the walk holds
            # the GIL, and the scan's threads, waking for each chunk of tmux's output, then wait
            # up to the 5 ms switch interval each: the 1,000-agent snapshot got ~15 % slower.)
            try:
                t0 = clock()
                beats, pings = self._read_spool()
                times["heartbeats"] = clock() - t0
            finally:
                scans = tmux_future.result()
            pane_pids = [
                row.pane_pid for scan in scans for row in scan.sessions().values() if row.pane_pid
            ]
            t0 = clock()
            processes = self.sampler.sample(pane_pids)
            # A heartbeat's pid is most often in a pane's tree, just read by the sample: only
            # the others are looked up (1,000 agents: ~20 ms of /proc reads otherwise).
            dead = self._dead_pids(beats, host, self.sampler.alive)
            times["processes"] = clock() - t0
            walked_now = True
            self._last_scans, self._last_processes = scans, processes
            tmux_ok = all(
                s.state.value in ("live", "stale") and (s.state.value != "live" or s.reason is None)
                for s in scans
            )
            self._marks["tmux"] = (
                self.clock(),
                tmux_ok,
                None if tmux_ok else "a socket is hung or unreadable",
            )
            self._marks["processes"] = (self.clock(), True, None)
        self._marks["heartbeats"] = (self.clock(), True, None)
        units = sorted({a.unit for a in roster.agents if a.unit}) if roster else []
        t0 = clock()
        systemd = self._systemd(units, now)
        times["systemd"] = clock() - t0
        t0 = clock()
        claude = self._claude_sessions(scans, beats, tenant, host, walked_now)
        times["claude_sessions"] = clock() - t0
        inputs = FleetInputs(
            now=self.clock(),
            host=host,
            tenant_id=tenant,
            sockets=scans,
            roster=roster,
            roster_path=str(loaded.path) if loaded else str(self.config.roster.path),
            roster_warnings=[*(loaded.warnings if loaded else []), *warnings],
            heartbeat_timeout_s=self.config.heartbeat_timeout_s,
            heartbeats=beats,
            pings=pings,
            systemd=systemd,
            processes=processes,
            dead_pids=dead,
            extra_warnings=list(self._inference_notices),
            inference=self.inference,
            claude_sessions=claude,
            lifecycle=read_lifecycle_marks(self.config.state_dir),  # stopped, held: drift
        )
        t0 = clock()
        inputs.captures = self._capture_panes(
            scans, inference_targets(inputs), fresh=not heartbeats_only
        )
        times["captures"] = clock() - t0
        t0 = clock()
        snapshot = build_snapshot(inputs, self.join_cache)
        times["join"] = clock() - t0
        if not heartbeats_only:
            t0 = clock()
            self._provide(snapshot, now)
            times["providers"] = clock() - t0
        if self._tokens or self._budgets:
            snapshot = apply_usage(snapshot, self._tokens, self._budgets)
        return snapshot.model_copy(
            update={
                "sources": [
                    SourceStatus(name=name, observed_at=at, ok=ok, detail=detail)
                    for name, (at, ok, detail) in self._marks.items()
                ]
            }
        )

    # -- pane captures for inference ----------------------------------------------------------
    @staticmethod
    def _pane_stamp(row: PaneRow) -> tuple[object, ...]:
        return (
            row.session_id,
            row.session_created,
            row.pane_pid,
            row.window_activity,
            row.session_activity,
            row.pane_title,
        )

    def _capture_panes(
        self, scans: list[SocketScan], targets: list[tuple[str, str]], *, fresh: bool
    ) -> dict[tuple[str, str], list[str]]:
        """The last visible lines of the target panes: reused while a pane showed nothing new,
        read again (at most `capture_limit` per poll, oldest first) when it did."""
        rows = {
            (scan.name, row.pane_id): row
            for scan in scans
            if scan.ok
            for row in scan.sessions().values()
        }
        wanted = [t for t in targets if t in rows]
        todo: list[tuple[float, tuple[str, str]]] = []
        if fresh:
            for t in wanted:
                row = rows[t]
                cached = self._captures.get(t)
                activity = max(filter(None, (row.window_activity, row.session_activity)), default=0)
                if (
                    cached is None
                    or cached[0] != self._pane_stamp(row)
                    or cached[1] - activity < CAPTURE_SETTLE_S
                ):
                    todo.append((cached[1] if cached else 0.0, t))
            todo.sort()
            todo = todo[: max(self.capture_limit, 0)]
        if todo:
            read_at = time.time()
            batches: list[tuple[str, list[str]]] = []
            by_socket: dict[str, list[str]] = {}
            for _, (sock, pane_id) in todo:
                by_socket.setdefault(sock, []).append(pane_id)
            for sock, ids in by_socket.items():
                batches += [
                    (sock, ids[i : i + CAPTURE_BATCH]) for i in range(0, len(ids), CAPTURE_BATCH)
                ]
            with ThreadPoolExecutor(max_workers=min(CAPTURE_WORKERS, len(batches))) as pool:
                results = list(pool.map(lambda b: self._capture_batch(*b), batches))
            for (sock, ids), screens in zip(batches, results, strict=True):
                for pane_id in ids:
                    t = (sock, pane_id)
                    lines = screens.get(pane_id)
                    if lines is None:
                        self._captures.pop(t, None)
                    else:
                        self.captures_made += 1
                        self._captures[t] = (self._pane_stamp(rows[t]), read_at, lines)
        keep = set(wanted)
        if fresh:  # forget panes that are gone or have a heartbeat now
            self._captures = {k: v for k, v in self._captures.items() if k in keep}
        return {t: self._captures[t][2] for t in wanted if t in self._captures}

    def _capture_batch(self, socket: str, pane_ids: list[str]) -> dict[str, list[str]]:
        """The last visible lines (sanitized) of these panes, read with as few tmux processes as
        possible. Each screen is followed by a separator line no agent can guess; a pane gone
        since the listing stops tmux's command list, so the panes after it are asked again."""
        sep = f"fleet-tui-capture-{secrets.token_hex(12)}"
        screens: dict[str, list[str]] = {}
        todo = list(pane_ids)
        while todo:
            args = recipe.capture_batch(todo, sep)
            try:
                res = self.runner.run(socket, *args, timeout=CAPTURE_TIMEOUT_S, check=False)
            except TmuxError:
                return screens  # hung or gone: inferred from title and activity meanwhile
            self.capture_calls += 1
            lines: list[str] = []
            done = 0
            for line in res.stdout.splitlines():
                if line != sep:
                    lines.append(line)
                    continue
                while lines and not lines[-1].strip():
                    lines.pop()
                screens[todo[done]] = [clean_text(x, max_len=300) for x in lines[-TAIL_LINES:]]
                lines, done = [], done + 1
                if done == len(todo):
                    break
            if res.returncode == 0 or done >= len(todo) or "can't find" not in res.stderr:
                break  # all read, or the server itself failed: no retry storm
            todo = todo[done + 1 :]  # todo[done] failed (gone): skip it, ask for the rest
        return screens

    # -- token use and budgets ------------------------------------------------------------
    def _provide(self, snapshot: FleetSnapshot, now: datetime) -> None:
        if self.usage_provider is not None:
            self._tokens = self._call(
                "usage",
                self.usage_provider,
                snapshot,
                now,
                self._tokens,
                _is_count,
                "a token count",
            )
        if self.budget_provider is not None:
            self._budgets = self._call(
                "budgets",
                self.budget_provider,
                snapshot,
                now,
                self._budgets,
                lambda v: isinstance(v, BudgetBrief),
                "a budget brief",
            )

    def _call(
        self,
        name: str,
        provider: Callable[[FleetSnapshot, datetime], Mapping[str, T]],
        snapshot: FleetSnapshot,
        now: datetime,
        last: Mapping[str, T],
        valid: Callable[[object], bool],
        what: str,
    ) -> Mapping[str, T]:
        """One provider's answer; on failure the last good one, and the source marked degraded
        with a one-line reason (never an exception out of a poll). Entries that are not what
        the table can show are left out, and the source says how many."""
        at = self._provided_at.get(name)
        if at is not None and (now - at).total_seconds() < self.provider_interval_s:
            return last
        self._provided_at[name] = now
        try:
            answer = provider(snapshot, now)
            result = {k: v for k, v in answer.items() if isinstance(k, str) and valid(v)}
            bad = len(answer) - len(result)
        except NotReadYet:  # unknown yet, not failed: say so, and ask again next poll
            self._marks[name] = (None, True, READING)
            if at is None:
                del self._provided_at[name]
            else:
                self._provided_at[name] = at
            return last
        except Exception as exc:  # another helper's code: any failure is shown, never raised
            why = clean_text(str(exc) or type(exc).__name__, max_len=200)
            prev = self._marks.get(name, (None, False, None))[0]
            self._marks[name] = (prev, False, f"{type(exc).__name__}: {why}")
            return last
        self._marks[name] = (now, not bad, f"{bad} entries ignored: not {what}" if bad else None)
        return result

    def _claude_sessions(
        self,
        scans: list[SocketScan],
        beats: Mapping[str, SpoolRead],
        tenant: str,
        host: str,
        walked_now: bool,
    ) -> dict[int, InferredState]:
        """Claude Code's session-file state of the panes whose agent has no heartbeat (the
        only ones the join gives it to), from the processes of the last tree walk: this poll's,
        or on a heartbeat-only poll the last full poll's (then each record is pid-guarded
        again). A fleet whose Claude agents all beat reads no session file at all."""
        wanted: set[int] = set()
        for scan in scans:
            for name, row in scan.sessions().items():
                if not row.pane_pid or row.pane_dead:
                    continue
                read = beats.get(name)
                hb = read.heartbeat if read is not None else None
                if hb is None or hb.tenant_id != tenant or hb.host != host:
                    wanted.add(row.pane_pid)
        if not wanted:
            return {}
        members = {pid: m for pid, m in self.sampler.members.items() if m.root in wanted}
        return self.claude_sessions.by_pane(members, walked_now=walked_now)

    def _dead_pids(
        self, beats: dict[str, SpoolRead], host: str, alive: AbstractSet[int] = frozenset()
    ) -> set[int]:
        """The pids of this host's heartbeats whose process is gone (or a zombie); `alive`:
        pids known to be running, not looked up again."""
        return {
            r.heartbeat.pid
            for r in beats.values()
            if r.heartbeat is not None
            and r.heartbeat.pid is not None
            and r.heartbeat.host == host
            and r.heartbeat.pid not in alive
            and not pid_alive(r.heartbeat.pid)
        }

    def _systemd(self, units: list[str], now: datetime) -> SystemdScan:
        cached = self._systemd_cache
        if (
            cached is not None
            and cached[1] == units
            and (now - cached[0]).total_seconds() < self.systemd_interval_s
        ):
            return cached[2]
        scan = scan_systemd(units)
        self._systemd_cache = (now, units, scan)
        self._marks["systemd"] = (now, scan.available, scan.reason)
        return scan
