"""A real browser on `fleet-tui web`: Debian's chromium driven by Playwright (executable_path; no
browser download), the demo fleet on a private tmux socket, a real server process.

xterm.js draws the terminal on a canvas, so the page's DOM has no text of the dashboard. What the
browser shows is read from the bytes its own WebSocket received (Playwright's `framereceived`,
the browser's traffic, not a second connection), fed to a terminal emulator (pyte) of the size the
browser asked for (the `width`/`height` of the socket's URL, then each `resize` it sent). The
screenshots are the browser's own.

With FLEET_WEB_SCREENSHOTS=DIR the screenshots (web-login.png, web-fleet.png, web-detail.png) are
also written to DIR (`FLEET_WEB_SCREENSHOTS=screenshots pytest tests/test_web_browser.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from conftest import unavailable
from web_support import WebProc, create_token, demo_world_env

# 20 s each with the suite running: each starts first on a worker of its own (conftest)
pytestmark = [pytest.mark.tmux, pytest.mark.slow(seconds=20)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Screen:
    """What the browser's terminal shows, rebuilt from the frames of its WebSocket."""

    def __init__(self) -> None:
        import pyte

        self._pyte = pyte
        self.screen: Any = None
        self.stream: Any = None

    def attach(self, ws: Any) -> None:
        if not ws.url.split("?")[0].endswith("/ws"):
            return
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(ws.url).query))
        self.screen = self._pyte.Screen(int(q["width"]), int(q["height"]))
        self.stream = self._pyte.ByteStream(self.screen)
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload: Any) -> None:
        if isinstance(payload, bytes | bytearray):
            self.stream.feed(bytes(payload))

    def _sent(self, payload: Any) -> None:
        if isinstance(payload, str) and payload.startswith('["resize"'):
            size = json.loads(payload)[1]
            self.screen.resize(size["height"], size["width"])

    def text(self) -> str:
        if self.screen is None:
            return ""
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, page: Any, *needles: str, timeout: float = 60.0) -> str:
        """Until every needle is on screen; events reach us only inside Playwright's calls."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the browser never showed {needles!r}; it shows:\n{text}")
            page.wait_for_timeout(100)


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 1000
    out = os.environ.get("FLEET_WEB_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(out) / name)


@pytest.fixture
def browser() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (the test extra: pip install -e '.[test]')")
    try:
        import pyte  # noqa: F401
    except ImportError:
        unavailable("pyte is not installed (the test extra: pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium; .ci/dev test does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_a_browser_logs_in_sees_the_fleet_streams_an_agent_and_cannot_send(
    fleet_env: Any, browser: Any, tmp_path: Path
) -> None:
    env = demo_world_env(fleet_env, agents=None)
    token = create_token(env, "view", "browser")
    web = WebProc(env)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        screen = Screen()
        page.on("websocket", screen.attach)

        # without a session, the page sends the browser to the login form
        page.goto(web.url + "/")
        assert page.url == web.url + "/login"
        assert page.locator("input[name=token]").is_visible()
        _shot(page, tmp_path, "web-login.png")

        # a wrong token: the form again, with the reason; no session
        page.fill("#token", "fweb_wrong")
        page.click("button[type=submit]")
        assert "not valid" in page.locator(".note").inner_text()

        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(web.url + "/")
        assert "read-only" in page.locator("header").inner_text()

        # the fleet table with the demo's agents, and the session's scope on screen
        text = screen.wait_for(page, "AGENT", "orchestrator", "enhancer", "coder0-0", "review")
        assert text.splitlines()[3].startswith("review")  # waiting for input: first
        page.wait_for_timeout(300)
        _shot(page, tmp_path, "web-fleet.png")

        page.focus(".xterm-helper-textarea")
        # enter: the detail of the selected agent (the first row: review, waiting for input)
        page.keyboard.press("Enter")
        text = screen.wait_for(page, "Roster", "Heartbeat and usage", "Last output (read-only)")
        assert "review" in text.splitlines()[0]
        page.wait_for_timeout(300)
        _shot(page, tmp_path, "web-detail.png")

        # s: the agent's live stream (the stub's own output)
        page.keyboard.press("Escape")
        screen.wait_for(page, "AGENT", "ROLE")
        page.keyboard.press("s")
        text = screen.wait_for(page, "read-only", "stub runtime agent=review")
        assert "following the bottom" in text
        page.keyboard.press("Escape")
        screen.wait_for(page, "AGENT", "ROLE")

        # m: a view session refuses to send, in one line that says why
        page.keyboard.press("m")
        text = screen.wait_for(page, "this web session is read-only")
        assert "control token" in " ".join(text.split())
        audit = env["MOSAIC_FLEET_STATE_DIR"] + "/audit.jsonl"
        if os.path.exists(audit):  # nothing was sent on the web surface
            for line in open(audit):
                rec = json.loads(line)
                assert not (rec.get("surface") == "web" and rec.get("outcome") == "sent"), rec

        # log out: back to the login form, the app ended, the old cookie is no longer valid
        (pid,) = web.app_pids()
        page.click("#logout")
        page.wait_for_url(web.url + "/login")
        deadline = time.monotonic() + 15
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}")
        page.goto(web.url + "/")
        assert page.url == web.url + "/login"
    finally:
        web.stop()


def test_a_control_session_sends_with_the_ack_but_never_watches_and_ends_when_revoked(
    fleet_env: Any, browser: Any
) -> None:
    env = demo_world_env(fleet_env, agents=None)
    token = create_token(env, "control", "operator")
    web = WebProc(env)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        screen = Screen()
        page.on("websocket", screen.attach)
        page.goto(web.url + "/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(web.url + "/")
        assert "control" in page.locator("header").inner_text()
        screen.wait_for(page, "AGENT", "review", "orchestrator")
        page.focus(".xterm-helper-textarea")

        # m on review (waiting for input): the composer, ctrl+s sends, the stub acks it
        page.keyboard.press("m")
        screen.wait_for(page, "Send a message", "It asks")
        page.keyboard.type("yes, edit it")
        page.keyboard.press("Control+s")
        screen.wait_for(page, "review accepted the message")
        sent = [
            json.loads(line)
            for line in open(env["MOSAIC_FLEET_STATE_DIR"] + "/audit.jsonl")
            if '"send"' in line
        ]
        assert sent and sent[-1]["surface"] == "web" and sent[-1]["agent"] == "review"
        assert "yes, edit it" not in json.dumps(sent[-1])  # by hash and length, never the text
        assert "operator" in json.dumps(sent[-1])  # the token's label

        # w: watch is a terminal action, even for a control session
        page.keyboard.press("w")
        text = screen.wait_for(page, "is a terminal action")
        assert "fleet-tui watch" in " ".join(text.split())

        # revoking the token ends the open session, and the page says why
        res = fleet_env.cli("web", "token", "revoke", "operator", env=env)
        assert res.rc == 0, res
        page.wait_for_selector(".closed-dialog", state="visible", timeout=15_000)
        assert "token revoked" in page.locator(".closed-dialog").inner_text()
    finally:
        web.stop()
