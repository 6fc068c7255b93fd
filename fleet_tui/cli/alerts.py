"""The `alerts` verbs (DESIGN.md "Alerts, version 1"): `run` (the headless evaluator that
delivers to the outside channels), `test CHANNEL`, `list [--json]`, `silence RULE AGENT...`.

`alerts run` polls the fleet (a full poll every `--every` seconds, and a heartbeat-only one as
soon as the spool folder changes: a heartbeat saying `waiting_input` is seen within a fraction of
a second), steps its `AlertEngine` (consumer `run`: the outside channels only; the dashboard keeps
its own book for `terminal`), puts each event into the on-disk outbox once per outside channel of
its rule, writes one audit line per event, and lets a sender thread flush the outbox (retries with
backoff live there). Polls run on one thread, so they never overlap; a slow or hanging receiver
holds up only the sender. Log lines go to stderr with a UTC time and never carry a secret: a
channel is named by `describe` (name, type, `scheme://host[:port]`).

Imports only argparse at module level (the CLI loads every verb module to build its parser).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fleet_tui.cli.args import add_gateway_flags, config_from_args, gateway_from_args, positive

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.core.alerts import AlertEvent
    from fleet_tui.model.alerts import AlertsConfig, Channel
    from fleet_tui.remote.client import GatewayClient
    from fleet_tui.service.alert_outbox import Outbox
    from fleet_tui.service.alerts import AlertEngine
    from fleet_tui.service.poll import LiveSource
    from fleet_tui.sources.alerts import LoadedAlerts

CONSUMER = "run"  # this evaluator's book: episodes-run.json
TERMINAL_CONSUMER = "terminal"  # the dashboard's book
LIST_SCHEMA = "mosaic.fleet.alerts-list/v1"
TEST_DETAIL = "a test alert from fleet-tui alerts test"
MAX_SILENCE_S = 365 * 86400
HB_POLL_GAP_S = 0.2  # heartbeat-only polls at most this often (a busy spool changes constantly)
SENDER_IDLE_S = 30.0  # the sender looks at the outbox at least this often
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `alerts` and its actions on the CLI's subparsers."""
    p = sub.add_parser(
        "alerts",
        help="the headless alert evaluator, test alerts, rules, episodes and silences",
        description="Alerts of alerts.yaml (--alerts PATH, env MOSAIC_FLEET_ALERTS, default "
        "$XDG_CONFIG_HOME/mosaic/alerts.yaml). Exit 2 for an invalid alerts file (file:line).",
    )
    common(p)
    actions = p.add_subparsers(dest="alerts_action", metavar="ACTION", parser_class=type(p))
    actions.required = True

    def alerts_flag(q: argparse.ArgumentParser) -> None:
        common(q)
        q.add_argument(
            "--alerts", metavar="PATH", default=None, help="alerts.yaml (env MOSAIC_FLEET_ALERTS)"
        )

    q = actions.add_parser(
        "run",
        help="evaluate the rules and deliver to the outside channels (runs until stopped)",
        description="The headless evaluator: polls the fleet every S seconds (and at once when a "
        "heartbeat changes), fires and resolves episodes, delivers them to the outside channels "
        "through an on-disk outbox (retried with backoff). SIGTERM/SIGINT: finish the step, exit "
        "0. With --gateway: every host of the tenant, one evaluator per tenant (a lease).",
    )
    alerts_flag(q)
    q.add_argument("--every", metavar="S", type=positive, default=2.0, help="full poll interval")
    q.add_argument("--once", action="store_true", help="one poll, one delivery attempt, exit")
    add_gateway_flags(q)

    q = actions.add_parser("test", help="send a test alert to one channel now")
    alerts_flag(q)
    q.add_argument("channel", metavar="CHANNEL")

    q = actions.add_parser("list", help="rules, open episodes, silences, the outbox")
    alerts_flag(q)
    q.add_argument("--json", action="store_true", help=f"one JSON object ({LIST_SCHEMA})")

    q = actions.add_parser(
        "silence",
        help="silence a rule ('*': every rule) for agents, for a while",
        description="Write an operator silence that the dashboard and 'alerts run' read.",
    )
    alerts_flag(q)
    q.add_argument("rule", metavar="RULE|'*'")
    q.add_argument("agents", metavar="AGENT_GLOB", nargs="+")
    q.add_argument(
        "--for", dest="duration", metavar="DURATION", required=True, help="e.g. 15m, 2h, 1d"
    )
    q.add_argument("--reason", metavar="TEXT", default=None)


