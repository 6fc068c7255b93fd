"""The terminal's title: the fleet and how many of its agents wait ("3 waiting · jarvis@w-1 ·
fleet-tui"), so a dashboard left in a background tab says when it needs the operator.

Textual (8.x) has no terminal-title API, so the title goes out as OSC 2 through the app's driver
(as Textual's own `copy_to_clipboard` writes OSC 52), only when its text changes. The title we
found is saved first on the terminal's title stack (XTWINOPS 22) and restored when the screen
goes (23); terminals without the stack ignore both. Tenant and host are data: the text is
sanitized and cut to printable ASCII-safe text with no control characters.
"""

from __future__ import annotations

from collections.abc import Set

from textual.app import App

from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import AgentRecord
from fleet_tui.present.glyphs import to_ascii
from fleet_tui.present.view import FleetCounts, fleet_counts

APP_NAME = "fleet-tui"
SAVE_TITLE = "\x1b[22;2t"
RESTORE_TITLE = "\x1b[23;2t"


def fleet_name(agents: list[AgentRecord]) -> str:
    """`tenant@host` for one host, `tenant (N hosts)` for one tenant, `N tenants` else."""
    return _name_of({a.tenant_id for a in agents}, {a.host for a in agents})


def _name_of(tenant_set: Set[str], host_set: Set[str]) -> str:
    tenants = sorted(tenant_set)
    hosts = sorted(host_set)
    if not tenants:
        return ""
    if len(tenants) > 1:
        return f"{len(tenants)} tenants"
    if len(hosts) == 1:
        return f"{tenants[0]}@{hosts[0]}"
    return f"{tenants[0]} ({len(hosts)} hosts)"


def title_text(
    agents: list[AgentRecord], *, ascii_only: bool = False, counts: FleetCounts | None = None
) -> str:
    """The title for this fleet: "3 waiting · jarvis@w-1 · fleet-tui", or without the count
    when nobody waits. `counts`: `fleet_counts(agents)`, when the caller has it already."""
    if counts is None:
        counts = fleet_counts(agents)
    waiting = counts.waiting
    parts = [f"{waiting} waiting"] if waiting else []
    name = clean_text(_name_of(counts.tenants, counts.hosts), max_len=60)
    if name:
        parts.append(name)
    parts.append(APP_NAME)
    text = " · ".join(parts)
    return to_ascii(text) if ascii_only else text


def _safe(text: str) -> str:
    # clean_text already drops control characters; BEL and ESC must never reach the sequence
    return "".join(c for c in clean_text(text, max_len=120) if c.isprintable())


class TerminalTitle:
    """Sets the title of the terminal the app draws on, once per change; `restore` puts back
    the title the terminal had. `sent` keeps what was written (what a test can look at; in a
    headless app nothing is written)."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.sent: list[str] = []
        self._saved = False

    def set(self, app: App[object], text: str) -> None:
        text = _safe(text)
        if text == self.text:
            return
        self.text = text
        out = "" if self._saved else SAVE_TITLE
        self._saved = True
        self._write(app, out + f"\x1b]2;{text}\x07")

    def restore(self, app: App[object]) -> None:
        if self._saved:
            self._saved = False
            self.text = None
            self._write(app, RESTORE_TITLE)

    def _write(self, app: App[object], data: str) -> None:
        self.sent.append(data)
        driver = app._driver  # no public way in Textual 8 (its copy_to_clipboard does the same)
        if driver is None or app.is_headless:
            return
        driver.write(data)
        driver.flush()
