"""The sanitizer: untrusted agent text in, text that is safe for the operator's terminal out.

Every string that comes from an agent or a pane (session names, pane titles, command names,
heartbeat `detail`, paths) passes through here before it is printed or given to a widget.
Neither Rich nor Textual filters escape sequences (TEXTUAL-FACTS.md).

- `clean_text`: one plain string (a cell, a title): every escape sequence and control removed.
- `sanitize_stream` / `StreamSanitizer.feed`: pane output (bytes, possibly in chunks): only text,
  newline, tab and the SGR styling we keep (rebuilt in canonical form) survive.
- `needs_sanitizing` / `SGR_IN_LINE`: what present.ansi (a sanitized line to a Rich `Text`)
  checks a line for, and the SGR it reads its styles from.
"""

from __future__ import annotations

import codecs
import re

from fleet_tui.core.lazyre import lazy_compile

# The patterns are compiled on first use (core/lazyre.py): `ps` and the hooks import this module
# and rarely need them; the stream sanitizer's alone take milliseconds to compile.

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC strings and tmux's/screen's
# window title (`ESC k` ... ST) to BEL or ST or the end, two-byte escapes, and a lone ESC. C1
# equivalents (0x9B CSI, 0x9D OSC, 0x90 DCS...).
_ESCAPES = lazy_compile(
    globals(),
    "_ESCAPES",
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?          # CSI, possibly cut short
    | (?:\x1b[\]PX^_k]|[\x90\x98\x9d\x9e\x9f])  # OSC, DCS, SOS, PM, APC, tmux's title ...
      .*?(?:\x07|\x1b\\|\x9c|$)                 # ... up to BEL, ST, or the end
    | \x1b[ -/]*[0-~]?                         # other escapes (ESC c, ESC 7, charset selects)
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 but tab/newline, DEL, C1; bidi overrides; zero-width joiners and emoji modifiers that make
# Rich and tmux disagree about widths.
_CONTROLS = lazy_compile(
    globals(),
    "_CONTROLS",
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufe0e\ufe0f\ufeff"
    "\U0001f3fb-\U0001f3ff\ufff9-\ufffb]",
)

# Lone surrogates: bytes that were not UTF-8 (argv, file names, tmux output read with
# surrogateescape). They cannot be written to a UTF-8 terminal: shown as U+FFFD.
_SURROGATES = lazy_compile(globals(), "_SURROGATES", "[\ud800-\udfff]")

_C1_INTRO = lazy_compile(globals(), "_C1_INTRO", "[\x90-\x9f]")


def decode(data: bytes) -> str:
    """Bytes from a pane to text; invalid UTF-8 becomes U+FFFD, never raw bytes."""
    return data.decode("utf-8", "replace")


def clean_text(
    text: str | bytes | None, *, max_len: int | None = None, one_line: bool = True
) -> str:
    """Plain, printable text: no escape sequence, no control character, no markup meaning.

    `one_line` folds newlines and tabs to spaces (for table cells and headers).
    """
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = decode(text)
    out = _ESCAPES.sub("", text) if ("\x1b" in text or _C1_INTRO.search(text)) else text
    out = _CONTROLS.sub("", out)
    if not out.isascii():
        out = _SURROGATES.sub("\ufffd", out)
    if one_line:
        out = out.replace("\t", " ").replace("\n", " ")
    if max_len is not None and len(out) > max_len:
        out = out[: max_len - 1] + "…" if max_len > 0 else ""
    return out


