"""AgentDetailScreen: everything known about one agent, its heartbeat history, its last output.

Read-only. Agent-controlled strings were sanitized by the join; the pane capture is sanitized
here before it reaches a widget, and nothing is ever parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Sparkline, Static

from fleet_tui.config.surface import Surface
from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_bytes, human_duration
from fleet_tui.model.records import (
    AgentRecord,
    BudgetBrief,
    Drift,
    FleetSnapshot,
    Health,
    StateSource,
)
from fleet_tui.present.columns import (
    ATTENTION_STATES,
    HEALTH_SYMBOL,
    HOOK_MARK,
    INFERRED_MARK,
    SESSION_MARK,
    age_ago,
    age_cell,
    budget_cell,
    human_tokens,
    shown_state,
)
from fleet_tui.ui.context import (
    Dashboard,
    PollScreen,
    dashboard_of,
    lifecycle_bindings,
    pane_action_bindings,
)
from fleet_tui.ui.widgets.footer import FleetFooter
from fleet_tui.ui.widgets.header import HEALTH_STYLE
from fleet_tui.ui.workers import in_thread

DRIFT_EXPLAINED = {
    Drift.MISSING_SESSION: "always-on in the roster, but no tmux session runs it",
    Drift.NOT_IN_ROSTER: "runs as an agent, but the roster does not list it",
    Drift.SOCKET_MISMATCH: "runs on another tmux socket than the roster says",
    Drift.DUPLICATE: "a session of this name runs on more than one socket",
    Drift.PANE_DEAD: "the pane's process has exited (the pane is kept for inspection)",
    Drift.UNIT_INACTIVE: "its systemd --user unit is not active",
    Drift.UNIT_WITHOUT_SESSION: "its systemd unit is active, but no session runs",
    Drift.BOOT_DISABLED: "will not come back after a reboot (unit not enabled, or no linger)",
    Drift.RUNTIME_MISMATCH: "the runtime seen in the pane differs from the roster's",
    # the lifecycle's (issue 17): why the agent is left down, and what releases it
    Drift.HELD: "supervise gave up on it (more restarts within 15 minutes than its limit): "
    "u (start) or r (restart) here, or 'fleet-tui up NAME', releases it",
    Drift.STOPPED: "an operator stopped it on purpose: supervise and 'fleet-tui up' leave it "
    "alone; u (start) here or 'fleet-tui up NAME' starts it again",
}


SOURCE_EXPLAINED = {
    StateSource.HEARTBEAT: "from the runtime's heartbeat",
    StateSource.HOOK: "from a runtime hook's heartbeat",
    StateSource.INFERRED: "inferred from the pane, a guess: health stays unknown",
    StateSource.SESSION: "from Claude Code's session file (its own status): health stays unknown",
}


def budget_text(b: BudgetBrief | None) -> str | None:
    """One line of the agent's budget: account and window, use, pace, status, ladder rung."""
    if b is None:
        return None
    parts = [b.account + (f" / {b.window}" if b.window else ""), budget_cell(b)]
    if b.pace is not None:
        parts.append(f"pace {b.pace:.2f}")
    parts.append(b.status.replace("_", " "))
    if b.rung:
        parts.append(f"rung {b.rung}")
    return " · ".join(parts)


