"""The `usage` verb: token use read from the runtimes' own local records (Claude Code transcripts,
Codex rollouts), per local day, model and agent; and the Codex rate-limit windows found there,
recorded as usage samples.

Imports only argparse at module level (the CLI loads every verb module to build its parser).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet_tui.cli.args import config_from_args, new_collector

if TYPE_CHECKING:
    from pathlib import Path

    from fleet_tui.core.usage import RateSample
    from fleet_tui.service.collector import FleetCollector
    from fleet_tui.sources.usage import RefreshStats, UsageIndex

DEFAULT_CODEX_ACCOUNT = "codex"


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""
    p = sub.add_parser(
        "usage",
        help="token use from the runtimes' local records, per day, model and agent",
        description="Token use read from Claude Code transcripts and Codex rollouts, after "
        "de-duplication, per day (local time zone), model and agent. Incremental: a re-run reads "
        "only what was appended (the index lives in the state dir). Codex rate-limit windows "
        "found on the way are appended to usage.jsonl as usage samples.",
    )
    common(p)
    p.add_argument("--json", action="store_true", help="print mosaic.fleet.usage/v1 JSON")
    p.add_argument("--since", metavar="DATE", help="first day shown (YYYY-MM-DD, local)")
    p.add_argument("--until", metavar="DATE", help="last day shown (YYYY-MM-DD, local)")
    p.add_argument(
        "--claude-dir",
        metavar="PATH",
        action="append",
        help="a Claude Code config folder (repeatable; default: each folder of "
        "CLAUDE_CONFIG_DIR, else ~/.claude and ~/.config/claude)",
    )
    p.add_argument(
        "--codex-home", metavar="PATH", help="Codex home (default: $CODEX_HOME, else ~/.codex)"
    )
    p.add_argument(
        "--account",
        metavar="ID",
        help="budget account the Codex rate-limit samples belong to (default: the codex "
        "account of budgets.yaml, else 'codex')",
    )
    p.add_argument(
        "--no-agents",
        action="store_true",
        help="do not look at tmux for agents (everything is unattributed)",
    )


def cmd_usage(args: argparse.Namespace) -> int:
    import contextlib
    import sqlite3
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from fleet_tui.core.sanitize import clean_text
    from fleet_tui.core.usage import (
        Attribution,
        BadRecord,
        agents_by_cwd,
        parse_day,
        usage_report,
    )
    from fleet_tui.errors import EXIT_OK, BadInput, FleetError
    from fleet_tui.sources.usage import UsageIndex, session_agents
    from fleet_tui.sources.usage_paths import claude_roots, codex_home

    try:
        since = parse_day(args.since, "--since") if args.since is not None else None
        until = parse_day(args.until, "--until") if args.until is not None else None
    except BadRecord as exc:
        raise BadInput(str(exc)) from None
    if since and until and since > until:
        raise BadInput(f"--since {since} is after --until {until}")
    roots = [Path(p).expanduser() for p in args.claude_dir] if args.claude_dir else claude_roots()
    codex = Path(args.codex_home).expanduser() if args.codex_home else codex_home()
    state_dir = config_from_args(args).state_dir
    warnings: list[str] = []
    with UsageIndex(state_dir, roots, codex) as index:
        if index.warning:
            warnings.append(index.warning)
        try:
            stats = index.refresh()
            warnings += _problems(stats)
            warnings += _record_samples(index, args, state_dir)
        except sqlite3.Error as exc:
            hint = "; it is a cache: delete it to rebuild" if index.path else ""
            raise FleetError(f"usage index {index.path}: {exc}{hint}") from None
        panes: list[tuple[str, str]] = []
        noted: dict[str, list[tuple[str, str]]] = {}
        sessions: dict[str, str] = {}
        now = datetime.now(UTC)
        if not args.no_agents:
            panes, why = _agent_panes(args)
            if why:
                warnings.append(why)
            sessions = session_agents(state_dir)  # sessions the hooks saw run in a pane
            with contextlib.suppress(sqlite3.OperationalError):  # busy: what is noted will do
                index.remember_panes(now.astimezone().date().isoformat(), panes)
            noted = index.noted_panes()  # where agents worked on each day (ended ones too)

        def of_day(day: str) -> Attribution:
            return Attribution(agents_by_cwd([*panes, *noted.get(day, [])]), sessions)

        report = usage_report(
            index.buckets(),
            Attribution(agents_by_cwd(panes), sessions),
            now=now,
            since=since,
            until=until,
            day_attribution=of_day,
        )
    report["sources"] = {
        "claude": [str(r / "projects") for r in roots],
        "codex": [str(codex / "sessions"), str(codex / "archived_sessions")],
    }
    report["files"] = stats.files
    report["skipped_lines_this_run"] = stats.problem_count  # a re-run reads only new lines
    for w in warnings:
        sys.stderr.write(f"warning: {clean_text(w, max_len=500)}\n")
    if args.json:
        import json

        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        if not report["days"]:
            sys.stderr.write(_nothing(report, since, until) + "\n")
        return EXIT_OK
    if not report["days"]:
        print(_nothing(report, since, until))
        return EXIT_OK
    print(render_usage(report))
    return EXIT_OK


def _nothing(report: dict[str, Any], since: Any, until: Any) -> str:
    from fleet_tui.core.sanitize import clean_text

    where = "; ".join(
        clean_text(p) for p in report["sources"]["claude"] + report["sources"]["codex"]
    )
    span = ""
    if since or until:
        span = f" between {since or 'the start'} and {until or 'today'}"
    return f"No token use found{span} ({report['files']} files). Looked in: {where}"


def _problems(stats: RefreshStats) -> list[str]:
    from fleet_tui.core.sanitize import clean_text

    if not stats.problem_count:
        return []
    lines = [clean_text(p, max_len=300) for p in stats.problems[:3]]
    more = stats.problem_count - len(lines)
    if more > 0:
        lines.append(f"{more} more unreadable usage lines skipped")
    return lines


def _codex_account(flag: str | None) -> str:
    """`--account`, else the budgets' account with `runtime: codex`, else 'codex'."""
    if flag:
        return flag
    try:
        from fleet_tui.config.paths import budgets_location
        from fleet_tui.protocol.yamldoc import safe_load_file

        path = budgets_location().path
        doc = safe_load_file(path, 1 << 20) if path.exists() else None
        for acc in (doc or {}).get("accounts") or []:
            if isinstance(acc, dict) and acc.get("runtime") == "codex" and acc.get("id"):
                return str(acc["id"])
    except Exception:
        pass
    return DEFAULT_CODEX_ACCOUNT


