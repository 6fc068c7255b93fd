"""The dashboard as a browser session of `fleet-tui web` runs it: the scope its token gave.

The web server starts the ordinary dashboard with `MOSAIC_FLEET_WEB_SCOPE` and
`MOSAIC_FLEET_WEB_LABEL` set (config.surface). A `view` session streams but refuses watch,
attach, send and the lifecycle keys, each with its reason; a `control` session sends and uses
the lifecycle keys behind the same typed confirmation, but never hands a terminal over. Its audit
lines say `surface: web` and carry the token's label. Real tmux, a real stub agent.
"""

from __future__ import annotations

import pytest
from conftest import FleetEnv
from test_lifecycle_ui import (
    audits,
    confirm,
    has_session,
    on_agent,
    stub_agent,
    toasts,
    wait_for,
)
from textual.widgets import Static, TextArea

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.config.surface import LABEL_ENV, SCOPE_ENV, Surface
from fleet_tui.control.actions import LiveActions
from fleet_tui.service.poll import LiveSource
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.dialogs import ComposeMessageScreen, ConfirmAttachScreen, ConfirmLifecycleScreen
from fleet_tui.ui.screens import AgentDetailScreen
from fleet_tui.ui.screens.stream import StreamScreen

READ_ONLY = "this web session is read-only (a view token); log in with a control token"


def web_app(monkeypatch: pytest.MonkeyPatch, scope: str, label: str) -> FleetApp:
    """The app as `run_dashboard` builds it in the process the web server starts."""
    monkeypatch.setenv(SCOPE_ENV, scope)
    monkeypatch.setenv(LABEL_ENV, label)
    surface = Surface.from_env()
    config = FleetConfig.from_flags()
    source = LiveSource(config, systemd_interval_s=30)
    return FleetApp(
        source,
        settings=DashboardSettings(poll_interval_s=3600),
        actions=LiveActions(source.runner, config.state_dir, config, surface=surface.name),
        watch=False,
        surface=surface,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Surface("tui", None, None)),
        ({SCOPE_ENV: "view", LABEL_ENV: "ops"}, Surface("web", "view", "ops")),
        ({SCOPE_ENV: "control"}, Surface("web", "control", None)),
        # fail closed: a scope we do not know, or an empty one, is read-only
        ({SCOPE_ENV: "admin", LABEL_ENV: "x"}, Surface("web", "view", "x")),
        ({SCOPE_ENV: ""}, Surface("web", "view", None)),
        # the label is shown and logged: no control characters
        (
            {SCOPE_ENV: "control", LABEL_ENV: "a\x1b]52;c;x\x07b"},
            Surface("web", "control", "a]52;c;xb"),
        ),
    ],
)
def test_the_scope_comes_from_the_environment_and_fails_closed(
    env: dict[str, str], expected: Surface
) -> None:
    assert Surface.from_env(env) == expected


def test_a_terminal_refuses_nothing_a_browser_never_hands_a_terminal_over() -> None:
    tui, view, control = Surface(), Surface("web", "view"), Surface("web", "control")
    for verb in ("stream", "watch", "attach", "send", "start", "stop", "restart"):
        assert tui.refusal(verb) is None
    assert view.refusal("stream") is None and control.refusal("stream") is None
    for verb in ("send", "start", "stop", "restart", "silence"):
        assert view.refusal(verb) == READ_ONLY
        assert control.refusal(verb) is None
    for surface in (view, control):
        assert "is a terminal action" in (surface.refusal("attach") or "")
        assert "fleet-tui watch NAME" in (surface.refusal("watch") or "")


@pytest.mark.tmux
async def test_a_view_session_streams_and_refuses_every_write(
    fleet_env: FleetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fleet_env
    env.write_roster([stub_agent("coder-1")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("coder-1")
    before = len(env.audit_lines())
    app = web_app(monkeypatch, "view", "wall-screen")
    async with app.run_test(size=(120, 35)) as pilot:
        # the session says what it is
        assert "web · read-only (view token 'wall-screen')" in toasts(app)
        await on_agent(pilot, app, "coder-1")
        for key, verb in (("m", "send"), ("u", "start"), ("r", "restart"), ("x", "stop")):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ComposeMessageScreen | ConfirmLifecycleScreen)
            assert any(t.startswith(verb) and READ_ONLY in t for t in toasts(app)), verb
        for key, verb in (("w", "watch"), ("a", "attach")):
            await pilot.press(key)
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ConfirmAttachScreen)
            assert any(
                t.startswith(f"{verb}: interactive {verb} is a terminal action")
                for t in toasts(app)
            ), verb
        # the detail lists the keys this session has, and says why the others are not there
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen), "the detail")
        line = str(app.screen.query_one("#actions", Static).render())
        assert "this web session is read-only" in line and "m send" not in line
        assert "a attach" not in line and "watch and attach are terminal actions" in line
        # the stream is there, read-only
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, StreamScreen), "the stream")
    # nothing was written to the agent, nothing stopped, nothing audited as done
    assert has_session(env, "coder-1")
    assert [a for a in env.audit_lines()[before:] if a["action"] != "pipe"] == []


@pytest.mark.tmux
async def test_a_control_session_sends_and_restarts_audited_as_web_with_its_label(
    fleet_env: FleetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fleet_env
    env.write_roster([stub_agent("coder-1")])
    assert env.cli("up").rc == 0
    env.wait_heartbeat("coder-1")
    app = web_app(monkeypatch, "control", "ops-laptop")
    async with app.run_test(size=(120, 35)) as pilot:
        assert "web · control (control token 'ops-laptop')" in toasts(app)
        await on_agent(pilot, app, "coder-1")
        # attach stays a terminal action, even with a control token
        await pilot.press("a")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmAttachScreen)
        # send: the composer, then the agent's ack
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeMessageScreen), "composer")
        app.screen.query_one(TextArea).insert("hello from the browser")
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: "coder-1 accepted the message" in toasts(app), "the ack", timeout=20
        )
        # restart: the same typed confirmation as in a terminal
        await confirm(pilot, app, "r", "coder-1")
        await wait_for(pilot, lambda: any("coder-1 restarted" in t for t in toasts(app)), "toast")
    sent = [a for a in env.audit_lines() if a["action"] == "send"]
    assert sent and all(a["surface"] == "web" and a["label"] == "ops-laptop" for a in sent)
    assert "hello from the browser" not in str(sent)  # hash and length, never the text
    assert ("coder-1", "running", "web") in audits(env, "restart")
    restarts = [a for a in env.audit_lines() if a["action"] == "restart"]
    assert restarts and all(a.get("label") == "ops-laptop" for a in restarts)
    assert has_session(env, "coder-1")


def test_a_browser_session_draws_unicode_whatever_the_servers_locale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleet_tui.testing.fleets import FixedSource, fleet_snapshot

    monkeypatch.setenv("LANG", "C")
    monkeypatch.setenv("LC_ALL", "C")
    source = FixedSource(fleet_snapshot())
    # a terminal under LANG=C gets ASCII glyphs; the browser always gets UTF-8 from the driver
    assert FleetApp(source, poll=False).ascii_only
    assert not FleetApp(source, poll=False, surface=Surface("web", "view")).ascii_only
    # unless the settings ask for ASCII
    ascii_settings = DashboardSettings(glyphs="ascii")
    assert FleetApp(
        source, poll=False, settings=ascii_settings, surface=Surface("web", "view")
    ).ascii_only
