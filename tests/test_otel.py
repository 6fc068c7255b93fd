"""Traces (DESIGN.md "Traces and metrics", issue 19): the spans an operator would search, as the
SDK's in-memory exporter receives them, on real tmux; and nothing of OpenTelemetry without
OTEL_* (no import at all: `ps` and the poll cost what they cost before).

The in-process CLI (`conftest._cli_in_process`) runs the verbs here so that the test's
in-memory provider sees their spans; the OTLP/HTTP path across processes is in
tests/test_otel_gateway.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FleetEnv, _cli_in_process
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from fleet_tui import telemetry
from fleet_tui.model.alerts import Rule
from fleet_tui.model.records import AgentState, Health
from fleet_tui.service.alerts import AlertEngine
from fleet_tui.testing.fleets import big_snapshot

REPO = Path(__file__).resolve().parent.parent
SOCK = "mosaic-fleet"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans of this test, in memory (telemetry's state is put back afterwards)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for name in ("_state", "_tracer", "_provider"):
        monkeypatch.setattr(telemetry, name, getattr(telemetry, name))
    telemetry.use_provider(provider)
    yield exporter
    provider.shutdown()


def cli(env: FleetEnv, *args: str) -> CliResult:
    return _cli_in_process(args, env.env, input=None, cwd=env.base)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def everything_said(exporter: InMemorySpanExporter) -> str:
    """Every attribute and event of every span, as text (to look for what must not be there)."""
    parts = []
    for s in exporter.get_finished_spans():
        parts.append(repr(dict(s.attributes or {})))
        parts += [repr((e.name, dict(e.attributes or {}))) for e in s.events]
    return "\n".join(parts)


def child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    ctx = parent.get_span_context()
    return (
        child.parent is not None
        and child.parent.span_id == ctx.span_id
        and child.get_span_context().trace_id == ctx.trace_id
    )


# -- send, probe ---------------------------------------------------------------------------------


@pytest.mark.tmux
def test_send_verify_is_one_span_with_who_outcome_and_ack_latency(
    fleet_env: FleetEnv, spans: InMemorySpanExporter
) -> None:
    env = fleet_env
    env.write_roster([{"name": "enhancer", "role": "enhancer"}])
    env.stub(SOCK, "enhancer")
    text = "rotate the staging keys now"
    res = cli(env, "send", "enhancer", text, "--verify", "--timeout", "10")
    assert res.rc == 0, res

    (send,) = named(spans, "fleet.send")
    a = attrs(send)
    assert (a["fleet.tenant_id"], a["fleet.host"], a["fleet.agent"]) == ("acme", "h1", "enhancer")
    assert a["fleet.outcome"] == "accepted"
    assert 0 < a["fleet.ack_latency_ms"] < 10_000
    assert send.parent is None and send.status.status_code != StatusCode.ERROR
    # the poll that found the agent is a child, with each source's time
    (poll,) = named(spans, "fleet.poll")
    assert child_of(poll, send)
    p = attrs(poll)
    assert p["fleet.agents"] >= 1 and p["fleet.tenant_id"] == "acme"
    for source in ("tmux", "heartbeats", "processes", "join"):
        assert p[f"fleet.poll.{source}_ms"] >= 0
    assert text not in everything_said(spans)  # never the message's text


@pytest.mark.tmux
def test_a_send_to_nobody_is_an_error_span_saying_not_found(
    fleet_env: FleetEnv, spans: InMemorySpanExporter
) -> None:
    env = fleet_env
    env.write_roster([{"name": "enhancer", "role": "enhancer"}])
    env.runner.ensure_socket_dir()
    res = cli(env, "send", "nobody", "hello")
    assert res.rc == 3, res
    (send,) = named(spans, "fleet.send")
    assert attrs(send)["fleet.outcome"] == "not_found"
    assert attrs(send)["fleet.agent"] == "nobody"
    assert send.status.status_code == StatusCode.ERROR


@pytest.mark.tmux
def test_probe_is_a_span_with_its_round_trip(
    fleet_env: FleetEnv, spans: InMemorySpanExporter
) -> None:
    env = fleet_env
    env.write_roster([{"name": "enhancer", "role": "enhancer"}])
    env.stub(SOCK, "enhancer")
    res = cli(env, "probe", "enhancer", "--timeout", "10")
    assert res.rc == 0, res
    (probe,) = named(spans, "fleet.probe")
    a = attrs(probe)
    assert (a["fleet.agent"], a["fleet.outcome"]) == ("enhancer", "answered")
    assert a["fleet.rtt_ms"] > 0
    assert any(child_of(p, probe) for p in named(spans, "fleet.poll"))


# -- lifecycle -----------------------------------------------------------------------------------


def _stub_command(name: str) -> str:
    return shlex.join([sys.executable, "-m", "fleet_tui", "stub", name, "--interval", "0.5"])


@pytest.mark.tmux
def test_lifecycle_verbs_are_spans_with_the_agent_and_how_it_ended(
    fleet_env: FleetEnv, spans: InMemorySpanExporter
) -> None:
    env = fleet_env
    env.write_roster([{"name": "alpha", "role": "coder", "command": _stub_command("alpha")}])
    assert cli(env, "up", "alpha", "--settle", "0.5").rc == 0
    assert cli(env, "restart", "alpha", "--yes", "--grace", "1", "--settle", "0.5").rc == 0
    assert cli(env, "stop", "alpha", "--yes", "--grace", "1").rc == 0

    got = {s.name: attrs(s) for s in spans.get_finished_spans() if s.name.startswith("fleet.life")}
    assert sorted(got) == [
        "fleet.lifecycle.restart",
        "fleet.lifecycle.start",
        "fleet.lifecycle.stop",
    ]
    assert got["fleet.lifecycle.start"]["fleet.outcome"] == "running"
    assert got["fleet.lifecycle.restart"]["fleet.outcome"] == "running"
    assert got["fleet.lifecycle.stop"]["fleet.outcome"] == "stopped"
    for a in got.values():
        assert (a["fleet.tenant_id"], a["fleet.host"], a["fleet.agent"]) == ("acme", "h1", "alpha")
        assert a["fleet.surface"] == "cli"
    (start,) = named(spans, "fleet.lifecycle.start")
    # every audit record of the action is an event, in order
    assert [e.attributes["fleet.outcome"] for e in start.events if e.attributes] == [
        "started",
        "running",
    ]


# -- alerts --------------------------------------------------------------------------------------


def test_an_alert_episode_is_a_span_when_it_fires_and_when_it_resolves(
    spans: InMemorySpanExporter,
) -> None:
    t0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    base = big_snapshot(1, now=t0)
    agent = base.agents[0]
    assert agent.heartbeat is not None

    def snap(state: AgentState) -> Any:
        hb = agent.heartbeat.model_copy(update={"state": state}) if agent.heartbeat else None
        a = agent.model_copy(update={"heartbeat": hb, "health": Health.HEALTHY})
        return base.model_copy(update={"agents": [a]})

    rule = Rule.model_validate(
        {"name": "needs-you", "to": ["terminal"], "when": {"state": ["waiting_input"]}}
    )
    engine = AlertEngine(base_config([rule]), None, "run", wants=lambda r: True)
    engine.step(snap(AgentState.BUSY), t0)
    assert named(spans, "fleet.alert") == []  # no episode, no span
    engine.step(snap(AgentState.WAITING_INPUT), t0 + timedelta(seconds=1))
    engine.step(snap(AgentState.WAITING_INPUT), t0 + timedelta(seconds=2))
    engine.step(snap(AgentState.BUSY), t0 + timedelta(seconds=3))
    got = [attrs(s) for s in named(spans, "fleet.alert")]
    assert [a["fleet.outcome"] for a in got] == ["firing", "resolved"]
    for a in got:
        assert a["fleet.rule"] == "needs-you"
        assert (a["fleet.agent"], a["fleet.tenant_id"]) == (agent.name, agent.tenant_id)


def base_config(rules: list[Rule]) -> Any:
    from fleet_tui.model.alerts import AlertsConfig

    return AlertsConfig.model_validate({"version": 1, "rules": [r.model_dump() for r in rules]})


# -- no OTEL_*: nothing of OpenTelemetry ---------------------------------------------------------

NO_OTEL_SCRIPT = """
import sys
from fleet_tui.cli.main import main
rc = main(["ps", "--json"])
assert rc == 0, rc
from fleet_tui import telemetry
from fleet_tui.service.collector import FleetCollector
from fleet_tui.cli.args import config_from_args
from fleet_tui.cli.main import build_parser
collector = FleetCollector(config_from_args(build_parser("ps").parse_args(["ps"])))
collector.collect()
collector.collect(heartbeats_only=True)
with telemetry.span("fleet.x", agent="a") as s:
    s.set(outcome="ok")
