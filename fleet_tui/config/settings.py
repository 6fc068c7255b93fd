"""Dashboard settings: `$XDG_CONFIG_HOME/mosaic/fleet-tui.yaml` (or `MOSAIC_FLEET_TUI_CONFIG`).

```yaml
theme: fleet-dark          # or fleet-light, or any Textual theme
glyphs: auto               # unicode, ascii, or auto: ascii unless the locale is UTF-8
poll_interval_s: 2         # tmux, processes and heartbeats
systemd_interval_s: 30
alerts_bell: true          # ring the terminal's bell when an alert rule fires (see alerts.yaml)
keymap:                    # binding id -> keys (see the help screen, `?`, for the ids)
  fleet.filter: slash,f
inference:                 # how a pane WITHOUT a heartbeat is read (fleet_tui/core/infer.py)
  active_within_s: 3       # output this recent counts as busy
  claude:                  # claude, codex, pi, opencode, shell, or a runtime of your own
    prompt: ["Approve this plan\\?"]   # extra regexes -> waiting_input
    busy: ["Compacting"]                 # extra regexes on screen -> busy
    title_busy: []                       # extra regexes on the pane title -> busy
    replace: false                       # true: these lists replace the defaults
hosts:                     # hosts of the merged view reached over OpenSSH (DESIGN "Remote hands")
  second-host:             # the host name as the gateway shows it
    ssh: ops@10.0.0.2      # the ssh destination ([user@]host or a Host of ~/.ssh/config)
    fleet_tui: ~/.local/bin/fleet-tui   # the command there (default: fleet-tui on its PATH)
    port: 2222             # optional
    connect_timeout_s: 10  # optional: ssh's ConnectTimeout
    ssh_options: [-F, ~/.ssh/fleet_config]   # optional extra ssh arguments (your keys, configs)
```
Runtimes may also sit one level down, under `inference.runtimes:` (the earlier spelling).

A bad file never stops the dashboard. A file that cannot be read or parsed gives the defaults and
one line saying why; a bad key (unknown, wrong type, out of range) drops only itself, with a
one-line notice naming it, and every other key of the file is kept; a bad regex leaves out that
one pattern. The file is read with `read_regular`: a FIFO or a device there never hangs anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from fleet_tui.config.paths import settings_path as settings_path
from fleet_tui.core.infer import ACTIVE_WITHIN_S, DEFAULT_RULES, InferenceRules, compile_rules
from fleet_tui.core.sanitize import clean_text
from fleet_tui.present.glyphs import GlyphMode
from fleet_tui.protocol.files import read_regular
from fleet_tui.protocol.names import HOST_RE

SETTINGS_LIMIT = 1024 * 1024  # bytes: a settings file is a few hundred
INFERENCE_KEYS = ("active_within_s", "runtimes")
M = TypeVar("M", bound=BaseModel)


class RuntimePatternSettings(BaseModel):
    """Extra (or, with `replace`, replacing) inference patterns of one runtime."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    prompt: list[str] = Field(default_factory=list)
    busy: list[str] = Field(default_factory=list)
    title_busy: list[str] = Field(default_factory=list)
    replace: bool = False


def normalize_inference(section: Any) -> Any:
    """`inference: {claude: {...}}` (runtimes right under `inference`, as a user writes them)
    becomes `inference: {runtimes: {claude: {...}}}`. Only mappings move: any other unknown key
    stays where it is, and is reported as unknown."""
    if not isinstance(section, dict):
        return section
    moved = {k: v for k, v in section.items() if k not in INFERENCE_KEYS and isinstance(v, dict)}
    if not moved:
        return section
    out = {k: v for k, v in section.items() if k not in moved}
    runtimes = out.get("runtimes")
    if runtimes is None:
        runtimes = {}
    if isinstance(runtimes, dict):
        out["runtimes"] = {**moved, **runtimes}
    return out


class InferenceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    active_within_s: float = Field(default=ACTIVE_WITHIN_S, ge=0, le=3600)
    runtimes: dict[str, RuntimePatternSettings] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _runtimes_right_under_inference(cls, data: Any) -> Any:
        return normalize_inference(data)

    def rules(self, where: str = "inference.runtimes") -> tuple[InferenceRules, list[str]]:
        """The compiled rules and a notice per pattern that does not compile."""
        return compile_rules(
            {rt: spec.model_dump() for rt, spec in self.runtimes.items()},
            active_within_s=self.active_within_s,
            where=where,
        )


# What an ssh destination or a remote command may not hold: whitespace and control characters
# (ssh would split or pass them on to the remote shell).
_NOT_A_WORD = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
# Options that would turn the user's host-key checking off: never accepted from the settings.
# (ssh reads `no`, `off` and `false` alike; known hosts in /dev/null forget every key it learns)
_NO_HOST_KEY_CHECK = re.compile(
    r"stricthostkeychecking\s*[= ]\s*[\"']?(no|off|false)\b"
    r"|(?:user|global)knownhostsfile\s*[= ]\s*[\"']?/dev/null",
    re.IGNORECASE,
)


class HostSettings(BaseModel):
    """How to reach one host of the merged view over OpenSSH (control.remote_hands runs the
    same verb there): `ssh` the destination, `fleet_tui` the command that runs fleet-tui
    there. Host-key checking, keys and agents stay the user's own (ssh's configuration)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    ssh: str = Field(min_length=1, max_length=255)
    fleet_tui: str = Field(default="fleet-tui", min_length=1, max_length=1024)
    port: int | None = Field(default=None, ge=1, le=65535)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    ssh_options: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("ssh")
    @classmethod
    def _destination(cls, v: str) -> str:
        if v.startswith("-"):
            raise ValueError("an ssh destination cannot start with '-' (it would be an option)")
        if _NOT_A_WORD.search(v):
            raise ValueError("an ssh destination has no spaces or control characters")
        return v

    @field_validator("fleet_tui")
    @classmethod
    def _command(cls, v: str) -> str:
        """One or more words (`~/.local/bin/fleet-tui`, `python3 -m fleet_tui`), split like a
        shell would and each quoted for the remote shell (control.remote_hands)."""
        if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in v):
            raise ValueError("the remote fleet-tui command has control characters")
        if not v.strip() or v.strip().startswith("-"):
            raise ValueError("the remote fleet-tui command must be a command, not an option")
        return v

    @field_validator("ssh_options")
    @classmethod
    def _options(cls, v: list[str]) -> list[str]:
        for opt in v:
            if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in opt):
                raise ValueError("an ssh option has control characters")
            if _NO_HOST_KEY_CHECK.search(opt):
                raise ValueError(
                    "host-key checking stays on: StrictHostKeyChecking=no and known hosts in "
                    "/dev/null are refused"
                )
        return v


HostName = Annotated[str, StringConstraints(pattern=HOST_RE)]


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    theme: str = "fleet-dark"
    glyphs: GlyphMode = "auto"
    poll_interval_s: float = Field(default=2.0, ge=0.2, le=3600)
    systemd_interval_s: float = Field(default=30.0, ge=1, le=86400)
    alerts_bell: bool = True
    keymap: dict[str, str] = Field(default_factory=dict)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    hosts: dict[HostName, HostSettings] = Field(default_factory=dict)


def default_settings() -> DashboardSettings:
    """`DashboardSettings()`, equal to it, without validating: most runs have no settings file,
    and validating nothing built pydantic's validators (and looked up its plugins: ~40 ms) on
    the way to the dashboard's first frame (issue 16)."""
    return DashboardSettings.model_construct(
        _fields_set=set(), inference=InferenceSettings.model_construct(_fields_set=set())
    )


