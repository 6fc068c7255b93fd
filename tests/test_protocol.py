"""Heartbeat protocol v1: the message hash that `acks` carry, and the last-16 ack list."""

from __future__ import annotations

import hashlib

import pytest

from fleet_tui.protocol.acks import MAX_ACKS, add_ack, message_hash, normalise_message


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_hash_is_sha256_of_the_utf8_text() -> None:
    assert message_hash("run the tests") == sha("run the tests")
    assert message_hash("héllo 中文") == sha("héllo 中文")
    assert message_hash("") == sha("")
    assert len(message_hash("x")) == len("sha256:") + 64


@pytest.mark.parametrize(
    "variant",
    [
        "line one\nline two",
        "line one\r\nline two",
        "line one\rline two",
        "line one\r\nline two\r\n",
        "line one\nline two   ",
        "line one\nline two\n\n\t \n",
        "line one\rline two \r\n",
    ],
)
def test_line_endings_and_trailing_whitespace_do_not_change_the_hash(variant: str) -> None:
    assert message_hash(variant) == sha("line one\nline two")


def test_crlf_is_one_newline_not_two() -> None:
    assert normalise_message("a\r\nb") == "a\nb"
    assert normalise_message("a\r\rb") == "a\n\nb"
    assert message_hash("a\r\nb") != message_hash("a\n\nb")


def test_leading_whitespace_and_inner_text_matter() -> None:
    assert message_hash("  hello") != message_hash("hello")
    assert message_hash("hello world") != message_hash("hello  world")
    assert message_hash("Hello") != message_hash("hello")


def test_add_ack_appends_newest_last_without_touching_the_input() -> None:
    acks = [message_hash("a")]
    out = add_ack(acks, message_hash("b"))
    assert out == [message_hash("a"), message_hash("b")]
    assert acks == [message_hash("a")]


def test_add_ack_keeps_only_the_last_16() -> None:
    acks: list[str] = []
    digests = [message_hash(f"message {i}") for i in range(40)]
    for d in digests:
        acks = add_ack(acks, d)
        assert len(acks) <= MAX_ACKS
    assert MAX_ACKS == 16
    assert acks == digests[-16:]


def test_add_ack_of_a_repeated_message_moves_it_to_the_end_once() -> None:
    a, b, c = (message_hash(x) for x in "abc")
    assert add_ack([a, b, c], a) == [b, c, a]
    full = [message_hash(str(i)) for i in range(16)]
    again = add_ack(full, full[0])
    assert len(again) == 16
    assert again[-1] == full[0]
    assert again.count(full[0]) == 1
    assert again[:-1] == full[1:]
