"""`fleet-tui web` over real HTTP on loopback: a real server process, the demo fleet on a private
tmux socket, the app processes read from /proc (DESIGN.md "Web")."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import unavailable
from web_support import (
    WebProc,
    alive,
    children_of,
    create_token,
    demo_world_env,
    environ_of,
    group_members,
    login,
    login_form,
    new_client,
)

pytestmark = pytest.mark.tmux


@pytest.fixture(scope="module")
def demo(module_env: Any) -> dict[str, str]:
    """The demo fleet (one per module) and the environment pointing at it."""
    return demo_world_env(module_env)


@pytest.fixture
def server(demo: dict[str, str]) -> Iterator[WebProc]:
    web = WebProc(demo)
    try:
        yield web
    finally:
        web.stop()


def _label(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("test_", "")[:40]


async def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


async def _painted(ws: aiohttp.ClientWebSocketResponse, needle: bytes, timeout: float = 30) -> None:
    """Read the app's output until `needle` has been drawn."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"the app never drew {needle!r}"
        msg = await ws.receive(timeout=left)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        seen += msg.data


async def _open_app(
    client: aiohttp.ClientSession, web: WebProc
) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    """The logged-in `client`'s socket, once its app has drawn the fleet; the app's pid."""
    ws = await client.ws_connect(web.url + "/ws", origin=web.url)
    await _painted(ws, b"orchestrator")
    (pid,) = web.app_pids()
    return ws, pid


def _token_file_mode(web: WebProc) -> int:
    return stat.S_IMODE(os.stat(web.state_dir / "web" / "tokens.json").st_mode)


# -- tokens ------------------------------------------------------------------------------------


def test_token_verbs_show_the_token_once_and_store_it_hashed(demo: dict[str, str]) -> None:
    token = create_token(demo, "view", "verbs")
    state = demo["MOSAIC_FLEET_STATE_DIR"]
    stored = open(f"{state}/web/tokens.json").read()
    assert token.startswith("fweb_") and token not in stored
    assert stat.S_IMODE(os.stat(f"{state}/web/tokens.json").st_mode) == 0o600

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet_tui", "web", "token", *args],
            env=demo, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0
    assert "verbs" in listed.stdout and "view" in listed.stdout and "never" in listed.stdout
    assert token not in listed.stdout
    assert cli("create", "--scope", "view", "--label", "verbs").returncode == 2  # label taken
    assert cli("revoke", "verbs").returncode == 0
    assert "verbs" not in cli("list").stdout
    gone = cli("revoke", "verbs")
    assert gone.returncode == 3 and gone.stderr.count("\n") == 1


