"""Token use, pure: usage records out of parsed transcript and rollout lines, the de-duplication
rule, rate-limit windows, attribution to agents and the `usage --json` v1 report.

Nothing here reads a file or the clock: the scanner (`fleet_tui.sources.usage`) hands parsed JSON
objects in, and the caller passes `now` or a day.

Token fields everywhere are the four of the `usage --json` contract: `input_tokens` (not served
from a cache), `output_tokens`, `cache_creation_tokens` (written to a prompt cache) and
`cache_read_tokens` (served from a prompt cache); `total_tokens` is their sum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

USAGE_SCHEMA = "mosaic.fleet.usage/v1"
UNATTRIBUTED = "(unattributed)"
SYNTHETIC_MODEL = "<synthetic>"
UNKNOWN_MODEL = "(unknown)"
PROJECT_PREFIX = "project:"
"""A bucket's place when a transcript line has no `cwd`: its project folder name, prefixed."""

# (input, output, cache creation, cache read)
Tokens = tuple[int, int, int, int]
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


MAX_COUNT = 10**15
"""More tokens than any record holds (and sums of such stay within SQLite's 64-bit integers)."""


class BadRecord(ValueError):
    """A line that should carry usage but cannot be read (wrong type, missing field)."""


def _count(value: object, field: str, *, required: bool = True) -> int:
    """A token count: a non-negative int (JSON floats with an integral value are accepted)."""
    if type(value) is int and 0 <= value <= MAX_COUNT:  # the common case, first
        return value
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"{field}: not a number ({type(value).__name__})")
    if (
        not 0 <= value <= MAX_COUNT  # also NaN
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise BadRecord(f"{field}: not a token count ({str(value)[:40]})")
    return int(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# -- Claude Code transcripts ---------------------------------------------------------------------


class ClaudeRecord(NamedTuple):
    """The usage of one assistant line of a Claude Code transcript (a tuple: made per line)."""

    key: str  # "<message.id>\0<requestId>", or the message id alone when requestId is missing
    timestamp: str
    model: str
    cwd: str | None
    session: str | None
    tokens: Tokens


def claude_record(obj: object) -> ClaudeRecord | None:
    """The usage of one parsed transcript line; None when the line carries none to count
    (not an assistant message, no usage, model `<synthetic>`, no message id).
    Raises `BadRecord` when usage is there but unreadable."""
    if not isinstance(obj, dict):
        raise BadRecord("not a JSON object")
    msg = obj.get("message")
    if not isinstance(msg, dict):
        return None
    usage = msg.get("usage")
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise BadRecord(f"message.usage: not an object ({type(usage).__name__})")
    model = msg.get("model")
    if model == SYNTHETIC_MODEL:
        return None
    msg_id = _text(msg.get("id"))
    if msg_id is None:
        # Without an id a repeated line cannot be told from a new response: not counted
        # (lines of real responses always carry one).
        raise BadRecord("message.id: missing")
    ts = _text(obj.get("timestamp"))
    if ts is None:
        raise BadRecord("timestamp: missing")
    tokens = (
        _count(usage.get("input_tokens"), "input_tokens"),
        _count(usage.get("output_tokens"), "output_tokens"),
        _count(
            usage.get("cache_creation_input_tokens"),
            "cache_creation_input_tokens",
            required=False,
        ),
        _count(usage.get("cache_read_input_tokens"), "cache_read_input_tokens", required=False),
    )
    req = _text(obj.get("requestId"))
    return ClaudeRecord(
        key=f"{msg_id}\0{req}" if req else msg_id,
        timestamp=ts,
        model=_text(model) or UNKNOWN_MODEL,
        cwd=_text(obj.get("cwd")),
        session=_text(obj.get("sessionId")),
        tokens=tokens,
    )


def larger(new: Tokens, old: Tokens) -> bool:
    """The de-duplication rule: of the lines of one response keep the largest, by output tokens
    first (they grow across the streaming snapshots of one response), then by total."""
    return (new[1], sum(new)) > (old[1], sum(old))


def project_folder(cwd: str) -> str:
    """The folder Claude Code names a project by: the cwd with every character other than a
    letter or digit replaced by '-' ("/w/app" -> "-w-app")."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


# -- Codex rollouts ------------------------------------------------------------------------------

_CODEX_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens")
CodexTotal = tuple[int, int, int, int]  # input (incl. cached), cached input, output, reasoning


def codex_counts(obj: object, field: str) -> CodexTotal | None:
    """A Codex token usage object (`total_token_usage` / `last_token_usage`) as a tuple."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BadRecord(f"{field}: not an object ({type(obj).__name__})")
    inp, cached, out, reasoning = (
        _count(obj.get(k), f"{field}.{k}", required=k != "input_tokens" and k != "output_tokens")
        for k in _CODEX_FIELDS
    )
    return inp, cached, out, reasoning


def codex_event_tokens(
    info: object, prev_total: CodexTotal | None
) -> tuple[Tokens | None, CodexTotal | None]:
    """The token use of one `token_count` event and the cumulative total to remember.

    Use = `info.last_token_usage`; when absent, the difference of `info.total_token_usage`
    from the previous event of the same file. `info` null: nothing (the turn's first event).
    All-zero use: nothing.

    Codex counts `cached_input_tokens` INSIDE `input_tokens`. To keep the contract's fields
    additive (total = input + output + cache creation + cache read, never counting a cached token
    twice), the result reports `input_tokens - cached_input_tokens` as input and
    `cached_input_tokens` as cache read; Codex has no cache-write count (0). Reasoning tokens are
    part of `output_tokens` already.

    Returns (tokens or None, this event's own cumulative total or None when it has none).
    """
    if info is None:
        return None, None
    if not isinstance(info, dict):
        raise BadRecord(f"info: not an object ({type(info).__name__})")
    total = codex_counts(info.get("total_token_usage"), "total_token_usage")
    last = codex_counts(info.get("last_token_usage"), "last_token_usage")
    if last is not None:
        use = last
    elif total is not None:
        base = prev_total or (0, 0, 0, 0)
        use = tuple(max(0, a - b) for a, b in zip(total, base, strict=True))  # type: ignore[assignment]
    else:
        return None, None
    inp, cached, out, _reasoning = use
    cached = min(cached, inp)
    tokens = (inp - cached, out, 0, cached)
    if not any(tokens):
        return None, total
    return tokens, total


def window_name(minutes: int) -> str:
    """A rate-limit window's name from its length: 300 -> "5h", 10080 -> "weekly", else "<n>m"."""
    if minutes == 300:
        return "5h"
    if minutes == 10080:
        return "weekly"
    return f"{minutes}m"


@dataclass(frozen=True, slots=True)
class RateSample:
    """One usage-vs-limit reading of a Codex rollout (before it becomes a `UsageSample`)."""

    observed_at: float  # epoch seconds (the line's timestamp)
    window: str
    window_minutes: int
    used_percent: float
    resets_at: float | None  # epoch seconds


MAX_WINDOW_MINUTES = 366 * 24 * 60
MAX_EPOCH_S = 32503680000.0  # year 3000


def _finite(value: object) -> float | None:
    """A JSON number as a finite float (JSON from Python may carry NaN and Infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value) if not isinstance(value, int) or abs(value) < 2**63 else None
    return number if number is not None and math.isfinite(number) else None


def codex_rate_samples(rate_limits: object, observed_at: float) -> list[RateSample]:
    """The windows of one `rate_limits` object; windows told apart by `window_minutes`, never by
    position. `resets_at` (epoch seconds) or the older `resets_in_seconds` (relative to the
    line). Windows without a number of minutes or a used percentage are left out."""
    if not isinstance(rate_limits, dict):
        return []
    out: list[RateSample] = []
    for value in rate_limits.values():
        if not isinstance(value, dict) or "window_minutes" not in value:
            continue
        minutes = _finite(value.get("window_minutes"))
        used = _finite(value.get("used_percent"))
        if minutes is None or not 0 < minutes <= MAX_WINDOW_MINUTES:
            continue
        if used is None or not 0.0 <= used <= 100.0:
            continue  # usage.jsonl readers reject a percentage outside 0..100
        resets: float | None = None
        r_at = _finite(value.get("resets_at"))
        r_in = _finite(value.get("resets_in_seconds"))
        if r_at is not None and r_at > 0:
            resets = r_at
        elif r_in is not None and r_in >= 0:
            resets = observed_at + r_in
        if resets is not None and not 0 < resets < MAX_EPOCH_S:
            resets = None  # not a date a record can hold
        m = int(minutes)
        out.append(RateSample(observed_at, window_name(m), m, float(used), resets))
    return out


def thin_samples(
    samples: Iterable[RateSample], recorded_minute: Mapping[str, int]
) -> list[RateSample]:
    """At most one sample per window per minute (the newest of that minute), and only minutes
    after the last one already recorded for that window (`recorded_minute`: window -> epoch
    minute). Sorted by time."""
    best: dict[tuple[str, int], RateSample] = {}
    for s in samples:
        minute = int(s.observed_at // 60)
        if minute <= recorded_minute.get(s.window, -1):
            continue
        cur = best.get((s.window, minute))
        if cur is None or s.observed_at >= cur.observed_at:
            best[(s.window, minute)] = s
    return sorted(best.values(), key=lambda s: (s.observed_at, s.window))


# -- attribution ---------------------------------------------------------------------------------


class Attribution:
    """Which agent a usage bucket belongs to, from where it ran.

    A record of a runtime session that a hook adapter saw run in an agent's pane belongs to that
    agent (`agents_by_session`); else to the agent whose pane working directory equals the
    record's cwd; else to the agent whose pane directory is the nearest parent of it (an agent
    that `cd`s into a sub-folder stays its own); else, for a transcript line without a cwd, to
    the agent whose cwd gives the transcript's project folder name; else `(unattributed)`. A cwd
    shared by several agents goes to all their names joined by '+'.
    """

    def __init__(
        self,
        agents_by_cwd: Mapping[str, str],
        agents_by_session: Mapping[str, str] | None = None,
    ) -> None:
        self.by_cwd = {_norm(k): v for k, v in agents_by_cwd.items() if k}
        self.by_project = {project_folder(k): v for k, v in self.by_cwd.items()}
        self.by_session = dict(agents_by_session or {})
        self._cache: dict[tuple[str, str], str] = {}

    def agent(self, cwd: str, session: str = "") -> str:
        key = (cwd, session)
        found = self._cache.get(key)
        if found is None:
            found = self._find(cwd, session)
            self._cache[key] = found
        return found

    def _find(self, cwd: str, session: str) -> str:
        if session and session in self.by_session:
            return self.by_session[session]
        if cwd.startswith(PROJECT_PREFIX):
            return self.by_project.get(cwd[len(PROJECT_PREFIX) :], UNATTRIBUTED)
        if not cwd:
            return UNATTRIBUTED
        path = _norm(cwd)
        while True:
            if path in self.by_cwd:
                return self.by_cwd[path]
            parent = path.rsplit("/", 1)[0]
            if not parent or parent == path:  # never "/" itself: that would claim everything
                return UNATTRIBUTED
            path = parent


def _norm(path: str) -> str:
    return path.rstrip("/") or "/"


def agents_by_cwd(pairs: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """cwd -> agent name from (agent, pane cwd) pairs; agents sharing a cwd are joined by '+'."""
    found: dict[str, list[str]] = {}
    for name, cwd in pairs:
        if cwd:
            found.setdefault(_norm(cwd), []).append(name)
    return {cwd: "+".join(sorted(set(names))) for cwd, names in found.items()}


# -- reports -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """Token use summed over one (local day, runtime, model, cwd, session)."""

    day: str  # YYYY-MM-DD in the local time zone
    runtime: str  # "claude" | "codex"
    model: str
    cwd: str  # a path, "project:<folder>", or ""
    session: str
    tokens: Tokens
    records: int = 0


def _add(acc: dict[str, int], tokens: Tokens) -> None:
    for name, value in zip(TOKEN_FIELDS, tokens, strict=True):
        acc[name] = acc.get(name, 0) + value
    acc["total_tokens"] = acc.get("total_tokens", 0) + sum(tokens)


def _zero() -> dict[str, int]:
    return dict.fromkeys((*TOKEN_FIELDS, "total_tokens"), 0)


def in_range(day: str, since: date | None, until: date | None) -> bool:
    return (since is None or day >= since.isoformat()) and (
        until is None or day <= until.isoformat()
    )


def usage_report(
    buckets: Iterable[Bucket],
    attribution: Attribution,
    *,
    now: datetime,
    since: date | None = None,
    until: date | None = None,
    day_attribution: Callable[[str], Attribution] | None = None,
) -> dict[str, Any]:
    """The `usage --json` v1 document: one entry per local day (oldest first) with its totals,
    `by_model` and `by_agent`; plus fields grown after v1: `generated_at`, `since`, `until`,
    `totals`, `by_runtime` per day. `day_attribution`, when given, gives each day's attribution
    (the panes noted that day), else `attribution` serves every day."""
    days: dict[str, dict[str, Any]] = {}
    totals = _zero()
    of_day: dict[str, Attribution] = {}
    for b in buckets:
        if not in_range(b.day, since, until):
            continue
        if day_attribution is not None:
            attribution = of_day.get(b.day) or of_day.setdefault(b.day, day_attribution(b.day))
        d = days.get(b.day)
        if d is None:
            d = days[b.day] = {"date": b.day, **_zero(), "by_model": {}, "by_agent": {}}
            d["by_runtime"] = {}
        _add(d, b.tokens)
        _add(d["by_model"].setdefault(b.model, _zero()), b.tokens)
        _add(d["by_agent"].setdefault(attribution.agent(b.cwd, b.session), _zero()), b.tokens)
        _add(d["by_runtime"].setdefault(b.runtime, _zero()), b.tokens)
        _add(totals, b.tokens)
    for d in days.values():
        for k in ("by_model", "by_agent", "by_runtime"):
            d[k] = dict(sorted(d[k].items(), key=lambda kv: (-kv[1]["total_tokens"], kv[0])))
    return {
        "schema": USAGE_SCHEMA,
        "generated_at": now.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "totals": totals,
        "days": [days[k] for k in sorted(days)],
    }


def tokens_by_agent(
    buckets: Iterable[Bucket], attribution: Attribution, day: str
) -> dict[str, int]:
    """Total tokens per agent on one local day (what the dashboard shows as "tokens today")."""
    out: dict[str, int] = {}
    for b in buckets:
        if b.day == day:
            name = attribution.agent(b.cwd, b.session)
            out[name] = out.get(name, 0) + sum(b.tokens)
    return out


class TokenCount(int):
    """An agent's tokens today WITHOUT prompt-cache reads (the value: input, output and cache
    writes, what the TOKENS column shows), with the cache reads beside it (`cache_read`).

    Cache reads are cheap and huge (a long session re-reads its context on every turn: often ten
    times the rest), so a total with them reads as a runaway agent. An int, so that it goes
    where a token count goes (the collector checks counts), and the join takes both parts."""

    cache_read: int

    def __new__(cls, value: int, cache_read: int = 0) -> TokenCount:
        obj = super().__new__(cls, value)
        obj.cache_read = cache_read
        return obj

    def __repr__(self) -> str:
        return f"TokenCount({int(self)}, cache_read={self.cache_read})"


def today_by_agent(
    buckets: Iterable[Bucket], attribution: Attribution, day: str
) -> dict[str, TokenCount]:
    """Tokens per agent on one local day, cache reads apart (what the dashboard shows as
    "tokens today": TOKENS without cache reads, the detail both)."""
    rest: dict[str, int] = {}
    reads: dict[str, int] = {}
    for b in buckets:
        if b.day == day:
            name = attribution.agent(b.cwd, b.session)
            rest[name] = rest.get(name, 0) + b.tokens[0] + b.tokens[1] + b.tokens[2]
            reads[name] = reads.get(name, 0) + b.tokens[3]
    return {name: TokenCount(rest[name], reads[name]) for name in rest}


def parse_day(text: str, flag: str) -> date:
    """A YYYY-MM-DD flag value; `BadRecord` (a ValueError) with a one-line reason otherwise."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or ""):
        raise BadRecord(f"{flag}: expected a date YYYY-MM-DD, got '{text}'")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadRecord(f"{flag}: not a valid date '{text}' ({exc})") from None
