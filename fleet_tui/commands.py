"""Command palette provider (ctrl+p): go to an agent by name, filter, sort, help."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from fleet_tui.core.columns import ATTENTION_STATES

if TYPE_CHECKING:
    from fleet_tui.app import FleetApp


class FleetCommands(Provider):
    def _commands(self) -> list[tuple[str, object, str]]:
        app = cast("FleetApp", self.app)
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
