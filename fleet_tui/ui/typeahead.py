"""Type-ahead: keys typed right behind the key that opens a text box go into that box.

A terminal delivers what the operator typed in one read: `/rev`, `a` then the agent's name, `m`
then a message. The app forwards each key to the widget focused WHEN THE KEY IS READ, before the
first one has run its binding: `r e v` are already queued to the fleet table when `/` shows the
filter box, and the name typed behind `a` is queued to the table when the confirmation is pushed
(whose widgets exist only a few turns of the loop later). Those keys then bubble up to the app
unhandled (or, worse, run a binding of the screen in front: `q` quits).

So a screen with a text box names it (`TypeAheadScreen.type_ahead_box`) and focuses it at once
(`focus_now`; `Widget.focus` waits a turn of the loop). The app hands `catch_typed_ahead` every
key that reaches it, before its bindings: a key that the box would have taken but that did not go
through it (a printable key, enter for a multi-line box: the box stops those) goes into the box;
while the screen has not mounted yet, the keys are kept and typed in when it mounts
(`replay_typed_ahead`), enter and backspace included.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from textual import events
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, TextArea

Box = Input | TextArea

# keys kept for a screen that has not mounted yet, besides printable ones
_EDIT_KEYS = ("enter", "backspace")
_MAX_KEPT = 1000


@runtime_checkable
class TypeAheadScreen(Protocol):
    """A screen whose text box takes the keys typed right behind the key that opened it."""

    # the keys kept until the screen mounts (for `replay_typed_ahead` in its on_mount); None:
    # none are kept (a screen whose box opens later, on a key of its own)
    typed_ahead: list[events.Key] | None

    def type_ahead_box(self) -> Box | None:
        """The box that takes keys now (None: none, e.g. the filter box is hidden)."""
        ...


def focus_now(widget: Widget) -> None:
    """Give `widget` the focus now (not on a later turn of the loop, as `Widget.focus` does)."""
    widget.screen.set_focus(widget)


def _insert(box: Box, event: events.Key) -> bool:
    """Type `event` into `box` as the box itself would; False when it would not take it."""
    if isinstance(box, TextArea):
        if box.read_only:
            return False
        text = "\n" if event.key == "enter" else event.character if event.is_printable else None
        if text is None:
            return False
        box.insert(text)
        return True
    if not event.is_printable or event.character is None:
        return False
    box.insert_text_at_cursor(event.character)
    return True


def catch_typed_ahead(screen: Screen[Any], event: events.Key) -> bool:
    """Called by the app for a key that reached it: True when it went into (or is kept for)
    `screen`'s text box; the event is then stopped and its default (the app's bindings)
    prevented. A key that went through the box never gets here with a character: the
    box stopped it."""
    if not isinstance(screen, TypeAheadScreen):
        return False
    if not (event.is_printable or event.key in _EDIT_KEYS):
        return False
    if not screen.is_mounted:  # pushed, not composed yet: keep it for on_mount
        if screen.typed_ahead is None:
            return False
        if len(screen.typed_ahead) < _MAX_KEPT:
            screen.typed_ahead.append(event)
        event.stop()
        event.prevent_default()
        return True
    box = screen.type_ahead_box()
    if box is None or screen.focused is not box or not _insert(box, event):
        return False  # (enter, backspace of an Input: its bindings, found along the focus)
    event.stop()
    event.prevent_default()
    return True


def replay_typed_ahead(screen: TypeAheadScreen, box: Box) -> None:
    """In the screen's on_mount, once `box` has the focus: type the kept keys into it."""
    kept, screen.typed_ahead = screen.typed_ahead or [], []
    for event in kept:
        if _insert(box, event):
            continue
        if event.key == "backspace":
            box.action_delete_left()
        elif event.key == "enter" and isinstance(box, Input):
            box.call_later(box.action_submit)
            break  # what the enter does (close the dialog) comes first
