"""The dashboard's themes and how the terminal picks one.

- `fleet-dark`, `fleet-light`: 24-bit colours, for terminals that show them (COLORTERM=truecolor,
  or a TERM ending in -256color: our colours are all in xterm's 256-colour cube).
- `fleet-ansi`: the sixteen colours of the terminal's own palette, by name. A terminal with 16
  colours (TERM=xterm, PuTTY's default, TERM=screen, the Linux console) cannot show 24-bit
  colours: Textual would round each one to the nearest of 16 standard colours, and the selected
  row came out bold white on light grey. With named colours the user's palette decides, and every
  pair we draw (cursor: bright white on blue) reads on a dark or a light background.
- No colour at all (NO_COLOR set, or TERM=dumb): the terminal's own foreground and background
  only; the cursor, the headers and the urgent counts stand out by reverse and bold (app.tcss
  `:nocolor` rules, the header's styles), never by a shade of grey.

`TerminalColours` is a base of the App: it decides the depth once, before Textual builds its
console and filters.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar, Literal

from rich.cells import cell_len
from rich.segment import Segment
from textual.app import App
from textual.color import Color
from textual.filter import LineFilter, NoColor
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.theme import Theme

from fleet_tui.core.sanitize import clean_text
from fleet_tui.present.glyphs import to_ascii

ColourDepth = Literal["none", "16", "full"]

THEMES = [
    Theme(
        name="fleet-dark",
        primary="#5fafd7",
        secondary="#875fd7",
        accent="#ffaf00",
        warning="#ffaf00",
        error="#ff5f5f",
        success="#5fd75f",
        foreground="#d0d0d0",
        background="#121212",
        surface="#1c1c1c",
        panel="#262626",
        dark=True,
        variables={
            # a scrollbar is a thin bar on a visible track, not a stray block on the background
            "scrollbar": "#5f5f5f",
            "scrollbar-hover": "#808080",
            "scrollbar-active": "#5fafd7",
            "scrollbar-background": "#262626",
            "scrollbar-background-hover": "#262626",
            "scrollbar-background-active": "#262626",
            "scrollbar-corner-color": "#262626",
        },
    ),
    Theme(
        name="fleet-light",
        primary="#005f87",
        secondary="#5f00af",
        accent="#af5f00",
        warning="#af5f00",
        error="#d70000",
        success="#008700",
        foreground="#1c1c1c",
        background="#ffffff",
        surface="#f2f2f2",
        panel="#e4e4e4",
        dark=False,
        variables={
            "scrollbar": "#9e9e9e",
            "scrollbar-hover": "#767676",
            "scrollbar-active": "#005f87",
            "scrollbar-background": "#e4e4e4",
            "scrollbar-background-hover": "#e4e4e4",
            "scrollbar-background-active": "#e4e4e4",
            "scrollbar-corner-color": "#e4e4e4",
        },
    ),
    Theme(
        name="fleet-ansi",
        ansi=True,
        primary="ansi_blue",
        secondary="ansi_magenta",
        accent="ansi_bright_yellow",
        warning="ansi_yellow",
        error="ansi_red",
        success="ansi_green",
        foreground="ansi_default",
        background="ansi_default",
        surface="ansi_default",
        panel="ansi_default",
        boost="ansi_default",
        dark=True,
        variables={
            "ansi-background": "ansi_default",
            "ansi-foreground": "ansi_default",
            "border": "ansi_blue",
            "border-blurred": "ansi_white",
            "block-cursor-foreground": "ansi_bright_white",
            "block-cursor-background": "ansi_blue",
            "block-cursor-text-style": "bold",
            "block-cursor-blurred-foreground": "ansi_bright_white",
            "block-cursor-blurred-background": "ansi_blue",
            "block-cursor-blurred-text-style": "none",
            "block-hover-background": "ansi_default",
            "input-cursor-background": "ansi_default",
            "input-cursor-foreground": "ansi_default",
            "input-cursor-text-style": "reverse",
            "input-selection-background": "ansi_blue",
            "input-selection-foreground": "ansi_bright_white",
            "screen-selection-background": "ansi_blue",
            "screen-selection-foreground": "ansi_bright_white",
            "footer-key-foreground": "ansi_bright_white",
            "footer-key-background": "ansi_blue",
            "footer-description-foreground": "ansi_default",
            "footer-description-background": "ansi_default",
            "footer-background": "ansi_default",
            "footer-foreground": "ansi_default",
            "scrollbar": "ansi_blue",
            "scrollbar-hover": "ansi_bright_blue",
            "scrollbar-active": "ansi_bright_blue",
            "scrollbar-background": "ansi_default",
            "scrollbar-background-hover": "ansi_default",
            "scrollbar-background-active": "ansi_default",
            "scrollbar-corner-color": "ansi_default",
        },
    ),
]
ANSI_THEME = "fleet-ansi"
_NO_COLOUR = NoColor()


def colour_depth(env: Mapping[str, str]) -> ColourDepth:
    """What the terminal can show, decided as Rich and Textual decide (NO_COLOR present, even
    empty, is no colour for Textual; TEXTUAL_COLOR_SYSTEM forces a system; COLORTERM, then the
    TERM suffix), except that TERM=dumb or unknown means no colour (Textual would send 24-bit
    colours there, its fallback when Rich finds no colour system)."""
    if "NO_COLOR" in env:
        return "none"
    if is_dumb(env):
        return "none"
    term = env.get("TERM", "").strip().lower()
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "auto").strip().lower()
    if forced in ("standard", "windows"):
        return "16"
    if forced in ("256", "truecolor"):
        return "full"
    if env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return "full"
    return "full" if term.rpartition("-")[2] == "256color" else "16"


def is_dumb(env: Mapping[str, str]) -> bool:
    """TERM=dumb (or unknown): no colour, and ASCII glyphs."""
    return env.get("TERM", "").strip().lower() in ("dumb", "unknown")


@lru_cache(maxsize=512)
def ascii_char(c: str) -> str:
    """One character as ASCII of the same width: our glyphs as present.glyphs says; Textual's
    box lines and blocks by their shape (corners +, lines - and |, eighth blocks _ - |);
    anything else `?`, once per cell it takes (a wide emoji stays two cells)."""
    if c.isascii():
        return c
    out = to_ascii(c)
    if out != "?":
        return out
    name = unicodedata.name(c, "")
    width = cell_len(c)
    if name.startswith("BOX DRAWINGS"):
        if " AND " in name or "ARC" in name or "CROSS" in name:
            return "+"
        return "|" if "VERTICAL" in name else "-"
    if name.endswith("BLOCK") or name.endswith("SHADE"):
        if name.startswith(("LEFT", "RIGHT")):
            return "|"
        if name.startswith("UPPER"):
            return "-"
        return "_" if name.startswith("LOWER") else "#"
    return "?" * width


def ascii_line(text: str) -> str:
    """`text` in ASCII, cell for cell (its width unchanged)."""
    if text.isascii():
        return text
    return "".join([ascii_char(c) for c in text])


class AsciiFilter(LineFilter):
    """The last step of every line drawn: no character outside ASCII reaches the terminal
    (`glyphs: ascii`, automatic where the locale is not UTF-8), whoever drew it: our widgets
    (which spell our glyphs through present.glyphs), Textual's borders, scrollbars, footer and
    command palette."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [
            seg if seg.text.isascii() else Segment(ascii_line(seg.text), seg.style, seg.control)
            for seg in segments
        ]


