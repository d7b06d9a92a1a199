"""The year's registrations as the official OCOP registration table (XLSX) and as detail CSV.

Sheet 1 reproduces "Đăng ký sản phẩm thực hiện Chương trình OCOP năm YYYY" (DESIGN.md §2) as the
appendix ("Phụ lục") of an office's letter: the header block (the issuing office, the national
motto), the table, then the place and date line and the signer's title (Letterhead). Every row is
as tall as its wrapped text needs, computed from the column widths (sheets.Measure), since a
spreadsheet printing the file does not grow rows by itself.
section I lists new products, section II re-evaluations and upgrades, TT restarting at 1 in each,
one `X` per row in the target column. A re-evaluation at 5 stars (a national-level product) has no
column in the official form: its row carries no `X` and its product name is followed by
"(đánh giá lại 5 sao)", so the official sees it and can move it to the national list by hand.
Sheet 2 ("Chi tiết") and the CSV have one row per registration with every field we store.

Both sheets stream: the rows come from the database in pages (`yield_per`) as plain Core rows and
XlsxWriter runs in constant_memory mode, so memory stays flat however many rows there are. The
two sheets list the registrations in the same order, that of the official table: section, then
commune (in the area's order), submission time, id; one query feeds both, so they agree even
while producers keep submitting. The CSV, with no sections, is ordered by commune, submission
time, id. The export is always in Vietnamese, the language of the official form, whatever the
caller's language; the caller's language is restored afterwards.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, case, select
from sqlalchemy.ext.asyncio import AsyncSession
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook

from handlers import labels
from handlers.checklist import Checklist, load_checklist
from handlers.context import Letterhead
from handlers.i18n import N_, _
from handlers.reports import sheets
from handlers.reports.sheets import (
    DATE,
    DATETIME,
    NUMBER,
    TEXT,
    Measure,
    TextStyle,
    height_for,
    write_text,
)
from handlers.validators import display_phone
from models.admin_units import Area, Commune
from models.domain import RegistrationKind, RegistrationStatus, Target
from models.dossier import DossierFile
from models.registrations import Registration as R

HO_CHI_MINH = ZoneInfo("Asia/Ho_Chi_Minh")
OFFICIAL_LANGUAGE = "vi"
PAGE_SIZE = 1000
# Up to this many communes the subtitle names them; a whole province is named by itself.
SUBTITLE_COMMUNES = 10

TITLE = N_("Registration of products for the OCOP programme in {year}")
OFFICIAL_SHEET = N_("OCOP registrations {year}")
DETAILS_SHEET = N_("Details")
AREA_ONLY = N_("Area: {province}")
AREA_COMMUNES = N_("Area: {communes} ({province})")
PAGE_FOOTER = N_("Page &P of &N")
NATION = N_("SOCIALIST REPUBLIC OF VIETNAM")
MOTTO = N_("Independence - Freedom - Happiness")
APPENDIX = N_("Appendix")
COVER_LETTER = N_("(Attached to Official Letter No. …/… dated …)")
PLACE_AND_DATE = N_("{place}, day … month … {year}")
FIXED_HEADERS = (
    N_("No."),
    N_("Locality (commune/ward/special zone)"),
    N_("Product name"),
    N_("Legal representative (producer)"),
    N_("Where the product is made"),
)
TARGETS_HEADER = N_("Product registration")
TARGET_COLUMNS = (Target.STAR3, Target.STAR4, Target.UP_3_TO_4, Target.UP_4_TO_5)
SECTIONS = (
    ("I", N_("New product registrations")),
    ("II", N_("Re-evaluation registrations (products whose certificate is expiring)")),
)
FORMER_COMMUNE = N_("{commune} (former {legacy})")
FIVE_STAR_NOTE = N_("{product} (re-evaluation at 5 stars)")
# Wide enough that most names and addresses take one or two lines: a sheet scaled to one page
# wide then gets more rows on a page than narrow columns of wrapped text would.
OFFICIAL_WIDTHS = (5, 22, 34, 38, 42, 7, 7, 13, 13)
LAST_COLUMN = len(FIXED_HEADERS) + len(TARGET_COLUMNS) - 1
# The header block: the office (columns A-C) beside the nation and motto (E-I), an empty row,
# then "Phụ lục", the title, the cover letter's number, the area; then the two header rows.
OFFICE_COLUMNS, NATION_COLUMNS = (0, 2), (4, LAST_COLUMN)
HEADER_ROWS = (7, 8)
FIRST_DATA_ROW = HEADER_ROWS[1] + 1


@dataclass(frozen=True)
class Column:
    """A column of sheet 2 and of the CSV: its header, width, kind of value, the stored field it
    shows and how a value of that field is shown (a method of _Details; None: as it is)."""

    header: str
    width: float
    kind: str
    field: Any
    show: str | None = None


# Sheet 2 and the CSV, in their order: the one list to change to add a column.
DETAIL_COLUMNS = (
    Column(N_("Receipt code"), 16, TEXT, R.code),
    Column(N_("Status"), 22, TEXT, R.status, "status"),
    Column(N_("Registration"), 22, TEXT, R.kind, "kind"),
    Column(N_("Target"), 22, TEXT, R.target, "target"),
    Column(N_("Programme year"), 8, NUMBER, R.programme_year),
    Column(N_("Submitted at"), 16, DATETIME, R.submitted_at, "local"),
    Column(N_("Status changed at"), 16, DATETIME, R.status_changed_at, "local"),
    Column(N_("Commune code"), 9, TEXT, R.commune_code),
    Column(N_("Commune"), 18, TEXT, R.commune_code.label("commune_name"), "commune"),
    Column(N_("Former commune"), 26, TEXT, R.legacy_commune),
    Column(N_("Commune as typed"), 20, TEXT, R.commune_input),
    Column(N_("Product"), 28, TEXT, R.product_name),
    Column(N_("Product group"), 20, TEXT, R.product_group, "group"),
    Column(N_("Producer type"), 20, TEXT, R.subject_type, "subject_type"),
    Column(N_("Producer name"), 28, TEXT, R.subject_name),
    Column(N_("Legal representative"), 24, TEXT, R.owner_name),
    Column(N_("Production address"), 34, TEXT, R.address),
    Column(N_("Phone"), 14, TEXT, R.phone, "phone"),
    Column(N_("Sold online"), 9, TEXT, R.ecommerce, "yes_no"),
    Column(N_("Current star"), 8, NUMBER, R.current_star),
    Column(N_("Certificate issued"), 12, DATE, R.certificate_issue_date),
    Column(N_("Latitude"), 11, NUMBER, R.latitude),
    Column(N_("Longitude"), 11, NUMBER, R.longitude),
    Column(N_("Status note"), 30, TEXT, R.status_note),
    Column(N_("Channel"), 12, TEXT, R.channel, "channel"),
    # "5/8": how many required papers the dossier holds (handlers/checklist.py); _Details.values
    # fills it from the row's kind and id.
    Column(N_("Dossier (required papers)"), 12, TEXT, R.id.label("dossier"), "dossier"),
)
# The query reads these fields, then the id (the last tie of the order); the official table
# reads kind, target, commune_code, legacy_commune, product_name, owner_name, subject_name and
# address from them by name.
FIELDS = (*(column.field for column in DETAIL_COLUMNS), R.id)
_SHOWN = [column.show for column in DETAIL_COLUMNS]
KIND_AT, DOSSIER_AT = _SHOWN.index("kind"), _SHOWN.index("dossier")
_UNIT_PREFIX = re.compile(r"^(?:xã|phường|thị trấn|đặc khu)\s+", re.IGNORECASE)
_PLACE_SUFFIX = re.compile(r"\s*\(.*\)\s*$")


@dataclass(frozen=True)
class ExportFilter:
    """Which registrations to export: a programme year, optionally some communes only."""

    year: int
    communes: tuple[str, ...] | None = None  # None = every commune
    checklist_path: str = ""  # the dossier checklist (OCOP_DOSSIER_CHECKLIST), "" = shipped
    # What the channels a registration came through are called (each adapter names its own).
    channels: tuple[tuple[str, str], ...] = ()


def _normalized(code: str) -> str:
    code = code.strip()
    return code.zfill(5) if code.isdigit() else code


def _communes(area: Area, selection: ExportFilter) -> list[Commune]:
    """The exported communes in the area's order."""
    if selection.communes is None:
        return list(area.communes)
    wanted = {_normalized(code) for code in selection.communes}
    return [c for c in area.communes if c.code in wanted]


