"""Run the gateway: migrate, bind the listening socket, print where, serve with uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import sys

import uvicorn

from fleet_tui.server.app import create_app
from fleet_tui.server.db import GatewayDbError, migrate


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise GatewayDbError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8787")
    return host.strip("[]"), int(port)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
    # (with proto 0, answers on a kept-alive connection wait ~40 ms for a delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise GatewayDbError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def serve(
    dsn: str,
    listen: str,
    *,
    access_log: bool = True,
    pool_max: int = 10,
    host_retention_days: float = 7.0,
) -> int:
    """Migrate, then serve until interrupted (SIGINT/SIGTERM). Returns an exit code."""
    host, port = parse_listen(listen)
    version, applied = migrate(dsn)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    note = f", applied {', '.join(str(v) for v in applied)}" if applied else ""
    sys.stdout.write(
        f"fleet-tui gateway: listening on http://{shown}:{sock.getsockname()[1]}"
        f" (schema fleet version {version}{note})\n"
    )
    sys.stdout.flush()
    if not _loopback(host):
        sys.stderr.write(
            "fleet-tui gateway: warning: plain HTTP on a non-loopback address; bearer tokens "
            "cross the network in clear unless a TLS proxy is in front\n"
        )
    app = create_app(dsn, pool_max=pool_max, host_retention_days=host_retention_days)
    config = uvicorn.Config(
        app,
        access_log=access_log,
        log_level="info",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