def _record_samples(index: UsageIndex, args: argparse.Namespace, state_dir: Path) -> list[str]:
    """Append the Codex rate-limit samples read since the last run to usage.jsonl."""
    samples = index.take_samples()
    if not samples:
        return []
    try:
        written = write_samples(
            state_dir,
            samples,
            roster=getattr(args, "roster", None),
            account=_codex_account(args.account),
        )
    except OSError as exc:
        return [f"usage samples not recorded in {state_dir}: {exc.strerror}"]
    return [] if written else ["no usage sample recorded"]


def write_samples(
    state_dir: Path, samples: list[RateSample], *, roster: str | None, account: str
) -> int:
    """Append Codex rate-limit samples to the state dir's usage.jsonl as `UsageSample`s
    (tenant and host of the roster, else login name and hostname); returns how many."""
    from datetime import UTC, datetime

    from fleet_tui.config.fleet import FleetConfig, configured_identity
    from fleet_tui.model.records import UsageSample
    from fleet_tui.protocol.ledger import append_records, usage_path

    # not strict: an invalid roster still leaves a login name and a hostname
    tenant, host = configured_identity(FleetConfig.from_flags(roster, str(state_dir)), strict=False)
    records = [
        UsageSample(
            tenant_id=tenant,
            host=host,
            account=account,
            window=s.window,
            window_minutes=s.window_minutes,
            used_percent=s.used_percent,
            resets_at=datetime.fromtimestamp(s.resets_at, UTC) if s.resets_at else None,
            reset_confidence="provider",
            observed_at=datetime.fromtimestamp(s.observed_at, UTC),
            source="codex-rollout",
        )
        for s in samples
    ]
    return append_records(usage_path(state_dir), records)


def _agent_panes(args: argparse.Namespace) -> tuple[list[tuple[str, str]], str | None]:
    """(agent, pane directory) of a live snapshot's agents; ([], why) when tmux cannot tell."""
    from fleet_tui.errors import FleetError

    try:
        collector = new_collector(config_from_args(args))
        snapshot = collector.collect()
    except FleetError as exc:
        return [], f"agents not known, token use left unattributed: {exc}"
    pairs: list[tuple[str, str]] = []
    for a in snapshot.agents:
        if not a.is_agent or a.tmux is None or a.remote:
            continue
        cwd = a.tmux.cwd
        if cwd is None and a.socket:
            cwd = _pane_path(collector, a.socket, a.tmux.pane_id)
        if cwd:
            pairs.append((a.name, cwd))
    return pairs, None


def _pane_path(collector: FleetCollector, socket: str, pane_id: str) -> str | None:
    """A pane's working directory asked of tmux, for snapshots that do not carry it."""
    from fleet_tui import tmux
    from fleet_tui.errors import FleetError

    try:
        out = collector.runner.run(socket, *tmux.display("#{pane_current_path}", pane_id))
    except FleetError:
        return None
    text = out.stdout.rstrip("\n")
    return text or None


# -- the human table -----------------------------------------------------------------------------


def _n(value: int) -> str:
    return f"{value:,}"


def _short(value: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def render_usage(report: dict[str, Any], top: int = 5) -> str:
    """A compact per-day table, a total line, then the top models and agents."""
    from fleet_tui.core.sanitize import clean_text

    head = ("date", "input", "output", "cache write", "cache read", "total")
    fields = (
        "input_tokens",
        "output_tokens",
        "cache_creation_tokens",
        "cache_read_tokens",
        "total_tokens",
    )
    rows = [[d["date"], *(_n(d[f]) for f in fields)] for d in report["days"]]
    rows.append(["total", *(_n(report["totals"][f]) for f in fields)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(head)]
    out += [line(r) for r in rows[:-1]]
    out.append(line(["-" * w for w in widths]))
    out.append(line(rows[-1]))
    grand = report["totals"]["total_tokens"] or 1
    for title, key in (("models", "by_model"), ("agents", "by_agent")):
        sums: dict[str, int] = {}
        for d in report["days"]:
            for name, v in d[key].items():
                sums[name] = sums.get(name, 0) + v["total_tokens"]
        ranked = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(
            f"{clean_text(name, max_len=40)} {_short(v)} ({100 * v / grand:.0f}%)"
            for name, v in ranked[:top]
        )
        if len(ranked) > top:
            shown += f", {len(ranked) - top} more"
        out.append(f"Top {title}: {shown}")
    return "\n".join(out)


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {"usage": cmd_usage}