def _statement(
    area: Area, selection: ExportFilter, fields: Sequence[Any], *, by_section: bool
) -> Select[Any]:
    """In-programme registrations of the year: everything except rejected ones. A registration
    whose commune left the configured area is kept (after the area's communes), not dropped."""
    order = {c.code: i for i, c in enumerate(area.communes)}
    stmt = select(*fields).where(
        R.programme_year == selection.year, R.status != RegistrationStatus.REJECTED
    )
    if selection.communes is not None:
        stmt = stmt.where(R.commune_code.in_({_normalized(c) for c in selection.communes}))
    ordering: list[Any] = []
    if by_section:
        ordering.append(case((R.kind == RegistrationKind.NEW, 0), else_=1))
    if order:
        ordering.append(case(order, value=R.commune_code, else_=len(order)))
    ordering += [R.commune_code, R.submitted_at, R.id]
    return stmt.order_by(*ordering).execution_options(yield_per=PAGE_SIZE)


async def _stream(session: AsyncSession, stmt: Select[Any]) -> AsyncIterator[Row[Any]]:
    """Rows page by page: one await per page rather than per row, never the whole result."""
    result = await session.stream(stmt)
    async for page in result.partitions(PAGE_SIZE):
        for row in page:
            yield row


class _Names:
    """Commune names as the table shows them, computed once per (commune, former commune)."""

    def __init__(self, area: Area) -> None:
        self._area = area
        self._cache: dict[tuple[str, str | None], tuple[str, str]] = {}
        self._former = _(FORMER_COMMUNE)

    def get(self, code: str, legacy: str | None) -> tuple[str, str]:
        """(short name for the official table, full current name for the details)."""
        key = (code, legacy)
        found = self._cache.get(key)
        if found is None:
            commune = self._area.get(code)
            short, full = (commune.short_name, commune.name) if commune else (code, code)
            if legacy:
                old = _UNIT_PREFIX.sub("", _PLACE_SUFFIX.sub("", legacy)) or legacy
                short = self._former.format(commune=short, legacy=old)
            found = self._cache[key] = (short, full)
        return found


