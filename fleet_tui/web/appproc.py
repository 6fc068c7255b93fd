"""One browser session's dashboard process, on textual-serve's AppService protocol.

textual-serve 1.1.x starts the app with `asyncio.create_subprocess_shell(command)` and the
server's whole environment. Here (a subclass, so the framing of its packets, downloads and the
browser client stay textual-serve's):
- argv, never a shell: `create_subprocess_exec(*argv)`;
- an environment built for the session: a short allow-list of the server's (PATH, HOME, locale,
  XDG and tmux folders, the fleet's file locations), textual's web driver variables, and the two
  variables of the web contract (`MOSAIC_FLEET_WEB_SCOPE`, `MOSAIC_FLEET_WEB_LABEL`). Never the web
  token store's path beyond the state dir the dashboard needs anyway, never the gateway's database
  DSN; the gateway token only when the dashboard reads a gateway;
- its own process session (`start_new_session`): the app and everything it starts share one process
  group, which `stop` ends (SIGTERM, then SIGKILL after a grace) once the socket closes, so no
  orphan outlives its browser tab.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Any

from textual_serve.app_service import AppService

# Copied from the server's environment when set; nothing else is.
_PASS = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMUX_TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
    "MOSAIC_FLEET_ROSTER",
    "MOSAIC_FLEET_STATE_DIR",
    "MOSAIC_FLEET_BUDGETS",
    "MOSAIC_FLEET_ALERTS",
    "MOSAIC_FLEET_GATEWAY_URL",
    "MOSAIC_FLEET_TUI_CONFIG",
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "NO_COLOR",
    # remote hands (hosts: in fleet-tui.yaml) use the operator's own ssh agent, as in a terminal
    "SSH_AUTH_SOCK",
)
_PASS_PREFIXES = ("OTEL_",)
GATEWAY_TOKEN_ENV = "MOSAIC_FLEET_GATEWAY_TOKEN"
SCOPE_ENV = "MOSAIC_FLEET_WEB_SCOPE"
LABEL_ENV = "MOSAIC_FLEET_WEB_LABEL"
STOP_GRACE_S = 3.0


def session_environment(
    base: Mapping[str, str],
    *,
    scope: str,
    label: str,
    width: int,
    height: int,
    with_gateway_token: bool,
) -> dict[str, str]:
    """The environment of one session's app, from the server's `base`."""
    env = {k: base[k] for k in _PASS if k in base}
    env.update({k: v for k, v in base.items() if k.startswith(_PASS_PREFIXES)})
    if with_gateway_token and GATEWAY_TOKEN_ENV in base:
        env[GATEWAY_TOKEN_ENV] = base[GATEWAY_TOKEN_ENV]
    env.update(
        {
            "TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver",
            "TEXTUAL_FPS": "60",
            "TEXTUAL_COLOR_SYSTEM": "truecolor",
            "TERM_PROGRAM": "textual",
            "TERM_PROGRAM_VERSION": version("textual-serve"),
            "COLUMNS": str(width),
            "ROWS": str(height),
            "PYTHONUNBUFFERED": "1",
            SCOPE_ENV: scope if scope in ("view", "control") else "view",
            LABEL_ENV: label,
        }
    )
    return env


class SessionApp(AppService):
    """The dashboard of one browser session."""

    def __init__(
        self, argv: Sequence[str], env_for: Any, cwd: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(" ".join(argv), **kwargs)  # the command text is only shown, never run
        self.argv = list(argv)
        self._env_for = env_for  # (width, height) -> environment
        self._cwd = cwd
        self.pid: int | None = None
        self.ended = False

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env_for(width, height),
            cwd=self._cwd,
            start_new_session=True,
        )
        self._process = process
        self._stdin = process.stdin
        self.pid = process.pid
        return process

    async def run(self) -> None:
        """textual-serve's loop, then close the socket: an app that ended without its `exit`
        packet (it crashed, or never started) would otherwise leave the browser's socket open,
        holding one of the sessions, until the idle timeout."""
        await super().run()
        self.ended = True
        with contextlib.suppress(Exception):
            await self.remote_close()

    async def stop(self) -> None:
        """Ask the app to quit, then end its process group: SIGTERM, SIGKILL after a grace."""
        task = self._task
        if task is None and self._process is None:
            return
        if task is not None:
            self._task = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_meta({"type": "quit"}), 1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
        await self._end_group()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _end_group(self) -> None:
        process = self._process
        if process is None:
            return
        pgid = process.pid  # a session leader: its group id is its pid
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            if not _group_alive(pgid) and process.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
                await asyncio.wait_for(process.wait(), wait)
            if process.returncode is not None:
                # the leader is gone; give its group a moment to follow the signal
                for _ in range(20):
                    if not _group_alive(pgid):
                        break
                    await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)  # anything still in the group
        # and anything of its session in a group of its own (a remote stream's ssh)
        for pid in session_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def session_members(sid: int) -> list[int]:
    """The pids whose session id is `sid` (from /proc; empty where there is no /proc)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
