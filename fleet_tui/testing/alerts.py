"""A deterministic inbox for snapshot tests and screenshots: the fixed fleet (fleet_tui.testing.
fleets) where review and planner wait for the operator, and a state dir whose `terminal` book
already holds their two episodes (review for 12 minutes; planner for 4, silenced until 45
minutes after NOW by a silence in silences.json). A dashboard started on them rings nothing and
shows both in its inbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fleet_tui.core.alerts import AlertBook, Episode
from fleet_tui.model.alerts import Silence
from fleet_tui.model.records import AgentState, FleetSnapshot
from fleet_tui.service.alerts import AlertStore
from fleet_tui.testing.fleets import NOW, fleet_snapshot

RULE = "needs-you"
PREFIX = "jarvis/w-jarvis/mosaic-fleet/"


def inbox_snapshot() -> FleetSnapshot:
    """The fixed fleet, with scratch busy: only review (its heartbeat) and planner (a prompt on
    its pane) wait."""
    snap = fleet_snapshot()
    agents = []
    for a in snap.agents:
        if a.name == "scratch" and a.heartbeat is not None:
            hb = a.heartbeat.model_copy(update={"state": AgentState.BUSY, "detail": "working"})
            a = a.model_copy(update={"heartbeat": hb})
        agents.append(a)
    return snap.model_copy(update={"agents": agents})


def write_inbox_state(state_dir: Path) -> None:
    """The `terminal` book with review's and planner's episodes, and planner's silence."""
    store = AlertStore(state_dir)
    book = AlertBook()
    for name, minutes, silenced in (("review", 12, False), ("planner", 4, True)):
        since = NOW - timedelta(minutes=minutes)
        book.episodes[(RULE, PREFIX + name)] = Episode(
            rule=RULE,
            key=PREFIX + name,
            agent=name,
            tenant_id="jarvis",
            host="w-jarvis",
            since=since,
            health="unknown",
            state="waiting_input",
            fired_at=since,
            last_sent=since,
            sends=1,
            silenced=silenced,
        )
    store.save_book("terminal", book)
    store.add_silence(
        Silence(rule=RULE, agents=["planner"], until=NOW + timedelta(minutes=45), by="jarvis"),
        NOW,
    )
