"""The dashboard's `terminal` alert channel (DESIGN.md "Alerts, version 1"): the rules of
alerts.yaml that send `to: [terminal]`, evaluated over every poll by an `AlertEngine` of consumer
`terminal` (its episodes in `<state>/alerts/episodes-terminal.json`, the operator's silences in
`<state>/alerts/silences.json`, the same file `alerts run` reads).

Everything here that touches a file runs in the poll thread (`TerminalAlerts.step`, right after
the poll) or in a thread worker (`TerminalAlerts.silence`), never on the event loop. What the UI
gets is an `AlertUpdate`: frozen copies of what fired and of the open episodes, and at most one
notice (the alerts file became invalid, the book cannot be saved), so nothing the poll thread
changes next is shared with the screens.

The alerts file is re-checked (one `stat`) on every poll: a new valid version replaces the rules;
an invalid one keeps the last good rules and is said once (`file:line: field: why`).
"""

from __future__ import annotations

import getpass
import glob
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fleet_tui.config.paths import Located
from fleet_tui.core.alerts import AlertEvent, Episode, globs
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.alerts import DEFAULT_RULES, AlertsConfig, Silence
from fleet_tui.model.records import AgentRecord, FleetSnapshot
from fleet_tui.present.columns import question
from fleet_tui.service.alerts import AlertEngine, AlertStore, for_terminal, load_rules

CONSUMER = "terminal"
_Stamp = tuple[int, int, int] | None  # (mtime_ns, size, inode) of the alerts file; None: absent


@dataclass(frozen=True)
class Fired:
    """An episode that fired (or fired again, `repeat`) on this poll."""

    rule: str
    key: str  # AgentRecord.key
    agent: str
    detail: str
    repeat: bool = False


@dataclass(frozen=True)
class OpenAlert:
    """An open episode as the inbox shows it (a copy: the engine's own keeps moving)."""

    rule: str
    key: str  # AgentRecord.key
    agent: str
    host: str
    since: datetime
    state: str | None
    detail: str
    silenced_until: datetime | None = None  # None: not silenced

    @property
    def silenced(self) -> bool:
        return self.silenced_until is not None


@dataclass(frozen=True)
class AlertUpdate:
    """What one poll's evaluation tells the dashboard."""

    fired: tuple[Fired, ...] = ()
    resolved: int = 0
    open: tuple[OpenAlert, ...] = ()
    notice: str | None = None  # one warning to show once (the file, the book)


def _stamp(path: Path) -> _Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _user() -> str | None:
    try:
        return clean_text(getpass.getuser(), max_len=64) or None
    except (KeyError, OSError):
        return None


