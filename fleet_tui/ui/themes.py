"""The dashboard's two themes (fleet-dark, fleet-light) and how the settings pick one."""

from __future__ import annotations

from textual.app import App
from textual.theme import Theme

from fleet_tui.core.sanitize import clean_text

THEMES = [
    Theme(
        name="fleet-dark",
        primary="#5fafd7",
        secondary="#875fd7",
        accent="#ffaf00",
        warning="#ffaf00",
        error="#ff5f5f",
        success="#5fd75f",
        foreground="#d0d0d0",
        background="#121212",
        surface="#1c1c1c",
        panel="#262626",
        dark=True,
    ),
    Theme(
        name="fleet-light",
        primary="#005f87",
        secondary="#5f00af",
        accent="#af5f00",
        warning="#af5f00",
        error="#d70000",
        success="#008700",
        foreground="#1c1c1c",
        background="#ffffff",
        surface="#f2f2f2",
        panel="#e4e4e4",
        dark=False,
    ),
]


def register_themes(app: App[object]) -> None:
    for theme in THEMES:
        app.register_theme(theme)


def use_theme(app: App[object], name: str) -> None:
    """Show `name`; an unknown theme falls back to fleet-dark, with a warning."""
    try:
        app.theme = name
    except Exception:
        app.theme = "fleet-dark"
        app.notify(f"unknown theme '{clean_text(name)}'; using fleet-dark", severity="warning")