headers = {}
telemetry.inject(headers)
assert headers == {}, headers
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
sys.stderr.write("LOADED " + " ".join(loaded) + "\\n")
"""


def _no_otel_env(env: FleetEnv) -> dict[str, str]:
    return {k: v for k, v in env.env.items() if not k.startswith("OTEL_")}


@pytest.mark.tmux
def test_without_otel_variables_ps_and_the_poll_import_nothing_of_opentelemetry(
    fleet_env: FleetEnv,
) -> None:
    env = fleet_env
    env.write_roster([{"name": "enhancer", "role": "enhancer"}])
    env.stub(SOCK, "enhancer")
    res = subprocess.run(
        [sys.executable, "-c", NO_OTEL_SCRIPT],
        env=_no_otel_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["agents"][0]["name"] == "enhancer"
    assert "LOADED \n" in res.stderr, res.stderr[-2000:]


def test_traces_asked_for_without_the_extra_is_one_warning_and_ps_still_works(
    fleet_env: FleetEnv,
) -> None:
    """The otel extra missing (its SDK made unimportable): `ps --json` answers as ever, stderr
    has one warning line saying what to install."""
    script = (
        "import sys; sys.modules['opentelemetry.sdk'] = None\n"
        "from fleet_tui.cli.main import main\n"
        "from fleet_tui import telemetry\n"
        "rc = main(['ps', '--json'])\n"
        "with telemetry.span('again'):\n    pass\n"
        "sys.exit(rc)\n"
    )
    env = {**_no_otel_env(fleet_env), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    res = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["schema"] == "mosaic.fleet.ps/v1"
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert "otel extra is not installed" in lines[0] and "fleet-tui[otel]" in lines[0]


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),  # naming a service asks for no traces
    ],
)
def test_which_environment_asks_for_traces(environ: dict[str, str], wanted: bool) -> None:
    assert telemetry.wanted(environ) is wanted


def test_off_spans_are_one_shared_object(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(k)
    monkeypatch.setattr(telemetry, "_state", 0)
    assert telemetry.span("fleet.x", agent="a") is telemetry.OFF
    assert not telemetry.enabled()


def test_a_heartbeat_that_inherited_otel_variables_imports_nothing_of_opentelemetry(
    fleet_env: FleetEnv,
) -> None:
    """Panes may inherit the operator's OTEL_* (through the tmux server's environment): the
    runtime's `heartbeat` makes no span, so it pays nothing for them."""
    env = {**fleet_env.env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    res = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "fleet_tui",
            "heartbeat",
            "a1",
            "--state",
            "idle",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| fleet_tui.cli.main" in res.stderr  # the check sees the imports at all
    assert "opentelemetry" not in res.stderr
    assert fleet_env.heartbeat("a1") is not None
