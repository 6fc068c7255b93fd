"""The stream sanitizer: pane bytes in, text plus kept SGR out (invariant 5, TEXTUAL-FACTS.md)."""

from __future__ import annotations

import io
import re
import string

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style
from rich.text import Text

from fleet_tui.core.sanitize import (
    _CANONICAL_SGR_PARAMS,
    _SGR_MAX,
    StreamSanitizer,
    _canonical_sgr,
    sanitize_stream,
)
from fleet_tui.present.ansi import ansi_to_text

SETTINGS = settings(max_examples=400, deadline=None)

SGR = re.compile("\x1b\\[[0-9;]*m")
# What may never reach the terminal outside a kept SGR: C0 but tab/newline (ESC included), DEL,
# C1, bidi overrides/isolates, zero-width and other width troublemakers.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufe0e\ufe0f\ufeff"
    "\U0001f3fb-\U0001f3ff\ufff9-\ufffb]"
)

HOSTILE = [
    "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07",  # OSC 52 clipboard write, BEL
    "\x1b]52;c;ZXZpbA==\x1b\\",  # OSC 52, ST
    "\x1b]0;pwned title\x1b\\",  # window title
    "\x1b]2;title\x07",
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",  # hyperlink
    "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07",
    "\x1bPq#0;2;0;0;0#1!6~\x1b\\",  # DCS (sixel)
    "\x1bP+q544e\x1b\\",  # DCS request (XTGETTCAP)
    "\x1b_Gf=24;AAAA\x1b\\",  # APC (kitty graphics)
    "\x1b^pm\x1b\\",
    "\x1bXsos\x1b\\",
    "\x1b[6n",  # cursor position report request
    "\x1b[c",  # device attributes request
    "\x1b[>0q",  # XTVERSION
    "\x1b[?1049h",  # alternate screen
    "\x1b[2J",
    "\x1b[H",
    "\x1b[10;20H",
    "\x1b[200~",  # bracketed paste markers
    "\x1b[201~",
    "\x1b[?2004h",
    "\x1bc",  # full reset
    "\x1b7",
    "\x1b(0",  # charset select
    "\x1b#8",
    "\x9b2J",  # 8-bit CSI
    "\x9d0;x\x9c",  # 8-bit OSC ... ST
    "\x90dcs\x9c",
    "\x9f",
    "\x00",
    "\x07",
    "\x08",
    "\r",
    "\r\n",
    "\x7f",
    "\x85",
    "\u202e",
    "\u2066",
    "\u200d",
    "\ufeff",
    "\x1b",  # lone ESC
    "\x1b]",  # unterminated OSC
    "\x1b[",
    "\x1b[38;5",
    "\x18",
    "\x1a",
    # styling we keep (or partly keep)
    "\x1b[31m",
    "\x1b[0m",
    "\x1b[m",
    "\x1b[1;4;38;5;208m",
    "\x1b[48;2;10;20;30m",
    "\x1b[38:2::1:2:3m",
    "\x1b[4:3m",
    "\x1b[58;5;4m",
    "\x1b[99;1000000000000m",
    "\x1b[" + "1;" * 100 + "m",
]
TEXT_PIECES = ["hello", " ", "\n", "\t", "é", "中文", "\U0001f600", "m", "[", "]", "\\", ";", "0"]

piece = st.one_of(
    st.sampled_from(HOSTILE).map(lambda s: s.encode("utf-8")),
    st.sampled_from(HOSTILE).map(lambda s: s.encode("latin-1", "replace")),  # raw 8-bit C1
    st.sampled_from(TEXT_PIECES).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=8),
)
hostile_stream = st.lists(piece, max_size=40).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=400), hostile_stream)


def assert_safe(out: str) -> None:
    assert isinstance(out, str)
    rest = SGR.sub("", out)
    bad = FORBIDDEN.search(rest)
    assert bad is None, f"{bad.group()!r} in {out!r}"
    # Every ESC starts a well-formed SGR.
    for i in (i for i, c in enumerate(out) if c == "\x1b"):
        assert SGR.match(out, i), f"ESC at {i} does not start an SGR: {out!r}"


