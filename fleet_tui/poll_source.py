"""What the dashboard polls: a `SnapshotSource`. The live one wraps the collector and reads pane
captures through the tmux runner; tests inject fixed ones (deterministic snapshots).

Every method blocks: the app calls them from thread workers, never on the UI thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from fleet_tui.model import AgentRecord, FleetSnapshot
from fleet_tui.service import FleetCollector, FleetConfig
from fleet_tui.tmux import TmuxRunner

CAPTURE_LINES = 30


class SnapshotSource(Protocol):
    """Where the dashboard's data comes from."""

    @property
    def watch_dir(self) -> Path | None:
        """A folder whose changes mean "heartbeats changed: poll now" (None: no watching)."""

    def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        """One snapshot; raises FleetError for what the user must fix. `heartbeats_only`: the
        spool changed, the rest of the last observation may be reused."""

    def capture(self, record: AgentRecord) -> list[str]:
        """The last lines the agent's pane shows (raw: the caller sanitizes)."""

    def capture_screen(self, record: AgentRecord) -> str:
        """What the pane shows now, with SGR colours (raw: the caller sanitizes)."""

    def pane_activity(self, record: AgentRecord) -> str | None:
        """A stamp that changes when the pane shows something new."""


class LiveSource:
    """Local tmux, spool, systemd and processes, through one long-lived collector."""

    def __init__(
        self,
        config: FleetConfig,
        runner: TmuxRunner | None = None,
        *,
        systemd_interval_s: float = 30.0,
    ) -> None:
        self.collector = FleetCollector(
            config, runner=runner, keep_last_good=True, systemd_interval_s=systemd_interval_s
        )
        self.runner = self.collector.runner
        self.spool = self.collector.spool

    @property
    def watch_dir(self) -> Path | None:
        return self.collector.spool.heartbeats

    def poll(self, *, heartbeats_only: bool = False) -> FleetSnapshot:
        return self.collector.collect(heartbeats_only=heartbeats_only)

    def capture(self, record: AgentRecord) -> list[str]:
        if record.tmux is None or record.socket is None:
            return []
        res = self.runner.run(
            record.socket,
            "capture-pane",
            "-p",
            "-J",
            "-t",
            record.tmux.pane_id,
            "-S",
            f"-{CAPTURE_LINES}",
            timeout=2.0,
        )
        lines = res.stdout.rstrip("\n").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        return lines[-CAPTURE_LINES:]

    def capture_screen(self, record: AgentRecord) -> str:
        if record.tmux is None or record.socket is None:
            return ""
        res = self.runner.run(
            record.socket, "capture-pane", "-e", "-p", "-t", record.tmux.pane_id, timeout=2.0
        )
        return res.stdout

    def pane_activity(self, record: AgentRecord) -> str | None:
        if record.tmux is None or record.socket is None:
            return None
        res = self.runner.run(
            record.socket,
            "display-message",
            "-p",
            "-t",
            record.tmux.pane_id,
            "#{window_activity}:#{pane_dead}:#{cursor_x},#{cursor_y}",
            timeout=2.0,
        )
        return res.stdout.strip()