_ASCII = AsciiFilter()


class WholeCellScrollBarRender(ScrollBarRender):
    """A scrollbar whose thumb is whole cells (reverse blanks): no eighth blocks."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * 8
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "] * 8


class TerminalColours(App[int]):
    """A base of the dashboard's App: `colour_depth` is decided once from the environment.

    At 16 colours or none, Textual sends named (ANSI) colours instead of 24-bit ones and the
    theme is `fleet-ansi`; with no colour every colour becomes the terminal's default (Textual
    does so for NO_COLOR; we do it for TERM=dumb too)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        depth = colour_depth(os.environ)
        kwargs.setdefault("ansi_color", depth != "full")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.colour_depth: ColourDepth = depth
        if depth == "none":
            self.no_color = True  # the `:nocolor` rules of app.tcss, and the header's styles
        register_themes(self)

    def on_mount(self) -> None:
        # Textual's scrollbar draws the ends of its thumb with eighth blocks (▁▂▃▅▆▇): not ASCII,
        # and without colour they are stray blocks on no track. There the thumb is whole cells.
        ascii_only = bool(getattr(self, "ascii_only", False))
        ScrollBar.renderer = (
            WholeCellScrollBarRender if ascii_only or self.no_color else ScrollBarRender
        )
        self.set_class(ascii_only, "-ascii")

    def get_line_filters(self) -> Sequence[LineFilter]:
        filters = super().get_line_filters()
        if self.no_color and not any(isinstance(f, NoColor) for f in filters):
            filters = [*filters, _NO_COLOUR]
        if getattr(self, "ascii_only", False):
            filters = [*filters, _ASCII]
        return filters


def register_themes(app: App[Any]) -> None:
    for theme in THEMES:
        if theme.name not in app.available_themes:
            app.register_theme(theme)


def use_theme(app: App[Any], name: str) -> None:
    """Show `name`; an unknown theme falls back to fleet-dark, with a warning. A terminal of 16
    colours or none gets `fleet-ansi` whatever the setting (a 24-bit theme cannot show there)."""
    fallback = ANSI_THEME if app.ansi_color else "fleet-dark"
    theme = app.available_themes.get(name)
    if theme is None:
        app.theme = fallback
        app.notify(f"unknown theme '{clean_text(name)}'; using {fallback}", severity="warning")
        return
    app.theme = ANSI_THEME if app.ansi_color and not theme.ansi else name
