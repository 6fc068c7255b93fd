"""The `fleet-tui` command line: verbs, argument parsing, exit codes.

The composition root: it builds the parser (the core verbs here, the others from their modules in
EXTENSIONS) and dispatches. What the verb modules share (flags, the configuration and a collector
made from them) is in `cli.args`, a leaf; no verb module imports this one.

Imports are lazy per verb: `ps`, `heartbeat` and the hooks must start fast, so nothing here
imports Textual unless the dashboard is asked for. Errors are one line on stderr, never a
traceback (set FLEET_TUI_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from fleet_tui import __version__, telemetry
from fleet_tui.cli.args import (
    add_common_flags,
    add_gateway_flags,
    config_from_args,
    gateway_from_args,
    new_collector,
    positive,
)
from fleet_tui.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    AgentNotFound,
    BadInput,
    FleetError,
    NotConfirmed,
    Refused,
)
from fleet_tui.present.glyphs import ascii_fallback, is_utf8_encoding, text_is_ascii, to_ascii

if TYPE_CHECKING:
    from pathlib import Path

    from fleet_tui.model.records import AgentRecord, FleetSnapshot, Roster

PROG = "fleet-tui"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser of every verb; with `verb`, one whose only sub-parser is that verb's: parsing
    an argv that names it (see `_named_verb`) gives the same result, output and errors, without
    building the ~40 other sub-parsers or importing the modules of the other verbs (issue 16,
    start-up)."""
    parser = _Parser(prog=PROG, description="The terminal dashboard of Mosaic Fleet.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_common_flags(parser)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name, add in CORE_VERBS.items():
        if verb is None or verb == name:
            add(sub)
    add_gateway_flags(parser)
    for module in EXTENSIONS:
        if verb is None or EXTENSION_VERBS.get(verb) == module:
            _extension(module).add_parsers(sub, add_common_flags)
    return parser


def _add_ps(sub: Any) -> None:
    p = sub.add_parser("ps", help="the joined fleet table")
    add_common_flags(p)
    p.add_argument("--json", action="store_true", help="print ps v1 JSON (mosaic.fleet.ps/v1)")
    p.add_argument("--all", action="store_true", help="also sessions that are not agents")
    p.add_argument("--tenant", metavar="T", help="only this tenant")
    p.add_argument("--host", metavar="H", help="only this host")
    add_gateway_flags(p)


def _add_heartbeat(sub: Any) -> None:
    p = sub.add_parser("heartbeat", help="write a heartbeat v1 (for wrappers and hooks)")
    add_common_flags(p)
    p.add_argument("name")
    p.add_argument("--state", required=True, choices=_states())
    p.add_argument("--detail", default=None)
    p.add_argument("--ack", metavar="TEXT", default=None, help="a message this runtime accepted")
    p.add_argument("--interval", metavar="S", type=positive, default=None)
    p.add_argument("--runtime", default=None)
    p.add_argument("--model", default=None)
    p.add_argument(
        "--pid", type=int, default=None, help="the runtime's pid (omit for short-lived callers)"
    )


def _add_probe(sub: Any) -> None:
    p = sub.add_parser(
        "probe",
        help="ping an agent and wait for the echo",
        description="Write a ping and wait for the runtime's echo. Exit 0 answered, 3 no such "
        "agent or it is down (no session, or its pane's process exited: said at once), 4 no "
        "echo within --timeout, 5 refused (the audit log cannot be written).",
    )
    add_common_flags(p)
    p.add_argument("name")
    p.add_argument("--timeout", metavar="S", type=positive, default=10.0)


def _add_stub(sub: Any) -> None:
    p = sub.add_parser("stub", help="the dogfood stub runtime (runs inside a pane)")
    add_common_flags(p)
    p.add_argument("name")
    p.add_argument("--interval", metavar="S", type=positive, default=5.0)
    p.add_argument(
        "--fail-after",
        metavar="S",
        type=positive,
        default=None,
        help="stop heartbeating after S seconds (a wedged agent)",
    )
    p.add_argument(
        "--waiting", action="store_true", help="start by waiting for the operator's input"
    )


def _add_send(sub: Any) -> None:
    p = sub.add_parser(
        "send",
        help="type a message into an agent ('-' reads it from stdin)",
        description="Type TEXT into the agent's pane and press Enter. A TEXT that starts with "
        "'-' and has no space goes after '--'. Exit 0 sent (with --verify: accepted), 3 no such "
        "agent or it is down (no session, or its pane's process exited), 4 not accepted within "
        "--timeout, 5 refused (the audit log cannot be written: nothing is typed).",
    )
    add_common_flags(p)
    p.add_argument("name")
    p.add_argument("text", metavar="TEXT|-")
    p.add_argument("--verify", action="store_true", help="wait for the runtime's ack")
    p.add_argument("--timeout", metavar="S", type=positive, default=10.0)


def _add_watch(sub: Any) -> None:
    p = sub.add_parser("watch", help="read-only attach: no keystrokes, no resize of the agent")
    add_common_flags(p)
    p.add_argument("name")


def _add_attach(sub: Any) -> None:
    p = sub.add_parser("attach", help="interactive takeover (asks for confirmation on a TTY)")
    add_common_flags(p)
    p.add_argument("name")
    p.add_argument(
        "--yes", action="store_true", help="do not ask; needed to attach without a terminal"
    )


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="start (or stop) a demo fleet on a private tmux socket")
    p.add_argument(
        "action",
        nargs="?",
        choices=["up", "env", "down"],
        default="up",
        help="up: start it (or keep the running one) and open the dashboard (the default); "
        'env: print the export lines that point a shell at it (eval "$(fleet-tui demo env)"); '
        "down: stop it",
    )
    p.add_argument(
        "--agents",
        metavar="N",
        type=int,
        default=None,
        help="how many agents (default 6); a running demo of another size is restarted",
    )
    p.add_argument("--down", action="store_true", help="stop the demo fleet (as 'demo down')")
    p.add_argument(
        "--no-ui",
        action="store_true",
        help="start it and print the table instead of opening the dashboard",
    )