class _Labels(dict[Any, str]):
    """An enum's labels translated once; a member without a label shows its value."""

    @classmethod
    def of(cls, catalog: Mapping[Any, str]) -> _Labels:
        return cls({key: _(message) for key, message in catalog.items()})

    def __missing__(self, key: Any) -> str:
        return str(key)


def _owner(owner: str, subject: str | None) -> str:
    if subject and subject.strip().casefold() != owner.strip().casefold():
        return f"{owner} ({subject})"
    return owner


class _Dossiers:
    """How complete each exported registration's dossier is, loaded in one query."""

    def __init__(self, checklist: Checklist, present: dict[int, set[str]]) -> None:
        self.checklist, self.present = checklist, present

    @classmethod
    async def load(cls, session: AsyncSession, selection: ExportFilter) -> _Dossiers:
        stmt = (
            select(DossierFile.registration_id, DossierFile.item)
            .join(R, R.id == DossierFile.registration_id)
            .where(R.programme_year == selection.year)
            .distinct()
        )
        if selection.communes is not None:
            stmt = stmt.where(R.commune_code.in_({_normalized(c) for c in selection.communes}))
        present: dict[int, set[str]] = {}
        for registration_id, item in await session.execute(stmt):
            present.setdefault(registration_id, set()).add(item)
        return cls(load_checklist(selection.checklist_path), present)

    def of(self, kind: RegistrationKind, registration_id: int) -> str:
        done = self.checklist.completeness(kind, self.present.get(registration_id, ()))
        return f"{done.done}/{done.total}"


