"""The lifecycle verbs (DESIGN.md "CLI", "Lifecycle and supervision"): `up [NAME...]`,
`stop NAME`, `restart NAME`, `units [--write]`.

Thin: what they do is in `control.lifecycle` (and `control.units`); here are the arguments, the
typed-name confirmation (the same rule as `attach`: on a terminal the operator types the agent's
name; without one only with `--yes`, else exit 5), the audit records (written first, failing
closed: no record, no action) and the report, one line per agent.

Exit codes: 0 nothing failed; 1 an agent could not be started or went down at once; 2 bad input
(no roster, an invalid one, a bad name); 3 a name that is not in the roster; 5 refused.

Imports only argparse at module level (the CLI loads every verb module to build its parser).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet_tui.cli.args import config_from_args

if TYPE_CHECKING:
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.control.lifecycle import Launch, StartResult
    from fleet_tui.model.records import Roster, RosterAgent

SURFACE = "cli"


def _seconds(text: str) -> float:
    """An argparse `type`: seconds in [0, 3600]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds: '{text}'")
    return value


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `up`, `stop`, `restart` and `units` on the CLI's subparsers."""
    p = sub.add_parser(
        "up",
        help="start the always-on roster agents that have no session (or the named ones)",
        description="Start every always-on roster agent without a live session, or the named "
        "agents (ephemeral ones too): a session named after the agent on its socket, running "
        "its `command` through your login shell in its `cwd`. A running agent is left alone. "
        "One line per agent. Exit 0 nothing failed, 1 one could not be started or exited at "
        "once, 2 bad input, 3 a name not in the roster, 5 refused (audit log).",
    )
    common(p)
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--dry-run", action="store_true", help="say what would be started, start none")
    p.add_argument(
        "--settle",
        metavar="S",
        type=_seconds,
        default=1.5,
        help="watch the started agents this long for a command that exits at once (default 1.5)",
    )

    for verb, what in (
        ("stop", "end an agent's session (asks the runtime first, then closes it)"),
        ("restart", "stop an agent, then start it again from its roster definition"),
    ):
        p = sub.add_parser(
            verb,
            help=what,
            description=f"{what[0].upper()}{what[1:]}. On a terminal you confirm by typing the "
            "agent's name; without one only with --yes (else exit 5). Exit 3: no such agent.",
        )
        common(p)
        p.add_argument("name")
        p.add_argument("--yes", action="store_true", help="do not ask; needed without a terminal")
        p.add_argument(
            "--grace",
            metavar="S",
            type=_seconds,
            default=10.0,
            help="how long the runtime may take to end before its session is closed (default 10)",
        )
        if verb == "restart":
            p.add_argument(
                "--settle", metavar="S", type=_seconds, default=1.5, help=argparse.SUPPRESS
            )

    p = sub.add_parser(
        "units",
        help="systemd --user units for the always-on agents (boot survival)",
        description="A systemd --user unit per always-on roster agent (ExecStart 'fleet-tui up "
        "NAME', ExecStop 'fleet-tui stop NAME --yes'), printed, or written to "
        "$XDG_CONFIG_HOME/systemd/user with --write (and checked by systemd-analyze verify "
        "where installed); then the steps, with the exact 'loginctl enable-linger' line when "
        "you do not linger.",
    )
    common(p)
    p.add_argument("--write", action="store_true", help="write the unit files")


# -- shared ---------------------------------------------------------------------------------------


