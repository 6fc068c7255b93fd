"""The publisher's writes to the gateway (DESIGN.md "Gateway API, version 1"): POST of a host's
snapshot, heartbeats, usage samples and spend records, each with an idempotency key (a retry
reuses it; the gateway also recognises resent identical records).

Only `fleet_tui.service.publisher` sends through this; the dashboard's reads are
`fleet_tui.remote.client`. Settings, token and errors: `fleet_tui.remote.connection`.
"""

from __future__ import annotations

import json
import uuid

from fleet_tui import telemetry
from fleet_tui.remote.connection import GatewayConnection


class GatewayPush(GatewayConnection):
    """Writes to the register. Blocking; one request at a time per instance."""

    def post(self, route: str, body: object, *, idempotency_key: str | None = None) -> int:
        """POST `body` as JSON to `route`; returns the status of a 2xx answer, raises
        GatewayError (its `items` name the records of a batch the gateway refused)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
        }
        telemetry.inject(headers)  # W3C traceparent (traces on): the gateway continues the trace
        status, _data = self.request("POST", route, content=content, headers=headers)
        return status
