"""FleetTable: the fleet as a table on Textual's Line API, repainting only rows that changed.

A stock DataTable repaints every visible cell on any `update_cell` (TEXTUAL-FACTS.md: 179 ms for
30 changed cells of 300x14). Here each row is rendered once into a cached Strip keyed by its
cells, styles, cursor and layout; an update refreshes only the screen lines of rows whose cells
changed. The cursor is a row KEY, so it stays on the same agent across updates and sorts.
Cells are plain, sanitized strings turned into Segments: nothing is parsed as markup; with
`ascii_only` they are drawn through present.glyphs.to_ascii.

Columns stay put: which columns show and how wide they are is computed from the WHOLE fleet (not
the filtered rows), and a width grows at once but shrinks only after SHRINK_AFTER updates in a row
asked for less, so the header does not jump as agents start or stop waiting or a filter changes.
Clicking a column's title sorts by it (`HeaderClicked`; a second click reverses).

The rows of each poll are made in the poll thread (`RowBooks.prepare`, from the rows of the poll
before): at 1,000 agents the event loop then takes them whole instead of going over every record.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.records import AgentRecord, Health, StateSource
from fleet_tui.present.columns import (
    CELL_INPUTS,
    COLUMNS,
    COLUMNS_BY_KEY,
    GAP,
    UNSHOWN_FIELDS,
    Column,
    changed_inputs,
    fit_columns,
    needs_attention,
    shown_state,
    visible_columns,
)
from fleet_tui.present.glyphs import to_ascii

# Updates in a row whose fleet needs a narrower column before the column shrinks (a poll every
# few seconds: about a minute after a long name left the fleet).
SHRINK_AFTER = 20

# Minimum widths keep columns from jittering as ages and numbers tick.
MIN_WIDTH = {
    "hb": 5,
    "idle": 5,
    "cpu": 5,
    "mem": 6,
    "pid": 6,
    "state": 8,
    "health": 14,
    "tokens": 6,
    "budget": 6,
}


class Row(NamedTuple):
    """One rendered row's inputs: the key, every column's text and its style tags. (A named
    tuple: made at every poll for every changed agent, ten times cheaper than a frozen
    dataclass.)"""

    key: str
    cells: tuple[str, ...]
    tags: tuple[str, ...]  # health, attention, inferred, budget-*, drift, non-agent


# clean_text is pure and most cells repeat from one poll to the next (names, roles, sockets,
# ages): remember its answers, so a poll of 300 rows does not run the sanitizer's regexes 4,800
# times. Bounded: cleared when full (agent text can be anything).
_CLEAN_CACHE: dict[str, str] = {}
_CLEAN_CACHE_MAX = 20_000


def _clean_cell(text: str) -> str:
    cleaned = _CLEAN_CACHE.get(text)
    if cleaned is None:
        cleaned = clean_text(text)
        if len(_CLEAN_CACHE) >= _CLEAN_CACHE_MAX:
            _CLEAN_CACHE.clear()
        _CLEAN_CACHE[text] = cleaned
    return cleaned


def row_tags(record: AgentRecord) -> tuple[str, ...]:
    tags = [f"health-{record.health.value}"]
    if needs_attention(record):
        tags.append("attention")
    source = shown_state(record)[1]
    if source is StateSource.INFERRED:
        tags.append("inferred")
    elif source is not None and record.health in (Health.STALE, Health.UNRESPONSIVE):
        tags.append("old-state")  # the last state a silent agent reported, maybe out of date
    if record.budget is not None and record.budget.status in ("ahead", "exhausted"):
        tags.append(f"budget-{record.budget.status}")
    if record.drift:
        tags.append("drift")
    if not record.is_agent:
        tags.append("nonagent")
    return tuple(tags)


def make_row(
    record: AgentRecord, columns: list[Column] = COLUMNS, *, ascii_only: bool = False
) -> Row:
    cells = tuple(_clean_cell(c.cell(record)) for c in columns)
    if ascii_only:
        cells = tuple(to_ascii(c) for c in cells)
    return Row(record.key, cells, row_tags(record))


# What `row_tags` reads of a record (see present.columns.CELL_INPUTS).
TAG_INPUTS = frozenset(
    ("health", "heartbeat", "inferred", "state_source", "budget", "drift", "is_agent")
)
# For each input a cell can read, the indices in COLUMNS of the cells that read it.
_READERS: dict[str, tuple[int, ...]] = {f: () for f in UNSHOWN_FIELDS}
for _ci, _c in enumerate(COLUMNS):
    for _f in CELL_INPUTS.get(_c.key, ()):
        _READERS[_f] = (*_READERS.get(_f, ()), _ci)
_EVERY_COLUMN = frozenset(c.key for c in COLUMNS) - CELL_INPUTS.keys()


def remake_row(old_record: AgentRecord, old: Row, record: AgentRecord, *, ascii_only: bool) -> Row:
    """The row of `record` (of the same key) made from the row of `old_record`: only the cells
    whose inputs changed are made again (at a poll, most records only have older ages); `old`
    itself when nothing it shows changed. The same row as `make_row(record)`."""
    return _remake(old_record, old, record, ascii_only)[0]


# what to do for a set of changed inputs: the cells to make again and whether the tags may
# change; None: make the whole row
_PLANS: dict[frozenset[str], tuple[tuple[int, ...], bool] | None] = {}


def _plan(changed: frozenset[str]) -> tuple[tuple[int, ...], bool] | None:
    plan = _PLANS.get(changed, False)
    if plan is not False:
        return plan  # type: ignore[return-value]
    remake: set[int] = set()
    for field in changed:
        readers = _READERS.get(field)
        if readers is None or _EVERY_COLUMN:  # a field or a column nobody described
            _PLANS[changed] = None
            return None
        remake.update(readers)
    plan = (tuple(sorted(remake)), not changed.isdisjoint(TAG_INPUTS))
    if len(_PLANS) < 4096:
        _PLANS[changed] = plan
    return plan


def _remake(
    old_record: AgentRecord, old: Row, record: AgentRecord, ascii_only: bool
) -> tuple[Row, tuple[int, ...] | None]:
    """`remake_row`, and the indices of the cells made again (None: all of them)."""
    changed = changed_inputs(old_record, record)
    if not changed:
        return old, ()
    plan = _plan(frozenset(changed))
    if plan is None:
        return make_row(record, ascii_only=ascii_only), None
    remake, retag = plan
    tags = row_tags(record) if retag else old.tags
    if not remake:
        return (old if tags == old.tags else Row(old.key, old.cells, tags)), ()
    cells = list(old.cells)
    for ci in remake:
        text = _clean_cell(COLUMNS[ci].cell(record))
        cells[ci] = to_ascii(text) if ascii_only else text
    new_cells = tuple(cells)
    if new_cells == old.cells and tags == old.tags:
        return old, ()
    return Row(old.key, new_cells, tags), remake


def _count(lengths: list[dict[int, int]], cells: tuple[str, ...], step: int) -> None:
    """Add (step 1) or take away (-1) a row's cells in per-column counts of cell lengths."""
    for counts, text in zip(lengths, cells, strict=True):
        n = counts.get(len(text), 0) + step
        if n:
            counts[len(text)] = n
        else:
            del counts[len(text)]