class _Ctx:
    """The configuration, the roster and the audit trail of one lifecycle verb."""

    def __init__(self, args: argparse.Namespace, action: str) -> None:
        from fleet_tui.config.fleet import load_configured_roster
        from fleet_tui.config.identity import local_identity
        from fleet_tui.errors import BadInput

        self.action = action
        self.config: FleetConfig = config_from_args(args)
        loaded = load_configured_roster(self.config)
        if loaded is None:
            raise BadInput(
                f"no roster at {self.config.roster.path}: {action} starts and stops agents "
                "from their roster definition (--roster PATH, env MOSAIC_FLEET_ROSTER)"
            )
        self.roster: Roster = loaded.roster
        self.roster_path = loaded.path
        self.tenant, self.host = local_identity(self.roster)

    def agent(self, name: str) -> RosterAgent | None:
        return next((a for a in self.roster.agents if a.name == name), None)

    def audit(self, agent: str, outcome: str, detail: str = "", *, required: bool = False) -> None:
        """One audit record; a `required` one (written before the action) that cannot be
        written refuses the action (exit 5); otherwise a one-line warning."""
        from datetime import UTC, datetime

        from fleet_tui.control.audit import audit_path, record_action
        from fleet_tui.errors import AuditUnavailable

        try:
            record_action(
                self.config.state_dir,
                now=datetime.now(UTC),
                tenant_id=self.tenant,
                host=self.host,
                action=self.action,
                agent=agent,
                outcome=outcome,
                detail=detail[:500],
                surface=SURFACE,
            )
        except (OSError, AuditUnavailable) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if required:
                raise AuditUnavailable(
                    f"{self.action} {agent}: refused: the audit log "
                    f"{audit_path(self.config.state_dir)} cannot be written ({why})"
                ) from None
            sys.stderr.write(f"warning: audit log not written: {why}\n")

    def not_found(self, name: str) -> Exception:
        from fleet_tui.core.sanitize import clean_text
        from fleet_tui.errors import AgentNotFound

        self.audit(name, "not_found", "not in the roster")
        near = sorted(a.name for a in self.roster.agents if name in a.name or a.name in name)
        hint = f" (did you mean {', '.join(near[:3])}?)" if near else ""
        return AgentNotFound(
            f"no agent named '{clean_text(name, max_len=64)}' in the roster "
            f"{clean_text(str(self.roster_path))}{hint}"
        )

    def confirm(self, name: str, yes: bool) -> None:
        """The typed-name confirmation of `attach`: on a terminal type the name; without one
        only with --yes (exit 5 otherwise). Declines and refusals are audited."""
        from fleet_tui.core.sanitize import clean_text
        from fleet_tui.errors import Refused

        if yes:
            return
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            self.audit(name, "refused", "no terminal and no --yes")
            raise Refused(f"{self.action} {name}: no terminal to confirm on (use --yes to skip)")
        verb = "Stop" if self.action == "stop" else "Restart"
        sys.stderr.write(
            f"{verb} {name} (tenant {clean_text(self.tenant)}, host {clean_text(self.host)})? "
            "Type the agent's name to confirm: "
        )
        sys.stderr.flush()
        typed = sys.stdin.readline().strip()
        if typed != name:
            self.audit(name, "declined", "typed name did not match" if typed else "nothing typed")
            raise Refused(f"{self.action} {name}: declined (the typed name did not match)")


def _report(res: StartResult, socket: str) -> tuple[str, bool]:
    """One agent's line (and the dead pane's last lines under it); whether it failed."""
    from fleet_tui.core.sanitize import clean_text

    pane = f", pane {res.pane.pane_id}" if res.pane is not None else ""
    if res.outcome == "started":
        scrubbed = f"; kept from its pane: {' '.join(res.unset)}" if res.unset else ""
        return f"{res.name}: started (socket {socket}{pane}{scrubbed})", False
    if res.outcome == "already_running":
        return f"{res.name}: already running (socket {socket}{pane})", False
    if res.outcome == "down":
        lines = [f"{res.name}: down: {res.detail}" + ("; last output:" if res.last else "")]
        lines += [f"  | {line}" for line in res.last]
        return "\n".join(lines), True
    return f"{res.name}: error: {clean_text(res.detail, max_len=300)}", True


def _start_all(
    ctx: _Ctx, launches: list[Launch], *, settle_s: float, extra: set[str]
) -> dict[str, StartResult]:
    """Start `launches` (audited: the record first), then watch them for `settle_s`."""
    from fleet_tui.control import lifecycle as lc
    from fleet_tui.errors import FleetError

    runner = lc.lifecycle_runner(extra_secrets=extra)
    results: dict[str, StartResult] = {}
    for la in launches:
        try:
            state = lc.session_state(runner, la.socket, la.name)
        except FleetError as exc:
            results[la.name] = lc.StartResult(la.name, "error", str(exc))
            ctx.audit(la.name, "failed", str(exc))
            continue
        if state is not None and not state.dead:
            results[la.name] = lc.StartResult(la.name, "already_running", pane=state)
            ctx.audit(la.name, "already_running", f"pane {state.pane_id}")
            continue
        ctx.audit(la.name, "started", f"socket {la.socket}", required=True)
        try:
            results[la.name] = lc.start(runner, la, extra_secrets=extra)
        except FleetError as exc:
            results[la.name] = lc.StartResult(la.name, "error", str(exc))
    lc.settle(runner, launches, results, settle_s=settle_s)
    for la in launches:
        res = results[la.name]
        if res.outcome == "started":
            ctx.audit(la.name, "running", f"pane {res.pane.pane_id if res.pane else '?'}")
        elif res.outcome == "down":
            ctx.audit(la.name, "down", res.detail + "".join(f" | {x}" for x in res.last))
        elif res.outcome == "error":
            ctx.audit(la.name, "failed", res.detail)
    return results


