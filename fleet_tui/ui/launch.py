"""Start the dashboard on the live sources: the settings file, the fleet's sources, budgets,
operator actions and the `terminal` alert channel (alerts.yaml's rules with `to: [terminal]`, or
the built-in `needs-you` rule) wired to a FleetApp, and the sources closed when the operator quits.

Kept apart from ui.app so the App reads as the dashboard alone, and so the CLI (and tests) can
replace this one function.
"""

from __future__ import annotations

from collections.abc import Callable

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings, load_settings
from fleet_tui.config.surface import Surface
from fleet_tui.control.actions import LiveActions
from fleet_tui.service.firstpoll import FirstPoll, dashboard_source
from fleet_tui.ui.alerting import TerminalAlerts
from fleet_tui.ui.app import FleetApp


def run_dashboard(
    config: FleetConfig,
    *,
    settings: DashboardSettings | None = None,
    settings_notice: str | None = None,
    on_started: Callable[[], None] | None = None,
    first_poll: FirstPoll | None = None,
) -> int:
    """Start the dashboard on the live sources (blocks until the operator quits). `on_started`
    runs once, when the first poll has landed (or failed) and been drawn. `settings_notice`:
    what loading `settings` found wrong (shown at start). `first_poll`: the first poll's
    snapshot comes from it (`service.firstpoll`; the CLI starts it)."""

    notice = settings_notice
    if settings is None:
        settings, notice = load_settings()

    source, budgets = dashboard_source(config, settings)
    if first_poll is not None:
        source.use_first(first_poll)
    surface = Surface.from_env()  # a browser session of `fleet-tui web`, or the terminal
    actions = LiveActions(source.runner, config.state_dir, config, surface=surface.name)
    # read before the app runs (no file I/O on the event loop); an invalid file: the built-in
    # rule, and the warning joins the startup notice
    alerts, alerts_notice = TerminalAlerts.load(config.alerts, config.state_dir)
    notice = "\n".join(n for n in (notice, alerts_notice) if n) or None
    app = FleetApp(
        source,
        settings=settings,
        startup_notice=notice,
        actions=actions,
        budget_source=budgets,
        view_file=config.state_dir / "dashboard.json",
        alerts=alerts,
        surface=surface,
        on_started=on_started,
        # quitting while the first poll still waits on the child stops it then, not after
        on_exit=first_poll.cancel if first_poll is not None else None,
    )
    if source.gateway is not None:
        # A gateway answer shows at once (a cheap rejoin), not at the next timer poll.
        source.gateway.on_answer = lambda: app.call_from_thread(
            app.request_poll, heartbeats_only=True
        )
    try:
        app.run()
    finally:
        source.close()
    return 0