def feed_chunks(data: bytes, cuts: list[int]) -> str:
    san = StreamSanitizer()
    points = sorted({min(c, len(data)) for c in cuts})
    out, start = [], 0
    for p in [*points, len(data)]:
        out.append(san.feed(data[start:p]))
        start = p
    out.append(san.flush())
    return "".join(out)


# --- output safety --------------------------------------------------------------------------------


@SETTINGS
@given(any_bytes)
@example(b"\x1b]52;c;ZXZpbA==\x07")
@example(b"\x9b31m\xc2\x9b31m")
@example(b"text\x1b")
@example("\x9d0;x\x9c\x9b2J".encode())
def test_one_shot_output_is_safe(data: bytes) -> None:
    assert_safe(sanitize_stream(data))
    assert_safe(sanitize_stream(data.decode("utf-8", "replace")))


@SETTINGS
@given(st.text(alphabet=st.sampled_from([*map(chr, range(0xA0)), "\u202e", "é"]), max_size=200))
def test_any_text_is_safe(text: str) -> None:
    assert_safe(sanitize_stream(text))


@SETTINGS
@given(any_bytes, st.lists(st.integers(min_value=0, max_value=450), max_size=12))
def test_chunked_feeding_is_safe_and_equals_one_shot(data: bytes, cuts: list[int]) -> None:
    one_shot = sanitize_stream(data)
    chunked = feed_chunks(data, cuts)
    assert_safe(chunked)
    assert chunked == one_shot


@SETTINGS
@given(any_bytes)
def test_byte_by_byte_equals_one_shot(data: bytes) -> None:
    assert feed_chunks(data, list(range(len(data)))) == sanitize_stream(data)


@SETTINGS
@given(any_bytes)
def test_idempotent(data: bytes) -> None:
    once = sanitize_stream(data)
    assert sanitize_stream(once) == once


@SETTINGS
@given(any_bytes)
def test_the_str_and_bytes_forms_agree(data: bytes) -> None:
    assert sanitize_stream(data) == sanitize_stream(data.decode("utf-8", "replace"))


# --- what is kept ---------------------------------------------------------------------------------

PRINTABLE = string.printable.strip("\t\n\r\x0b\x0c") + " \t\n"


@SETTINGS
@given(st.text(alphabet=PRINTABLE), st.lists(st.integers(0, 200), max_size=6))
def test_printable_ascii_passes_unchanged(text: str, cuts: list[int]) -> None:
    assert sanitize_stream(text) == text
    assert sanitize_stream(text.encode()) == text
    assert feed_chunks(text.encode(), cuts) == text


@SETTINGS
@given(st.text(alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0x2000)))
def test_printable_unicode_passes_unchanged(text: str) -> None:
    text = re.sub("[\u200b-\u200f]", "", text)
    assert sanitize_stream(text.encode()) == text


def test_cr_lf_becomes_lf_and_a_lone_cr_is_removed() -> None:
    assert sanitize_stream(b"a\r\nb\rc\n") == "a\nbc\n"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert sanitize_stream(b"a\xffb\xc3") == "a\ufffdb\ufffd"
    assert feed_chunks(b"a\xc3\xa9b", [2]) == "aéb"  # a character split across chunks


def test_flush_turns_an_incomplete_utf8_tail_into_a_replacement_character() -> None:
    san = StreamSanitizer()
    assert san.feed(b"ok\xe4\xb8") == "ok"
    assert san.flush() == "\ufffd"


def test_hostile_sequences_are_removed_whole() -> None:
    cases = {
        b"a\x1b]52;c;ZXZpbA==\x07b": "ab",
        b"a\x1b]0;title\x1b\\b": "ab",
        b"\x1b]8;;http://evil\x1b\\text\x1b]8;;\x1b\\": "text",
        b"a\x1bP+q544e\x1b\\b": "ab",
        b"a\x1b[6nb\x1b[?1049hc\x1b[2Jd\x1b[200~e\x1b[201~": "abcde",
        b"a\x1bcb\x1b(Bc\x1b7d": "abcd",
        "a\x9b2Jb\x9d0;x\x9cc".encode(): "abc",
        b"a\x00b\x7fc\x1b": "abc",
        b"a\x1b]0;never terminated": "a",
        b"a\x1bkevil title\x1b\\b": "ab",  # tmux's/screen's window title: payload dropped
        "a\u202eb\u2066c\u200dd".encode(): "abcd",
    }
    for data, expected in cases.items():
        assert sanitize_stream(data) == expected, data


