"""The model's name rules: a roster names its tenant exactly as the gateway and the ledgers
accept it (one pattern, `TENANT_RE`), so a roster never loads a tenant the gateway refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fleet_tui.model.records import Roster, RosterAgent, UsageSample

SAMPLE = {
    "v": 1,
    "host": "w-jarvis",
    "account": "claude-max-a",
    "window": "weekly",
    "used_percent": 10.0,
    "observed_at": "2026-11-26T04:00:00Z",
    "source": "test",
}


@pytest.mark.parametrize("tenant", ["j", "jarvis.prod_2-b", "t" * 128])
def test_a_tenant_the_ledgers_accept_is_a_roster_tenant(tenant: str) -> None:
    assert Roster(version=1, tenant_id=tenant).tenant_id == tenant
    assert UsageSample.model_validate({**SAMPLE, "tenant_id": tenant}).tenant_id == tenant


@pytest.mark.parametrize("tenant", ["", "t" * 129, "a b", "a/b", "jarvis\u200b"])
def test_a_tenant_the_ledgers_refuse_is_no_roster_tenant(tenant: str) -> None:
    with pytest.raises(ValidationError):
        Roster(version=1, tenant_id=tenant)
    with pytest.raises(ValidationError):
        UsageSample.model_validate({**SAMPLE, "tenant_id": tenant})


def test_socket_names_follow_one_pattern_in_the_roster_and_its_agents() -> None:
    r = Roster(
        version=1,
        tenant_id="j",
        socket_name="mosaic-fleet",
        agents=[RosterAgent(name="c1", role="coder", socket_name="lab.2")],
    )
    assert r.agent_socket(r.agents[0]) == "lab.2"
    with pytest.raises(ValidationError):
        Roster(version=1, tenant_id="j", socket_name="../x")
    with pytest.raises(ValidationError):
        RosterAgent(name="c1", role="coder", socket_name="a b")


# -- The snapshot's records: plain dataclasses, validated only when read from outside ----------


def _snapshot_text() -> str:
    from fleet_tui.testing.fleets import big_snapshot

    return big_snapshot(12).to_json(indent=2)


def test_a_snapshot_read_back_from_its_json_is_the_same_document() -> None:
    """What `ps --json` prints reads back (as the gateway client reads a remote ps document)
    into records that print the same document: names by alias, enums by value, times as text."""
    import json

    from fleet_tui.model.records import AgentRecord, FleetSnapshot, Health

    text = _snapshot_text()
    doc = json.loads(text)
    assert doc["schema"] == "mosaic.fleet.ps/v1" and "schema_" not in doc
    back = FleetSnapshot.model_validate(doc)
    assert isinstance(back.agents[0], AgentRecord)
    assert isinstance(back.agents[0].health, Health)
    assert back.agents[0].tmux is not None and back.agents[0].tmux.activity_at is not None
    assert back.to_json(indent=2) == text


def test_a_record_from_outside_is_checked_field_by_field() -> None:
    import json

    from fleet_tui.model.records import AgentRecord

    agent = json.loads(_snapshot_text())["agents"][0]
    with pytest.raises(ValidationError, match="health"):
        AgentRecord.model_validate({**agent, "health": "fine"})
    with pytest.raises(ValidationError, match="surprise"):
        AgentRecord.model_validate({**agent, "surprise": 1})  # unknown fields are refused
    with pytest.raises(ValidationError, match="pane_pid"):
        AgentRecord.model_validate({**agent, "tmux": {**agent["tmux"], "pane_pid": "x"}})


def test_json_text_has_no_nan_and_copies_leave_the_original_alone() -> None:
    """A non-finite age prints as null (JSON has no NaN; pydantic wrote null too); a copy with
    an update is a new record whose key follows the update; a record cannot be assigned to."""
    import dataclasses
    import json
    import math

    from fleet_tui.testing.fleets import big_snapshot

    snap = big_snapshot(2)
    rec = snap.agents[0]
    assert rec.heartbeat is not None
    odd = rec.model_copy(
        update={"heartbeat": rec.heartbeat.model_copy(update={"age_s": math.nan}), "name": "x"}
    )
    assert rec.key.endswith("/" + rec.name) and odd.key.endswith("/x")
    assert rec.heartbeat.age_s is not None and not math.isnan(rec.heartbeat.age_s)

    def refuse(word: str) -> None:
        raise AssertionError(f"{word} in JSON text")

    data = json.loads(odd.model_dump_json(), parse_constant=refuse)
    assert data["heartbeat"]["age_s"] is None and "key" not in data
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.name = "y"  # type: ignore[misc]
