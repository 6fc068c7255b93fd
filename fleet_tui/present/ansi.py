"""A sanitized line of pane output (text plus canonical SGR) as a Rich `Text`: `ansi_to_text`.

The sanitizing itself is core.sanitize (no Rich there); this draws its result with those styles,
never a link, never an escape sequence (a line not in sanitized form is sanitized first).
"""

from __future__ import annotations

from typing import cast

from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

from fleet_tui.core.sanitize import SGR_CACHE_MAX, SGR_IN_LINE, needs_sanitizing, sanitize_stream

# Style state: 10 attributes (True or None) then foreground and background (Color or None).
_ATTRS = (
    "bold", "dim", "italic", "underline", "blink", "blink2", "reverse", "conceal", "strike",
    "underline2",
)  # fmt: skip
_ATTR_ON = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 21: 9}
_ATTR_OFF = {22: (0, 1), 23: (2,), 24: (3, 9), 25: (4, 5), 26: (5,), 27: (6,), 28: (7,), 29: (8,)}
_State = tuple[object, ...]
_PLAIN_STATE: _State = (None,) * (len(_ATTRS) + 2)
_FG, _BG = len(_ATTRS), len(_ATTRS) + 1
_STATE_CACHE: dict[tuple[_State, str], _State] = {}
_STYLE_CACHE: dict[_State, Style | None] = {}


def _apply_sgr(state: _State, params: str) -> _State:
    cached = _STATE_CACHE.get((state, params))
    if cached is not None:
        return cached
    new = list(state)
    nums = [int(p) if p.isdigit() and len(p) <= 9 else 0 for p in params.split(";")]
    i, n = 0, len(nums)
    while i < n:
        code = nums[i]
        i += 1
        if code == 0:
            new = list(_PLAIN_STATE)
        elif code in _ATTR_ON:
            new[_ATTR_ON[code]] = True
        elif code in _ATTR_OFF:
            for a in _ATTR_OFF[code]:
                new[a] = None
        elif 30 <= code <= 37 or 90 <= code <= 97:
            new[_FG] = Color.from_ansi(code - 30 if code < 90 else code - 82)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            new[_BG] = Color.from_ansi(code - 40 if code < 100 else code - 92)
        elif code in (39, 49):
            new[_FG if code == 39 else _BG] = None
        elif code in (38, 48) and i < n:
            mode = nums[i]
            color: Color | None = None
            if mode == 5 and i + 1 < n:
                color = Color.from_ansi(min(nums[i + 1], 255))
                i += 2
            elif mode == 2 and i + 3 < n:
                r, g, b = (min(v, 255) for v in nums[i + 1 : i + 4])
                color = Color.from_rgb(r, g, b)
                i += 4
            else:
                i = n
            if color is not None:
                new[_FG if code == 38 else _BG] = color
    result = tuple(new)
    if len(_STATE_CACHE) >= SGR_CACHE_MAX:
        _STATE_CACHE.clear()
    _STATE_CACHE[(state, params)] = result
    return result


def _style(state: _State) -> Style | None:
    try:
        return _STYLE_CACHE[state]
    except KeyError:
        pass
    if state == _PLAIN_STATE:
        style = None
    else:
        on = cast("tuple[bool | None, ...]", state[: len(_ATTRS)])
        style = Style(
            color=cast("Color | None", state[_FG]),
            bgcolor=cast("Color | None", state[_BG]),
            bold=on[0],
            dim=on[1],
            italic=on[2],
            underline=on[3],
            blink=on[4],
            blink2=on[5],
            reverse=on[6],
            conceal=on[7],
            strike=on[8],
            underline2=on[9],
        )
    if len(_STYLE_CACHE) >= SGR_CACHE_MAX:
        _STYLE_CACHE.clear()
    _STYLE_CACHE[state] = style
    return style


def ansi_to_text(line: str) -> Text:
    """A sanitized line (text plus SGR) as a Rich Text with those styles; no links, no ESC.

    A line that is not in sanitized form is sanitized first, so this never lets a sequence through.
    Each call starts unstyled (styles do not carry over from the previous line).
    """
    if needs_sanitizing(line):
        line = sanitize_stream(line)
    if "\x1b" not in line:
        return Text(line)
    parts: list[str] = []
    spans: list[Span] = []
    state = _PLAIN_STATE
    pos = offset = 0
    for m in SGR_IN_LINE.finditer(line):
        start = m.start()
        if start > pos:
            parts.append(line[pos:start])
            end = offset + start - pos
            style = _style(state)
            if style is not None:
                spans.append(Span(offset, end, style))
            offset = end
        state = _apply_sgr(state, m.group(1))
        pos = m.end()
    if pos < len(line):
        parts.append(line[pos:])
        style = _style(state)
        if style is not None:
            spans.append(Span(offset, offset + len(line) - pos, style))
    return Text("".join(parts), spans=spans)
