"""Heartbeat protocol v1 helpers: the message hash that acks carry.

Hash = `sha256:` + hex of the UTF-8 text after normalisation: `\\r\\n` and `\\r` become `\\n`,
trailing whitespace is removed (DESIGN.md).
"""

from __future__ import annotations

import hashlib

MAX_ACKS = 16


def normalise_message(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def message_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(normalise_message(text).encode("utf-8")).hexdigest()


def add_ack(acks: list[str], digest: str) -> list[str]:
    """The last (up to 16) accepted hashes, newest last."""
    return [*[a for a in acks if a != digest], digest][-MAX_ACKS:]
