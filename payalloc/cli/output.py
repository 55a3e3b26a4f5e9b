"""All output: the only module that imports Rich, and the one that writes JSON and CSV.

Data goes to stdout, messages to stderr. Machine formats bypass Rich (it wraps and colours).
User text is escaped and stripped of control and bidi characters before Rich sees it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console
    from rich.progress import Progress

    from payalloc.ledger.listings import Listing

# C0/C1 controls, the bidi/zero-width characters that can make a name read as something else, and
# surrogates (bytes of a file name or argument that are not UTF-8, which Python keeps as such).
# Controls, bidi overrides and marks, zero-width space and BOM; not the zero-width (non-)joiners
# U+200C/U+200D, which Persian and Indic names and emoji (a health worker: woman + ZWJ +
# staff of Aesculapius) need to read right.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_consoles: dict[str, Console] = {}


def _console(stderr: bool = False) -> Console:
    # Created lazily: Rich costs ~60 ms to import, and CliRunner swaps sys.stdout per test.
    from rich.console import Console

    key = "err" if stderr else "out"
    stream = sys.stderr if stderr else sys.stdout
    console = _consoles.get(key)
    if console is None or console.file is not stream:
        # Not a terminal (a pipe, cron mail, make run in CI): Rich would squeeze tables into
        # 80 columns; use a width that fits them unless COLUMNS says otherwise.
        width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
        console = Console(file=stream, highlight=False, soft_wrap=False, width=width)
        console.on_broken_pipe = _reader_gone  # type: ignore[method-assign]
        _consoles[key] = console
    return console


def _reader_gone() -> None:
    """Rich's own handler exits 1 (a bug, in the spec) when the reader goes away (`payalloc client
    show X | head -1`); the command line's handler makes it what it is: not an error, exit 0."""
    raise BrokenPipeError


def safe(text: object) -> str:
    """Text from users made harmless for a terminal: no controls, no bidi tricks."""
    return _UNSAFE.sub("\ufffd", "" if text is None else str(text))


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _one_line(text: str) -> str:
    # A file name may hold a line break: printed, it would forge a line of its own ("error: ...").
    return safe(text).replace("\n", "\ufffd")


def message(text: str) -> None:
    """A plain line on stderr (progress notes, warnings); never markup-interpreted."""
    to_stderr(_one_line(text) + "\n")


def to_stderr(text: str) -> None:
    """Write to stderr, where a failure (2>/dev/full) has no one left to tell: it must not turn the
    command's own answer into an internal error (exit 1); its exit status still says it."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):  # what stays buffered must not fail at exit too
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())


def warn(text: str) -> None:
    message(f"warning: {text}")


def error(text: str) -> None:
    message(f"error: {text}")


def warn_if_shared(db: Path) -> None:
    """init and check: the ledger holds health data; a copy made with cp is 0644."""
    mode = db.stat().st_mode & 0o777
    if mode & 0o077:
        warn(f"ledger {db} is readable by others (mode {mode:o}); it holds health data: chmod 600 it")


def counted(n: int, noun: str) -> str:
    """"1 payment", "2 payments", "1,250 payments": a count with its noun, singular for one."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def line(text: str) -> None:
    """A plain line of data on stdout."""
    sys.stdout.write(_one_line(text) + "\n")


def money_name(key: str) -> str:
    """The field a *_cents column is shown as: amount_cents -> amount."""
    return key.removesuffix("_cents")


def records(fields: Sequence[str], rows: Iterable[Sequence[Any]], fmt: Callable[[int], str]) -> Iterator[dict[str, Any]]:
    """Rows (tuples in the order of `fields`) as dicts, one at a time: the *_cents ints become
    amounts formatted by `fmt`, under the name without _cents."""
    names = [money_name(name) for name in fields]
    money = [money_name(name) for name in fields if name.endswith("_cents")]
    for row in rows:
        record = dict(zip(names, row, strict=True))
        for name in money:
            value = record[name]
            if value is not None:
                record[name] = fmt(value)
        yield record


def table_money(plain: object) -> str:
    """"1234.50" -> "1,234.50", as tables show it; blank where there is none. For job_runs.counts
    alone: stored as run-job --json prints them (money as text), in every ledger since run 1.
    Everything else reaches the CLI as integer cents."""
    from payalloc.money import format_cents

    if not isinstance(plain, str) or not plain:
        return ""
    whole, _, frac = plain.removeprefix("-").partition(".")
    try:
        cents = int(whole) * 100 + int(frac.ljust(2, "0")[:2])
    except ValueError:
        return plain
    return format_cents(-cents if plain.startswith("-") else cents)


def cut(rows: Iterable[Any], limit: int | None, end: str = "first") -> tuple[list[Any], int]:
    """The `end` ("first" or "last") `limit` rows (all if None) and how many there are in all: the
    others are counted, not kept (a table of 400,000 rows took Rich minutes and gigabytes)."""
    if limit is None:
        kept = list(rows)
        return kept, len(kept)
    it = iter(rows)
    if end == "first":
        kept = list(islice(it, limit))
        return kept, len(kept) + sum(1 for _ in it)
    total = 0
    last: deque[Any] = deque(maxlen=limit)
    for row in it:
        last.append(row)
        total += 1
    return list(last), total


def limited(shown: int, total: int, *, noun: str, end: str = "first") -> str | None:
    """The title of a table cut at --limit: none when all rows are shown (for a table whose footer
    counts them, as unallocated's); else it counts them all, says which ones are shown, and how to
    see the others."""
    if shown == total:
        return None
    return f"{counted(total, noun)} (the {end} {shown:,}; --limit N shows more, --limit 0 all, --csv exports all)"


def titled(title: str | None, shown: int, total: int, *, noun: str, end: str = "first") -> str:
    """A listing's title: `title` (if any), then how many rows there are, and which are shown if not all."""
    note = limited(shown, total, noun=noun, end=end) or counted(total, noun)
    return f"{title}: {note}" if title else note


@contextlib.contextmanager
def to_file(path: Path | None, *, replace: bool = False) -> Iterator[None]:
    """Send what is printed to stdout into PATH instead: created owner-only (0600, it holds
    health data) under a temporary name and moved to PATH when complete, so a killed export never
    leaves a partial file under PATH. An existing PATH is refused unless `replace` (as backup
    does without --force), also if it appears while the export runs. None: stdout as usual."""
    if path is None:
        yield
        return
    from payalloc.errors import InputError, no_space
    from payalloc.files import create_new, place_new, refuse_destination, refused, remove_stale

    refuse_destination(path, replace=replace, named=f"export file {path}")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    remove_stale(path.parent, (".tmp",))  # exports killed with kill -9 left them
    saved = sys.stdout
    fd = create_new(temporary, f"write {path}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            sys.stdout = file
            yield
            file.flush()
            os.fsync(file.fileno())
        try:
            if replace:
                os.replace(temporary, path)
            else:
                place_new(temporary, path)
        except FileExistsError:
            raise InputError(f"{path} appeared while exporting; use --force to replace it") from None
        except OSError as error:  # e.g. chattr +i on the file that --force replaces
            raise refused(error, f"write {path}") from None
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if no_space(error):  # from a write of the export itself: the disk it goes to is full
            raise refused(error, f"write {path}") from None
        raise
    finally:
        sys.stdout = saved


def _escaped(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def emit_json(data: Any) -> None:
    """JSON on stdout, text exact. json escapes C0 controls but writes C1, bidi and zero-width
    characters (and surrogates: invalid UTF-8) as they are: those are escaped as \\uXXXX too, so a
    terminal shows them inert and a parser reads back the very same text."""
    sys.stdout.write(_escaped(json.dumps(data, ensure_ascii=False, indent=2)) + "\n")


def emit_json_rows(rows: Iterable[dict[str, Any]]) -> None:
    """A JSON array of objects on stdout, one object per line, written as the rows come: memory
    stays flat however long the listing, and the C encoder (no indent) is 2-3x faster. Escaped
    as emit_json."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    write = sys.stdout.write
    separator = "[\n  "
    for row in rows:
        write(separator + _escaped(encode(row)))
        separator = ",\n  "
    write("[]\n" if separator == "[\n  " else "\n]\n")


_FORMULA_START = tuple("=+-@|\t\r\x00")
# What a spreadsheet skips before it looks for a formula: any white space or control character.
_LEADING_BLANKS = re.compile(r"^[\s\x00-\x1f\x7f-\x9f]+")


# In a CSV file too: `cat`, `less -R` or `grep` put a cell on a terminal, where ESC and the other
# controls could retitle it, clear it or write a link. Tab and line breaks are a note's own text.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _inert(cell: str) -> str:
    if cell.isprintable():  # as nearly every cell is: no control at all (C speed, no regex)
        return cell
    return _CONTROLS.sub("\ufffd", cell)


def neutralize(cell: str) -> str:
    """Stop a spreadsheet from running a cell as a formula (CWE-1236): prefix a quote when the
    cell, or any line of it, starts with = + - @ | tab CR or NUL, also after white space."""
    if cell[:1].isalnum() and cell.isprintable():  # one line (line breaks are not printable), as most are
        return cell
    for part in [cell, *cell.splitlines()]:
        if part.startswith(_FORMULA_START) or _LEADING_BLANKS.sub("", part).startswith(_FORMULA_START):
            return "'" + cell
    return cell


def emit_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]], *, numeric: Sequence[str] = ()) -> None:
    """CSV on stdout. Amount columns (numeric) stay numeric; every other text cell is neutralized,
    and its controls (but tab and line breaks) shown as U+FFFD, as tables show them. On a terminal
    (a clerk peeking), stripped as tables are: a CR and bidi characters too."""
    writer = csv.writer(sys.stdout, lineterminator="\r\n")  # RFC 4180; quotes any cell holding a CR
    writer.writerow(fields)
    keep = set(numeric)
    shown = safe if sys.stdout.isatty() else _inert
    for row in rows:
        out = []
        for field in fields:
            value = row.get(field)
            if value is None:
                out.append("")
            elif isinstance(value, bool):
                out.append("true" if value else "false")
            elif field in keep or isinstance(value, int):
                out.append(str(value))
            else:
                out.append(shown(neutralize(str(value))))
        writer.writerow(out)


def listing(rows: Listing, columns: Sequence[Column], json_out: bool, csv_out: bool, limit: int | None, *,
            noun: str, empty: str, title: str | None = None, end: str = "first") -> None:
    """A listing streamed from its query: money as plain "1234.50" strings for machines, 1,234.50 for
    people. --json and --csv print every row, or the `end` N of --limit N; a table draws the `end`
    TABLE_ROWS (or --limit N; 0: all) and counts the others. The title says how many there are."""
    from payalloc.cli.common import rows_wanted
    from payalloc.money import format_cents, plain_cents

    wanted = rows_wanted(limit, json_out or csv_out)
    if json_out or csv_out:
        chosen = rows.rows if wanted is None else cut(rows.rows, wanted, end)[0]
        machine = records(rows.fields, chosen, plain_cents)
        if json_out:
            emit_json_rows(machine)
        else:
            emit_csv([money_name(name) for name in rows.fields], machine, numeric=[c.key for c in columns if c.numeric])
        return
    shown, total = cut(rows.rows, wanted, end)
    table(columns, list(records(rows.fields, shown, format_cents)),
          title=titled(title, len(shown), total, noun=noun, end=end), empty=empty)


@dataclass(frozen=True)
class Column:
    """One table column. Ids, dates, money, statuses and counts are never wrapped or cut: the
    table is laid out around them. Only free text (names, notes, reasons) wraps to fit."""

    header: str
    key: str
    numeric: bool = False  # amounts and counts: right-aligned, and numbers in CSV
    text: bool = False  # free text: wraps at spaces, and a word too long for the column folds
    optional: bool = False  # left out (the last first) before the table becomes blocks of lines


# How a table may be drawn, widest first: (cells per column, cells beyond them, compact). The boxed
# table spends 3 cells per column (a border, a space of padding each side) plus the last border;
# without its outer edges, 4 cells less; compact, one space between columns and a rule under the
# header (what fits a 9-column payment list on 80 columns).
_STYLES = ((3, 1, False), (3, -3, False), (1, -1, True))
# A free-text column may shrink to its longest word, but to no less than this, nor need more than
# _TEXT_WORD_CAP for a long word (a longer word folds): the text of a row stays readable.
_TEXT_FLOOR = 6
_TEXT_WORD_CAP = 20


def _cell_text(value: object) -> str:
    return safe(value).expandtabs(8)


def _widths(texts: Iterable[str], words: bool = True) -> tuple[int, int]:
    """(widest line, longest word if asked) in terminal cells."""
    from rich.cells import cell_len

    widest = word = 0
    for text in texts:
        for line_text in text.split("\n") if "\n" in text else (text,):
            widest = max(widest, cell_len(line_text))
            if words:
                word = max(word, max(map(cell_len, line_text.split()), default=0))
    return widest, word


@dataclass(frozen=True)
class _Measure:
    """A column's widths in cells, measured once: natural (no wrapping); narrowest for a fixed
    column (values whole, header folded at its spaces); for free text, least (its header's longest
    word fits) and tight (last resort: the header folds inside a word too)."""

    text: bool
    natural: int
    narrowest: int
    least: int = 0
    tight: int = 0


def _measure(column: Column, values: Iterable[str]) -> _Measure:
    head_width, head_word = _widths([column.header])
    value_width, value_word = _widths(values, words=column.text)
    natural = max(head_width, value_width, 1)
    if not column.text:
        return _Measure(False, natural, max(head_word, value_width, 1))
    floor = max(_TEXT_FLOOR, min(value_word, _TEXT_WORD_CAP))
    least = min(natural, max(head_word, floor))
    return _Measure(True, natural, least, least, min(natural, floor))


def _layout(measures: Sequence[_Measure], available: int) -> list[int] | None:
    """Content widths that keep every id, date and amount whole within `available` cells, or None
    when even folded headers and squeezed free text cannot make them fit on one line."""
    for fixed, text_width in (("natural", "least"), ("narrowest", "least"), ("narrowest", "tight")):
        widths = [getattr(m, text_width if m.text else fixed) for m in measures]
        spare = available - sum(widths)
        if spare < 0:
            continue
        # Give the room left to the free-text columns, the narrowest first, up to their natural width.
        while spare > 0:
            growable = [i for i, m in enumerate(measures) if m.text and widths[i] < m.natural]
            if not growable:
                break
            widths[min(growable, key=lambda i: widths[i])] += 1
            spare -= 1
        return widths
    return None


def _fit(width: int, measures: Sequence[_Measure]) -> tuple[list[int], int, bool] | None:
    """(content widths, cells beyond the columns, compact) of the widest style that fits, or None."""
    for per_column, beyond, compact in _STYLES:
        widths = _layout(measures, width - per_column * len(measures) - beyond)
        if widths is not None:
            return widths, beyond, compact
    return None


def table(
    columns: Sequence[Column],
    rows: Iterable[dict[str, Any]],
    *,
    title: str | None = None,
    footer: dict[str, Any] | None = None,
    empty: str = "nothing to show",
    section: bool = False,
) -> None:
    """A Rich table on stdout. Cells are plain Text (never read as markup), stripped of controls.

    Laid out so that ids, dates and amounts are never wrapped or cut: free-text columns wrap to
    make room; when the terminal is too narrow even for that, each row is printed as a block of
    "header  value" lines instead (like psql's expanded display)."""
    rows = list(rows)
    if not rows:  # a listing with no rows says so on stderr; an empty section of a report is part of it
        (line if section else message)(f"{title}: {empty}" if section and title else empty)
        return
    console = _console()
    all_cells = [[_cell_text(row.get(c.key, "")) for c in columns] for row in rows]
    all_foot = [_cell_text(footer.get(c.key, "")) for c in columns] if footer is not None else None
    # All the columns if they fit; else without the optional ones, the last first, before the
    # table becomes blocks of lines (a 25-payment list in 276 lines on an 80-column terminal).
    measured = [*all_cells, *([all_foot] if all_foot else [])]
    measures = [_measure(c, (row[i] for row in measured)) for i, c in enumerate(columns)]
    optional = [i for i in reversed(range(len(columns))) if columns[i].optional]
    for dropped in range(len(optional) + 1):
        keep = [i for i in range(len(columns)) if i not in optional[:dropped]]
        layout = _fit(console.width, [measures[i] for i in keep])
        if layout is not None:
            break
    if layout is None:
        _records(console, columns, all_cells, title=title, footer=all_foot)
        return
    if dropped:
        hidden = ", ".join(columns[i].header for i in sorted(optional[:dropped]))
        title = f"{title or ''} (not shown at this width: {hidden}; see --json)".strip()
    columns = [columns[i] for i in keep]
    cells = [[row[i] for i in keep] for row in all_cells]
    foot = [all_foot[i] for i in keep] if all_foot is not None else None
    widths, beyond, compact = layout
    from rich import box
    from rich.table import Table
    from rich.text import Text

    edges = beyond > 0
    t = Table(title=Text(safe(title)) if title else None, show_footer=foot is not None, title_justify="left",
              show_edge=edges, pad_edge=edges, box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
              padding=(0, 0) if compact else (0, 1))
    for index, (c, width) in enumerate(zip(columns, widths, strict=True)):
        t.add_column(
            Text(c.header, no_wrap=False, overflow="fold"),
            footer=Text(foot[index]) if foot else "",
            justify="right" if c.numeric else "left",
            no_wrap=not c.text, overflow="fold", width=width,
        )
    for row_cells in cells:
        t.add_row(*(Text(cell) for cell in row_cells))
    console.print(t)


def _records(console: Console, columns: Sequence[Column], cells: Sequence[Sequence[str]], *,
             title: str | None, footer: Sequence[str] | None) -> None:
    """One block per row, "header  value" on each line: for terminals too narrow for the table."""
    from rich.table import Table
    from rich.text import Text

    if title:
        console.print(Text(safe(title), style="italic"))
    from rich.cells import cell_len

    # The header beside its value; on a terminal too narrow for both, the header above it.
    beside = console.width - max(cell_len(c.header) for c in columns) - 2 >= _TEXT_FLOOR
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=beside, overflow="fold", style="bold")
    if beside:
        grid.add_column(overflow="fold")  # only a value longer than the whole line folds
    blocks = [(f"-[ {n} ]", row) for n, row in enumerate(cells, 1)]
    if footer is not None:
        blocks.append(("-[ total ]", footer))
    for label, row_cells in blocks:
        grid.add_row(Text(label, style="dim"), *([""] if beside else []))
        for c, cell in zip(columns, row_cells, strict=True):
            if cell:  # an empty field would be a line saying nothing (an audit row has many)
                if beside:
                    grid.add_row(Text(c.header), Text(cell))
                else:
                    grid.add_row(Text(c.header))
                    grid.add_row(Text(cell, style="not bold"))
    console.print(grid)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Label: value lines for one record. Plain Text: a string would be read for markup and for
    emoji codes too (a note ':red_circle: paid' printed as a red dot)."""
    from rich.text import Text

    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        _console().print(Text.assemble((label.ljust(width), "dim"), "  ", safe(value)))


def progress(total: int, description: str) -> _NoProgress | _RichProgress:
    """A progress bar on stderr when it is a terminal; otherwise a silent stand-in."""
    if total <= 0 or not stderr_is_terminal():
        return _NoProgress()
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=_console(stderr=True), transient=True,
    )
    return _RichProgress(bar, total, description)


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance_to(self, done: int) -> None:
        return None


class _RichProgress:
    def __init__(self, bar: Progress, total: int, description: str) -> None:
        self.bar, self.total, self.description = bar, total, description

    def __enter__(self) -> _RichProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.bar.__exit__(kind, error, trace)

    def advance_to(self, done: int) -> None:
        self.bar.update(self.task, completed=done)