def _add_tui(sub: Any) -> None:
    add_gateway_flags(sub.add_parser("tui", help="the dashboard (the default)"))


CORE_VERBS: dict[str, Callable[[Any], None]] = {
    "ps": _add_ps,
    "heartbeat": _add_heartbeat,
    "probe": _add_probe,
    "stub": _add_stub,
    "send": _add_send,
    "watch": _add_watch,
    "attach": _add_attach,
    "demo": _add_demo,
    "tui": _add_tui,
}

# Verbs of the runtime adapters, usage, budgets and the gateway live in their own modules, each
# with `add_parsers(sub, common)` and `VERBS`; they import only argparse at module level. Their
# verbs are named here, so that the module of the verb asked for is the only one imported (in
# this order in `--help`); tests/test_cli_lazy_parser.py checks this agrees with each VERBS.
EXTENSION_VERBS = {
    "hook": "fleet_tui.cli.hooks",
    "statusline": "fleet_tui.cli.hooks",
    "install-hooks": "fleet_tui.cli.hooks",
    "usage": "fleet_tui.cli.usage",
    "budget": "fleet_tui.cli.budget",
    "gateway": "fleet_tui.cli.gateway",
    "publish": "fleet_tui.cli.publish",
    "alerts": "fleet_tui.cli.alerts",
    "up": "fleet_tui.cli.lifecycle",
    "stop": "fleet_tui.cli.lifecycle",
    "restart": "fleet_tui.cli.lifecycle",
    "units": "fleet_tui.cli.lifecycle",
    "supervise": "fleet_tui.cli.lifecycle",
    "web": "fleet_tui.cli.web",
    "stream": "fleet_tui.cli.stream",
}
EXTENSIONS = tuple(dict.fromkeys(EXTENSION_VERBS.values()))

# The top-level flags `_named_verb` skips before the verb: those taking a value, those not.
_TOP_VALUE_FLAGS = frozenset(
    {"--roster", "--state-dir", "--heartbeat-timeout", "--gateway", "--token-file"}
)
_TOP_BARE_FLAGS = frozenset({"--insecure"})


def _extension(module: str) -> Any:
    import importlib

    return importlib.import_module(module)


def _named_verb(raw: Sequence[str]) -> str | None:
    """The verb `raw` names, when it surely does: its first word after top-level flags spelled
    out in full (`--roster PATH`, `--roster=PATH`, `--insecure`). None otherwise (no verb, an
    unknown word, `--help`, an abbreviated flag, a value that looks like a flag...): then the
    whole parser is built, and argparse says what it always said."""
    i = 0
    while i < len(raw):
        word = raw[i]
        if word in _TOP_VALUE_FLAGS:
            if i + 1 >= len(raw) or raw[i + 1].startswith("-"):
                return None
            i += 2
        elif word in _TOP_BARE_FLAGS or (
            "=" in word and word.partition("=")[0] in _TOP_VALUE_FLAGS
        ):
            i += 1
        elif word in CORE_VERBS or word in EXTENSION_VERBS:
            return word
        else:
            return None
    return None


def _states() -> list[str]:
    # Spelled out, not read off AgentState: the parser is built for every verb, and importing
    # the model (pydantic) would cost every hook ~130 ms. tests/test_cli.py checks they agree.
    return ["starting", "idle", "busy", "waiting_input", "blocked", "error", "stopping"]


