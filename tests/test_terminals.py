"""Every terminal (issue 14): 16 colours, NO_COLOR, TERM=dumb, ASCII, 80x24.

The snapshots of a 16-colour terminal are drawn as that terminal draws them: every colour of the
screen goes through Rich's down-sampling to the 16 standard colours (what Textual does when it
writes to a TERM=xterm terminal), then into the SVG. The real terminals are checked too: the
dashboard runs in a pane of a private tmux server with TERM=xterm or TERM=dumb, and the escape
codes it wrote are read back with capture-pane -e.
"""

from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import FleetEnv, wait_until
from rich.cells import cell_len
from rich.color import ColorSystem
from rich.console import Console
from rich.segment import Segment, Segments
from rich.style import Style

from fleet_tui.config.settings import DashboardSettings
from fleet_tui.testing.budgets import FixedBudgetSource, budget_report
from fleet_tui.testing.fleets import NOW, FixedSource, RecordingActions, fleet_snapshot
from fleet_tui.ui.app import FleetApp
from fleet_tui.ui.screens.budget import BudgetScreen
from fleet_tui.ui.screens.detail import facts_table
from fleet_tui.ui.themes import ascii_line, colour_depth


def _render(app: FleetApp) -> Iterable[Segment]:
    """The segments of the whole screen, as the compositor hands them to the terminal."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO())
    return console.render(update)


def _down_sampled(segments: Iterable[Segment], system: ColorSystem) -> Iterable[Segment]:
    for text, style, control in segments:
        if style is not None and (style.color is not None or style.bgcolor is not None):
            fg = style.color.downgrade(system) if style.color is not None else None
            bg = style.bgcolor.downgrade(system) if style.bgcolor is not None else None
            style = style + Style.from_color(fg, bg)
        yield Segment(text, style, control)


class SixteenColourApp(FleetApp):
    """The dashboard whose screenshots show what a 16-colour terminal shows."""

    def export_screenshot(self, *, title: str | None = None, simplify: bool = False) -> str:
        console = Console(
            width=self.size.width,
            height=self.size.height,
            file=io.StringIO(),
            force_terminal=True,
            color_system="truecolor",
            record=True,
            legacy_windows=False,
            safe_box=False,
        )
        console.print(Segments(_down_sampled(_render(self), ColorSystem.STANDARD)), end="")
        return console.export_svg(title=title or self.title)


def screen_text(app: FleetApp) -> str:
    """What the screen shows, as text (no styles)."""
    return "".join(s.text for s in _render(app) if not s.control)


def make_app(cls: type[FleetApp] = FleetApp, **settings: Any) -> FleetApp:
    return cls(
        FixedSource(fleet_snapshot()),
        actions=RecordingActions(),
        settings=DashboardSettings(poll_interval_s=3600, **settings),
        clock=lambda: NOW + timedelta(seconds=1),
        watch=False,
        budget_source=FixedBudgetSource(budget_report()),
    )


async def settle(pilot: Any, *keys: str) -> None:
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        if app.polls or app.poll_error:
            break
    for key in keys:
        await pilot.press(key)
        for _ in range(3):
            await pilot.pause()
    for _ in range(50):
        screen = app.screen
        if not isinstance(screen, BudgetScreen) or screen.loads:
            break
        await pilot.pause()
    others = [w for w in app.workers if w.group != "stream"]
    if others:
        await app.workers.wait_for_complete(others)
    await pilot.pause()
    await pilot.pause()


def then(*keys: str) -> Callable[[Any], Awaitable[None]]:
    async def run(pilot: Any) -> None:
        await settle(pilot, *keys)

    return run


@pytest.fixture
def xterm16(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal of 16 colours: TERM=xterm without COLORTERM (PuTTY's default)."""
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM", raising=False)


@pytest.fixture
def no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


SCREENS = {
    "fleet": (),
    "detail": ("down", "enter"),
    "help": ("question_mark",),
    "budgets": ("b",),
    "compose": ("m", "h", "i"),
}


@pytest.mark.parametrize("screen", list(SCREENS))
def test_sixteen_colours(snap_compare, xterm16: None, screen: str) -> None:  # type: ignore[no-untyped-def]
    app = make_app(SixteenColourApp)
    assert snap_compare(app, terminal_size=(80, 24), run_before=then(*SCREENS[screen]))


ASCII_SCREENS = {**SCREENS, "warnings": ("W",), "audit": ("L",), "palette": ("ctrl+p",)}


@pytest.mark.parametrize("screen", list(ASCII_SCREENS))
async def test_ascii_glyphs_draw_no_other_character(screen: str) -> None:
    """`glyphs: ascii` (automatic where the locale is not UTF-8): no screen draws a character
    outside ASCII, not in our text, nor in Textual's borders, scrollbars and footer."""
    app = make_app(glyphs="ascii")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, *ASCII_SCREENS[screen])
        text = screen_text(app)
    others = sorted({c for c in text if not c.isascii()})
    assert not others, f"{screen} draws {others}:\n{text}"


