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
from collections.abc import Callable, Iterator, Sequence
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

BASE: dict[str, Any] = {"font_name": "Times New Roman", "font_size": 11, "valign": "top"}
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
    """Writes rows of typed values unstyled (styles cost time per cell; dates still get a day-first
    number format), user text as text cells, empty values as no cell at all."""

    def __init__(self, workbook: Workbook, kinds: Sequence[str]) -> None:
        self.kinds = tuple(kinds)
        self.text = TextStyle.add(workbook, None)
        self.formats = {
            DATETIME: workbook.add_format({"num_format": "dd/mm/yyyy hh:mm"}),
            DATE: workbook.add_format({"num_format": "dd/mm/yyyy"}),
        }

    def write(self, ws: Worksheet, row: int, values: Sequence[Any]) -> None:
        for col, (kind, value) in enumerate(zip(self.kinds, values, strict=True)):
            if value is None or value == "":
                continue
            if kind == TEXT:
                write_text(ws, row, col, value, self.text)
            elif kind == NUMBER:
                ws.write_number(row, col, value)
            else:
                ws.write_datetime(row, col, value, self.formats[kind])


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
    """A4 landscape with narrow margins, header rows repeated on every printed page."""
    ws.set_landscape()
    ws.set_paper(PAPER_A4)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
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
