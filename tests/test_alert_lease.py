"""The alert-evaluator lease at the reference gateway (issue 15: one evaluator per tenant, so two
hosts do not both alert the same episode), against a real PostgreSQL and a real server on
loopback: of holders racing for it exactly one holds it, its holder renews it, an expired lease
goes to the next who asks, only the holder releases it, tenants never see or block each other,
bad bodies and missing tokens get the usual error answers; and the client's calls over HTTP.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from conftest import wait_until
from pg_support import GatewayServer

from fleet_tui.remote.client import AlertLease, GatewayClient
from fleet_tui.remote.connection import GatewayError, GatewaySettings, Secret
from fleet_tui.server import db

LEASE = "/alerts/lease"


def client(gw: GatewayServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=gw.api, headers=headers, timeout=10)


def take(c: httpx.Client, holder: str, ttl_s: float = 60, **params: str) -> dict[str, Any]:
    r = c.post(LEASE, json={"holder": holder, "ttl_s": ttl_s}, params=params)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def release(c: httpx.Client, holder: str, **params: str) -> bool:
    r = c.request("DELETE", LEASE, json={"holder": holder}, params=params)
    assert r.status_code == 200, r.text
    return bool(r.json()["released"])


def error_of(r: httpx.Response) -> tuple[int, str, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return r.status_code, body["error"]["code"], body["error"]["message"]


def when(answer: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))


def race(gw: GatewayServer, token: str, holders: list[str]) -> dict[str, dict[str, Any]]:
    """Every holder asks for the lease at the same moment, each on its own connection."""
    answers: dict[str, dict[str, Any]] = {}
    start = threading.Barrier(len(holders))

    def ask(holder: str) -> None:
        with client(gw, token) as c:
            c.get("/snapshot")  # connected before the race starts
            start.wait(10)
            answers[holder] = take(c, holder, ttl_s=60)

    threads = [threading.Thread(target=ask, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_of_holders_racing_for_a_free_lease_exactly_one_holds_it(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    for round_ in range(4):
        token = gw.token(f"race{round_}", "read")
        holders = [f"host{i}:{1000 + i}:r{round_}" for i in range(8)]
        answers = race(gw, token, holders)
        assert set(answers) == set(holders)
        winners = [h for h, a in answers.items() if a["held"]]
        assert len(winners) == 1, answers
        (winner,) = winners
        # every loser is told who holds it, and until when
        assert {a["holder"] for a in answers.values()} == {winner}
        assert len({a["expires_at"] for a in answers.values()}) == 1
        with client(gw, token) as c:  # and the one that won keeps it
            assert take(c, "late:1:x")["holder"] == winner


def test_the_holder_renews_and_keeps_it_others_are_told_who_holds_it(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("renew", "read")) as c:
        first = take(c, "a:1:x", ttl_s=30)
        assert first["held"] and first["holder"] == "a:1:x"
        assert 25 <= first["expires_in_s"] <= 30
        assert when(first) > datetime.now(UTC) + timedelta(seconds=10)
        other = take(c, "b:2:y", ttl_s=600)
        assert not other["held"] and other["holder"] == "a:1:x"
        assert other["expires_at"] == first["expires_at"]  # asking did not extend it
        renewed = take(c, "a:1:x", ttl_s=300)
        assert renewed["held"] and renewed["holder"] == "a:1:x"
        assert when(renewed) > when(first) and renewed["expires_in_s"] > 250
        assert not take(c, "b:2:y")["held"]


def test_an_expired_lease_goes_to_the_next_who_asks(module_gateway: GatewayServer) -> None:
    """A holder that stops renewing (its host died) loses it at expiry, on the gateway's clock."""
    gw = module_gateway
    with client(gw, gw.token("expire", "read")) as c:
        first = take(c, "a:1:x", ttl_s=5)
        taken_at = time.monotonic()
        assert first["held"]
        assert not take(c, "b:2:y", ttl_s=5)["held"]
        second = wait_until(
            lambda: (a := take(c, "b:2:y", ttl_s=60))["held"] and a,
            timeout=30,
            interval=0.25,
            message="b takes the expired lease",
        )
        assert time.monotonic() - taken_at >= 4  # not before it expired
        assert second["holder"] == "b:2:y" and when(second) > when(first)
        back = take(c, "a:1:x", ttl_s=5)  # the old holder comes back: it no longer holds it
        assert not back["held"] and back["holder"] == "b:2:y"


