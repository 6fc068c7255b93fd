"""FleetApp: the dashboard, top to bottom: settings and themes, the first screen, polling,
navigation and the operator's keys. `ui.launch.run_dashboard` starts it on the live sources.

When to poll is service.scheduler.PollScheduler's (never two polls at once; the next full poll is
armed when the last one ends; none while another program holds the terminal). A poll runs in a
thread worker and lands here as a `Polled` message; a watchfiles worker on the heartbeat spool
asks for a heartbeat-only poll within a second of a new heartbeat. The pane actions are
ui.operator's, the stack's safety ui.stack's, the themes and the key help their own modules'.

Alerts (the built-in `terminal` channel, ui.alerting): the rules are evaluated in the poll
thread right after each poll, and the `Polled` message brings what fired and the open episodes.
Here, on the event loop, only what the operator notices: one bell per poll that fires anything
(setting `alerts_bell`), a toast per agent, and the inbox (`i`, ui.screens.inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.command import CommandPalette
from textual.message import Message
from textual.timer import Timer

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.config.surface import Surface
from fleet_tui.control.actions import OperatorActions
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.alerts import Silence
from fleet_tui.model.records import FleetSnapshot
from fleet_tui.present.glyphs import choose_ascii
from fleet_tui.present.view import PollDigest
from fleet_tui.protocol.clock import utcnow
from fleet_tui.service.budgets import BudgetSource
from fleet_tui.service.poll import SnapshotSource
from fleet_tui.service.scheduler import PollScheduler
from fleet_tui.ui.alerting import AlertUpdate, Fired, OpenAlert, TerminalAlerts
from fleet_tui.ui.context import Dashboard, PollScreen
from fleet_tui.ui.crash import CrashGuard
from fleet_tui.ui.keyhelp import binding_rows, documented_groups
from fleet_tui.ui.lifecycle import GRACE_S, Declined, Lifecycle, LifecycleDone
from fleet_tui.ui.operator import Operator
from fleet_tui.ui.palette import FleetCommandPalette, FleetCommands
from fleet_tui.ui.screens import AgentDetailScreen, FleetScreen, HelpScreen, WarningsScreen
from fleet_tui.ui.screens.budget import BudgetScreen
from fleet_tui.ui.screens.inbox import InboxScreen, local_time
from fleet_tui.ui.stack import StackedApp
from fleet_tui.ui.themes import TerminalColours, is_dumb, register_themes, use_theme
from fleet_tui.ui.typeahead import catch_typed_ahead
from fleet_tui.ui.widgets.fleet_table import RowBooks
from fleet_tui.ui.workers import Polled, in_thread, poll_and_alert, watch_folder

# 50 agents beating every 10 s are 5 changes a second: one refresh per second shows each within
# about a second and keeps the dashboard idle.
HEARTBEAT_REFRESH_S = 1.0
TOASTS_AT_ONCE = 3  # more agents firing on one poll: one toast that counts them
ALERT_TOAST_S = 10.0
END_GRACE_S = 5.0  # after SIGTERM/SIGHUP, how long a clean quit may take before the process ends
# `on_started` runs at the latest this long after the app mounted, whatever the first poll does
STARTED_LATEST_S = 30.0


class Silenced(Message):
    """A silence made in the inbox was written (`silence`), or why not (`error`)."""

    def __init__(self, alert: OpenAlert, silence: Silence | None, error: str | None) -> None:
        super().__init__()
        self.alert = alert
        self.silence = silence
        self.error = error


def styles_dir() -> Path:
    """`styles/` ships inside the wheel as fleet_tui/styles; in a checkout it is top-level."""
    package = Path(__file__).resolve().parent.parent
    inside = package / "styles"
    return inside if inside.is_dir() else package.parent / "styles"


class FleetApp(CrashGuard, TerminalColours, StackedApp):
    CSS_PATH = str(styles_dir() / "app.tcss")
    TITLE = "fleet-tui"
    COMMANDS = App.COMMANDS | {FleetCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("W", "warnings", "Warnings", show=False, id="app.warnings"),
        Binding("L", "audit", "Audit log", show=False, id="app.audit"),
        Binding("b", "budgets", "Budgets", id="app.budgets"),
        # the fleet screen shows "i Inbox" in its footer while something is open (FleetScreen)
        Binding("i", "inbox", "Inbox", show=False, id="app.inbox"),
        Binding("y", "copy", "Copy…", show=False, id="app.copy"),
        # Textual's footer shows its own "^p Palette" on the right: ours is for help and keymap.
        Binding("ctrl+p", "command_palette", "Palette", id="app.palette", show=False),
    ]

    def __init__(
        self,
        source: SnapshotSource,
        *,
        settings: DashboardSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        poll: bool = True,
        watch: bool = True,
        startup_notice: str | None = None,
        actions: OperatorActions | None = None,
        budget_source: BudgetSource | None = None,
        view_file: Path | None = None,
        alerts: TerminalAlerts | None = None,
        lifecycle_config: FleetConfig | None = None,
        surface: Surface | None = None,
        on_started: Callable[[], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        # run once, after the first poll's result (a snapshot or an error) has been drawn, or
        # STARTED_LATEST_S after the mount if no poll has landed by then
        self._on_started = on_started
        # run as the app shuts down, before the interpreter waits for the poll thread (a first
        # poll waiting on its forked child is let go there: ui.launch)
        self._on_exit = on_exit
        self.started_latest_s = STARTED_LATEST_S
        self.alerts = alerts  # the `terminal` alert channel (None: no alerts, as in most tests)
        self.open_alerts: tuple[OpenAlert, ...] = ()
        self.source = source
        self.budget_source = budget_source
        self.view_file = view_file  # where the fleet screen remembers its sort (None: nowhere)
        self.actions = actions
        self.settings = settings or DashboardSettings()
        # ASCII glyphs (present.glyphs) on a terminal whose locale is not UTF-8, or by setting
        # (a browser session always gets UTF-8: Textual's web driver writes it, xterm.js draws it;
        # the server's locale says nothing about the browser)
        self.surface = surface or Surface()
        if self.surface.on_web:
            self.ascii_only = choose_ascii(self.settings.glyphs, {"LANG": "C.UTF-8"})
        else:
            self.ascii_only = choose_ascii(self.settings.glyphs, os.environ) or is_dumb(os.environ)
        self.clock = clock
        self._watch_enabled = watch
        self._startup_notice = startup_notice
        # When the armed timer of the next full poll fires (monotonic), None when none is armed:
        # a spool change that close to it waits for that poll instead of polling on its own.
        self._full_due: float | None = None
        # Between the first poll's landing and its frame, polling is held: a poll asked for
        # meanwhile (the spool watcher asks for one as it starts) waits for that frame instead
        # of taking the GIL from it.
        self._first_frame_drawn = False
        self.digest = PollDigest()  # what the fleet screen asks of each snapshot, made ready
        self.row_books = RowBooks()  # and the fleet table's rows of it
        self.polling = PollScheduler(
            self._start_poll,
            self._arm_full_poll,
            interval_s=self.settings.poll_interval_s,
            enabled=poll,
            clock=clock,
        )
        self.operator = Operator(self, self)
        # start / restart / stop (ui.lifecycle): the fleet they act on, from the live actions or
        # source when not given (None: not available, e.g. a fixed fleet)
        self.lifecycle_config = lifecycle_config or live_config(actions, source)
        self.lifecycle_grace_s = GRACE_S
        self.lifecycle = Lifecycle(self, self, self.operator.current_record)
        register_themes(self)

    @property
    def snapshot(self) -> FleetSnapshot | None:
        return self.polling.snapshot

    @property
    def poll_error(self) -> str | None:
        return self.polling.error

    @property
    def polled_at(self) -> datetime | None:
        return self.polling.polled_at

    @property
    def polls(self) -> int:
        return self.polling.polls

    @property
    def polling_paused(self) -> bool:
        return self.polling.paused

    async def _on_key(self, event: events.Key) -> None:
        # Runs before App._on_key (the bindings): a key typed right behind the one that opened
        # a text box goes into the box, not to a binding of the screen in front
        # (ui.typeahead); it then stops the event, and App._on_key is not called.
        catch_typed_ahead(self.screen, event)

    # -- start -----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._catch_end_signals()
        if self._on_started is not None:
            self.set_timer(self.started_latest_s, self._started, name="started at the latest")
        use_theme(self, self.settings.theme)
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        self.fleet_screen = self.base_screen = FleetScreen()
        self.push_screen(self.fleet_screen)
        if self.surface.on_web:
            self.notify(self.surface.describe(), title="Web session", timeout=8, markup=False)
        if self._startup_notice:
            # file:line: field[0]: why is not markup
            self.notify(self._startup_notice, severity="warning", timeout=10, markup=False)
        self.app_suspend_signal.subscribe(self, self._on_suspend)
        self.app_resume_signal.subscribe(self, self._on_resume)
        if self.polling.enabled:
            self.request_poll()
            if self._watch_enabled and self.source.watch_dir is not None:
                watch = watch_folder(
                    self.source.watch_dir, self._spool_changed, every_s=HEARTBEAT_REFRESH_S
                )
                self.run_worker(
                    watch,
                    group="watch",
                    exit_on_error=False,
                    description="watch the heartbeat spool",
                )

    def on_unmount(self) -> None:
        on_exit, self._on_exit = self._on_exit, None
        if on_exit is not None:
            on_exit()

    def _catch_end_signals(self) -> None:
        """SIGTERM (`kill`, systemd, the web server ending a session) and SIGHUP (the terminal or
        the ssh connection went away) end the dashboard as `q` does: its screens close (a
        stream's pipe-pane and ssh with them) and the terminal is given back, instead of the
        process dying in the alternate screen with the pipe left open. Not in a headless test
        app, whose loop is the test's."""
        if self.is_headless:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._end_on_signal, sig)

    def _end_on_signal(self, sig: int) -> None:
        """Quit as `q` does. Textual's shutdown may then block for good writing to a terminal
        that is gone (SIGHUP: its output thread dies on EIO and the queue to it fills): the
        screens have closed their pipes by then, so after END_GRACE_S the process just ends
        (exit 128 + the signal)."""
        self.exit()
        watchdog = threading.Timer(END_GRACE_S, os._exit, args=(128 + sig,))
        watchdog.daemon = True
        watchdog.start()

    # -- polling (when: the scheduler; how: a thread worker; the result: a Polled message) ---
    def request_poll(self, *, heartbeats_only: bool = False) -> None:
        """Poll now, or right after the poll that is running (never two at once); a
        heartbeat-only poll re-reads the spool, reuses the last tmux and process observations and
        leaves the timer of the next full poll alone."""
        self.polling.request(heartbeats_only=heartbeats_only)

    def _arm_full_poll(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        self._full_due = time.monotonic() + delay_s
        return self.set_timer(delay_s, callback, name="poll timer")

    def _spool_changed(self) -> None:
        """A heartbeat file changed: a heartbeat-only poll, unless the timer's full poll (which
        reads the spool too) starts within `HEARTBEAT_REFRESH_S` anyway: the new heartbeat shows
        as soon, and the fleet is polled and redrawn once instead of twice."""
        due = self._full_due
        if due is not None and not self.polling.running:
            if 0.0 <= due - time.monotonic() <= HEARTBEAT_REFRESH_S:
                return
        self.request_poll(heartbeats_only=True)

    def _start_poll(self, heartbeats_only: bool) -> None:
        if not heartbeats_only:
            self._full_due = None  # the timer fired, or was stopped for this poll
        poll = partial(
            poll_and_alert,
            self.source,
            self.alerts,
            self.clock,
            heartbeats_only=heartbeats_only,
            prepare=self.prepare_snapshot,
        )
        in_thread(self, poll, Polled.landed, name="poll", description="poll the fleet")

    def prepare_snapshot(self, snapshot: FleetSnapshot) -> None:
        """In the poll thread, as a poll ends: the heartbeat ages of the details' charts, and
        what the fleet screen will show of `snapshot` under its view as it is now (a view that
        changes meanwhile is worked out when shown). Keeps O(fleet) work off the event loop."""
        self.polling.note_ages(snapshot)
        shown, fleet = self.digest.prepare(snapshot, self.fleet_screen.view)  # (immutable)
        self.row_books.prepare(fleet, shown, ascii_only=self.ascii_only)

    def on_polled(self, message: Polled) -> None:
        if message.alerts is not None:
            self._take_alerts(message.alerts)
        landed = message.snapshot is not None or message.error is not None
        if landed and not self._first_frame_drawn:
            self.polling.hold()  # released by _started, once this is on the screen
        self.polling.landed(message.snapshot, message.error)
        if landed:
            self._publish()
            self.call_after_refresh(self._started)

    def _started(self) -> None:
        if not self._first_frame_drawn:
            self._first_frame_drawn = True
            self.polling.release()
        started, self._on_started = self._on_started, None
        if started is not None:
            started()

    def apply_snapshot(self, snapshot: FleetSnapshot) -> None:
        self.polling.record(snapshot)
        self._publish()

    def _publish(self) -> None:
        """Hand the latest poll to every screen of the stack that can take it now.

        A poll lands at any moment: right after a push (the new screen has not composed yet),
        right after a pop (the old one is being removed, and is already off the stack). Only
        poll screens whose widgets are ready (`PollScreen.widgets_ready`) get it, through their
        `receive_snapshot()`; each reads `snapshot`, `poll_error`, `polled_at` from here, and
        reads them again when it mounts, so nothing published meanwhile is lost."""
        for screen in list(self.screen_stack):
            if isinstance(screen, PollScreen) and screen.widgets_ready():
                screen.receive_snapshot()

    # -- alerts (the `terminal` channel) ------------------------------------------------------
    def _take_alerts(self, update: AlertUpdate) -> None:
        was_empty = not self.open_alerts
        self.open_alerts = update.open
        if was_empty != (not update.open):
            self.fleet_screen.refresh_bindings()  # its footer's "i Inbox" comes and goes
        if update.notice:
            self.notify(update.notice, title="Alerts", severity="warning", timeout=15, markup=False)
        if not update.fired:
            return
        if self.settings.alerts_bell:
            self.bell()
        by_agent: dict[str, Fired] = {}
        for fired in update.fired:
            by_agent.setdefault(fired.key, fired)
        if len(by_agent) > TOASTS_AT_ONCE:
            self.notify(
                f"★ {len(by_agent)} agents need you",
                title="i: inbox",
                timeout=ALERT_TOAST_S,
                markup=False,
            )
            return
        for fired in by_agent.values():
            name = clean_text(fired.agent, max_len=64)
            detail = clean_text(fired.detail, max_len=200)
            self.notify(
                f"★ {name} needs you" + (f": {detail}" if detail else ""),
                title=f"{fired.rule} · i: inbox",
                timeout=ALERT_TOAST_S,
                markup=False,
            )

    def action_inbox(self) -> None:
        if not isinstance(self.screen, InboxScreen):
            self.show_screen(InboxScreen())

    def silence_alert(self, alert: OpenAlert, until: datetime) -> None:
        """Silence `alert`'s rule for its agent until `until`: written in a thread worker to
        the state dir's silences.json; the inbox shows it silenced after the next poll."""
        why = self.surface.refusal("silence")
        if why is not None:
            self.notify(f"silence: {why}", severity="warning", markup=False)
            return
        alerts = self.alerts
        if alerts is None:
            self.notify("silence: alerts are not evaluated in this view", severity="warning")
            return
        call = partial(alerts.silence, alert.rule, alert.agent, until, self.clock())
        done = partial(Silenced, alert)
        in_thread(self, call, done, name="silence", description="write a silence")

    def on_silenced(self, message: Silenced) -> None:
        alert = message.alert
        name = clean_text(alert.agent, max_len=64)
        if message.error is not None:
            self.notify(
                f"silence of {alert.rule} for {name} failed: {message.error}",
                severity="error",
                markup=False,
            )
            return
        when = local_time(message.silence.until, self.clock()) if message.silence else "?"
        self.notify(f"{alert.rule} silenced for {name} until {when}", markup=False)
        self.request_poll(heartbeats_only=True)

    def heartbeat_history(self, key: str) -> list[float]:
        return self.polling.history(key)

    def _on_suspend(self, app: App[object]) -> None:
        self.polling.pause()

    def _on_resume(self, app: App[object]) -> None:
        self.polling.resume()

    # -- navigation ------------------------------------------------------------------------
    def open_detail(self, key: str) -> None:
        """Show an agent's detail. A detail screen already open (e.g. from the palette, on it
        or under a stream) is reused for the new agent: one detail on the stack, never two."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, AgentDetailScreen):
                while self.screen is not screen and len(self.screen_stack) > 1:
                    self.pop_screen()
                screen.show_agent(key)
                return
        self.show_screen(AgentDetailScreen(key))

    def go_to_agent(self, key: str) -> None:
        self.action_show_fleet()
        self.fleet_screen.go_to_agent(key)

    def action_show_fleet(self) -> None:
        while self.screen is not self.fleet_screen and len(self.screen_stack) > 1:
            self.pop_screen()

    def action_command_palette(self) -> None:
        """Textual's palette, with page keys that cannot crash (see FleetCommandPalette)."""
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(FleetCommandPalette(id="--command-palette"))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.show_screen(HelpScreen())

    # -- operator actions (ui.operator: each behind a screen or a confirmation) -----------
    def action_stream(self) -> None:
        self.operator.stream()

    def action_watch(self) -> None:
        self.operator.watch()

    def action_attach(self) -> None:
        self.operator.attach()

    def action_message(self) -> None:
        self.operator.message()

    def action_audit(self) -> None:
        self.operator.audit()

    # -- lifecycle (ui.lifecycle: each behind a typed-name confirmation, run off the loop) ----
    def action_start(self) -> None:
        self.lifecycle.request("start")

    def action_restart(self) -> None:
        self.lifecycle.request("restart")

    def action_stop(self) -> None:
        self.lifecycle.request("stop")

    def on_lifecycle_done(self, message: LifecycleDone) -> None:
        self.lifecycle.done(message)

    def on_declined(self, message: Declined) -> None:
        if message.error:
            self.notify(f"audit log not written: {message.error}", severity="warning")

    def action_copy(self, what: str = "") -> None:
        self.operator.copy(what)

    def action_budgets(self) -> None:
        if not isinstance(self.screen, BudgetScreen):
            self.show_screen(BudgetScreen())

    def action_warnings(self) -> None:
        if not isinstance(self.screen, WarningsScreen):
            self.show_screen(WarningsScreen())

    def action_waiting(self) -> None:
        self.action_show_fleet()
        self.fleet_screen.action_waiting()

    def action_clear_filter(self) -> None:
        self.action_show_fleet()
        self.fleet_screen.action_clear()

    def action_toggle_all(self) -> None:
        self.action_show_fleet()
        self.fleet_screen.action_toggle_all()

    def action_sort(self, column: str) -> None:
        self.action_show_fleet()
        self.fleet_screen.action_sort(column)

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(keys, description, id) of every documented binding, with the user's keymap applied."""
        return binding_rows(self, self.settings.keymap, (FleetApp.BINDINGS, *documented_groups()))


def live_config(actions: object, source: object) -> FleetConfig | None:
    """The fleet configuration of the live actions (or the live source's collector)."""
    for holder in (actions, getattr(source, "collector", None)):
        config = getattr(holder, "config", None)
        if isinstance(config, FleetConfig):
            return config
    return None


def _is_a_dashboard(app: FleetApp) -> Dashboard:
    return app  # mypy checks here that the app is what its screens expect
