"""YAML files a person writes (roster.yaml, budgets.yaml): read, parse with the line of every
value, and turn a validation error into `file:line: field: why`.

One place for what both files need: a size bound, UTF-8 with the line of a bad byte, YAML
errors with their line (and a hint for tabs), duplicate keys refused, and the first error of
a validation mapped back to the line it came from. Standard library and PyYAML only: the readers
validate with pydantic and hand its error over (`ValidationErrors`, a structural type).

Hostile files: the file must be a regular file (a FIFO or `/dev/zero` is refused at once, not
read: `protocol.files.read_regular`), and aliases are bounded before anything walks or validates
the document: at most MAX_ALIASES references to an anchor, at most MAX_NODES nodes once every
alias is expanded, and no alias inside its own anchor. A "billion laughs" file is refused in
one line in well under a second instead of expanding for minutes. A text without a `*` holds no
alias and is not walked: its size is bounded by the file's byte limit alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from fleet_tui.errors import BadInput
from fleet_tui.protocol.files import FileTooLarge, NotRegularFile, read_regular

if TYPE_CHECKING:
    import yaml

Lines = dict[tuple[str | int, ...], int]


class ValidationErrors(Protocol):
    """What `validation_error` reads of a validation failure: pydantic's `ValidationError`
    (the readers that validate pass it; this module never imports pydantic)."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...

    def error_count(self) -> int: ...


def _loader(text: str) -> yaml.SafeLoader:
    """A safe loader of `text`: libyaml's parser when PyYAML was built with it (about 8x faster
    on a 300-agent roster). PyYAML is imported here, when a file is read: a `ps` with no roster
    never pays for it."""
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader(text)


MAX_ALIASES = 1000  # references to anchors in one file (a hand-written file has a few)
MAX_NODES = 200_000  # nodes of the document with every alias expanded (300 agents: ~5,000)


class _AliasBomb(Exception):
    def __init__(self, why: str, line: int) -> None:
        super().__init__(why)
        self.why, self.line = why, line


def check_aliases(root: yaml.Node, text: str) -> None:
    """Refuse a composed document (of `text`) whose aliases are too many, expand past MAX_NODES,
    or recurse (`&a [*a]`). Walks the node graph once (each node's expanded size is memoised), so
    the check costs the size of the file, not of the expansion; not at all for a text without a
    `*`: every alias is written `*name`, so that document is a tree as large as its text (a
    1,000-agent roster: ~12 ms of each parse saved)."""
    if "*" not in text:
        return
    import yaml  # imported already by the loader that made `root`

    sizes: dict[int, int] = {}
    busy: set[int] = set()
    aliases = 0
    # iterative post-order walk: a deep document must not hit Python's recursion limit
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            total = 1
            for child in _children(yaml, node):
                total += sizes[id(child)]
                if total > MAX_NODES:
                    raise _AliasBomb(
                        f"aliases expand to more than {MAX_NODES} values",
                        node.start_mark.line + 1,
                    )
            sizes[key] = total
            busy.discard(key)
            continue
        if key in sizes:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _AliasBomb(f"more than {MAX_ALIASES} aliases", node.start_mark.line + 1)
            continue
        if key in busy:
            raise _AliasBomb("an alias inside its own anchor", node.start_mark.line + 1)
        busy.add(key)
        stack.append((node, True))
        for child in _children(yaml, node):
            cid = id(child)
            if cid in busy:
                raise _AliasBomb("an alias inside its own anchor", child.start_mark.line + 1)
            stack.append((child, False))


def safe_load_file(path: Path, max_bytes: int) -> Any:
    """`yaml.safe_load` of a file, for the hooks' quick looks at the roster or budgets: a
    regular file of at most `max_bytes`, aliases bounded (`check_aliases`). Raises OSError,
    ValueError (not UTF-8, an alias bomb) or yaml.YAMLError; the hooks log and go on."""
    text = read_regular(path, max_bytes).decode("utf-8")
    loader = _loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            check_aliases(node, text)
        except _AliasBomb as exc:
            raise ValueError(f"{path}:{exc.line}: refused: {exc.why}") from None
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(y: ModuleType, node: yaml.Node) -> list[yaml.Node]:
    """The nodes under `node`; `y` is the yaml module (imported by the walks, not here)."""
    if isinstance(node, y.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, y.SequenceNode):
        return list(node.value)
    return []


