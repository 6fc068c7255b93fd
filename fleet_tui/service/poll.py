"""What the dashboard polls: a `SnapshotSource`. The live one wraps the collector and reads pane
captures through the tmux runner; tests inject fixed ones (deterministic snapshots).

Every method blocks: the app calls them from thread workers, never on the UI thread.

With a gateway, `poll()` merges the local view with the gateway's other hosts. The gateway is
asked in a small thread of its own (one request at a time, with its own timeouts and a backoff
after failures), so a slow or dead gateway never makes a local poll slower: each poll merges the
last answer (marked with its age) and starts the next request when none is running.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from fleet_tui.config.fleet import FleetConfig, configured_identity
from fleet_tui.core.infer import DEFAULT_RULES, InferenceRules
from fleet_tui.core.merge import GatewayView, RemoteHostData, clean_remote, merge_snapshots
from fleet_tui.model.records import AgentRecord, FleetSnapshot
from fleet_tui.protocol.clock import utcnow
from fleet_tui.protocol.files import atomic_write
from fleet_tui.remote.client import GatewayClient, parse_snapshot_answer
from fleet_tui.remote.connection import Backoff, GatewayError, GatewaySettings
from fleet_tui.service.collector import BudgetProvider, FleetCollector, UsageProvider
from fleet_tui.sources.roster import LoadedRoster
from fleet_tui.tmux import TmuxRunner

CAPTURE_LINES = 30
GATEWAY_CACHE = "gateway-last.json"  # in the state dir: the gateway's last answer
CACHE_EVERY_S = 30.0  # the dashboard keeps it at most this often (answers come every 2 s)


class SnapshotSource(Protocol):
    """Where the dashboard's data comes from."""

    @property
    def watch_dir(self) -> Path | None:
        """A folder whose changes mean "heartbeats changed: poll now" (None: no watching)."""

    def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        """One snapshot; raises FleetError for what the user must fix. `heartbeats_only`: the
        spool changed, the rest of the last observation may be reused."""

    def capture(self, record: AgentRecord) -> list[str]:
        """The last lines the agent's pane shows (raw: the caller sanitizes)."""

    def capture_screen(self, record: AgentRecord) -> str:
        """What the pane shows now, with SGR colours (raw: the caller sanitizes)."""

    def pane_activity(self, record: AgentRecord) -> str | None:
        """A stamp that changes when the pane shows something new."""


class FirstSnapshot(Protocol):
    """A snapshot taken elsewhere for the first poll (`service.firstpoll.FirstPoll`)."""

    def take(self) -> tuple[FleetSnapshot, LoadedRoster | None] | None:
        """The snapshot and the roster it was made with, or None (then the source collects
        its own)."""


