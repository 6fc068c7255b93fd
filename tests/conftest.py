"""Test isolation for fleet_tui: every test gets its own tmux socket folder, state and config.

The autouse fixture `fleet_env` gives EVERY test (tmux or not) a private temporary folder:
`TMUX_TMPDIR`, `XDG_STATE_HOME`, `XDG_CONFIG_HOME` and `HOME` point inside it, `TMUX` and
`TMUX_PANE` are removed, and the `MOSAIC_FLEET_*` variables are cleared. Nothing here ever runs
tmux without `-S` pointing inside that folder (all calls go through `TmuxRunner`, which always
passes `-S`), so the user's own servers are never touched.

Teardown kills every process whose environment names the folder (tmux servers inherit it, and so
do the agents in their panes), SIGCONTs stopped ones first, also kills any server found listening
on a socket inside the folder (from /proc/net/unix), and removes the folder.

Helpers (methods of `FleetEnv`): `start` a session running a command on a named socket, `stub`
an agent running the stub runtime, `tmux` one runner call, `server_pid`, `write_roster`,
`cli` (runs `python -m fleet_tui`, returns `(rc, stdout, stderr)`: the verbs of
`IN_PROCESS_VERBS` through `cli.main` in this process, the others as a subprocess),
`heartbeat`; and the module-level `wait_until`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

import pytest
import yaml

from fleet_tui.control.panes import new_agent_session
from fleet_tui.tmux import TmuxResult, TmuxRunner, session_target


def _cache_bytecode() -> None:
    """Keep compiled bytecode in one folder outside the source tree, for this run and the next.

    A shell with PYTHONDONTWRITEBYTECODE=1 (some CI and sandbox shells) makes every process
    compile from source whatever it imports: each `python -m fleet_tui` the tests run (about
    0.1 s more for `ps`, 0.3 s for the dashboard's modules), each xdist worker's assertion
    rewrite of every test module (about 10 s a worker). Bytecode goes to PYTHONPYCACHEPREFIX
    (the user's if set, else a folder in the virtualenv), never next to the sources; this
    process and every process it starts (xdist workers, CLI runs, tmux servers and their
    panes) read and write it there."""
    prefix = os.environ.get("PYTHONPYCACHEPREFIX") or os.path.join(sys.prefix, "pycache")
    try:
        os.makedirs(prefix, mode=0o700, exist_ok=True)
    except OSError:
        return  # a read-only virtualenv: leave the interpreter's settings alone
    if not os.access(prefix, os.W_OK):
        return
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = prefix  # the test modules and fleet_tui, imported after this
    sys.dont_write_bytecode = False


def _utf8_locale() -> None:
    """The suite's own process draws as a UTF-8 terminal would, whatever the shell that started
    it (a bare `ssh host cmd`, cron and a fresh CI image have no locale, under which the
    dashboard and the verbs rightly draw ASCII): tests about the locale set their own, and the
    worlds of `FleetEnv` pass C.UTF-8 to what they start."""
    for name in ("LANGUAGE", "LC_CTYPE"):
        os.environ.pop(name, None)
    os.environ["LANG"] = "C.UTF-8"
    os.environ["LC_ALL"] = "C.UTF-8"


_cache_bytecode()
_utf8_locale()
pytest_plugins = ["pg_support"]
T = TypeVar("T")

_CLEARED = (
    "TMUX",
    "TMUX_PANE",
    "MOSAIC_FLEET_ROSTER",
    "MOSAIC_FLEET_STATE_DIR",
    "MOSAIC_FLEET_BUDGETS",
    "MOSAIC_FLEET_GATEWAY_URL",
    "MOSAIC_FLEET_GATEWAY_TOKEN",
    "MOSAIC_FLEET_GATEWAY_DSN",
    "NO_COLOR",
    "COLUMNS",
    "LINES",
    "FLEET_TUI_DEBUG",
)


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml declares it too; registering here keeps `--strict-markers` runs working
    # when the suite is run from another rootdir.
    config.addinivalue_line("markers", "tmux: runs real tmux servers on private sockets")
    config.addinivalue_line(
        "markers",
        "slow(seconds): tens of seconds alone (the wheel install, the monkey): each starts a"
        " worker's share of the run, the longest first",
    )
    # Started in the background of a script (bash without job control: CI runners, `cmd &`
    # in a script), the suite inherits SIGINT ignored, and so would every program it starts:
    # Python keeps an inherited SIG_IGN, so the tests of Ctrl-C (exit 130) would wait for a
    # process that cannot be interrupted. An operator's Ctrl-C is never ignored: restore it.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _slow_seconds(item: pytest.Item) -> float | None:
    mark = item.get_closest_marker("slow")
    if mark is None:
        return None
    return float(mark.kwargs.get("seconds", mark.args[0] if mark.args else 10.0))


def _shares(total: int, workers: int) -> list[int]:
    """How xdist's `--dist worksteal` first splits `total` tests among `workers` idle workers:
    consecutive runs, each the pending count divided by the workers still to serve."""
    sizes = []
    for i in range(workers):
        size = total // (workers - i)
        sizes.append(size)
        total -= size
    return sizes


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests each start a worker's share of the run, the longest on the least loaded
    share (by their `seconds`); the rest keep their order (a module's tests stay together, and
    so do its module fixtures). Under `-n N --dist worksteal` (pyproject's addopts) the first
    split gives worker i the i-th consecutive share: the slow tests start at once on different
    workers, instead of one after the other on one worker, and an idle worker steals from the
    end of a busy one's share, never its slow head. Without xdist: slow tests first."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    slow = sorted(
        (item for item in items if _slow_seconds(item) is not None),
        key=lambda item: -(_slow_seconds(item) or 0.0),
    )
    if not slow:
        return
    rest = [item for item in items if _slow_seconds(item) is None]
    sizes = _shares(len(items), max(1, min(workers, len(items))))
    heads: list[list[pytest.Item]] = [[] for _ in sizes]
    loads = [0.0] * len(sizes)
    for item in slow:
        i = min(range(len(sizes)), key=lambda k: (loads[k], k))
        heads[i].append(item)
        loads[i] += _slow_seconds(item) or 0.0
    ordered: list[pytest.Item] = []
    for head, size in zip(heads, sizes, strict=True):
        take = max(0, size - len(head))
        ordered += head + rest[:take]
        del rest[:take]
    items[:] = ordered + rest


def unavailable(reason: str) -> NoReturn:
    """A test that needs something this machine lacks: skipped on a developer's machine, but a
    failure under CI (`CI_FLEET=1`, set by `.ci/dev test`), where a skip would hide a gap."""
    if os.environ.get("CI_FLEET") == "1":
        pytest.fail(f"required under CI (CI_FLEET=1): {reason}", pytrace=False)
    pytest.skip(reason)


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 5.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy; return it, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {message} (last: {last!r})"
            )
        time.sleep(interval)


class CliResult(NamedTuple):
    rc: int
    stdout: str
    stderr: str


# Verbs that read the fleet's files and tmux, write files, talk HTTP and print, then return:
# nothing of theirs outlives the call (no signal handler, no thread left working, no exec, no
# terminal). Everything else (the dashboard, lifecycle verbs, stream, attach, send, gateway,
# demo, hooks, alerts run, publish --every) always runs as its own process.
IN_PROCESS_VERBS = frozenset({"ps", "heartbeat", "budget", "usage", "publish"})
# An environment that changes what the interpreter itself does (encoding, locale, warnings):
# only a new process shows its effect.
_PROCESS_ENV = ("LANG", "LC_", "PYTHON", "TERM")


def in_process(args: Sequence[str], env: dict[str, str] | None = None) -> bool:
    """Whether `FleetEnv.cli(*args, env=env)` runs in this process (see `IN_PROCESS_VERBS`);
    FLEET_TEST_CLI=process runs every one as its own process (to compare, or to debug)."""
    if os.environ.get("FLEET_TEST_CLI") == "process" or not args:
        return False
    if args[0] not in IN_PROCESS_VERBS or "--every" in args:
        return False
    return not any(k.startswith(_PROCESS_ENV) for k in env or {})


def _set_environ(env: dict[str, str]) -> None:
    """Make os.environ `env`, never empty on the way (not clear() then update()): a thread of
    the test (a dashboard's poller) that starts a process meanwhile still passes the world's
    TMUX_TMPDIR, HOME and XDG folders."""
    os.environ.update(env)
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]


def _cli_in_process(
    args: Sequence[str], env: dict[str, str], *, input: str | None, cwd: Path
) -> CliResult:
    """`cli.main(args)` as `python -m fleet_tui` would run it: `env` as the whole environment,
    `cwd` as the folder, `input` (else nothing) on stdin, stdout and stderr as UTF-8 pipes read
    back as `subprocess.run(text=True)` reads them; the exit status from main or SystemExit."""
    from fleet_tui.cli.main import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_std = sys.stdin, sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
    stdout = io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True)
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    _set_environ(env)
    try:
        os.chdir(cwd)
        try:
            rc = main(list(args))
        except SystemExit as exc:
            code = exc.code
            rc = code if isinstance(code, int) else (0 if code is None else 1)
            if code is not None and not isinstance(code, int):
                stderr.write(f"{code}\n")
        except Exception:  # what the interpreter does with an uncaught one
            stderr.write(traceback.format_exc())
            rc = 1
    finally:
        os.chdir(saved_cwd)
        _set_environ(saved_env)
        sys.stdin, sys.stdout, sys.stderr = saved_std
        for stream in (stdin, stdout, stderr):
            with contextlib.suppress(ValueError):
                stream.flush()
            stream.detach()  # keeps the buffers open when the wrappers go

    def text(data: bytes) -> str:  # subprocess's universal newlines
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    return CliResult(rc, text(out.getvalue()), text(err.getvalue()))


class FleetEnv:
    """One private world: a short temp folder holding the tmux sockets, the state and config."""

    def __init__(self) -> None:
        # Unix socket paths are limited to 108 bytes: keep the folder short (/tmp/ftXXXXXXXX).
        self.base = Path(tempfile.mkdtemp(prefix="ft", dir="/tmp"))
        self.home = self.base / "h"
        self.state_home = self.base / "s"
        self.config_home = self.base / "c"
        for p in (self.home, self.state_home, self.config_home):
            p.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(
            TMUX_TMPDIR=str(self.base),
            XDG_STATE_HOME=str(self.state_home),
            XDG_CONFIG_HOME=str(self.config_home),
            HOME=str(self.home),  # no ~/.tmux.conf of the user's
            PYTHONUNBUFFERED="1",
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
        )
        self.env: dict[str, str] = env
        self.runner = TmuxRunner(tmpdir=str(self.base), env=env, timeout=3.0)

    # -- where things are --------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        return self.runner.socket_dir

    @property
    def roster_path(self) -> Path:
        """The default roster location ($XDG_CONFIG_HOME/mosaic/roster.yaml)."""
        return self.config_home / "mosaic" / "roster.yaml"

    @property
    def state_dir(self) -> Path:
        """The default state dir ($XDG_STATE_HOME/mosaic/fleet)."""
        return self.state_home / "mosaic" / "fleet"

    def heartbeat_path(self, name: str) -> Path:
        return self.state_dir / "heartbeats" / f"{name}.json"

    def heartbeat(self, name: str) -> dict[str, Any] | None:
        """The agent's heartbeat as written, or None while there is none (or mid-write)."""
        try:
            data = json.loads(self.heartbeat_path(name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def audit_lines(self) -> list[dict[str, Any]]:
        path = self.state_dir / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- tmux --------------------------------------------------------------------------------
    def tmux(self, socket: str, *args: str, **kw: Any) -> TmuxResult:
        return self.runner.run(socket, *args, **kw)

    def start(
        self,
        socket: str,
        name: str,
        argv: Sequence[str],
        *,
        agent: bool = True,
        width: int = 160,
        height: int = 48,
    ) -> None:
        """Start `argv` in a detached session `name` on `socket`.

        `agent=True` goes through `control.new_agent_session` (marked @mosaic_agent, fixed size,
        remain-on-exit); `agent=False` is a plain session, like an operator's own shell.
        """
        if agent:
            new_agent_session(
                self.runner,
                socket,
                name,
                list(argv),
                env=self._pane_env(),
                width=width,
                height=height,
                cwd=str(self.base),
            )
        else:
            self.runner.ensure_socket_dir()
            self.runner.run(
                socket,
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                str(width),
                "-y",
                str(height),
                *argv,
            )

    def _pane_env(self) -> dict[str, str]:
        keys = ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "HOME", "TMUX_TMPDIR", "PYTHONUNBUFFERED")
        return {k: self.env[k] for k in keys}

    def stub(
        self,
        socket: str,
        name: str,
        *,
        interval: float = 0.5,
        extra: Sequence[str] = (),
        wait: bool = True,
        wrapped: bool = False,
    ) -> None:
        """An agent running `fleet-tui stub NAME` in its pane; waits for its first heartbeat.

        `wrapped` runs it under `sh`, as a launcher script would. Only then can a test freeze
        it with SIGSTOP: tmux sends SIGCONT to a pane's own process when it stops.
        """
        argv = [sys.executable, "-m", "fleet_tui", "stub", name, "--interval", str(interval)]
        if wrapped:
            argv = ["sh", "-c", '"$@"; exit $?', "sh", *argv]
        self.start(socket, name, [*argv, *extra])
        if wait:
            self.wait_heartbeat(name)

    def wait_heartbeat(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        return wait_until(
            lambda: self.heartbeat(name), timeout=timeout, message=f"first heartbeat of {name}"
        )

    def server_pid(self, socket: str) -> int:
        return int(self.tmux(socket, "display-message", "-p", "#{pid}").stdout.strip())

    def stub_pid(self, socket: str, name: str) -> int:
        """The pid of the stub runtime in the session (the pane's process or one below it)."""
        todo = [self.pane_pid(socket, name)]
        while todo:
            pid = todo.pop(0)
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if argv[1:4] == [b"-m", b"fleet_tui", b"stub"]:
                    return pid
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                todo += [int(c) for c in children]
        raise AssertionError(f"no stub process in session {name}")

    def pane_pid(self, socket: str, name: str) -> int:
        out = self.tmux(socket, "display-message", "-p", "-t", session_target(name), "#{pane_pid}")
        return int(out.stdout.strip())

    # -- files -------------------------------------------------------------------------------
    def write_roster(
        self,
        agents: Sequence[dict[str, Any]] = (),
        *,
        tenant: str = "acme",
        host: str | None = "h1",
        socket_name: str | None = "mosaic-fleet",
        timeout_s: float | None = None,
        path: Path | None = None,
        text: str | None = None,
    ) -> Path:
        """Write roster.yaml v1 (to the default location unless `path`); `text` writes it raw."""
        path = path or self.roster_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            doc: dict[str, Any] = {"version": 1, "tenant_id": tenant}
            if host is not None:
                doc["host"] = host
            if socket_name is not None:
                doc["socket_name"] = socket_name
            if timeout_s is not None:
                doc["heartbeat_timeout_s"] = timeout_s
            doc["agents"] = [{"runtime": "stub", **a} for a in agents]
            text = yaml.safe_dump(doc, sort_keys=False)
        path.write_text(text)
        return path

    # -- the command line --------------------------------------------------------------------
    def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        unset: Sequence[str] = (),
        timeout: float = 30.0,
        input: str | None = None,
    ) -> CliResult:
        """Run `python -m fleet_tui ARGS` with this world's environment (plus `env`).

        The verbs that only read or write files and print (`in_process`) run in this process
        through `cli.main`, with the same environment, folder, stdin and exit status: a test
        that is not about the process saves the ~0.5 s of CPU a new interpreter costs."""
        full = {**self.env, **(env or {})}
        for k in unset:
            full.pop(k, None)
        if in_process(args, env):
            return _cli_in_process(args, full, input=input, cwd=self.base)
        proc = subprocess.run(
            [sys.executable, "-m", "fleet_tui", *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            cwd=str(self.base),
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def ps_json(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        res = self.cli("ps", "--json", *args, env=env)
        assert res.rc == 0, res
        data: dict[str, Any] = json.loads(res.stdout)
        return data

    # -- teardown ----------------------------------------------------------------------------
    def close(self) -> None:
        reap(self.base)
        _force_rmtree(self.base)


def _environ_mentions(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _socket_inodes(base: Path) -> set[str]:
    """Inodes of listening unix sockets bound inside `base` (tmux servers), from /proc/net/unix."""
    prefix = str(base) + "/"
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[7].startswith(prefix):
                found.add(parts[6])
    return found


def _pids_holding(inodes: set[str]) -> set[int]:
    if not inodes:
        return set()
    wanted = {f"socket:[{i}]" for i in inodes}
    pids: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in wanted:
                        pids.add(int(entry.name))
                        break
    return pids


def _our_pids(base: Path) -> set[int]:
    """Every process started for this world: tmux servers on its sockets, and any process whose
    environment names the folder (servers, the agents in their panes, stray CLI runs)."""
    needle = str(base).encode()
    me = os.getpid()
    pids = {
        int(e.name)
        for e in os.scandir("/proc")
        if e.name.isdigit() and int(e.name) != me and _environ_mentions(int(e.name), needle)
    }
    pids |= _pids_holding(_socket_inodes(base))
    pids.discard(me)
    return pids


def _alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] not in (b"Z", b"X")


def reap(base: Path, grace: float = 2.0) -> None:
    """Kill everything started in this world: SIGCONT stopped ones, SIGTERM, then SIGKILL.

    A world where no tmux socket folder was ever made started no server: skip the /proc scan
    (it costs a few ms, and most tests never touch tmux)."""
    if not any(base.glob("tmux-*")):
        return
    pids = _our_pids(base)
    for sig in (signal.SIGCONT, signal.SIGTERM):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids = {p for p in pids | _our_pids(base) if _alive(p)}
        if not pids:
            return
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


def _force_rmtree(base: Path) -> None:
    """Remove the folder even when a test made parts of it unreadable or someone else's."""
    for root, dirs, _files in os.walk(base):
        for d in dirs:
            p = os.path.join(root, d)
            with contextlib.suppress(OSError):
                if os.geteuid() == 0:
                    os.chown(p, 0, 0, follow_symlinks=False)
                os.chmod(p, stat.S_IRWXU)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def fleet_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[FleetEnv]:
    """Every test runs in its own world; in-process code sees it through os.environ too."""
    world = FleetEnv()
    for k in _CLEARED:
        monkeypatch.delenv(k, raising=False)
    # The dashboard's colours follow the terminal (ui.themes.colour_depth): every test sees a
    # 24-bit terminal, whatever TERM the test run has, unless it sets another itself.
    monkeypatch.setenv("COLORTERM", "truecolor")
    for k in ("NO_COLOR", "TEXTUAL_COLOR_SYSTEM"):
        monkeypatch.delenv(k, raising=False)
    for k in ("TMUX_TMPDIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "HOME"):
        monkeypatch.setenv(k, world.env[k])
    # A dashboard started in this process (`main(["tui"])` with the app stubbed) forks no
    # first-poll child of the test runner; the dashboards tests start in panes (world.env,
    # made before this) take the real path, child and all.
    monkeypatch.setenv("FLEET_TUI_NO_FIRST_POLL", "1")
    try:
        yield world
    finally:
        monkeypatch.undo()
        world.close()


@pytest.fixture
def snap_compare(snap_compare: Callable[..., bool]) -> Callable[..., bool]:
    """pytest-textual-snapshot's `snap_compare`, with text cursors that do not blink: a cursor
    blinks every 0.5 s from its focus, and on a loaded machine the screenshot can come after
    the first blink (CI once saw a composer without its cursor). A focused cursor stays shown,
    as it is on focus, which is what the stored snapshots have."""

    def compare(app: Any, *args: Any, run_before: Any = None, **kwargs: Any) -> bool:
        async def steady(pilot: Any) -> None:
            if run_before is not None:
                result = run_before(pilot)
                if inspect.isawaitable(result):
                    await result
            from textual.widgets import Input, TextArea

            for screen in pilot.app.screen_stack:
                for widget in screen.query("Input, TextArea"):
                    if isinstance(widget, Input | TextArea):
                        widget.cursor_blink = False
                        # TextArea keeps the lines drawn while the cursor blinked off under
                        # the key of a steady cursor: drop them (a style change does the same)
                        widget.notify_style_update()
            await pilot.pause()

        return snap_compare(app, *args, run_before=steady, **kwargs)

    return compare


@pytest.fixture(scope="module")
def module_env() -> Iterator[FleetEnv]:
    """A world shared by the tests of one module (for a fleet that is costly to start).
    Only reach it through its own helpers (`cli`, `tmux`): os.environ is the test's world."""
    world = FleetEnv()
    try:
        yield world
    finally:
        world.close()