# -- up ---------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from fleet_tui.control import lifecycle as lc
    from fleet_tui.core.sanitize import clean_text
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK
    from fleet_tui.tmux import check_session_name

    names = list(dict.fromkeys(args.names))
    for name in names:
        check_session_name(name)
    ctx = _Ctx(args, "start")
    for name in names:
        if ctx.agent(name) is None:
            raise ctx.not_found(name)
    agents = [a for a in (ctx.agent(n) for n in names) if a] if names else lc.always_on(ctx.roster)
    extra = lc.alert_secret_names(ctx.config.alerts.path)
    stopped = lc.read_stopped(ctx.config.state_dir)
    out: list[tuple[str, str]] = []  # (name, line); a failed one is counted
    failed = False
    launches: list[Launch] = []
    for agent in agents:
        if not names and agent.name in stopped:
            who = stopped[agent.name]
            out.append(
                (
                    agent.name,
                    f"{agent.name}: left stopped (stopped by {clean_text(str(who.get('user')))} "
                    f"at {clean_text(str(who.get('ts')))}; 'up {agent.name}' starts it)",
                )
            )
            continue
        try:
            launch = lc.plan_launch(
                ctx.roster,
                agent,
                state_dir=ctx.config.state_dir,
                roster_path=ctx.roster_path,
                extra_secrets=extra,
            )
        except lc.LaunchError as exc:
            out.append((agent.name, f"{agent.name}: error: {exc}"))
            failed = True
            if not args.dry_run:
                ctx.audit(agent.name, "failed", str(exc))
            continue
        if launch is None:
            out.append((agent.name, f"{agent.name}: not startable (no command in the roster)"))
            failed = failed or bool(names)
            if not args.dry_run:
                ctx.audit(agent.name, "not_startable", "no command in the roster")
            continue
        out.append((agent.name, ""))
        launches.append(launch)
    if args.dry_run:
        runner = lc.lifecycle_runner(extra_secrets=extra)
        lines = dict(out)
        for la in launches:
            state = lc.session_state(runner, la.socket, la.name)
            if state is not None and not state.dead:
                lines[la.name] = f"{la.name}: already running (socket {la.socket})"
            else:
                lines[la.name] = f"{la.name}: would start: {la.describe()}"
        for name, _ in out:
            print(lines[name])
        return EXIT_FAILURE if failed else EXIT_OK
    if names:
        lc.forget_stops(ctx.config.state_dir, [la.name for la in launches])
    results = _start_all(ctx, launches, settle_s=args.settle, extra=extra)
    sockets = {la.name: la.socket for la in launches}
    for name, line in out:
        if name in results:
            line, bad = _report(results[name], sockets[name])
            failed = failed or bad
        print(line)
    if not agents:
        print("no always-on agent in the roster" if not names else "nothing to start")
    return EXIT_FAILURE if failed else EXIT_OK


# -- stop, restart ----------------------------------------------------------------------------------


def _stop(ctx: _Ctx, name: str, grace: float) -> str:
    """Stop `name` (the caller confirmed and audited); the report's line."""
    from fleet_tui.control import lifecycle as lc

    agent = ctx.agent(name)
    assert agent is not None
    runner = lc.lifecycle_runner()
    res = lc.stop_session(
        runner, ctx.roster.agent_socket(agent), name, agent.runtime, grace_s=grace
    )
    if res.outcome == "not_running":
        return f"{name}: was not running ({res.detail})"
    return f"{name}: stopped ({res.detail})"