class GatewayFeed:
    """The gateway's hosts for the dashboard: fetched in a background thread, never two at
    once, skipped while backing off after failures; `view()` is what is known now."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        client: GatewayClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        backoff: Backoff | None = None,
        cache_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.cache_path = cache_path
        self._cache_tried = False
        self.client = client or GatewayClient(settings, clock=clock)
        self.clock = clock
        self.backoff = backoff or Backoff(base_s=1.0, cap_s=30.0)
        self.on_answer: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._hosts: list[RemoteHostData] = []
        self._answered_at: datetime | None = None
        self._asked_at: float | None = None
        self._error: str | None = None
        self._warnings: list[str] = []
        self._from_cache = False
        self._saved_at: float | None = None
        self.fetches = 0

    def view(self) -> GatewayView:
        with self._lock:
            error = self._error
            if error is None and (self._answered_at is None or self._from_cache):
                error = "no answer yet" if self._thread is not None else "not asked yet"
                if self._from_cache:
                    error += " (showing its last answer of an earlier run)"
            return GatewayView(
                url=self.settings.display,
                hosts=list(self._hosts),
                answered_at=self._answered_at,
                error=error,
                warnings=list(self._warnings),
            )

    def kick(self, tenant: str) -> bool:
        """Start a fetch unless one runs, the backoff says wait, or the last one is too recent.
        Returns True when a fetch was started."""
        if not self._cache_tried:
            self._cache_tried = True
            self._load_cache(tenant)
        now = time.monotonic()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            if not self.backoff.ready(now):
                return False
            if self._asked_at is not None and now - self._asked_at < self.settings.refresh_s:
                return False
            self._asked_at = now
            self._thread = threading.Thread(
                target=self._fetch, args=(tenant,), name="gateway-fetch", daemon=True
            )
            self._thread.start()
        return True

    def wait(self, timeout: float) -> None:
        """Wait for a running fetch (tests and `ps`): at most `timeout` seconds."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _load_cache(self, tenant: str) -> None:
        """The last answer of an earlier run (same gateway, same tenant), shown with its true
        age until the gateway answers: a restart or a one-shot `ps` during an outage still shows
        the other hosts, honestly marked stale."""
        if self.cache_path is None:
            return
        try:
            data = json.loads(self.cache_path.read_bytes())
            if data.get("url") != self.settings.url or data.get("tenant") != tenant:
                return
            answered = datetime.fromisoformat(data["answered_at"])
            answer = parse_snapshot_answer(data["answer"], tenant, answered)
            hosts = [
                RemoteHostData(
                    h.tenant_id, h.host, h.observed_at, clean_remote(h.snapshot), True,
                    age_s=h.age_s, fetched_at=answered, seen_at=answered,
                )
                for h in answer.hosts
            ]  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, AttributeError, GatewayError):
            return  # no cache, or not a usable one: the gateway's answer will do
        with self._lock:
            if self._answered_at is None:
                self._hosts, self._answered_at = hosts, answered
                self._from_cache = True

    def _save_cache(self, tenant: str, answered_at: datetime, raw: object) -> None:
        path = self.cache_path
        if path is None or not path.parent.is_dir():
            return
        now = time.monotonic()
        if self._saved_at is not None and now - self._saved_at < CACHE_EVERY_S:
            return  # an older kept answer only errs on the stale side
        self._saved_at = now
        doc = {"v": 1, "url": self.settings.url, "tenant": tenant,
               "answered_at": answered_at.isoformat(), "answer": raw}  # fmt: skip
        with contextlib.suppress(OSError, TypeError, ValueError):
            atomic_write(path, json.dumps(doc))

    def _fetch(self, tenant: str) -> None:
        try:
            answer = self.client.fetch_snapshot(tenant)
            with self._lock:  # when each observation was first seen (a future one ages from it)
                before = {(h.host, h.observed_at): h.seen_at for h in self._hosts}
            hosts = [  # sanitized once per answer, outside the lock; polls only age them
                RemoteHostData(
                    h.tenant_id, h.host, h.observed_at, clean_remote(h.snapshot), clean=True,
                    age_s=h.age_s, fetched_at=answer.fetched_at,
                    seen_at=before.get((h.host, h.observed_at)) or answer.fetched_at,
                )
                for h in answer.hosts
            ]  # fmt: skip
        except GatewayError as exc:
            with self._lock:
                self._error = str(exc)
                self.backoff.failed(time.monotonic())
                self.fetches += 1
        except Exception as exc:  # a bug must not kill the thread silently: show it
            with self._lock:
                self._error = self.client.redact(
                    f"gateway fetch failed: {type(exc).__name__}: {exc}"
                )
                self.backoff.failed(time.monotonic())
                self.fetches += 1
        else:
            self._save_cache(tenant, answer.fetched_at, answer.raw)
            with self._lock:
                self._from_cache = False
                self._hosts = hosts
                self._answered_at = answer.fetched_at
                self._error = None
                self._warnings = answer.warnings
                self.backoff.succeeded()
                self.fetches += 1
        callback = self.on_answer
        if callback is not None:
            try:
                callback()
            except Exception:  # the app may be gone; the next poll shows the answer anyway
                pass

    def close(self) -> None:
        self.client.close()


def without_local_handles(snapshot: FleetSnapshot) -> FleetSnapshot:
    """Remote agents (`remote=True`, set by the merge from where the row came from, never from
    its host text) keep their tmux facts for display, but no socket: nothing in this dashboard
    (capture, stream, send, watch, attach) may act on a local pane or session that merely shares
    a remote agent's pane id, name or host name."""
    if not any(a.remote and a.socket is not None for a in snapshot.agents):
        return snapshot
    agents = [a.model_copy(update={"socket": None}) if a.remote else a for a in snapshot.agents]
    return snapshot.model_copy(update={"agents": agents})


def collect_with_gateway(
    config: FleetConfig,
    settings: GatewaySettings,
    *,
    tenant: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    collector: FleetCollector | None = None,
) -> FleetSnapshot:
    """One merged snapshot (for `ps`): the gateway is asked while the local view is collected,
    and waited for at most its own deadline."""
    collector = collector or FleetCollector(config)
    asked = tenant or configured_identity(config)[0]
    feed = GatewayFeed(settings, clock=clock, cache_path=config.state_dir / GATEWAY_CACHE)
    try:
        feed.kick(asked)
        local = collector.collect()
        feed.wait(settings.deadline_s + settings.connect_timeout_s + 1.0)
        merged = merge_snapshots(local, feed.view(), clock(), stale_after_s=settings.stale_after_s)
    finally:
        feed.close()
    return merged


