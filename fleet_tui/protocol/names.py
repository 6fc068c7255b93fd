"""The name rules every side checks: agents, tenants, hosts, sockets, ledger rows.

One definition, standard library only: the pydantic models (`fleet_tui.model.records`), the
gateway (which reuses those models), the roster and budgets readers and the statusLine's light
ledger writer (`fleet_tui.protocol.ledger`) all take their patterns from here, so what a host
accepts locally is exactly what the gateway accepts.
"""

from __future__ import annotations

import unicodedata

# Agent names are tmux session names that tmux never rewrites and that are safe as one path
# component.
AGENT_NAME_MAX = 64
AGENT_NAME_CHARS = r"^[A-Za-z0-9_-]+$"  # the roster says "too long" apart from "bad characters"
AGENT_NAME_RE = r"^[A-Za-z0-9_-]{1,64}$"
TENANT_RE = r"^[A-Za-z0-9_.-]{1,128}$"
# A host name as published: letters, digits, `_ . -`, starting with a letter or digit, at most
# 253 characters (a DNS name's length). No spaces, no invisible characters, no path separators.
HOST_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$"
SOCKET_NAME_RE = r"^[A-Za-z0-9_.-]+$"  # a tmux socket's file name (tmux -L)
# An account or window name of the ledgers (UsageSample, SpendRecord): 1-255, no control chars.
LEDGER_TEXT_RE = r"^[^\x00-\x1f\x7f]{1,255}$"
# Characters that make a name look like another: Cc controls (ESC, BEL, NUL, DEL, C1), Cf format
# (zero-width, bidi), Cs surrogates, Zl/Zp line breaks; U+FFFD stands for a lone surrogate made
# valid. An account or window name becomes a row: one carrying them would show as a second,
# identical-looking row ("weekly" twice).
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_invisible(c: str) -> bool:
    """True for a character that shows as nothing (or as something else) on a terminal."""
    return unicodedata.category(c) in INVISIBLE_CATEGORIES or c == "\ufffd"


def row_name_problem(v: str) -> str | None:
    """Why `v` cannot name a row (an account, a usage window), or None when it can."""
    if not v or v != v.strip() or any(is_invisible(c) for c in v):
        return f"{ascii(v)[:80]} carries control or invisible characters"
    return None
