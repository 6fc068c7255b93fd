"""The collector: runs the sources and joins them into one `FleetSnapshot`.

Used by `ps` once and by the dashboard's poller on a schedule (it keeps the process sampler, so
CPU is a rate between polls). Blocking: call it off the UI thread.
"""

from __future__ import annotations

import getpass
import os
import socket as _socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleet_tui.core.join import FleetInputs, build_snapshot
from fleet_tui.errors import RosterError
from fleet_tui.model import (
    FleetSnapshot,
    Ping,
    Roster,
    SocketScan,
    SourceStatus,
    SpoolRead,
    SystemdScan,
    TreeSample,
)
from fleet_tui.paths import Located, roster_location, state_dir_location
from fleet_tui.sources.procs import ProcessSampler, pid_alive
from fleet_tui.sources.roster import LoadedRoster, load_roster
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.sources.systemd import scan_systemd
from fleet_tui.sources.tmux import scan_all
from fleet_tui.tmux import TmuxRunner

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_identity(roster: Roster | None) -> tuple[str, str]:
    """(tenant_id, host) of local records: the roster's, else login name and hostname."""
    host = (roster.host if roster and roster.host else None) or _socket.gethostname()
    if roster is not None:
        return roster.tenant_id, host
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, host


@dataclass
class FleetConfig:
    roster: Located
    state_dir: Path
    heartbeat_timeout_s: float | None = None
    tmux_timeout_s: float = 2.0

    @classmethod
    def from_flags(
        cls,
        roster: str | None = None,
        state_dir: str | None = None,
        heartbeat_timeout_s: float | None = None,
    ) -> FleetConfig:
        return cls(roster_location(roster), state_dir_location(state_dir).path, heartbeat_timeout_s)


def load_configured_roster(config: FleetConfig) -> LoadedRoster | None:
    """The roster, or None when the default one does not exist. A named one must exist."""
    if not config.roster.explicit and not config.roster.path.exists():
        return None
    return load_roster(config.roster.path)


_FileKey = tuple[str, int, int, int, int, int]
# File times are coarse (a clock tick) and inode numbers are reused: a file changed within this
# long may change again with the same stat, so it is not cached ("racy" entries, as in git).
_SETTLED_NS = 2_000_000_000


def _stat_key(path: str, st: os.stat_result) -> _FileKey | None:
    """What identifies one version of a file; None when it is too fresh to be trusted."""
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _SETTLED_NS:
        return None
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _file_key(path: Path) -> _FileKey | None:
    try:
        return _stat_key(str(path), path.stat())
    except OSError:
        return None


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
    ) -> None:
        self.config = config
        self.runner = runner or TmuxRunner(timeout=config.tmux_timeout_s)
        self.clock = clock
        self.sampler = sampler or ProcessSampler()
        self.spool = HeartbeatSpool(config.state_dir)
        # Polls are far more frequent than file changes: parsing a 300-agent roster costs
        # ~100 ms and a heartbeat ~30 us, so both are re-read only when the file's identity
        # (path, device, inode, size, mtime, ctime) changed, or while it is fresh.
        self._roster_cache: tuple[_FileKey, LoadedRoster] | None = None
        self._beat_cache: dict[str, tuple[_FileKey, SpoolRead]] = {}
        self.keep_last_good = keep_last_good
        self.systemd_interval_s = systemd_interval_s
        self._last_roster: LoadedRoster | None = None
        self._last_good_roster_seen = False
        self._last_scans: list[SocketScan] | None = None
        self._last_processes: dict[int, TreeSample] = {}
        self._systemd_cache: tuple[datetime, list[str], SystemdScan] | None = None
        self._marks: dict[str, tuple[datetime | None, bool, str | None]] = {}

    def _load_roster(self) -> LoadedRoster | None:
        key = _file_key(self.config.roster.path)
        cached = self._roster_cache
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        loaded = load_configured_roster(self.config)
        self._roster_cache = (key, loaded) if key is not None and loaded is not None else None
        return loaded

    def _read_spool(self) -> tuple[dict[str, SpoolRead], dict[str, Ping]]:
        beats: dict[str, SpoolRead] = {}
        pings: dict[str, Ping] = {}
        beat_cache: dict[str, tuple[_FileKey, SpoolRead]] = {}
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
                        key = _stat_key(entry.path, entry.stat())
                    except OSError:
                        key = None
                    cached = self._beat_cache.get(agent)
                    if key is not None and cached is not None and cached[0] == key:
                        read = cached[1]
                    else:
                        read = self.spool.read_heartbeat(agent)
                    beats[agent] = read
                    if key is not None:
                        beat_cache[agent] = (key, read)
                else:
                    ping = self.spool.read_ping(agent)
                    if ping is not None:
                        pings[agent] = ping
        self._beat_cache = beat_cache
        return beats, pings

    def collect(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        """One snapshot. Raises only for what the user must fix (roster, socket folder, no tmux).

        `heartbeats_only` re-reads the spool and joins it with the last tmux, process and
        systemd observations (what the dashboard does when a heartbeat file changes). systemd
        is asked at most every `systemd_interval_s`. With `keep_last_good`, a roster that
        turns bad while running keeps the last good one and says so in the warnings.
        """
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
        roster = loaded.roster if loaded else None
        tenant, host = local_identity(roster)
        scans = self._last_scans
        if heartbeats_only and scans is not None:
            beats, pings = self._read_spool()
            dead = self._dead_pids(beats, host)
            processes = self._last_processes
        else:
            _ = self.runner.binary  # tmux missing is one clear error, not N degraded sockets
            with ThreadPoolExecutor(max_workers=1) as pool:
                tmux_future = pool.submit(scan_all, self.runner)
                # While tmux answers (the scan waits on subprocesses): the spool and its pids.
                beats, pings = self._read_spool()
                dead = self._dead_pids(beats, host)
                scans = tmux_future.result()
            pane_pids = [
                row.pane_pid for scan in scans for row in scan.sessions().values() if row.pane_pid
            ]
            processes = self.sampler.sample(pane_pids)
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
        systemd = self._systemd(units, now)
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
            sources=[
                SourceStatus(name=name, observed_at=at, ok=ok, detail=detail)
                for name, (at, ok, detail) in self._marks.items()
            ],
        )
        return build_snapshot(inputs)

    def _dead_pids(self, beats: dict[str, SpoolRead], host: str) -> set[int]:
        return {
            r.heartbeat.pid
            for r in beats.values()
            if r.heartbeat is not None
            and r.heartbeat.pid is not None
            and r.heartbeat.host == host
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