class _Details:
    """One registration row as the typed values of DETAIL_COLUMNS."""

    def __init__(
        self, names: _Names, timezone: dt.tzinfo, dossiers: _Dossiers, selection: ExportFilter
    ) -> None:
        self.names, self.timezone, self.dossiers = names, timezone, dossiers
        self.status, self.kind = _Labels.of(labels.STATUS), _Labels.of(labels.KIND)
        self.target, self.group = _Labels.of(labels.TARGET), _Labels.of(labels.GROUP)
        self.subject_type = _Labels.of(labels.SUBJECT_TYPE)
        self.channel = _Labels.of(dict(selection.channels))
        self.answers = {True: _(labels.YES), False: _(labels.NO), None: _(labels.NO)}
        self.phones = sheets.BulkPhoneFormat(display_phone)
        shows: dict[str, Callable[[Any], Any]] = {
            "status": self.status.__getitem__,
            "kind": self.kind.__getitem__,
            "target": self.target.__getitem__,
            "group": self.group.__getitem__,
            "subject_type": self.subject_type.__getitem__,
            "channel": self.channel.__getitem__,
            "local": lambda value: sheets.local_naive(value, timezone),
            "commune": lambda code: names.get(code, None)[1],
            "phone": lambda phone: self.phones(phone) if phone else None,
            "yes_no": lambda value: self.answers[bool(value)],
        }
        shows["dossier"] = lambda value: value  # replaced in `values`: it needs the row's kind
        self.shows = [shows[column.show] if column.show else None for column in DETAIL_COLUMNS]

    def values(self, row: Sequence[Any]) -> list[Any]:
        shown = [
            value if show is None else show(value)
            for show, value in zip(self.shows, row[: len(DETAIL_COLUMNS)], strict=True)
        ]
        shown[DOSSIER_AT] = self.dossiers.of(row[KIND_AT], row[DOSSIER_AT])
        return shown


