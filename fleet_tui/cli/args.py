"""What the verb modules share: the common and gateway flags, and what flags build (the fleet
configuration, the gateway settings, a collector with the settings file's inference rules).

A leaf of the CLI: it imports no other `fleet_tui.cli` module, so `cli.main` (the parser and the
dispatch, the composition root) and the verb modules build on it, never on each other. Only
argparse at module level (the CLI loads every verb module to build its parser); the rest is
imported when a verb runs.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet_tui.config.fleet import FleetConfig
    from fleet_tui.core.infer import InferenceRules
    from fleet_tui.remote.connection import GatewaySettings
    from fleet_tui.service.collector import BudgetProvider, FleetCollector, UsageProvider


def positive(text: str) -> float:
    """An argparse `type`: seconds in (0, 86400]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not value > 0 or value > 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds: '{text}'")
    return value


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """`--roster`, `--state-dir`, `--heartbeat-timeout`, on the top-level parser and every verb.
    Absent flags leave no attribute (a verb's parser does not undo the top-level one's): read
    them with `getattr(args, "roster", None)`, or build the configuration with
    `config_from_args`."""
    S = argparse.SUPPRESS
    p.add_argument(
        "--roster", metavar="PATH", default=S, help="roster.yaml (env MOSAIC_FLEET_ROSTER)"
    )
    p.add_argument(
        "--state-dir",
        metavar="PATH",
        default=S,
        help="state dir: spool, logs, audit (env MOSAIC_FLEET_STATE_DIR)",
    )
    p.add_argument(
        "--heartbeat-timeout",
        metavar="S",
        type=positive,
        default=S,
        help="heartbeat timeout N in seconds (default: roster, else 30)",
    )


def add_gateway_flags(p: argparse.ArgumentParser) -> None:
    """`--gateway URL`, `--token-file PATH`, `--insecure` (ps, the dashboard, budget, publish).
    Absent flags leave no attribute, as in `add_common_flags`: read them with
    `gateway_from_args`."""
    S = argparse.SUPPRESS
    p.add_argument(
        "--gateway",
        metavar="URL",
        default=S,
        help="the gateway's address (env MOSAIC_FLEET_GATEWAY_URL)",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        default=S,
        help="a file (mode 0600) holding the token (else env MOSAIC_FLEET_GATEWAY_TOKEN)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        default=S,
        help="allow plain http or unverified TLS; only for a loopback address",
    )


def config_from_args(args: argparse.Namespace) -> FleetConfig:
    """The fleet configuration the common flags and the environment name."""
    from fleet_tui.config.fleet import FleetConfig

    return FleetConfig.from_flags(
        getattr(args, "roster", None),
        getattr(args, "state_dir", None),
        getattr(args, "heartbeat_timeout", None),
    )


def gateway_from_args(args: argparse.Namespace) -> GatewaySettings | None:
    """The gateway settings the flags and the environment name, or None (local only)."""
    import os

    if not getattr(args, "gateway", None) and not os.environ.get("MOSAIC_FLEET_GATEWAY_URL"):
        return None  # local only; and `ps` does not pay for importing httpx
    from fleet_tui.remote.connection import gateway_settings

    return gateway_settings(
        getattr(args, "gateway", None),
        token_file=getattr(args, "token_file", None),
        insecure=bool(getattr(args, "insecure", False)),
    )


def _inference_rules() -> tuple[InferenceRules, list[str]]:
    """The settings file's inference rules; the defaults, without building the settings models
    (pydantic), when there is no settings file: most runs (issue 16, `ps` start-up)."""
    from fleet_tui.config.paths import settings_path
    from fleet_tui.core.infer import DEFAULT_RULES

    try:
        os.stat(settings_path())
    except (FileNotFoundError, NotADirectoryError):
        return DEFAULT_RULES, []
    except OSError:
        pass  # the settings reader says what is wrong with it
    from fleet_tui.config.settings import load_inference_rules

    return load_inference_rules()


def new_collector(
    config: FleetConfig,
    *,
    keep_last_good: bool = False,
    usage_provider: UsageProvider | None = None,
    budget_provider: BudgetProvider | None = None,
) -> FleetCollector:
    """A collector for `config` with the inference rules of the settings file (its `inference`
    section; what is wrong there is said in every snapshot's warnings)."""
    from fleet_tui.service.collector import FleetCollector

    rules, notices = _inference_rules()
    return FleetCollector(
        config,
        keep_last_good=keep_last_good,
        inference=rules,
        inference_notices=notices,
        usage_provider=usage_provider,
        budget_provider=budget_provider,
    )
