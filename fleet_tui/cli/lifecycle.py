"""The lifecycle verbs (DESIGN.md "CLI", "Lifecycle and supervision"): `up [NAME...]`,
`stop NAME`, `restart NAME`, `units [--write]`, `supervise [--once] [--dry-run]`.

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
    from fleet_tui.control.lifecycle import FleetRoster, StartResult

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

    p = sub.add_parser(
        "supervise",
        help="restart always-on agents that are down, missing or unresponsive, within limits",
        description="Every pass (a snapshot, as 'ps' takes it) restarts the always-on roster "
        "agents of this host that are down, have no session, or have been unresponsive for "
        "longer than --unresponsive-after, as 'restart' does (audited, surface supervise), one "
        "line per action. Never an ephemeral agent, one stopped on purpose ('stop'), one a "
        "human is attached to, one without a command. Limits: one agent at most 3 restarts per "
        "15 minutes, past that it is HELD (a drift flag and a warning in 'ps', an alert) until "
        "'up NAME', 'restart NAME' or 'supervise --release NAME'; the fleet at most one restart "
        "a minute (the others wait for a later pass). State: lifecycle/supervise.json in the "
        "state dir. Without --once it runs until SIGINT/SIGTERM (exit 0); a pass that fails is "
        "one line on stderr and the next one tries again. --once: exit 1 when a restarted "
        "agent did not come up.",
    )
    common(p)
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan of a pass; change nothing"
    )
    p.add_argument(
        "--every",
        metavar="S",
        type=_seconds,
        default=30.0,
        help="seconds between passes (default 30)",
    )
    p.add_argument(
        "--unresponsive-after",
        metavar="S",
        type=_seconds,
        default=300.0,
        help="restart an agent unresponsive for longer than this (default 300 s)",
    )
    p.add_argument(
        "--grace",
        metavar="S",
        type=_seconds,
        default=10.0,
        help="how long a runtime may take to end before its session is closed (default 10)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also say who waits and why")
    p.add_argument(
        "--release",
        metavar="NAME",
        action="append",
        default=[],
        help="release the supervisor's hold on NAME (repeatable), then exit",
    )


# -- shared ---------------------------------------------------------------------------------------


def _warn(line: str) -> None:
    sys.stderr.write(line + "\n")


def _confirmer(action: str, yes: bool) -> Callable[[FleetRoster, str], None]:
    """The typed-name confirmation of `attach`, called by control once the agent is found: on
    a terminal type the name; without one only with --yes (exit 5 otherwise). Declines and
    refusals are audited."""

    def confirm(fleet: FleetRoster, name: str) -> None:
        from fleet_tui.control.lifecycle import audit_action
        from fleet_tui.core.sanitize import clean_text
        from fleet_tui.errors import Refused

        if yes:
            return
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            audit_action(
                fleet,
                action=action,
                agent=name,
                outcome="refused",
                detail="no terminal and no --yes",
                surface=SURFACE,
                warn=_warn,
            )
            raise Refused(f"{action} {name}: no terminal to confirm on (use --yes to skip)")
        verb = "Stop" if action == "stop" else "Restart"
        sys.stderr.write(
            f"{verb} {name} (tenant {clean_text(fleet.tenant)}, host {clean_text(fleet.host)})? "
            "Type the agent's name to confirm: "
        )
        sys.stderr.flush()
        typed = sys.stdin.readline().strip()
        if typed != name:
            audit_action(
                fleet,
                action=action,
                agent=name,
                outcome="declined",
                detail="typed name did not match" if typed else "nothing typed",
                surface=SURFACE,
                warn=_warn,
            )
            raise Refused(f"{action} {name}: declined (the typed name did not match)")

    return confirm


def _report(res: StartResult) -> tuple[str, bool]:
    """One agent's line (and the dead pane's last lines under it); whether it failed."""
    from fleet_tui.core.sanitize import clean_text

    pane = f", pane {res.pane.pane_id}" if res.pane is not None else ""
    socket = res.socket
    if res.outcome == "started":
        scrubbed = f"; kept from its pane: {' '.join(res.unset)}" if res.unset else ""
        return f"{res.name}: started (socket {socket}{pane}{scrubbed})", False
    if res.outcome == "already_running":
        return f"{res.name}: already running (socket {socket}{pane})", False
    if res.outcome == "down":
        lines = [f"{res.name}: down: {res.detail}" + ("; last output:" if res.last else "")]
        lines += [f"  | {line}" for line in res.last]
        return "\n".join(lines), True
    if res.outcome == "left_stopped":
        return f"{res.name}: left stopped ({res.detail}; 'up {res.name}' starts it)", False
    if res.outcome == "not_startable":
        return f"{res.name}: not startable (no command in the roster)", False
    if res.outcome == "would_start":
        return f"{res.name}: would start: {res.detail}", False
    return f"{res.name}: error: {clean_text(res.detail, max_len=300)}", True


# -- up ---------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from fleet_tui.control import lifecycle as lc
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK

    names = list(dict.fromkeys(args.names))
    results = lc.start_agents(
        config_from_args(args),
        names,
        dry_run=args.dry_run,
        surface=SURFACE,
        settle_s=args.settle,
        warn=_warn,
    )
    failed = False
    for res in results:
        line, bad = _report(res)
        if res.outcome == "already_running" and args.dry_run:
            line = f"{res.name}: already running (socket {res.socket})"
        failed = failed or bad or (res.outcome == "not_startable" and bool(names))
        print(line)
    if not results:
        print("no always-on agent in the roster" if not names else "nothing to start")
    return EXIT_FAILURE if failed else EXIT_OK


# -- stop, restart ----------------------------------------------------------------------------------


def cmd_stop(args: argparse.Namespace) -> int:
    from fleet_tui.control import lifecycle as lc
    from fleet_tui.errors import EXIT_OK

    res = lc.stop_agent(
        config_from_args(args),
        args.name,
        grace_s=args.grace,
        surface=SURFACE,
        confirm=_confirmer("stop", args.yes),
        warn=_warn,
    )
    if res.outcome == "not_running":
        print(f"{res.name}: was not running ({res.detail})")
    else:
        print(f"{res.name}: stopped ({res.detail})")
    print(f"  remembered as stopped on purpose: 'fleet-tui up {res.name}' starts it again")
    return EXIT_OK


def cmd_restart(args: argparse.Namespace) -> int:
    from fleet_tui.control import lifecycle as lc
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK

    res = lc.restart_agent(
        config_from_args(args),
        args.name,
        grace_s=args.grace,
        surface=SURFACE,
        settle_s=args.settle,
        confirm=_confirmer("restart", args.yes),
        warn=_warn,
    )
    if res.stop.outcome == "stopped":
        print(f"{res.name}: stopped ({res.stop.detail})")
    else:
        print(f"{res.name}: was not running")
    line, bad = _report(res.start)
    print(line)
    return EXIT_FAILURE if bad else EXIT_OK


# -- units ----------------------------------------------------------------------------------------


def cmd_units(args: argparse.Namespace) -> int:
    """Print (or `--write`) a systemd --user unit per always-on agent, and the steps that make
    them start at boot: daemon-reload, enable, and `loginctl enable-linger USER` when needed."""
    from pathlib import Path

    from fleet_tui.control import lifecycle as lc
    from fleet_tui.control import units as un
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK

    fleet = lc.load_fleet_roster(config_from_args(args), "units")
    agents = [a for a in lc.always_on(fleet.roster) if a.command]
    skipped = [a.name for a in lc.always_on(fleet.roster) if not a.command]
    units = un.render_units(
        fleet.roster, agents, roster_path=fleet.path, state_dir=fleet.config.state_dir
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


# -- supervise --------------------------------------------------------------------------------------


def cmd_supervise(args: argparse.Namespace) -> int:
    """One pass (`--once`, `--dry-run`) or passes every `--every` seconds until SIGINT/SIGTERM."""
    import signal
    import threading

    from fleet_tui.cli.args import new_collector
    from fleet_tui.control import supervise as sv
    from fleet_tui.errors import EXIT_FAILURE, EXIT_OK, FleetError

    config = config_from_args(args)
    if args.release:
        held = set(sv.release(config, args.release, surface=SURFACE))
        for name in dict.fromkeys(args.release):
            print(f"{name}: {'released' if name in held else 'was not held'}")
        return EXIT_OK
    collector = new_collector(config)

    def one_pass() -> sv.PassResult:
        return sv.run_pass(
            config,
            collector.collect,
            dry_run=args.dry_run,
            unresponsive_after_s=args.unresponsive_after,
            grace_s=args.grace,
            said=said,
            verbose=args.verbose,
            out=lambda line: print(line, flush=True),
            warn=_warn,
        )

    said: dict[str, str] = {}
    if args.once or args.dry_run:
        result = one_pass()
        return EXIT_FAILURE if result.failed else EXIT_OK
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    while not stop.is_set():
        try:
            one_pass()
        except (FleetError, OSError) as exc:
            sys.stderr.write(f"supervise: pass failed: {exc}\n")
            sys.stderr.flush()
        stop.wait(max(args.every, 0.1))  # --every 0 is no busy loop
    return EXIT_OK


VERBS = {
    "up": cmd_up,
    "stop": cmd_stop,
    "restart": cmd_restart,
    "units": cmd_units,
    "supervise": cmd_supervise,
}