# -- verbs ------------------------------------------------------------------------------------


def cmd_ps(args: argparse.Namespace) -> int:
    from fleet_tui.service.providers import ps_budget_provider, ps_usage_provider

    gateway = gateway_from_args(args)
    config = config_from_args(args)
    collector = new_collector(
        config,
        usage_provider=ps_usage_provider(config),
        budget_provider=ps_budget_provider(config),
    )
    if gateway is None:
        snapshot = collector.collect()
    else:
        from fleet_tui.service.poll import collect_with_gateway

        snapshot = collect_with_gateway(config, gateway, tenant=args.tenant, collector=collector)
    listed = [a for a in snapshot.agents if args.all or a.is_agent]
    agents = [
        a
        for a in listed
        if (args.tenant is None or a.tenant_id == args.tenant)
        and (args.host is None or a.host == args.host)
    ]
    if args.json:
        shown = snapshot.model_copy(update={"agents": agents})
        ascii_json = not is_utf8_encoding(sys.stdout.encoding)
        sys.stdout.write(_snapshot_json(shown, ascii_only=ascii_json) + "\n")
        if gateway is not None:  # an unreachable gateway is said on stderr too
            for w in snapshot.warnings:
                if w.startswith("gateway "):
                    sys.stderr.write(f"warning: {w}\n")
        return EXIT_OK
    from fleet_tui.present.text import render_summary, render_table, use_color  # the table only

    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((100, 24)).columns if tty else None
    if width is None and os.environ.get("COLUMNS", "").isdigit():
        width = int(os.environ["COLUMNS"])
    ascii_only = text_is_ascii(sys.stdout.encoding, os.environ)
    color = use_color(tty)
    if agents:
        print(render_table(snapshot, agents, width=width, color=color, ascii_only=ascii_only))
    elif listed:
        print(_no_match_hint(listed, args))
    else:
        print(_empty_hint(snapshot, args))
    summary = _fold_summary(render_summary(snapshot, agents), width)
    print(to_ascii(summary) if ascii_only else summary)
    for w in snapshot.warnings:
        sys.stderr.write(f"warning: {w}\n")
    return EXIT_OK


# Characters a terminal might act on or that fake the text's direction, and lone surrogates
# (undecodable bytes): JSON text may hold them raw (only C0 must be escaped), so they are
# written as \\uXXXX escapes, which `json.loads` reads back exactly.
_JSON_ESCAPED = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _json_escape(m: re.Match[str]) -> str:
    n = ord(m.group())
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def _snapshot_json(snapshot: FleetSnapshot, *, ascii_only: bool = False) -> str:
    """ps v1 JSON of `snapshot`, names exactly as they are (scripts address sessions by them),
    yet safe to `cat` on a terminal and always valid UTF-8 (see _JSON_ESCAPED). `ascii_only`
    (a stdout that cannot encode UTF-8): every non-ASCII character escaped, still lossless."""
    text = snapshot.to_json(indent=2)  # lone surrogates stay in the text: escaped below
    return (_NON_ASCII if ascii_only else _JSON_ESCAPED).sub(_json_escape, text)


def _fold_summary(text: str, width: int | None) -> str:
    """The summary line folded at ' · ' (then at spaces) so that it fits `width` columns."""
    if width is None or len(text) <= width:
        return text
    import textwrap

    width = max(width, 20)
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            wrapped = textwrap.wrap(part, width, subsequent_indent="  ", break_on_hyphens=False)
            lines += wrapped or [""]
    return "\n".join(lines)


def _empty_hint(snapshot: FleetSnapshot, args: argparse.Namespace) -> str:
    from fleet_tui.core.sanitize import clean_text

    where = ", ".join(clean_text(s.name) for s in snapshot.sockets) or "none"
    roster = clean_text(snapshot.roster_path) if snapshot.roster_path else "none"
    lines = ["No agents found."]
    lines.append(f"  roster: {roster}; tmux sockets: {where}")
    if not args.all:
        lines.append("  'fleet-tui ps --all' also lists sessions that are not agents;")
    lines.append("  'fleet-tui demo' starts a demo fleet on a private socket.")
    return "\n".join(lines)


def _no_match_hint(listed: list[AgentRecord], args: argparse.Namespace) -> str:
    """Agents there are, but the --tenant/--host filter leaves none: say so, and what there is."""
    from fleet_tui.core.sanitize import clean_text

    wanted = " ".join(
        f"--{flag} '{clean_text(getattr(args, flag), max_len=64)}'"
        for flag in ("tenant", "host")
        if getattr(args, flag) is not None
    )
    hosts = ", ".join(sorted({clean_text(a.host, max_len=64) for a in listed}))
    tenants = ", ".join(sorted({clean_text(a.tenant_id, max_len=64) for a in listed}))
    return (
        f"No agent matches {wanted}.\n"
        f"  {len(listed)} agent{'s' if len(listed) != 1 else ''} in all; "
        f"tenants: {tenants}; hosts: {hosts}"
    )


