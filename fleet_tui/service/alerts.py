"""Alert evaluation as a service: the rules of alerts.yaml over each snapshot, with the episodes
and the operator's silences kept in the state dir (`<state>/alerts/`).

- `episodes-<consumer>.json`: the `AlertBook` of one evaluator. The dashboard (`terminal`: bell,
  toast, inbox) and `alerts run` (`run`: the outside channels) keep separate books, so each
  fires every episode exactly once for its own channels (DESIGN.md: only `alerts run` delivers
  outside; the dashboard serves `terminal`). Written only when something changed, atomically.
- `silences.json`: silences made by an operator (the dashboard's inbox, `alerts silence`); read
  by every evaluator together with the file's own `silences:`, re-read when it changes. Expired
  entries are dropped on the next write.

`AlertEngine.step(snapshot)` costs the evaluation (`core.alerts`, well under a millisecond at
300 agents) plus a `stat` of silences.json; it reads nothing else and polls nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleet_tui import telemetry
from fleet_tui.core.alerts import AlertBook, AlertEvent, Episode, evaluate
from fleet_tui.errors import FleetError
from fleet_tui.model.alerts import TERMINAL, AlertsConfig, Rule, Silence
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.files import atomic_write
from fleet_tui.sources.alerts import AlertsError, LoadedAlerts, load_alerts

MAX_STATE_BYTES = 4 << 20
MAX_SILENCES = 500


class AlertStateError(FleetError):
    """The alerts folder of the state dir cannot be written (one line: the path and why)."""


def alerts_dir(state_dir: Path) -> Path:
    return state_dir / "alerts"


def _read_json(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_STATE_BYTES:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _write_json(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, json.dumps(data, separators=(",", ":")) + "\n", mode=0o600)
    except OSError as exc:
        raise AlertStateError(f"{path}: cannot write: {exc.strerror or exc}") from None


class AlertStore:
    """The files of `<state>/alerts/`."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = alerts_dir(state_dir)
        self._silences: list[Silence] = []
        self._silences_stamp: tuple[int, int] | None = None

    # -- episodes ---------------------------------------------------------------------------
    def book_path(self, consumer: str) -> Path:
        return self.dir / f"episodes-{consumer}.json"

    def load_book(self, consumer: str) -> AlertBook:
        return AlertBook.from_json(_read_json(self.book_path(consumer)))

    def save_book(self, consumer: str, book: AlertBook) -> None:
        _write_json(self.book_path(consumer), book.to_json())

    # -- silences made by an operator -------------------------------------------------------
    @property
    def silences_path(self) -> Path:
        return self.dir / "silences.json"

    def silences(self) -> list[Silence]:
        """The operator's silences (expired ones included until the next write); re-read only
        when the file changed. An unreadable file counts as none (and is replaced on write)."""
        try:
            st = self.silences_path.stat()
        except OSError:
            self._silences, self._silences_stamp = [], None
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._silences_stamp:
            data = _read_json(self.silences_path)
            items = data.get("silences") if isinstance(data, dict) else None
            self._silences = _valid_silences(items)
            self._silences_stamp = stamp
        return self._silences

    def add_silence(self, silence: Silence, now: datetime) -> None:
        """Add one silence (and drop the expired ones), under a lock: two dashboards and an
        `alerts run` may write at once."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(self.dir / ".silences.lock"):
            data = _read_json(self.silences_path)
            items = data.get("silences") if isinstance(data, dict) else None
            keep = [s for s in _valid_silences(items) if s.until > now]
            keep.append(silence)
            keep = keep[-MAX_SILENCES:]
            _write_json(
                self.silences_path,
                {"version": 1, "silences": [s.model_dump(mode="json") for s in keep]},
            )
        self._silences_stamp = None


def _valid_silences(items: Any) -> list[Silence]:
    if not isinstance(items, list):
        return []
    out = []
    for item in items[:MAX_SILENCES]:
        try:
            out.append(Silence.model_validate(item))
        except ValidationError:
            continue
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Any:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise AlertStateError(f"{path}: cannot lock: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def for_terminal(rule: Rule) -> bool:
    return TERMINAL in rule.to


def for_outside(rule: Rule) -> bool:
    return any(to != TERMINAL for to in rule.to)


def snapshot_hosts(snapshot: FleetSnapshot) -> set[str]:
    """The hosts a snapshot has data for: this host, and every host with a row."""
    return {snapshot.host, *(a.host for a in snapshot.agents)}


@dataclass
class LoadResult:
    loaded: LoadedAlerts | None
    error: str | None


class AlertEngine:
    """One evaluator: its rules (those `wants`), its book, the silences; `step` per snapshot."""

    def __init__(
        self,
        config: AlertsConfig,
        store: AlertStore | None,
        consumer: str,
        *,
        wants: Callable[[Rule], bool] = for_outside,
    ) -> None:
        self.store = store
        self.consumer = consumer
        self.wants = wants
        self.config = config
        self.book = store.load_book(consumer) if store is not None else AlertBook()
        self.save_error: str | None = None

    @property
    def config(self) -> AlertsConfig:
        return self._config

    @config.setter
    def config(self, config: AlertsConfig) -> None:
        self._config = config
        self.rules: list[Rule] = [r for r in config.rules if self.wants(r)]

    def silences(self) -> list[Silence]:
        made = self.store.silences() if self.store is not None else []
        return [*self._config.silences, *made]

    def step(self, snapshot: FleetSnapshot, now: datetime) -> list[AlertEvent]:
        """Evaluate one snapshot; saves the book when it changed. A book that cannot be saved
        is reported in `save_error` (the evaluation still happened: nothing is lost in memory)."""
        events = evaluate(
            self.rules,
            snapshot.agents,
            now,
            self.book,
            silences=self.silences(),
            hosts=snapshot_hosts(snapshot),
        )
        if self.book.changed and self.store is not None:
            try:
                self.store.save_book(self.consumer, self.book)
                self.save_error = None
            except AlertStateError as exc:
                self.save_error = str(exc)
        for event in events if telemetry.enabled() else ():
            ep = event.episode
            with telemetry.span(
                "fleet.alert",
                tenant=ep.tenant_id,
                host=ep.host,
                agent=ep.agent,
                outcome=event.status,
                rule=ep.rule,
                repeat=event.repeat,
                consumer=self.consumer,
            ):
                pass  # an instant: the episode fired (or resolved) in this evaluation
        return events

    def open_episodes(self) -> list[Episode]:
        return self.book.open_episodes()

    def silence(
        self,
        rule: str,
        agents: Sequence[str],
        until: datetime,
        now: datetime,
        *,
        by: str | None = None,
        reason: str | None = None,
    ) -> Silence:
        """Write an operator's silence where every evaluator reads it."""
        if self.store is None:
            raise AlertStateError("no state dir: silences cannot be kept")
        s = Silence(rule=rule, agents=list(agents), until=until, by=by, reason=reason)
        self.store.add_silence(s, now)
        return s


def load_rules(path: Path, explicit: bool) -> LoadResult:
    """The alerts file at `path`: (loaded, None), or (None, one-line error). A default path
    that does not exist is (None, None): the caller uses its built-in rules."""
    if not explicit and not path.exists():
        return LoadResult(None, None)
    try:
        return LoadResult(load_alerts(path), None)
    except AlertsError as exc:
        return LoadResult(None, str(exc))


def describe_silence(s: Silence) -> str:
    who = f" by {s.by}" if s.by else ""
    return f"{s.rule} on {', '.join(s.agents)} until {format_ts(s.until)}{who}"