class OneWord:
    """A value without spaces (a path, a command, an id) on one line, never broken inside:
    shortened with … when the column is narrower, a path from its start (its last folders tell
    agents apart), anything else at its end."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = cell_len(self.text)
        return Measurement(min(width, MIN_VALUE_WIDTH), width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield fit_word(self.text, options.max_width)


MIN_VALUE_WIDTH = 12


def fit_word(text: str, width: int) -> Text:
    """`text` in `width` cells: whole, or shortened with … (a path keeps its end)."""
    if cell_len(text) <= width:
        return Text(text, no_wrap=True)
    if width <= 1:
        return Text("…"[:width], no_wrap=True)
    if "/" in text:
        # drop whole folders from the start while one fits, else characters
        tail = text
        while cell_len(tail) > width - 1:
            cut = tail.find("/", 1)
            short = tail[cut:] if cut > 0 else tail[1:]
            tail = short if cell_len(short) <= width - 1 or cut > 0 else tail[1:]
        return Text("…" + tail, no_wrap=True)
    out = Text(text, no_wrap=True)
    out.truncate(width, overflow="ellipsis")
    return out


def value_cell(v: str | None) -> RenderableType:
    """A value of the facts: words wrap at spaces (a word longer than the column is cut with
    …), one word stays on its line (OneWord); never a break inside a word."""
    text = clean_text(v) if v else "-"
    if " " not in text:
        return OneWord(text)
    return Text(text, overflow="ellipsis")


def _kv(rows: Sequence[tuple[str, str | None]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="ellipsis")
    for k, v in rows:
        table.add_row(Text(k), value_cell(v))
    return table


OLD_STATE_HEALTH = (Health.STALE, Health.UNRESPONSIVE)


def summary_text(r: AgentRecord) -> Text:
    t = Text()
    t.append(r.name, style="bold")
    if r.alias:
        t.append(f" ({r.alias})")
    t.append(f"  {r.role or 'no role'} · {r.tenant_id}@{r.host}", style="dim")
    t.append("\n")
    t.append(f"{HEALTH_SYMBOL[r.health]} {r.health.value}", style=HEALTH_STYLE[r.health])
    t.append(f" — {r.health_reason}")
    state, source = shown_state(r)
    if state is not None:
        t.append("\nstate ", style="dim")
        attention = state in ATTENTION_STATES
        inferred = source is StateSource.INFERRED
        mark = INFERRED_MARK if inferred else ""
        t.append(
            ("★ " if attention else "")
            + mark
            + state.value
            + (HOOK_MARK if source is StateSource.HOOK else "")
            + (SESSION_MARK if source is StateSource.SESSION else ""),
            style=" ".join(w for w, on in (("bold yellow", attention), ("italic", inferred)) if on),
        )
        if r.heartbeat and r.heartbeat.detail:
            t.append(f" — {r.heartbeat.detail}")
        if r.inferred and (inferred or source is StateSource.SESSION):
            t.append(f" — {clean_text(r.inferred.reason, max_len=200)}", style="italic")
        if r.heartbeat is not None and not inferred and r.health in OLD_STATE_HEALTH:
            # the last reported state of a silent agent: say how old it is
            age = age_ago(r.heartbeat.age_s)
            t.append(f"  · as of {age}, may be out of date", style="bold yellow")
        t.append(f"  ({SOURCE_EXPLAINED.get(source or StateSource.HEARTBEAT, '')})", style="dim")
    if r.drift:
        t.append("\n\nDrift\n", style="bold")
        for d in r.drift:
            t.append(f"  ⚑ {d.value}", style="yellow")
            why = DRIFT_EXPLAINED.get(d, "see README, drift flags")
            t.append(f": {why.replace('NAME', r.name)}\n")
    return t


def facts_table(r: AgentRecord, snapshot: FleetSnapshot | None) -> Table:
    outer = Table.grid(padding=(0, 4))
    outer.add_column()
    outer.add_column()
    roster = _kv(
        [
            ("in roster", "yes" if r.in_roster else "no"),
            ("role", r.role),
            ("runtime", r.runtime),
            ("model", r.model),
            ("lifecycle", r.lifecycle.value if r.lifecycle else None),
            ("unit", r.systemd.unit if r.systemd else None),
            ("socket", r.socket),
        ]
    )
    tm = r.tmux
    tmux = _kv(
        [
            ("session", f"{r.session} {tm.session_id}" if tm else "no session"),
            (
                "pane",
                f"{tm.pane_id} pid {tm.pane_pid} · {tm.current_command or '?'}" if tm else None,
            ),
            ("title", tm.pane_title if tm else None),
            ("cwd", tm.cwd if tm else None),
            ("idle", human_duration(tm.idle_s) if tm else None),
            ("clients", str(tm.attached_clients) if tm else None),
            ("window size", tm.window_size if tm else None),
        ]
    )
    p = r.process
    sd = r.systemd
    systemd_state = (
        "no unit"
        if sd is None
        else (
            f"{sd.active_state or '?'}, {'enabled' if sd.enabled else 'not enabled' if sd.enabled is False else '?'}"
            f", linger {'yes' if sd.linger else 'no' if sd.linger is False else '?'}"
        )
    )
    if snapshot and snapshot.systemd and snapshot.systemd != "available":
        systemd_state += f" ({snapshot.systemd})"
    proc = _kv(
        [
            ("pid", str(p.pid) if p else None),
            ("runtime seen", p.runtime_detected if p else None),
            ("cpu", f"{p.cpu_percent:.1f} %" if p and p.cpu_percent is not None else None),
            ("memory", human_bytes(p.rss_bytes) if p else None),
            ("processes", str(p.processes) if p else None),
            ("systemd", systemd_state),
        ]
    )
    hb = r.heartbeat
    # Usage sits under the heartbeat (the Process column beside it is as tall): the detail
    # keeps its height, so the last output stays on a 120x30 screen.
    beat = _kv(
        [
            (
                "last",
                f"{age_ago(hb.age_s)} (seq {hb.seq}"
                + (f", every {human_duration(hb.interval_s)})" if hb.interval_s else ")")
                if hb
                else "none",
            ),
            ("pid", str(hb.pid) if hb and hb.pid else None),
            ("ping echo", hb.echo if hb else None),
            (
                "tokens today",
                f"{human_tokens(r.tokens_today)} ({r.tokens_today:,})"
                + (
                    f" without cache reads; cache reads {human_tokens(r.cache_read_today)} "
                    f"({r.cache_read_today:,})"
                    if r.cache_read_today is not None
                    else ""
                )
                if r.tokens_today is not None
                else None,
            ),
            ("budget", budget_text(r.budget)),
        ]
    )
    outer.add_row(Text("Roster", style="bold"), Text("tmux", style="bold"))
    outer.add_row(roster, tmux)
    outer.add_row(Text("Process", style="bold"), Text("Heartbeat and usage", style="bold"))
    outer.add_row(proc, beat)
    return outer


def chart_title(history: list[float], has_heartbeat: bool = True) -> Text:
    t = Text("Heartbeat age over the last polls", style="bold")
    if len(history) < 2:
        # an agent that never wrote a heartbeat has nothing to collect: say so
        t.append("  (collecting…)" if has_heartbeat else "  (no heartbeat)", style="dim")
    else:
        t.append(
            f"  {len(history)} polls · min {age_cell(min(history))} · "
            f"max {age_cell(max(history))} · now {age_cell(history[-1])}",
            style="dim",
        )
    return t


class Captured(Message):
    """A capture of agent `key`'s pane: its lines, or why there are none."""

    def __init__(self, key: str, lines: list[str] | None, error: str | None) -> None:
        super().__init__()
        self.key, self.lines, self.error = key, lines, error