def _recount(
    lengths: list[dict[int, int]],
    old: tuple[str, ...],
    new: tuple[str, ...],
    cells: tuple[int, ...],
) -> None:
    """Move the given cells of a row from their old length to their new one in the counts."""
    for ci in cells:
        a, b = len(old[ci]), len(new[ci])
        if a != b:
            counts = lengths[ci]
            n = counts[a] - 1
            if n:
                counts[a] = n
            else:
                del counts[a]
            counts[b] = counts.get(b, 0) + 1


Made = dict[str, tuple[AgentRecord, Row, bool]]


def _advance(
    lengths: list[dict[int, int]],
    last: tuple[AgentRecord, Row, bool] | None,
    record: AgentRecord,
    ascii_only: bool,
) -> Row:
    """The row of `record` from `last`, its key's last (record, row, ascii_only) or None: that
    row for the same record object, else remade from it (only the cells whose inputs changed),
    else made anew; the cells that changed are moved in `lengths`, the per-column counts of
    cell lengths."""
    if last is None or last[2] != ascii_only:
        row = make_row(record, ascii_only=ascii_only)
        if last is not None:
            _count(lengths, last[1].cells, -1)
        _count(lengths, row.cells, 1)
        return row
    if last[0] is record:
        return last[1]
    row, remade = _remake(last[0], last[1], record, ascii_only)
    if remade is None:
        _count(lengths, last[1].cells, -1)
        _count(lengths, row.cells, 1)
    elif remade:
        _recount(lengths, last[1].cells, row.cells, remade)
    return row


