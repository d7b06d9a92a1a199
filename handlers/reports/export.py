"""The year's registrations as the official OCOP registration table (XLSX) and as detail CSV.

Sheet 1 reproduces "Đăng ký sản phẩm thực hiện Chương trình OCOP năm YYYY" (DESIGN.md §2):
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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, case, select
from sqlalchemy.ext.asyncio import AsyncSession
from xlsxwriter.workbook import Workbook

from handlers import labels
from handlers.checklist import Checklist, load_checklist
from handlers.i18n import N_, _
from handlers.reports import sheets
from handlers.reports.sheets import DATE, DATETIME, NUMBER, TEXT, TextStyle, write_text
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
FIXED_HEADERS = (
    N_("No."),
    N_("Locality (commune/ward/town)"),
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
OFFICIAL_WIDTHS = (5, 18, 28, 28, 34, 7, 7, 12, 12)
FIRST_DATA_ROW = 4  # title, subtitle, two header rows

# Sheet 2 and CSV: (header, column width, kind of value).
DETAIL_COLUMNS = (
    (N_("Receipt code"), 16, TEXT),
    (N_("Status"), 22, TEXT),
    (N_("Registration"), 22, TEXT),
    (N_("Target"), 22, TEXT),
    (N_("Programme year"), 8, NUMBER),
    (N_("Submitted at"), 16, DATETIME),
    (N_("Status changed at"), 16, DATETIME),
    (N_("Commune code"), 9, TEXT),
    (N_("Commune"), 18, TEXT),
    (N_("Former commune"), 26, TEXT),
    (N_("Commune as typed"), 20, TEXT),
    (N_("Product"), 28, TEXT),
    (N_("Product group"), 20, TEXT),
    (N_("Producer type"), 20, TEXT),
    (N_("Producer name"), 28, TEXT),
    (N_("Legal representative"), 24, TEXT),
    (N_("Production address"), 34, TEXT),
    (N_("Phone"), 14, TEXT),
    (N_("Sold online"), 9, TEXT),
    (N_("Current star"), 8, NUMBER),
    (N_("Certificate issued"), 12, DATE),
    (N_("Latitude"), 11, NUMBER),
    (N_("Longitude"), 11, NUMBER),
    (N_("Status note"), 30, TEXT),
    (N_("Channel"), 10, TEXT),
    (N_("Dossier (required papers)"), 12, TEXT),  # "5/8": handlers/checklist.py
)
DETAIL_FIELDS = (
    R.code, R.status, R.kind, R.target, R.programme_year, R.submitted_at, R.status_changed_at,
    R.commune_code, R.legacy_commune, R.commune_input, R.product_name, R.product_group,
    R.subject_type, R.subject_name, R.owner_name, R.address, R.phone, R.ecommerce,
    R.current_star, R.certificate_issue_date, R.latitude, R.longitude, R.status_note, R.channel,
)  # fmt: skip
_UNIT_PREFIX = re.compile(r"^(?:xã|phường|thị trấn|đặc khu)\s+", re.IGNORECASE)
_PLACE_SUFFIX = re.compile(r"\s*\(.*\)\s*$")


@dataclass(frozen=True)
class ExportFilter:
    """Which registrations to export: a programme year, optionally some communes only."""

    year: int
    communes: tuple[str, ...] | None = None  # None = every commune
    checklist_path: str = ""  # the dossier checklist (OCOP_DOSSIER_CHECKLIST), "" = shipped


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

    def __init__(self, names: _Names, timezone: dt.tzinfo, dossiers: _Dossiers) -> None:
        self.names, self.timezone, self.dossiers = names, timezone, dossiers
        self.status, self.kind = _Labels.of(labels.STATUS), _Labels.of(labels.KIND)
        self.target, self.group = _Labels.of(labels.TARGET), _Labels.of(labels.GROUP)
        self.subject_type = _Labels.of(labels.SUBJECT_TYPE)
        self.yes, self.no = _(labels.YES), _(labels.NO)
        self.phone = sheets.BulkPhoneFormat(display_phone)

    def values(self, row: Sequence[Any]) -> tuple[Any, ...]:
        # Unpacking by position is several times cheaper than 25 lookups by name.
        (code, status, kind, target, year, submitted, changed, commune, legacy, typed, product,
         group, subject_type, subject, owner, address, phone, ecommerce, star, issued, latitude,
         longitude, note, channel, registration_id) = row  # fmt: skip
        local, timezone = sheets.local_naive, self.timezone
        return (
            code, self.status[status], self.kind[kind], self.target[target], year,
            local(submitted, timezone), local(changed, timezone),
            commune, self.names.get(commune, None)[1], legacy, typed,
            product, self.group[group], self.subject_type[subject_type], subject, owner, address,
            self.phone(phone) if phone else None, self.yes if ecommerce else self.no,
            star, issued, latitude, longitude, note, channel,
            self.dossiers.of(kind, registration_id),
        )  # fmt: skip


class _OfficialSheet:
    """Sheet 1, written top to bottom as rows arrive (constant_memory allows nothing else)."""

    def __init__(self, workbook: Workbook, area: Area, selection: ExportFilter) -> None:
        self.ws = workbook.add_worksheet(
            sheets.sheet_name(_(OFFICIAL_SHEET).format(year=selection.year))
        )
        base = sheets.BASE | {"font_size": 12}
        self.title = workbook.add_format(base | {"bold": True, "font_size": 14, "align": "center"})
        self.subtitle = workbook.add_format(
            base | {"italic": True, "align": "center", "text_wrap": True}
        )
        self.header = workbook.add_format(sheets.HEADER | {"font_size": 12})
        self.section = workbook.add_format(sheets.BORDERED | {"bold": True, "font_size": 12})
        self.section_number = workbook.add_format(sheets.HEADER | {"font_size": 12})
        cells = sheets.BORDERED | {"font_size": 12}
        self.text = TextStyle.add(workbook, cells)
        self.center = workbook.add_format(cells | {"align": "center"})
        self.names = _Names(area)
        self.five_star = _(FIVE_STAR_NOTE)
        self.row = FIRST_DATA_ROW
        self.sections_written = 0
        self.number = 0
        self._begin(area, selection)

    def _begin(self, area: Area, selection: ExportFilter) -> None:
        ws, last = self.ws, 4 + len(TARGET_COLUMNS)
        sheets.set_widths(ws, OFFICIAL_WIDTHS)
        sheets.setup_print(ws, (2, 3), fit_width=True, footer="&C" + _(PAGE_FOOTER))
        ws.set_row(0, 36)
        sheets.merge_text(ws, 0, 0, last, _(TITLE).format(year=selection.year), self.title)
        communes = _communes(area, selection)
        if selection.communes is None and len(communes) > SUBTITLE_COMMUNES:
            subtitle = _(AREA_ONLY).format(province=area.province_name)
        else:
            names = ", ".join(c.name for c in communes)
            subtitle = _(AREA_COMMUNES).format(communes=names, province=area.province_name)
        ws.set_row(1, 18 * (1 + len(subtitle) // 140))  # merged cells do not grow by themselves
        sheets.merge_text(ws, 1, 0, last, subtitle, self.subtitle)
        # Two header rows written cell by cell in row order, merges declared afterwards.
        ws.set_row(2, 32)
        ws.set_row(3, 48)
        for col, header in enumerate(FIXED_HEADERS):
            ws.write_string(2, col, _(header), self.header)
        sheets.merge_text(ws, 2, len(FIXED_HEADERS), last, _(TARGETS_HEADER), self.header)
        for col in range(len(FIXED_HEADERS)):
            ws.write_blank(3, col, None, self.header)
            sheets.register_merge(ws, 2, col, 3, col)
        for col, target in enumerate(TARGET_COLUMNS, start=len(FIXED_HEADERS)):
            ws.write_string(3, col, _(labels.TARGET[target]), self.header)
        ws.freeze_panes(FIRST_DATA_ROW, 0)

    def start_section(self) -> None:
        numeral, label = SECTIONS[self.sections_written]
        self.ws.write_string(self.row, 0, numeral, self.section_number)
        sheets.merge_text(self.ws, self.row, 1, 4 + len(TARGET_COLUMNS), _(label), self.section)
        self.row += 1
        self.sections_written += 1
        self.number = 0

    def add(self, row: Row[Any]) -> None:
        if self.sections_written == 1 and row.kind is not RegistrationKind.NEW:
            self.start_section()
        ws, r, text = self.ws, self.row, self.text
        self.number += 1
        ws.write_number(r, 0, self.number, self.center)
        write_text(ws, r, 1, self.names.get(row.commune_code, row.legacy_commune)[0], text)
        product = row.product_name
        if row.target is Target.STAR5:
            product = self.five_star.format(product=product)
        write_text(ws, r, 2, product, text)
        write_text(ws, r, 3, _owner(row.owner_name, row.subject_name), text)
        write_text(ws, r, 4, row.address, text)
        for col, target in enumerate(TARGET_COLUMNS, start=len(FIXED_HEADERS)):
            if row.target is target:
                ws.write_string(r, col, "X", self.center)
            else:
                ws.write_blank(r, col, None, self.center)
        self.row += 1

    def finish(self) -> None:
        while self.sections_written < len(SECTIONS):  # an empty section keeps its header row
            self.start_section()


class _DetailSheet:
    """Sheet 2: the header row, then one row per registration."""

    def __init__(self, workbook: Workbook, details: _Details) -> None:
        self.ws = ws = workbook.add_worksheet(sheets.sheet_name(_(DETAILS_SHEET)))
        self.details = details
        self.cells = sheets.TypedRow(workbook, [kind for _header, _width, kind in DETAIL_COLUMNS])
        self.row = 1
        header = workbook.add_format(sheets.HEADER)
        sheets.set_widths(ws, [width for _header, width, _kind in DETAIL_COLUMNS])
        sheets.setup_print(ws, (0, 0), fit_width=False, footer="&C" + _(PAGE_FOOTER))
        for col, (label, _width, _kind) in enumerate(DETAIL_COLUMNS):
            ws.write_string(0, col, _(label), header)
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
) -> int:
    """Writes the workbook, returns the number of registrations exported."""
    with sheets.language(OFFICIAL_LANGUAGE):
        # write() is never used for user text; these also keep any other path from parsing it.
        options = {"constant_memory": True, "in_memory": False, "strings_to_formulas": False,
                   "strings_to_numbers": False, "strings_to_urls": False}  # fmt: skip
        workbook = Workbook(out, options)
        workbook.set_properties({"title": _(TITLE).format(year=selection.year)})
        official = _OfficialSheet(workbook, area, selection)
        dossiers = await _Dossiers.load(session, selection)
        detail = _DetailSheet(workbook, _Details(official.names, timezone, dossiers))
        official.start_section()
        count = 0
        stmt = _statement(area, selection, (*DETAIL_FIELDS, R.id), by_section=True)
        async for row in _stream(session, stmt):
            official.add(row)
            detail.add(row)
            count += 1
        official.finish()
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
        writer.writerow([_(header) for header, _width, _kind in DETAIL_COLUMNS])
        dossiers = await _Dossiers.load(session, selection)
        details = _Details(_Names(area), timezone, dossiers)
        kinds = [kind for _header, _width, kind in DETAIL_COLUMNS]
        count = 0
        stmt = _statement(area, selection, (*DETAIL_FIELDS, R.id), by_section=False)
        async for row in _stream(session, stmt):
            writer.writerow(sheets.csv_row(kinds, details.values(row)))
            count += 1
        return count
