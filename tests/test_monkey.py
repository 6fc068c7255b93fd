"""A seeded monkey drives the real dashboard while a real fleet churns (issue 12).

What runs: the real `FleetApp` under Textual's Pilot, on the LIVE sources (`LiveSource` with
the app's own poller every second and its heartbeat-spool watcher, `LiveActions`), against a real
tmux server on a private socket (conftest: nothing here can reach the user's servers). A churn
thread flips the fleet under the app: every ~0.4 s it writes heartbeats with random states (some
dated in the future, some left to go stale: the roster's timeout is 3 s), and every ~1.5 s it
kills a session, kills a pane's process (a dead pane), or brings a killed session back. A
non-agent shell and an agent missing from the roster are there for `A` and the drift flags.

Why the live poller and not a deterministic churning source: the bug this test guards against
(issue 12: a poll landing as a screen is pushed or popped) lives in the timing between the
poller's thread worker and the keys, and a live fleet of `sleep` panes is cheap enough on two
shared cores (a poll of 8 sessions takes tens of milliseconds). The keys and the churn are
seeded, the timing is not: a failure prints the seed and the last keys, and the exact races are
pinned down deterministically in tests/test_screen_lifecycle.py.

The keys are the dashboard's real bindings (app, fleet screen, table, detail, stream, budgets,
help, warnings, audit, dialogs, filter, sorts, palette) plus a few letters for the inputs, and
resizes (80x24, small and large sizes). Excluded: `q`, `ctrl+q`, `ctrl+c` (they quit; `escape`
covers "back"). `w` and `a` are included: they would hand the terminal to `tmux attach`, which
Pilot's headless driver cannot do (`SuspendNotSupported`: the app says so and stays), and the
attach confirmation is dismissed with esc like any dialog. In the command palette the monkey types
one of the fleet's own commands before `enter`, and the next key after `ctrl+p` waits for the
palette to be up: Textual's system commands there include Quit, which an `enter` on the
unfiltered list may run (the app then quits as asked: not a crash, but the end of the test).

Keys go in as the terminal driver sends them, one after the other without Pilot.press's waits
for an idle process (see `press`): a fast typist's keys land on screens still composing or
closing, and 2000 keys take about a minute instead of several.

At the end: the app is still running, every main screen was reached, the poller kept polling, a
final `?` opens the help and `esc` closes it, and a session started last reaches the table. Pilot
re-raises any exception the app had. `FLEET_MONKEY_SEED=N` tries another seed,
`FLEET_MONKEY_KEYS=N` another length (2000 keys; on a loaded machine the run stops after
`FLEET_MONKEY_SECONDS`, 70, once it has sent 500 keys; a machine so loaded that 500 keys take
more than four budgets fails).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import traceback
import unicodedata
from collections import Counter, deque
from datetime import UTC, datetime, timedelta

import pytest
from conftest import FleetEnv
from textual import events
from textual.command import CommandPalette
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from fleet_tui.config.fleet import FleetConfig
from fleet_tui.config.settings import DashboardSettings
from fleet_tui.control.actions import LiveActions
from fleet_tui.model.records import AgentState, Heartbeat
from fleet_tui.service.poll import LiveSource
from fleet_tui.sources.spool import HeartbeatSpool
from fleet_tui.tmux import session_target
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.screens import HelpScreen
from fleet_tui.ui.widgets import FleetTable

# slow: about 70 s; started first on a worker of its own under xdist (tests/conftest.py), not
# left for the end of the run
pytestmark = [pytest.mark.tmux, pytest.mark.slow(seconds=75)]

SEED = int(os.environ.get("FLEET_MONKEY_SEED", "20261204"))
KEYS = int(os.environ.get("FLEET_MONKEY_KEYS", "2000"))
# A loaded CI machine gets a time budget: quietly 2000 keys take about 55 s here.
BUDGET_S = float(os.environ.get("FLEET_MONKEY_SECONDS", "70"))
MIN_KEYS = min(KEYS, 500)  # sent in any case: the budget ends the run only after these
HARD_S = 4 * BUDGET_S  # ... unless the machine is ~20x slower than quiet
SOCKET = "mosaic-fleet"
AGENTS = [f"a{i}" for i in range(6)]
ROLES = ["orchestrator", "coder", "coder", "review", "research", "enhancer"]
STRAY = "stray"  # an agent session the roster does not list

# (key, weight): the real bindings of every screen, and what an input needs.
KEY_WEIGHTS: list[tuple[str, int]] = [
    *[(k, 6) for k in ("up", "down", "j", "k")],
    *[(k, 2) for k in ("pageup", "pagedown", "home", "end", "g", "G", "ctrl+b", "ctrl+f")],
    ("enter", 12),
    ("escape", 14),
    ("s", 5),  # stream
    ("tab", 3),  # stream: screen/log
    ("l", 2),
    ("n", 1),
    ("slash", 4),  # filter / stream search
    ("b", 3),  # budgets
    ("r", 1),  # budgets: re-read
    ("question_mark", 3),
    ("W", 2),
    ("L", 2),
    ("ctrl+p", 3),
    ("asterisk", 2),
    ("A", 2),
    *[(k, 1) for k in ("N", "H", "B", "I", "C", "M", "R", "T", "K", "P")],  # sorts
    ("w", 2),
    ("a", 2),
    ("m", 2),
    ("ctrl+s", 1),
    *[(k, 1) for k in ("c", "o", "d", "e", "x", "0", "1", "colon", "exclamation_mark")],
    ("space", 1),
    ("backspace", 2),
]
POOL = [k for k, _ in KEY_WEIGHTS]
WEIGHTS = [w for _, w in KEY_WEIGHTS]
SIZES = [(80, 24), (120, 40), (60, 18), (40, 12), (24, 8), (200, 50), (100, 30), (160, 48)]
PALETTE_QUERIES = [
    *[f"go to agent {n}" for n in AGENTS[:3]],
    *[f"open detail of {n}" for n in (*AGENTS, STRAY)],
    "sort by",
    "show only",
    "show the fleet",
    "clear the filter",
    "help: keys",
    "show warnings",
]
KEYNAMES = {" ": "space", ":": "colon", "/": "slash", "!": "exclamation_mark"}


class Churn(threading.Thread):
    """Flips the fleet under the dashboard until stopped: heartbeats with random states (or
    none: the agent goes stale), sessions killed and brought back, panes that die."""

    def __init__(self, env: FleetEnv, seed: int) -> None:
        super().__init__(name="fleet churn", daemon=True)
        self.env = env
        self.rng = random.Random(seed)
        self.spool = HeartbeatSpool(env.state_dir)
        self.stop = threading.Event()
        self.seq = dict.fromkeys([*AGENTS, STRAY], 0)
        self.down: set[str] = set()
        self.changes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            tick = 0
            while not self.stop.wait(0.4):
                tick += 1
                self.beat()
                if tick % 4 == 0:
                    self.flip_session()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def beat(self) -> None:
        now = datetime.now(UTC)
        for name in self.rng.sample([*AGENTS, STRAY], 4):
            self.seq[name] += 1
            skew = self.rng.choice([0, 0, 0, 0, -20, 86400 * 1123])  # late, or dated ahead
            self.spool.write_heartbeat(
                Heartbeat(
                    tenant_id="acme",
                    host="h1",
                    agent=name,
                    seq=self.seq[name],
                    ts=now + timedelta(seconds=skew),
                    interval_s=1.0,
                    state=self.rng.choice(list(AgentState)),
                    detail=self.rng.choice([None, "running tests", "approve edit?", "x" * 300]),
                )
            )
            self.changes += 1

    def flip_session(self) -> None:
        up = [n for n in AGENTS if n not in self.down]
        what = self.rng.choice(["kill", "kill", "dead pane", "restore", "restore"])
        if what == "restore" and self.down:
            name = self.rng.choice(sorted(self.down))
            self.env.tmux(SOCKET, "kill-session", "-t", session_target(name), check=False)
            self.env.start(SOCKET, name, ["sleep", "600"])
            self.down.discard(name)
        elif what == "kill" and len(up) > 2:
            name = self.rng.choice(up)
            self.env.tmux(SOCKET, "kill-session", "-t", session_target(name), check=False)
            self.down.add(name)
        elif what == "dead pane" and len(up) > 2:
            name = self.rng.choice(up)
            with contextlib.suppress(Exception):
                os.kill(self.env.pane_pid(SOCKET, name), 9)
            self.down.add(name)
        else:
            return
        self.changes += 1


def start_fleet(env: FleetEnv) -> None:
    env.write_roster(
        [{"name": n, "role": r} for n, r in zip(AGENTS, ROLES, strict=True)], timeout_s=3
    )
    for name in AGENTS:
        env.start(SOCKET, name, ["sleep", "600"])
    env.start(SOCKET, STRAY, ["sleep", "600"])
    env.start(SOCKET, "ops-shell", ["sleep", "600"], agent=False)
    HeartbeatSpool(env.state_dir).ensure_writable()


def next_key(rng: random.Random, app: FleetApp, typing: deque[str]) -> str:
    """The next key: queued palette typing first, then (in the palette) a safe command,
    else one of the pool."""
    if typing:
        return typing.popleft()
    if isinstance(app.screen, CommandPalette):
        roll = rng.random()
        if roll < 0.4:
            typing.extend(KEYNAMES.get(c, c) for c in rng.choice(PALETTE_QUERIES))
            typing.extend(rng.choice([["enter"], ["down", "enter"], ["escape"]]))
            return typing.popleft()
        return rng.choice(["escape", "backspace", "down", "up"])
    return rng.choices(POOL, WEIGHTS)[0]


def key_event(key: str) -> events.Key:
    """The event a terminal's driver sends for `key` (as Pilot.press builds it)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char: str | None = unicodedata.lookup(
            _get_unicode_name_from_key(REPLACED_KEYS.get(key, key))
        )
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def press(pilot: Pilot[int], key: str) -> None:
    """Send one key the way the driver does and wait until the screen has handled what was
    queued. `Pilot.press` also waits twice for the whole process to look idle (20 ms at least
    each, much more while the poller and the churn run): a few thousand keys would take
    minutes. Not waiting for idle also lets keys land on screens still composing, as a fast
    typist's do."""
    app = pilot.app
    assert app._driver is not None
    event = key_event(key)
    event.set_sender(app)
    app._driver.send_message(event)
    await pilot.pause(0)