def cmd_heartbeat(args: argparse.Namespace) -> int:
    from fleet_tui.config.fleet import configured_identity
    from fleet_tui.model.records import AgentState, Heartbeat, Ping
    from fleet_tui.protocol.acks import add_ack, message_hash
    from fleet_tui.protocol.clock import utcnow
    from fleet_tui.sources.spool import HeartbeatSpool
    from fleet_tui.tmux import check_session_name

    check_session_name(args.name)
    config = config_from_args(args)
    tenant, host = configured_identity(config)

    def build(prev: Heartbeat | None, ping: Ping | None) -> Heartbeat:
        acks = list(prev.acks) if prev else []
        if args.ack is not None:
            acks = add_ack(acks, message_hash(args.ack))
        return Heartbeat(
            v=1,
            tenant_id=tenant,
            host=host,
            agent=args.name,
            seq=(prev.seq + 1) if prev else 0,
            ts=utcnow(),
            interval_s=args.interval or (prev.interval_s if prev else 10.0),
            state=AgentState(args.state),
            detail=args.detail,
            runtime=args.runtime or (prev.runtime if prev else None),
            model=args.model or (prev.model if prev else None),
            pid=args.pid,
            echo=ping.nonce if ping else (prev.echo if prev else None),
            acks=acks,
            usage=prev.usage if prev else None,
        )

    # One writer at a time per agent (the flock the hooks take): no `seq` or ack is lost.
    HeartbeatSpool(config.state_dir).update_heartbeat(args.name, build)
    return EXIT_OK


def _find_agent(snapshot: FleetSnapshot, name: str) -> AgentRecord:
    exact = [a for a in snapshot.agents if a.name == name]
    if exact:
        return exact[0]
    near = sorted(
        a.name for a in snapshot.agents if a.name.startswith(name) or name.startswith(a.name)
    )
    from fleet_tui.core.sanitize import clean_text

    shown = [clean_text(n, max_len=64) for n in near[:3]]
    hint = f" (did you mean {', '.join(shown)}?)" if near else ""
    raise AgentNotFound(f"no agent named '{name}'{hint}")


def _down(agent: AgentRecord) -> str | None:
    """Why there is nothing to act on although the agent exists (exit 3), or None: no session,
    or the process in its pane has exited."""
    if agent.tmux is None or agent.socket is None:
        if agent.in_roster:
            return f"agent '{agent.name}' is in the roster but has no session (down)"
        return f"agent '{agent.name}' has no session (down)"
    if agent.tmux.pane_dead:
        return f"agent '{agent.name}': the process in its pane has exited (down)"
    return None


def _audit(
    state_dir: Path,
    *,
    tenant_id: str,
    host: str,
    action: str,
    agent: str,
    outcome: str,
    detail: str,
    required: bool,
) -> None:
    """One audit record. `required` (written BEFORE the action): a record that cannot be
    written refuses the action (AuditUnavailable, exit 5); otherwise a one-line warning."""
    from datetime import UTC, datetime

    from fleet_tui.control.audit import audit_path, record_action
    from fleet_tui.errors import AuditUnavailable

    # the current span (fleet.send, fleet.probe) says who and how it ended, never the text
    telemetry.note(tenant=tenant_id, host=host, agent=agent, outcome=outcome)
    try:
        record_action(
            state_dir,
            now=datetime.now(UTC),
            tenant_id=tenant_id,
            host=host,
            action=action,
            agent=agent,
            outcome=outcome,
            detail=detail,
            surface="cli",
        )
    except (OSError, AuditUnavailable) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if required:
            if isinstance(exc, AuditUnavailable):
                raise AuditUnavailable(f"{action} {agent}: {exc}") from None
            raise AuditUnavailable(
                f"{action} {agent}: refused: the audit log {audit_path(state_dir)} "
                f"cannot be written ({why})"
            ) from None
        sys.stderr.write(f"warning: audit log not written: {why}\n")


