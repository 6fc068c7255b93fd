"""Run the web server until SIGINT/SIGTERM: bind, say where (one line on stdout), serve, then end
every session's app (process groups included) before exiting."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from fleet_tui.web.server import WebConfig, WebServer


def run(
    host: str,
    port: int,
    *,
    state_dir: Path,
    app_argv: list[str],
    with_gateway_token: bool,
    cert: str | None,
    key: str | None,
    behind_proxy: bool,
    max_sessions: int,
    idle_timeout_s: float,
) -> int:
    from fleet_tui.errors import BadInput

    context = None
    if cert and key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise BadInput(f"--cert/--key: cannot load them ({exc})") from None
    config = WebConfig(
        state_dir=Path(state_dir),
        app_argv=app_argv,
        base_env=dict(os.environ),
        with_gateway_token=with_gateway_token,
        tls=context is not None,
        behind_proxy=behind_proxy,
        max_sessions=max_sessions,
        idle_timeout_s=idle_timeout_s,
        app_cwd=None,  # the server's: relative paths in the environment mean the same there
        host_names=None if behind_proxy else loopback_names(host),
    )
    return asyncio.run(_serve(WebServer(config), host, port, context))


def loopback_names(host: str) -> frozenset[str] | None:
    """The `Host` names a server listening on loopback `host` answers to; None (any) when it
    listens beyond loopback (with TLS, under whatever name its certificate gives)."""
    bare = host.strip("[]").lower()
    if bare != "localhost":
        try:
            if not ipaddress.ip_address(bare).is_loopback:
                return None
        except ValueError:
            return None
    return frozenset({bare, "localhost", "127.0.0.1", "::1"})


async def _serve(server: WebServer, host: str, port: int, context: ssl.SSLContext | None) -> int:
    from fleet_tui.errors import BadInput

    runner = web.AppRunner(server.make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, shutdown_timeout=5.0)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sockets = getattr(site._server, "sockets", None) or []  # the bound port (port 0: any free)
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if context is not None else "http"
    print(
        f"fleet-tui web: serving on {scheme}://{shown}:{bound}/ "
        f"(at most {server.config.max_sessions} sessions; tokens: 'fleet-tui web token create')",
        flush=True,
    )
    server.audit("server started", listen=f"{host}:{bound}", tls=context is not None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        server.audit("server stopped")
    sys.stdout.flush()
    return 0
