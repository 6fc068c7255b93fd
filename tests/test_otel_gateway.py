"""Across the federation boundary (DESIGN.md "Traces and metrics", issue 19), on a real gateway
on real PostgreSQL: `publish --once` and the gateway export to a real OTLP/HTTP receiver on
loopback (a tiny HTTP server here decoding ExportTraceServiceRequest with opentelemetry-proto),
and the gateway's route span continues the publisher's trace; `/metrics` is Prometheus text
(read by prometheus_client's parser) without tenant data.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pg_support
import pytest
from conftest import FleetEnv, wait_until
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from pg_support import GatewayServer
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.tmux


@dataclass
class Received:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (POST /v1/traces, protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.paths: list[str] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                got = []
                for rs in request.resource_spans:
                    res = {a.key: _value(a.value) for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            got.append(
                                Received(
                                    service=str(res.get("service.name")),
                                    name=s.name,
                                    kind=s.kind,
                                    trace_id=s.trace_id.hex(),
                                    span_id=s.span_id.hex(),
                                    parent_id=s.parent_span_id.hex(),
                                    attributes={a.key: _value(a.value) for a in s.attributes},
                                )
                            )
                with lock:
                    outer.paths.append(self.path)
                    outer.spans += got
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def otel_env(receiver: Receiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: the gateway's spans leave soon after the request
    }


def publish_once(env: FleetEnv, gw: GatewayServer, token: str, **extra: str) -> str:
    full = {
        **env.env,
        "MOSAIC_FLEET_GATEWAY_URL": gw.url,
        "MOSAIC_FLEET_GATEWAY_TOKEN": token,
        **extra,
    }
    res = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "publish", "--once", "--insecure"],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=env.base,
        check=False,
    )
    assert res.returncode == 0, res
    return res.stderr


def test_one_trace_runs_from_publish_through_the_gateways_route_span(
    fleet_env: FleetEnv,
    pg_cluster: pg_support.PgServer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in otel_env(receiver).items():
        monkeypatch.setitem(pg_support._BASE_ENV, key, value)  # the gateway process's env
    with pg_support.running_gateway(pg_cluster) as gw:
        fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
        fleet_env.runner.ensure_socket_dir()
        token = gw.token("acme", "publish")
        stderr = publish_once(fleet_env, gw, token, **otel_env(receiver))
        assert stderr == ""  # exporting says nothing

        def both() -> tuple[Received, Received] | None:
            pubs = [s for s in receiver.spans if s.name == "fleet.publish"]
            routes = [s for s in receiver.spans if s.name == "gateway POST /snapshot"]
            return (pubs[0], routes[0]) if pubs and routes else None

        publish, route = wait_until(both, timeout=20, message="both spans at the receiver")
    assert set(receiver.paths) == {"/v1/traces"}
    assert publish.service == "fleet-tui" and route.service == "fleet-tui-gateway"
    # one trace: the gateway's route span is a child of the publisher's span
    assert route.trace_id == publish.trace_id and route.parent_id == publish.span_id
    assert route.kind == 2  # SPAN_KIND_SERVER
    assert route.attributes["http.route"] == "/api/fleet/v1/snapshot"
    assert route.attributes["http.response.status_code"] == 200
    assert route.attributes["fleet.tenant_id"] == "acme"
    assert route.attributes["fleet.outcome"] == "ok"
    assert publish.attributes["fleet.outcome"] == "ok"
    assert (publish.attributes["fleet.tenant_id"], publish.attributes["fleet.host"]) == (
        "acme",
        "h1",
    )
    assert publish.attributes["fleet.delivered"] >= 1
    # the publisher's poll is in the same trace, under fleet.publish
    polls = [s for s in receiver.spans if s.name == "fleet.poll"]
    assert any(p.parent_id == publish.span_id and p.trace_id == publish.trace_id for p in polls)
    # nobody sees a token in a span
    assert token not in repr([s.attributes for s in receiver.spans])


# -- /metrics ------------------------------------------------------------------------------------


def scrape(gw: GatewayServer) -> tuple[dict[str, Any], str]:
    resp = httpx.get(f"{gw.url}/metrics", timeout=10)  # no token
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(resp.text)}, resp.text


def test_metrics_count_routes_by_template_and_age_hosts_without_tenant_data(
    fleet_env: FleetEnv, gateway: GatewayServer
) -> None:
    fleet_env.write_roster([{"name": "orchestrator", "role": "orchestrator"}])
    fleet_env.runner.ensure_socket_dir()
    publish_once(fleet_env, gateway, gateway.token("acme", "publish"))
    read = gateway.token("acme", "read")
    for _ in range(3):
        r = httpx.get(
            f"{gateway.api}/snapshot",
            params={"tenant": "acme"},
            headers={"Authorization": f"Bearer {read}"},
            timeout=10,
        )
        assert r.status_code == 200
    bad = httpx.get(f"{gateway.api}/snapshot?tenant=acme", headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401
    assert httpx.get(f"{gateway.url}/no/such/path-secret-acme").status_code == 404

    families, text = scrape(gateway)
    requests = {
        (s.labels["route"], s.labels["method"], s.labels["code"]): s.value
        for s in families["fleet_gateway_requests"].samples
    }
    assert requests[("/api/fleet/v1/snapshot", "GET", "200")] == 3
    assert requests[("/api/fleet/v1/snapshot", "GET", "401")] == 1
    assert requests[("/api/fleet/v1/snapshot", "POST", "200")] == 1
    assert requests[("unmatched", "GET", "404")] == 1
    hist = families["fleet_gateway_request_duration_seconds"]
    counts = {
        s.labels["method"]: s.value
        for s in hist.samples
        if s.name.endswith("_count") and s.labels["route"] == "/api/fleet/v1/snapshot"
    }
    assert counts == {"GET": 4, "POST": 1}
    (hosts,) = families["fleet_gateway_publishing_hosts"].samples
    assert hosts.value == 1
    (age,) = families["fleet_gateway_host_snapshot_age_seconds"].samples
    assert age.labels == {"host": "h1"} and 0 <= age.value < 60
    assert families["fleet_gateway_database_up"].samples[0].value == 1
    pool = families["fleet_gateway_db_pool_size"].samples[0].value
    assert 1 <= pool <= families["fleet_gateway_db_pool_max"].samples[0].value
    assert families["fleet_gateway_db_pool_requests"].samples[0].value >= 5
    # no tenant id, agent name, token or raw path anywhere in it
    for secret in ("acme", "orchestrator", read, "path-secret", "tenant="):
        assert secret not in text
