"""The web server of `fleet-tui web`: our own aiohttp app around textual-serve's browser client.

Why not textual-serve's `Server`: it has no authentication, serves every path to anyone, builds its
page with an inline script and a font from a third-party host, and starts the app through a shell
with the server's environment. What we keep of it is the browser client (its `static/` folder:
xterm.js and the protocol) and the app protocol (`AppService`, subclassed in `appproc`).

Rules (DESIGN.md "Web"):
- `GET /login` a form (field `token`); `POST /login` checks the token (hashed store, tokens.py),
  sets `fleet_session` (HttpOnly, SameSite=Strict, Path=/, Max-Age, Secure under TLS), 303 to `/`;
  `POST /logout` ends the session (and its apps). Any other path without a valid session: 303 to
  /login for a page (GET asking for text/html), else 401.
- CSRF: by SameSite=Strict cookies (double submit), not by Origin: our pages say
  `Referrer-Policy: no-referrer`, under which Chromium sends `Origin: null` on a same-origin form
  POST, so Origin cannot tell our form from a sandboxed foreign one. GET /login sets `fleet_login`
  (random, HttpOnly, SameSite=Strict) and puts the same value in a hidden field; POST /login needs
  both, equal. A cross-site POST carries no SameSite=Strict cookie: refused (403). The logout form
  carries the session's own CSRF value. A present Origin that is a foreign origin (not `null`) is
  refused as well.
- The WebSocket upgrade needs the session AND `Origin` equal to the served origin (scheme://host as
  the browser sees it: the Host header, with X-Forwarded-Proto/-Host only under --behind-proxy).
- Failed logins: at most 5 a minute per client address, then 429; logged (address, never the
  token) to `<state dir>/web/web.log`.
- At most `max_sessions` apps at once (the next gets a 503 page); an app idle (no key, click or
  resize from its browser) for `idle_timeout` seconds is closed; a revoked token's sessions end
  within `REVOKE_CHECK_S`; the app's process group ends when its socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.download_manager import DownloadManager

from fleet_tui.web.appproc import SessionApp, session_environment
from fleet_tui.web.tokens import TokenStore, TokenStoreError, WebToken, find

log = logging.getLogger("fleet_tui.web")

COOKIE = "fleet_session"
LOGIN_COOKIE = "fleet_login"
SESSION_MAX_AGE_S = 12 * 3600
LOGIN_FAILURES_PER_MIN = 5
REVOKE_CHECK_S = 2.0
MARK_USED_EVERY_S = 60.0
STATIC = Path(__file__).resolve().parent / "static"
PUBLIC_PATHS = frozenset({"/login", "/web/login.css"})  # exactly these; all else needs a session


def textual_serve_static() -> Path:
    import textual_serve

    return Path(textual_serve.__file__).resolve().parent / "static"


@dataclass
class WebConfig:
    state_dir: Path
    app_argv: Sequence[str]
    base_env: Mapping[str, str]
    with_gateway_token: bool = False
    tls: bool = False
    behind_proxy: bool = False
    max_sessions: int = 8
    idle_timeout_s: float = 1800.0
    app_cwd: str | None = None
    # The host names a request's `Host` may give (None: any). Listening on loopback without a
    # proxy, only loopback names: a DNS-rebinding page (evil.example -> 127.0.0.1) gets 421.
    host_names: frozenset[str] | None = None


@dataclass
class Session:
    sid: str
    token_id: str
    label: str
    scope: str
    expires: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    apps: set[Live] = field(default_factory=set)


@dataclass(eq=False)
class Live:
    """One running app and its socket."""

    session: Session
    ws: web.WebSocketResponse
    app: SessionApp
    last_input: float
    closing: str | None = None


class WebServer:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.store = TokenStore(config.state_dir)
        self.sessions: dict[str, Session] = {}
        self.live: set[Live] = set()
        self.failures: dict[str, deque[float]] = {}
        self.downloads = DownloadManager()
        self._tokens: list[WebToken] = []
        self._signature: tuple[int, int, int] | bool | None = False
        self._last_marked: dict[str, float] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._log_ready = False

    # -- the token store, re-read when its file changes -----------------------------------------

    def tokens(self) -> list[WebToken]:
        try:
            sig = self.store.signature()
            if sig != self._signature:
                self._tokens = self.store.load()
                self._signature = sig
        except TokenStoreError as exc:
            self.audit("token store unreadable", detail=str(exc))
            self._tokens = []  # fail closed
            self._signature = False
        return self._tokens

    def token_alive(self, token_id: str) -> bool:
        return any(t.token_id == token_id for t in self.tokens())

    # -- log -----------------------------------------------------------------------------------

    def audit(self, event: str, **fields: Any) -> None:
        """One JSON line in `<state dir>/web/web.log` (never a token)."""
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
        record.update(fields)
        try:
            folder = self.config.state_dir / "web"
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / "web.log"
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if not self._log_ready:
                path.chmod(0o600)
                self._log_ready = True
        except OSError as exc:
            log.warning("cannot write the web log: %s", exc)

    # -- origins and addresses -----------------------------------------------------------------

    def served_origin(self, request: web.Request) -> str:
        scheme = "https" if self.config.tls else "http"
        host = request.headers.get("Host", "")
        if self.config.behind_proxy:
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                scheme = proto
            fhost = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
            if fhost:
                host = fhost
        return f"{scheme}://{host}".lower()

    def origin_ok(self, request: web.Request, *, required: bool) -> bool:
        """`Origin` is the served origin; without `required`, an absent or `null` one passes too
        (the CSRF check of a POST is its SameSite cookie, see the module's docstring)."""
        origin = request.headers.get("Origin")
        if origin is None or (not required and origin.strip() == "null"):
            return not required
        return origin.strip().lower() == self.served_origin(request)

    def host_ok(self, request: web.Request) -> bool:
        names = self.config.host_names
        if names is None:
            return True
        host = request.headers.get("Host", "").strip().lower()
        if host.startswith("["):
            name = host[1 : host.find("]")] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in names

    def client_address(self, request: web.Request) -> str:
        """The peer; behind the proxy, the address the proxy appended last to X-Forwarded-For
        (the entries before it are the client's word, which a client can forge)."""
        if self.config.behind_proxy:
            forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
            if forwarded:
                return forwarded
        return request.remote or "?"

    def secure(self, request: web.Request) -> bool:
        """Cookies get Secure when the browser speaks https to us (TLS, or the proxy says so)."""
        return self.served_origin(request).startswith("https://")

    # -- sessions ------------------------------------------------------------------------------

    def session_of(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        session = self.sessions.get(sid)
        if session is None:
            return None
        if session.expires < time.time() or not self.token_alive(session.token_id):
            self.sessions.pop(sid, None)
            return None
        return session

    def _mark_used(self, token_id: str) -> None:
        now = time.monotonic()
        if now - self._last_marked.get(token_id, -1e9) < MARK_USED_EVERY_S:
            return
        self._last_marked[token_id] = now
        # in a thread, never waiting for the lock: a slow holder of tokens.lock (or a slow
        # disk's fsync) must not stall every session's socket on this loop
        asyncio.get_running_loop().run_in_executor(None, self._mark_used_now, token_id)

    def _mark_used_now(self, token_id: str) -> None:
        with contextlib.suppress(TokenStoreError, OSError):  # BlockingIOError: skipped this time
            self.store.mark_used(token_id, wait=False)

    # -- the aiohttp app -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._auth])
        app.add_routes(
            [
                web.get("/login", self.login_page),
                web.post("/login", self.login),
                web.post("/logout", self.logout),
                web.get("/", self.index),
                web.get("/ws", self.websocket),
                web.get("/download/{key}", self.download),
                web.static("/static", textual_serve_static()),
                web.static("/web", STATIC),
            ]
        )
        app.on_startup.append(self._start_watcher)
        app.on_shutdown.append(self._shutdown)
        return app

    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if not getattr(response, "prepared", False):
            h = response.headers
            h["Content-Security-Policy"] = (
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            )
            h["X-Content-Type-Options"] = "nosniff"
            h["Referrer-Policy"] = "no-referrer"
            h["X-Frame-Options"] = "DENY"
            static = request.path.startswith(("/static/", "/web/"))
            # the client (textual.js is 0.5 MB) may be kept for an hour; pages never
            h.setdefault("Cache-Control", "private, max-age=3600" if static else "no-store")
            if self.config.tls:
                h["Strict-Transport-Security"] = "max-age=31536000"
        if isinstance(response, web.HTTPException) and response.status >= 400:
            raise response
        return response

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self.host_ok(request):
            raise web.HTTPMisdirectedRequest(
                text="this server answers to its own loopback address only (Host refused)\n"
            )
        if request.path == "/favicon.ico":
            return web.Response(status=204)
        if request.path in PUBLIC_PATHS:
            return await handler(request)
        session = self.session_of(request)
        if session is None:
            if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(text="log in first: /login\n")
        request["session"] = session
        self._mark_used(session.token_id)
        return await handler(request)

    # -- login and logout ----------------------------------------------------------------------

    async def login_page(
        self, request: web.Request, message: str = "", status: int = 200
    ) -> web.Response:
        note = f'<p class="note">{html.escape(message)}</p>' if message else ""
        csrf = secrets.token_urlsafe(24)
        body = _LOGIN_HTML.replace("{note}", note).replace("{csrf}", csrf)
        response = web.Response(text=body, content_type="text/html", status=status)
        response.set_cookie(
            LOGIN_COOKIE,
            csrf,
            max_age=3600,
            path="/login",
            httponly=True,
            samesite="Strict",
            secure=self.secure(request) or None,
        )
        return response

    def _rate_limited(self, address: str) -> float:
        """Seconds until `address` may try again (0: it may now)."""
        now = time.monotonic()
        recent = self.failures.get(address)
        if recent is None:
            return 0.0
        while recent and now - recent[0] > 60:
            recent.popleft()
        if not recent:
            del self.failures[address]  # forget addresses that stopped failing
            return 0.0
        if len(recent) >= LOGIN_FAILURES_PER_MIN:
            return 60 - (now - recent[0])
        return 0.0

    async def login(self, request: web.Request) -> web.StreamResponse:
        address = self.client_address(request)
        if not self.origin_ok(request, required=False):
            self.audit("login refused", address=address, reason="foreign Origin")
            raise web.HTTPForbidden(text="cross-site login refused (Origin)\n")
        wait = self._rate_limited(address)
        if wait > 0:
            self.audit("login rate-limited", address=address)
            raise web.HTTPTooManyRequests(
                text=f"too many failed logins; try again in {int(wait) + 1} s\n",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        # counted before the body is read (a burst of parallel guesses all pass the check
        # above otherwise); forgotten again on success
        self.failures.setdefault(address, deque()).append(time.monotonic())
        form = await request.post()
        csrf_cookie = request.cookies.get(LOGIN_COOKIE, "")
        csrf_field = form.get("csrf")
        if not (
            csrf_cookie
            and isinstance(csrf_field, str)
            and secrets.compare_digest(csrf_cookie, csrf_field)
        ):
            self.audit("login refused", address=address, reason="no same-site login form")
            raise web.HTTPForbidden(
                text="login refused: post the form of this server's /login page (CSRF check)\n"
            )
        presented = form.get("token")
        record = find(self.tokens(), presented.strip()) if isinstance(presented, str) else None
        if record is None:
            self.audit("login failed", address=address)
            return await self.login_page(request, "That token is not valid.", status=401)
        self.failures.pop(address, None)
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(
            sid, record.token_id, record.label, record.scope, time.time() + SESSION_MAX_AGE_S
        )
        self.audit("login", address=address, label=record.label, scope=record.scope)
        self._mark_used(record.token_id)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            COOKIE,
            sid,
            max_age=SESSION_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure(request) or None,
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_ok(request, required=False):
            raise web.HTTPForbidden(text="cross-site logout refused (Origin)\n")
        session: Session = request["session"]
        form = await request.post()
        csrf = form.get("csrf")
        if not (isinstance(csrf, str) and secrets.compare_digest(csrf, session.csrf)):
            raise web.HTTPForbidden(text="logout refused: use this server's Log out button\n")
        self.sessions.pop(session.sid, None)
        for live in list(session.apps):
            await self.close_live(live, "logged out")
        self.audit("logout", label=session.label)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # -- the page ------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        session: Session = request["session"]
        if len(self.live) >= self.config.max_sessions:
            return _busy(self.config.max_sessions)
        origin = self.served_origin(request)
        ws_url = ("wss:" if origin.startswith("https") else "ws:") + origin.split(":", 1)[1] + "/ws"
        what = "control" if session.scope == "control" else "read-only"
        body = (
            _INDEX_HTML.replace("{ws}", html.escape(ws_url, quote=True))
            .replace("{label}", html.escape(session.label))
            .replace("{what}", what)
            .replace("{csrf}", session.csrf)
        )
        return web.Response(text=body, content_type="text/html")

    async def download(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        try:
            meta = await self.downloads.get_download_metadata(key)
        except KeyError:
            raise web.HTTPNotFound(text="no such download\n") from None
        response = web.StreamResponse()
        response.headers["Content-Type"] = meta.mime_type
        response.headers["Content-Disposition"] = "attachment"
        await response.prepare(request)
        async for chunk in self.downloads.download(key):
            await response.write(chunk)
        await response.write_eof()
        return response

    # -- the socket and its app ----------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        session: Session = request["session"]
        if not self.origin_ok(request, required=True):
            self.audit(
                "websocket refused",
                label=session.label,
                origin=request.headers.get("Origin", "")[:200],
            )
            raise web.HTTPForbidden(text="WebSocket refused: Origin is not this server's\n")
        if len(self.live) >= self.config.max_sessions:
            raise web.HTTPServiceUnavailable(
                text=f"all {self.config.max_sessions} web sessions are in use\n"
            )
        width = _to_int(request.query.get("width", "80"), 80, 20, 500)
        height = _to_int(request.query.get("height", "24"), 24, 5, 300)
        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=1 << 20)
        await ws.prepare(request)

        cfg = self.config

        def env_for(w: int, h: int) -> dict[str, str]:
            return session_environment(
                cfg.base_env,
                scope=session.scope,
                label=session.label,
                width=w,
                height=h,
                with_gateway_token=cfg.with_gateway_token,
            )

        app = SessionApp(
            cfg.app_argv,
            env_for,
            cwd=cfg.app_cwd,
            write_bytes=ws.send_bytes,
            write_str=ws.send_str,
            close=functools.partial(ws.close, message=b"the dashboard exited"),
            download_manager=self.downloads,
        )
        live = Live(session, ws, app, time.monotonic())
        self.live.add(live)
        session.apps.add(live)
        try:
            await app.start(width, height)
            self.audit("app started", label=session.label, scope=session.scope, pid=app.pid)
            await self._pump(live)
        except Exception as exc:  # one session's failure never takes the server down
            self.audit("app failed", label=session.label, error=type(exc).__name__)
        finally:
            self.live.discard(live)
            session.apps.discard(live)
            await app.stop()
            if not ws.closed:
                await ws.close(
                    code=WSCloseCode.GOING_AWAY, message=(live.closing or "bye").encode()[:120]
                )
            reason = live.closing or ("app exited" if app.ended else "socket closed")
            self.audit("app ended", label=session.label, pid=app.pid, reason=reason)
        return ws

    async def _pump(self, live: Live) -> None:
        app = live.app
        async for message in live.ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
                kind = envelope[0]
            except (ValueError, IndexError, KeyError, TypeError):
                continue
            if not isinstance(envelope, list) or len(envelope) < 2:
                continue  # every message we take has a payload
            if kind == "stdin" and isinstance(envelope[1], str):
                live.last_input = time.monotonic()
                await app.send_bytes(envelope[1].encode("utf-8"))
            elif kind == "resize" and isinstance(envelope[1], dict):
                live.last_input = time.monotonic()
                size = envelope[1]
                await app.set_terminal_size(
                    _to_int(str(size.get("width")), 80, 20, 500),
                    _to_int(str(size.get("height")), 24, 5, 300),
                )
            elif kind == "ping":
                await live.ws.send_json(["pong", envelope[1]])
            elif kind == "blur":
                await app.blur()
            elif kind == "focus":
                await app.focus()

    async def close_live(self, live: Live, reason: str) -> None:
        if live.closing is None:
            live.closing = reason
        with contextlib.suppress(Exception):
            await live.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode()[:120])

    async def _watch(self) -> None:
        """Every REVOKE_CHECK_S: end the apps of revoked or expired tokens and idle apps."""
        while True:
            await asyncio.sleep(REVOKE_CHECK_S)
            try:
                await self._check_sessions()
            except Exception as exc:  # the watcher must outlive any one failure
                self.audit("session check failed", error=f"{type(exc).__name__}: {exc}"[:200])

    async def _check_sessions(self) -> None:
        """Sessions past their token (revoked) or their Max-Age end; so do idle apps."""
        now = time.monotonic()
        alive = {t.token_id for t in self.tokens()}
        for sid, session in list(self.sessions.items()):
            if session.token_id not in alive or session.expires < time.time():
                self.sessions.pop(sid, None)
                why = "token revoked" if session.token_id not in alive else "session expired"
                for live in list(session.apps):
                    await self.close_live(live, why)
        for live in list(self.live):
            if live.session.token_id not in alive:
                await self.close_live(live, "token revoked")
            elif now - live.last_input > self.config.idle_timeout_s:
                await self.close_live(live, "idle timeout")

    async def _start_watcher(self, app: web.Application) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def _shutdown(self, app: web.Application) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await asyncio.gather(
            *(self.close_live(live, "server stopping") for live in list(self.live)),
            return_exceptions=True,
        )
        await asyncio.gather(*(live.app.stop() for live in list(self.live)), return_exceptions=True)


def _to_int(text: str, default: int, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return max(low, min(high, value))


def _busy(cap: int) -> web.Response:
    body = _PAGE.format(
        title="All web sessions are in use",
        body=(
            f"<h1>All {cap} web sessions are in use</h1><p>Close a browser tab of this fleet, "
            "or ask the operator to start <code>fleet-tui web</code> with a larger "
            '<code>--max-sessions</code>. Then <a href="/">try again</a>.</p>'
        ),
    )
    return web.Response(text=body, content_type="text/html", status=503)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/web/login.css"></head>
<body><main>{body}</main></body></html>
"""

_LOGIN_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fleet-tui · log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/web/login.css"></head>
<body><main>
<h1>Mosaic Fleet</h1>
<p>Paste a web token (<code>fleet-tui web token create --scope view</code> prints one).</p>
{note}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" autofocus required>
<button type="submit">Log in</button>
</form>
</main></body></html>
"""

_INDEX_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fleet-tui</title>
<link rel="preload" href="/static/fonts/RobotoMono-VariableFont_wght.ttf" as="font"
 type="font/ttf" crossorigin>
<link rel="stylesheet" href="/static/css/xterm.css">
<link rel="stylesheet" href="/web/app.css">
<script src="/static/js/textual.js"></script>
<script src="/web/app.js"></script>
</head>
<body>
<header><span class="brand">fleet-tui web</span>
<span class="who">{what} · token '{label}'</span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button id="logout" type="submit">Log out</button></form>
</header>
<div class="closed-dialog"><div class="intro"><div class="message">Session ended<span
 id="why"></span>. <a href="/">Start again</a></div></div></div>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{ws}"
 data-font-size="16"></div>
<div id="start"></div>
</body></html>
"""
