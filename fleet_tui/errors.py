"""Typed errors of fleet_tui, each with the exit code the command line maps it to.

Exit codes (DESIGN.md): 0 done; 1 unexpected failure; 2 bad input (usage, invalid file, an
environment the user must fix); 3 agent not found; 4 not confirmed in time; 5 refused.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_CONFIRMED = 4
EXIT_REFUSED = 5


class FleetError(Exception):
    """Base of every error the command line reports as one line."""

    exit_code = EXIT_FAILURE


class BadInput(FleetError):
    """Invalid arguments, files or environment: the user can fix it (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class RosterError(BadInput):
    """roster.yaml is missing, unreadable or invalid; the message names file, line and field."""


class StateDirError(BadInput):
    """The state dir cannot be created or written."""


class InvalidAgentName(BadInput):
    """A name tmux would rewrite or that is not a valid agent name."""


class AgentNotFound(FleetError):
    """No agent (roster entry or tmux session) has exactly this name (exit 3)."""

    exit_code = EXIT_NOT_FOUND


class NotConfirmed(FleetError):
    """The runtime did not confirm in time (exit 4)."""

    exit_code = EXIT_NOT_CONFIRMED


class Refused(FleetError):
    """The action was refused: no TTY, or confirmation declined (exit 5)."""

    exit_code = EXIT_REFUSED


class TmuxError(FleetError):
    """A tmux call failed. Subclasses say how."""

    def __init__(self, message: str, *, socket: str | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.socket = socket
        self.stderr = stderr


class TmuxNotInstalled(TmuxError, BadInput):
    """No tmux binary on PATH (exit 2: install it)."""

    exit_code = EXIT_BAD_INPUT


class TmuxTimeout(TmuxError):
    """tmux did not answer in time: the server is hung (stopped or wedged)."""


class TmuxServerGone(TmuxError):
    """No server answers on this socket (never started, exited, or killed)."""


class TmuxTargetMissing(TmuxError):
    """The exact session or pane does not exist."""


class SocketDirError(TmuxError, BadInput):
    """The tmux socket folder is not ours (owner or mode): tmux itself would refuse it."""

    exit_code = EXIT_BAD_INPUT


class NotReadYet(Exception):
    """A source's first read is still running: its answer is unknown, not empty (the poller
    shows the source as "reading" and asks again at the next poll)."""


class AuditUnavailable(Refused):
    """The audit record of an operator action cannot be written (read-only state dir, a
    directory or special file where `audit.jsonl` should be, a full disk): the action is refused
    (exit 5), never carried out unaudited."""
