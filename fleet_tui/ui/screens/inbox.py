"""InboxScreen (`i`): the open alert episodes of the dashboard's `terminal` channel, oldest
first: how long, which rule, which agent, its state and what it asks. From a row: `enter` opens
the agent's detail, `m` the composer for that agent (the operator's usual send, verified by its
ack), `z` silences the rule for that agent for a chosen time (SilenceScreen; written to the state
dir's silences.json, which `alerts run` reads too).

The rows are copies the app took from the poll (ui.alerting.OpenAlert); agent text (the name, the
question) was sanitized by the join, is cleaned again here, and only ever reaches a widget as a
rich Text cut to the width (never markup, never wrapped)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from fleet_tui.core.sanitize import clean_text
from fleet_tui.present.columns import ATTENTION_STATES, age_cell
from fleet_tui.ui.alerting import OpenAlert
from fleet_tui.ui.context import Dashboard, PollScreen, dashboard_of
from fleet_tui.ui.widgets.footer import FleetFooter

REFRESH_S = 5.0  # the ages move on between polls
AGE_W = 5
GAP = "  "


def local_time(when: datetime, now: datetime) -> str:
    """`when` on this machine's clock: "10:15" today, "tomorrow 09:00", else the date too."""
    here, today = when.astimezone(), now.astimezone().date()
    if here.date() == today:
        return here.strftime("%H:%M")
    if here.date() == today + timedelta(days=1):
        return here.strftime("tomorrow %H:%M")
    return here.strftime("%Y-%m-%d %H:%M")


def _cell(text: str, width: int, style: str = "") -> Text:
    t = Text(text, style=style, no_wrap=True)
    t.truncate(width, overflow="ellipsis", pad=True)
    return t


def _widths(alerts: tuple[OpenAlert, ...], width: int) -> tuple[int, int, int]:
    """Widths of the rule, agent and state columns: their longest value, capped so the
    question keeps at least a third of the line."""
    rule = min(max([4, *(len(a.rule) for a in alerts)]), 16)
    agent = min(max([5, *(len(clean_text(a.agent)) for a in alerts)]), 24)
    state = min(max([5, *(len(a.state or "-") for a in alerts)]), 14)
    room = width - (AGE_W + rule + agent + state + 4 * len(GAP))
    if room < width // 3:  # narrow: the agent column gives way first, then the rule's
        short = width // 3 - room
        cut = min(short, agent - 8) if agent > 8 else 0
        agent -= cut
        short -= cut
        if short > 0 and rule > 8:
            rule -= min(short, rule - 8)
    return rule, agent, state


def header_text(alerts: tuple[OpenAlert, ...], width: int) -> Text:
    rule_w, agent_w, state_w = _widths(alerts, width)
    t = Text(no_wrap=True, style="bold")
    t.append(_cell("AGE", AGE_W))
    for title, w in (("RULE", rule_w), ("AGENT", agent_w), ("STATE", state_w)):
        t.append(GAP)
        t.append(_cell(title, w))
    t.append(GAP + "ASKS / WHY")
    t.truncate(width, overflow="ellipsis")
    return t


def row_text(alert: OpenAlert, widths: tuple[int, int, int], width: int, now: datetime) -> Text:
    """One episode on one line of `width` cells: age, rule, agent, state, then what it asks
    (or why the rule holds), a silenced one dimmed."""
    rule_w, agent_w, state_w = widths
    asks = alert.detail
    state = alert.state or "-"
    t = Text(no_wrap=True, style="dim" if alert.silenced else "")
    t.append(_cell(age_cell((now - alert.since).total_seconds()), AGE_W))
    t.append(GAP)
    t.append(_cell(alert.rule, rule_w))
    t.append(GAP)
    t.append(_cell(clean_text(alert.agent), agent_w, "bold"))
    t.append(GAP)
    waiting = not alert.silenced and state in ATTENTION_STATES
    t.append(_cell(state, state_w, "bold" if waiting else ""))
    t.append(GAP)
    if alert.silenced_until is not None:
        t.append(f"silenced until {local_time(alert.silenced_until, now)} · ", style="italic")
    t.append(clean_text(asks, max_len=500) or "-")
    t.truncate(width, overflow="ellipsis")
    return t


def inbox_title(alerts: tuple[OpenAlert, ...]) -> Text:
    t = Text(" Inbox", style="bold", no_wrap=True)
    quiet = sum(1 for a in alerts if a.silenced)
    t.append(f" · {len(alerts)} open", style="bold")
    if quiet:
        t.append(f" · {quiet} silenced", style="dim")
    t.append(" · oldest first", style="dim")
    return t


class InboxList(OptionList):
    """The episodes, one option each; enter opens the agent's detail."""

    BINDINGS = [Binding("enter", "select", "Detail", id="inbox.detail")]