# --- The stream sanitizer: pane bytes in, text plus the SGR styling we keep out. -----------------
#
# One regex finds everything that is not plain text. Its first character class lets `re` skip plain
# text at C speed; the alternatives after it (chosen by a look-behind on that first character) are:
#   1. SGR `ESC [ params m` (params: digits, `;`, `:`, at most _SGR_MAX chars): re-emitted in a
#      canonical form built from the parsed numbers, never copied;
#   2. any other CSI (ESC [ or 8-bit 0x9B), possibly cut short: dropped;
#   3. OSC, DCS, SOS, PM, APC (ESC ] P X ^ _ or their C1 forms): dropped with their payload, up to
#      BEL, ST (ESC \ or 0x9C), or an ESC / CAN / SUB that aborts the string as in a terminal;
#   4. any other escape (ESC c, ESC 7, charset selects ESC ( B ...) and a lone ESC: dropped;
#   5. runs of the other control and width-troublemaker characters: dropped.
# A match that reaches the end of a chunk while still open (a CSI without its final byte, a string
# without its terminator, ESC and intermediates) is kept for the next chunk, in a bounded canonical
# form (see _carry), so a sequence split across chunks behaves exactly like an unsplit one.

_SGR_MAX = 128  # longest SGR parameter string kept; a longer one is dropped like any other CSI
_C1_INTROS = "\x90\x98\x9b\x9d\x9e\x9f"  # DCS, SOS, CSI, OSC, PM, APC
_OTHER_CONTROLS = (
    "\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x8f\x91-\x97\x99\x9a\x9c"
    "\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufe0e\ufe0f\ufeff\U0001f3fb-\U0001f3ff\ufff9-\ufffb"
)
_STRING_BODY = "[^\x07\x18\x1a\x1b\x9c]*"
# An SGR already in the canonical form we would rebuild (codes we keep, no leading zeros, colours
# in range, at most _SGR_MAX characters). _canonical_sgr maps it to itself (tested), so the scan
# leaves it in place instead of calling back into Python: coloured output stays fast.
_N255 = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_KEPT_CODE = (
    "(?:[34]8;(?:5;" + _N255 + "|2;" + _N255 + ";" + _N255 + ";" + _N255 + ")"
    "|[0-9]|2[1-9]|3[0-79]|4[0-79]|9[0-7]|10[0-7])"
)
_CANONICAL_PARAMS = "(?:" + _KEPT_CODE + "(?:;" + _KEPT_CODE + ")*)?"
_CANONICAL_SGR = "\\[(?=[0-9;]{0," + str(_SGR_MAX) + "}m)" + _CANONICAL_PARAMS + "m"
_TOKEN = lazy_compile(
    globals(),
    "_TOKEN",
    "[\x1b" + _C1_INTROS + _OTHER_CONTROLS + "]"
    "(?!(?<=\x1b)" + _CANONICAL_SGR + ")"  # a canonical SGR is not a token: it stays as it is
    "(?:(?<=\x1b)\\[([0-9;:]{0," + str(_SGR_MAX) + "})m"  # 1: SGR parameters
    "|(?<=\x1b)\\[[0-?]*[ -/]*([@-~])?"  # 2: CSI final byte
    "|(?<=\x9b)[0-?]*[ -/]*([@-~])?"  # 3: 8-bit CSI final byte
    "|(?:(?<=\x1b)[\\]PX^_k]|(?<=[\x90\x98\x9d\x9e\x9f]))"
    + _STRING_BODY
    + "(\x07|\x1b\\\\|\x9c)?"  # 4: string terminator
    "|(?<=\x1b)[ -/]*([0-~])?"  # 5: escape final byte
    "|(?<=[" + _OTHER_CONTROLS + "])[" + _OTHER_CONTROLS + "]*)",
)
_CANONICAL_SGR_PARAMS = lazy_compile(globals(), "_CANONICAL_SGR_PARAMS", _CANONICAL_PARAMS)  # tests
_SEQ_STARTS = frozenset("\x1b" + _C1_INTROS)
_SGR_PARAMS = lazy_compile(globals(), "_SGR_PARAMS", "[0-9;:]{0," + str(_SGR_MAX) + "}")
_CSI_INTERMEDIATES = frozenset(" !\"#$%&'()*+,-./")

# SGR codes kept as they are: attributes on/off, the 16 colours, default colours.
_SGR_SIMPLE = frozenset(
    {*range(10), *range(21, 30), *range(30, 38), 39, *range(40, 48), 49}
    | {*range(90, 98), *range(100, 108)}
)
_SGR_CACHE: dict[str, str] = {}
SGR_CACHE_MAX = 4096


