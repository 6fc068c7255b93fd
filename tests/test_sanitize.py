"""The one sanitizer (invariant 5, TEXTUAL-FACTS.md "Hostile text")."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fleet_tui.core.sanitize import clean_text, decode

C0 = {chr(c) for c in range(0x20)}
DEL_C1 = {chr(c) for c in range(0x7F, 0xA0)}
ESC = "\x1b"

# Text rich in what terminals interpret: escape introducers, C0/C1, bidi overrides, plus letters.
hostile_chars = st.sampled_from(
    [
        *map(chr, range(0x20)),
        *map(chr, range(0x7F, 0xA0)),
        *("[", "]", ";", "\\", "P", "c", "a", " "),
        *("\u202e", "\u200b", "\ufeff", "é", "中", "\U0001f600"),
    ]
)
hostile_text = st.one_of(st.text(), st.text(alphabet=hostile_chars, max_size=80))
any_input = st.one_of(hostile_text, st.binary(max_size=200))

SETTINGS = settings(max_examples=400, deadline=None)


@SETTINGS
@given(any_input)
@example("\x1b]52;c;ZXZpbA==\x07")
@example(b"\x1b]52;c;ZXZpbA==\x1b\\")
@example(b"\x9b31m\xc2\x9b31m")
@example("\x1b")
def test_one_line_output_has_no_control_characters(data: str | bytes) -> None:
    out = clean_text(data)
    assert isinstance(out, str)
    assert not set(out) & C0, repr(out)
    assert not set(out) & DEL_C1, repr(out)


@SETTINGS
@given(any_input)
def test_multi_line_output_keeps_only_tab_and_newline(data: str | bytes) -> None:
    out = clean_text(data, one_line=False)
    assert ESC not in out
    assert not set(out) & (C0 - {"\t", "\n"}), repr(out)
    assert not set(out) & DEL_C1, repr(out)


@SETTINGS
@given(any_input, st.integers(min_value=0, max_value=100), st.booleans())
def test_max_len_is_respected(data: str | bytes, max_len: int, one_line: bool) -> None:
    out = clean_text(data, max_len=max_len, one_line=one_line)
    assert len(out) <= max_len
    assert ESC not in out


@SETTINGS
@given(st.text(alphabet=string.printable.strip("\t\n\r\x0b\x0c") + " "))
def test_printable_ascii_passes_unchanged(text: str) -> None:
    assert clean_text(text) == text
    assert clean_text(text.encode()) == text
    assert clean_text(text, one_line=False) == text
    assert clean_text(text, max_len=len(text)) == text


@SETTINGS
@given(st.text(alphabet=string.ascii_letters, min_size=1, max_size=50), st.integers(2, 60))
def test_cut_text_is_marked_with_an_ellipsis(text: str, max_len: int) -> None:
    out = clean_text(text, max_len=max_len)
    if len(text) <= max_len:
        assert out == text
    else:
        assert len(out) == max_len
        assert out == text[: max_len - 1] + "…"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]52;c;ZXZpbA==\x07after", "after"),  # OSC 52 clipboard write, BEL-terminated
        ("\x1b]52;c;ZXZpbA==\x1b\\after", "after"),  # ... ST-terminated
        ("\x1b]0;new window title\x07x", "x"),
        ("\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8 link
        ("\x1bcreset", "reset"),  # full reset ESC c
        ("\x1b[2J\x1b[H\x1b[6nclear", "clear"),  # clear, home, cursor report request
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1bP+q544e\x1b\\dcs", "dcs"),
        ("\x9b31mc1csi", "c1csi"),  # 8-bit CSI
        ("\x9d0;title\x9cz", "z"),  # 8-bit OSC ... ST
        ("a\x07b\x00c\x7fd\x85e", "abcde"),
        ("tab\there\nnext", "tab here next"),
        ("\u202eevil\u202c", "evil"),  # bidi override
        ("[link=http://evil.example]click[/link]", "[link=http://evil.example]click[/link]"),
        ("plain text, 100% fine: [ok] {x}", "plain text, 100% fine: [ok] {x}"),
        ("naïve 中文", "naïve 中文"),
        ("cut at end \x1b[", "cut at end "),
        ("cut osc \x1b]52;c;ZXZp", "cut osc "),
    ],
)
def test_hostile_sequences_are_removed_with_their_payload(raw: str, shown: str) -> None:
    assert clean_text(raw) == shown


def test_multi_line_keeps_newlines_and_tabs() -> None:
    assert clean_text("a\tb\nc\x1b[2Jd", one_line=False) == "a\tb\ncd"


def test_none_is_empty() -> None:
    assert clean_text(None) == ""


def test_invalid_utf8_becomes_replacement_characters_never_raw_bytes() -> None:
    assert decode(b"ok\xff\x9b") == "ok\ufffd\ufffd"
    assert clean_text(b"ok\xff\x9b2J") == "ok\ufffd\ufffd2J"


def test_bytes_that_were_not_utf8_become_replacement_characters() -> None:
    # argv, file names and tmux output arrive with undecodable bytes as lone surrogates:
    # a UTF-8 terminal cannot take them (and Python may write them back as raw bytes)
    assert clean_text("r\udcffdir/\udc80x") == "r\ufffddir/\ufffdx"
    assert clean_text("r\udcffdir").encode("utf-8") == "r\ufffddir".encode()