def table_names(app: FleetApp) -> set[str]:
    t = app.fleet_screen.query_one(FleetTable)
    return {k.rsplit("/", 1)[1] for k in t.keys}


@pytest.mark.parametrize("seed", [SEED], ids=[f"seed{SEED}"])
async def test_a_monkey_cannot_crash_the_dashboard_while_the_fleet_churns(
    fleet_env: FleetEnv, seed: int
) -> None:
    print(f"monkey: FLEET_MONKEY_SEED={seed} FLEET_MONKEY_KEYS={KEYS}")
    start_fleet(fleet_env)
    rng = random.Random(seed)
    config = FleetConfig.from_flags()
    source = LiveSource(config, systemd_interval_s=30)
    app = FleetApp(
        source,
        settings=DashboardSettings(poll_interval_s=1.0),
        actions=LiveActions(source.runner, config.state_dir),
    )
    churn = Churn(fleet_env, seed + 1)
    recent: deque[str] = deque(maxlen=40)
    typing: deque[str] = deque()
    visited: Counter[str] = Counter()
    started = time.monotonic()
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(200):
                await pilot.pause(0.05)
                if app.polls >= 1:
                    break
            assert app.polls >= 1, "no first poll"
            churn.start()
            polls_before = app.polls
            sent = 0
            until = time.monotonic() + BUDGET_S
            hard = time.monotonic() + HARD_S
            for i in range(KEYS):
                now = time.monotonic()
                if not app.is_running or now > hard or (now > until and sent >= MIN_KEYS):
                    break
                if i % 150 == 75:
                    size = rng.choice(SIZES)
                    recent.append(f"resize {size[0]}x{size[1]}")
                    await pilot.resize_terminal(*size)
                key = next_key(rng, app, typing)
                recent.append(key)
                await press(pilot, key)
                sent += 1
                if key == "ctrl+p":  # keys for the palette wait for it (see the docstring)
                    for _ in range(20):
                        if isinstance(app.screen, CommandPalette):
                            break
                        await pilot.pause(0)
                visited[type(app.screen).__name__] += 1
                if rng.random() < 0.02:  # let polls land on whatever screen is up now
                    await pilot.pause(rng.choice([0.1, 0.3, 0.6, 0.9]))
            churn.stop.set()
            churn.join(10)
            print(f"monkey: {sent} keys in {time.monotonic() - started:.1f} s, {app.polls} polls")
            assert app.is_running, "the dashboard stopped: " + "".join(
                traceback.format_exception(app._exception) if app._exception else ["no error"]
            )
            print(f"monkey: screens seen after a key: {dict(visited)}")
            wanted = {
                "FleetScreen",
                "AgentDetailScreen",
                "StreamScreen",
                "BudgetScreen",
                "HelpScreen",
                "FleetCommandPalette",
            }
            assert wanted <= set(visited), f"the monkey never reached {wanted - set(visited)}"
            assert churn.error is None, f"the churn itself failed: {churn.error!r}"
            assert churn.changes > 20, "the fleet hardly churned"
            assert app.polls > polls_before + 3, "the poller stopped polling"
            assert sent >= MIN_KEYS, f"only {sent} keys handled in {HARD_S:g} s"
            # Responsive at the end: back to the fleet, help opens and closes on a key. (A
            # dialog asked for just before may still come up: it waits for its old one to go.)
            await pilot.pause(0.3)
            app.action_show_fleet()
            await pilot.resize_terminal(120, 40)
            await pilot.pause(0.2)
            if isinstance(app.screen, CommandPalette):
                await pilot.press("escape")
            # the monkey's last keys may have left the filter box open and focused (`/ j`):
            # there `?` is text, as it should be; esc leaves the box first
            for _ in range(3):
                if not isinstance(app.focused, Input | TextArea):
                    break
                await pilot.press("escape")
                await pilot.pause(0.1)
            await pilot.press("question_mark")
            deadline = time.monotonic() + 5  # a loaded machine: a few turns of the loop
            while not isinstance(app.screen, HelpScreen) and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert isinstance(app.screen, HelpScreen), f"? showed {app.screen!r}"
            await pilot.press("escape")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, HelpScreen), "esc did not close the help"
            # ...and the settled fleet shows: a session started now appears in the table.
            fleet_env.start(SOCKET, "latecomer", ["sleep", "600"])
            deadline = time.monotonic() + 15
            late: str | None = None
            while late is None and time.monotonic() < deadline:
                await pilot.pause(0.2)
                snap = app.snapshot
                agents = snap.agents if snap is not None else []
                late = next((a.key for a in agents if a.name == "latecomer"), None)
            assert late is not None, "the poller never saw the session started at the end"
            app.go_to_agent(late)  # what the palette's "Go to agent" does
            await pilot.pause(0.1)
            assert app.fleet_screen.query_one(FleetTable).cursor_key == late
            assert "latecomer" in table_names(app)
    except BaseException:
        print(f"monkey failed: seed {seed}; last keys: {' '.join(recent)}")
        raise
    finally:
        churn.stop.set()
        source.close()
        print(f"monkey: {time.monotonic() - started:.1f} s in all")