@telemetry.traced("fleet.probe")
def cmd_probe(args: argparse.Namespace) -> int:
    import secrets
    from datetime import UTC, datetime

    from fleet_tui.sources.spool import HeartbeatSpool
    from fleet_tui.tmux import check_session_name

    check_session_name(args.name)
    config = config_from_args(args)
    snapshot = new_collector(config).collect()

    def audit(outcome: str, detail: str, *, required: bool = False) -> None:
        _audit(
            config.state_dir,
            tenant_id=snapshot.tenant_id,
            host=snapshot.host,
            action="probe",
            agent=args.name,
            outcome=outcome,
            detail=detail,
            required=required,
        )

    try:
        agent = _find_agent(snapshot, args.name)
    except AgentNotFound:
        audit("not_found", "no agent with this exact name")
        raise
    down = _down(agent)
    if down is not None:  # nothing would answer: say so now, not after the timeout
        audit("not_found", "down")
        raise AgentNotFound(down)
    spool = HeartbeatSpool(config.state_dir)
    nonce = secrets.token_hex(8)
    audit("started", f"timeout {args.timeout:g} s", required=True)
    sent = datetime.now(UTC)
    t0 = time.monotonic()
    spool.write_ping(args.name, nonce, sent)
    answered = None
    while time.monotonic() - t0 < args.timeout:
        hb = spool.read_heartbeat(args.name).heartbeat
        if hb is not None and hb.echo == nonce:
            answered = hb
            break
        time.sleep(0.02)
    rtt = time.monotonic() - t0

    if answered is None:
        audit("unanswered", f"timeout {args.timeout:g} s")
        raise NotConfirmed(f"probe {args.name}: no echo within {args.timeout:g} s")
    audit("answered", f"{rtt * 1000:.0f} ms")
    telemetry.note(rtt_ms=round(rtt * 1000, 1))
    print(
        f"probe {args.name}: answered in {rtt * 1000:.0f} ms (seq {answered.seq}, state {answered.state.value})"
    )
    return EXIT_OK


# -- control verbs: send, watch, attach (the only verbs that write to a pane) -----------------

MAX_MESSAGE_BYTES = 1024 * 1024


class _Control:
    """The agent a control verb acts on, found by its exact name, and its audit trail."""

    def __init__(self, args: argparse.Namespace, action: str) -> None:
        from fleet_tui.tmux import TmuxRunner, check_session_name

        check_session_name(args.name)
        self.name: str = args.name
        self.action = action
        self.config = config_from_args(args)
        self.snapshot = new_collector(self.config).collect()
        self.runner = TmuxRunner(timeout=self.config.tmux_timeout_s)
        try:
            self.agent = self._find()
        except AgentNotFound:
            self.audit("not_found", "no agent with this exact name")
            raise

    def _find(self) -> AgentRecord:
        """Exact names only, agents only (an operator's own shell is never typed into); a name
        on several sockets prefers the live, rostered one, and is refused when still ambiguous."""
        agents = [a for a in self.snapshot.agents if a.is_agent]
        _find_agent(self.snapshot.model_copy(update={"agents": agents}), self.name)
        exact = [a for a in agents if a.name == self.name]
        for keep in (lambda a: a.tmux is not None, lambda a: a.in_roster):
            if len(exact) > 1 and any(keep(a) for a in exact):
                exact = [a for a in exact if keep(a)]
        if len(exact) > 1:
            where = ", ".join(sorted(a.socket or "-" for a in exact))
            raise BadInput(f"agent '{self.name}' runs on several tmux sockets ({where})")
        return exact[0]

    @property
    def socket(self) -> str:
        return str(self.agent.socket)

    def need_session(self, *, live: bool) -> str:
        """The agent's pane id; exit 3 when it has no session (or, with `live`, a dead pane)."""
        tm = self.agent.tmux
        down = _down(self.agent)
        if tm is None or (down is not None and live):
            self.audit("not_found", "no tmux session" if tm is None else "pane dead")
            raise AgentNotFound(str(down))
        return str(tm.pane_id)

    def audit(self, outcome: str, detail: str = "", *, required: bool = False) -> None:
        """One audit record; `required` ones are written before the action and refuse it
        (exit 5) when they cannot be written."""
        agent = getattr(self, "agent", None)
        _audit(
            self.config.state_dir,
            tenant_id=agent.tenant_id if agent else self.snapshot.tenant_id,
            host=agent.host if agent else self.snapshot.host,
            action=self.action,
            agent=self.name,
            outcome=outcome,
            detail=detail,
            required=required,
        )

    def hand_over(self, *, read_only: bool) -> int:
        """Fix the window size, then give the terminal to `attach [-r]` (a popup or
        switch-client inside tmux); 0 when the client detached normally."""
        import subprocess

        from fleet_tui.control.panes import plan_handover, prepare_watch

        plan = plan_handover(self.runner, self.socket, self.name, read_only=read_only)
        # The record comes first: no audit record, no attach (exit 5).
        self.audit("attached" if not read_only else "started", f"via {plan.how}", required=True)
        prepare_watch(self.runner, self.socket, self.name)
        rc = subprocess.call(plan.argv, env=plan.env)
        if rc != 0:
            raise FleetError(f"{self.action} {self.name}: tmux ended with exit status {rc}")
        return EXIT_OK


