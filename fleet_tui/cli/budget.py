"""The `budget` verb: budget gauges and even-spread pacing (`--json`: mosaic.fleet.budget/v1).

Imports only argparse at module level (the CLI loads every verb module to build its parser).
A missing default budgets file is not an error (the output says where it looked and how to
start); a `--budgets PATH` (or MOSAIC_FLEET_BUDGETS) that does not exist is exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet_tui.cli.args import add_gateway_flags, config_from_args, gateway_from_args

if TYPE_CHECKING:
    from fleet_tui.service.budgets import BudgetReport

GAUGE_WIDTH = 24


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""
    p = sub.add_parser("budget", help="budget gauges and even-spread pacing")
    common(p)
    p.add_argument("--json", action="store_true", help="print mosaic.fleet.budget/v1 JSON")
    p.add_argument(
        "--budgets", metavar="PATH", default=None, help="budgets.yaml (env MOSAIC_FLEET_BUDGETS)"
    )
    add_gateway_flags(p)  # the gateway's usage samples of every host join the local ones


def render_report(report: BudgetReport, *, ascii_only: bool = False) -> str:
    """The human view: per account window a gauge (used vs the ideal marker), the reset
    countdown and its confidence, allowed vs recent rate, status; the rung and why."""
    from fleet_tui.core.sanitize import clean_text
    from fleet_tui.present import budget_fmt as fmt
    from fleet_tui.present.glyphs import to_ascii

    marks = fmt.STATUS_MARK_ASCII if ascii_only else fmt.STATUS_MARK
    out: list[str] = []
    now = report.generated_at
    out.append(
        f"budgets {report.budgets_path} · tenant {clean_text(report.tenant_id)}@"
        f"{clean_text(report.host)} · {fmt.stamp(now)}"
    )
    if not report.budgets_found:
        out.append("No budgets file found there. To start, write one like this:")
        out.append("")
        out += ["  " + line for line in report.example.splitlines()]
        out.append("")
        out.append("(or name one with --budgets PATH / MOSAIC_FLEET_BUDGETS)")
    for a in report.accounts:
        head = f"{a.account}  {a.provider} {a.regime} · pacing {a.pacing}"
        if a.regime == "api":
            head += f" · spent {fmt.usd(a.spent_usd)} of {fmt.usd(a.ceiling_usd)} this {a.period}"
        for flag in fmt.account_flags(a.windows):
            head += f" · {flag}"
        out.append("")
        out.append(head)
        for w in a.windows:
            bar, _col, _f = fmt.gauge(
                w.used_percent, w.ideal_used_percent, GAUGE_WIDTH, ascii_only=ascii_only
            )
            pace = f" (pace {w.pace:.2f})" if w.pace is not None else ""
            out.append(
                f"  {clean_text(w.name, max_len=12):<7} [{bar}] {fmt.pct(w.used_percent):>7} used · ideal "
                f"{fmt.pct(w.ideal_used_percent)} · {marks.get(w.status, w.status)}{pace}"
            )
            left = (w.resets_at - now).total_seconds() if w.resets_at else None
            line = (
                f"          resets in {fmt.countdown(left)} ({fmt.stamp(w.resets_at)}, "
                f"{w.reset_confidence}) · allowed "
                f"{fmt.allowed(w.allowed_per_day, w.used_percent, left, w.window_minutes)}"
                f" · recent {fmt.rate(w.recent_rate_per_day, w.window_minutes)}"
            )
            out.append(line)
            warning = fmt.runs_out(w, now)
            if warning:
                out.append(f"          {warning}")
            extra = []
            age = fmt.sampled(w.observed_at, now)
            if age:
                extra.append(age)
            if w.projected_at_reset is not None:
                extra.append(f"projected {w.projected_at_reset:.0f} % at reset")
            extra += [clean_text(n, max_len=200) for n in w.notes]
            if extra:
                out.append("          " + " · ".join(extra))
        rung = f"rung {clean_text(a.rung)}" if a.rung else "no ladder rung"
        out.append(f"  {fmt.ACTION_MARK.get(a.rung_action, a.rung_action)} · {rung}")
        out.append(f"  why: {clean_text(a.rung_reason, max_len=400)}")
    if report.spend_today:
        out.append("")
        parts = [f"{clean_text(s.agent)} {fmt.usd(s.cost_usd)}" for s in report.spend_today[:12]]
        out.append("spend today (UTC): " + " · ".join(parts))
    if report.max_agents is not None:
        out.append(f"concurrency: at most {report.max_agents} agents")
    text = "\n".join(out)
    if ascii_only:  # an ASCII terminal (LANG=C): no separator or name may fail to print
        text = to_ascii(text.replace("·", "-"))  # ▲ ^, ▽ v, ⚠ !; a name's letters ?
    return text


def cmd_budget(args: argparse.Namespace) -> int:
    import json
    import os
    import sys

    from fleet_tui.config.fleet import configured_identity
    from fleet_tui.config.paths import budgets_location
    from fleet_tui.errors import EXIT_OK
    from fleet_tui.present.glyphs import text_is_ascii
    from fleet_tui.service.budgets import BudgetService, report_json

    config = config_from_args(args)
    tenant: str | None
    host: str | None
    try:
        tenant, host = configured_identity(config)
    except Exception:  # the roster is not needed for budgets; the budgets file names the tenant
        tenant = host = None
    service = BudgetService(
        budgets_location(args.budgets),
        config.state_dir,
        tenant_id=tenant,
        host=host,
    )
    gateway = gateway_from_args(args)
    gateway_warnings: list[str] = []
    if gateway is not None:
        from fleet_tui.service.budgets import fetch_gateway_samples

        tenant = service.tenant_fallback
        if tenant is None:  # the budgets file names the tenant when the roster does not
            loaded_budgets = service.load_budgets()
            tenant = loaded_budgets.config.tenant_id if loaded_budgets else None
        if tenant is not None:
            gateway_warnings = fetch_gateway_samples(service, gateway, tenant)
    report = service.load()
    report.warnings.extend(gateway_warnings)
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), indent=2) + "\n")
        return EXIT_OK
    print(render_report(report, ascii_only=text_is_ascii(sys.stdout.encoding, os.environ)))
    from fleet_tui.core.sanitize import clean_text

    for w in report.warnings:
        sys.stderr.write(f"warning: {clean_text(w, max_len=500)}\n")
    return EXIT_OK


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {"budget": cmd_budget}