@pytest.mark.parametrize("screen", ["fleet", "detail", "budgets", "compose"])
def test_ascii_look(snap_compare, screen: str) -> None:  # type: ignore[no-untyped-def]
    app = make_app(glyphs="ascii")
    assert snap_compare(app, terminal_size=(80, 24), run_before=then(*SCREENS[screen]))


def _styles_of(app: FleetApp, needle: str) -> list[Style]:
    """The styles of the segments whose text contains `needle`."""
    return [s.style for s in _render(app) if needle in s.text and s.style is not None]


def _coloured(segments: Iterable[Segment]) -> set[str]:
    out = set()
    for s in segments:
        for c in (s.style.color, s.style.bgcolor) if s.style else ():
            if c is not None and not c.is_default:
                out.add(c.name)
    return out


async def test_no_color_draws_no_colour_and_makes_urgent_things_bold(no_color: None) -> None:
    """NO_COLOR: no colour at all reaches the screen; the cursor row is reverse and the header's
    unresponsive and down counts are bold (unresponsive reverse), not a dark grey."""
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert app.no_color and app.ansi_color
        segments = list(_render(app))
        assert _coloured(segments) == set()
        header = [s for s in segments if "unresponsive" in s.text]
        assert header and header[0].style is not None  # the header's count comes first
        assert header[0].style.bold and header[0].style.reverse
        down = [s for s in segments if "down" in s.text and s.style is not None]
        assert down and down[0].style is not None and down[0].style.bold
        cursor = [s for s in segments if s.text.startswith("planner") and s.style is not None]
        assert cursor and cursor[0].style is not None and cursor[0].style.reverse


@pytest.mark.parametrize("screen", ["fleet", "detail", "budgets", "help"])
def test_no_color_look(snap_compare, no_color: None, screen: str) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=then(*SCREENS[screen]))


async def test_dumb_terminal_gets_no_colour_and_ascii(monkeypatch: pytest.MonkeyPatch) -> None:
    """TERM=dumb: Textual would send 24-bit colours (its fallback when Rich finds no colour
    system); the dashboard sends none, and draws ASCII."""
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("COLORTERM", raising=False)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.no_color and app.ascii_only
        segments = list(_render(app))
        assert _coloured(segments) == set()
        assert screen_text(app).isascii()


LONG_CWD = (
    "/home/jarvis/work/mosaic-fleet-integration-tests/checkouts/feature-branch-with-a-long-name"
)