def test_only_the_holder_releases_it_and_then_it_is_free_at_once(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("release", "publish")) as c:  # a publish token may use it too
        assert take(c, "a:1:x", ttl_s=600)["held"]
        assert release(c, "b:2:y") is False  # not the holder: nothing changes
        assert take(c, "b:2:y")["holder"] == "a:1:x"
        assert release(c, "a:1:x") is True
        assert release(c, "a:1:x") is False  # already free
        now = take(c, "b:2:y", ttl_s=600)
        assert now["held"] and now["holder"] == "b:2:y"


def test_tenants_never_see_nor_block_each_others_lease(module_gateway: GatewayServer) -> None:
    gw = module_gateway
    with client(gw, gw.token("lease-a", "read")) as a, client(gw, gw.token("lease-b", "read")) as b:
        assert take(a, "evaluator:1:x")["held"]
        # the same holder name, another tenant: its own, independent lease
        assert take(b, "evaluator:1:x")["held"]
        assert take(b, "other:2:y")["holder"] == "evaluator:1:x"
        assert release(b, "evaluator:1:x") is True
        assert take(a, "other:2:y")["holder"] == "evaluator:1:x"  # a's lease untouched
        assert release(b, "evaluator:1:x") is False
        assert take(b, "other:2:y")["held"]
        r = a.post(LEASE, params={"tenant": "lease-b"}, json={"holder": "x", "ttl_s": 60})
        assert error_of(r)[:2] == (403, "forbidden")
        r = a.request("DELETE", LEASE, params={"tenant": "lease-b"}, json={"holder": "other:2:y"})
        assert error_of(r)[:2] == (403, "forbidden")
    with client(gw, gw.token(["lease-a", "lease-b"], "read")) as both:
        assert take(both, "z:9:z", tenant="lease-a")["holder"] == "evaluator:1:x"
        assert take(both, "z:9:z", tenant="lease-b")["holder"] == "other:2:y"
        r = both.post(LEASE, json={"holder": "z:9:z", "ttl_s": 60})
        assert error_of(r)[:2] == (422, "validation_error")  # which tenant?
    with psycopg.connect(gw.dsn) as conn:  # the database itself hides the other tenant's row
        conn.execute(f"SET ROLE {db.APP_ROLE}")
        conn.execute("SELECT set_config('fleet.tenant', 'lease-a', false)")
        rows = conn.execute("SELECT tenant_id, holder FROM fleet.alert_leases").fetchall()
        assert rows == [("lease-a", "evaluator:1:x")]
        gone = conn.execute("DELETE FROM fleet.alert_leases WHERE holder = 'other:2:y'").rowcount
        assert gone == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO fleet.alert_leases (tenant_id, holder, expires_at)"
                " VALUES ('lease-b', 'x', now())"
            )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ttl_s": 60}, "holder"),
        ({"holder": "", "ttl_s": 60}, "holder"),
        ({"holder": "h" * 201, "ttl_s": 60}, "holder"),
        ({"holder": "a\nb", "ttl_s": 60}, "holder"),
        ({"holder": "a\u0000b", "ttl_s": 60}, "holder"),
        ({"holder": "h:1:x"}, "ttl_s"),
        ({"holder": "h:1:x", "ttl_s": 4}, "ttl_s"),
        ({"holder": "h:1:x", "ttl_s": 601}, "ttl_s"),
        ({"holder": "h:1:x", "ttl_s": "60"}, "ttl_s"),
        ({"holder": "h:1:x", "ttl_s": True}, "ttl_s"),
        ([{"holder": "h:1:x", "ttl_s": 60}], "body"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(
    module_gateway: GatewayServer, body: object, field: str
) -> None:
    gw = module_gateway
    with client(gw, gw.token("bodies", "read")) as c:
        code, kind, message = error_of(c.post(LEASE, json=body))
        assert (code, kind) == (422, "validation_error") and message.startswith(f"{field}:")
        assert take(c, "fine:1:x")["held"]  # nothing of the bad bodies was taken
        assert release(c, "fine:1:x")


def test_not_json_nan_a_lone_surrogate_and_a_huge_body_get_the_error_answer(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    with client(gw, gw.token("strict", "read")) as c:
        for raw in (
            b"{not json",
            b'{"holder": "h", "ttl_s": NaN}',
            b'{"holder": "\\ud800", "ttl_s": 60}',
            b'{"holder": "h", "ttl_s": 60}\xff',
        ):
            r = c.post(LEASE, content=raw, headers={"content-type": "application/json"})
            assert error_of(r)[:2] == (422, "validation_error"), raw
        big = b'{"holder": "' + b"a" * (4 * 1024 * 1024) + b'", "ttl_s": 60}'
        assert error_of(c.post(LEASE, content=big))[:2] == (413, "payload_too_large")
        r = c.request("DELETE", LEASE, json={"holder": ""})
        assert error_of(r)[:2] == (422, "validation_error") and "holder" in r.text


def test_no_token_or_a_bad_one_is_401_before_the_body_is_read(
    module_gateway: GatewayServer,
) -> None:
    gw = module_gateway
    for token in (None, "fleet_not-a-token"):
        with client(gw, token) as c:
            r = c.post(LEASE, json={"holder": "h:1:x", "ttl_s": 60}, params={"tenant": "acme"})
            assert error_of(r)[:2] == (401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
            r = c.post(LEASE, content=b"{not json", headers={"content-type": "application/json"})
            assert error_of(r)[:2] == (401, "unauthorized")
            r = c.request("DELETE", LEASE, json={"holder": "h:1:x"})
            assert error_of(r)[:2] == (401, "unauthorized")


def test_the_client_takes_renews_and_releases_over_http(module_gateway: GatewayServer) -> None:
    gw = module_gateway
    token = gw.token("client-lease", "read")

    def settings(tok: str) -> GatewaySettings:
        return GatewaySettings(url=gw.url, token=Secret(tok), insecure=True)

    with GatewayClient(settings(token)) as one, GatewayClient(settings(token)) as two:
        got = one.lease_alerts("client-lease", "one:1:x", 30)
        assert isinstance(got, AlertLease)
        assert got.held and got.holder == "one:1:x"
        assert got.expires_at > datetime.now(UTC) + timedelta(seconds=10)
        assert got.expires_in_s is not None and 25 <= got.expires_in_s <= 30
        lost = two.lease_alerts("client-lease", "two:2:y", 30)
        assert not lost.held and lost.holder == "one:1:x" and lost.expires_at == got.expires_at
        assert one.lease_alerts("client-lease", "one:1:x", 60).expires_at > got.expires_at
        assert two.release_alerts("client-lease", "two:2:y") is False
        assert one.release_alerts("client-lease", "one:1:x") is True
        assert two.lease_alerts("client-lease", "two:2:y", 30).held
        with pytest.raises(GatewayError) as bad:
            one.lease_alerts("client-lease", "one:1:x", 3)  # below 5 s
        assert bad.value.kind == "rejected" and bad.value.status == 422
        assert "ttl_s" in str(bad.value) and "\n" not in str(bad.value)
        with pytest.raises(GatewayError) as other:
            one.lease_alerts("another-tenant", "one:1:x", 30)
        assert other.value.kind == "refused" and other.value.status == 403
    with GatewayClient(settings("fleet_" + "x" * 40)) as wrong:
        with pytest.raises(GatewayError) as refused:
            wrong.release_alerts("client-lease", "two:2:y")
        assert refused.value.kind == "refused" and refused.value.status == 401
        assert "x" * 40 not in str(refused.value) and len(str(refused.value).splitlines()) == 1


class _OlderGateway(BaseHTTPRequestHandler):
    """A gateway from before the lease: every route it does not know is its 404 envelope."""

    def log_message(self, *args: Any) -> None:
        pass

    def _no_route(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"error": {"code": "not_found", "message": "no such route"}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_DELETE = _no_route


def test_a_gateway_without_the_lease_says_upgrade_it_in_one_line() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OlderGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with GatewayClient(GatewaySettings(url=url, token=Secret("t0k3n"), insecure=True)) as c:
            for call in (
                lambda: c.lease_alerts("acme", "h:1:x", 30),
                lambda: c.release_alerts("acme", "h:1:x"),
            ):
                with pytest.raises(GatewayError) as old:
                    call()
                text = str(old.value)
                assert "has no alert lease" in text and "upgrade it" in text, text
                assert old.value.status == 404 and len(text.splitlines()) == 1
    finally:
        server.shutdown()
        server.server_close()