class LiveSource:
    """Local tmux, spool, systemd and processes, through one long-lived collector; with a
    gateway, merged with the gateway's other hosts."""

    def __init__(
        self,
        config: FleetConfig,
        runner: TmuxRunner | None = None,
        *,
        systemd_interval_s: float = 30.0,
        gateway: GatewaySettings | GatewayFeed | None = None,
        clock: Callable[[], datetime] = utcnow,
        usage_provider: UsageProvider | None = None,
        budget_provider: BudgetProvider | None = None,
        provider_interval_s: float = 10.0,
        inference: InferenceRules = DEFAULT_RULES,
        inference_notices: Sequence[str] = (),
    ) -> None:
        self.collector = FleetCollector(
            config,
            runner=runner,
            keep_last_good=True,
            systemd_interval_s=systemd_interval_s,
            inference=inference,
            inference_notices=inference_notices,
            usage_provider=usage_provider,
            budget_provider=budget_provider,
            provider_interval_s=provider_interval_s,
        )
        self.runner = self.collector.runner
        self.spool = self.collector.spool
        self.clock = clock
        if gateway is None:
            gateway = config.gateway
        if isinstance(gateway, GatewaySettings):
            gateway = GatewayFeed(gateway, clock=clock, cache_path=config.state_dir / GATEWAY_CACHE)
        self.gateway: GatewayFeed | None = gateway
        self._tenant: str | None = None
        self.host: str | None = None
        self._merge_cache: dict[tuple[Any, ...], list[AgentRecord]] = {}
        self._first: FirstSnapshot | None = None

    def use_first(self, first: FirstSnapshot) -> None:
        """The next poll takes `first`'s snapshot (a child's, taken while the dashboard
        started), or collects as usual when it has none. The poll after it is a full one, as
        every collector's first is (its tmux, processes and providers are this source's
        first)."""
        self._first = first

    @property
    def watch_dir(self) -> Path | None:
        return self.collector.spool.heartbeats

    def _local_tenant(self) -> str | None:
        if self._tenant is None:
            try:
                self._tenant = configured_identity(self.collector.config)[0]
            except Exception:  # the local poll reports a bad roster; the gateway waits
                return None
        return self._tenant

    def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        first, self._first = self._first, None
        if first is not None:
            taken = first.take()
            if taken is not None:
                snapshot, roster = taken
                if roster is not None:
                    self.collector.keep_roster(roster)
                self._tenant, self.host = snapshot.tenant_id, snapshot.host
                return snapshot
        feed = self.gateway
        if feed is not None:
            tenant = self._local_tenant()
            if tenant is not None:
                feed.kick(tenant)  # runs beside the local collection; never waited for
        local = self.collector.collect(heartbeats_only=heartbeats_only)
        self._tenant, self.host = local.tenant_id, local.host
        if feed is None:
            return local
        merged = merge_snapshots(
            local,
            feed.view(),
            self.clock(),
            stale_after_s=feed.settings.stale_after_s,
            cache=self._merge_cache,
        )
        return without_local_handles(merged)

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.close()

    def _is_remote(self, record: AgentRecord) -> bool:
        return record.remote or (self.host is not None and record.host != self.host)

    def capture(self, record: AgentRecord) -> list[str]:
        if record.tmux is None or record.socket is None or self._is_remote(record):
            return []
        res = self.runner.run(
            record.socket,
            "capture-pane",
            "-p",
            "-J",
            "-t",
            record.tmux.pane_id,
            "-S",
            f"-{CAPTURE_LINES}",
            timeout=2.0,
        )
        lines = res.stdout.rstrip("\n").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        return lines[-CAPTURE_LINES:]

    def capture_screen(self, record: AgentRecord) -> str:
        if record.tmux is None or record.socket is None or self._is_remote(record):
            return ""
        res = self.runner.run(
            record.socket, "capture-pane", "-e", "-p", "-t", record.tmux.pane_id, timeout=2.0
        )
        return res.stdout

    def pane_activity(self, record: AgentRecord) -> str | None:
        if record.tmux is None or record.socket is None or self._is_remote(record):
            return None
        res = self.runner.run(
            record.socket,
            "display-message",
            "-p",
            "-t",
            record.tmux.pane_id,
            "#{window_activity}:#{pane_dead}:#{cursor_x},#{cursor_y}",
            timeout=2.0,
        )
        return res.stdout.strip()
