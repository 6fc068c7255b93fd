"""Health (DESIGN.md "Health"): liveness from heartbeats only, each with a one-line reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fleet_tui.core.health import assess
from fleet_tui.model.records import Health
from fleet_tui.testing.fleets import BUILDERS_NOW as NOW
from fleet_tui.testing.fleets import heartbeat, ping

N = 30.0


# -- healthy / stale / unresponsive by age --------------------------------------------------------


def test_fresh_heartbeat_is_healthy_and_reason_names_age_and_timeout() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=4.2))
    assert a.health is Health.HEALTHY
    assert a.reason == "heartbeat 4 s ago, timeout 30 s"
    assert a.age_s == pytest.approx(4.2)
    assert a.clock_skew is False


def test_heartbeat_exactly_n_old_is_still_healthy() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=N))
    assert a.health is Health.HEALTHY


def test_heartbeat_just_over_n_is_stale() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=N + 0.5))
    assert a.health is Health.STALE
    assert "30 s ago" in a.reason
    assert "timeout 30 s" in a.reason


def test_stale_reason_names_age_and_timeout() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=45))
    assert a.health is Health.STALE
    assert a.reason == "heartbeat 45 s ago, timeout 30 s"


def test_heartbeat_exactly_3n_old_is_stale_not_unresponsive() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=3 * N))
    assert a.health is Health.STALE


def test_heartbeat_older_than_3n_is_unresponsive() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=3 * N + 1))
    assert a.health is Health.UNRESPONSIVE
    assert "91 s ago" in a.reason
    assert "30 s" in a.reason


def test_very_old_heartbeat_reason_uses_human_units() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=2 * 3600 + 5))
    assert a.health is Health.UNRESPONSIVE
    assert "2 h ago" in a.reason


def test_timeout_is_a_parameter_not_a_constant() -> None:
    hb = heartbeat("a", age_s=45)
    assert assess(NOW, 60, has_session=True, heartbeat=hb).health is Health.HEALTHY
    assert assess(NOW, 10, has_session=True, heartbeat=hb).health is Health.UNRESPONSIVE
    assert "timeout 60 s" in assess(NOW, 60, has_session=True, heartbeat=hb).reason


# -- unresponsive by pid and by ping ---------------------------------------------------------------


def test_fresh_heartbeat_with_dead_pid_is_unresponsive() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=1, pid=4242), pid_dead=True)
    assert a.health is Health.UNRESPONSIVE
    assert "4242" in a.reason
    assert "1 s ago" in a.reason


def test_pid_dead_without_a_pid_in_the_heartbeat_changes_nothing() -> None:
    a = assess(NOW, N, has_session=True, heartbeat=heartbeat("a", age_s=1, pid=None), pid_dead=True)
    assert a.health is Health.HEALTHY


def test_unanswered_ping_older_than_n_is_unresponsive_even_with_fresh_heartbeat() -> None:
    a = assess(
        NOW,
        N,
        has_session=True,
        heartbeat=heartbeat("a", age_s=2, echo="old-nonce"),
        ping=ping("new-nonce", age_s=N + 5),
    )
    assert a.health is Health.UNRESPONSIVE
    assert "ping 35 s ago unanswered" in a.reason
    assert "timeout 30 s" in a.reason


def test_unanswered_ping_younger_than_n_is_not_yet_a_failure() -> None:
    a = assess(
        NOW,
        N,
        has_session=True,
        heartbeat=heartbeat("a", age_s=2, echo=None),
        ping=ping("new-nonce", age_s=N - 1),
    )
    assert a.health is Health.HEALTHY


def test_answered_ping_is_healthy_however_old_the_ping() -> None:
    a = assess(
        NOW,
        N,
        has_session=True,
        heartbeat=heartbeat("a", age_s=2, echo="n1"),
        ping=ping("n1", age_s=10 * N),
    )
    assert a.health is Health.HEALTHY


# -- unknown and down --------------------------------------------------------------------------


def test_session_alive_without_heartbeat_is_unknown_never_healthy() -> None:
    a = assess(NOW, N, has_session=True)
    assert a.health is Health.UNKNOWN
    assert "no heartbeat" in a.reason


def test_unreadable_heartbeat_is_unknown_with_the_read_error_as_reason() -> None:
    a = assess(NOW, N, has_session=True, heartbeat_error="heartbeat file is not JSON")
    assert a.health is Health.UNKNOWN
    assert a.reason == "heartbeat file is not JSON"


def test_no_session_is_down_even_with_a_fresh_heartbeat() -> None:
    a = assess(NOW, N, has_session=False, heartbeat=heartbeat("a", age_s=1))
    assert a.health is Health.DOWN
    assert "no tmux session" in a.reason


def test_dead_pane_is_down_even_with_a_fresh_heartbeat() -> None:
    a = assess(
        NOW, N, has_session=True, pane_dead=True, dead_status="137", heartbeat=heartbeat("a", 1)
    )
    assert a.health is Health.DOWN
    assert "exited" in a.reason
    assert "137" in a.reason


# -- clock skew -------------------------------------------------------------------------------


def test_heartbeat_from_the_future_beyond_5s_is_flagged_as_clock_skew() -> None:
    hb = heartbeat("a", ts=NOW + timedelta(seconds=60))
    a = assess(NOW, N, has_session=True, heartbeat=hb)
    assert a.clock_skew is True
    assert a.health is not Health.HEALTHY
    assert "clock skew" in a.reason
    assert "60 s" in a.reason


def test_heartbeat_3s_in_the_future_is_normal_jitter() -> None:
    hb = heartbeat("a", ts=NOW + timedelta(seconds=3))
    a = assess(NOW, N, has_session=True, heartbeat=hb)
    assert a.clock_skew is False
    assert a.health is Health.HEALTHY
    assert a.age_s == 0.0
    assert "0 s ago" in a.reason


def test_every_health_has_a_one_line_reason() -> None:
    cases = [
        assess(NOW, N, has_session=False),
        assess(NOW, N, has_session=True, pane_dead=True),
        assess(NOW, N, has_session=True),
        assess(NOW, N, has_session=True, heartbeat=heartbeat("a", 4)),
        assess(NOW, N, has_session=True, heartbeat=heartbeat("a", 50)),
        assess(NOW, N, has_session=True, heartbeat=heartbeat("a", 500)),
    ]
    assert {c.health for c in cases} == set(Health)
    for c in cases:
        assert c.reason
        assert "\n" not in c.reason
