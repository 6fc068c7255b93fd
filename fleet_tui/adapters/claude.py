"""Claude Code hook events to heartbeat states (RUNTIME-FORMATS.md "Claude Code hooks")."""

from __future__ import annotations

from fleet_tui.adapters.common import (
    DETAIL_MAX,
    Event,
    ack_of,
    model_name,
    safe_detail,
    session_id,
)
from fleet_tui.protocol.files import JsonObject

_NOTIFICATIONS: dict[str, tuple[str | None, str]] = {
    "permission_prompt": ("waiting_input", "permission prompt"),
    "elicitation_dialog": ("waiting_input", "question for the operator"),
    "idle_prompt": ("idle", "waiting for a prompt"),
}


def _text(payload: JsonObject, key: str) -> str:
    value = payload.get(key)
    return safe_detail(value, 40) if isinstance(value, str) else ""


def claude_event(payload: JsonObject) -> Event | None:
    """What one hook payload means; None when it is not a hook payload at all."""
    name = payload.get("hook_event_name")
    if not isinstance(name, str) or not name:
        return None
    model = model_name(payload.get("model"))
    # The events that start or end a turn name the session it runs in (for `usage`).
    session = session_id(payload.get("session_id"))
    if name == "SessionStart":
        source = _text(payload, "source") or "startup"
        # startup / resume / clear: the runtime is up and at its prompt, waiting for input (a
        # "starting" state would last until the first prompt, hours for an always-on agent);
        # compact can come mid-turn: unchanged.
        state = {"compact": None}.get(source, "idle")
        return Event(
            state, f"session start ({source})", model=model, starts_session=True, session=session
        )
    if name == "UserPromptSubmit":
        acks = ack_of(payload.get("prompt"))
        return Event("busy", "prompt submitted", model=model, acks=acks, session=session)
    if name in ("PreToolUse", "PostToolUse"):
        tool = _text(payload, "tool_name") or "?"
        verb = "tool" if name == "PreToolUse" else "tool done"
        return Event("busy", f"{verb}: {tool}", model=model)
    if name == "PermissionRequest":
        tool = _text(payload, "tool_name")
        return Event(
            "waiting_input",
            f"permission request: {tool}" if tool else "permission request",
            model=model,
        )
    if name == "Notification":
        kind = _text(payload, "notification_type")
        known = _NOTIFICATIONS.get(kind)
        if known is None:
            return Event(None, f"notification: {kind or '?'}", model=model)
        state, what = known
        message = payload.get("message")
        if state == "waiting_input" and isinstance(message, str):
            # what it asks, for the operator (the ASKS column, alerts): "permission prompt:
            # Claude needs your permission to use Bash"
            text = safe_detail(message, DETAIL_MAX - len(what) - 2)
            return Event(state, f"{what}: {text}" if text else what, model=model)
        return Event(state, what, model=model)
    if name == "Stop":
        return Event("idle", "turn finished", model=model, session=session)
    if name == "StopFailure":
        kind = _text(payload, "error_type") or "unknown"
        if kind == "rate_limit":
            return Event("blocked", "rate limited", model=model)
        return Event("error", f"error: {kind}", model=model)
    if name == "SessionEnd":
        reason = _text(payload, "reason") or "other"
        return Event("stopping", f"session end ({reason})", model=model, ends_session=True)
    # SubagentStop, PreCompact and events added later: a sign of life, the state unchanged.
    return Event(None, f"event: {safe_detail(name, 40)}", model=model)
