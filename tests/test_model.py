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
