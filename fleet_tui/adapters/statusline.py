"""`fleet-tui statusline`: a Claude Code statusLine command.

Reads the statusLine JSON on stdin, records the account's rate-limit windows (`rate_limits`
five_hour and seven_day) as usage samples in `usage.jsonl`, and prints one short line. The
statusLine runs very often: a window is appended only when its used percentage or reset time
changed, or a minute passed since it was last written (a tiny state file remembers).
Standard library only: the samples are built by `protocol.ledger.usage_sample` (the line
`UsageSample` writes, refused where the model would refuse it); readers validate with pydantic.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fleet_tui.adapters.common import (
    cached_identity,
    log_problem,
    parse_payload,
    read_json,
    safe_detail,
    state_dir_for,
)
from fleet_tui.protocol.files import JsonObject, atomic_write
from fleet_tui.protocol.heartbeat import hooks_dir

# statusLine key -> (window name as budgets.yaml names it, minutes)
WINDOWS = {"five_hour": ("5h", 300), "seven_day": ("weekly", 10080)}
REWRITE_AFTER_S = 60.0
FALLBACK_LINE = "fleet-tui"
DEFAULT_ACCOUNT = "claude"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None


def read_windows(payload: JsonObject) -> dict[str, tuple[float, float | None]]:
    """{statusLine key: (used percent, resets_at unix seconds or None)} of the windows present."""
    limits = payload.get("rate_limits")
    found: dict[str, tuple[float, float | None]] = {}
    if not isinstance(limits, dict):
        return found
    for key in WINDOWS:
        window = limits.get(key)
        if not isinstance(window, dict):
            continue
        used = _number(window.get("used_percentage"))
        if used is None:
            used = _number(window.get("used_percent"))
        if used is None or not 0.0 <= used <= 100.0:
            continue  # usage.jsonl readers reject a percentage outside 0..100
        resets = _number(window.get("resets_at"))
        if resets is not None and not 0 < resets < 32503680000:  # year 3000
            resets = None
        found[key] = (used, resets)
    return found


def status_line(
    payload: JsonObject | None,
    agent: str | None,
    windows: dict[str, tuple[float, float | None]],
) -> str:
    """One short, plain line: agent, model, 5h %, 7d %, context %."""
    if payload is None:
        return FALLBACK_LINE
    parts: list[str] = []
    if agent:
        parts.append(safe_detail(agent, 40))
    model = payload.get("model")
    name = model.get("display_name") or model.get("id") if isinstance(model, dict) else model
    if isinstance(name, str) and safe_detail(name, 30):
        parts.append(safe_detail(name, 30))
    for key, label in (("five_hour", "5h"), ("seven_day", "7d")):
        if key in windows:
            parts.append(f"{label} {windows[key][0]:.0f}%")
    ctx = payload.get("context_window")
    used = _number(ctx.get("used_percentage")) if isinstance(ctx, dict) else None
    if used is not None:
        parts.append(f"ctx {used:.0f}%")
    return " · ".join(parts) or FALLBACK_LINE


def _account(state_dir: Path, flag: str | None, budgets: str | None, cache: JsonObject) -> str:
    """`--account`; else the one account of budgets.yaml with runtime claude; else "claude"."""
    if flag:
        return flag
    from fleet_tui.config.paths import budgets_location

    path = budgets_location(budgets).path
    try:
        st = path.stat()
    except OSError:
        return DEFAULT_ACCOUNT
    key = [str(path), st.st_ino, st.st_size, st.st_mtime_ns]
    if cache.get("budgets_key") == key and isinstance(cache.get("account"), str):
        return str(cache["account"])
    account = DEFAULT_ACCOUNT
    try:
        from fleet_tui.adapters.common import MAX_YAML_BYTES
        from fleet_tui.protocol.yamldoc import safe_load_file

        data = safe_load_file(path, MAX_YAML_BYTES)
        accounts = data.get("accounts") if isinstance(data, dict) else None
        claude = [
            a["id"]
            for a in accounts or []
            if isinstance(a, dict) and a.get("runtime") == "claude" and isinstance(a.get("id"), str)
        ]
        if len(claude) == 1:
            account = claude[0]
    except Exception as exc:
        log_problem(state_dir, f"statusline: budgets {path} unreadable ({type(exc).__name__})")
    cache["budgets_key"], cache["account"] = key, account
    return account


def record_windows(
    state_dir: Path,
    windows: dict[str, tuple[float, float | None]],
    *,
    account_flag: str | None,
    budgets: str | None,
    roster: str | None,
    now: float,
) -> int:
    """Append the windows that changed (or were last written over a minute ago); how many."""
    state_path = hooks_dir(state_dir) / "statusline.json"
    cache = read_json(state_path) or {}
    account = _account(state_dir, account_flag, budgets, cache)
    seen = cache.get("windows")
    seen = seen if isinstance(seen, dict) else {}
    due: list[tuple[str, float, float | None]] = []
    for key, (used, resets) in windows.items():
        last = seen.get(f"{account}/{key}")
        if (
            isinstance(last, dict)
            and last.get("used") == used
            and last.get("resets_at") == resets
            and isinstance(last.get("at"), int | float)
            and 0 <= now - last["at"] < REWRITE_AFTER_S
        ):
            continue
        due.append((key, used, resets))
    if due:
        from fleet_tui.protocol.ledger import append_records, usage_path, usage_sample

        tenant, host = cached_identity(state_dir, roster)
        observed = datetime.fromtimestamp(now, UTC)
        samples = [
            usage_sample(
                tenant_id=tenant,
                host=host,
                account=account,
                window=WINDOWS[key][0],
                window_minutes=WINDOWS[key][1],
                used_percent=used,
                resets_at=datetime.fromtimestamp(resets, UTC) if resets is not None else None,
                reset_confidence="provider",
                observed_at=observed,
                source="statusline",
            )
            for key, used, resets in due
        ]
        append_records(usage_path(state_dir), samples)
        for key, used, resets in due:
            seen[f"{account}/{key}"] = {"used": used, "resets_at": resets, "at": now}
    cache["windows"] = seen
    hooks_dir(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(state_path, json.dumps(cache).encode())
    return len(due)


def run_statusline(
    *,
    state_dir: str | None = None,
    roster: str | None = None,
    account: str | None = None,
    budgets: str | None = None,
) -> int:
    """Print one line, whatever the input; record the windows when there are any. Exit 0."""
    where: Path | None = None
    line = FALLBACK_LINE
    try:
        where = state_dir_for(state_dir)
        raw = sys.stdin.buffer.read(1024 * 1024) if sys.stdin and not sys.stdin.isatty() else b""
        payload = parse_payload(raw)
        windows = read_windows(payload) if payload else {}
        agent = None
        if payload is not None and os.environ.get("TMUX_PANE"):
            from fleet_tui.adapters.pane import agent_from_tmux

            agent = agent_from_tmux(os.environ, where)
        line = status_line(payload, agent, windows)
        if windows:
            record_windows(
                where,
                windows,
                account_flag=account,
                budgets=budgets,
                roster=roster,
                now=time.time(),
            )
    except Exception as exc:
        log_problem(where, f"statusline failed: {type(exc).__name__}: {exc}")
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    return 0