class _Unreadable(Exception):
    """The file is there but gives no settings: `where` (the file, and a line for bad YAML)
    and the reason."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def _read_yaml(path: Path) -> Any:
    """The parsed document, None when there is no file; _Unreadable otherwise. Never blocks
    (a FIFO is refused by read_regular) and never reads more than SETTINGS_LIMIT bytes."""
    try:
        raw = read_regular(path, SETTINGS_LIMIT)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = exc.strerror or str(exc).replace(f"{path}: ", "")
        raise _Unreadable(str(path), f"unreadable ({clean_text(why, max_len=120)})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable(str(path), "not UTF-8 text") from None
    import yaml  # only when there is a file: most runs have none

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise _Unreadable(where, "not valid YAML") from None


def _drop(data: Any, loc: tuple[int | str, ...]) -> bool:
    """Remove the item at `loc` from nested dicts and lists; False when there is none."""
    if loc and loc[-1] == "[key]":  # a bad key of a mapping: drop its entry
        loc = loc[:-1]
    if not loc:
        return False
    node = data
    for part in loc[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return False
    last = loc[-1]
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        del node[last]
        return True
    return False


def validate_dropping_bad_keys(
    model: type[M], data: dict[str, Any], prefix: tuple[str, ...] = ()
) -> tuple[M, list[tuple[str, str]]]:
    """`model` from `data`, each bad key dropped on its own: the model, and (dotted field,
    reason) per dropped key. A problem no single key can be blamed for gives the defaults."""
    dropped: list[tuple[str, str]] = []
    for _ in range(200):  # each round drops one key: a file has fewer bad keys than this
        try:
            return model.model_validate(data), dropped
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err["loc"])
            if err["type"] == "missing" and len(loc) > 1:
                # a required key missing (a host's `ssh`): its whole entry goes
                err = {**err, "msg": f"no {clean_text(str(loc[-1]), max_len=60)}"}
                loc = loc[:-1]
            field = ".".join(
                clean_text(str(p), max_len=60) for p in (*prefix, *loc) if p != "[key]"
            )
            if not _drop(data, loc):
                dropped.append((field or "(top level)", err["msg"]))
                break
            dropped.append((field, err["msg"]))
    return model(), dropped


def _as_mapping(doc: Any) -> dict[str, Any] | None:
    return doc if isinstance(doc, dict) else ({} if doc is None else None)


def load_settings(path: Path | None = None) -> tuple[DashboardSettings, str | None]:
    """The settings and, when something in the file is bad, one line per problem (joined by
    newlines): a bad key is dropped alone and the rest kept; an unreadable file gives the
    defaults. Problems of the `inference` section are reported by `load_inference_rules`
    (as warnings of the fleet), not twice."""
    path = path or settings_path()
    try:
        doc = _read_yaml(path)
    except _Unreadable as exc:
        return default_settings(), f"{exc}; using defaults"
    data = _as_mapping(doc)
    if data is None:
        return default_settings(), f"{path}: not a mapping of settings; using defaults"
    if not data:  # no file, or an empty one
        return default_settings(), None
    if isinstance(data.get("inference"), dict):
        data["inference"] = normalize_inference(data["inference"])
    settings, dropped = validate_dropping_bad_keys(DashboardSettings, data)
    lines = [
        f"{path}: {field}: {msg}; ignored"
        for field, msg in dropped
        if field != "inference" and not field.startswith("inference.")
    ]
    return settings, "\n".join(lines) or None


def load_inference_rules(path: Path | None = None) -> tuple[InferenceRules, list[str]]:
    """The inference rules of the settings file's `inference` section, and one-line notices
    about that section only (the rest of the file is the dashboard's business): a bad key
    drops only itself, a bad regex leaves out that pattern, an unreadable file gives the
    default rules."""
    path = path or settings_path()
    # The default rules are infer's own (no settings model is built, no pattern compiled twice):
    # most runs have no settings file, and `ps` should not pay for one (issue 16, start-up).
    try:
        doc = _read_yaml(path)
    except _Unreadable as exc:
        return DEFAULT_RULES, [f"{exc}; default inference rules"]
    section = doc.get("inference") if isinstance(doc, dict) else None
    if section is None:
        return DEFAULT_RULES, []
    if not isinstance(section, dict):
        return DEFAULT_RULES, [
            f"{path}: inference: not a mapping of settings; default inference rules"
        ]
    chosen, dropped = validate_dropping_bad_keys(
        InferenceSettings, normalize_inference(section), ("inference",)
    )
    rules, notices = chosen.rules(where=f"{path}: inference.runtimes")
    return rules, [f"{path}: {field}: {msg}; ignored" for field, msg in dropped] + notices