def _has_tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ellipsis() -> str:
    return "..." if text_is_ascii(sys.stdout.encoding, os.environ) else "…"


def _read_message(arg: str) -> str:
    if arg != "-":
        return arg
    data = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
    if len(data) > MAX_MESSAGE_BYTES:
        raise BadInput(f"message on stdin is larger than {MAX_MESSAGE_BYTES} bytes")
    return data.decode("utf-8", "replace")


@telemetry.traced("fleet.send")
def cmd_send(args: argparse.Namespace) -> int:
    """Deliver a message (audited by hash and length, never by text); with --verify wait until
    the runtime's heartbeat acks its hash. Exit 3 for no such agent, no session or a dead pane."""
    from fleet_tui.control.panes import ControlError, clean_message, send_message, wait_for_ack
    from fleet_tui.protocol.acks import message_hash
    from fleet_tui.sources.spool import HeartbeatSpool

    text = _read_message(args.text)
    if not clean_message(text).strip():
        raise BadInput("empty message: nothing to send")
    ctl = _Control(args, "send")
    pane_id = ctl.need_session(live=True)
    spool = HeartbeatSpool(ctl.config.state_dir)
    before = spool.read_heartbeat(ctl.name).heartbeat
    cleaned = clean_message(text)
    # The record comes first: no audit record, nothing typed (exit 5).
    ctl.audit("started", f"{message_hash(cleaned)} length={len(cleaned)}", required=True)
    try:
        sent = send_message(ctl.runner, ctl.socket, pane_id, text)
    except ControlError as exc:
        ctl.audit("not_found", str(exc)[:200])
        raise AgentNotFound(f"agent '{ctl.name}': {exc}") from None
    except FleetError as exc:
        ctl.audit("failed", str(exc)[:200])
        raise
    detail = f"{sent.hash} length={sent.length} lines={sent.lines} via={sent.method}"
    shown = f"sent to {ctl.name} ({sent.length} chars, {sent.hash[:19]}{_ellipsis()})"
    if not args.verify:
        ctl.audit("delivered", detail)
        print(shown)
        return EXIT_OK
    try:
        took = wait_for_ack(
            lambda: spool.read_heartbeat(ctl.name).heartbeat,
            before,
            sent.hash,
            timeout_s=args.timeout,
        )
    except KeyboardInterrupt:
        ctl.audit("delivered", detail + " verify=interrupted")
        raise
    if took is None:
        ctl.audit("unconfirmed", detail + f" timeout={args.timeout:g}s")
        raise NotConfirmed(f"{shown}; not accepted within {args.timeout:g} s")
    ctl.audit("accepted", detail + f" after={took:.1f}s")
    telemetry.note(ack_latency_ms=round(took * 1000, 1))
    print(f"{shown}; accepted in {took:.1f} s")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    """Read-only attach (`attach -r`, window size fixed first); needs a terminal (exit 5)."""
    ctl = _Control(args, "watch")
    ctl.need_session(live=False)
    if not _has_tty():
        ctl.audit("refused", "no terminal")
        raise Refused(f"watch {ctl.name}: needs a terminal (stdin and stdout must be a TTY)")
    return ctl.hand_over(read_only=True)


def cmd_attach(args: argparse.Namespace) -> int:
    """Interactive takeover: on a terminal the operator types the agent's name to confirm;
    without one only with --yes (exit 5 otherwise). Audited: declined, refused or attached."""
    from fleet_tui.core.sanitize import clean_text

    ctl = _Control(args, "attach")
    ctl.need_session(live=False)
    if not args.yes:
        if not _has_tty():
            ctl.audit("refused", "no terminal and no --yes")
            raise Refused(f"attach {ctl.name}: no terminal to confirm on (use --yes to skip)")
        tenant, host = clean_text(ctl.agent.tenant_id), clean_text(ctl.agent.host)
        sys.stderr.write(
            f"Attach to {ctl.name} (tenant {tenant}, host {host})? "
            "Type the agent's name to confirm: "
        )
        sys.stderr.flush()
        typed = sys.stdin.readline().strip()
        if typed != ctl.name:
            ctl.audit("declined", "typed name did not match" if typed else "nothing typed")
            raise Refused(f"attach {ctl.name}: declined (the typed name did not match)")
    return ctl.hand_over(read_only=False)