def test_an_escape_aborts_an_open_string_like_a_terminal() -> None:
    # ESC inside an OSC ends it; the SGR that follows is kept, the OSC payload is not.
    assert sanitize_stream(b"\x1b]0;title\x1b[31mred") == "\x1b[31mred"


def test_sgr_is_rebuilt_in_canonical_form() -> None:
    cases = {
        "\x1b[31mred\x1b[0m": "\x1b[31mred\x1b[0m",
        "\x1b[mx": "\x1b[mx",
        "\x1b[0;mx": "\x1b[0;0mx",
        "\x1b[01;004mx": "\x1b[1;4mx",
        "\x1b[38;5;208mx": "\x1b[38;5;208mx",
        "\x1b[48;2;1;2;3mx": "\x1b[48;2;1;2;3mx",
        "\x1b[38:2::1:2:3mx": "\x1b[38;2;1;2;3mx",
        "\x1b[38:2:1:2:3mx": "\x1b[38;2;1;2;3mx",
        "\x1b[38:5:9mx": "\x1b[38;5;9mx",
        "\x1b[4:3mx\x1b[4:0m": "\x1b[4mx\x1b[24m",
        "\x1b[58;5;4;1mx": "\x1b[1mx",  # underline colour dropped, its arguments consumed
        "\x1b[58:2::1:2:3mx": "x",
        "\x1b[38;5;300;1mx": "\x1b[1mx",  # out of range colour dropped
        "\x1b[53;73;1000000000000mx": "x",  # unsupported codes dropped
        "\x1b[" + "1;" * 200 + "mx": "x",  # too long to be a style we keep
    }
    for raw, expected in cases.items():
        assert sanitize_stream(raw) == expected, raw
        assert sanitize_stream(raw.encode()) == expected, raw


# SGR parameter strings: codes we keep and do not keep, leading zeros, colours in and out of range.
sgr_code = st.one_of(
    st.integers(0, 120).map(str),
    st.sampled_from(["", "00", "01", "038", "256", "999999999999"]),
    st.tuples(st.sampled_from(["38", "48", "58"]), st.integers(0, 300)).map(
        lambda t: f"{t[0]};5;{t[1]}"
    ),
    st.tuples(
        st.sampled_from(["38", "48"]), st.lists(st.integers(0, 300), min_size=3, max_size=3)
    ).map(lambda t: f"{t[0]};2;" + ";".join(map(str, t[1]))),
    st.sampled_from(["38:5:1", "38:2::1:2:3", "4:3", "38;5", "38;2;1", "38;9"]),
)
sgr_params = st.lists(sgr_code, max_size=12).map(";".join)


@SETTINGS
@given(sgr_params)
@example(";" * 100)  # empty groups rebuild as "0": longer than what came in
@example(
    "0;0;38;2;0;0;10;38;2;0;100;100;38:2::1:2:3;38:2::1:2:3;38;5;0;38;2;0;10;100;38;2;10;10;10;"
    "38;2;10;10;10;38;2;100;100;100;38:2::1:2:3"
)
def test_canonical_sgr_is_a_fixed_point_and_the_fast_path_agrees(params: str) -> None:
    seq = _canonical_sgr(params)
    assert seq == "" or SGR.fullmatch(seq)
    if seq:
        # What we emit is canonical: rebuilding it changes nothing, and the scan leaves it alone.
        assert _canonical_sgr(seq[2:-1]) == seq
        assert sanitize_stream(seq) == seq
    if _CANONICAL_SGR_PARAMS.fullmatch(params) and len(params) <= _SGR_MAX:
        # The scan leaves this SGR in place without rebuilding it: it must be its own rebuild.
        assert seq == f"\x1b[{params}m"
    assert sanitize_stream(f"\x1b[{params}mx") == (seq if len(params) <= _SGR_MAX else "") + "x"


