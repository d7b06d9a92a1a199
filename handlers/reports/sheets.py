"""Small shared helpers for spreadsheet exports: safe text cells, formats, merges, print setup.

Security (DESIGN.md §5: exports neutralize cells beginning with = + - @ tab CR LF). Producers type
the product names, owners and addresses we export; a value such as ``=HYPERLINK(...)`` or
``=cmd|' /C calc'!A0`` must never become a live formula in an official's spreadsheet:

- XLSX: user text is always written with ``worksheet.write_string`` and never with
  ``worksheet.write`` (which turns a string beginning with "=" into a formula). The stored value is
  exactly what the producer typed. A risky value additionally gets a format with Excel's
  *quote prefix* flag (the invisible leading apostrophe), so Excel keeps it as text even when an
  official opens the cell and presses Enter. See ``TextStyle`` and ``write_text``.
- CSV: a plain file has no cell types, so ``csv_text`` prefixes a risky value with a single quote
  (``=cmd`` becomes ``'=cmd``), the convention spreadsheet programs and OWASP recommend. Only text
  fields are neutralized; numbers we format ourselves (coordinates, years) are written as they are.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from handlers.i18n import current_language, use_language

# First characters that make a spreadsheet program read a cell as a formula (or split it).
RISKY_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")

# Excel's limit on a worksheet name.
SHEET_NAME_LIMIT = 31

# XlsxWriter paper code of ISO A4.
PAPER_A4 = 9

# Kinds of value in a typed row (the details sheet, the CSV).
TEXT, NUMBER, DATETIME, DATE = "text", "number", "datetime", "date"

# Every printed cell: one font (the official form's), vertically centred.
FONT_SIZE = 12
BASE: dict[str, Any] = {"font_name": "Times New Roman", "font_size": FONT_SIZE, "valign": "vcenter"}
BORDERED: dict[str, Any] = {**BASE, "border": 1, "text_wrap": True}
HEADER: dict[str, Any] = {**BORDERED, "bold": True, "align": "center", "valign": "vcenter"}


def is_risky(text: str) -> bool:
    """True when a spreadsheet program could read this text as a formula."""
    return text.startswith(RISKY_PREFIXES)


def csv_text(text: str | None) -> str:
    """A text field for a CSV cell: None is empty, a risky value gets a leading single quote."""
    if not text:
        return ""
    return "'" + text if is_risky(text) else text


def sheet_name(text: str) -> str:
    """A valid worksheet name: no characters Excel forbids, at most 31 characters."""
    for forbidden in "[]:*?/\\":
        text = text.replace(forbidden, " ")
    return text.strip("' ")[:SHEET_NAME_LIMIT] or "Sheet"


@dataclass(frozen=True)
class TextStyle:
    """A cell format for user text and its twin with Excel's quote-prefix flag for risky text.

    `plain` None writes cells without a style, which is cheaper for big sheets nobody prints.
    """

    plain: Format | None
    quoted: Format

    @classmethod
    def add(cls, workbook: Workbook, properties: dict[str, Any] | None) -> TextStyle:
        return cls(
            workbook.add_format(properties) if properties is not None else None,
            workbook.add_format({**(properties or {}), "quote_prefix": True}),
        )


def write_text(ws: Worksheet, row: int, col: int, text: str | None, style: TextStyle) -> None:
    """Write user-supplied text as a text cell, never as a formula; empty text is a blank cell."""
    if not text:
        if style.plain is not None:
            ws.write_blank(row, col, None, style.plain)
    elif text.startswith(RISKY_PREFIXES):
        ws.write_string(row, col, text, style.quoted)
    else:
        ws.write_string(row, col, text, style.plain)


class TypedRow:
    """Writes rows of typed values in bordered, wrapped cells of the printed font (dates with a
    day-first number format), user text as text cells, and makes each row as tall as its
    wrapped text needs (see `Measure`)."""

    def __init__(self, workbook: Workbook, kinds: Sequence[str], widths: Sequence[float]) -> None:
        self.kinds = tuple(kinds)
        self.text = TextStyle.add(workbook, BORDERED)
        self.blank = self.text.plain
        self.number = workbook.add_format(BORDERED | {"align": "right"})
        self.formats = {
            DATETIME: workbook.add_format(BORDERED | {"num_format": "dd/mm/yyyy hh:mm"}),
            DATE: workbook.add_format(BORDERED | {"num_format": "dd/mm/yyyy"}),
        }
        self.measure = Measure(widths)

    def write(self, ws: Worksheet, row: int, values: Sequence[Any]) -> None:
        texts: list[str | None] = []
        for col, (kind, value) in enumerate(zip(self.kinds, values, strict=True)):
            if value is None or value == "":
                ws.write_blank(row, col, None, self.blank)
                texts.append(None)
            elif kind == TEXT:
                write_text(ws, row, col, value, self.text)
                texts.append(value)
            elif kind == NUMBER:
                ws.write_number(row, col, value, self.number)
                texts.append(None)  # numbers and dates never wrap: the columns fit them
            else:
                ws.write_datetime(row, col, value, self.formats[kind])
                texts.append(None)
        ws.set_row(row, self.measure.height(texts))


# Advance widths (in 1/2048 em) of printable ASCII in Times New Roman, as LibreOffice prints it
# (Liberation Serif, metric-compatible), regular and bold. Other letters are measured by their
# base letter (diacritics stack, they do not widen), "ơ" and "ư" with their horn.
_ASCII_WIDTHS = {
    False: (
        512, 682, 836, 1024, 1024, 1706, 1593, 369, 682, 682, 1024, 1155, 512, 682, 512, 569,
        1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 569, 569, 1155, 1155, 1155,
        909, 1886, 1479, 1366, 1366, 1479, 1251, 1139, 1479, 1479, 682, 797, 1479, 1251, 1821,
        1479, 1479, 1139, 1479, 1366, 1139, 1251, 1479, 1479, 1933, 1479, 1479, 1251, 682, 569,
        682, 961, 1024, 682, 909, 1024, 909, 1024, 909, 682, 1024, 1024, 569, 569, 1024, 569,
        1593, 1024, 1024, 1024, 1024, 682, 797, 569, 1024, 1024, 1479, 1024, 1024, 909, 983,
        410, 983, 1108,
    ),
    True: (
        512, 682, 1137, 1024, 1024, 2048, 1706, 569, 682, 682, 1024, 1167, 512, 682, 512, 569,
        1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 682, 682, 1167, 1167, 1167,
        1024, 1905, 1479, 1366, 1479, 1479, 1366, 1251, 1593, 1593, 797, 1024, 1593, 1366, 1933,
        1479, 1593, 1251, 1593, 1479, 1139, 1366, 1479, 1479, 2048, 1479, 1479, 1366, 682, 569,
        682, 1190, 1024, 682, 1024, 1139, 909, 1139, 909, 682, 1024, 1139, 569, 682, 1139, 569,
        1706, 1139, 1024, 1139, 1139, 909, 797, 682, 1139, 1024, 1479, 1024, 1024, 909, 807,
        451, 807, 1065,
    ),
}  # fmt: skip
_HORN = 210  # what the horn of ơ, ư adds at most
_OTHER = 2048  # a character we know nothing of: a whole em
EM = 2048
LINE_EM = 1.25  # a line of text, in em (the font's ascent and descent are 1.107 em)
ROW_PADDING = 4.0  # points above and below the text of a row
CELL_PADDING = 4.0  # points of a column's width that are not text (both sides)
MIN_ROW = 16.0  # the height of a row with one line of 12-point text


def column_points(width: float) -> float:
    """A column's width in points: Excel's character widths are those of the default font's
    digit (7 pixels) plus 5 pixels of padding, at 96 pixels an inch."""
    return (int(width * 7 + 0.5) + 5) * 0.75 if width > 0 else 0.0


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """The width of `text` in points at `size`."""
    table, total = _ASCII_WIDTHS[bold], 0
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            total += table[code - 32]
            continue
        base = unicodedata.normalize("NFD", ch)
        first = ord(base[0])
        if 32 <= first < 127:
            total += table[first - 32] + (_HORN if "\u031b" in base else 0)
        elif unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        else:
            total += _OTHER
    return total * size / EM


def wrapped_lines(text: str, width: float, size: float, *, bold: bool = False) -> int:
    """How many lines `text` takes in a wrapped cell `width` points wide: words go on a line
    while they fit, a word longer than a line is broken, a line break starts a new line."""
    room = max(width - CELL_PADDING, size)
    if "\n" not in text and len(text) * size * (2048 / EM) <= room:  # surely one line
        return 1
    space = text_width(" ", size, bold=bold)
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        used = 0.0
        for word in paragraph.split(" "):
            if not word:
                continue
            needed = text_width(word, size, bold=bold)
            if used and used + space + needed <= room:
                used += space + needed
                continue
            if used:
                lines += 1
            extra = math.ceil(needed / room) - 1 if needed > room else 0
            lines += extra
            used = needed - extra * room
    return max(lines, 1)


def height_for(lines: int, size: float) -> float:
    """A row's height in points for `lines` lines of text at `size`."""
    return max(MIN_ROW, math.ceil(lines * size * LINE_EM + ROW_PADDING))


