"""Who this machine's records belong to: (tenant_id, host).

The one rule, shared by the collector, the CLI verbs, the budgets and the runtime hooks: the
roster's `tenant_id` and `host` when there is a roster, else the login name and the hostname.
Stdlib only (the hooks import it on every prompt: no pydantic, no YAML, no `socket`).
"""

from __future__ import annotations

import os
from typing import Protocol


class RosterIdentity(Protocol):
    """What identity needs of a roster (a `Roster` has both; the hooks pass the two fields they
    read without validating the whole file)."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def host(self) -> str | None: ...


def hostname() -> str:
    """This machine's name (`socket.gethostname()` on Linux, without importing socket)."""
    return os.uname().nodename


def login_name() -> str:
    """The login name, else the numeric uid (a uid with no passwd entry, as in containers)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def local_identity(roster: RosterIdentity | None) -> tuple[str, str]:
    """(tenant_id, host) of local records: the roster's, else the login name and the hostname
    (a roster without `host` still names the tenant)."""
    host = (roster.host if roster is not None and roster.host else None) or hostname()
    if roster is not None:
        return roster.tenant_id, host
    return login_name(), host