class _DupKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key, self.line = key, line


def index_lines(node: yaml.Node, lines: Lines, at: tuple[str | int, ...]) -> None:
    """Record the line of every value by its path, and refuse duplicate keys."""
    import yaml  # imported already by the loader that made `node`

    _index_lines(yaml, node, lines, at)


def _index_lines(y: ModuleType, node: yaml.Node, lines: Lines, at: tuple[str | int, ...]) -> None:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, y.MappingNode):
        keys: set[str] = set()
        for knode, vnode in node.value:
            key = str(knode.value) if isinstance(knode, y.ScalarNode) else "?"
            if key in keys:
                raise _DupKey(key, knode.start_mark.line + 1)
            keys.add(key)
            lines[(*at, key)] = knode.start_mark.line + 1
            _index_lines(y, vnode, lines, (*at, key))
    elif isinstance(node, y.SequenceNode):
        for i, v in enumerate(node.value):
            _index_lines(y, v, lines, (*at, i))


def field_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def nearest_line(lines: Lines, loc: tuple[str | int, ...]) -> int:
    """The line of `loc`, or of its closest parent that has one (a missing field)."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def read_text(path: Path, what: str, max_bytes: int, error: type[BadInput]) -> str:
    """The file's text; `error` names the file (and the line of a byte that is not UTF-8)."""
    try:
        raw = read_regular(path, max_bytes)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except FileTooLarge as exc:
        raise error(f"{path}: {what} is {exc.size} bytes, larger than {max_bytes}") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} path is a directory") from None
    except NotRegularFile as exc:
        if exc.kind == "a directory":
            raise error(f"{path}: {what} path is a directory") from None
        raise error(f"{path}: {what} is not a regular file ({exc.kind})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: {what} is not UTF-8 text") from None


def parse_yaml(text: str, path: Path, empty: str, error: type[BadInput]) -> tuple[Any, Lines]:
    """The document and the line of each of its values; `empty` is said of an empty file."""
    import yaml

    loader = _loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}" if mark else ""
        hint = ""
        if mark is not None:
            rows = text.splitlines()
            if mark.line < len(rows) and "\t" in rows[mark.line]:
                hint = " (a tab: YAML indents with spaces only)"
        raise error(f"{path}{where}: not valid YAML: {exc.problem or exc}{hint}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if node is None:
        loader.dispose()
        raise error(f"{path}: {empty}")
    lines: Lines = {}
    try:
        check_aliases(node, text)
        index_lines(node, lines, ())
        data = loader.construct_document(node)
    except _DupKey as exc:
        raise error(f"{path}:{exc.line}: duplicate key '{exc.key}'") from None
    except _AliasBomb as exc:
        raise error(f"{path}:{exc.line}: refused: {exc.why}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def require_version_1(
    data: Mapping[str, object], lines: Lines, path: Path, what: str, error: type[BadInput]
) -> None:
    """A document of version 1 (`what` names it: "roster", "budgets"), else one line naming the
    version found. `version: true` is not 1 (YAML's booleans compare equal to 1 in Python)."""
    version = data.get("version")
    if version != 1 or isinstance(version, bool):
        line = lines.get(("version",), 1)
        got = "missing" if version is None else repr(version)
        raise error(f"{path}:{line}: version: this fleet-tui reads {what} version 1 (got {got})")


def validation_error(
    exc: ValidationErrors,
    lines: Lines,
    path: Path,
    *,
    loc_filter: Callable[[tuple[Any, ...]], tuple[str | int, ...]] = tuple,
    message: Callable[[dict[str, Any], tuple[str | int, ...]], str] | None = None,
) -> str:
    """The first error of a validation (pydantic's `ValidationError`) as
    `file:line: field: why (got X) (and N more)`."""
    err: dict[str, Any] = dict(exc.errors()[0])
    loc = loc_filter(tuple(err["loc"]))
    line = nearest_line(lines, loc)
    if message is not None:
        msg = message(err, loc)
    else:
        msg = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    got = ""
    if "input" in err and err["type"] != "missing" and not isinstance(err["input"], (dict, list)):
        got = f" (got {err['input']!r})"
    return f"{path}:{line}: {field_path(loc)}: {msg}{got}{more}"