def cmd_stub(args: argparse.Namespace) -> int:
    from fleet_tui.config.fleet import load_configured_roster
    from fleet_tui.config.identity import local_identity
    from fleet_tui.demo.stub import Stub, run_stub
    from fleet_tui.sources.spool import HeartbeatSpool
    from fleet_tui.tmux import check_session_name

    check_session_name(args.name)
    config = config_from_args(args)
    loaded = load_configured_roster(config)
    tenant, host = local_identity(loaded.roster if loaded else None)
    spool = HeartbeatSpool(config.state_dir)
    spool.ensure_writable()
    stub = Stub(
        args.name,
        spool,
        tenant_id=tenant,
        host=host,
        interval_s=args.interval,
        fail_after_s=args.fail_after,
        waiting=args.waiting,
        model=_roster_model(loaded.roster if loaded else None, args.name),
    )
    return run_stub(stub)


def _roster_model(roster: Roster | None, name: str) -> str | None:
    for agent in roster.agents if roster is not None else []:
        if agent.name == name:
            return str(agent.model) if agent.model else None
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    from fleet_tui.demo.fleet import (
        DEMO_SOCKET,
        demo_env,
        demo_home,
        demo_running,
        hostname,
        shell_exports,
        start_demo,
        stop_demo,
    )
    from fleet_tui.tmux import TmuxRunner

    runner = TmuxRunner()
    if args.down or args.action == "down":
        stopped = stop_demo(runner)
        print(
            f"demo fleet stopped (socket {DEMO_SOCKET})" if stopped else "no demo fleet was running"
        )
        return EXIT_OK
    if args.action == "env":
        if not demo_running(runner):
            sys.stderr.write(
                f"{PROG}: no demo fleet is running ('{_self_command()} demo' starts it); "
                "these lines point at where it runs\n"
            )
        print("\n".join(shell_exports(demo_home())))
        return EXIT_OK
    if args.agents is not None and not 2 <= args.agents <= 300:
        raise BadInput(f"--agents: between 2 and 300 (got {args.agents})")
    started = start_demo(runner, args.agents, hostname())
    env = demo_env(started.home)
    os.environ.update(env)
    print(started.summary())
    if args.no_ui or not sys.stdout.isatty():
        ns = argparse.Namespace(json=False, all=False, tenant=None, host=None)
        code = cmd_ps(ns)
        _demo_afterword(dashboard=False)
        return code
    try:
        return cmd_tui(
            argparse.Namespace(
                roster=env["MOSAIC_FLEET_ROSTER"], state_dir=env["MOSAIC_FLEET_STATE_DIR"]
            )
        )
    finally:
        _demo_afterword(dashboard=True)


def _self_command() -> str:
    """How to run this `fleet-tui` again from here: its name when PATH finds this one, else its
    path (relative when under the working directory, as `.venv/bin/fleet-tui`)."""
    from pathlib import Path

    script = Path(sys.executable).parent / PROG
    if not script.exists():
        return f"{sys.executable} -m fleet_tui"
    found = shutil.which(PROG)
    if found and Path(found).resolve() == script.resolve():
        return PROG
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _demo_afterword(*, dashboard: bool) -> None:
    me = _self_command()
    if dashboard:
        print("\nThe demo fleet keeps running after the dashboard quits.")
    print(
        f"{'' if dashboard else chr(10)}Point a shell at it (every verb then works on it):\n"
        f'  eval "$({me} demo env)"\n'
        f"Stop it:  {me} demo down"
    )


