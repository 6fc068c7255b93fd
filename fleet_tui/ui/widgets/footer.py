"""FleetFooter: Textual's Footer without its FooterKey leak; `prune_closed_watchers` for the others.

Why: Textual's `Footer.compose` binds each FooterKey with `.data_bind(compact=Footer.compact)`,
which stores the pair (FooterKey, setter) in the Footer's own watcher list
(`footer.__watchers["compact"]`, set by `textual.reactive._watch`). Textual drops the pairs of
closed widgets only in `Reactive._check_watchers`, that is when `Footer.compact` changes, which in
this app is never. And the Footer recomposes (new keys, the old ones removed) on every bindings
change: each focus change, each return to a screen. So every FooterKey ever shown stayed alive
(about 25 KB each, 8 to 10 per focus change on the fleet screen: tens of MB an hour of use).
The same holds for any `self.watch(other, ...)`: a TextArea watches `app.theme`, so each closed
message dialog stayed reachable from the app until the theme changed (see ui/dialogs.py).

Textual issue #6666 ("watchers from `self.watch(other, ...)` / `data_bind` are not removed when
the owner is removed from the DOM"), open; every release since 0.63 (the new footer) has it,
8.2.8 included. This relies on Textual's private names (`__watchers`, `_closing`, `_closed`), so
pyproject pins `textual>=8.2.8,<9`. When to drop it: once a Textual release fixes #6666, pin that
release, use the stock `Footer` again and delete this module (tests/test_footer_leak.py says
whether the stock one still leaks).
"""

from __future__ import annotations

from textual.compose import compose
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


def prune_closed_watchers(node: DOMNode) -> None:
    """Drop the watchers registered on `node` by nodes that have since closed (been removed).

    The rule Textual applies itself in `Reactive._check_watchers`, done now instead of at the next
    change of the watched value."""
    watchers = getattr(node, "__watchers", None)  # textual.reactive._watch sets it by name
    if not watchers:
        return
    for entries in watchers.values():
        entries[:] = [
            (owner, callback)
            for owner, callback in entries
            if not (owner._closing or owner._closed)
        ]


def _shown(widget: Widget) -> tuple[object, ...]:
    """What a footer key shows: everything a FooterKey draws, and does when clicked."""
    if isinstance(widget, FooterKey):
        return (
            FooterKey,
            widget.key,
            widget.key_display,
            widget.description,
            widget.action,
            widget._disabled,
            str(widget.tooltip or ""),
            frozenset(widget.classes) - {"-compact"},  # -compact: set on mount, from compact
        )
    return (type(widget), id(widget))  # a group or a label: never taken as the same


class FleetFooter(Footer):
    """The stock Footer, whose recompose also forgets the keys it has just removed, and which
    recomposes only when the keys it would show differ from the ones it shows.

    Why the second: the stock Footer remounts every key on each bindings change (each focus
    change, and a second time after the next refresh, with the same keys): about a dozen
    FooterKeys mounted, styled and laid out per focus change, some 3 screen layouts per key
    press (issue 16, keys during a stream). What is compared is what `compose` would yield:
    the key, how it is displayed, its description, action, enabled state, tooltip and classes,
    a footer with key groups always recomposes (none in this app)."""

    async def recompose(self) -> None:
        if not self.is_attached or self._pruning:
            return
        if self._bindings_ready:
            wanted = [_shown(w) for w in compose(self)]  # not mounted: nothing registered yet
            if wanted == [_shown(w) for w in self._nodes]:
                return
        await super().recompose()  # awaits the removal of the old keys: they are closed now
        prune_closed_watchers(self)
