"""The `publish` verb: push this host's snapshot, heartbeats and usage to the gateway.

`publish --gateway URL [--once | --every S] [--token-file PATH] [--insecure]`. Exit codes with
`--once` (the default): 0 everything delivered; 2 bad input: the address, token (401/403) or
roster, or records that will never be delivered as they are (ledger lines that are invalid, and
records the gateway refused, set aside in `gateway-queue/rejected/`; the rest WAS delivered, the
last line counts both); 4 the gateway could not be reached or failed, or the disk is full: what
was read is queued in the state dir for the next run. 2 wins over 4: a person must look. With
`--every S` it runs until Ctrl-C (or SIGTERM), printing one line per cycle; no failure of a cycle
(gateway, roster, disk) ends it.

Imports only argparse at module level (the CLI loads every verb module to build its parser).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fleet_tui.cli.args import add_gateway_flags, config_from_args, gateway_from_args, new_collector


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not 0.2 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0.2 and 86400 seconds: '{text}'")
    return value


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""
    p = sub.add_parser(
        "publish",
        help="push this host's snapshot, heartbeats and usage to the gateway",
        description="Push this host's ps snapshot, heartbeats, usage samples and spend records "
        "to the gateway. What cannot be delivered waits in the state dir (gateway-queue/) and "
        "is sent first next time; records the gateway refuses are set aside in gateway-queue/rejected/. "
        "Exit 0 delivered, 4 queued for later, 2 bad input (including records set aside or "
        "not published as invalid).",
    )
    common(p)
    add_gateway_flags(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one cycle, then exit (the default)")
    mode.add_argument(
        "--every", metavar="S", type=_seconds, default=None, help="a cycle every S seconds"
    )


def cmd_publish(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading
    import time

    from fleet_tui.core.sanitize import clean_text
    from fleet_tui.errors import EXIT_OK, BadInput, FleetError, NotConfirmed
    from fleet_tui.remote.push import GatewayPush
    from fleet_tui.service.publisher import Publisher

    settings = gateway_from_args(args)
    if settings is None:
        raise BadInput("publish: no gateway; pass --gateway URL or set MOSAIC_FLEET_GATEWAY_URL")
    config = config_from_args(args)
    with GatewayPush(settings) as client:
        publisher = Publisher(config, client, collector=new_collector(config, keep_last_good=True))
        if args.every is None:
            result = publisher.cycle()
            for w in result.warnings:
                sys.stderr.write(f"warning: {clean_text(w, max_len=400)}\n")
            if result.error is not None and result.error.kind in ("refused", "misdirected"):
                hint = ""
                if result.error.status == 403 and publisher.tenant is not None:
                    hint = (
                        f" (this host publishes as tenant "
                        f"'{clean_text(publisher.tenant, max_len=40)}': the roster's tenant_id, "
                        "else the login name; and as host "
                        f"'{clean_text(publisher.host or '', max_len=80)}': a token bound to "
                        "hosts takes only those)"
                    )
                raise BadInput(
                    f"{clean_text(str(result.error), max_len=300)}{hint}; "
                    f"{result.pending_files} queued in {publisher.queue.folder}"
                )
            if result.refused_some:
                line = clean_text(result.line(settings.display, once=True), max_len=500)
                raise BadInput(line.split(" ", 1)[1])
            if not result.drained:
                line = clean_text(result.line(settings.display, once=True), max_len=400)
                raise NotConfirmed(line.split(" ", 1)[1])
            print(clean_text(result.line(settings.display), max_len=400))
            return EXIT_OK

        # A signal ends the loop between cycles: raised inside a cycle, it would surface wrapped
        # in whatever was running (pydantic's serializer turns it into an "unexpected error").
        # A second Ctrl-C does not wait for the cycle.
        stopping = threading.Event()

        def stop(signum: int, frame: object) -> None:
            if stopping.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while not stopping.is_set():
                started = time.monotonic()
                try:
                    result = publisher.cycle()
                    for w in result.warnings:
                        sys.stderr.write(f"warning: {clean_text(w, max_len=400)}\n")
                    print(clean_text(result.line(settings.display), max_len=400), flush=True)
                except FleetError as exc:  # e.g. the roster turned bad: say it, keep going
                    print(f"error: {clean_text(str(exc), max_len=300)}", flush=True)
                except OSError as exc:  # e.g. a full disk: say it, retry next cycle
                    why = exc.strerror or type(exc).__name__
                    where = f" ({exc.filename})" if exc.filename else ""
                    print(f"error: {clean_text(why + where, max_len=300)}; retrying", flush=True)
                stopping.wait(max(args.every - (time.monotonic() - started), 0.0))
        except KeyboardInterrupt:
            pass
        files, _size = publisher.queue.usage()
        print(f"stopped; {files} queued for the next run", flush=True)
        return EXIT_OK


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {"publish": cmd_publish}
