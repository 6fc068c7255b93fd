"""Verbs of the runtime adapters: `hook claude|codex|keepalive`, `statusline`, `install-hooks`.

Imports only argparse at module level (the CLI loads every verb module to build its parser).
`hook` verbs print nothing and exit 0 whatever happens; problems go to `hooks/hooks.log` in the
state dir. `fast_main` runs a hook without building the whole parser (no pydantic import).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

HOOK_RUNTIMES = ("claude", "codex")


class _BadHookArgs(Exception):
    pass


class _HookParser(argparse.ArgumentParser):
    """The parser of `hook claude|codex|keepalive`: a hook must never fail its runtime over its
    command line, so bad or unknown arguments are noted (and logged), not an exit 2."""

    def error(self, message: str) -> NoReturn:
        raise _BadHookArgs(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        try:
            ns, extras = super().parse_known_args(args, namespace)
        except _BadHookArgs as exc:
            ns = namespace if namespace is not None else argparse.Namespace()
            ns.hook_bad_args = str(exc)
            return ns, []
        if extras:
            ns.hook_bad_args = "ignored arguments: " + " ".join(extras)[:200]
        return ns, []


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""
    p = sub.add_parser(
        "hook",
        help="runtime hook adapters (silent, always exit 0)",
        description="Read a runtime's hook payload, find its agent and write a heartbeat v1. "
        "Prints nothing and exits 0 even when something is wrong (see hooks/hooks.log).",
    )
    common(p)
    hsub = p.add_subparsers(
        dest="hook_runtime", metavar="RUNTIME", required=True, parser_class=_HookParser
    )
    for runtime in HOOK_RUNTIMES:
        h = hsub.add_parser(
            runtime,
            help=f"a {runtime} hook"
            + (": JSON on stdin" if runtime == "claude" else ": notify JSON argument or stdin"),
        )
        common(h)
        _hook_options(h)
        if runtime == "codex":
            h.add_argument("payload", nargs="*", metavar="JSON", help="the notify JSON (last)")
    k = hsub.add_parser("keepalive", help="keep a hook agent's heartbeat fresh between events")
    common(k)
    _hook_options(k)
    k.add_argument("--pid", type=int, required=True, help="the runtime's pid")
    k.add_argument("--runtime", default="claude", choices=HOOK_RUNTIMES)

    s = sub.add_parser(
        "statusline",
        help="Claude Code statusLine: record rate-limit windows, print a short line",
    )
    common(s)
    s.add_argument("--account", metavar="ID", default=None, help="the account the windows are of")
    s.add_argument("--budgets", metavar="PATH", default=None, help="budgets.yaml")

    i = sub.add_parser(
        "install-hooks",
        help="wire the hook adapters into a runtime's settings, keeping what is there",
    )
    common(i)
    i.add_argument("--runtime", required=True, choices=HOOK_RUNTIMES)
    i.add_argument("--dry-run", action="store_true", help="print the result, write nothing")
    i.add_argument("--uninstall", action="store_true", help="remove only our entries")
    i.add_argument(
        "--settings",
        metavar="PATH",
        default=None,
        help="Claude: settings.json; Codex: config.toml (hooks.json beside it)",
    )
    i.add_argument("--force", action="store_true", help="Codex: replace another notify")


def _hook_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent", metavar="NAME", default=None, help="the agent (default: the pane's)")
    p.add_argument("--interval", metavar="S", type=float, default=10.0, help="keepalive interval")
    p.add_argument(
        "--busy-silence",
        metavar="S",
        type=float,
        default=900.0,
        help="stop refreshing a busy agent after S seconds without a hook event",
    )
    p.add_argument("--no-keepalive", action="store_true", help="do not start a keepalive")


def cmd_hook(args: argparse.Namespace) -> int:
    runtime = args.hook_runtime
    bad = getattr(args, "hook_bad_args", None)
    if bad:
        from fleet_tui.adapters.common import log_problem, state_dir_for

        try:
            log_problem(state_dir_for(getattr(args, "state_dir", None)), f"hook {runtime}: {bad}")
        except Exception:  # a hook never fails its runtime
            pass
    if runtime == "keepalive":
        if not isinstance(getattr(args, "pid", None), int) or not getattr(args, "agent", None):
            return 0
        from pathlib import Path

        from fleet_tui.adapters.common import state_dir_for
        from fleet_tui.adapters.keepalive import run_keepalive

        return run_keepalive(
            Path(state_dir_for(getattr(args, "state_dir", None))),
            args.agent,
            args.pid,
            runtime=args.runtime,
            interval_s=max(args.interval, 0.1),
            busy_silence_s=args.busy_silence,
        )
    positional = getattr(args, "payload", None)
    return run_hook(
        runtime,
        agent=getattr(args, "agent", None),
        state_dir=getattr(args, "state_dir", None),
        roster=getattr(args, "roster", None),
        payload_arg=positional[-1] if runtime == "codex" and positional else None,
        keepalive=not getattr(args, "no_keepalive", False),
        interval_s=getattr(args, "interval", 10.0),
        busy_silence_s=getattr(args, "busy_silence", 900.0),
    )


def run_hook(
    runtime: str,
    *,
    agent: str | None = None,
    state_dir: str | None = None,
    roster: str | None = None,
    payload_arg: str | None = None,
    keepalive: bool = True,
    interval_s: float = 10.0,
    busy_silence_s: float = 900.0,
) -> int:
    """One hook run: silent, exit 0 always (problems go to the hooks log)."""
    import contextlib
    import io
    import sys
    import warnings

    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()
    where = None
    try:
        warnings.simplefilter("ignore")
        from fleet_tui.adapters.common import (
            HookOptions,
            log_problem,
            parse_payload,
            read_stdin_payload,
            state_dir_for,
        )
        from fleet_tui.adapters.event import apply_event

        where = state_dir_for(state_dir)
        opts = HookOptions(
            runtime,
            agent=agent,
            state_dir=state_dir,
            roster=roster,
            keepalive=keepalive,
            keepalive_interval_s=interval_s if 0.1 <= interval_s <= 3600 else 10.0,
            busy_silence_s=busy_silence_s,
        )
        payload = parse_payload(payload_arg) if payload_arg is not None else read_stdin_payload()
        if payload is None:
            log_problem(where, f"hook {runtime}: no JSON object in the payload")
            return 0
        if runtime == "codex":
            from fleet_tui.adapters.codex import codex_event

            event = codex_event(payload)
        else:
            from fleet_tui.adapters.claude import claude_event

            event = claude_event(payload)
        if event is None:
            log_problem(where, f"hook {runtime}: not a hook payload")
            return 0
        apply_event(opts, event, where)
    except BaseException as exc:  # a hook never fails its runtime
        with contextlib.suppress(BaseException):
            from fleet_tui.adapters.common import log_problem

            log_problem(where, f"hook {runtime} failed: {type(exc).__name__}: {exc}")
    finally:
        sys.stdout, sys.stderr = saved
    return 0


def _split_flags(
    items: Sequence[str], valued: tuple[str, ...]
) -> tuple[dict[str, str], set[str], list[str]]:
    """(valued options, bare flags, positionals) of a command line, without argparse."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    positional: list[str] = []
    rest = list(items)
    while rest:
        item = rest.pop(0)
        name, eq, value = item.partition("=")
        if name in valued:
            if eq:
                values[name] = value
            elif rest:
                values[name] = rest.pop(0)
        elif item.startswith("-") and len(item) > 1:
            flags.add(item)
        else:
            positional.append(item)
    return values, flags, positional


