"""The command palette (ctrl+p): every action and sort by name, go to an agent by name, and a
palette that survives its page keys."""

from __future__ import annotations

from functools import partial

from textual import on
from textual.command import CommandList, CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.widgets import Input

from fleet_tui.present.columns import COLUMNS, needs_attention
from fleet_tui.present.glyphs import to_ascii
from fleet_tui.ui.context import dashboard_of
from fleet_tui.ui.screens.fleet import SORT_BINDINGS

# (title, action of the app, key, what it does): every action an operator reaches for, offered
# by name; the pane actions act on the agent in view (the detail's, or the fleet's cursor).
ACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("Stream the selected agent's pane", "stream", "s", "follow its output live"),
    ("Watch the selected agent (read-only)", "watch", "w", "tmux attach -r; C-b d returns"),
    ("Attach to the selected agent (interactive)", "attach", "a", "after a confirmation"),
    ("Send a message to the selected agent", "message", "m", "typed into its pane"),
    (
        "Start the selected agent (up)",
        "start",
        "u",
        "from its roster command; after a confirmation",
    ),
    ("Restart the selected agent", "restart", "r", "ends its session; after a confirmation"),
    ("Stop the selected agent", "stop", "x", "ends its session; after a confirmation"),
    ("Copy the selected agent's name", "copy('name')", "y n", "to the clipboard (OSC 52)"),
    ("Copy the selected agent's attach command", "copy('attach')", "y a", "to the clipboard"),
    ("Copy the selected agent's pane id", "copy('pane')", "y p", "to the clipboard"),
    ("Show the inbox: what needs you", "inbox", "i", "open alerts, oldest first; answer, silence"),
    ("Show budgets", "budgets", "b", "account windows, pace, spend today"),
    ("Show the audit log", "audit", "L", "every pane action taken"),
    ("Show warnings", "warnings", "W", "sources and agents that need a look"),
    ("Help: keys and filter syntax", "help", "?", "every screen's keys"),
    ("Show the fleet", "show_fleet", "", "back to the fleet table"),
    ("Show only agents waiting for you", "waiting", "*", "toggle the ★ filter"),
    ("Clear the filter", "clear_filter", "esc", "show every agent"),
    ("Show all sessions (also non-agents)", "toggle_all", "A", "toggle"),
)


def sort_commands() -> list[tuple[str, str, str]]:
    """(label, action, help) of a sort by every column, named by its title."""
    keys = {col: key for key, col, _label in SORT_BINDINGS}
    out = []
    for c in COLUMNS:
        key = keys.get(c.key)
        hint = f"{key}; again to reverse" if key else "again to reverse"
        out.append((f"Sort by {c.title}", f"sort('{c.key}')", hint))
    return out


class FleetCommands(Provider):
    def _commands(self, *, searching: bool) -> list[tuple[str, object, str]]:
        """The palette's commands. Opened (no query yet) it lists the actions, the sorts and the
        agents waiting for you; every agent's "Go to" and "Open detail" come as the operator
        types (300 agents would bury the actions, and a list of 300 made ctrl+p slow to open).
        A session that is no agent is never offered as one."""
        app = dashboard_of(self)
        run = self.app.run_action
        out: list[tuple[str, object, str]] = []
        for title, action, key, help_text in ACTIONS:
            hint = f"{key} · {help_text}" if key else help_text
            out.append((title, partial(run, action), hint))
        for label, action, hint in sort_commands():
            out.append((label, partial(run, action), hint))
        snap = app.snapshot
        for a in snap.agents if snap else []:
            if not a.is_agent:
                if searching:
                    out.append(
                        (
                            f"Go to session {a.name} (not an agent)",
                            partial(app.go_to_agent, a.key),
                            f"{a.socket or '-'} · shown with all sessions (A)",
                        )
                    )
                continue
            label = f"Go to agent {a.name}" + (f" ({a.alias})" if a.alias else "")
            waiting = needs_attention(a)  # reported or inferred, as the table's ★
            if not searching and not waiting:
                continue
            mark = " ★ waiting for you" if waiting else ""
            out.append(
                (
                    label,
                    partial(app.go_to_agent, a.key),
                    f"{a.health.value}{mark} · {a.role or '-'} · {a.socket or '-'}",
                )
            )
            if searching:
                out.append(
                    (
                        f"Open detail of {a.name}",
                        partial(app.open_detail, a.key),
                        "agent detail screen",
                    )
                )
        return out

    def _shown(self, *, searching: bool) -> list[tuple[str, object, str]]:
        """`_commands`, in ASCII (present.glyphs) on a terminal that asked for it."""
        commands = self._commands(searching=searching)
        if not dashboard_of(self).ascii_only:
            return commands
        return [(to_ascii(label), action, to_ascii(h)) for label, action, h in commands]

    async def discover(self) -> Hits:
        for label, action, help_text in self._shown(searching=False):
            yield DiscoveryHit(label, action, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, action, help_text in self._shown(searching=True):
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