def test_open_strings_are_never_accumulated() -> None:
    san = StreamSanitizer()
    out = [san.feed(b"before\x1b]52;c;")]
    for _ in range(2000):  # 2 MB of clipboard payload, never terminated in a chunk
        out.append(san.feed(b"QUFB" * 256))
        assert san.buffered <= 2
    out.append(san.feed(b"\x07after"))
    out.append(san.flush())
    assert "".join(out) == "beforeafter"


def test_open_csi_is_bounded() -> None:
    san = StreamSanitizer()
    out = [san.feed(b"x\x1b[")]
    for _ in range(1000):
        out.append(san.feed(b"1;" * 500))
        assert san.buffered <= 130
    out.append(san.feed(b"my"))
    assert "".join(out) + san.flush() == "xy"


def test_sequence_split_at_every_point_does_not_leak() -> None:
    data = b"".join(s.encode() for s in HOSTILE)
    expected = sanitize_stream(data)
    assert_safe(expected)
    for cut in range(len(data) + 1):
        assert feed_chunks(data, [cut]) == expected


# --- ansi_to_text ---------------------------------------------------------------------------------


def spans_have_no_link(text_obj: Text) -> None:
    for span in text_obj.spans:
        style = span.style
        assert not isinstance(style, str) or "link" not in style
        if isinstance(style, Style):
            assert style.link is None
            assert not style.meta


@SETTINGS
@given(any_bytes)
def test_ansi_to_text_of_sanitized_lines(data: bytes) -> None:
    for line in sanitize_stream(data).split("\n"):
        text = ansi_to_text(line)
        assert "\x1b" not in text.plain
        assert text.plain == SGR.sub("", line)
        spans_have_no_link(text)


@SETTINGS
@given(any_bytes)
def test_ansi_to_text_of_raw_input_is_still_safe(data: bytes) -> None:
    text = ansi_to_text(data.decode("utf-8", "replace"))
    assert FORBIDDEN.search(text.plain) is None
    spans_have_no_link(text)


def test_ansi_to_text_keeps_colours() -> None:
    text = ansi_to_text(sanitize_stream("\x1b[31mred\x1b[0m plain \x1b[1;38;5;208mor\x1b[22mange"))
    assert text.plain == "red plain orange"
    styles = {text.plain[s.start : s.end]: s.style for s in text.spans}
    assert isinstance(styles["red"], Style)
    assert styles["red"].color is not None and styles["red"].color.number == 1
    assert isinstance(styles["or"], Style) and styles["or"].bold
    assert styles["or"].color is not None and styles["or"].color.number == 208
    assert isinstance(styles["ange"], Style) and not styles["ange"].bold
    assert " plain " not in styles


def test_ansi_to_text_truecolor_and_background() -> None:
    text = ansi_to_text("\x1b[48;2;1;2;3;97mx")
    (span,) = text.spans
    assert isinstance(span.style, Style)
    assert span.style.bgcolor is not None and span.style.bgcolor.triplet == (1, 2, 3)
    assert span.style.color is not None and span.style.color.number == 15


def test_ansi_to_text_fast_path_and_hyperlink() -> None:
    assert ansi_to_text("plain line").spans == []
    link = ansi_to_text("\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\")
    assert link.plain == "click"
    assert link.spans == []


@SETTINGS
@given(any_bytes)
@example(b"\x1b]8;;http://evil\x1b\\text\x1b]8;;\x1b\\\x1b[31mred\x1bc\x9b2J")
def test_rendering_through_rich_emits_only_sgr(data: bytes) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="truecolor", width=80)
    for line in sanitize_stream(data).split("\n"):
        console.print(ansi_to_text(line))
    rendered = buf.getvalue()
    assert "\x1b]" not in rendered
    assert not re.search("[\x80-\x9f]", rendered)
    assert_safe(rendered)
