"""The command palette (ctrl+p): our commands (go to an agent by name, filter, sort, help) and
a palette that survives its page keys."""

from __future__ import annotations

from functools import partial

from textual import on
from textual.command import CommandList, CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.widgets import Input

from fleet_tui.present.columns import ATTENTION_STATES
from fleet_tui.ui.context import dashboard_of


class FleetCommands(Provider):
    def _commands(self) -> list[tuple[str, object, str]]:
        app = dashboard_of(self)
        out: list[tuple[str, object, str]] = []
        snap = app.snapshot
        for a in snap.agents if snap else []:
            label = f"Go to agent {a.name}" + (f" ({a.alias})" if a.alias else "")
            mark = (
                " ★ waiting for you"
                if a.heartbeat and a.heartbeat.state in ATTENTION_STATES
                else ""
            )
            out.append(
                (
                    label,
                    partial(app.go_to_agent, a.key),
                    f"{a.health.value}{mark} · {a.role or '-'} · {a.socket or '-'}",
                )
            )
            out.append(
                (f"Open detail of {a.name}", partial(app.open_detail, a.key), "agent detail screen")
            )
        out.append(("Show only agents waiting for you", app.action_waiting, "toggle ★ filter"))
        out.append(("Clear the filter", app.action_clear_filter, "show every agent"))
        out.append(("Show all sessions (also non-agents)", app.action_toggle_all, "toggle"))
        out.append(("Show the fleet", app.action_show_fleet, "back to the fleet table"))
        out.append(("Help: keys and filter syntax", app.action_help, "?"))
        out.append(("Show warnings", app.action_warnings, "W"))
        for col, label in (
            ("health", "health"),
            ("agent", "name"),
            ("hb", "heartbeat age"),
            ("idle", "idle time"),
            ("cpu", "CPU"),
            ("mem", "memory"),
        ):
            out.append((f"Sort by {label}", partial(app.action_sort, col), "again to reverse"))
        return out

    async def discover(self) -> Hits:
        for label, action, help_text in self._commands():
            if label.startswith("Open detail"):
                continue
            yield DiscoveryHit(label, action, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, action, help_text in self._commands():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), action, help=help_text)  # type: ignore[arg-type]


class FleetCommandPalette(CommandPalette):
    """Textual's palette, with keys that cannot crash the app or close the fleet screen.

    - Textual's option list pages by its laid-out lines: `pageup`/`pagedown` typed before the
      list was laid out (right after `ctrl+p`, or while it has no room) raised KeyError, which
      killed the dashboard. Until the list has lines, a page key moves to the first or last
      command instead.
    - Textual's palette closes with `dismiss()`, which pops the TOP screen: a key already queued
      behind the `enter` that closed it (an `esc`, a second `enter`) reached the closed palette
      and popped the fleet screen itself, and the chosen command then ran on a screen without a
      table. A palette that is no longer the current screen ignores its keys."""

    def _is_open(self) -> bool:
        return self.is_attached and self.app.screen is self

    def _action_escape(self) -> None:
        if self._is_open():
            super()._action_escape()

    @on(Input.Submitted)
    def _closed_ignores_enter(self, event: Input.Submitted) -> None:
        if not self._is_open():  # runs before Textual's own handler (a base class's)
            event.stop()
            event.prevent_default()

    def _action_command_list(self, action: str) -> None:
        if not self._is_open():
            return
        if action in ("page_up", "page_down"):
            commands = self.query_one(CommandList)
            if commands.highlighted is not None and not commands._index_to_line:
                if action == "page_up":
                    commands.action_first()
                else:
                    commands.action_last()
                return
        super()._action_command_list(action)
