"""BudgetAccountPanel: one account of the budget screen, drawn to the widget's width.

Per window: a gauge of used against the ideal-pace marker, the reset countdown with its
confidence, allowed vs recent rate (%/h for windows shorter than a day), a text chart of use over the window against the
even-spread line; then the ladder rung and why. Status is never colour alone (symbols, words).
Strings that come from the ledgers (window names, reasons) go through the sanitizer.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Group
from rich.text import Text
from textual import events
from textual.widget import Widget

from fleet_tui.core.pacing import WindowPace
from fleet_tui.core.sanitize import clean_text
from fleet_tui.present import budget_fmt as fmt
from fleet_tui.service.budgets import AccountReport

STATUS_STYLE = {
    "on_pace": "green",
    "ahead": "bold yellow",
    "behind": "cyan",
    "exhausted": "bold red",
    "unknown": "magenta",
}
ACTION_STYLE = {
    "normal": "green",
    "throttle": "bold yellow",
    "downgrade": "bold yellow",
    "queue": "bold red",
    "refuse": "bold red reverse",
}
CHART_STYLE = {
    "used": "green",
    "over": "yellow",
    "ideal": "bright_black",
    "future": "bright_black",
    "empty": "",
}
LABEL = 8
CHART_ROWS = 4


def _gauge(w: WindowPace, width: int) -> Text:
    bar, col, filled = fmt.gauge(w.used_percent, w.ideal_used_percent, width)
    t = Text()
    fill_style = STATUS_STYLE.get(w.status, "")
    for i, ch in enumerate(bar):
        if i == col:
            t.append(ch, style="bold reverse" if i < filled else "bold")
        elif i < filled:
            t.append(ch, style=fill_style)
        else:
            t.append(ch, style="bright_black")
    return t


def _flow(
    t: Text, parts: list[tuple[str, str]], width: int, indent: int, col: int | None = None
) -> None:
    """Append `parts` (text, style) joined by ' · ' from column `col` (default `indent`),
    starting a new line indented by `indent` where the next part would not fit in `width`."""
    col = indent if col is None else col
    for i, (text, style) in enumerate(parts):
        sep = " · " if i else ""
        if i and col + len(sep) + len(text) > width:
            t.append("\n" + " " * indent)
            col, sep = indent, ""
        t.append(sep)
        col += len(sep)
        if col + len(text) > width:  # longer than a line: by words
            col = _wrap_words(t, text, style, width, indent, col)
        else:
            t.append(text, style=style)
            col += len(text)


def _wrap_words(t: Text, text: str, style: str, width: int, indent: int, col: int) -> int:
    """Append `text` word by word from column `col`, continuing on lines indented by `indent`;
    returns the column after it."""
    for i, word in enumerate(text.split(" ")):
        sep = " " if i else ""
        if col + len(sep) + len(word) > width and col > indent:
            t.append("\n" + " " * indent)
            col, sep = indent, ""
        t.append(sep + word, style=style)
        col += len(sep) + len(word)
    return col


def window_text(w: WindowPace, curve: list[float | None] | None, width: int, now: datetime) -> Text:
    """The lines of one window (gauge, countdown, rates, chart) at `width` cells."""
    t = Text()
    name = clean_text(w.name, max_len=LABEL - 1)
    t.append(f"{name:<{LABEL}}", style="bold")
    tail = f" {fmt.pct(w.used_percent):>7} used · ideal {fmt.pct(w.ideal_used_percent)}"
    status = fmt.STATUS_MARK.get(w.status, w.status)
    pace = f" ×{w.pace:.2f}" if w.pace is not None else ""
    gw = max(10, min(40, width - LABEL - len(tail) - len(status) - len(pace) - 3))
    t.append_text(_gauge(w, gw))
    if LABEL + gw + len(tail) + 2 + len(status) + len(pace) <= width:
        t.append(tail)
        t.append("  ")
        t.append(status + pace, style=STATUS_STYLE.get(w.status, ""))
    else:  # narrow: the figures continue on lines of their own, under the gauge
        t.append(f" {fmt.pct(w.used_percent)}")
        t.append("\n" + " " * LABEL)
        _flow(
            t,
            [
                (f"ideal {fmt.pct(w.ideal_used_percent)}", ""),
                (status + pace, STATUS_STYLE.get(w.status, "")),
            ],
            width,
            LABEL,
        )
    t.append("\n" + " " * LABEL)
    left = (w.resets_at - now).total_seconds() if w.resets_at else None
    head = [
        (f"resets in {fmt.countdown(left)}", "bold"),
        (f"{fmt.stamp(w.resets_at)} ({w.reset_confidence})", "dim"),
    ]
    age = fmt.sampled(w.observed_at, now)
    if age:
        head.append((age, "yellow"))
    _flow(t, head, width, LABEL)
    t.append("\n" + " " * LABEL)
    fast = (
        w.recent_rate_per_day is not None
        and w.allowed_per_day is not None
        and w.recent_rate_per_day > w.allowed_per_day * 1.1
    )
    allowed = fmt.allowed(w.allowed_per_day, w.used_percent, left, w.window_minutes)
    parts = [
        (f"allowed {allowed}", ""),
        (
            f"recent {fmt.rate(w.recent_rate_per_day, w.window_minutes)}",
            "bold yellow" if fast else "",
        ),
    ]
    if w.projected_at_reset is not None:
        parts.append((f"projected {w.projected_at_reset:.0f} % at reset", ""))
    _flow(t, parts, width, LABEL)
    warning = fmt.runs_out(w, now)  # the same words as `fleet-tui budget`
    if warning:
        t.append("\n" + " " * LABEL)
        _wrap_words(t, warning, "bold red", width, LABEL + 2, LABEL)
    for note in w.notes:
        t.append("\n" + " " * LABEL)
        _wrap_words(t, "⚠ " + clean_text(note, max_len=200), "yellow", width, LABEL + 2, LABEL)
    if curve:
        cols = max(10, width - LABEL - 1)
        grid = fmt.chart_rows(fmt.resample(curve, cols), CHART_ROWS)
        labels = {0: "100 %", CHART_ROWS - 1: "  0 %"}
        for r, row in enumerate(grid):
            t.append("\n")
            t.append(f"{labels.get(r, ''):>{LABEL - 1}} ", style="dim")
            for ch, kind in row:
                t.append(ch, style=CHART_STYLE[kind])
        t.append("\n" + " " * LABEL)
        axis = f"{fmt.stamp(w.window_start)} → reset · ··· even spread"
        t.append(axis[:cols], style="dim")
    return t


def account_text(a: AccountReport, width: int, now: datetime) -> Text:
    t = Text()
    parts = [(clean_text(a.account), "bold")]
    for flag in fmt.account_flags(a.windows):  # the same words as `fleet-tui budget`
        parts.append((flag, "bold yellow" if flag.startswith("▲") else "bold red"))
    pacing = f"pacing {a.pacing}"
    if a.rapid_authorized_until is not None:
        pacing += f" until {fmt.stamp(a.rapid_authorized_until)}"
    parts += [(f"{a.provider} {a.regime}", "dim"), (pacing, "dim")]
    if a.regime == "api":
        parts.append(
            (f"spent {fmt.usd(a.spent_usd)} of {fmt.usd(a.ceiling_usd)} this {a.period}", "")
        )
    _flow(t, parts, width, LABEL, 0)
    for w in a.windows:
        t.append("\n")
        t.append_text(window_text(w, a.curves.get(w.name), width, now))
    t.append("\n")
    t.append("rung ", style="dim")
    t.append(clean_text(a.rung or "-"), style="bold")
    t.append(" · ")
    t.append(
        fmt.ACTION_MARK.get(a.rung_action, a.rung_action), style=ACTION_STYLE.get(a.rung_action, "")
    )
    action = fmt.ACTION_MARK.get(a.rung_action, a.rung_action)
    t.append(" — ")
    col = len("rung ") + len(clean_text(a.rung or "-")) + len(" · ") + len(action) + len(" — ")
    _wrap_words(t, clean_text(a.rung_reason, max_len=400), "", width, 5, col)
    return t


class BudgetAccountPanel(Widget):
    """One account; re-rendered at its own width (the chart fills the line)."""

    DEFAULT_CSS = "BudgetAccountPanel { height: auto; }"

    def __init__(self, account: AccountReport, now: datetime, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.account = account
        self.now = now
        self.set_classes(self._status_classes())

    def _status_classes(self) -> str:
        statuses = {w.status for w in self.account.windows}
        if "exhausted" in statuses:
            return "budget-account -exhausted"
        if "ahead" in statuses:
            return "budget-account -ahead"
        return "budget-account"

    def show(self, account: AccountReport, now: datetime) -> None:
        self.account, self.now = account, now
        self.set_classes(self._status_classes())
        self.refresh(layout=True)

    def on_resize(self, event: events.Resize) -> None:
        self.refresh(layout=True)

    def render(self) -> Group:
        # A Rich Group (not a Text) keeps the leading spaces that align the lines.
        width = max(self.content_region.width or self.size.width, 40)
        return Group(*account_text(self.account, width, self.now).split("\n"))
