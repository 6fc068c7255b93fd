"""Where the runtimes keep the files token use is read from, and where the usage index lives.

Split out of `sources.usage` so that what only needs these paths (the Claude session source on
every poll, `ps` asking whether a usage index exists) does not import the index, its records and
sqlite3. `sources.usage` imports these names from here; they are the same functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

INDEX_VERSION = 1
INDEX_DIR = "usage-index"


def claude_roots(env: Mapping[str, str] | None = None) -> list[Path]:
    """Claude Code config folders: each of `CLAUDE_CONFIG_DIR` (comma-separated), else
    `~/.claude` and `$XDG_CONFIG_HOME/claude` (`~/.config/claude`)."""
    env = os.environ if env is None else env
    named = [p.strip() for p in env.get("CLAUDE_CONFIG_DIR", "").split(",") if p.strip()]
    if named:
        return _unique(Path(p).expanduser() for p in named)
    home = Path(env.get("HOME") or Path.home())
    xdg = env.get("XDG_CONFIG_HOME")
    config = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".config"
    return _unique([home / ".claude", config / "claude"])


def codex_home(env: Mapping[str, str] | None = None) -> Path:
    """`$CODEX_HOME`, else `~/.codex`."""
    env = os.environ if env is None else env
    value = env.get("CODEX_HOME")
    if value:
        return Path(value).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".codex"


def _unique(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    seen: set[str] = set()
    for p in paths:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(Path(p))
    return out


def index_path(state_dir: Path, roots: Sequence[Path], codex: Path | None) -> Path:
    """One index per set of sources, so that `--claude-dir` runs never mix with the default."""
    ident = json.dumps([[os.path.realpath(r) for r in roots], codex and os.path.realpath(codex)])
    digest = hashlib.blake2b(ident.encode(), digest_size=6).hexdigest()
    return state_dir / INDEX_DIR / f"{digest}.v{INDEX_VERSION}.sqlite3"
