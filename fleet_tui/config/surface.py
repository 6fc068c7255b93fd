"""Where the dashboard runs and what it may do there: the terminal, or a browser session of
`fleet-tui web` (DESIGN.md "Web").

The web server starts one ordinary dashboard process per browser session, with two variables in
its environment: `MOSAIC_FLEET_WEB_SCOPE` (`view` or `control`; anything else, even empty, is
`view`: fail closed) and `MOSAIC_FLEET_WEB_LABEL` (the label of the token that logged in). With
them set, the app is on the `web` surface: its audit lines say `surface: web` and carry the label,
a `view` session is read-only (stream yes; watch, attach, send and the lifecycle verbs refuse,
each with its reason), and a `control` session may send and use the lifecycle verbs behind the
same typed confirmation, but never watch or attach: a browser has no terminal to hand over.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SCOPE_ENV = "MOSAIC_FLEET_WEB_SCOPE"
LABEL_ENV = "MOSAIC_FLEET_WEB_LABEL"
SCOPES = ("view", "control")

# The verbs a read-only (view) web session refuses, and those no web session can do.
# (a silence mutes the fleet's alerts for every dashboard and `alerts run`: a write too)
_WRITES = frozenset({"send", "start", "stop", "restart", "probe", "silence"})
_HANDOVERS = frozenset({"watch", "attach"})


def _printable(text: str, max_len: int = 64) -> str:
    """The label as safe one-line text (it was typed by an operator, but it is shown and logged)."""
    kept = "".join(ch for ch in text if ch.isprintable())
    return kept[:max_len]


@dataclass(frozen=True)
class Surface:
    """`name` is what the audit log's `surface` says (`tui` or `web`); `scope` and `label` are
    the web session's (None in a terminal)."""

    name: str = "tui"
    scope: str | None = None
    label: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Surface:
        env = os.environ if environ is None else environ
        if SCOPE_ENV not in env:
            return cls()
        scope = env[SCOPE_ENV] if env[SCOPE_ENV] in SCOPES else "view"
        label = _printable(env.get(LABEL_ENV, "")) or None
        return cls("web", scope, label)

    @property
    def on_web(self) -> bool:
        return self.name == "web"

    def refusal(self, verb: str) -> str | None:
        """Why `verb` is not available on this surface (one line), or None when it is."""
        if not self.on_web:
            return None
        if verb in _HANDOVERS:
            how = "watch" if verb == "watch" else "attach"
            return (
                f"interactive {how} is a terminal action: run `fleet-tui {how} NAME` in a "
                "terminal on this host"
            )
        if verb in _WRITES and self.scope != "control":
            return "this web session is read-only (a view token); log in with a control token"
        return None

    def describe(self) -> str:
        """One line for the screen: `web · read-only (view token 'ops')`."""
        if not self.on_web:
            return "terminal"
        what = "read-only" if self.scope != "control" else "control"
        label = f" '{self.label}'" if self.label else ""
        return f"web · {what} ({self.scope} token{label})"


def web_label(surface: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token label an audit line of `surface` carries: the web session's, else None."""
    if surface != "web":
        return None
    env = os.environ if environ is None else environ
    return _printable(env.get(LABEL_ENV, "")) or None
