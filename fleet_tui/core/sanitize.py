"""The sanitizer: untrusted agent text in, text that is safe for the operator's terminal out.

Every string that comes from an agent or a pane (session names, pane titles, command names,
heartbeat `detail`, paths) passes through here before it is printed or given to a widget.
Neither Rich nor Textual filters escape sequences (TEXTUAL-FACTS.md).
"""

from __future__ import annotations

import re

# ESC-introduced sequences: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC strings (to BEL or ST or
# the end), two-byte escapes, and a lone ESC. C1 equivalents (0x9B CSI, 0x9D OSC, 0x90 DCS...).
_ESCAPES = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?          # CSI, possibly cut short
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])  # OSC, DCS, SOS, PM, APC ...
      .*?(?:\x07|\x1b\\|\x9c|$)                 # ... up to BEL, ST, or the end
    | \x1b[ -/]*[0-~]?                         # other escapes (ESC c, ESC 7, charset selects)
    """,
    re.VERBOSE | re.DOTALL,
)
# C0 but tab/newline, DEL, C1; bidi overrides; zero-width joiners and emoji modifiers that make
# Rich and tmux disagree about widths.
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufe0e\ufe0f\ufeff"
    "\U0001f3fb-\U0001f3ff\ufff9-\ufffb]"
)


_C1_INTRO = re.compile("[\x90-\x9f]")


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
    if one_line:
        out = out.replace("\t", " ").replace("\n", " ")
    if max_len is not None and len(out) > max_len:
        out = out[: max_len - 1] + "…" if max_len > 0 else ""
    return out