def collect_from_now_on() -> None:
    """The end of the dashboard's start: what it allocated so far is kept for good (modules,
    classes, the first snapshot's inputs), so it moves to the collector's permanent generation
    (`gc.freeze`: later full collections do not walk it again), and collection resumes."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def cmd_tui(args: argparse.Namespace) -> int:
    """The dashboard. Without a terminal it refuses at once (exit 5) instead of writing escape
    sequences into a file; a crash exits 1 with one line naming the crash log (fleet_tui.ui.crash)."""
    # `fleet-tui web` runs the dashboard on Textual's web driver: pipes, not a terminal
    web_driver = os.environ.get("TEXTUAL_DRIVER") == "textual.drivers.web_driver:WebDriver"
    if not _has_tty() and not (web_driver and "MOSAIC_FLEET_WEB_SCOPE" in os.environ):
        raise Refused(
            "the dashboard needs a terminal (stdin and stdout must be a TTY); "
            "'fleet-tui ps' prints the table"
        )
    # No garbage collection while the dashboard starts: its imports and first poll allocate
    # hundreds of thousands of objects and free almost none of them, so each collection of
    # that time walks a growing heap for nothing (~10 % of the start). The app turns it back
    # on once its first poll has landed (FleetApp `on_started`), or this function at the end.
    if not gc.isenabled():  # (someone embedding us chose to run without it)
        return _run_dashboard(args, None)
    gc.disable()
    try:
        return _run_dashboard(args, collect_from_now_on)
    finally:
        gc.enable()


def _run_dashboard(args: argparse.Namespace, on_started: Callable[[], None] | None) -> int:
    from fleet_tui.ui import crash

    gateway = gateway_from_args(args)
    config = config_from_args(args)
    config.gateway = gateway
    crash.arm(config.state_dir)
    first = None
    try:
        try:
            from fleet_tui.config.settings import load_settings
            from fleet_tui.service.firstpoll import FirstPoll

            # Forked before the settings are validated and Textual is imported: the first poll
            # runs on the other core while this process starts the app (issue 16, first paint).
            first = FirstPoll.start(config)
            settings, notice = load_settings()
            from fleet_tui.ui import launch

            code = launch.run_dashboard(
                config,
                settings=settings,
                settings_notice=notice,
                on_started=on_started,
                first_poll=first,
            )
        except Exception as exc:  # escaped the app (start-up, teardown): the same crash log
            if os.environ.get("FLEET_TUI_DEBUG"):
                raise
            crash.record(exc)
        if crash.crashed():
            sys.stderr.write(f"{PROG}: {crash.summary()}\n")
            return EXIT_FAILURE
        return code
    finally:
        if first is not None:
            first.cancel()  # (done at the app's exit already, unless it never started)
        crash.disarm()


# Arguments that are text (names, messages, details), never paths: they are written to JSON,
# typed into panes and compared with names, so they must be valid UTF-8.
TEXT_ARGS = {
    "name": "NAME",
    "text": "TEXT",
    "detail": "--detail",
    "ack": "--ack",
    "runtime": "--runtime",
    "model": "--model",
    "tenant": "--tenant",
    "host": "--host",
}


def _check_text_args(args: argparse.Namespace) -> None:
    """Exit 2 for a text argument that is not valid UTF-8 (argv bytes that do not decode arrive
    as lone surrogates, and would fail later as an 'unexpected error')."""
    for attr, label in TEXT_ARGS.items():
        value = getattr(args, attr, None)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInput(f"{label}: not valid UTF-8") from None


VERBS = {
    "ps": cmd_ps,
    "heartbeat": cmd_heartbeat,
    "probe": cmd_probe,
    "send": cmd_send,
    "watch": cmd_watch,
    "attach": cmd_attach,
    "stub": cmd_stub,
    "demo": cmd_demo,
    "tui": cmd_tui,
    None: cmd_tui,
}


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] in (["hook"], ["statusline"]):
        # Runtime hooks run on every prompt and tool call: skip the full parser (it imports
        # pydantic through the verb modules); `fast_main` returns None for what it does not take.
        from fleet_tui.cli.hooks import fast_main

        fast = fast_main(raw)
        if fast is not None:
            return fast
    _guard_streams()
    parser = build_parser(_named_verb(raw))
    args = parser.parse_args(raw)
    if args.verb in (None, "tui", "demo") and telemetry.wanted():
        # OTEL_*: the SDK set up (or the missing extra said) before Textual holds stderr; other
        # verbs set it up at their first span (a `heartbeat` in a pane that inherited OTEL_*
        # makes none, and imports nothing of it)
        telemetry.enabled()
    verbs = dict(VERBS)
    if args.verb in EXTENSION_VERBS:
        verbs.update(_extension(EXTENSION_VERBS[args.verb]).VERBS)
    try:
        _check_text_args(args)
        return verbs[args.verb](args)
    except FleetError as exc:
        sys.stderr.write(f"{PROG}: {_one_line(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if interrupted(exc):
            return 130
        if os.environ.get("FLEET_TUI_DEBUG"):
            raise
        sys.stderr.write(f"{PROG}: unexpected error: {type(exc).__name__}: {_one_line(str(exc))}\n")
        return EXIT_FAILURE


def _guard_streams() -> None:
    """stdout and stderr that cannot encode UTF-8 (`PYTHONIOENCODING=ascii`, a Latin-1 locale)
    write what they cannot encode as its ASCII fallback instead of raising mid-line."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and not is_utf8_encoding(getattr(stream, "encoding", None)):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors=ascii_fallback())


def interrupted(exc: BaseException) -> bool:
    """A Ctrl-C (or a SIGTERM made one) that arrived inside pydantic's serializer: it comes out
    as a PydanticSerializationError naming KeyboardInterrupt in its text (nothing chained), and
    is an interrupt (exit 130), not an "unexpected error"."""
    return type(exc).__name__ == "PydanticSerializationError" and "KeyboardInterrupt" in str(exc)


def _one_line(message: str) -> str:
    """An error message as one safe line: it may quote a name, a path or a pane's text."""
    from fleet_tui.core.sanitize import clean_text

    return clean_text(message, max_len=2000)