def cmd_stop(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from fleet_tui.control import lifecycle as lc
    from fleet_tui.errors import EXIT_OK, FleetError
    from fleet_tui.tmux import check_session_name

    name = check_session_name(args.name)
    ctx = _Ctx(args, "stop")
    if ctx.agent(name) is None:
        raise ctx.not_found(name)
    ctx.confirm(name, args.yes)
    ctx.audit(name, "started", f"grace {args.grace:g} s", required=True)
    try:
        line = _stop(ctx, name, args.grace)
        lc.remember_stop(ctx.config.state_dir, name, now=datetime.now(UTC), surface=SURFACE)
    except FleetError as exc:
        ctx.audit(name, "failed", str(exc))
        raise
    ctx.audit(name, "stopped", line.split(": ", 1)[1])
    print(line)
    print(f"  remembered as stopped on purpose: 'fleet-tui up {name}' starts it again")
    return EXIT_OK


def cmd_restart(args: argparse.Namespace) -> int:
    from fleet_tui.control import lifecycle as lc
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK, BadInput, FleetError
    from fleet_tui.tmux import check_session_name

    name = check_session_name(args.name)
    ctx = _Ctx(args, "restart")
    agent = ctx.agent(name)
    if agent is None:
        raise ctx.not_found(name)
    extra = lc.alert_secret_names(ctx.config.alerts.path)
    # Planned BEFORE anything stops: an agent that cannot be started again is not stopped.
    try:
        launch = lc.plan_launch(
            ctx.roster,
            agent,
            state_dir=ctx.config.state_dir,
            roster_path=ctx.roster_path,
            extra_secrets=extra,
        )
    except lc.LaunchError as exc:
        ctx.audit(name, "failed", str(exc))
        raise BadInput(f"restart {name}: {exc}; nothing stopped") from None
    if launch is None:
        ctx.audit(name, "not_startable", "no command in the roster")
        raise BadInput(
            f"restart {name}: not startable (no command in the roster); nothing stopped "
            f"('fleet-tui stop {name}' only stops it)"
        )
    ctx.confirm(name, args.yes)
    ctx.audit(name, "started", f"grace {args.grace:g} s", required=True)
    runner = lc.lifecycle_runner(extra_secrets=extra)
    try:
        stopped = lc.stop_session(runner, launch.socket, name, agent.runtime, grace_s=args.grace)
        lc.forget_stops(ctx.config.state_dir, [name])
        res = lc.start(runner, launch, extra_secrets=extra)
        results = {name: res}
        lc.settle(runner, [launch], results, settle_s=args.settle)
    except FleetError as exc:
        ctx.audit(name, "failed", str(exc))
        raise
    line, bad = _report(res, launch.socket)
    if stopped.outcome == "stopped":
        print(f"{name}: stopped ({stopped.detail})")
    else:
        print(f"{name}: was not running")
    print(line)
    outcome = {"started": "running", "already_running": "already_running"}.get(
        res.outcome, "down" if res.outcome == "down" else "failed"
    )
    ctx.audit(name, outcome, f"{stopped.detail}; {res.detail}".strip("; "))
    return EXIT_FAILURE if bad else EXIT_OK


# -- units ----------------------------------------------------------------------------------------


def cmd_units(args: argparse.Namespace) -> int:
    """Print (or `--write`) a systemd --user unit per always-on agent, and the steps that make
    them start at boot: daemon-reload, enable, and `loginctl enable-linger USER` when needed."""
    from pathlib import Path

    from fleet_tui.control import lifecycle as lc
    from fleet_tui.control import units as un
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK

    ctx = _Ctx(args, "units")
    agents = [a for a in lc.always_on(ctx.roster) if a.command]
    skipped = [a.name for a in lc.always_on(ctx.roster) if not a.command]
    units = un.render_units(
        ctx.roster, agents, roster_path=ctx.roster_path, state_dir=ctx.config.state_dir
    )
    folder = un.unit_dir()
    failed = False
    if not args.write:
        for unit in units:
            print(f"# {folder / unit.name}")
            print(unit.text)
    else:
        for w in un.write_units(units, folder):
            if w.outcome == "kept":
                failed = True
                print(f"kept {w.path}: not written by fleet-tui (left alone; move it away first)")
            else:
                print(f"{w.outcome} {w.path}")
        checked = un.verify([folder / u.name for u in units])
        if checked is None:
            print("not verified: systemd-analyze is not installed (apt package 'systemd')")
        elif checked[0]:
            print("systemd-analyze verify: ok")
        else:
            failed = True
            print("systemd-analyze verify found problems:")
            for line in checked[1].splitlines()[:20]:
                print(f"  {line}")
    for name in skipped:
        print(f"{name}: no unit (not startable: no command in the roster)")
    if not units:
        print("no always-on agent with a command in the roster: no unit")
        return EXIT_FAILURE if failed else EXIT_OK
    names = " ".join(u.name for u in units)
    print("\nTo start them at boot:")
    if not args.write:
        print("  fleet-tui units --write")
    print("  systemctl --user daemon-reload")
    print(f"  systemctl --user enable --now {names}")
    linger = un.linger_line()
    if linger is not None:
        print(f"  {linger}   # you do not linger: without it they start only when you log in")
    if not Path("/run/systemd/system").is_dir():
        print("  (this machine runs no systemd: run these where systemd --user runs)")
    unnamed = [u for u in units if not u.in_roster]
    if unnamed:
        print("Name each unit in the roster, so that 'ps' shows its boot state:")
        for u in unnamed:
            print(f"  {u.agent}:  unit: {u.name}")
    print("'fleet-tui ps' then shows no boot_disabled drift for them (enabled, lingering).")
    return EXIT_FAILURE if failed else EXIT_OK


VERBS = {"up": cmd_up, "stop": cmd_stop, "restart": cmd_restart, "units": cmd_units}