class TerminalAlerts:
    """The dashboard's evaluator: its engine, where its rules come from, and the last notice."""

    def __init__(
        self,
        engine: AlertEngine,
        located: Located,
        *,
        stamp: _Stamp = None,
        from_file: bool = False,
        invalid: bool = False,
    ) -> None:
        self.engine = engine
        self.path = located.path
        self.explicit = located.explicit
        self._stamp = stamp
        self._from_file = from_file  # the rules in use came from the file (else: built in)
        self._invalid = invalid  # the file as it is now is not valid
        self._save_error: str | None = None
        self._lock = threading.Lock()  # step (poll thread) and silence (a worker) may overlap
        self.last_open: tuple[OpenAlert, ...] = ()
        self.rules_line = self._describe()

    @classmethod
    def load(cls, located: Located, state_dir: Path | None) -> tuple[TerminalAlerts, str | None]:
        """The evaluator for `located` (the alerts file) with its book in `state_dir` (None:
        kept in memory only), and a notice for the operator when the file is invalid (the
        built-in rule is used then) or says something (no rules). Reads files: call it before
        the app runs or in a thread."""
        stamp = _stamp(located.path)
        result = load_rules(located.path, located.explicit)
        notices: list[str] = []
        config: AlertsConfig = DEFAULT_RULES
        if result.loaded is not None:
            config = result.loaded.config
            notices.extend(result.loaded.warnings)
        elif result.error is not None:
            notices.append(f"{result.error}: using the built-in rule")
        store = AlertStore(state_dir) if state_dir is not None else None
        engine = AlertEngine(config, store, CONSUMER, wants=for_terminal)
        alerts = cls(
            engine,
            located,
            stamp=stamp,
            from_file=result.loaded is not None,
            invalid=result.error is not None,
        )
        notice = "\n".join(clean_text(n, max_len=400) for n in notices) or None
        return alerts, notice

    # -- the poll thread ---------------------------------------------------------------------
    def step(self, snapshot: FleetSnapshot, now: datetime) -> AlertUpdate:
        """Re-check the file, evaluate `snapshot`, and copy out what the UI shows."""
        with self._lock:
            notices = [n for n in (self._recheck(),) if n]
            events = self.engine.step(snapshot, now)
            save_error = self.engine.save_error
            if save_error and save_error != self._save_error:
                notices.append(f"alerts: {save_error} (episodes kept in memory)")
            self._save_error = save_error
            # (the records by key only when something is open: 0.25 ms at 300 agents)
            opened = self.open()
            records = {a.key: a for a in snapshot.agents} if opened or events else {}
            self.last_open = self._open(opened, now, records)
            return AlertUpdate(
                fired=tuple(_fired(e, records) for e in events if e.status == "firing"),
                resolved=sum(1 for e in events if e.status == "resolved"),
                open=self.last_open,
                notice="\n".join(clean_text(n, max_len=400) for n in notices) or None,
            )

    def _recheck(self) -> str | None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        result = load_rules(self.path, self.explicit)
        if result.loaded is not None:
            self.engine.config = result.loaded.config
            self._from_file, self._invalid = True, False
            self.rules_line = self._describe()
            return "\n".join(result.loaded.warnings) or None
        if result.error is not None:
            self._invalid = True
            self.rules_line = self._describe()
            kept = "the last good rules" if self._from_file else "the built-in rule"
            return f"{result.error}: keeping {kept}"
        # a default file that went away: the built-in rule again
        self.engine.config = DEFAULT_RULES
        self._from_file, self._invalid = False, False
        self.rules_line = self._describe()
        return None

    def _open(
        self, opened: list[Episode], now: datetime, records: dict[str, AgentRecord]
    ) -> tuple[OpenAlert, ...]:
        if not opened:
            return ()
        silences = self.engine.silences()
        return tuple(
            _open_alert(
                e, _silenced_until(silences, e, now) if e.silenced else None, _asks(e, records)
            )
            for e in opened
        )

    def open(self) -> list[Episode]:
        return self.engine.open_episodes()

    def _describe(self) -> str:
        """One line on where the rules come from and which of them ring here."""
        path = clean_text(str(self.path), max_len=200)
        names = [r.name for r in self.engine.rules]
        ring = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        if not self._from_file:
            why = f"{path} is invalid" if self._invalid else f"no {path}"
            return (
                f"Built-in rule needs-you (waiting_input or blocked) rings here ({why}; "
                "rules with to: [terminal] there ring here)."
            )
        invalid = (
            " (the file is invalid now: the last good rules are kept)" if self._invalid else ""
        )
        if not names:
            return f"{path}: no rule sends to terminal, so nothing rings here{invalid}."
        return f"{path}: {len(names)} rule(s) ring here: {ring}{invalid}."

    # -- a worker thread ---------------------------------------------------------------------
    def silence(self, rule: str, agent: str, until: datetime, now: datetime) -> Silence:
        """Silence `rule` for the agent named `agent` until `until`, in silences.json (where
        `alerts run` reads it too). The name is matched literally, not as a glob."""
        with self._lock:
            return self.engine.silence(
                rule,
                [glob.escape(agent)],
                until,
                now,
                by=_user(),
                reason="silenced in the dashboard's inbox",
            )


def _asks(e: Episode, records: dict[str, AgentRecord]) -> str:
    """What to show for an episode: the agent's question when it waits for one (the prompt
    read off its pane, rather than "claude prompt: '...'"), else the episode's detail."""
    record = records.get(e.key)
    asks = question(record) if record is not None else None
    return asks or e.detail


def _fired(e: AlertEvent, records: dict[str, AgentRecord]) -> Fired:
    ep = e.episode
    return Fired(
        rule=ep.rule, key=ep.key, agent=ep.agent, detail=_asks(ep, records), repeat=e.repeat
    )


def _open_alert(e: Episode, silenced_until: datetime | None, detail: str) -> OpenAlert:
    return OpenAlert(
        rule=e.rule,
        key=e.key,
        agent=e.agent,
        host=e.host,
        since=e.since,
        state=e.state,
        detail=detail,
        silenced_until=silenced_until if e.silenced else None,
    )


def _silenced_until(silences: list[Silence], e: Episode, now: datetime) -> datetime | None:
    """The end of the longest silence that holds `e` back now (None: none does)."""
    ends = [
        s.until
        for s in silences
        if s.until > now and s.rule in ("*", e.rule) and globs(s.agents)(e.agent)
    ]
    return max(ends) if ends else None