def _num(s: str) -> int | None:
    """An SGR parameter: empty means 0; anything but digits (a `:` sub-parameter) is invalid."""
    if not s:
        return 0
    return int(s) if s.isdigit() and len(s) <= 9 else None


def _color_args(mode: int | None, args: list[str]) -> str | None:
    """`5;n` or `2;r;g;b` from an extended colour's arguments, or None if malformed."""
    if mode == 5 and args:
        n = _num(args[0])
        return f"5;{n}" if n is not None and n <= 255 else None
    if mode == 2 and len(args) >= 3:
        rgb = [_num(a) for a in args[:3]]
        if all(v is not None and v <= 255 for v in rgb):
            return f"2;{rgb[0]};{rgb[1]};{rgb[2]}"
    return None


def _canonical_sgr(params: str) -> str:
    """The SGR sequence we emit for `ESC [ params m`: only the styling we support, rebuilt."""
    if not params:
        return "\x1b[m"  # reset, as written
    out: list[str] = []
    groups = params.split(";")
    i, n = 0, len(groups)
    while i < n:
        group = groups[i]
        i += 1
        if ":" in group:  # ITU T.416 sub-parameters: 38:2::r:g:b, 38:5:n, 4:3 (curly underline)
            sub = group.split(":")
            code = _num(sub[0])
            if code in (38, 48):
                rest = sub[2:]
                if _num(sub[1]) == 2 and len(rest) >= 4:
                    rest = rest[1:]  # skip the colour-space id
                color = _color_args(_num(sub[1]), rest)
                if color is not None:
                    out.append(f"{code};{color}")
            elif code == 4:
                out.append("24" if _num(sub[1]) == 0 else "4")
            continue  # 58 (underline colour) and anything else with sub-parameters: dropped
        code = _num(group)
        if code in (38, 48, 58):
            mode = _num(groups[i]) if i < n else None
            take = 2 if mode == 5 else 4 if mode == 2 else 1
            color = _color_args(mode, groups[i + 1 : i + take])
            i += take
            if color is not None and code != 58:
                out.append(f"{code};{color}")
        elif code in _SGR_SIMPLE:
            out.append(str(code))
    if sum(len(x) + 1 for x in out) > _SGR_MAX:
        # A rebuild can be longer than what came in (empty groups become "0"): keep it within
        # what the scan keeps, so what we emit passes the scan unchanged. A reset makes all
        # before it moot; past that, the oldest styles go first.
        if "0" in out:
            out = out[len(out) - 1 - out[::-1].index("0") :]
        while out and sum(len(x) + 1 for x in out) - 1 > _SGR_MAX:
            out.pop(0)
    return "\x1b[" + ";".join(out) + "m" if out else ""


def _sgr(params: str) -> str:
    seq = _SGR_CACHE.get(params)
    if seq is None:
        if len(_SGR_CACHE) >= SGR_CACHE_MAX:
            _SGR_CACHE.clear()
        seq = _SGR_CACHE[params] = _canonical_sgr(params)
    return seq


def _carry(tail: str) -> str:
    """A short string that, put before the next chunk, acts exactly like the open `tail` would.

    The payload of an open OSC/DCS/... is dropped anyway, so only the fact that a string is open
    is kept (`ESC ]`); an open CSI keeps its parameters only while it can still become an SGR we
    keep. So what is carried is at most _SGR_MAX + 2 characters, whatever the input.
    """
    first = tail[0]
    second = tail[1:2]
    if first in "\x90\x98\x9d\x9e\x9f" or (first == "\x1b" and second and second in "]PX^_k"):
        return "\x1b]"
    if first == "\x9b" or (first == "\x1b" and second == "["):
        body = tail[1:] if first == "\x9b" else tail[2:]
        if first == "\x1b" and _SGR_PARAMS.fullmatch(body):
            return tail  # may still become an SGR
        # No longer an SGR: keep only the phase (parameters or intermediates) the CSI is in.
        return "\x1b[ " if _CSI_INTERMEDIATES.intersection(body) else "\x1b[<"
    return "\x1b " if len(tail) > 1 else "\x1b"  # ESC, or ESC with intermediates