class RowBook:
    """The rows of one poll's fleet, made in the poll thread: what `FleetTable.set_records`
    would otherwise work out on the event loop (each record's row, the per-column counts of cell
    lengths its widths come from, the columns the fleet needs, the view's rows in order).
    Never changed once made: the table copies what it keeps."""

    __slots__ = (
        "ascii_only",
        "columns",
        "fleet",
        "lengths",
        "made",
        "shown",
        "shown_keys",
        "shown_rows",
    )

    def __init__(
        self,
        fleet: list[AgentRecord],
        shown: list[AgentRecord],
        made: Made,
        lengths: list[dict[int, int]],
        ascii_only: bool,
    ) -> None:
        self.fleet, self.shown, self.made, self.lengths = fleet, shown, made, lengths
        self.ascii_only = ascii_only
        self.columns = visible_columns(fleet, COLUMNS)
        self.shown_rows: list[Row] | None = []
        for r in shown:
            m = made.get(r.key)
            if m is None or m[0] is not r:  # a record the view shows that is not the fleet's
                self.shown_rows = None
                break
            self.shown_rows.append(m[1])
        self.shown_keys = [r.key for r in shown]


class RowBooks:
    """The rows of the last few polls, each made from the one before (`prepare`, in the poll
    thread: only the rows of records that changed are made again), for the table to take
    (`find`, on the event loop). A book is never changed once made (the table copies what it
    keeps); `prepare` is called by one thread at a time (the poll thread: polls never overlap)."""

    KEEP = 4

    def __init__(self) -> None:
        self._books: deque[RowBook] = deque(maxlen=self.KEEP)
        self._last: RowBook | None = None

    def prepare(
        self, fleet: list[AgentRecord], shown: list[AgentRecord], *, ascii_only: bool
    ) -> None:
        """Make the book of `fleet` and of the view's records `shown` (fleet records). None is
        made when the fleet holds two records of one key (the table then works it out)."""
        last = self._last
        if last is None or last.ascii_only != ascii_only:
            before: Made = {}
            lengths: list[dict[int, int]] = [{} for _ in COLUMNS]
        else:
            before, lengths = last.made, [dict(c) for c in last.lengths]
        made: Made = {}
        added = 0
        for r in fleet:
            key = r.key
            if key in made:  # before any count: a key's last row is moved once
                self._last = None  # (the next poll starts afresh)
                return
            m = before.get(key)
            if m is None:
                added += 1
            made[key] = (r, _advance(lengths, m, r, ascii_only), ascii_only)
        if len(made) - added != len(before):  # rows of agents gone since
            for key, m in before.items():
                if key not in made:
                    _count(lengths, m[1].cells, -1)
        book = RowBook(fleet, shown, made, lengths, ascii_only)
        self._last = book
        self._books.append(book)

    def find(self, fleet: list[AgentRecord], shown: list[AgentRecord]) -> RowBook | None:
        """The book made for exactly these lists (the digest's), if any."""
        for book in list(self._books):
            if book.fleet is fleet and book.shown is shown:
                return book
        return None


_ITALIC = Style(italic=True)
_BOLD = Style(bold=True)