def test_listening_beyond_loopback_without_tls_is_refused(demo: dict[str, str]) -> None:
    for listen in ("0.0.0.0:0", "[::]:0", "192.0.2.1:8790"):
        res = subprocess.run(
            [sys.executable, "-m", "fleet_tui", "web", "--listen", listen],
            env=demo, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert res.returncode == 2, res
        assert res.stderr.count("\n") == 1 and "without TLS" in res.stderr
        assert "Traceback" not in res.stderr


def test_without_the_extra_it_says_how_to_install_it(demo: dict[str, str]) -> None:
    code = (
        "import sys; sys.modules['aiohttp'] = None; from fleet_tui.cli.main import main; "
        "sys.exit(main(['web']))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=demo, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "pip install 'fleet-tui[web]'" in res.stderr


# -- login -------------------------------------------------------------------------------------


async def test_login_sets_a_strict_session_cookie_and_the_page_has_security_headers(
    server: WebProc, demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        r = await login(client, server.url, token)
        assert r.status == 303 and r.headers["Location"] == "/"
        cookie = next(c for c in r.headers.getall("Set-Cookie") if c.startswith("fleet_session="))
        flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path", "max-age", "samesite"} <= flags
        assert "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "secure" not in flags  # plain http on loopback; Secure under TLS
        async with client.get(server.url + "/") as page:
            assert page.status == 200
            text = await page.text()
            assert "textual.js" in text and token not in text
            csp = page.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Referrer-Policy"] == "no-referrer"
            assert page.headers["Cache-Control"] == "no-store"
        async with client.get(server.url + "/static/js/textual.js") as js:
            assert js.status == 200 and "max-age" in js.headers["Cache-Control"]
    assert any(r["event"] == "login" and r["label"] == _label(request) for r in server.log())


async def test_a_bad_token_is_refused_and_logged_without_the_token(server: WebProc) -> None:
    async with new_client() as client:
        r = await login(client, server.url, "fweb_not-a-real-token-0123456789")
        assert r.status == 401
        assert not any(c.key == "fleet_session" for c in client.cookie_jar)
        async with client.get(server.url + "/", allow_redirects=False) as page:
            assert page.status == 401
    assert any(r["event"] == "login failed" for r in server.log())
    assert "not-a-real-token" not in (server.state_dir / "web" / "web.log").read_text()


async def test_without_a_session_pages_redirect_and_the_rest_is_401(server: WebProc) -> None:
    async with new_client() as client:
        for path in ("/", "/anything"):
            async with client.get(
                server.url + path, headers={"Accept": "text/html"}, allow_redirects=False
            ) as r:
                assert r.status == 303 and r.headers["Location"] == "/login"
        for path in ("/", "/static/js/textual.js", "/ws", "/download/x"):
            async with client.get(server.url + path, allow_redirects=False) as r:
                assert r.status == 401, path
        async with client.post(server.url + "/logout", allow_redirects=False) as r:
            assert r.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(server.url + "/ws", origin=server.url)
        assert refused.value.status == 401


async def test_login_and_logout_need_their_same_site_form(
    server: WebProc, demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        # a cross-site form: no fleet_login cookie (SameSite=Strict), or a foreign Origin
        async with client.post(
            server.url + "/login", data={"token": token, "csrf": "x"}, allow_redirects=False
        ) as r:
            assert r.status == 403
        csrf = await login_form(client, server.url)
        async with client.post(
            server.url + "/login",
            data={"token": token, "csrf": csrf},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        ) as r:
            assert r.status == 403
        assert (await login(client, server.url, token)).status == 303
        async with client.post(server.url + "/logout", data={}, allow_redirects=False) as r:
            assert r.status == 403  # no CSRF value: not our Log out button
        async with client.get(server.url + "/") as page:
            assert page.status == 200  # still logged in
            text = await page.text()
        csrf = text.split('name="csrf" value="')[1].split('"')[0]
        async with client.post(
            server.url + "/logout", data={"csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        async with client.get(server.url + "/", allow_redirects=False) as r:
            assert r.status == 401


async def test_failed_logins_are_rate_limited_per_address(
    server: WebProc, demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        for _ in range(5):
            assert (await login(client, server.url, "fweb_wrong")).status == 401
        r = await login(client, server.url, token)  # even the right token: wait first
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    assert any(r["event"] == "login rate-limited" for r in server.log())


async def test_a_burst_of_parallel_guesses_is_rate_limited_too(server: WebProc) -> None:
    async with new_client() as client:
        csrf = await login_form(client, server.url)

        async def guess() -> int:
            async with client.post(
                server.url + "/login",
                data={"token": "fweb_wrong", "csrf": csrf},
                allow_redirects=False,
            ) as r:
                return r.status

        statuses = await asyncio.gather(*(guess() for _ in range(20)))
    assert statuses.count(401) <= 5 and statuses.count(429) >= 15, statuses


async def test_a_page_under_another_host_name_is_refused(server: WebProc) -> None:
    # DNS rebinding: evil.example resolving to 127.0.0.1 reaches us with its own Host (and
    # Origin), and could then pass the same-site checks of its own pages: 421 before anything
    port = server.url.rsplit(":", 1)[1]
    async with new_client() as client:
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            async with client.get(
                server.url + "/login", headers={"Host": host}, allow_redirects=False
            ) as r:
                assert r.status == 421, host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            async with client.get(
                server.url + "/login", headers={"Host": host}, allow_redirects=False
            ) as r:
                assert r.status == 200, host


async def test_only_the_login_page_and_its_style_are_public(server: WebProc) -> None:
    async with new_client() as client:
        async with client.get(server.url + "/web/login.css") as r:
            assert r.status == 200
        # a path that starts like a public one but is not one (the static router resolves `..`)
        url = server.url + "/web/login/../app.js"
        async with client.get(yarl_raw(url), allow_redirects=False) as r:
            assert r.status == 401


def yarl_raw(url: str) -> Any:
    import yarl

    return yarl.URL(url, encoded=True)  # as given: `..` is sent, not resolved by the client


async def test_a_message_without_its_payload_is_ignored_not_the_end_of_the_session(
    server: WebProc, demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        await login(client, server.url, token)
        ws = await client.ws_connect(server.url + "/ws?width=100&height=30", origin=server.url)
        await _painted(ws, b"orchestrator")
        for bad in ('["stdin"]', '["ping"]', '["resize"]', "[]", "{}", '"x"', "[1, 2]"):
            await ws.send_str(bad)
        await ws.send_str('["ping", "still-here"]')
        while True:  # the app goes on drawing; the pong comes back on the same socket
            msg = await ws.receive(timeout=30)
            if msg.type == aiohttp.WSMsgType.TEXT and "still-here" in msg.data:
                break
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
        assert not ws.closed
        await ws.close()


# -- the socket and its app --------------------------------------------------------------------


async def test_the_websocket_needs_our_origin(
    server: WebProc, demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        await login(client, server.url, token)
        for bad in ("http://evil.example", "http://127.0.0.1:1", "null", None):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(server.url + "/ws", origin=bad)
            assert refused.value.status == 403, bad
        assert server.app_pids() == []  # no app was started for a refused socket
        ws = await client.ws_connect(server.url + "/ws?width=120&height=40", origin=server.url)
        await _painted(ws, b"orchestrator")
        await ws.close()


async def test_the_app_gets_its_session_environment_and_no_secrets(
    demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    env = {**demo, "MOSAIC_FLEET_GATEWAY_DSN": "postgresql://secret", "SOME_SECRET": "s3"}
    web = WebProc(env)
    try:
        token = create_token(demo, "control", _label(request))
        async with new_client() as client:
            await login(client, web.url, token)
            ws, pid = await _open_app(client, web)
            app_env = environ_of(pid)
            assert app_env["MOSAIC_FLEET_WEB_SCOPE"] == "control"
            assert app_env["MOSAIC_FLEET_WEB_LABEL"] == _label(request)
            assert app_env["MOSAIC_FLEET_STATE_DIR"] == demo["MOSAIC_FLEET_STATE_DIR"]
            for secret in ("MOSAIC_FLEET_GATEWAY_DSN", "MOSAIC_FLEET_GATEWAY_TOKEN", "SOME_SECRET"):
                assert secret not in app_env
            # its own session: a process group of its own, not the server's
            assert os.getpgid(pid) == pid and os.getsid(pid) == pid
            await ws.close()
    finally:
        web.stop()


async def test_closing_the_socket_ends_the_app_and_its_children(
    demo: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # the dashboard, started by a wrapper that first starts a child of its own (as a runtime's
    # helper would be): ending only the app's pid would leave that child behind; and one in a
    # process group of its own, as the remote stream's ssh is (ui/remote.py): ending the group
    # alone would leave that one
    wrapper = tmp_path / "app.py"
    wrapper.write_text(
        "import subprocess, sys\n"
        "subprocess.Popen(['sleep', '300'])\n"
        "subprocess.Popen(['sleep', '301'], process_group=0)\n"
        "from fleet_tui.cli.main import main\n"
        "sys.exit(main(['tui']))\n"
    )
    web = WebProc(demo, app_argv=[sys.executable, str(wrapper)])
    try:
        token = create_token(demo, "view", _label(request))
        async with new_client() as client:
            await login(client, web.url, token)
            ws, pid = await _open_app(client, web)
            kids = children_of(pid)
            assert alive(pid) and len(kids) == 2, "the app and its children run"
            assert len(set(kids) & set(group_members(pid))) == 1  # one in a group of its own
            await ws.close()
            await _wait(
                lambda: not alive(pid) and not any(alive(k) for k in kids),
                10,
                "the app and its child to end",
            )
            assert group_members(pid) == []
        await _wait(
            lambda: any(r["event"] == "app ended" and r["pid"] == pid for r in web.log()),
            10,
            "the web log's 'app ended'",
        )
    finally:
        web.stop()


async def test_sessions_are_capped_with_a_clear_page(
    demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    web = WebProc(demo, "--max-sessions", "2")
    try:
        token = create_token(demo, "view", _label(request))
        async with new_client() as client:
            await login(client, web.url, token)
            sockets = []
            for _ in range(2):
                ws = await client.ws_connect(web.url + "/ws", origin=web.url)
                sockets.append(ws)
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await client.ws_connect(web.url + "/ws", origin=web.url)
            assert full.value.status == 503
            async with client.get(web.url + "/") as page:
                assert page.status == 503
                assert "All 2 web sessions are in use" in await page.text()
            await sockets[0].close()
            await _wait(lambda: len(web.app_pids()) == 2, 5, "two apps")

            async def page_ok() -> int:
                async with client.get(web.url + "/") as page:
                    return page.status

            deadline = time.monotonic() + 10
            while await page_ok() != 200:
                assert time.monotonic() < deadline, "a freed session was not given back"
                await asyncio.sleep(0.2)
            await sockets[1].close()
        assert len(web.app_pids()) == 2  # the refused third started nothing
    finally:
        web.stop()


async def test_a_revoked_token_ends_its_live_session(
    server: WebProc, demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    label = _label(request)
    token = create_token(demo, "view", label)
    async with new_client() as client:
        await login(client, server.url, token)
        ws, pid = await _open_app(client, server)
        res = subprocess.run(
            [sys.executable, "-m", "fleet_tui", "web", "token", "revoke", label],
            env=demo, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert res.returncode == 0
        started = time.monotonic()
        while True:
            msg = await ws.receive(timeout=15)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert time.monotonic() - started < 15
        assert "revoked" in str(msg.extra)
        await _wait(lambda: not alive(pid), 10, "the app to end")
        async with client.get(server.url + "/", allow_redirects=False) as r:
            assert r.status == 401


async def test_an_idle_session_is_closed(
    demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    web = WebProc(demo, "--idle-timeout", "3")
    try:
        token = create_token(demo, "view", _label(request))
        async with new_client() as client:
            await login(client, web.url, token)
            ws, pid = await _open_app(client, web)
            while True:
                msg = await ws.receive(timeout=30)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert "idle" in str(msg.extra)
            await _wait(lambda: not alive(pid), 10, "the idle app to end")
    finally:
        web.stop()


async def test_stopping_the_server_ends_every_app(
    demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    web = WebProc(demo)
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        await login(client, web.url, token)
        ws, pid = await _open_app(client, web)
        web.stop()
        await _wait(lambda: not alive(pid) and not group_members(pid), 10, "the app to end")
        await ws.close()


# -- TLS and a proxy in front ------------------------------------------------------------------


def _cookie_value(response: aiohttp.ClientResponse) -> str:
    cookie = next(c for c in response.headers.getall("Set-Cookie") if "fleet_session=" in c)
    return cookie


async def test_under_tls_the_cookie_is_secure(
    demo: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import shutil
    import ssl

    if not shutil.which("openssl"):
        unavailable("openssl is needed to make a test certificate (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    web = WebProc(demo, "--cert", str(cert), "--key", str(key))
    try:
        assert web.url.startswith("https://")
        token = create_token(demo, "view", _label(request))
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as client:
            r = await login(client, web.url, token)
            assert r.status == 303
            cookie = _cookie_value(r)
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with client.get(web.url + "/") as page:
                assert page.status == 200
                assert "Strict-Transport-Security" in page.headers
                assert 'data-session-websocket-url="wss://127.0.0.1:' in await page.text()
            ws = await client.ws_connect(web.url + "/ws", origin=web.url)
            await ws.close()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(web.url + "/ws", origin=web.url.replace("https", "http"))
            assert refused.value.status == 403
    finally:
        web.stop()


async def test_behind_a_proxy_the_forwarded_origin_counts(
    demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    web = WebProc(demo, "--behind-proxy")
    fwd = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "fleet.example"}
    try:
        token = create_token(demo, "view", _label(request))
        async with new_client() as client:
            csrf = await login_form(client, web.url)
            r = await client.post(
                web.url + "/login",
                data={"token": token, "csrf": csrf},
                headers={**fwd, "Origin": "https://fleet.example"},
                allow_redirects=False,
            )
            assert r.status == 303
            cookie = _cookie_value(r)
            assert "Secure" in cookie  # the browser speaks https to the proxy
            sid = cookie.split("fleet_session=")[1].split(";")[0]
        async with aiohttp.ClientSession() as bare:  # a Secure cookie, sent by hand over http
            headers = {**fwd, "Cookie": f"fleet_session={sid}"}
            ws = await bare.ws_connect(
                web.url + "/ws", origin="https://fleet.example", headers=headers
            )
            await ws.close()
            for bad in (web.url, "https://evil.example"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await bare.ws_connect(web.url + "/ws", origin=bad, headers=headers)
                assert refused.value.status == 403
    finally:
        web.stop()


async def test_a_killed_server_leaves_no_app_behind(
    demo: dict[str, str], request: pytest.FixtureRequest
) -> None:
    # SIGKILL gives the server no time to end its apps: each app sees its stdin close and exits
    web = WebProc(demo)
    token = create_token(demo, "view", _label(request))
    async with new_client() as client:
        await login(client, web.url, token)
        ws, pid = await _open_app(client, web)
        web.proc.kill()
        web.stop()
        await _wait(lambda: not alive(pid) and not group_members(pid), 20, "the app to end")
        await ws.close()


# -- what each session's app is given ------------------------------------------------------------


def test_the_app_argv_is_the_dashboard_with_absolute_paths_and_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet_tui.cli.main import build_parser
    from fleet_tui.cli.web import _app_argv

    monkeypatch.chdir(tmp_path)
    args = build_parser("web").parse_args(
        ["web", "--state-dir", "st", "--roster", "r.yaml", "--gateway", "https://gw.example",
         "--token-file", "tok"]
    )  # fmt: skip
    argv = _app_argv(args)
    assert argv[:4] == [sys.executable, "-P", "-m", "fleet_tui"]  # no shell, no cwd on sys.path
    assert argv[argv.index("--state-dir") + 1] == str(tmp_path / "st")
    assert argv[argv.index("--roster") + 1] == str(tmp_path / "r.yaml")
    tui = argv.index("tui")
    assert argv[tui + 1 :] == [
        "--gateway",
        "https://gw.example",
        "--token-file",
        str(tmp_path / "tok"),
    ]


def test_the_app_environment_is_an_allow_list() -> None:
    from fleet_tui.web.appproc import session_environment

    base = {
        "PATH": "/usr/bin",
        "HOME": "/h",
        "TMUX_TMPDIR": "/t",
        "MOSAIC_FLEET_STATE_DIR": "/s",
        "MOSAIC_FLEET_GATEWAY_URL": "https://gw.example",
        "MOSAIC_FLEET_GATEWAY_TOKEN": "gw-secret",
        "MOSAIC_FLEET_GATEWAY_DSN": "postgresql://secret",
        "MOSAIC_FLEET_WEB_SCOPE": "control",  # the server's own: never inherited
        "AWS_SECRET_ACCESS_KEY": "x",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    env = session_environment(
        base, scope="sudo", label="ops", width=100, height=30, with_gateway_token=False
    )
    assert env["MOSAIC_FLEET_WEB_SCOPE"] == "view"  # anything but view|control: view
    assert env["MOSAIC_FLEET_WEB_LABEL"] == "ops"
    assert env["TEXTUAL_DRIVER"] == "textual.drivers.web_driver:WebDriver"
    assert (env["COLUMNS"], env["ROWS"]) == ("100", "30")
    assert env["TMUX_TMPDIR"] == "/t" and env["MOSAIC_FLEET_STATE_DIR"] == "/s"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    for gone in ("MOSAIC_FLEET_GATEWAY_TOKEN", "MOSAIC_FLEET_GATEWAY_DSN", "AWS_SECRET_ACCESS_KEY"):
        assert gone not in env
    with_gw = session_environment(
        base, scope="control", label="ops", width=80, height=24, with_gateway_token=True
    )
    assert with_gw["MOSAIC_FLEET_GATEWAY_TOKEN"] == "gw-secret"
    assert with_gw["MOSAIC_FLEET_WEB_SCOPE"] == "control"
    assert "MOSAIC_FLEET_GATEWAY_DSN" not in with_gw


async def test_an_app_that_dies_closes_its_socket_and_frees_its_session(
    demo: dict[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # an app that ends without saying so (a crash, a failed start): the socket closes with the
    # reason, and the session counts no more against the cap
    wrapper = tmp_path / "dies.py"
    wrapper.write_text(
        "import sys, time\nprint('__GANGLION__', flush=True)\ntime.sleep(1)\nsys.exit(1)\n"
    )
    web = WebProc(demo, app_argv=[sys.executable, str(wrapper)])
    try:
        token = create_token(demo, "view", _label(request))
        async with new_client() as client:
            await login(client, web.url, token)
            ws = await client.ws_connect(web.url + "/ws", origin=web.url)
            msg = await ws.receive(timeout=20)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            assert "the dashboard exited" in str(msg.extra)
            await _wait(
                lambda: any(
                    r["event"] == "app ended" and r["reason"] == "app exited" for r in web.log()
                ),
                10,
                "the web log's 'app ended'",
            )
    finally:
        web.stop()


def test_the_dashboard_runs_without_a_terminal_only_on_the_web_driver_of_a_web_session(
    demo: dict[str, str],
) -> None:
    driver = {"TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver"}
    for extra in (driver, {"MOSAIC_FLEET_WEB_SCOPE": "view"}):
        res = subprocess.run(
            [sys.executable, "-m", "fleet_tui", "tui"],
            env={**demo, **extra}, capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert res.returncode == 5, (extra, res)
        assert "needs a terminal" in res.stderr
