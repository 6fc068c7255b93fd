"""FleetScreen: the header, the fleet table, the filter line, and the empty-state explanation.

With no sort chosen the rows come most urgent first (present.columns.urgency_order); a chosen sort
(a key, or a click on a column's title) is remembered across restarts (ui.viewfile). `]`/`[` jump
to the next/previous agent waiting for the operator, `}`/`{` to the next/previous unhealthy one,
in the rows shown (nothing is filtered), wrapping around. A filter mistake is named in the filter
box's border; the table keeps the last filter that made sense. The terminal's title says how many
agents wait (ui.title)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import Input, Static

from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import AgentRecord, FleetSnapshot
from fleet_tui.present.columns import is_unhealthy, needs_attention
from fleet_tui.present.view import FleetView
from fleet_tui.ui.context import (
    Dashboard,
    PollScreen,
    dashboard_of,
    lifecycle_bindings,
    pane_action_bindings,
)
from fleet_tui.ui.title import TerminalTitle, title_text
from fleet_tui.ui.typeahead import focus_now
from fleet_tui.ui.viewfile import SavedSort, SortLoaded, SortSaved, load_sort, save_sort
from fleet_tui.ui.widgets import FleetHeader, FleetTable
from fleet_tui.ui.widgets.footer import FleetFooter
from fleet_tui.ui.workers import in_thread

# Watch and attach stay on their keys (and in ? and the palette) but out of the footer, so the
# footer keeps `?` Help and `q` Quit visible at 80 columns.
_NOT_IN_FOOTER = ("app.watch", "app.attach")
JUMPS: dict[str, tuple[Callable[[AgentRecord], bool], str]] = {
    "waiting": (needs_attention, "No agent is waiting for you"),
    "unhealthy": (
        is_unhealthy,
        "No agent is unhealthy (unresponsive, stale, or down but always on)",
    ),
}

# Below this width the footer's "i Inbox" would push "? Help" out (the toasts name `i` then).
FOOTER_INBOX_MIN_W = 90

SORT_BINDINGS = [
    ("N", "agent", "name"),
    ("H", "health", "health"),
    ("B", "hb", "heartbeat age"),
    ("I", "idle", "idle"),
    ("C", "cpu", "CPU"),
    ("M", "mem", "memory"),
    ("R", "role", "role"),
    ("T", "state", "state"),
    ("K", "tokens", "tokens today"),
    ("P", "budget", "budget"),
]


def empty_text(snapshot: FleetSnapshot | None, error: str | None, view: FleetView) -> Text:
    """What to say instead of a blank table: what was looked for, where, and what to run."""
    t = Text()
    if snapshot is None:
        if error:
            t.append("The fleet could not be read.\n\n", style="bold red")
            t.append(clean_text(error, max_len=400) + "\n\n")
            if "tmux is not installed" in error:
                t.append("Install tmux (e.g. apt-get install tmux), then start fleet-tui again.\n")
        else:
            t.append("Collecting the fleet…", style="dim")
        return t
    if (
        snapshot.agents
        and any(view.matches(a) for a in snapshot.agents) is False
        and (view.filter or view.only_waiting)
    ):
        t.append("No agent matches the filter.\n\n", style="bold")
        t.append("esc clears it.\n")
        return t
    t.append("No agents found.\n\n", style="bold")
    t.append("Roster: ", style="dim")
    t.append(
        clean_text(snapshot.roster_path or "none found")
        + ("" if snapshot.roster_loaded else " (not found)")
        + "\n"
    )
    t.append("tmux sockets: ", style="dim")
    if snapshot.sockets:
        t.append(
            ", ".join(
                f"{clean_text(s.name)} {s.state.value} ({s.sessions})" for s in snapshot.sockets
            )
            + "\n"
        )
    else:
        t.append("none (no tmux server runs for this user)\n")
    hidden = sum(1 for a in snapshot.agents if not a.is_agent)
    if hidden and not view.show_all:
        t.append(
            f"\n{hidden} session(s) that do not look like agents are hidden: press A to show them.\n"
        )
    t.append("\nTo see a demo fleet: ", style="dim")
    t.append("fleet-tui demo", style="bold")
    t.append("\nTo add agents: write a roster (see README) or mark a session: ", style="dim")
    t.append("tmux set-option -t =NAME: @mosaic_agent 1", style="bold")
    return t


class FleetScreen(PollScreen):
    """The main screen. The app hands it snapshots; it keeps its own view (filter, sort)."""

    BINDINGS = [
        *[
            replace(b, show=False) if b.action in _NOT_IN_FOOTER else b
            for b in pane_action_bindings("fleet")
        ],
        *lifecycle_bindings("fleet"),
        Binding("slash", "filter", "Filter", id="fleet.filter"),
        Binding("asterisk", "waiting", "★ Waiting", id="fleet.waiting"),
        # the app's `i` (same id, so a keymap moves both), in the footer only while the inbox
        # has something in it and the footer has room for it (check_action)
        Binding("i", "inbox", "Inbox", id="app.inbox"),
        Binding(
            "right_square_bracket",
            "jump('waiting', 1)",
            "Next waiting",
            show=False,
            id="fleet.next_waiting",
        ),
        Binding(
            "left_square_bracket",
            "jump('waiting', -1)",
            "Previous waiting",
            show=False,
            id="fleet.previous_waiting",
        ),
        Binding(
            "right_curly_bracket",
            "jump('unhealthy', 1)",
            "Next unhealthy",
            show=False,
            id="fleet.next_unhealthy",
        ),
        Binding(
            "left_curly_bracket",
            "jump('unhealthy', -1)",
            "Previous unhealthy",
            show=False,
            id="fleet.previous_unhealthy",
        ),
        Binding("A", "toggle_all", "All sessions", show=False, id="fleet.all"),
        Binding("escape", "clear", "Clear", show=False, id="fleet.clear"),
        *[
            Binding(key, f"sort('{col}')", f"Sort by {label}", show=False, id=f"fleet.sort_{col}")
            for key, col, label in SORT_BINDINGS
        ],
    ]

    def __init__(self) -> None:
        super().__init__(id="fleet")
        self.view = FleetView()
        self.snapshot: FleetSnapshot | None = None
        self.error: str | None = None
        self.polled_at: datetime | None = None
        self._sort_chosen = False  # the operator sorted before the remembered sort was read
        self.terminal_title = TerminalTitle()
        self.typed_ahead: list[events.Key] | None = None  # (ui.typeahead: its box opens on `/`)

    @property
    def dashboard(self) -> Dashboard:
        return dashboard_of(self)

    def compose(self) -> ComposeResult:
        yield FleetHeader(self.dashboard.clock, id="header")
        yield FleetTable(id="table")
        yield Static("", id="empty")
        yield Input(
            placeholder="filter: words, tenant:T host:H role:R health:H … (! inverts, esc clears)",
            id="filter",
        )
        yield FleetFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#empty", Static).display = False
        self.set_interval(1.0, self._tick_header, name="header clock")
        self.query_one(FleetTable).focus()
        app = self.dashboard
        self.query_one(FleetTable).ascii_only = app.ascii_only
        if app.snapshot is not None or app.poll_error is not None:
            self.receive_snapshot()  # a poll that landed before the widgets existed
        if app.view_file is not None:
            path = app.view_file
            in_thread(
                self,
                lambda: load_sort(path),
                SortLoaded,
                name="view file",
                description="read the remembered sort",
            )

    def on_unmount(self) -> None:
        self.terminal_title.restore(self.app)

    def on_sort_loaded(self, message: SortLoaded) -> None:
        sort = message.sort
        if sort is None or sort.key is None or self._sort_chosen or not self.widgets_ready():
            return
        self.view = replace(self.view, sort_key=sort.key, sort_reverse=sort.reverse)
        self.refresh_view()

    def on_sort_saved(self, message: SortSaved) -> None:
        if message.error:
            self.notify(f"the sort could not be remembered: {message.error}", severity="warning")

    def _remember_sort(self) -> None:
        self._sort_chosen = True
        path = self.dashboard.view_file
        if path is None:
            return
        sort = SavedSort(self.view.sort_key, self.view.sort_reverse)
        in_thread(
            self,
            lambda: save_sort(path, sort),
            SortSaved,
            name="view file",
            description="remember the sort",
        )

    def _tick_header(self) -> None:
        if self.dashboard.polling_paused or not self.widgets_ready():
            return
        self.query_one(FleetHeader).tick()

    # -- data ------------------------------------------------------------------------------
    def receive_snapshot(self) -> None:
        """The app published a poll: take its latest snapshot (see `FleetApp._publish`)."""
        app = self.dashboard
        self.show_snapshot(app.snapshot, app.poll_error, app.polled_at)

    def show_snapshot(
        self, snapshot: FleetSnapshot | None, error: str | None, polled_at: datetime | None
    ) -> None:
        """Keep the snapshot; show it now if the widgets exist, else when they are mounted."""
        self.snapshot, self.error, self.polled_at = snapshot, error, polled_at
        if self.widgets_ready():
            self.refresh_view()

    def shown_records(self) -> tuple[list[AgentRecord], list[AgentRecord]]:
        """The records the view shows, in its order, and every record it could show whatever
        the filter (what the columns fit); shared, never changed."""
        if self.snapshot is None:
            return [], []
        return self.dashboard.digest.shown(self.snapshot, self.view)

    def visible_records(self) -> list[AgentRecord]:
        """The records the view shows, in its order."""
        return self.shown_records()[0]

    def fleet_records(self) -> list[AgentRecord]:
        """Every record the view could show, whatever the filter."""
        return self.shown_records()[1]

    def refresh_view(self) -> None:
        records, fleet = self.shown_records()
        table = self.query_one(FleetTable)
        table.sort_key, table.sort_reverse = self.view.sort_key, self.view.sort_reverse
        table.set_records(records, fleet, self.dashboard.row_books.find(fleet, records))
        header = self.query_one(FleetHeader)
        header.snapshot = self.snapshot
        if self.snapshot is not None:
            # counted in the poll thread, as a rule
            header.counted(self.snapshot, self.dashboard.digest.counts(self.snapshot))
            title = title_text(
                self.snapshot.agents, ascii_only=self.dashboard.ascii_only, counts=header.counts()
            )
            self.terminal_title.set(self.app, title)
        empty = self.query_one("#empty", Static)
        if records:
            empty.display = False
            table.display = True
        else:
            empty.update(empty_text(self.snapshot, self.error, self.view))
            empty.display = True
            table.display = False
        header.show(
            self.snapshot,
            shown=len(records),
            view=self.view.describe(),
            error=self.error,
            polled_at=self.polled_at,
        )

    def selected_record(self) -> AgentRecord | None:
        key = self.query_one(FleetTable).cursor_key
        if self.snapshot is None or key is None:
            return None
        return next((a for a in self.snapshot.agents if a.key == key), None)

    def go_to_agent(self, key: str) -> None:
        """Put the cursor on an agent, clearing a filter that hides it."""
        if self.snapshot is None or not self.widgets_ready():
            return  # (a palette command can run as the app exits)
        record = next((a for a in self.snapshot.agents if a.key == key), None)
        if record is None:
            return
        if not self.view.matches(record):
            self.view = replace(
                self.view,
                filter="",
                only_waiting=False,
                show_all=self.view.show_all or not record.is_agent,
            )
            self.query_one("#filter", Input).value = ""
            self.refresh_view()
        table = self.query_one(FleetTable)
        table.move_cursor_to(key)
        table.focus()

    def type_ahead_box(self) -> Input | None:
        """The filter box while it has the focus: the keys typed right behind `/` go there."""
        box = self.query_one("#filter", Input)
        return box if box.display else None

    # -- actions ---------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.view.filter
        # at once: `r e v` typed right behind `/` are queued already (ui.typeahead)
        focus_now(box)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            candidate = replace(self.view, filter=event.value)
            problem = candidate.problem
            event.input.set_class(problem is not None, "-invalid")
            event.input.border_subtitle = (
                Text(clean_text(problem, max_len=200), style="bold") if problem else None
            )
            if problem is None:  # a mistake keeps the last filter that made sense
                self.view = candidate
                self.refresh_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value.strip())
            self.query_one(FleetTable).focus()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus or self.view.filter or self.view.only_waiting or box.value:
            box.value = ""
            box.display = False
            self.view = replace(self.view, filter="", only_waiting=False)
            self.refresh_view()
            self.query_one(FleetTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "inbox":  # False: hidden here, and `i` goes to the app's binding
            return bool(self.dashboard.open_alerts) and self.size.width >= FOOTER_INBOX_MIN_W
        return True

    def on_resize(self, event: Resize) -> None:
        self.refresh_bindings()

    def action_inbox(self) -> None:
        self.dashboard.action_inbox()

    def action_waiting(self) -> None:
        self.view = replace(self.view, only_waiting=not self.view.only_waiting)
        self.refresh_view()

    def action_toggle_all(self) -> None:
        self.view = replace(self.view, show_all=not self.view.show_all)
        self.refresh_view()

    def action_sort(self, column: str) -> None:
        if self.view.sort_key == column:
            self.view = replace(self.view, sort_reverse=not self.view.sort_reverse)
        else:
            self.view = replace(self.view, sort_key=column, sort_reverse=False)
        self.refresh_view()
        self._remember_sort()

    def on_fleet_table_header_clicked(self, event: FleetTable.HeaderClicked) -> None:
        self.action_sort(event.column)

    def action_jump(self, kind: str, step: int) -> None:
        """Put the cursor on the next (`step` 1) or previous (-1) shown agent of `kind`
        ("waiting", "unhealthy"), wrapping around; say so when there is none."""
        wanted, none_text = JUMPS[kind]
        records = self.visible_records()
        hits = [i for i, r in enumerate(records) if wanted(r)]
        if not hits:
            hidden = sum(1 for r in self.fleet_records() if wanted(r))
            more = f" in view ({hidden} hidden by the filter)" if hidden else ""
            self.notify(none_text + more, timeout=3)
            return
        table = self.query_one(FleetTable)
        here = table.cursor_row
        here = -1 if here is None and step > 0 else (len(records) if here is None else here)
        after = [i for i in hits if (i - here) * step > 0]
        if after:
            i = min(after, key=lambda i: (i - here) * step)
        else:  # wrap around
            i = hits[0] if step > 0 else hits[-1]
        table.move_cursor_to(records[i].key)
        table.focus()

    def on_fleet_table_selected(self, event: FleetTable.Selected) -> None:
        self.dashboard.open_detail(event.key)
