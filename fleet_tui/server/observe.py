"""What the gateway says about itself (DESIGN.md "Traces and metrics"): a route span per request
that continues the caller's trace (W3C `traceparent`, e.g. the publisher's), and the Prometheus
text of `GET /metrics`.

`/metrics` needs no token, like `/healthz`: a scraper holds no tenant's token, and nothing in it
is a tenant's data: no tenant id, agent name, token or body. It says per route template (never
a raw path: `/api/fleet/v1/snapshot`, not its query) how many requests got which status and how
long they took; how many hosts publish and how long ago each one's last snapshot arrived
(labelled by host name only: the newest across tenants when two tenants share a name); and the
database pool's use. Host names are the one thing it names: a gateway whose host names are
themselves confidential keeps `/metrics` behind its proxy, as it would `/healthz`.

Written by hand (text format 0.0.4): a dozen lines, no registry shared across app instances
(tests build several apps in one process), no new dependency for the gateway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_tui import telemetry
from fleet_tui.server.errors import API

if TYPE_CHECKING:
    from fleet_tui.server.deps import Register

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # the route label of a request no route took (404): never its path
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# The methods counted under their own name; any other (a client may send anything) is `OTHER`,
# so an unauthenticated client cannot grow the metrics, their memory or a span name at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteStats:
    """Requests by (method, route template, status) and their latency histogram by (method,
    route). The event loop is the only writer: no lock."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # bucket counts, sum, count

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        row = self.latency.get((method, route))
        if row is None:
            row = self.latency[(method, route)] = [0.0] * (len(BUCKETS) + 2)
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                row[i] += 1
        row[-2] += seconds
        row[-1] += 1


def route_template(scope: Scope, router: Router | None = None) -> str:
    """The matched route's path template (`/api/fleet/v1/snapshot`), or `unmatched`. A request
    answered before routing (413 for a declared body too large) is matched here."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    for route in router.routes if router is not None else ():
        if route.matches(scope)[0] != Match.NONE:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                return path
    return UNMATCHED


def _short(route: str) -> str:
    return route.removeprefix(API) or route


class Observe:
    """Pure ASGI middleware: the route span and the route statistics of every HTTP request."""

    def __init__(self, app: ASGIApp, stats: RouteStats, router: Router | None = None) -> None:
        self.app = app
        self.stats = stats
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        if method not in METHODS:  # a made-up method is one label, not one series each
            method = "OTHER"
        status = 500  # what the client gets when the app fails before answering

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        with telemetry.server_span(
            f"gateway {method}", scope.get("headers", ()), **{"http.request.method": method}
        ) as span:
            try:
                await self.app(scope, receive, answer)
            finally:
                route = route_template(scope, self.router)
                self.stats.observe(method, route, status, time.perf_counter() - started)
                if span.recording:
                    span.rename(f"gateway {method} {_short(route)}")
                    outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
                    span.set(
                        outcome=outcome,
                        **{"http.route": route, "http.response.status_code": status},
                    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def render(
    stats: RouteStats, hosts: list[tuple[str, float]] | None, pool: dict[str, int] | None
) -> str:
    """The Prometheus text: route statistics, publishing hosts and their last snapshot's age
    (None: the database did not answer), the database pool (None: not open)."""
    lines: list[str] = []
    lines += _family(
        "fleet_gateway_requests_total",
        "counter",
        "Requests answered, by route template, method and status code.",
        (
            f'fleet_gateway_requests_total{{route="{_label(r)}",method="{m}",code="{c}"}} {n}'
            for (m, r, c), n in sorted(stats.requests.items())
        ),
    )
    hist: list[str] = []
    name = "fleet_gateway_request_duration_seconds"
    for (m, r), row in sorted(stats.latency.items()):
        labels = f'route="{_label(r)}",method="{m}"'
        for bound, count in zip(BUCKETS, row, strict=False):
            hist.append(f'{name}_bucket{{{labels},le="{float(bound)!r}"}} {_num(count)}')
        hist.append(f'{name}_bucket{{{labels},le="+Inf"}} {_num(row[-1])}')
        hist.append(f"{name}_sum{{{labels}}} {_num(row[-2])}")
        hist.append(f"{name}_count{{{labels}}} {_num(row[-1])}")
    lines += _family(name, "histogram", "Time to answer, by route template and method.", hist)
    lines += _family(
        "fleet_gateway_database_up",
        "gauge",
        "1 when the database answered this scrape, else 0 (then no host figures).",
        [f"fleet_gateway_database_up {0 if hosts is None else 1}"],
    )
    lines += (
        []
        if hosts is None
        else _family(
            "fleet_gateway_publishing_hosts",
            "gauge",
            "Hosts with a stored snapshot (all tenants; a host name shared by tenants counts once).",
            [f"fleet_gateway_publishing_hosts {len(hosts)}"],
        )
    )
    lines += (
        []
        if hosts is None
        else _family(
            "fleet_gateway_host_snapshot_age_seconds",
            "gauge",
            "Seconds since the host's last snapshot was received (by the gateway's clock).",
            (
                f'fleet_gateway_host_snapshot_age_seconds{{host="{_label(h)}"}} {_num(round(age, 3))}'
                for h, age in hosts
            ),
        )
    )
    if pool is not None:
        for key, kind, help_text in (
            ("pool_max", "gauge", "Connections the pool may open."),
            ("pool_size", "gauge", "Connections open now (in use or idle)."),
            ("pool_available", "gauge", "Idle connections ready to be used."),
            ("requests_waiting", "gauge", "Requests waiting for a connection now."),
        ):
            metric = f"fleet_gateway_db_{key if key.startswith('pool') else 'pool_' + key}"
            lines += _family(metric, kind, help_text, [f"{metric} {pool.get(key, 0)}"])
        for key, metric, help_text in (
            ("requests_num", "fleet_gateway_db_pool_requests_total", "Connections asked for."),
            (
                "requests_errors",
                "fleet_gateway_db_pool_request_errors_total",
                "Connections asked for and not given (timeout, pool closed).",
            ),
            (
                "connections_lost",
                "fleet_gateway_db_pool_connections_lost_total",
                "Connections found broken.",
            ),
        ):
            lines += _family(metric, "counter", help_text, [f"{metric} {pool.get(key, 0)}"])
    return "\n".join(lines) + "\n"


async def host_ages(register: Register) -> list[tuple[str, float]]:
    """(host, seconds since its newest snapshot was received), across tenants, by host name.
    Runs as the connecting user (the register's owner), like the token lookups: the app role
    sees one tenant's rows only."""
    async with register.pool.connection(timeout=5) as conn:
        cur = await conn.execute(
            "SELECT host, extract(epoch FROM now() - max(received_at))::float8"
            " FROM fleet.host_snapshots GROUP BY host ORDER BY host"
        )
        rows: list[Any] = await cur.fetchall()
    return [(str(h), max(0.0, float(age))) for h, age in rows]