def actions_line(surface: Surface) -> str:
    """The detail's line of keys: the terminal's, or what this browser session may do."""
    if not surface.on_web:
        return (
            "Actions: s stream (read-only) · w watch (read-only attach) · "
            "a attach (asks you to type the name) · m send a message · L audit log · "
            "u start · r restart · x stop (each asks you to type the name)"
        )
    if surface.scope == "control":
        return (
            "Actions: s stream (read-only) · m send a message · L audit log · u start · "
            "r restart · x stop (each asks you to type the name) · watch and attach are "
            "terminal actions"
        )
    return (
        "Actions: s stream (read-only) · L audit log · this web session is read-only (a view "
        "token): send, start, restart and stop need a control token; watch and attach are "
        "terminal actions"
    )


class AgentDetailScreen(PollScreen):
    """Pushed with `enter` on a row; follows the agent as snapshots arrive."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="detail.back"),
        *pane_action_bindings("detail"),
        *lifecycle_bindings("detail"),
    ]

    def __init__(self, key: str) -> None:
        super().__init__()  # no id: one being removed would clash with a new one
        self.key = key
        self._last_activity: object = None
        self._behind = False  # a snapshot arrived while another screen hid this one

    @property
    def dashboard(self) -> Dashboard:
        return dashboard_of(self)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-body"):
            yield Static("", id="summary")
            yield Static("", id="facts")
            yield Static(
                Text("Heartbeat age over the last polls (s)", style="bold"), id="chart-title"
            )
            yield Sparkline([], id="chart")
            yield Static(Text("Last output (read-only)", style="bold"), id="output-title")
            yield Static("", id="output")
            yield Static(Text(actions_line(self.dashboard.surface), style="dim"), id="actions")
        yield FleetFooter()

    # -- life cycle: snapshots and captures arrive at any point of it ---------------------
    # Pushed, the screen composes on a later turn of the loop; popped, it loses its widgets
    # while it is removed; under a stream it is hidden. Whatever arrives then is not shown
    # from here: `on_mount` and `on_screen_resume` read the app's latest snapshot instead.
    def on_mount(self) -> None:
        self.refresh_record()

    def on_screen_resume(self) -> None:
        if self._behind:
            self.refresh_record()

    def receive_snapshot(self) -> None:
        """The app published a poll (see `FleetApp._publish`)."""
        self.refresh_record()

    def show_agent(self, key: str) -> None:
        """Follow another agent from now on (its facts, history and output)."""
        if key == self.key:
            return
        self.key = key
        self._last_activity = object()  # never equal: capture the new agent's pane
        if not self.widgets_ready():
            return  # on_mount shows it
        self.query_one("#output", Static).update("")
        self.query_one("#detail-body", VerticalScroll).scroll_home(animate=False)
        self.refresh_record()

    def record(self) -> AgentRecord | None:
        snap = self.dashboard.snapshot
        if snap is None:
            return None
        return next((a for a in snap.agents if a.key == self.key), None)

    def refresh_record(self) -> None:
        """Show the app's latest snapshot of the agent: now if this screen is on view, else
        when it is shown again."""
        if not self.widgets_ready():
            return
        if not self.is_current:
            self._behind = True  # under a stream or a dialog: no capture of a hidden pane
            return
        self._behind = False
        r = self.record()
        summary = self.query_one("#summary", Static)
        if r is None:
            summary.update(Text("This agent is no longer in the fleet snapshot.", style="bold red"))
            return
        summary.update(summary_text(r))
        self.query_one("#facts", Static).update(facts_table(r, self.dashboard.snapshot))
        history = self.dashboard.heartbeat_history(self.key)
        chart = self.query_one("#chart", Sparkline)
        chart.data = history or [0.0]
        chart.display = len(history) >= 2  # one sample draws as a solid bar: say "collecting"
        self.query_one("#chart-title", Static).update(chart_title(history, r.heartbeat is not None))
        activity = (r.tmux.pane_id, r.tmux.activity_at) if r.tmux else None
        if activity is None:
            self._last_activity = None
            self.query_one("#output", Static).update(
                Text("(no tmux session: nothing to show)", style="dim")
            )
        elif activity != self._last_activity:
            self._last_activity = activity
            capture = partial(self.dashboard.source.capture, r)
            done = partial(Captured, r.key)
            in_thread(self, capture, done, name="capture", description="capture a pane")

    def on_captured(self, message: Captured) -> None:
        error = None if message.error is None else f"output not available: {message.error}"
        self.show_output(message.lines, error, message.key)

    def show_output(
        self, lines: list[str] | None, error: str | None = None, key: str | None = None
    ) -> None:
        if key is not None and key != self.key:
            return  # a late capture of the agent shown before
        if not self.widgets_ready():
            return  # closed (or not yet composed) while the capture ran
        out = self.query_one("#output", Static)
        if error:
            out.update(Text(clean_text(error, max_len=300), style="dim"))
            return
        text = Text()
        for line in lines or []:
            text.append(clean_text(line, max_len=500) + "\n")
        out.update(text if text.plain.strip() else Text("(no output)", style="dim"))
