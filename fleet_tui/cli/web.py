"""`fleet-tui web` (the dashboard served to browsers) and `web token create|list|revoke`.

Imports only argparse at module level (the CLI loads every verb module to build its parser); the
server (aiohttp and textual-serve: the `web` extra) is imported when `web` serves. The token verbs
need no extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

INSTALL_HINT = "pip install 'fleet-tui[web]'"
DEFAULT_LISTEN = "127.0.0.1:8790"


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""
    from fleet_tui.cli.args import add_gateway_flags, positive

    p = sub.add_parser("web", help="the dashboard served to browsers, behind a login")
    common(p)
    add_gateway_flags(p)
    p.add_argument(
        "--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 = any free port); beyond "
        "loopback only with --cert/--key or --behind-proxy",
    )  # fmt: skip
    p.add_argument("--cert", metavar="FILE", default=None, help="TLS certificate (PEM)")
    p.add_argument("--key", metavar="FILE", default=None, help="TLS private key (PEM)")
    p.add_argument(
        "--behind-proxy", action="store_true",
        help="a TLS-terminating reverse proxy is in front: trust its X-Forwarded-Proto/-Host/-For",
    )  # fmt: skip
    p.add_argument(
        "--max-sessions", metavar="N", type=int, default=8,
        help="browser sessions (dashboard processes) at once (default 8)",
    )  # fmt: skip
    p.add_argument(
        "--idle-timeout", metavar="S", type=positive, default=1800.0,
        help="close a session with no key, click or resize for S seconds (default 1800)",
    )  # fmt: skip
    verbs = p.add_subparsers(dest="web_verb", metavar="VERB", parser_class=type(p))
    q = verbs.add_parser("token", help="create, list or revoke web tokens")
    common(q)
    tv = q.add_subparsers(dest="token_verb", metavar="VERB", parser_class=type(p))
    tv.required = True
    c = tv.add_parser("create", help="a new token, printed once as the last line; stored hashed")
    common(c)
    c.add_argument("--scope", choices=("view", "control"), required=True,
                   help="view: read-only dashboard; control: may also send and start/stop")  # fmt: skip
    c.add_argument("--label", default=None, help="a name for the token (default: SCOPE-ID)")
    c = tv.add_parser("list", help="the tokens (label, scope, created, last used; never the token)")
    common(c)
    c = tv.add_parser("revoke", help="revoke a token by label or id (its sessions end)")
    common(c)
    c.add_argument("which", metavar="LABEL|ID")


def _parse_listen(text: str) -> tuple[str, int]:
    from fleet_tui.errors import BadInput

    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise BadInput(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:8790")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        raise BadInput(f"--listen {text!r}: the port is not a number") from None
    if not 0 <= port <= 65535:
        raise BadInput(f"--listen {text!r}: the port must be 0-65535")
    return host, port


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _app_argv(args: argparse.Namespace) -> list[str]:
    """The dashboard each browser session runs: this interpreter, `-P` (the working folder is not
    put on sys.path), `-m fleet_tui`, the server's file flags, `tui` and its gateway flags."""

    def path(value: Any) -> str:
        return os.path.abspath(os.path.expanduser(str(value)))

    argv = [sys.executable, "-P", "-m", "fleet_tui"]
    for flag in ("roster", "state_dir"):
        value = getattr(args, flag, None)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", path(value)]
    if getattr(args, "heartbeat_timeout", None) is not None:
        argv += ["--heartbeat-timeout", str(args.heartbeat_timeout)]
    argv.append("tui")
    if getattr(args, "gateway", None):
        argv += ["--gateway", str(args.gateway)]
    if getattr(args, "token_file", None):
        argv += ["--token-file", path(args.token_file)]
    if getattr(args, "insecure", False):
        argv.append("--insecure")
    return argv


def cmd_web(args: argparse.Namespace) -> int:
    from fleet_tui.cli.args import config_from_args
    from fleet_tui.errors import BadInput

    state_dir = config_from_args(args).state_dir
    if args.web_verb == "token":
        return _tokens(args, state_dir)

    host, port = _parse_listen(args.listen)
    if bool(args.cert) != bool(args.key):
        raise BadInput("--cert and --key go together")
    tls = bool(args.cert)
    if not is_loopback(host) and not tls and not args.behind_proxy:
        raise BadInput(
            f"refusing to listen on {host} without TLS: give --cert FILE --key FILE, or "
            "--behind-proxy when a TLS proxy is in front (or listen on 127.0.0.1)"
        )
    if args.max_sessions < 1:
        raise BadInput("--max-sessions must be at least 1")
    try:
        from fleet_tui.web import serve
    except ImportError as exc:
        raise BadInput(
            f"fleet-tui web needs its extra ({exc.name} is missing): {INSTALL_HINT}"
        ) from None
    gateway = bool(getattr(args, "gateway", None) or os.environ.get("MOSAIC_FLEET_GATEWAY_URL"))
    return serve.run(
        host,
        port,
        state_dir=state_dir,
        app_argv=_app_argv(args),
        with_gateway_token=gateway,
        cert=args.cert,
        key=args.key,
        behind_proxy=args.behind_proxy,
        max_sessions=args.max_sessions,
        idle_timeout_s=args.idle_timeout,
    )


def _tokens(args: argparse.Namespace, state_dir: Any) -> int:
    from fleet_tui.errors import EXIT_NOT_FOUND, BadInput, FleetError
    from fleet_tui.web.tokens import TokenStore, TokenStoreError

    store = TokenStore(state_dir)
    try:
        if args.token_verb == "create":
            try:
                record, token = store.create(args.scope, args.label)
            except ValueError as exc:
                raise BadInput(str(exc)) from None
            print(
                f"web token '{record.label}' (id {record.token_id}, scope {record.scope}); "
                f"shown once, stored hashed in {store.path}:"
            )
            print(token)
            return 0
        if args.token_verb == "list":
            rows = [("ID", "LABEL", "SCOPE", "CREATED", "LAST USED")]
            for t in store.load():
                rows.append((t.token_id, t.label, t.scope, t.created, t.last_used or "never"))
            if len(rows) == 1:
                print("no web tokens yet: 'fleet-tui web token create --scope view'")
                return 0
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            return 0
        if args.token_verb == "revoke":
            gone = store.revoke(args.which)
            if gone is None:
                sys.stderr.write(f"fleet-tui: no web token {args.which!r}\n")
                return EXIT_NOT_FOUND
            print(f"revoked web token '{gone.label}' (id {gone.token_id}); its sessions end")
            return 0
    except TokenStoreError as exc:
        raise FleetError(str(exc)) from None
    raise BadInput("unknown web verb")


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {"web": cmd_web}
