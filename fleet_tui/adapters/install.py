"""`fleet-tui install-hooks`: wire the hook adapters into Claude Code's or Codex's settings.

Merges our entries into what is there and touches nothing else: other keys, other hooks, the
operator's own statusLine or notify. Installing twice changes nothing; `--uninstall` removes
only our entries (and the empty lists and objects they leave); a Codex `notify` that `--force`
replaced is remembered in a comment line of config.toml and put back. Files are replaced atomically,
after a backup beside them (`<name>.bak-fleet-tui`).
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from fleet_tui.errors import BadInput
from fleet_tui.protocol.files import JsonObject, NotRegularFile, atomic_write, read_regular

MAX_CONFIG_BYTES = 4 << 20  # a runtime's settings.json / config.toml (a FIFO never hangs us)
BACKUP_SUFFIX = ".bak-fleet-tui"
HOOK_TIMEOUT_S = 5
CLAUDE_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "Stop",
    "StopFailure",
    "SessionEnd",
)
CODEX_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "Stop",
    "StopFailure",
)
# A runtime's `hooks` table: event name -> its groups (each `{"matcher"?, "hooks": [...]}`).
HooksTable = dict[str, list[object]]
# Tool events take a tool-name matcher; "*" is every tool.
MATCHERS = {"PreToolUse": "*", "PostToolUse": "*", "PermissionRequest": "*"}


def fleet_tui_path() -> str:
    """The absolute path of this `fleet-tui` (the one running, else the one beside Python)."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "fleet-tui" and argv0.exists():
        return str(argv0.resolve())
    beside = Path(sys.executable).parent / "fleet-tui"
    if beside.exists():
        return str(beside)
    found = shutil.which("fleet-tui")
    if found:
        return str(Path(found).resolve())
    raise BadInput("cannot find the fleet-tui executable (is it installed on PATH?)")


