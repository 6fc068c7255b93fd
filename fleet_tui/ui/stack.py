"""StackedApp: an App whose screen stack is safe against keys typed fast.

- `show_screen` pushes a screen once no screen of the same id is left over from a pop.
- `pop_screen` never pops the base screen (`base_screen`, set by the app when it pushes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from textual.app import App
from textual.await_complete import AwaitComplete
from textual.screen import Screen

SHOW_RETRY_S = 0.02
SHOW_TRIES = 100  # 2 s


class StackedApp(App[int]):
    base_screen: Screen[Any] | None = None

    def show_screen(
        self,
        screen: Screen[Any],
        callback: Callable[[Any], None] | None = None,
        *,
        tries: int = SHOW_TRIES,
    ) -> None:
        """Push `screen`, once no screen of the same id is left over.

        A popped screen is removed about 30 ms later (a turn of the loop or a few): a screen of
        the same id pushed meanwhile (`s`, `esc`, `s` typed fast) would clash with it, a crash
        (DuplicateIds). Then the push waits for the old one to go, checking every 20 ms."""
        # The app's own node list is what refuses a duplicate id (`children` shows one screen).
        busy = screen.id is not None and self._nodes._get_by_id(screen.id) not in (None, screen)
        if not busy:
            self.push_screen(screen, callback)
        elif tries > 0:
            self.set_timer(
                SHOW_RETRY_S, partial(self.show_screen, screen, callback, tries=tries - 1)
            )
        else:
            self.notify("the previous screen is still closing: try again", severity="warning")

    def pop_screen(self) -> AwaitComplete:
        """Pop the top screen, never the base screen (the dashboard's fleet screen).

        Textual closes a screen (`dismiss`, `app.pop_screen` bindings) by popping whatever is
        on top: a close handled after its screen had already gone (a key queued behind the
        one that closed it) popped the base screen, a blank terminal and a crash later."""
        if self._screen_stack and self.screen is self.base_screen:
            return AwaitComplete(asyncio.sleep(0))
        return super().pop_screen()
