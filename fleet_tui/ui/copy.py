"""Copy (`y`): the agent's name, its attach command or its pane id to the operator's clipboard.

The text goes out as OSC 52 to the operator's OWN terminal (Textual's `App.copy_to_clipboard`;
inside tmux, tmux passes it on when its `set-clipboard` allows). It is our text about the agent
(its name, a command we build), never the agent's output. `y` asks which with one more key."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from fleet_tui import tmux as recipe
from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import AgentRecord

# (key, what, label): the choices of the `y` menu, also the palette's `copy('what')` actions.
CHOICES = (
    ("n", "name", "its name"),
    ("a", "attach", "its attach command"),
    ("p", "pane", "its pane id"),
)
WHAT = {what: label for _key, what, label in CHOICES}


def copy_text(record: AgentRecord, what: str, socket_dir: str) -> tuple[str | None, str]:
    """The text to copy for `what` ("name", "attach", "pane") of `record`, or None and why not.

    The attach command names the socket by its full path (`tmux -S PATH attach -t =NAME:`), so
    it reaches the same server from any shell of this user, whatever its TMUX_TMPDIR."""
    if what == "name":
        return record.name, ""
    if record.remote:
        return None, f"{record.name} runs on host {record.host}: no pane of this host"
    if record.tmux is None or record.socket is None:
        return None, f"{record.name} has no tmux session"
    if what == "pane":
        return record.tmux.pane_id, ""
    if what == "attach":
        path = f"{socket_dir.rstrip('/')}/{record.socket}"
        return shlex.join(recipe.attach_command(path, record.name)), ""
    return None, f"nothing called '{what}' to copy"


class CopyScreen(ModalScreen[str | None]):
    """Which to copy: one key (n, a, p), esc cancels."""

    DEFAULT_CSS = """
    CopyScreen { align: center middle; }
    CopyScreen #copy-dialog {
        width: 50; max-width: 100%; height: auto; padding: 0 1;
        background: $panel; border: round $primary;
    }
    """
    BINDINGS = [
        *[
            Binding(key, f"choose('{what}')", f"Copy {label}", id=f"copy.{what}")
            for key, what, label in CHOICES
        ],
        Binding("escape,q", "choose('')", "Cancel", id="copy.cancel"),
    ]

    def __init__(self, record: AgentRecord) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        t = Text()
        t.append("Copy to the clipboard, for ", style="bold")
        t.append(clean_text(self.record.name, max_len=64), style="bold")
        for key, _what, label in CHOICES:
            t.append("\n  ")
            # the space ends the styled part: one starting the next part moved (Textual 8.2.8)
            t.append(f"{key} ", style="bold")
            t.append(f"{label}")
        t.append("\n  esc cancels", style="dim")
        with Vertical(id="copy-dialog"):
            yield Static(t)

    def action_choose(self, what: str) -> None:
        self.dismiss(what or None)