class _OfficialSheet:
    """Sheet 1, written top to bottom as rows arrive (constant_memory allows nothing else)."""

    def __init__(
        self, workbook: Workbook, area: Area, selection: ExportFilter, letterhead: Letterhead
    ) -> None:
        self.ws = workbook.add_worksheet(
            sheets.sheet_name(_(OFFICIAL_SHEET).format(year=selection.year))
        )
        base = sheets.BASE | {"text_wrap": True, "align": "center"}
        self.title = workbook.add_format(base | {"bold": True, "font_size": 14})
        self.bold = workbook.add_format(base | {"bold": True})
        self.italic = workbook.add_format(base | {"italic": True})
        self.header = workbook.add_format(sheets.HEADER)
        self.section = workbook.add_format(sheets.BORDERED | {"bold": True})
        self.section_number = workbook.add_format(sheets.HEADER)
        self.text = TextStyle.add(workbook, sheets.BORDERED)
        self.center = workbook.add_format(sheets.BORDERED | {"align": "center"})
        self.measure = Measure(OFFICIAL_WIDTHS)
        self.names = _Names(area)
        self.five_star = _(FIVE_STAR_NOTE)
        self.letterhead = letterhead
        self.row = FIRST_DATA_ROW
        self.sections_written = 0
        self.number = 0
        self._begin(area, selection)

    def _line(
        self,
        row: int,
        text: str,
        style: Format,
        *,
        size: float = sheets.FONT_SIZE,
        bold: bool = False,
        first: int = 0,
        last: int = LAST_COLUMN,
    ) -> None:
        """A text over columns first..last of its own row, the row as tall as the text."""
        lines = sheets.wrapped_lines(text, self.measure.span(first, last), size, bold=bold)
        self.ws.set_row(row, height_for(lines, size))
        sheets.merge_text(self.ws, row, first, last, text, style)

    def _begin(self, area: Area, selection: ExportFilter) -> None:
        ws, measure = self.ws, self.measure
        sheets.set_widths(ws, OFFICIAL_WIDTHS)
        sheets.setup_print(ws, HEADER_ROWS, fit_width=True, footer="&C" + _(PAGE_FOOTER))
        # Row 0: the issuing office beside the nation; row 1: the motto under the nation.
        office, nation = self.letterhead.office.upper(), _(NATION)
        lines = max(measure.lines(office, *OFFICE_COLUMNS, bold=True),
                    measure.lines(nation, *NATION_COLUMNS, bold=True))  # fmt: skip
        ws.set_row(0, height_for(lines, sheets.FONT_SIZE))
        sheets.merge_text(ws, 0, *OFFICE_COLUMNS, office, self.bold)
        sheets.merge_text(ws, 0, *NATION_COLUMNS, nation, self.bold)
        self._line(1, _(MOTTO), self.bold, bold=True, first=NATION_COLUMNS[0])
        self._line(3, _(APPENDIX), self.bold, bold=True)
        title = _(TITLE).format(year=selection.year)
        self._line(4, title, self.title, size=14, bold=True)
        self._line(5, _(COVER_LETTER), self.italic)
        communes = _communes(area, selection)
        if selection.communes is None and len(communes) > SUBTITLE_COMMUNES:
            subtitle = _(AREA_ONLY).format(province=area.province_name)
        else:
            names = ", ".join(c.name for c in communes)
            subtitle = _(AREA_COMMUNES).format(communes=names, province=area.province_name)
        self._line(6, subtitle, self.italic)
        # Two header rows written cell by cell in row order, merges declared afterwards.
        top, bottom = HEADER_ROWS
        fixed = [_(header) for header in FIXED_HEADERS]
        targets = [_(labels.TARGET[target]) for target in TARGET_COLUMNS]
        first_target = len(FIXED_HEADERS)
        top_lines = measure.lines(_(TARGETS_HEADER), first_target, LAST_COLUMN, bold=True)
        bottom_lines = max(
            measure.lines(text, col, bold=True)
            for col, text in enumerate(targets, start=first_target)
        )
        both = max(measure.lines(text, col, bold=True) for col, text in enumerate(fixed))
        top_height = height_for(top_lines, sheets.FONT_SIZE)
        bottom_height = height_for(bottom_lines, sheets.FONT_SIZE)
        bottom_height = max(bottom_height, height_for(both, sheets.FONT_SIZE) - top_height)
        ws.set_row(top, top_height)
        ws.set_row(bottom, bottom_height)
        for col, header in enumerate(fixed):
            ws.write_string(top, col, header, self.header)
        sheets.merge_text(ws, top, first_target, LAST_COLUMN, _(TARGETS_HEADER), self.header)
        for col in range(first_target):
            ws.write_blank(bottom, col, None, self.header)
            sheets.register_merge(ws, top, col, bottom, col)
        for col, text in enumerate(targets, start=first_target):
            ws.write_string(bottom, col, text, self.header)
        ws.freeze_panes(FIRST_DATA_ROW, 0)

    def start_section(self) -> None:
        numeral, label = SECTIONS[self.sections_written]
        text = _(label)
        self.ws.set_row(self.row, height_for(self.measure.lines(text, 1, LAST_COLUMN, bold=True),
                                             sheets.FONT_SIZE))  # fmt: skip
        self.ws.write_string(self.row, 0, numeral, self.section_number)
        sheets.merge_text(self.ws, self.row, 1, LAST_COLUMN, text, self.section)
        self.row += 1
        self.sections_written += 1
        self.number = 0

    def add(self, row: Row[Any]) -> None:
        if self.sections_written == 1 and row.kind is not RegistrationKind.NEW:
            self.start_section()
        ws, r, text = self.ws, self.row, self.text
        self.number += 1
        commune = self.names.get(row.commune_code, row.legacy_commune)[0]
        product = row.product_name
        if row.target is Target.STAR5:
            product = self.five_star.format(product=product)
        owner = _owner(row.owner_name, row.subject_name)
        ws.set_row(r, self.measure.height([None, commune, product, owner, row.address]))
        ws.write_number(r, 0, self.number, self.center)
        write_text(ws, r, 1, commune, text)
        write_text(ws, r, 2, product, text)
        write_text(ws, r, 3, owner, text)
        write_text(ws, r, 4, row.address, text)
        for col, target in enumerate(TARGET_COLUMNS, start=len(FIXED_HEADERS)):
            if row.target is target:
                ws.write_string(r, col, "X", self.center)
            else:
                ws.write_blank(r, col, None, self.center)
        self.row += 1

    def finish(self, today: dt.date) -> None:
        while self.sections_written < len(SECTIONS):  # an empty section keeps its header row
            self.start_section()
        # Under the table, on the right: the place and date, then the signer's title (the page
        # below it is left for the signature and the seal).
        row = self.row + 1
        place = _(PLACE_AND_DATE).format(place=self.letterhead.place, year=today.year)
        self._line(row, place, self.italic, first=NATION_COLUMNS[0])
        self._line(row + 1, self.letterhead.signer.upper(), self.bold, bold=True,
                   first=NATION_COLUMNS[0])  # fmt: skip
        self.row = row + 2


