"""Codex `notify` and hook payloads to heartbeat states (RUNTIME-FORMATS.md "Codex notify")."""

from __future__ import annotations

from fleet_tui.adapters.claude import claude_event
from fleet_tui.adapters.common import Event, ack_of, model_name, safe_detail, session_id
from fleet_tui.protocol.files import JsonObject

MAX_INPUT_MESSAGES = 16


def codex_event(payload: JsonObject) -> Event | None:
    """A notify payload (`type`) or a hook payload (`hook_event_name`, Claude-like events)."""
    if isinstance(payload.get("hook_event_name"), str):
        return claude_event(payload)
    kind = payload.get("type")
    if kind == "agent-turn-complete":
        # The turn's input messages were accepted by the runtime: ack them, as the prompt of a
        # Claude UserPromptSubmit is (notify is the only signal a notify-only Codex gives).
        messages = payload.get("input-messages")
        acks: list[str] = []
        if isinstance(messages, list):
            for m in messages[-MAX_INPUT_MESSAGES:]:
                acks += ack_of(m)
        return Event(
            "idle",
            "turn complete",
            model=model_name(payload.get("model")),
            acks=acks,
            session=session_id(payload.get("thread-id")),  # the rollout's session id
        )
    if isinstance(kind, str) and kind:
        return Event(None, f"notify: {safe_detail(kind, 40)}")
    return None