def cmd_alerts(args: argparse.Namespace) -> int:
    action = {
        "run": cmd_run,
        "test": cmd_test,
        "list": cmd_list,
        "silence": cmd_silence,
    }[args.alerts_action]
    return action(args)


VERBS = {"alerts": cmd_alerts}


# -- shared ----------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> FleetConfig:
    from fleet_tui.config.paths import alerts_location

    config = config_from_args(args)
    config.alerts = alerts_location(getattr(args, "alerts", None))
    return config


def _load(config: FleetConfig) -> LoadedAlerts | None:
    """The alerts file (AlertsError, exit 2, when invalid or named and missing); None when the
    default file does not exist."""
    from fleet_tui.sources.alerts import load_alerts

    where = config.alerts
    if not where.explicit and not where.path.exists():
        return None
    return load_alerts(where.path)


def _rules_or_default(config: FleetConfig) -> tuple[AlertsConfig, LoadedAlerts | None]:
    from fleet_tui.model.alerts import DEFAULT_RULES

    loaded = _load(config)
    return (loaded.config if loaded else DEFAULT_RULES), loaded


def _outbox_dir(state_dir: Path) -> Path:
    from fleet_tui.service.alerts import alerts_dir

    return alerts_dir(state_dir) / "outbox"


def _stamp(ts: datetime) -> str:
    from fleet_tui.protocol.clock import format_ts

    return format_ts(ts)


def _c(text: object, max_len: int = 64) -> str:
    from fleet_tui.core.sanitize import clean_text

    return clean_text(str(text), max_len=max_len)


def _outside(rule_to: list[str]) -> list[str]:
    from fleet_tui.model.alerts import TERMINAL

    return [t for t in rule_to if t != TERMINAL]


# -- alerts test -----------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace) -> int:
    from fleet_tui.config.fleet import configured_identity
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK, BadInput
    from fleet_tui.model.alerts import ALERT_SCHEMA
    from fleet_tui.protocol.clock import utcnow
    from fleet_tui.service.alert_channels import DeliveryFailed, deliver, describe, http_client

    config = _config(args)
    loaded = _load(config)
    if loaded is None:
        raise BadInput(f"no alerts file at {config.alerts.path}: no channel to test")
    channel = loaded.config.channel(args.channel)
    if channel is None:
        names = ", ".join(c.name for c in loaded.config.channels) or "none"
        raise BadInput(
            f"no channel named '{_c(args.channel)}' in {loaded.path} (channels: {names})"
        )
    tenant, host = configured_identity(config, strict=False)
    now = utcnow()
    body = {
        "schema": ALERT_SCHEMA,
        "status": "firing",
        "rule": "test",
        "tenant_id": tenant,
        "host": host,
        "agent": "fleet-tui-test",
        "health": "",
        "state": None,
        "detail": TEST_DETAIL,
        "since": _stamp(now),
        "ts": _stamp(now),
    }
    where = describe(channel, os.environ)
    with http_client() as client:
        try:
            deliver(channel, body, client=client, env=os.environ)
        except DeliveryFailed as exc:
            sys.stderr.write(f"fleet-tui: test alert not delivered: {exc}\n")
            return EXIT_FAILURE
    print(f"delivered to {where}")
    return EXIT_OK


# -- alerts silence --------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """`15m`, `2h`, `1d`, `90s` -> seconds; BadInput otherwise (or 0, or over a year)."""
    from fleet_tui.errors import BadInput

    m = _DURATION.match(text)
    if m is None:
        raise BadInput(f"--for: not a duration: '{_c(text)}' (use e.g. 15m, 2h, 1d)")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not 0 < seconds <= MAX_SILENCE_S:
        raise BadInput(f"--for: must be more than 0 and at most 365d (got '{_c(text)}')")
    return seconds