def fast_main(argv: Sequence[str]) -> int | None:
    """Run `hook claude|codex ...` or `statusline ...` without building the CLI parser (which
    imports pydantic); None when `argv` is not such a run (the caller then parses as usual).
    A hook ignores unknown options: it must never fail its runtime over its command line."""
    if argv[:1] == ["statusline"]:
        values, flags, positional = _split_flags(
            argv[1:], ("--account", "--budgets", "--state-dir", "--roster", "--heartbeat-timeout")
        )
        if flags or positional:
            return None  # --help, or a mistake: argparse explains it
        from fleet_tui.adapters.statusline import run_statusline

        return run_statusline(
            state_dir=values.get("--state-dir"),
            roster=values.get("--roster"),
            account=values.get("--account"),
            budgets=values.get("--budgets"),
        )
    if len(argv) < 2 or argv[0] != "hook" or argv[1] not in HOOK_RUNTIMES:
        return None
    if "-h" in argv[2:] or "--help" in argv[2:]:
        return None
    values, flags, positional = _split_flags(
        argv[2:],
        (
            "--agent",
            "--state-dir",
            "--roster",
            "--interval",
            "--busy-silence",
            "--heartbeat-timeout",
        ),
    )

    def number(key: str, default: float) -> float:
        try:
            return float(values.get(key, default))
        except ValueError:
            return default

    unknown = sorted(flags - {"--no-keepalive"})
    if unknown:  # noted in the hooks log (never on the terminal), then ignored
        from fleet_tui.adapters.common import log_problem, state_dir_for

        try:
            log_problem(
                state_dir_for(values.get("--state-dir")),
                f"hook {argv[1]}: unrecognized arguments: {' '.join(unknown)}",
            )
        except Exception:  # a hook never fails its runtime
            pass
    return run_hook(
        argv[1],
        agent=values.get("--agent"),
        state_dir=values.get("--state-dir"),
        roster=values.get("--roster"),
        payload_arg=positional[-1] if argv[1] == "codex" and positional else None,
        keepalive="--no-keepalive" not in flags,
        interval_s=number("--interval", 10.0),
        busy_silence_s=number("--busy-silence", 900.0),
    )


def cmd_statusline(args: argparse.Namespace) -> int:
    from fleet_tui.adapters.statusline import run_statusline

    return run_statusline(
        state_dir=getattr(args, "state_dir", None),
        roster=getattr(args, "roster", None),
        account=args.account,
        budgets=args.budgets,
    )


def cmd_install_hooks(args: argparse.Namespace) -> int:
    from fleet_tui.adapters.install import install_hooks

    return install_hooks(
        args.runtime,
        settings=args.settings,
        dry_run=args.dry_run,
        uninstall=args.uninstall,
        force=args.force,
    )


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "hook": cmd_hook,
    "statusline": cmd_statusline,
    "install-hooks": cmd_install_hooks,
}
