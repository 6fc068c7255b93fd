"""Inferred state: what a pane WITHOUT a heartbeat seems to be doing, read off what it shows.

Pure: the pane's title, its last visible lines, its idle time (tmux activity), its foreground
command and the runtime seen in it are given; nothing here reads tmux, a file or the clock.
An inferred state is a guess and is shown as one: it never changes health (invariant 3: only a
heartbeat makes an agent healthy).

Rules, first match wins:
1. a known prompt of the runtime on screen (a permission question, a shell prompt on the last
   line) -> `waiting_input`. An explicit prompt beats any busy marker: a runtime that asks is
   not working, whatever its spinner says.
2. a busy marker in the title (a spinner glyph) -> `busy`;
3. a busy marker on screen ("esc to interrupt", "Working") -> `busy`;
4. output within `active_within_s` seconds -> `busy`;
5. otherwise `idle`.

Patterns are per runtime (claude, codex, pi, opencode, and `shell` when the pane's foreground
is a shell), extendable or replaceable in fleet-tui.yaml (see fleet_tui/config/settings.py). A pane
whose runtime is not known is read with every agent runtime's patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from fleet_tui.core.sanitize import clean_text
from fleet_tui.core.timefmt import human_duration
from fleet_tui.model.records import AgentState, InferredState

GENERIC = "generic"
SHELL = "shell"
SHELLS = frozenset(
    {"bash", "sh", "zsh", "fish", "dash", "ksh", "mksh", "tcsh", "csh", "ash", "nu", "xonsh"}
)
TAIL_LINES = 15  # the last visible lines read (prompts and status lines sit at the bottom)
ACTIVE_WITHIN_S = 3.0
KINDS = ("prompt", "busy", "title_busy")

# Braille spinners (Claude Code before 2.1, Codex, pi), and Claude Code's half-circle busy
# frames. Claude Code's "✳" is its IDLE title glyph (and, from 2.1.236 under tmux, shown for
# the whole turn), so it is no busy marker.
_SPINNER_TITLE = r"^\s*[\u2800-\u28ff◐◑◒◓]"

DEFAULT_PATTERNS: dict[str, dict[str, tuple[str, ...]]] = {
    "claude": {
        "prompt": (
            r"Do you want to proceed\?",
            r"Do you want to (?:make this edit|create|allow|run|overwrite|use)\b",
            r"❯\s*1\.\s*Yes\b",
            r"Do you trust the files in this folder\?",
            r"Would you like to proceed\?",
        ),
        "busy": (
            r"esc to interrupt",
            r"^\s*[✻✽✢✶✳·]\s+\w+…",
        ),
        "title_busy": (_SPINNER_TITLE,),
    },
    "codex": {
        "prompt": (
            r"Allow command\?",
            r"Would you like to (?:run the following command|make the following edits|apply)",
            r"Yes, proceed\b",
            r"Press Enter to confirm or Esc to cancel",
        ),
        "busy": (
            r"esc to interrupt",
            r"^\s*[•◦]\s*Working\b",
        ),
        "title_busy": (_SPINNER_TITLE,),
    },
    "pi": {
        "prompt": (r"\bAllow\b.*\?\s*\(y/n\)",),
        "busy": (r"\bWorking\.\.\.", r"esc to (?:interrupt|abort)"),
        "title_busy": (_SPINNER_TITLE,),
    },
    "opencode": {
        "prompt": (r"Permission required", r"\bAllow (?:once|always)\b"),
        "busy": (r"esc (?:to )?interrupt", r"\bWorking\.\.\."),
        "title_busy": (_SPINNER_TITLE,),
    },
    # The pane's foreground is a shell: a prompt on the LAST line (\Z: the end of the screen).
    SHELL: {
        "prompt": (r"[$#%>❯]\s*\Z",),
        "busy": (),
        "title_busy": (),
    },
}


@dataclass(frozen=True)
class RuntimePatterns:
    """The compiled patterns of one runtime."""

    prompt: tuple[re.Pattern[str], ...] = ()
    busy: tuple[re.Pattern[str], ...] = ()
    title_busy: tuple[re.Pattern[str], ...] = ()


class _CompiledOnUse(Mapping[str, RuntimePatterns]):
    """Runtime -> its patterns, each runtime's compiled when first asked for: a `ps` or a poll
    that reads no pane compiles none (issue 16, start-up). Membership and the keys compile
    nothing. Two threads asking at once both compile; the results are the same."""

    def __init__(self, sources: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        self._sources = sources
        self._compiled: dict[str, RuntimePatterns] = {}

    def __getitem__(self, key: str) -> RuntimePatterns:
        found = self._compiled.get(key)
        if found is None:
            kinds = self._sources[key]
            found = RuntimePatterns(
                **{k: tuple(_compile(p) for p in kinds.get(k, ())) for k in KINDS}
            )
            self._compiled[key] = found
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._sources

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._sources)})"


@dataclass(frozen=True)
class InferenceRules:
    """Patterns by runtime (plus `generic`, the union of the agent runtimes') and the window
    within which output counts as activity."""

    runtimes: Mapping[str, RuntimePatterns]
    active_within_s: float = ACTIVE_WITHIN_S

    def patterns(self, key: str) -> RuntimePatterns:
        return self.runtimes.get(key) or self.runtimes[GENERIC]


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


def compile_rules(
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    *,
    active_within_s: float = ACTIVE_WITHIN_S,
    where: str = "inference.runtimes",
) -> tuple[InferenceRules, list[str]]:
    """The default patterns, extended (or, with `replace: true`, replaced) per runtime.

    `overrides` maps a runtime to `{"prompt": [...], "busy": [...], "title_busy": [...],
    "replace": bool}`; a runtime not among the defaults is added. A pattern that does not
    compile is left out with a one-line notice (`where.claude.prompt[1]: bad regex ...`);
    everything else is kept.
    """
    notices: list[str] = []
    sources: dict[str, dict[str, list[str]]] = {
        rt: {k: list(v) for k, v in kinds.items()} for rt, kinds in DEFAULT_PATTERNS.items()
    }
    for runtime, spec in (overrides or {}).items():
        replace = bool(spec.get("replace", False))
        target = sources.setdefault(runtime, {k: [] for k in KINDS})
        for kind in KINDS:
            extra = spec.get(kind)
            if extra is None:
                continue
            given = [str(p) for p in extra] if isinstance(extra, list | tuple) else [str(extra)]
            good: list[str] = []
            for i, pattern in enumerate(given):
                try:
                    _compile(pattern)
                except re.error as exc:
                    shown = clean_text(pattern, max_len=60)
                    notices.append(
                        f"{where}.{runtime}.{kind}[{i}]: bad regex '{shown}': {exc}; ignored"
                    )
                    continue
                good.append(pattern)
            target[kind] = good if replace else [*target[kind], *good]
    agents = [kinds for rt, kinds in sources.items() if rt != SHELL]
    sources[GENERIC] = {
        k: list(dict.fromkeys(x for kinds in agents for x in kinds.get(k, []))) for k in KINDS
    }
    return InferenceRules(_CompiledOnUse(sources), active_within_s), notices


DEFAULT_RULES, _ = compile_rules()


def _base(command: str | None) -> str:
    return (command or "").rsplit("/", 1)[-1].lower().lstrip("-")


def runtime_key(
    detected: str | None,
    declared: str | None,
    command: str | None,
    rules: InferenceRules = DEFAULT_RULES,
) -> str:
    """Which patterns read this pane: the runtime seen in its process tree; else `shell` when a
    shell is in the foreground (whatever the roster declares has exited or not started); else
    the declared runtime, or the foreground command's name; else `generic`."""
    if detected and detected in rules.runtimes:
        return detected
    cmd = _base(command)
    if cmd in SHELLS:
        return SHELL
    if declared and declared in rules.runtimes:
        return declared
    if cmd in rules.runtimes:
        return cmd
    return GENERIC


def _tail(lines: Sequence[str]) -> str:
    kept = list(lines[-(TAIL_LINES * 4) :])
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(line.rstrip() for line in kept[-TAIL_LINES:])


def _first(patterns: Sequence[re.Pattern[str]], text: str) -> str | None:
    for p in patterns:
        m = p.search(text)
        if m is not None:
            return clean_text(m.group(0).strip() or m.group(0), max_len=40) or "(match)"
    return None


def infer_state(
    *,
    title: str | None,
    lines: Sequence[str] | None,
    idle_s: float | None,
    command: str | None,
    runtime: str | None = None,
    declared_runtime: str | None = None,
    rules: InferenceRules = DEFAULT_RULES,
) -> InferredState:
    """Guess the state of a live pane that reports none. `lines` are its last visible lines
    (already sanitized), None when the screen was not read; `runtime` is the runtime seen in its
    process tree, `declared_runtime` the roster's."""
    key = runtime_key(runtime, declared_runtime, command, rules)
    pats = rules.patterns(key)
    who = key if key != GENERIC else "screen"
    text = _tail(lines) if lines else ""
    if text:
        hit = _first(pats.prompt, text)
        if hit is not None:
            return InferredState(state=AgentState.WAITING_INPUT, reason=f"{who} prompt: '{hit}'")
    if title:
        hit = _first(pats.title_busy, title)
        if hit is not None:
            return InferredState(state=AgentState.BUSY, reason=f"spinner in title: '{hit}'")
    if text:
        hit = _first(pats.busy, text)
        if hit is not None:
            return InferredState(state=AgentState.BUSY, reason=f"{who} shows '{hit}'")
    if idle_s is not None and idle_s <= rules.active_within_s:
        return InferredState(state=AgentState.BUSY, reason=f"output {human_duration(idle_s)} ago")
    unread = "" if lines is not None else "; screen not read"
    quiet = f"no output for {human_duration(idle_s)}" if idle_s is not None else "no activity seen"
    return InferredState(state=AgentState.IDLE, reason=f"{quiet}, no prompt or busy marker{unread}")
