"""The gateway's `/metrics` text without a gateway (server/observe.py): what a scrape says when
the database does not answer, and that every figure parses as Prometheus text 0.0.4. The live
route is tested against a real gateway in tests/test_otel_gateway.py."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fleet_tui.server.observe import BUCKETS, RouteStats, render


def families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, dict(s.labels), s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def test_a_scrape_while_the_database_is_down_says_so_and_names_no_host() -> None:
    stats = RouteStats()
    stats.observe("GET", "/api/fleet/v1/snapshot", 503, 5.2)
    got = families(render(stats, None, None))
    assert got["fleet_gateway_database_up"] == [("fleet_gateway_database_up", {}, 0.0)]
    assert "fleet_gateway_publishing_hosts" not in got
    assert "fleet_gateway_host_snapshot_age_seconds" not in got
    assert not any(name.startswith("fleet_gateway_db_pool") for name in got)
    (req,) = got["fleet_gateway_requests"]
    assert req[1] == {"route": "/api/fleet/v1/snapshot", "method": "GET", "code": "503"}


def test_the_latency_histogram_is_cumulative_and_counts_every_request() -> None:
    stats = RouteStats()
    for seconds in (0.001, 0.02, 0.02, 0.3, 20.0):
        stats.observe("POST", "/api/fleet/v1/heartbeats", 200, seconds)
    text = render(stats, [("h1", 1.5), ("h2", 30.0)], {"pool_max": 4, "pool_size": 2})
    got = families(text)
    buckets = {
        s[1]["le"]: s[2] for s in got["fleet_gateway_request_duration_seconds"] if "le" in s[1]
    }
    assert len(buckets) == len(BUCKETS) + 1
    assert (buckets["0.005"], buckets["0.025"], buckets["0.5"], buckets["10.0"]) == (1, 3, 4, 4)
    assert buckets["+Inf"] == 5
    ages = {s[1]["host"]: s[2] for s in got["fleet_gateway_host_snapshot_age_seconds"]}
    assert ages == {"h1": 1.5, "h2": 30.0}
    assert got["fleet_gateway_publishing_hosts"][0][2] == 2
    assert got["fleet_gateway_db_pool_size"][0][2] == 2
    assert got["fleet_gateway_db_pool_requests"][0][2] == 0  # a counter not yet counted: 0


async def test_made_up_methods_share_one_label_so_no_client_can_grow_the_metrics() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from fleet_tui.server.observe import Observe

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
    stats = RouteStats()
    transport = httpx.ASGITransport(app=Observe(inner, stats, inner.router))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        for i in range(50):
            await client.request(f"M{i:06d}", "/healthz")  # no token needed to send these
        assert (await client.get("/healthz")).status_code == 200
    got = families(render(stats, None, None))
    methods = {s[1]["method"] for s in got["fleet_gateway_requests"]}
    assert methods == {"OTHER", "GET"}
    assert len(got["fleet_gateway_requests"]) == 2