class Measure:
    """Row heights for wrapped text in the columns of a sheet (its widths in characters)."""

    def __init__(self, widths: Iterable[float], size: float = FONT_SIZE) -> None:
        self.points = [column_points(width) for width in widths]
        self.size = size

    def span(self, first: int, last: int) -> float:
        return sum(self.points[first : last + 1])

    def lines(self, text: str, first: int, last: int | None = None, *, bold: bool = False) -> int:
        width = self.span(first, first if last is None else last)
        return wrapped_lines(text, width, self.size, bold=bold)

    def height(self, texts: Sequence[str | None], *, bold: bool = False) -> float:
        """The height of a row whose column i holds texts[i] (None: nothing that wraps)."""
        most = max(
            (self.lines(text, col, bold=bold) for col, text in enumerate(texts) if text),
            default=1,
        )
        return height_for(most, self.size)


def csv_row(kinds: Sequence[str], values: Sequence[Any]) -> list[str]:
    """Typed values as CSV fields: text neutralized, dates day first like the XLSX."""
    return [_csv_field(kind, value) for kind, value in zip(kinds, values, strict=True)]


def _csv_field(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == TEXT:
        return csv_text(value)
    if kind == NUMBER:
        return format_number(value)
    return f"{value:%d/%m/%Y %H:%M}" if kind == DATETIME else f"{value:%d/%m/%Y}"


def register_merge(
    ws: Worksheet, first_row: int, first_col: int, last_row: int, last_col: int
) -> None:
    """Declare a merged range whose cells the caller has already written, row by row.

    ``merge_range`` writes the first cell and then pads the whole range with blanks, so a range
    spanning two rows flushes the first row; in XlsxWriter's constant_memory mode every later
    write to that row (the next vertical merge of a two-row header) is then silently dropped
    (XlsxWriter issue #292). The merge list itself is only emitted when the workbook closes, so we
    write the cells in row order ourselves and record the range here.
    """
    merges = getattr(ws, "merge", None)
    if not isinstance(merges, list):  # XlsxWriter changed its internals: fail loudly, not silently
        raise RuntimeError("this XlsxWriter version does not keep a worksheet merge list")
    merges.append([first_row, first_col, last_row, last_col])


def merge_text(
    ws: Worksheet, row: int, first_col: int, last_col: int, text: str, cell_format: Format
) -> None:
    """A text spanning columns of one row (titles, section labels); safe in constant_memory."""
    ws.write_string(row, first_col, text, cell_format)
    for col in range(first_col + 1, last_col + 1):
        ws.write_blank(row, col, None, cell_format)
    register_merge(ws, row, first_col, row, last_col)


def set_widths(ws: Worksheet, widths: Sequence[float]) -> None:
    for col, width in enumerate(widths):
        ws.set_column(col, col, width)


def setup_print(
    ws: Worksheet, header_rows: tuple[int, int], *, fit_width: bool, footer: str | None = None
) -> None:
    """A4 landscape with narrow margins, header rows repeated on every printed page; with
    `fit_width`, scaled to one page wide."""
    ws.set_landscape()
    ws.set_paper(PAPER_A4)
    ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    ws.center_horizontally()
    ws.repeat_rows(*header_rows)
    if fit_width:
        ws.fit_to_pages(1, 0)  # one page wide, as many pages tall as needed
    if footer:
        ws.set_footer(footer)


def local_naive(value: dt.datetime | None, timezone: dt.tzinfo) -> dt.datetime | None:
    """A stored UTC time as the wall-clock time of `timezone`, naive as Excel wants it."""
    if value is None:
        return None
    if value.tzinfo is None:  # stored times are UTC (DESIGN.md §5)
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(timezone).replace(tzinfo=None)


def format_number(value: float | int | None) -> str:
    """A number for CSV: empty when missing, no exponent, no trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.7f}".rstrip("0").rstrip(".")
    return str(value)


class BulkPhoneFormat:
    """`display` (our display_phone) for many numbers at once.

    phonenumbers takes about 40 µs a number, several seconds for a big export. Its grouping only
    depends on the leading digits and the length, so the layout it chose for the first number of
    each (leading digits, length) is remembered and filled with the digits of the next ones.
    Anything else than a plain +84 number, or a layout that is not a regrouping of its digits, is
    formatted by `display` itself.
    """

    def __init__(self, display: Callable[[str], str]) -> None:
        self._display = display
        self._layouts: dict[tuple[str, int], tuple[str, bool] | None] = {}

    def __call__(self, e164: str) -> str:
        if not (e164.startswith("+84") and e164[3:].isdigit() and e164.isascii()):
            return self._display(e164)
        key = (e164[:8], len(e164))
        if key not in self._layouts:
            self._layouts[key] = self._layout(e164)
        layout = self._layouts[key]
        if layout is None:
            return self._display(e164)
        template, trunk_prefix = layout
        return template.format(*("0" + e164[3:] if trunk_prefix else e164[3:]))

    def _layout(self, e164: str) -> tuple[str, bool] | None:
        shown = self._display(e164)
        digits = "".join(ch for ch in shown if ch.isdigit())
        if "{" in shown or "}" in shown or not shown.isascii():
            return None
        template = "".join("{}" if ch.isdigit() else ch for ch in shown)
        if digits == "0" + e164[3:]:
            return template, True
        return (template, False) if digits == e164[3:] else None


@contextmanager
def language(code: str) -> Iterator[None]:
    """Build text in `code` (the official form is Vietnamese), then restore the previous one."""
    previous = current_language.get()
    use_language(code)
    try:
        yield
    finally:
        use_language(previous)