def _words(renderable: object, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text().split()


def test_detail_facts_never_break_a_word_at_80_columns() -> None:
    """At 80x24 the facts' values wrap at spaces; a word too long for its column is shortened
    with … (a path keeps its last folders), never cut across two lines."""
    record = next(a for a in fleet_snapshot().agents if a.tmux is not None and a.process)
    assert record.tmux is not None
    record = record.model_copy(
        update={"tmux": record.tmux.model_copy(update={"cwd": LONG_CWD, "pane_title": "x" * 60})}
    )
    whole = set(_words(facts_table(record, None), 400))
    assert LONG_CWD in whole
    for word in _words(facts_table(record, None), 78):  # the screen's width less its padding
        if word in whole:
            continue
        assert word.startswith("…") or word.endswith("…"), word
        part = word.strip("…")
        assert any(w.endswith(part) or w.startswith(part) for w in whole), word
    shown = [w for w in _words(facts_table(record, None), 78) if w.startswith("…")]
    assert any(LONG_CWD.endswith(w[1:]) for w in shown), shown  # the end of the path


# -- the real terminal: a pane of a private tmux server ------------------------------------------

OUTER = "term16"
AGENTS = "mosaic-fleet"
SGR = re.compile(rb"\x1b\[([0-9;:]*)m")


def _colour_params(raw: bytes) -> set[str]:
    """The colour parameters of every SGR sequence in `raw` (38/48 for 256 or 24-bit colour,
    30-37 40-47 90-97 100-107 for the 16), the defaults 39 and 49 left out."""
    found: set[str] = set()
    for match in SGR.finditer(raw):
        params = match.group(1).decode().replace(":", ";").split(";")
        i = 0
        while i < len(params):
            p = int(params[i] or 0)
            if p in (38, 48):
                found.add(f"{p};{params[i + 1] if i + 1 < len(params) else ''}")
                i += 3 if i + 1 < len(params) and params[i + 1] == "5" else 5
                continue
            if 30 <= p <= 37 or 40 <= p <= 47 or 90 <= p <= 97 or 100 <= p <= 107:
                found.add(str(p))
            i += 1
    return found


def _run_dashboard(env: FleetEnv, out: Path, term_env: list[str]) -> None:
    """The dashboard in a 100x30 pane of a private outer server (COLORTERM and NO_COLOR unset,
    then `term_env`); every byte it writes is recorded in `out`."""
    env.runner.ensure_socket_dir()
    argv = [
        "env",
        *("-u", "TMUX", "-u", "TMUX_PANE", "-u", "COLORTERM", "-u", "NO_COLOR"),
        *("-u", "TEXTUAL_COLOR_SYSTEM"),
        f"TMUX_TMPDIR={env.base}",
        f"HOME={env.home}",
        f"XDG_STATE_HOME={env.state_home}",
        f"XDG_CONFIG_HOME={env.config_home}",
        "LANG=C.UTF-8",
        "LC_ALL=C.UTF-8",
        *term_env,
        sys.executable,
        "-m",
        "fleet_tui",
    ]
    env.tmux(OUTER, "new-session", "-d", "-s", "op", "-x", "100", "-y", "30", *argv)
    env.tmux(OUTER, "pipe-pane", "-t", "=op:", f"exec cat >> {out}")


def _capture(env: FleetEnv, *flags: str) -> str:
    return env.tmux(OUTER, "capture-pane", "-p", *flags, "-t", "=op:").stdout


def _fleet_on_screen(env: FleetEnv, out: Path, term_env: list[str]) -> str:
    env.write_roster(
        [{"name": "orchestrator", "role": "orchestrator"}, {"name": "enhancer", "role": "enhancer"}]
    )
    env.stub(AGENTS, "orchestrator")
    env.stub(AGENTS, "enhancer")
    _run_dashboard(env, out, term_env)

    def shown() -> str | None:
        text = _capture(env)
        return text if "enhancer" in text and "orchestrator" in text else None

    return wait_until(shown, timeout=20, message="the fleet on the dashboard")


@pytest.mark.tmux
def test_real_xterm_16_colours_cursor_is_bright_white_on_blue(
    fleet_env: FleetEnv, tmp_path: Path
) -> None:
    """TERM=xterm without COLORTERM (PuTTY's default): only the 16 named colours are sent, and
    the selected row is bright white (97) on blue (44), not bold white on light grey."""
    out = tmp_path / "out.bin"
    _fleet_on_screen(fleet_env, out, ["TERM=xterm"])
    time.sleep(1.0)
    lines = _capture(fleet_env, "-e").splitlines()
    header = next(i for i, line in enumerate(lines) if "AGENT" in line)
    cursor = lines[header + 1].encode()
    assert {"44", "97"} <= _colour_params(cursor), repr(cursor)
    assert "47" not in _colour_params(cursor)  # the light grey of before
    sent = _colour_params(out.read_bytes())
    assert sent and not {p for p in sent if p.startswith(("38", "48"))}, sorted(sent)


@pytest.mark.tmux
def test_real_dumb_terminal_gets_no_colour_and_ascii(fleet_env: FleetEnv, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    shown = _fleet_on_screen(fleet_env, out, ["TERM=dumb"])
    time.sleep(1.0)
    assert _colour_params(out.read_bytes()) == set()
    assert shown.isascii(), shown
    assert "+ healthy" in _capture(fleet_env)  # the healthy glyph in ASCII


@pytest.mark.parametrize(
    ("env", "depth"),
    [
        ({"TERM": "xterm"}, "16"),  # PuTTY's default
        ({"TERM": "screen"}, "16"),
        ({"TERM": "linux"}, "16"),
        ({}, "16"),
        ({"TERM": "xterm-256color"}, "full"),
        ({"TERM": "xterm", "COLORTERM": "truecolor"}, "full"),
        ({"TERM": "xterm", "COLORTERM": "24bit"}, "full"),
        ({"TERM": "xterm-256color", "TEXTUAL_COLOR_SYSTEM": "standard"}, "16"),
        ({"TERM": "xterm-256color", "NO_COLOR": ""}, "none"),  # present, even empty
        ({"TERM": "dumb", "COLORTERM": "truecolor"}, "none"),
        ({"TERM": "unknown"}, "none"),
    ],
)
def test_colour_depth_follows_the_terminal(env: dict[str, str], depth: str) -> None:
    assert colour_depth(env) == depth


def test_ascii_line_keeps_the_width() -> None:
    """Whatever is not ASCII becomes ASCII of the same width (columns never move)."""
    for text in ("╭─ box ─╮", "▁▂▃▅▆▇█", "search 🔎 here", "日本語", "● ◐ ✖ ○ ★ ▲ ▽ ◆"):
        out = ascii_line(text)
        assert out.isascii() and cell_len(out) == cell_len(text), (text, out)
    assert ascii_line("╭──╮") == "+--+"


@pytest.mark.parametrize("theme", ["fleet-light", "textual-dark", "no-such-theme"])
async def test_sixteen_colours_always_use_the_terminal_palette(xterm16: None, theme: str) -> None:
    app = make_app(theme=theme)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "fleet-ansi"
        assert app.colour_depth == "16" and not app.no_color
