"""The symbols fleet-tui draws, and their ASCII fallbacks for terminals that cannot show them.

Every screen of ours spells its status glyphs in Unicode (`● ◐ ✖ ○ ★ ▲ ▼ ◆ …`). A terminal
without a UTF-8 locale (`LANG=C`, PuTTY set to a legacy code page, a serial console) shows them
as `?` or mojibake, and an ambiguous-width terminal may draw some of them two cells wide and
break every column after them. In ASCII mode every glyph below is translated at the point where
text reaches the screen (`to_ascii`), so the producers keep one spelling.

The mode is chosen once per process (`choose_ascii`): the setting `glyphs: auto|unicode|ascii`
(`auto` by default: ASCII unless the locale says UTF-8); for the verbs' text (`ps`, `budget`,
`send`) the same locale rule, or a stdout that cannot encode UTF-8 (`text_is_ascii`). A stream
that cannot encode a character falls back to the same table (`ascii_fallback`, an error handler
for `TextIOWrapper.reconfigure`) rather than raising in the middle of a line.
Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Literal

GlyphMode = Literal["auto", "unicode", "ascii"]
GLYPH_MODES: tuple[GlyphMode, ...] = ("auto", "unicode", "ascii")

# What each glyph means and what stands for it in ASCII. One cell each, so widths never change.
ASCII_FALLBACK: dict[str, str] = {
    "●": "+",  # healthy; a live socket
    "◐": "~",  # stale
    "✖": "x",  # unresponsive; exhausted; a hung socket
    "○": "-",  # down; a stale socket
    "★": "*",  # needs you (waiting_input or blocked)
    "▲": "^",  # ascending sort; ahead of pace
    "▼": "v",  # descending sort
    "△": "^",
    "▽": "v",  # behind pace
    "◆": "#",  # the logo
    "⊘": "/",  # a socket we may not read
    "⚠": "!",  # a warning
    "⚑": "!",  # a drift flag
    "·": ".",  # separator
    "…": ".",  # ellipsis (one cell: "..." would widen the text)
    "ʰ": "h",  # state from a runtime hook
    "ˢ": "s",  # state from Claude Code's session file
    "█": "#",  # gauge: used
    "░": "-",  # gauge: left
    "│": "|",  # gauge: the even-pace mark; rules
    "─": "-",
    "━": "=",
    "»": ">",
    "«": "<",
    "→": ">",
    "←": "<",
    "↑": "^",
    "↓": "v",
    "✓": "v",
    "✔": "v",
    "⏎": "<",
    "—": "-",
    "–": "-",
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "≥": ">",
    "≤": "<",
    "×": "x",
    "▁": "_",
    "▂": "_",
    "▃": "-",
    "▄": "-",
    "▅": "=",
    "▆": "=",
    "▇": "#",
}
_TABLE = str.maketrans(ASCII_FALLBACK)


def to_ascii(text: str) -> str:
    """`text` with our glyphs replaced by their one-cell ASCII fallbacks; anything else that is
    not ASCII (an agent's name, a pane's text) becomes `?`, so nothing can print as mojibake or
    take two cells on an ASCII terminal."""
    if text.isascii():
        return text
    out = text.translate(_TABLE)
    if out.isascii():
        return out
    return "".join(c if c.isascii() else "?" for c in out)


def _coerced(env: Mapping[str, str]) -> bool:
    """Python itself (PEP 538) sets LC_CTYPE=C.UTF-8 in its own environment when it starts in
    the C locale (`LANG=C`, or no locale at all): that says nothing of the terminal. Seen as: no
    LC_ALL, LANG unset or C/POSIX, and LC_CTYPE exactly the coercion's value."""
    return (
        not env.get("LC_ALL")
        and env.get("LANG", "") in ("", "C", "POSIX")
        and env.get("LC_CTYPE") in ("C.UTF-8", "C.utf8", "UTF-8")
    )


def locale_is_utf8(env: Mapping[str, str]) -> bool:
    """What the C library would decide: the first of LC_ALL, LC_CTYPE, LANG that is set names
    the character set; unset or C/POSIX means ASCII. A LC_CTYPE that Python's locale coercion
    put there does not count (see `_coerced`)."""
    if _coerced(env):
        return False
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(name)
        if value:
            charset = value.split(".", 1)[1] if "." in value else ""
            charset = charset.split("@", 1)[0].lower().replace("-", "").replace("_", "")
            return charset == "utf8"
    return False


def choose_ascii(mode: str, env: Mapping[str, str]) -> bool:
    """True when the dashboard should draw ASCII: `mode` is the setting; `auto` decides from
    the locale."""
    if mode == "ascii":
        return True
    if mode == "unicode":
        return False
    return not locale_is_utf8(env)


def is_utf8_encoding(encoding: str | None) -> bool:
    """True for the names Python gives UTF-8 (`utf-8`, `UTF8`, `utf_8`)."""
    return (encoding or "").lower().replace("-", "").replace("_", "") == "utf8"


def text_is_ascii(encoding: str | None, env: Mapping[str, str]) -> bool:
    """True when a verb's text for people should be ASCII: the stream's `encoding` is not UTF-8,
    or the locale is not (the dashboard's `auto` rule: Python's own UTF-8 mode under `LANG=C`
    says nothing of the terminal)."""
    return not is_utf8_encoding(encoding) or not locale_is_utf8(env)


ASCII_FALLBACK_ERRORS = "fleet-ascii"


def _fallback(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return to_ascii(err.object[err.start : err.end]), err.end


def ascii_fallback() -> str:
    """The name of an encode error handler that writes what a codec cannot encode as its ASCII
    fallback (`to_ascii`: a glyph's one-cell stand-in, else `?`); registered on first call."""
    try:
        codecs.lookup_error(ASCII_FALLBACK_ERRORS)
    except LookupError:
        codecs.register_error(ASCII_FALLBACK_ERRORS, _fallback)
    return ASCII_FALLBACK_ERRORS