class FleetTable(ScrollView, can_focus=True):
    """The fleet table. Feed it with `set_rows`; it posts `Highlighted` and `Selected`."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="table.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="table.down"),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False, id="table.page_up"),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False, id="table.page_down"),
        Binding("home,g", "edge(0)", "Top", show=False, id="table.top"),
        Binding("end,G", "edge(1)", "Bottom", show=False, id="table.bottom"),
        Binding("enter", "select", "Detail", id="table.select"),
    ]

    COMPONENT_CLASSES = {
        "fleet-table--header",
        "fleet-table--cursor",
        "fleet-table--healthy",
        "fleet-table--stale",
        "fleet-table--unresponsive",
        "fleet-table--unknown",
        "fleet-table--down",
        "fleet-table--attention",
        "fleet-table--inferred",
        "fleet-table--old-state",
        "fleet-table--budget-ahead",
        "fleet-table--budget-exhausted",
        "fleet-table--drift",
        "fleet-table--nonagent",
    }

    # An inferred state is a guess: italic (and dim unless it asks for attention). The last
    # state of a stale or unresponsive agent is dim: its HB age and health say why. A budget
    # ahead of pace or exhausted stands out; its cell also carries » or ✖ (never colour alone).
    # "Needs you" (attention: the name, the state, the question) has a colour of its own
    # (styles/app.tcss), never the orange of stale and budget-ahead.
    # Never a horizontal scrollbar: the columns are fitted to the width (with `auto`, Textual
    # showed one as soon as the vertical one took a column, over the table's last line).
    DEFAULT_CSS = """
    FleetTable { height: 1fr; overflow-x: hidden; }
    FleetTable > .fleet-table--inferred { text-style: italic dim; }
    FleetTable > .fleet-table--old-state { text-style: dim; }
    FleetTable > .fleet-table--budget-ahead { color: $warning; text-style: bold; }
    FleetTable > .fleet-table--budget-exhausted { color: $error; text-style: bold reverse; }
    """

    class Highlighted(Message):
        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    class Selected(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class HeaderClicked(Message):
        """A column's title was clicked: sort by `column` (its key)."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._rows: list[Row] = []
        self._keys: list[str] = []  # the keys of _rows, in order
        self._index: dict[str, int] = {}
        self._columns: list[Column] = list(COLUMNS)
        self._shown: list[tuple[int, Column]] = []
        self._widths: dict[str, int] = {}
        self._layout_version = 0
        self._layout_for: tuple[int, tuple[str, ...], tuple[int, ...]] | None = None
        self._layout_asked: tuple[int, list[str], dict[str, int]] | None = None
        self._strips: dict[str, tuple[tuple[object, ...], Strip]] = {}
        self._styles: dict[str, Style] | None = None
        self._base: Style | None = None  # self.rich_style, which walks every ancestor
        self.cursor_key: str | None = None
        self.sort_key: str | None = None
        self.sort_reverse = False
        self.ascii_only = False
        # the fleet's natural widths, kept with hysteresis (see SHRINK_AFTER)
        self._fleet_widths: dict[str, int] = {}
        self._narrower_for: dict[str, int] = {}
        self._fleet_columns: list[Column] = list(COLUMNS)
        # per key, the last record shown and its row, and whether it was made in ASCII
        self._made: Made = {}
        # per column (index in COLUMNS), how many rows of `_made` have a cell of each length:
        # the fleet's natural widths without going over every row at each update
        self._lengths: list[dict[int, int]] = [{} for _ in COLUMNS]
        self.rows_rendered = 0  # rows turned into strips since start (for benchmarks and tests)

    # -- data ------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self._rows]

    @property
    def cursor_row(self) -> int | None:
        return self._index.get(self.cursor_key) if self.cursor_key is not None else None

    def set_records(
        self,
        records: list[AgentRecord],
        fleet: list[AgentRecord] | None = None,
        book: RowBook | None = None,
    ) -> None:
        """Show these records in this order (already filtered and sorted by the screen).
        `fleet` is every record the view could show (the snapshot, unfiltered): the columns and
        their widths are chosen from it, so they do not move when a filter or a state changes.
        `book`: these lists' rows, made in the poll thread (`RowBooks`), taken as they are."""
        if (
            book is not None
            and book.fleet is fleet
            and book.shown is records
            and book.shown_rows is not None
            and book.ascii_only == self.ascii_only
        ):
            self._made = dict(book.made)
            self._lengths = [dict(c) for c in book.lengths]
            self._fleet_columns = list(book.columns)
            self._update_fleet_widths(self._counted_widths())
            self._set_rows(book.shown_rows, self._fleet_columns, book.shown_keys)
            return
        row_of, made, ascii_only = self._row_of, self._made, self.ascii_only
        rows: dict[str, Row] = {}
        shown: list[Row] = []
        # At a poll most records are the objects shown last time (or a filter or sort shows
        # the same snapshot again): their rows are taken from `_made` here, without a call
        # per record (with 1,000 records, each seen twice, those calls were ~1/4 of an update).
        for r in fleet or records:
            key = r.key
            m = made.get(key)
            row = m[1] if m is not None and m[0] is r and m[2] == ascii_only else row_of(r)
            rows[key] = row
            if not fleet:
                shown.append(row)
        if fleet:  # the view's records are the fleet's objects: their rows were just made
            for r in records:
                kept = rows.get(r.key)
                if kept is not None and made[r.key][0] is r:
                    shown.append(kept)
                    continue
                row = row_of(r)  # a record that is not the fleet's
                rows.setdefault(r.key, row)
                shown.append(row)
        if len(made) != len(rows):  # _made holds every key of rows: drop the others
            for key in [k for k in made if k not in rows]:
                _count(self._lengths, made.pop(key)[1].cells, -1)
        columns = visible_columns(fleet or records, COLUMNS)
        self._fleet_columns = [c for c in COLUMNS if c in columns]
        if len(made) == len(rows) and all(made[k][1] is row for k, row in rows.items()):
            natural = self._counted_widths()  # the rows are those counted in _lengths
        else:  # (two records of one key, or a view's record that is not the fleet's)
            natural = self._natural_widths(list(rows.values()))
        self._update_fleet_widths(natural)
        self.set_rows(shown, self._fleet_columns)

    def _row_of(self, record: AgentRecord) -> Row:
        """The row of a record: the same row for the same record object (a filter or a sort
        that changes shows the same snapshot's records again), else made from the last row of
        its key (only the cells whose inputs changed), else made anew."""
        key = record.key
        last = self._made.get(key)
        ascii_only = self.ascii_only
        if last is not None and last[0] is record and last[2] == ascii_only:
            return last[1]
        row = _advance(self._lengths, last, record, ascii_only)
        self._made[key] = (record, row, ascii_only)
        return row

    def _update_fleet_widths(self, natural: dict[str, int]) -> None:
        """Grow a column at once; shrink it only after SHRINK_AFTER updates asked for less."""
        for key, w in natural.items():
            kept = self._fleet_widths.get(key, 0)
            if w >= kept:
                self._fleet_widths[key] = w
                self._narrower_for[key] = 0
                continue
            self._narrower_for[key] = self._narrower_for.get(key, 0) + 1
            if self._narrower_for[key] >= SHRINK_AFTER:
                self._fleet_widths[key] = w
                self._narrower_for[key] = 0

    def _counted_widths(self) -> dict[str, int]:
        """`_natural_widths` of the rows of `_made`, from the per-column length counts."""
        widths: dict[str, int] = {}
        for ci, c in enumerate(COLUMNS):
            if c not in self._columns and c not in self._fleet_columns:
                continue
            w = max(len(c.title) + 1, MIN_WIDTH.get(c.key, 0))
            counts = self._lengths[ci]
            if counts:
                w = max(w, max(counts))
            widths[c.key] = w
        return widths

    def set_rows(self, rows: list[Row], columns: list[Column] | None = None) -> None:
        self._set_rows(rows, columns, [r.key for r in rows])

    def _set_rows(self, rows: list[Row], columns: list[Column] | None, keys: list[str]) -> None:
        old_rows = self._rows
        old_keys = self._keys
        same_order = keys == old_keys
        self._rows = rows
        self._keys = keys
        if not same_order:
            self._index = {k: i for i, k in enumerate(keys)}
        if columns is not None:
            self._columns = columns
        layout_changed = self._relayout()
        self.virtual_size = Size(self._text_width(), len(rows) + 1)
        cursor_moved = False
        if self.cursor_key not in self._index:
            was = old_keys.index(self.cursor_key) if self.cursor_key in old_keys else 0
            self.cursor_key = rows[min(was, len(rows) - 1)].key if rows else None
            self.post_message(self.Highlighted(self.cursor_key))
            cursor_moved = True
        if not same_order:
            index = self._index
            for key in [k for k in self._strips if k not in index]:
                del self._strips[key]
        if layout_changed or cursor_moved:
            self.refresh()
            return
        # The same columns: repaint the header (its sort arrow may have changed) and only the
        # lines on screen whose row changed: a new order (a state change moves a row) leaves
        # alone the lines above the moved rows, and a change below the screen the whole screen
        # (at 1,000 rows, a repaint of the whole table cost ~5 ms a frame). Rows off screen are
        # not even compared.
        self.refresh(Region(0, 0, self.size.width, 1))
        top = max(int(self.scroll_offset.y), 0)
        width = self.size.width
        n_old, n_new = len(old_rows), len(rows)
        for i in range(top, min(top + self.size.height - 1, max(n_old, n_new))):
            old = old_rows[i] if i < n_old else None
            new = rows[i] if i < n_new else None
            if old is not new and old != new:
                self.refresh(Region(0, i - top + 1, width, 1))

    def _natural_widths(self, rows: list[Row]) -> dict[str, int]:
        # one column at a time, in C: the cells transposed, max(map(len, ...)) over each column
        by_column = list(zip(*(r.cells for r in rows), strict=True)) if rows else []
        widths: dict[str, int] = {}
        for ci, c in enumerate(COLUMNS):
            if c not in self._columns and c not in self._fleet_columns:
                continue
            w = max(len(c.title) + 1, MIN_WIDTH.get(c.key, 0))
            if by_column:
                w = max(w, max(map(len, by_column[ci])))
            widths[c.key] = w
        return widths

    def _text_width(self) -> int:
        """The columns the rows may use: the widget's width less the vertical scrollbar's when
        the rows (and the title line) overflow its height, as Textual's `overflow-y: auto`
        decides (worked out here from the rows, not read from the scrollbar, which Textual
        shows or hides only at the next layout)."""
        width = self.size.width
        if len(self._rows) + 1 > self.size.height:
            width -= self.styles.scrollbar_size_vertical
        return width

    def _relayout(self) -> bool:
        """Choose columns for the current width; True when the layout changed."""
        width = max(self._text_width(), 20)
        natural = dict(self._fleet_widths)
        if any(c.key not in natural for c in self._columns):  # rows given by set_rows alone
            natural = self._natural_widths(self._rows) | natural
        # the same width, columns and natural widths as last time: the same layout (most
        # polls: fitting the columns again cost ~0.3 ms of each update)
        asked = (width, [c.key for c in self._columns], natural)
        if asked == self._layout_asked:
            return False
        self._layout_asked = asked
        chosen, widths = fit_columns(self._columns, natural, width)
        signature = (width, tuple(c.key for c in chosen), tuple(widths[c.key] for c in chosen))
        if signature == self._layout_for:
            return False
        self._layout_for = signature
        self._widths = widths
        self._shown = [(COLUMNS.index(c), c) for c in chosen]
        self._layout_version += 1
        return True

    # -- rendering -------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._base = None
        self._strips.clear()

    def on_resize(self) -> None:
        if self._relayout():
            self.refresh()
        self.virtual_size = Size(self._text_width(), len(self._rows) + 1)

    def _style(self, name: str) -> Style:
        if self._styles is None:
            self._styles = {
                cls.removeprefix("fleet-table--"): self.get_component_rich_style(cls, partial=True)
                for cls in self.COMPONENT_CLASSES
            }
        return self._styles[name]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        # Resolved once per style change, like the component styles and the cached strips
        # (computing it walks the ancestors and builds Styles: ~0.1 ms per line otherwise).
        base = self._base
        if base is None:
            base = self._base = self.rich_style
        if y == 0:
            return self._header_strip(base).crop_extend(0, width, base)
        i = int(self.scroll_offset.y) + y - 1
        if i >= len(self._rows):
            return Strip.blank(width, base)
        row = self._rows[i]
        is_cursor = row.key == self.cursor_key
        cache_key = (row.cells, row.tags, is_cursor, self._layout_version, self.has_focus)
        cached = self._strips.get(row.key)
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        strip = self._row_strip(row, is_cursor, base).crop_extend(0, width, base)
        self._strips[row.key] = (cache_key, strip)
        self.rows_rendered += 1
        return strip

    def _header_strip(self, base: Style) -> Strip:
        style = base + self._style("header")
        segments: list[Segment] = []
        for n, (_, c) in enumerate(self._shown):
            title = c.title
            if c.key == self.sort_key:
                # the usual arrows: ▲ ascending (A-Z), ▼ descending (the biggest first)
                title += "▼" if c.descending != self.sort_reverse else "▲"
            w = self._widths[c.key]
            text = set_cell_size(title, w) if not c.right else title.rjust(w)[:w]
            if self.ascii_only:
                text = to_ascii(text)
            segments.append(Segment(text, style))
            if n < len(self._shown) - 1:
                segments.append(Segment(" " * GAP, style))
        return Strip(segments)

    def _row_strip(self, row: Row, is_cursor: bool, base: Style) -> Strip:
        health_tag = row.tags[0].removeprefix("health-")
        row_style = base
        if "nonagent" in row.tags:
            row_style = row_style + self._style("nonagent")
        if is_cursor:
            row_style = row_style + self._style("cursor")
        # Runs of cells and gaps in one style become one Segment (a row is mostly row_style):
        # fewer segments make every later step of the frame cheaper (divide, filters, output).
        segments: list[Segment] = []
        run: list[str] = []
        run_style = row_style

        def add(text: str, style: Style) -> None:
            nonlocal run, run_style
            if style is run_style or style == run_style:
                run.append(text)
                return
            if run:
                segments.append(Segment("".join(run), run_style))
            run, run_style = [text], style

        # On the cursor row "needs you" stays bold in the cursor's colours (its own colour on
        # the cursor's blue would not read); the ★ still says it.
        attention = _BOLD if is_cursor else self._style("attention")
        last = len(self._shown) - 1
        for n, (ci, c) in enumerate(self._shown):
            text = row.cells[ci]
            w = self._widths[c.key]
            if len(text) > w:
                text = text[: max(w - 1, 0)] + "…"
            text = text.rjust(w) if c.right else set_cell_size(text, w)
            style = row_style
            if c.key == "health":
                style = (
                    base
                    + self._style(health_tag)
                    + (self._style("cursor") if is_cursor else Style())
                )
            elif c.key == "state" and "attention" in row.tags:
                style = row_style + attention
                if "inferred" in row.tags:
                    style = style + _ITALIC
            elif c.key in ("state", "src") and "inferred" in row.tags:
                style = row_style + self._style("inferred")
            elif c.key == "state" and "old-state" in row.tags:
                style = row_style + self._style("old-state")
            elif c.key == "budget":
                for tag in ("budget-ahead", "budget-exhausted"):
                    if tag in row.tags:
                        style = row_style + self._style(tag)
            elif c.key == "drift" and "drift" in row.tags:
                style = row_style + self._style("drift")
            elif c.key in ("agent", "asks") and "attention" in row.tags:
                style = row_style + attention
            add(text, style)
            if n < last:
                add(" " * GAP, row_style)
        if run:
            segments.append(Segment("".join(run), run_style))
        return Strip(segments)

    # -- cursor ----------------------------------------------------------------------------
    def move_cursor_to(self, key: str, *, scroll: bool = True) -> None:
        if key not in self._index:
            return
        old = self.cursor_row
        self.cursor_key = key
        new = self._index[key]
        self._refresh_row(old)
        self._refresh_row(new)
        if scroll:
            self._scroll_to_row(new)
        self.post_message(self.Highlighted(key))

    def _refresh_row(self, i: int | None) -> None:
        if i is None:
            return
        top = int(self.scroll_offset.y)
        if top <= i < top + self.size.height - 1:
            self.refresh(Region(0, i - top + 1, self.size.width, 1))

    def _scroll_to_row(self, i: int) -> None:
        top = int(self.scroll_offset.y)
        visible = max(self.size.height - 1, 1)
        if i < top:
            self.scroll_to(y=i, animate=False)
        elif i >= top + visible:
            self.scroll_to(y=i - visible + 1, animate=False)

    def action_cursor(self, delta: int) -> None:
        if not self._rows:
            return
        i = self.cursor_row
        i = 0 if i is None else max(0, min(len(self._rows) - 1, i + delta))
        self.move_cursor_to(self._rows[i].key)

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self.size.height - 2, 1))

    def action_edge(self, end: int) -> None:
        if self._rows:
            self.move_cursor_to(self._rows[-1 if end else 0].key)

    def action_select(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.Selected(self.cursor_key))

    def column_at(self, x: int) -> str | None:
        """The key of the column whose title (or the gap after it) is at screen column `x`."""
        left = 0
        for _, c in self._shown:
            right = left + self._widths[c.key] + GAP
            if left <= x < right:
                return c.key
            left = right
        return None

    def on_click(self, event: Click) -> None:
        if event.y == 0:
            key = self.column_at(event.x)
            if key is not None and key in COLUMNS_BY_KEY:
                self.post_message(self.HeaderClicked(key))
            return
        i = int(self.scroll_offset.y) + event.y - 1
        if 0 <= i < len(self._rows):
            key = self._rows[i].key
            if key == self.cursor_key and event.chain >= 2:
                self.post_message(self.Selected(key))
            else:
                self.move_cursor_to(key, scroll=False)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