class InboxScreen(PollScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="inbox.back"),
        Binding("m", "message", "Answer…", id="inbox.message"),
        Binding("z", "silence", "Silence…", id="inbox.silence"),
    ]

    def __init__(self) -> None:
        super().__init__()  # no id: one being removed would clash with a new one
        self.alerts: tuple[OpenAlert, ...] = ()
        self._drawn = False

    @property
    def dashboard(self) -> Dashboard:
        return dashboard_of(self)

    @property
    def selected(self) -> OpenAlert | None:
        if not self.widgets_ready():
            return None
        index = self.query_one(InboxList).highlighted
        if index is None or not 0 <= index < len(self.alerts):
            return None
        return self.alerts[index]

    @property
    def key(self) -> str | None:
        """The selected episode's agent: what the app's `m` acts on (ui.operator)."""
        chosen = self.selected
        return chosen.key if chosen is not None else None

    def compose(self) -> ComposeResult:
        yield Static(inbox_title(()), id="inbox-title")
        yield Static("", id="inbox-header")
        yield InboxList(id="inbox-list", compact=True)
        yield Static("", id="inbox-empty")
        yield FleetFooter()

    def on_mount(self) -> None:
        self.query_one(InboxList).focus()
        self.receive_snapshot()
        self.set_interval(REFRESH_S, self._tick, name="inbox ages")

    def _tick(self) -> None:
        if not self.dashboard.polling_paused:
            self._show()

    def receive_snapshot(self) -> None:
        """A poll landed: redraw when the open episodes (or what they ask) changed; the ages
        move on by the interval."""
        alerts = self.dashboard.open_alerts
        if alerts == self.alerts and self._drawn:
            return
        self.alerts = alerts
        self._show()

    def on_resize(self, event: Resize) -> None:
        self._show()

    def _show(self) -> None:
        if not self.widgets_ready():
            return
        self._drawn = True
        app = self.dashboard
        alerts = self.alerts
        listing = self.query_one(InboxList)
        was = listing.highlighted  # the episode under the cursor, by its option id
        before = None
        if was is not None and 0 <= was < listing.option_count:
            before = listing.get_option_at_index(was).id
        self.query_one("#inbox-title", Static).update(inbox_title(alerts))
        empty = self.query_one("#inbox-empty", Static)
        header = self.query_one("#inbox-header", Static)
        empty.display = not alerts
        header.display = listing.display = bool(alerts)
        if not alerts:
            t = Text()
            t.append("Nothing needs you.\n\n", style="bold")
            line = app.alerts.rules_line if app.alerts is not None else None
            t.append(line or "Alerts are not evaluated in this view.", style="dim")
            empty.update(t)
            listing.clear_options()
            return
        width = max(listing.scrollable_content_region.width, 20)
        widths = _widths(alerts, width)
        now = app.clock()
        header.update(header_text(alerts, width))
        options = [Option(row_text(a, widths, width, now), id=f"{a.rule}\0{a.key}") for a in alerts]
        listing.clear_options()
        listing.add_options(options)
        # the cursor stays on its episode; where it went away, on the row that took its place
        index = min(was or 0, len(options) - 1)
        listing.highlighted = next((i for i, o in enumerate(options) if o.id == before), index)

    # -- actions ---------------------------------------------------------------------------
    def _chosen(self, verb: str) -> OpenAlert | None:
        chosen = self.selected
        if chosen is None:
            self.notify(f"{verb}: nothing is selected (the inbox is empty)", severity="warning")
        return chosen

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        chosen = self._chosen("detail")
        if chosen is not None:
            self.dashboard.open_detail(chosen.key)

    def action_message(self) -> None:
        if self._chosen("send") is not None:
            self.dashboard.action_message()  # acts on `self.key` (ui.operator.current_record)

    def action_silence(self) -> None:
        chosen = self._chosen("silence")
        if chosen is None:
            return
        app = self.dashboard
        why = app.surface.refusal("silence")  # a read-only browser session silences nothing
        if why is not None:
            self.app.notify(f"silence: {why}", severity="warning", markup=False)
            return

        def picked(until: datetime | None) -> None:
            if until is not None:
                app.silence_alert(chosen, until)

        self.app.push_screen(SilenceScreen(chosen, app.clock()), picked)


# (label, how long from now; None: until tomorrow 09:00 on this machine's clock)
SILENCE_CHOICES: tuple[tuple[str, timedelta | None], ...] = (
    ("15 min", timedelta(minutes=15)),
    ("1 h", timedelta(hours=1)),
    ("4 h", timedelta(hours=4)),
    ("Until 09:00 tomorrow", None),
)


def silence_end(choice: timedelta | None, now: datetime) -> datetime:
    """When a silence chosen now ends: `now` + the choice, or tomorrow 09:00 local time."""
    if choice is not None:
        return now + choice
    tomorrow = now.astimezone().date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(9, 0)).astimezone()


class SilenceScreen(ModalScreen[datetime | None]):
    """`z` in the inbox: silence the episode's rule for its agent; how long."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="silence.cancel"),
        *[
            Binding(str(i), f"choose({i - 1})", label, show=False, id=f"silence.for{i}")
            for i, (label, _) in enumerate(SILENCE_CHOICES, 1)
        ],
    ]

    def __init__(self, alert: OpenAlert, now: datetime) -> None:
        super().__init__()
        self.alert = alert
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(id="silence-dialog"):
            t = Text()
            t.append("Silence ", style="bold")
            t.append(self.alert.rule, style="bold")
            t.append(" for ", style="bold")
            t.append(clean_text(self.alert.agent, max_len=64), style="bold")
            yield Static(t)
            yield OptionList(
                *[
                    Option(Text(f"{i}  {label}", no_wrap=True), id=str(i - 1))
                    for i, (label, _) in enumerate(SILENCE_CHOICES, 1)
                ],
                id="silence-choices",
                compact=True,
            )
            yield Static(
                Text(
                    "enter or 1-4 chooses · esc cancels · 09:00 is this machine's time · "
                    "kept in the state dir's alerts/silences.json (alerts run reads it too)",
                    style="dim",
                )
            )

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_choose(event.option_index)

    def action_choose(self, index: int) -> None:
        if 0 <= index < len(SILENCE_CHOICES):
            self.dismiss(silence_end(SILENCE_CHOICES[index][1], self.now))

    def action_cancel(self) -> None:
        self.dismiss(None)