def cmd_silence(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from pydantic import ValidationError

    from fleet_tui.errors import EXIT_OK, BadInput
    from fleet_tui.model.alerts import Silence
    from fleet_tui.protocol.clock import utcnow
    from fleet_tui.service.alerts import AlertStore, describe_silence
    from fleet_tui.sources.systemd import current_user

    seconds = parse_duration(args.duration)
    config = _config(args)
    rules, loaded = _rules_or_default(config)
    names = [r.name for r in rules.rules]
    if args.rule != "*" and args.rule not in names:
        where = loaded.path if loaded else "the built-in rules (no alerts file)"
        raise BadInput(
            f"no rule named '{_c(args.rule)}' in {where} (rules: {', '.join(names) or 'none'}; "
            "'*' silences every rule)"
        )
    now = utcnow()
    try:
        silence = Silence(
            rule=args.rule,
            agents=list(args.agents),
            until=now + timedelta(seconds=seconds),
            by=_c(current_user() or "?", 64),
            reason=args.reason,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "silence"
        raise BadInput(f"{field}: {str(err['msg']).removeprefix('Value error, ')}") from None
    AlertStore(config.state_dir).add_silence(silence, now)
    print(f"silenced {_c(describe_silence(silence), 300)}")
    return EXIT_OK


# -- alerts list -----------------------------------------------------------------------------


def _rule_json(rule: Any) -> dict[str, Any]:
    return {
        "name": rule.name,
        "when": rule.when.model_dump(mode="json", exclude_none=True),
        "for_s": rule.for_s,
        "repeat_s": rule.repeat_s,
        "agents": list(rule.agents),
        "to": list(rule.to),
    }


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from fleet_tui.errors import EXIT_OK
    from fleet_tui.protocol.clock import utcnow
    from fleet_tui.service.alert_outbox import Outbox
    from fleet_tui.service.alerts import AlertStore

    config = _config(args)
    rules, loaded = _rules_or_default(config)
    now = utcnow()
    store = AlertStore(config.state_dir)
    episodes: list[dict[str, Any]] = []
    for consumer in (CONSUMER, TERMINAL_CONSUMER):
        for e in store.load_book(consumer).open_episodes():
            episodes.append(
                {
                    "book": consumer,
                    "rule": e.rule,
                    "agent": e.agent,
                    "tenant_id": e.tenant_id,
                    "host": e.host,
                    "since": _stamp(e.since),
                    "state": e.state,
                    "health": e.health,
                    "detail": e.detail,
                    "silenced": e.silenced,
                    "fired_at": _stamp(e.fired_at) if e.fired_at else None,
                }
            )
    episodes.sort(key=lambda d: (d["since"], d["agent"], d["rule"], d["book"]))
    silences = [
        {**s.model_dump(mode="json"), "source": source}
        for source, items in (("file", rules.silences), ("operator", store.silences()))
        for s in items
        if s.until > now
    ]
    outbox = Outbox(_outbox_dir(config.state_dir))
    doc = {
        "schema": LIST_SCHEMA,
        "generated_at": _stamp(now),
        "alerts_file": str(loaded.path) if loaded else None,
        "rules": [_rule_json(r) for r in rules.rules],
        "episodes": episodes,
        "silences": silences,
        "outbox": {"pending": outbox.pending(), "given_up": outbox.given_up()},
    }
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=True) + "\n")
        return EXIT_OK
    print(_render_list(doc, config))
    return EXIT_OK


def _render_list(doc: dict[str, Any], config: FleetConfig) -> str:
    out: list[str] = []
    if doc["alerts_file"]:
        out.append(f"alerts file: {_c(doc['alerts_file'], 300)}")
    else:
        out.append(
            f"alerts file: none at {_c(config.alerts.path, 300)} (built-in rules: the dashboard's "
            "terminal only)"
        )
    out.append("")
    out.append("RULES")
    for r in doc["rules"]:
        when = " ".join(f"{k}={','.join(map(str, v))}" for k, v in r["when"].items())
        out.append(
            f"  {r['name']}  when {when}  for {r['for_s']:g}s  repeat "
            f"{'once' if not r['repeat_s'] else format(r['repeat_s'], 'g') + 's'}  "
            f"agents {','.join(_c(a) for a in r['agents'])}  to {','.join(r['to'])}"
        )
    if not doc["rules"]:
        out.append("  (none)")
    out.append("")
    out.append("OPEN EPISODES (oldest first)")
    for e in doc["episodes"]:
        mark = "  [silenced]" if e["silenced"] else ""
        state = e["state"] or e["health"] or "?"
        detail = f"  {_c(e['detail'], 120)}" if e["detail"] else ""
        out.append(
            f"  {e['since']}  {_c(e['agent'])}@{_c(e['host'])}  {e['rule']}  {state}  "
            f"({e['book']}){mark}{detail}"
        )
    if not doc["episodes"]:
        out.append("  (none)")
    out.append("")
    out.append("SILENCES (active)")
    for s in doc["silences"]:
        reason = f"  {_c(s['reason'], 200)}" if s.get("reason") else ""
        by = f" by {_c(s['by'])}" if s.get("by") else ""
        out.append(
            f"  {s['rule']} on {','.join(_c(a) for a in s['agents'])} until {s['until']}"
            f"  ({s['source']}{by}){reason}"
        )
    if not doc["silences"]:
        out.append("  (none)")
    out.append("")
    out.append(f"OUTBOX  pending {doc['outbox']['pending']} · given up {doc['outbox']['given_up']}")
    return "\n".join(out)


