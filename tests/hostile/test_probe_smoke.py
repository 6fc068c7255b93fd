"""The hostile suite's own import path works (the shared fixtures and factories are reachable)."""

from __future__ import annotations

from conftest import FleetEnv


def test_shared_fixtures_reach_the_hostile_suite(fleet_env: FleetEnv) -> None:
    assert fleet_env.base.is_dir()
