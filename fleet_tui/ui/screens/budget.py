"""BudgetScreen (`b`): every account window's pace, the ladder rung and why, spend per agent
today. Data comes from the app's budget source in a thread worker (never on the event loop) and
is refreshed on an interval; a failing budgets file shows as a degraded message, not a crash."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from fleet_tui.core.sanitize import clean_text
from fleet_tui.present import budget_fmt as fmt
from fleet_tui.present.glyphs import to_ascii
from fleet_tui.service.budgets import BudgetReport
from fleet_tui.ui.context import Dashboard, dashboard_of, on_stack
from fleet_tui.ui.widgets.budget_panel import BudgetAccountPanel
from fleet_tui.ui.widgets.footer import FleetFooter
from fleet_tui.ui.workers import in_thread

REFRESH_S = 30.0


class BudgetLoaded(Message):
    """The budget source was read: its report, or why it could not be."""

    def __init__(self, report: BudgetReport | None, error: str | None) -> None:
        super().__init__()
        self.report = report
        self.error = error


def ascii_text(text: Text) -> Text:
    """`text` with present.glyphs' ASCII for every glyph (one character for one: the styles
    keep their places)."""
    out = text.copy()
    out.plain = to_ascii(text.plain)
    return out


def title_text(report: BudgetReport | None, error: str | None, now: datetime) -> Text:
    t = Text()
    t.append(" Budgets", style="bold")
    if report is None:
        t.append(" · loading…" if error is None else " · unavailable", style="dim")
        return t
    t.append(f" · {clean_text(report.tenant_id)}@{clean_text(report.host)}", style="dim")
    if report.error:
        t.append(" · ✖ budgets file invalid", style="bold red")
        return t
    if not report.budgets_found:
        t.append(" · no budgets file", style="bold")
        return t
    flags = [fmt.account_flags(a.windows) for a in report.accounts]
    ahead = sum("▲ AHEAD OF PACE" in f for f in flags)
    early = sum(fmt.RUNS_OUT_FLAG in f for f in flags)
    out = sum("✖ EXHAUSTED" in f for f in flags)
    n = len(report.accounts)
    t.append(f" · {n} account{'' if n == 1 else 's'}")
    if ahead:
        t.append(f" · ▲ {ahead} ahead of pace", style="bold yellow")
    if early:
        words = fmt.RUNS_OUT if early == 1 else fmt.RUNS_OUT.replace("runs", "run", 1)
        t.append(f" · ⚠ {early} {words}", style="bold red")
    if out:
        t.append(f" · ✖ {out} exhausted", style="bold red")
    age = (now - report.generated_at).total_seconds()
    t.append(f" · read {fmt.countdown(age) if age >= 60 else 'just now'}", style="dim")
    return t


def notice_text(report: BudgetReport | None, error: str | None) -> Text:
    """What replaces the accounts when there are none to show: why, where, how to start."""
    t = Text()
    if report is None:
        if error:
            t.append("Budgets could not be read.\n\n", style="bold red")
            t.append(clean_text(error, max_len=400))
        else:
            t.append("Reading budgets…", style="dim")
        return t
    if report.error:
        t.append("The budgets file is not valid; pacing is not shown.\n\n", style="bold red")
        t.append(clean_text(report.error, max_len=400) + "\n\n")
        t.append("Fix the file; this screen re-reads it every 30 s (r re-reads now).", style="dim")
        return t
    if not report.budgets_found:
        t.append("No budgets file.\n\n", style="bold")
        t.append("Looked for: ", style="dim")
        t.append(clean_text(report.budgets_path) + "\n\n")
        t.append("To start, write one like this (or point MOSAIC_FLEET_BUDGETS at one):\n\n")
        t.append(report.example, style="cyan")
        return t
    t.append("The budgets file lists no accounts.", style="bold")
    return t


def spend_table(report: BudgetReport) -> Table | Text:
    if not report.spend_today:
        return Text("Spend today (UTC): none recorded in spend.jsonl", style="dim")
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    table.add_column("spend today (UTC)")
    table.add_column("cost", justify="right")
    table.add_column("tokens", justify="right")
    for s in report.spend_today[:20]:
        table.add_row(Text(clean_text(s.agent, max_len=40)), fmt.usd(s.cost_usd), f"{s.tokens:,}")
    return table


class BudgetScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="budget.back"),
        Binding("r", "reload", "Re-read", id="budget.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()  # no id: one being removed would clash with a new one
        self.report: BudgetReport | None = None
        self.error: str | None = None
        self.loads = 0
        self._loading = False

    @property
    def dashboard(self) -> Dashboard:
        return dashboard_of(self)

    def compose(self) -> ComposeResult:
        yield Static(title_text(None, None, self.dashboard.clock()), id="budget-title")
        with VerticalScroll(id="budget-body"):
            yield Static("", id="budget-notice")
            yield Static("", id="budget-spend")
            yield Static("", id="budget-warnings")
        yield FleetFooter()

    def on_mount(self) -> None:
        self.action_reload()
        self.set_interval(REFRESH_S, self.action_reload, name="budget refresh")

    def action_reload(self) -> None:
        source = getattr(self.dashboard, "budget_source", None)
        if source is None:
            self.error = "budgets are not available in this view"
            self._show_report()
            return
        if self._loading or self.dashboard.polling_paused:
            return
        self._loading = True
        in_thread(
            self, source.load, BudgetLoaded, name="budget", description="read budgets and ledgers"
        )

    def on_budget_loaded(self, message: BudgetLoaded) -> None:
        self._loading = False
        if message.report is not None:
            self.report, self.error = message.report, None
        elif message.error is not None:
            self.error = message.error
        self.loads += 1
        self._show_report()

    def _show_report(self) -> None:
        if not on_stack(self):
            return  # left while the budgets were read
        now = self.dashboard.clock()
        report = self.report
        glyphs = ascii_text if self.dashboard.ascii_only else (lambda t: t)
        self.query_one("#budget-title", Static).update(glyphs(title_text(report, self.error, now)))
        body = self.query_one("#budget-body", VerticalScroll)
        notice = self.query_one("#budget-notice", Static)
        accounts = report.accounts if report is not None and not report.error else []
        notice.display = not accounts
        notice.update(notice_text(report, self.error))
        panels = list(body.query(BudgetAccountPanel))
        for panel, account in zip(panels, accounts, strict=False):
            panel.show(account, now)
        for panel in panels[len(accounts) :]:
            panel.remove()
        if len(accounts) > len(panels):
            body.mount_all(
                [BudgetAccountPanel(a, now) for a in accounts[len(panels) :]],
                before="#budget-spend",
            )
        spend = self.query_one("#budget-spend", Static)
        spend.display = report is not None
        if report is not None:
            spend.update(spend_table(report))
        warn = self.query_one("#budget-warnings", Static)
        warnings = report.warnings if report is not None else []
        warn.display = bool(warnings)
        text = Text()
        for w in warnings[:30]:
            text.append("⚠ ", style="yellow")
            text.append(clean_text(w, max_len=300) + "\n")
        warn.update(glyphs(text))
