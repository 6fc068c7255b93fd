"""Verbs of the cross-host register: `gateway serve`, `gateway token create|list|revoke`,
`gateway migrate`.

Imports only argparse at module level (the CLI loads every verb module to build its parser);
the gateway itself (FastAPI, uvicorn, psycopg: the `gateway` extra) is imported when a verb runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

DSN_ENV = "MOSAIC_FLEET_GATEWAY_DSN"
INSTALL_HINT = "pip install 'fleet-tui[gateway]'"


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""
    p = sub.add_parser("gateway", help="the reference gateway of the cross-host register")
    verbs = p.add_subparsers(dest="gateway_verb", metavar="VERB", parser_class=type(p))
    verbs.required = True

    def dsn(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--dsn", metavar="DSN", default=None, help=f"PostgreSQL database (env {DSN_ENV})"
        )

    q = verbs.add_parser("serve", help="serve the gateway API (migrates the fleet schema first)")
    dsn(q)
    q.add_argument(
        "--listen", metavar="HOST:PORT", default="127.0.0.1:8787",
        help="address to listen on (default 127.0.0.1:8787; port 0 = any free port)",
    )  # fmt: skip
    q.add_argument("--no-access-log", action="store_true", help="do not log request lines")
    q.add_argument("--pool", metavar="N", type=int, default=10, help="database connections")
    q.add_argument(
        "--host-retention-days", metavar="D", type=float, default=7.0,
        help="forget a host (its snapshot and heartbeats) silent this many days (default 7)",
    )  # fmt: skip

    q = verbs.add_parser("migrate", help="create or upgrade the fleet schema")
    dsn(q)

    q = verbs.add_parser("token", help="create, list or revoke API tokens")
    tv = q.add_subparsers(dest="token_verb", metavar="VERB", parser_class=type(p))
    tv.required = True
    c = tv.add_parser("create", help="a new token, printed once as the last line; stored hashed")
    dsn(c)
    c.add_argument("--tenant", metavar="T", action="append", required=True,
                   help="a tenant the token grants (repeat for more)")  # fmt: skip
    c.add_argument("--scope", choices=("read", "publish"), action="append", required=True,
                   help="read and/or publish (repeat for both)")  # fmt: skip
    c.add_argument("--host", metavar="H", action="append", default=None,
                   help="bind a publish token to this host: it writes only the rows of the "
                   "hosts given (repeat for more); any other host: 403")  # fmt: skip
    c.add_argument("--label", default=None, help="a note kept with the token (not secret)")
    c = tv.add_parser("list", help="the tokens (ids, tenants, scopes; never the tokens)")
    dsn(c)
    c = tv.add_parser("revoke", help="revoke a token by its id")
    dsn(c)
    c.add_argument("token_id", metavar="ID")


def _gateway_db() -> Any:
    try:
        from fleet_tui.server import db
    except ImportError as exc:
        from fleet_tui.errors import BadInput

        raise BadInput(
            f"the gateway needs its extra ({exc.name} is missing): {INSTALL_HINT}"
        ) from None
    return db


def _dsn(args: argparse.Namespace) -> str:
    from fleet_tui.errors import BadInput

    value = args.dsn or os.environ.get(DSN_ENV)
    if not value:
        raise BadInput(f"no database: give --dsn DSN or set {DSN_ENV}")
    return str(value)


def cmd_gateway(args: argparse.Namespace) -> int:
    from fleet_tui.errors import BadInput, FleetError

    db = _gateway_db()
    dsn = _dsn(args)
    try:
        if args.gateway_verb == "serve":
            try:
                from fleet_tui.server.server import parse_listen, serve
            except ImportError as exc:
                raise BadInput(
                    f"the gateway needs its extra ({exc.name} is missing): {INSTALL_HINT}"
                ) from None
            try:
                parse_listen(args.listen)
            except db.GatewayDbError as exc:
                raise BadInput(str(exc)) from None
            days = args.host_retention_days
            if not days > 0 or days == float("inf"):
                raise BadInput(f"--host-retention-days {days:g}: give a number of days above 0")
            return int(
                serve(
                    dsn,
                    args.listen,
                    access_log=not args.no_access_log,
                    pool_max=args.pool,
                    host_retention_days=days,
                )
            )
        if args.gateway_verb == "migrate":
            version, applied = db.migrate(dsn)
            done = ", ".join(str(v) for v in applied) if applied else "nothing to apply"
            print(f"schema fleet at version {version} ({done})")
            return 0
        if args.token_verb == "create":
            for tenant in args.tenant:
                if not db.TENANT_PATTERN.match(tenant):
                    raise BadInput(
                        f"--tenant {tenant!r}: use letters, digits, '_', '.', '-' (1-128)"
                    )
            try:
                db.check_hosts(args.host, args.scope)
            except db.GatewayDbError as exc:
                raise BadInput(str(exc)) from None
            token_id, token = db.create_token(
                dsn, args.tenant, args.scope, args.label, hosts=args.host
            )
            bound = f", host(s) {', '.join(sorted(set(args.host)))}" if args.host else ""
            print(
                f"token {token_id} for tenant(s) {', '.join(sorted(set(args.tenant)))}, "
                f"scope(s) {', '.join(sorted(set(args.scope)))}{bound}; shown once, stored hashed:"
            )
            print(token)
            return 0
        if args.token_verb == "list":
            rows = [("ID", "TENANTS", "SCOPES", "HOSTS", "CREATED", "STATE", "LABEL")]
            for t in db.list_tokens(dsn):
                state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
                rows.append(
                    (
                        t.token_id,
                        ",".join(t.tenants),
                        ",".join(t.scopes),
                        ",".join(t.hosts) if t.hosts else "*",
                        f"{t.created_at:%Y-%m-%dT%H:%MZ}",
                        state,
                        t.label or "",
                    )
                )
            if len(rows) == 1:
                print("no tokens yet: 'fleet-tui gateway token create --tenant T --scope S'")
                return 0
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            return 0
        if args.token_verb == "revoke":
            if not db.revoke_token(dsn, args.token_id):
                from fleet_tui.errors import EXIT_NOT_FOUND

                sys.stderr.write(f"fleet-tui: no active token {args.token_id}\n")
                return EXIT_NOT_FOUND
            print(f"revoked {args.token_id}")
            return 0
    except db.GatewayDbError as exc:
        raise FleetError(str(exc)) from None
    raise BadInput("unknown gateway verb")


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {"gateway": cmd_gateway}