class _DetailSheet:
    """Sheet 2: the header row, then one row per registration, printed one page wide."""

    def __init__(self, workbook: Workbook, details: _Details) -> None:
        self.ws = ws = workbook.add_worksheet(sheets.sheet_name(_(DETAILS_SHEET)))
        self.details = details
        widths = [column.width for column in DETAIL_COLUMNS]
        self.cells = sheets.TypedRow(workbook, [column.kind for column in DETAIL_COLUMNS], widths)
        self.row = 1
        header = workbook.add_format(sheets.HEADER)
        sheets.set_widths(ws, widths)
        sheets.setup_print(ws, (0, 0), fit_width=True, footer="&C" + _(PAGE_FOOTER))
        headers = [_(column.header) for column in DETAIL_COLUMNS]
        ws.set_row(0, self.cells.measure.height(headers, bold=True))
        for col, label in enumerate(headers):
            ws.write_string(0, col, label, header)
        ws.freeze_panes(1, 1)

    def add(self, row: Row[Any]) -> None:
        self.cells.write(self.ws, self.row, self.details.values(row))
        self.row += 1

    def finish(self) -> None:
        self.ws.autofilter(0, 0, max(self.row - 1, 1), len(DETAIL_COLUMNS) - 1)


async def write_registration_xlsx(
    session: AsyncSession,
    area: Area,
    selection: ExportFilter,
    out: BinaryIO,
    *,
    timezone: ZoneInfo = HO_CHI_MINH,
    letterhead: Letterhead | None = None,
    today: dt.date | None = None,
) -> int:
    """Writes the workbook, returns the number of registrations exported. `today` (in
    `timezone`; by default now) gives the year of the date line."""
    if today is None:
        today = dt.datetime.now(timezone).date()
    with sheets.language(OFFICIAL_LANGUAGE):
        # write() is never used for user text; these also keep any other path from parsing it.
        options = {"constant_memory": True, "in_memory": False, "strings_to_formulas": False,
                   "strings_to_numbers": False, "strings_to_urls": False}  # fmt: skip
        workbook = Workbook(out, options)
        workbook.set_properties({"title": _(TITLE).format(year=selection.year)})
        official = _OfficialSheet(workbook, area, selection, letterhead or Letterhead())
        dossiers = await _Dossiers.load(session, selection)
        detail = _DetailSheet(workbook, _Details(official.names, timezone, dossiers, selection))
        official.start_section()
        count = 0
        stmt = _statement(area, selection, FIELDS, by_section=True)
        async for row in _stream(session, stmt):
            official.add(row)
            detail.add(row)
            count += 1
        official.finish(today)
        detail.finish()
        # Zipping the sheets is CPU and disk work: keep the event loop free meanwhile. On an
        # error nothing is written to `out`; the sheets' temporary files go with the workbook.
        await asyncio.to_thread(workbook.close)
        return count


async def write_registration_csv(
    session: AsyncSession,
    area: Area,
    selection: ExportFilter,
    out: TextIO,
    *,
    timezone: ZoneInfo = HO_CHI_MINH,
) -> int:
    """The detail columns as CSV: a header row, then one row per registration; returns the count.

    Meant for a stream opened with encoding="utf-8" and newline="" (rows end in CRLF, RFC 4180);
    no byte-order mark is written: a caller making a file for Excel, which otherwise guesses a
    legacy code page, opens it with encoding="utf-8-sig" or writes "\\ufeff" first. Text beginning
    with = + - @ tab CR LF is prefixed with ' (see sheets.py).
    """
    with sheets.language(OFFICIAL_LANGUAGE):
        writer = csv.writer(out)
        writer.writerow([_(column.header) for column in DETAIL_COLUMNS])
        dossiers = await _Dossiers.load(session, selection)
        details = _Details(_Names(area), timezone, dossiers, selection)
        kinds = [column.kind for column in DETAIL_COLUMNS]
        count = 0
        stmt = _statement(area, selection, FIELDS, by_section=False)
        async for row in _stream(session, stmt):
            writer.writerow(sheets.csv_row(kinds, details.values(row)))
            count += 1
        return count
