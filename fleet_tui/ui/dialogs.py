"""Dialogs in front of every action that can reach an agent: the typed-name confirmations of
attach and of start, restart, stop (type the agent's name), the message composer, and the audit
log viewer."""

from __future__ import annotations

import json

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static, TextArea

from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import AgentRecord
from fleet_tui.present.columns import question
from fleet_tui.ui.typeahead import focus_now, replay_typed_ahead
from fleet_tui.ui.widgets.footer import prune_closed_watchers


def _target(record: AgentRecord) -> Text:
    t = Text()
    t.append("agent ", style="dim")
    t.append(clean_text(record.name, max_len=80), style="bold")
    t.append("   tenant ", style="dim")
    t.append(clean_text(record.tenant_id, max_len=64), style="bold")
    t.append("   host ", style="dim")
    t.append(clean_text(record.host, max_len=64), style="bold")
    t.append("   socket ", style="dim")
    t.append(clean_text(record.socket or "-", max_len=64), style="bold")
    return t


class TypedNameScreen(ModalScreen[bool]):
    """A confirmation the operator gives by TYPING the agent's name (enter); esc cancels. A
    wrong name says so and clears the box: nothing happens. Dismissed with True only for the
    name itself. Subclasses say what will happen (`lines`) and bind escape to `cancel`."""

    def __init__(self, record: AgentRecord, *, id: str, verb: str) -> None:
        super().__init__(id=id)
        self.record = record
        self.verb = verb  # "attach", "stop": the box's placeholder and the wrong-name line
        self.typed_ahead: list[events.Key] | None = []  # keys typed before it mounted

    def lines(self) -> list[Text]:
        raise NotImplementedError

    def wrong_name(self) -> str:
        return f"That is not the agent's name: nothing {self.verb}ed."

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            for line in self.lines():
                yield Static(line)
            yield Input(
                placeholder=f"type {clean_text(self.record.name, max_len=80)} to {self.verb}, "
                "esc cancels",
                id="confirm-name",
            )
            yield Static("", id="confirm-error")

    def type_ahead_box(self) -> Input:
        return self.query_one("#confirm-name", Input)

    def on_mount(self) -> None:
        box = self.type_ahead_box()
        focus_now(box)
        replay_typed_ahead(self, box)  # the name typed right behind the key (ui.typeahead)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.record.name:
            self.dismiss(True)
        else:
            self.query_one("#confirm-error", Static).update(
                Text(self.wrong_name(), style="bold yellow")
            )
            event.input.value = ""

    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmAttachScreen(TypedNameScreen):
    """Attach is a hands-on takeover: the operator types the agent's name to proceed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="confirm.cancel")]

    def __init__(self, record: AgentRecord) -> None:
        super().__init__(record, id="confirm-attach", verb="attach")

    def lines(self) -> list[Text]:
        return [
            Text("Attach: you will TYPE INTO this agent", style="bold red"),
            _target(self.record),
            Text(
                "Keys you press go to the agent until you detach (C-b d). "
                "To only look, press w (watch) instead.",
                style="dim",
            ),
        ]


class ConfirmLifecycleScreen(TypedNameScreen):
    """Start, restart, stop (ui.lifecycle): what it will do to which agent, on which host and
    socket; the operator types the agent's name to proceed, as for attach."""

    DEFAULT_CSS = "ConfirmLifecycleScreen { align: center middle; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="lifecycle.cancel")]

    def __init__(
        self, record: AgentRecord, *, verb: str, headline: str, explain: str, done: str
    ) -> None:
        super().__init__(record, id=f"confirm-{verb}", verb=verb)
        self.headline, self.explain, self.done = headline, explain, done

    def lines(self) -> list[Text]:
        return [
            Text(self.headline, style="bold red"),
            _target(self.record),
            Text(self.explain, style="dim"),
        ]

    def wrong_name(self) -> str:
        return f"That is not the agent's name: nothing {self.done}."


class ComposeMessageScreen(ModalScreen[str | None]):
    """`m`: write a message for the agent. ctrl+s sends (the deliberate gesture), esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "send", "Send", id="compose.send"),
        Binding("escape", "cancel", "Cancel", id="compose.cancel"),
    ]

    def __init__(self, record: AgentRecord) -> None:
        super().__init__(id="compose")
        self.record = record
        self.typed_ahead: list[events.Key] | None = []  # keys typed before it mounted

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            asks = question(self.record)
            if asks:  # what the agent waits for, on top: the operator answers what they see
                t = Text()
                t.append("★ It asks: ", "bold")  # an ASCII terminal: the app's AsciiFilter
                t.append(clean_text(asks, max_len=400))
                yield Static(t, id="compose-question")
            yield Static(Text("Send a message", style="bold"))
            yield Static(_target(self.record))
            yield TextArea(id="compose-text", soft_wrap=True, show_line_numbers=False)
            yield Static(
                Text(
                    "ctrl+s sends (then Enter is pressed for you) · esc cancels · control "
                    "characters are removed · the audit log keeps its hash, never the text",
                    style="dim",
                )
            )
            yield Static("", id="compose-error")

    def type_ahead_box(self) -> TextArea:
        return self.query_one("#compose-text", TextArea)

    def on_mount(self) -> None:
        box = self.type_ahead_box()
        focus_now(box)
        replay_typed_ahead(self, box)  # the text typed right behind `m`

    def on_unmount(self) -> None:
        # The TextArea watches app.theme (Textual #6666): without this every closed dialog stays
        # reachable from the app until the theme changes. Its children have closed by now.
        prune_closed_watchers(self.app)

    def action_send(self) -> None:
        text = self.query_one(TextArea).text
        if not text.strip():
            self.query_one("#compose-error", Static).update(
                Text("Nothing to send.", style="bold yellow")
            )
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AuditScreen(ModalScreen[None]):
    """`L`: the last operator actions (watch, attach, send, probe, pipe) with their outcome."""

    BINDINGS = [Binding("escape,q,L", "dismiss", "Close", id="audit.close")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__(id="audit")
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(
                Text(f"Audit log (last {len(self.lines)} actions, newest last)", style="bold")
            )
            yield Static(audit_text(self.lines))
            yield Static(Text("esc closes", style="dim"))


def audit_text(lines: list[str]) -> Text:
    t = Text()
    if not lines:
        t.append("no actions recorded yet", style="dim")
    for raw in lines:
        try:
            e = json.loads(raw)
        except ValueError:
            t.append("(unreadable line)\n", style="dim")
            continue
        if not isinstance(e, dict):
            continue
        outcome = clean_text(str(e.get("outcome", "")), max_len=40)
        bad = outcome in (
            "failed",
            "unanswered",
            "refused",
            "declined",
            "not_found",
        ) or outcome.startswith("exit")
        t.append(clean_text(str(e.get("ts", "")), max_len=30) + "  ", style="dim")
        t.append(clean_text(str(e.get("action", "")), max_len=12).ljust(7), style="bold")
        t.append(" " + clean_text(str(e.get("agent", "")), max_len=64).ljust(16))
        t.append(" " + outcome.ljust(11), style="red" if bad else "green")
        t.append(" " + clean_text(str(e.get("detail", "")), max_len=120) + "  ", style="")
        t.append(clean_text(str(e.get("user", "")), max_len=32) + "\n", style="dim")
    return t
