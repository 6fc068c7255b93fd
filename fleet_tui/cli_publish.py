"""The `publish` verb: push this host's snapshot, heartbeats and usage to the gateway.

Imports only argparse at module level (the CLI loads every verb module to build its parser).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_parsers(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register this module's verbs on the CLI's subparsers."""


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {}