class StreamSanitizer:
    """Pane bytes in, safe text out, chunk by chunk.

    Only printable text, `\\n`, `\\t` and canonical SGR sequences (`ESC [ digits;... m`) come out.
    An escape sequence or UTF-8 character split across two chunks is held back (a bounded amount,
    see _carry) and completed by the next `feed`; `flush` ends the stream and drops what is open.
    Feeding a stream in any chunking gives the same text as `sanitize_stream` on all of it.
    """

    __slots__ = ("_decoder", "_pending", "_tail")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._tail: str | None = None

    @property
    def buffered(self) -> int:
        """Characters (and undecoded bytes) held for the next chunk; never more than ~130."""
        return len(self._pending) + len(self._decoder.getstate()[0])

    def feed(self, data: bytes) -> str:
        return self._process(self._decoder.decode(data), final=False)

    def flush(self) -> str:
        """End of stream: an incomplete UTF-8 character becomes U+FFFD, an open sequence is dropped."""
        out = self._process(self._decoder.decode(b"", final=True), final=True)
        self._decoder.reset()
        return out

    def _process(self, text: str, *, final: bool) -> str:
        if self._pending:
            text = self._pending + text
            self._pending = ""
        self._tail = None
        out = _TOKEN.sub(self._replace, text)
        if self._tail is not None and not final:
            self._pending = _carry(self._tail)
        return out

    def _replace(self, m: re.Match[str]) -> str:
        params = m.group(1)
        if params is not None:
            try:
                return _SGR_CACHE[params]
            except KeyError:
                return _sgr(params)
        if m.end() == m.endpos:  # the last match: is it a sequence still open?
            seq = m.group()
            if seq[0] in _SEQ_STARTS and m.lastindex is None:
                self._tail = seq
        return ""


def sanitize_stream(data: bytes | str) -> str:
    """Untrusted pane output to text in which only printable text, `\\n`, `\\t` and SGR survive.

    Bytes are decoded as UTF-8 (invalid bytes become U+FFFD). Every other escape sequence (OSC
    titles, clipboard and hyperlinks, DCS/APC/PM/SOS, cursor and screen controls, report
    requests, `ESC c`, charset selects, 8-bit C1 forms), every C0 control but tab and newline
    (`\\r` included: `\\r\\n` becomes `\\n`), DEL, C1, bidi overrides and zero-width characters
    are removed; an open sequence at the end is dropped. SGR is re-emitted in canonical form with
    only the styles we support (attributes, 16/256/truecolour foreground and background).
    """
    sanitizer = StreamSanitizer()
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return sanitizer._process(text, final=True)


# --- What a sanitized line is (present.ansi turns one into Rich Text). -----------------------------
# Not Text.from_ansi: it keeps OSC 8 links as link styles and passes ESC c, lone ESC, C1 and NUL
# through (TEXTUAL-FACTS.md). Here a line is text plus canonical SGR only; anything else found in it
# sends it through sanitize_stream first. The styles built here never carry a link.

SGR_IN_LINE = re.compile("\x1b\\[([0-9;]*)m")
# Anything a sanitized line cannot contain: an ESC that does not start a canonical SGR (no `:`),
# or another control.
_NOT_SANITIZED = lazy_compile(
    globals(),
    "_NOT_SANITIZED",
    "\x1b(?!\\[[0-9;]{0," + str(_SGR_MAX) + "}m)|[" + _C1_INTROS + _OTHER_CONTROLS + "]",
)


def needs_sanitizing(line: str) -> bool:
    """True if `line` is not in sanitized form (text, newline, tab and canonical SGR only)."""
    return _NOT_SANITIZED.search(line) is not None