def _is_ours(command: object, *words: str) -> bool:
    """Whether a hook command (a string or an argv list) runs our `fleet-tui WORDS...`."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError:
            return False
    elif isinstance(command, list) and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        return False
    return bool(argv) and os.path.basename(argv[0]) == "fleet-tui" and argv[1:] == list(words)


def _show(path: Path) -> str:
    return str(path).replace("\n", "?")


# -- Claude Code ------------------------------------------------------------------------------


def claude_settings_path(flag: str | None) -> Path:
    if flag:
        return Path(flag).expanduser()
    config = os.environ.get("CLAUDE_CONFIG_DIR", "")
    first = next((p.strip() for p in config.split(",") if p.strip()), "")
    base = Path(first).expanduser() if first else Path.home() / ".claude"
    return base / "settings.json"


def _load_json(path: Path) -> tuple[JsonObject, str | None]:
    """(settings, original text); a missing file is an empty object."""
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{_show(path)}: cannot read: {_why(exc)}") from None
    if not text.strip():
        return {}, text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{_show(path)}:{exc.lineno}: invalid JSON: {exc.msg}; not changed"
        ) from None
    if not isinstance(data, dict):
        raise BadInput(f"{_show(path)}:1: settings must be a JSON object; not changed")
    return data, text


def _hooks_table(settings: JsonObject, path: Path) -> HooksTable:
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise BadInput(f"{_show(path)}: hooks: must be an object; not changed")
    table: HooksTable = {}
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise BadInput(f"{_show(path)}: hooks.{event}: must be a list; not changed")
        table[event] = groups
    return table


def remove_hook_entries(hooks: HooksTable, *words: str) -> HooksTable:
    """`hooks` without our commands, and without the groups and events left empty by that."""
    out: HooksTable = {}
    for event, groups in hooks.items():
        kept_groups = []
        for group in groups:
            if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
                kept_groups.append(group)
                continue
            entries = [
                h
                for h in group["hooks"]
                if not (isinstance(h, dict) and _is_ours(h.get("command"), *words))
            ]
            if entries:
                kept_groups.append({**group, "hooks": entries})
            elif not group["hooks"]:
                kept_groups.append(group)  # an empty group of theirs: not ours to remove
        if kept_groups or not groups:
            out[event] = kept_groups
    return out


def add_hook_entries(hooks: HooksTable, events: tuple[str, ...], command: str) -> HooksTable:
    out = copy.deepcopy(hooks)
    for event in events:
        group: JsonObject = {}
        if event in MATCHERS:
            group["matcher"] = MATCHERS[event]
        group["hooks"] = [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}]
        out.setdefault(event, []).append(group)
    return out


def with_our_hooks(
    doc: JsonObject,
    exe: str,
    runtime: str,
    events: tuple[str, ...],
    *,
    uninstall: bool,
    path: Path,
) -> JsonObject:
    """A copy of `doc` (Claude's settings.json, Codex's hooks.json) whose `hooks` table has our
    `hook RUNTIME` command on each of `events`, or none of ours when uninstalling. A table we
    leave empty goes; an empty one that was theirs stays."""
    result = copy.deepcopy(doc)
    hooks = remove_hook_entries(_hooks_table(doc, path), "hook", runtime)
    if not uninstall:
        hooks = add_hook_entries(hooks, events, f"{shlex.quote(exe)} hook {runtime}")
    if hooks or ("hooks" in doc and not doc["hooks"]):
        result["hooks"] = hooks
    else:
        result.pop("hooks", None)
    return result


def merge_claude(
    settings: JsonObject, exe: str, *, uninstall: bool, path: Path
) -> tuple[JsonObject, list[str]]:
    """The settings with our hooks and statusLine merged in (or taken out); notes to print."""
    notes: list[str] = []
    result = with_our_hooks(settings, exe, "claude", CLAUDE_EVENTS, uninstall=uninstall, path=path)
    status = settings.get("statusLine")
    ours = isinstance(status, dict) and _is_ours(status.get("command"), "statusline")
    if uninstall:
        if ours:
            result.pop("statusLine", None)
    elif status is None or ours:
        result["statusLine"] = {"type": "command", "command": f"{shlex.quote(exe)} statusline"}
    else:
        notes.append(
            "statusLine: another statusLine is set; kept it (rate-limit windows are recorded "
            "only by 'fleet-tui statusline')"
        )
    return result, notes


def _dump_json(data: JsonObject) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# -- Codex ------------------------------------------------------------------------------------


def codex_config_path(flag: str | None) -> Path:
    if flag:
        return Path(flag).expanduser()
    home = os.environ.get("CODEX_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".codex") / "config.toml"


def merge_codex_toml(
    text: str, exe: str, *, uninstall: bool, force: bool, path: Path
) -> tuple[str, list[str]]:
    """config.toml with our `notify` set (or removed), comments and all else preserved."""
    try:
        import tomlkit
        from tomlkit.exceptions import ParseError
    except ImportError:
        raise BadInput("install-hooks --runtime codex needs the 'tomlkit' package") from None
    try:
        doc = tomlkit.parse(text)
    except ParseError as exc:
        raise BadInput(f"{_show(path)}:{exc.line}: invalid TOML: {exc}; not changed") from None
    notes: list[str] = []
    current = doc.get("notify")
    plain = current.unwrap() if current is not None and hasattr(current, "unwrap") else current
    ours = _is_ours(plain, "hook", "codex")
    if uninstall:
        if ours:
            del doc["notify"]
            replaced = _replaced_notify(text)
            if replaced is not None:  # --force replaced theirs: it goes back
                doc["notify"] = replaced
                notes.append(f"notify: restored {json.dumps(replaced)[:120]}")
        return _without_replaced_line(tomlkit.dumps(doc)), notes
    if current is None or ours:
        if not ours or plain != [exe, "hook", "codex"]:
            if current is not None:
                del doc["notify"]
            doc["notify"] = [exe, "hook", "codex"]
    elif force:
        notes.append(f"notify: replaced {json.dumps(plain)[:120]} (--uninstall puts it back)")
        del doc["notify"]
        doc["notify"] = [exe, "hook", "codex"]
        out = _without_replaced_line(tomlkit.dumps(doc))
        if out and not out.endswith("\n"):
            out += "\n"
        return f"{out}{REPLACED_MARK}{json.dumps(plain)}\n", notes  # for --uninstall
    else:
        raise BadInput(
            f"{_show(path)}: notify is already set to another program "
            f"({json.dumps(plain)[:80]}); Codex runs only one: use --force to replace it"
        )
    return tomlkit.dumps(doc), notes


REPLACED_MARK = "# fleet-tui replaced notify: "


def _replaced_notify(text: str) -> list[str] | None:
    """The notify that `--force` replaced, from our comment line (None: none, or unreadable)."""
    for line in text.splitlines():
        if line.startswith(REPLACED_MARK):
            try:
                value = json.loads(line[len(REPLACED_MARK) :])
            except ValueError:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            return None
    return None


def _without_replaced_line(text: str) -> str:
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith(REPLACED_MARK)
    )


def merge_codex_hooks(
    hooks_doc: JsonObject, exe: str, *, uninstall: bool, path: Path
) -> JsonObject:
    return with_our_hooks(hooks_doc, exe, "codex", CODEX_EVENTS, uninstall=uninstall, path=path)


# -- writing ----------------------------------------------------------------------------------


def _diff(path: Path, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{path}" if old is not None else "/dev/null",
        tofile=f"{path}",
    )
    return "".join(lines)


def _write(path: Path, old: str | None, new: str) -> None:
    if path.is_symlink():
        path = path.resolve()  # a dotfiles link stays a link: its target is what changes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if old is not None:
            atomic_write(path.with_name(path.name + BACKUP_SUFFIX), old.encode("utf-8"))
            mode = path.stat().st_mode & 0o777
        else:
            mode = 0o600
        atomic_write(path, new.encode("utf-8"), mode)
    except OSError as exc:
        raise BadInput(f"{_show(path)}: cannot write: {exc.strerror}") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, NotRegularFile):
        return f"not a regular file ({exc.kind})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _read_text(path: Path) -> str | None:
    try:
        return read_regular(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{_show(path)}: cannot read: {_why(exc)}") from None


def install_hooks(
    runtime: str,
    *,
    settings: str | None = None,
    dry_run: bool = False,
    uninstall: bool = False,
    force: bool = False,
) -> int:
    exe = fleet_tui_path()
    # (path, old text, new text) of each file; all are computed before any is written.
    changes: list[tuple[Path, str | None, str]] = []
    notes: list[str] = []
    if runtime == "claude":
        path = claude_settings_path(settings)
        data, old = _load_json(path)
        merged, notes = merge_claude(data, exe, uninstall=uninstall, path=path)
        if merged != data or (old is None and not uninstall):
            changes.append((path, old, _dump_json(merged)))
    else:
        path = codex_config_path(settings)
        old_toml = _read_text(path)
        new_toml, notes = merge_codex_toml(
            old_toml or "", exe, uninstall=uninstall, force=force, path=path
        )
        if new_toml != (old_toml or "") and not (old_toml is None and uninstall):
            changes.append((path, old_toml, new_toml))
        hooks_path = path.with_name("hooks.json")
        hooks_doc, old_hooks = _load_json(hooks_path)
        merged_hooks = merge_codex_hooks(hooks_doc, exe, uninstall=uninstall, path=hooks_path)
        if merged_hooks != hooks_doc:
            changes.append((hooks_path, old_hooks, _dump_json(merged_hooks)))
    verb = "uninstall" if uninstall else "install"
    for note in notes:
        print(note)
    if not changes:
        print(
            f"{verb}: nothing to change ({', '.join(_show(p) for p in _paths(runtime, settings))})"
        )
        return 0
    if dry_run:
        for path, old, new in changes:
            sys.stdout.write(_diff(path, old, new) or f"(no textual change in {path})\n")
        print(f"{verb} (dry run): {len(changes)} file(s) would change; nothing written")
        return 0
    for path, old, new in changes:
        _write(path, old, new)
        backup = f" (backup: {path.name}{BACKUP_SUFFIX})" if old is not None else ""
        print(f"{verb}: {'removed from' if uninstall else 'wrote'} {_show(path)}{backup}")
    return 0


def _paths(runtime: str, settings: str | None) -> list[Path]:
    if runtime == "claude":
        return [claude_settings_path(settings)]
    config = codex_config_path(settings)
    return [config, config.with_name("hooks.json")]