# -- alerts run ------------------------------------------------------------------------------


class _Log:
    """One line per event on stderr, with a UTC time; lines from two threads never mix."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        from fleet_tui.protocol.clock import utcnow

        line = f"{_stamp(utcnow())} {_c(message, 1000)}\n"
        with self._lock:
            try:
                sys.stderr.write(line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass


class _Lease:
    """The tenant's alert-evaluator lease at the gateway: `mine()` takes or renews it (at most
    once per `renew_s`) and says whether this evaluator may evaluate now."""

    def __init__(
        self, client: GatewayClient, tenant: str, every_s: float, log: Callable[[str], None]
    ) -> None:
        import secrets
        import socket

        self.client = client
        self.tenant = tenant
        self.ttl_s = min(600.0, max(5.0, 3 * every_s))
        self.renew_s = min(every_s, self.ttl_s / 3)
        self.holder = f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.log = log
        self._held_until: float | None = None  # monotonic; our own clock, never the gateway's
        self._asked_at: float | None = None
        self._said: str | None = None  # the last standing-by/error line (said once)

    def _say(self, line: str) -> None:
        if line != self._said:
            self._said = line
            self.log(line)

    def mine(self) -> bool:
        from fleet_tui.remote.connection import GatewayError

        now = time.monotonic()
        if self._asked_at is not None and now - self._asked_at < self.renew_s:
            return self._held_until is not None and now < self._held_until
        self._asked_at = now
        try:
            lease = self.client.lease_alerts(self.tenant, self.holder, self.ttl_s)
        except GatewayError as exc:
            held = self._held_until is not None and now < self._held_until
            then = "keeping the lease until it runs out" if held else "evaluating nothing"
            self._say(f"alert lease of tenant {_c(self.tenant)}: {_c(str(exc), 300)}; {then}")
            return held
        if lease.held:
            if self._held_until is None or now >= self._held_until:
                self._say(f"evaluating tenant {_c(self.tenant)} (holding the alert lease)")
            self._held_until = now + self.ttl_s
            return True
        self._held_until = None
        self._say(f"standing by: {_c(lease.holder, 200)} evaluates tenant {_c(self.tenant)}")
        return False

    def release(self) -> None:
        from fleet_tui.remote.connection import GatewayError

        if self._held_until is None:
            return
        try:
            self.client.release_alerts(self.tenant, self.holder)
        except GatewayError as exc:
            self.log(f"alert lease of tenant {_c(self.tenant)}: not released: {_c(str(exc), 300)}")


class _Evaluator:
    """`alerts run`: see the module's docstring."""

    def __init__(self, args: argparse.Namespace) -> None:
        import threading

        from fleet_tui.config.settings import load_inference_rules
        from fleet_tui.errors import BadInput
        from fleet_tui.service.alert_outbox import Outbox
        from fleet_tui.service.alerts import AlertEngine, AlertStore
        from fleet_tui.service.poll import LiveSource
        from fleet_tui.service.providers import ps_budget_provider

        self.log = _Log()
        self.every_s: float = args.every
        self.once: bool = args.once
        config = _config(args)
        loaded = _load(config)
        if loaded is None:
            raise BadInput(
                f"no alerts file at {config.alerts.path}: nothing to deliver (no outside "
                "channel; the built-in rule only rings the dashboard's terminal)"
            )
        self.config = config
        self.alerts_path = loaded.path or config.alerts.path
        self.file_stamp = self._file_stamp()
        gateway = gateway_from_args(args)
        config.gateway = gateway
        self.store = AlertStore(config.state_dir)
        self.engine: AlertEngine = AlertEngine(loaded.config, self.store, CONSUMER)
        self.channels: Mapping[str, Channel] = {c.name: c for c in loaded.config.channels}
        self.outbox: Outbox = Outbox(_outbox_dir(config.state_dir), log=self.log)
        rules, notices = load_inference_rules()
        self.source: LiveSource = LiveSource(
            config,
            budget_provider=ps_budget_provider(config),
            inference=rules,
            inference_notices=notices,
        )
        self.lease: _Lease | None = None
        if gateway is not None:
            from fleet_tui.config.fleet import configured_identity
            from fleet_tui.remote.client import GatewayClient

            tenant = configured_identity(config)[0]
            self.lease = _Lease(GatewayClient(gateway), tenant, self.every_s, self.log)
        self.env = dict(os.environ)
        self.stop = threading.Event()
        self.wake = threading.Event()  # the main loop: something to do (or stop)
        self.spool_changed = False
        self.send_wake = threading.Event()
        self.poll_error: str | None = None
        self.polled_once = False
        self._client: Any = None  # the httpx client of the deliveries (made by `run`)
        for w in loaded.warnings:
            self.log(w)
        self._say_targets()

    # -- the alerts file ---------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.alerts_path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _say_targets(self) -> None:
        outside = [r.name for r in self.engine.rules]
        if outside:
            self.log(
                f"alerts file {self.alerts_path}: rules {', '.join(outside)} -> outside channels"
            )
        else:
            self.log(
                f"alerts file {self.alerts_path}: no rule sends to an outside channel: "
                "nothing to deliver until it changes"
            )

    def _reload(self) -> None:
        from fleet_tui.service.alerts import load_rules

        stamp = self._file_stamp()
        if stamp == self.file_stamp:
            return
        self.file_stamp = stamp
        if stamp is None:
            self.log(f"alerts file {self.alerts_path}: gone; keeping the last good rules")
            return
        result = load_rules(self.alerts_path, True)
        if result.loaded is None:
            self.log(f"{result.error}; keeping the last good rules")
            return
        self.engine.config = result.loaded.config
        self.channels = {c.name: c for c in result.loaded.config.channels}
        for w in result.loaded.warnings:
            self.log(w)
        self.log("alerts file changed: rules re-read")
        self._say_targets()
        self.send_wake.set()

    # -- one step ----------------------------------------------------------------------------
    def safe_step(self, *, heartbeats_only: bool) -> None:
        """`step`, with anything unexpected logged (one line) instead of ending the evaluator:
        the next step tries again."""
        try:
            self.step(heartbeats_only=heartbeats_only)
        except Exception as exc:
            if os.environ.get("FLEET_TUI_DEBUG"):
                raise
            self.log(f"step failed: {type(exc).__name__}: {_c(str(exc), 300)}; retrying")

    def step(self, *, heartbeats_only: bool) -> None:
        from fleet_tui.protocol.clock import utcnow

        self._reload()
        if self.lease is not None and not self.lease.mine():
            return
        try:
            snapshot = self.source.poll(heartbeats_only=heartbeats_only and self.polled_once)
        except Exception as exc:
            why = _c(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc), 300)
            if why != self.poll_error:
                self.log(f"poll failed: {why}; retrying")
            self.poll_error = why
            return
        if self.poll_error is not None:
            self.log("poll works again")
            self.poll_error = None
        self.polled_once = self.polled_once or not heartbeats_only
        now = utcnow()
        events = self.engine.step(snapshot, now)
        if self.engine.save_error:
            self.log(f"episodes not saved: {self.engine.save_error}")
        for event in events:
            self._enqueue(event, now)
        if events:
            self.send_wake.set()

    def _enqueue(self, event: AlertEvent, now: datetime) -> None:
        from fleet_tui.control.audit import record_action
        from fleet_tui.errors import FleetError
        from fleet_tui.service.alert_channels import describe

        e = event.episode
        body = event.body()
        targets = [t for t in _outside(event.rule.to) if t in self.channels]
        verb = "fired" if event.status == "firing" else "resolved"
        again = " (again)" if event.repeat else ""
        where = ", ".join(describe(self.channels[t], self.env) for t in targets) or "no channel"
        self.log(f"{verb}{again}: {e.rule} {_c(e.agent)}@{_c(e.host)} -> {where}")
        for target in targets:
            try:
                self.outbox.put(target, body, now)
            except FleetError as exc:
                self.log(f"alert to {target}: not queued: {_c(str(exc), 300)}")
        try:
            record_action(
                self.config.state_dir,
                now=now,
                tenant_id=e.tenant_id,
                host=e.host,
                action="alert",
                agent=e.agent,
                outcome=event.status,
                detail=f"{e.rule} -> {', '.join(targets)}",
                surface="alerts",
            )
        except FleetError as exc:
            self.log(f"audit: {_c(str(exc), 300)}")

    # -- delivery ----------------------------------------------------------------------------
    def _send(self, channel: Channel, body: dict[str, Any]) -> None:
        from fleet_tui.service.alert_channels import deliver, describe

        assert self._client is not None
        deliver(channel, body, client=self._client, env=self.env)
        label = " ".join(_c(body.get(k) or "?") for k in ("rule", "agent", "status"))
        self.log(f"delivered: {label} to {describe(channel, self.env)}")

    def flush(self) -> None:
        from fleet_tui.errors import FleetError
        from fleet_tui.protocol.clock import utcnow

        try:
            self.outbox.flush(self.channels, utcnow(), self._send, self.log)
        except FleetError as exc:
            self.log(f"alert outbox: {_c(str(exc), 300)}")
        except Exception as exc:  # the sender thread must not end silently: say it, go on
            self.log(f"alert outbox: flush failed: {type(exc).__name__}: {_c(str(exc), 300)}")

    def _sender(self) -> None:
        from fleet_tui.protocol.clock import utcnow

        while True:
            self.send_wake.clear()
            self.flush()  # after a stop, once more: the last step's alerts are tried too
            if self.stop.is_set():
                return
            wait = SENDER_IDLE_S
            try:
                due = self.outbox.next_due()
            except Exception:
                due = None
            if due is not None:
                wait = min(wait, max(0.05, (due - utcnow()).total_seconds()))
            self.send_wake.wait(wait)

    # -- the loop ----------------------------------------------------------------------------
    def _watch(self) -> None:
        """A heartbeat-only poll as soon as the spool folder changes."""
        folder = self.source.watch_dir
        if folder is None:
            return
        try:
            from watchfiles import watch

            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for _changes in watch(
                folder,
                debounce=200,
                step=50,
                stop_event=self.stop,
                rust_timeout=500,
                recursive=False,
                raise_interrupt=False,
            ):
                self.spool_changed = True
                self.wake.set()
        except Exception as exc:  # the timer's full polls keep working
            if not self.stop.is_set():
                self.log(f"not watching {folder}: {_c(str(exc), 200)}; polling every "
                         f"{self.every_s:g} s only")  # fmt: skip

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop.set()
        self.wake.set()
        self.send_wake.set()

    def run(self) -> int:
        import signal
        import threading

        from fleet_tui.service.alert_channels import http_client

        self._client = http_client()
        try:
            if self.once:
                feed = self.source.gateway
                if feed is not None and self.lease is not None:  # one poll: wait for its answer
                    feed.kick(self.lease.tenant)
                    settings = feed.settings
                    feed.wait(settings.deadline_s + settings.connect_timeout_s + 1.0)
                self.step(heartbeats_only=False)
                self.flush()
                return 0
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
            sender = threading.Thread(target=self._sender, name="alerts-sender", daemon=True)
            watcher = threading.Thread(target=self._watch, name="alerts-watch", daemon=True)
            sender.start()
            watcher.start()
            self.log(
                f"alerts run: every {self.every_s:g} s, state {self.config.state_dir}, "
                f"pid {os.getpid()}"
            )
            self._loop()
            self.log("stopping")
            self.send_wake.set()
            # the last flush waits at most a channel's timeout per channel; what it does not
            # deliver stays in the outbox for the next run
            slowest = max((c.timeout_s for c in self.channels.values()), default=10.0)
            sender.join(min(60.0, slowest * max(1, len(self.channels)) + 2.0))
            return 0
        finally:
            if self.lease is not None:
                self.lease.release()
                self.lease.client.close()
            self.source.close()
            self._client.close()

    def _loop(self) -> None:
        next_full = 0.0
        last_hb = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_full:
                self.spool_changed = False
                next_full = now + self.every_s
                self.safe_step(heartbeats_only=False)
                continue
            if self.spool_changed and now - last_hb >= HB_POLL_GAP_S:
                self.spool_changed = False
                last_hb = now
                self.safe_step(heartbeats_only=True)
                continue
            wait = next_full - now
            if self.spool_changed:
                wait = min(wait, HB_POLL_GAP_S - (now - last_hb))
            self.wake.wait(max(0.0, wait))
            self.wake.clear()


def cmd_run(args: argparse.Namespace) -> int:
    evaluator = _Evaluator(args)
    return evaluator.run()
