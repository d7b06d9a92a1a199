"""Import of an existing OCOP certificate list (XLSX or CSV): parsing and checking the rows
(pure, run off the event loop by the bot), then storing the valid ones. The template to fill is
in certificate_template.py.

The caller refuses files over MAX_FILE_BYTES (about 5 MB) before reading them."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import labels
from handlers.area import current_and_former, describe_match
from handlers.i18n import LANGUAGES, N_, _, translations
from handlers.validators import OCOP_FIRST_YEAR, Invalid, parse_phone
from models.admin_units import Area
from models.certificate_imports import ImportedCertificate, Key, store_imported, stored_keys
from models.domain import ProductGroup, SubjectType
from models.text import clean, fold

MAX_ROWS = 5000
MAX_FILE_BYTES = 5 * 1024 * 1024
# A 2 MB zip can unpack to gigabytes, and a small sheet can reach column XFD (16,384 cells a
# row): both limits are checked on what the file declares, before anything is unpacked.
MAX_UNPACKED_BYTES = 60 * 1024 * 1024
MAX_COLUMNS = 60  # the template has 12; old lists have a few more
TOO_WIDE = N_("The sheet “{sheet}” has {columns} columns; a certificate list has at most "
              "{limit}. Delete the extra columns (or copy the table to a new file) and send it "
              "again.")
HEADER_SEARCH_ROWS = 10  # old lists often have a title or two above the header row
BLANK_RUN_END = 1000  # rows formatted but empty down to row 1,048,576 are not scanned
TOO_MANY_ROWS = N_("The file has more than {limit} rows. Split it into smaller files.")
ALREADY_STORED = N_("already in the list (same product, producer, star and issue date)")
E = TypeVar("E", bound=Enum)
Numbered = list[tuple[int, Sequence[object]]]

# Per column: the template's header (a catalog string, matched in every language), then other
# folded names accepted on import. A header's parenthesized note is ignored.
FIELDS = {
    "product": (N_("Product"), "ten san pham", "san pham", "product name"),
    "owner": (N_("Legal representative"), "nguoi dai dien", "nguoi dai dien truoc phap luat"),
    "subject_name": (N_("Producer name"), "ten chu the", "chu the", "subject name"),
    "subject_type": (N_("Producer type"), "loai hinh chu the", "loai hinh", "subject type"),
    "commune": (N_("Commune"), "xa phuong", "xa", "phuong", "xa phuong thi tran", "dia phuong"),
    "address": (N_("Address"), "dia chi", "dia chi san xuat", "dia chi san xuat san pham"),
    "phone": (N_("Phone"), "so dien thoai", "dien thoai", "sdt", "phone number"),
    "star": (N_("Star"), "hang sao", "so sao", "sao", "stars"),
    "issue_date": (N_("Issue date"), "ngay cap", "ngay cap giay chung nhan", "ngay quyet dinh"),
    "decision": (N_("Decision number"), "so quyet dinh", "quyet dinh", "so qd"),
    "group": (N_("Product group"), "nhom san pham", "nhom"),
    "ecommerce": (N_("E-commerce"), "tmdt", "thuong mai dien tu", "ban tren san tmdt"),
}
FIELDS["owner"] += ("owner", "representative")
REQUIRED = ("product", "owner", "subject_type", "commune", "address", "star", "issue_date")
LIMITS = {"product": 200, "owner": 200, "subject_name": 200, "address": 300, "decision": 100}
# Short forms officials write, and the 2018 product groups (Decision 490) old lists still use.
_TYPES = {"doanh nghiep": SubjectType.ENTERPRISE, "hop tac xa": SubjectType.COOPERATIVE,
          "htx": SubjectType.COOPERATIVE, "to hop tac": SubjectType.COOPERATIVE_GROUP,
          "tht": SubjectType.COOPERATIVE_GROUP} | dict.fromkeys(
    ("ho", "ho kinh doanh", "ho san xuat", "ho san xuat kinh doanh"), SubjectType.HOUSEHOLD)
_GROUPS = {"duoc lieu": ProductGroup.HERBAL, "thao duoc": ProductGroup.HERBAL,
           "dich vu du lich nong thon ban hang": ProductGroup.TOURISM} | dict.fromkeys(
    ("thu cong my nghe", "vai va may mac", "luu niem noi that trang tri"), ProductGroup.HANDICRAFT)
_YES_NO = dict.fromkeys(("co", "x", "yes", "y", "1", "true"), True)
_YES_NO |= dict.fromkeys(("khong", "k", "no", "n", "0", "false"), False)
_DATE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})|(\d{4})-(\d\d?)-(\d\d?)(?:[ T][\d:.]*)?")
_STAR = re.compile(r"([345])(?: (?:sao|stars?))?")  # fold() already dropped "*" and "★"
# The template's example row; a row left with these four texts is not imported.
EXAMPLE = {"product": N_("Anchovy fish sauce"), "owner": N_("Nguyen Van A"),
           "address": N_("Tan Phong hamlet"), "decision": N_("1234/QD-UBND")}


# A data row's spreadsheet row number, and the row or every reason it cannot be imported.
Checked = tuple[int, ImportedCertificate | list[str]]


@dataclass(frozen=True)
class RejectedRow:
    row: int  # the spreadsheet's own row number (the header is usually row 1)
    reasons: tuple[str, ...]  # localized; user values are plain text, the caller escapes them


@dataclass(frozen=True)
class ImportResult:
    imported: int
    rejected: tuple[RejectedRow, ...]


class ImportFileError(Exception):
    """The whole file is unusable; `message` is localized."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _in_all_languages(message: str) -> set[str]:
    return {fold(translations(language).gettext(message)) for language in LANGUAGES}


def _vocabulary(enum_labels: Mapping[E, str], short: Mapping[str, E]) -> dict[str, E]:
    return dict(short) | {word: member for member, label in enum_labels.items()
                          for word in {fold(member.value), *_in_all_languages(label)}}


@functools.cache
def _words() -> tuple[dict[str, str], dict[str, SubjectType], dict[str, ProductGroup], set[Any]]:
    """Header names, producer types, product groups, and the example row's texts."""
    headers = {name: field for field, (header, *names) in FIELDS.items()
               for name in {*_in_all_languages(header), *map(fold, names)}}
    examples = {tuple(fold(translations(language).gettext(message)) for message in EXAMPLE.values())
                for language in LANGUAGES}
    types, groups = _vocabulary(labels.SUBJECT_TYPE, _TYPES), _vocabulary(labels.GROUP, _GROUPS)
    return headers, types, groups, examples


def _column(field: str) -> str:
    """The column's name inside a sentence: "thiếu hạng sao", but "TMĐT" stays as it is."""
    name = _(FIELDS[field][0])
    return name if name[1:2].isupper() else name[:1].lower() + name[1:]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a number cell: "0905123456" typed without quote, star 4.0
    return clean(str(value))


def _numbered(rows: Iterable[Sequence[object]]) -> Numbered:
    """Non-blank rows with their spreadsheet row numbers; a long blank run ends the table."""
    kept: Numbered = []
    blank_run = 0
    for number, values in enumerate(rows, start=1):
        if any(_text(value) for value in values):
            blank_run = 0
            kept.append((number, values))
            if len(kept) > MAX_ROWS + HEADER_SEARCH_ROWS:
                raise ImportFileError(_(TOO_MANY_ROWS).format(limit=MAX_ROWS))
        elif (blank_run := blank_run + 1) >= BLANK_RUN_END:
            break
    return kept


def _sheets(content: bytes, file_name: str) -> list[Numbered]:
    import openpyxl  # here, not at the top: it pulls in numpy (~0.2 s of every bot start-up)

    extension = file_name.lower().rpartition(".")[2]
    if content.startswith(b"PK\x03\x04") or extension in ("xlsx", "xlsm"):
        _check_archive(content)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unsupported extensions, missing styles, ...
                book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as error:  # zip, XML and openpyxl errors alike: the file is unreadable
            raise ImportFileError(_("The Excel file could not be read. Open it in Excel, save it "
                                    "as .xlsx and send it again.")) from error
        try:
            for sheet in book.worksheets:
                declared = sheet.max_column if sheet.max_column is not None else 0
                if declared > MAX_COLUMNS:
                    raise ImportFileError(_(TOO_WIDE).format(
                        sheet=sheet.title, columns=declared, limit=MAX_COLUMNS))
                sheet.reset_dimensions()  # some writers record a wrong used range
            # A row is cut at MAX_COLUMNS too: a sheet that declares no range can still be wide.
            return [_numbered(sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True))
                    for sheet in book.worksheets]
        finally:
            book.close()
    if content.startswith(b"\xd0\xcf\x11\xe0") or extension == "xls":
        raise ImportFileError(_("This is an old Excel file (.xls). Open it in Excel, save it as "
                                ".xlsx and send it again."))
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise ImportFileError(_("This file is neither an Excel (.xlsx) file nor a UTF-8 CSV file. "
                                "In Excel, save it as .xlsx or as “CSV UTF-8”."))
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return [_numbered(row[:MAX_COLUMNS] for row in reader)]
    except csv.Error as error:  # a field over csv.field_size_limit() (128 KB), a stray NUL...
        raise ImportFileError(_("Row {row} of the CSV file could not be read: a cell is far too "
                                "long or a quote is not closed. Check that row in Excel and "
                                "send the file again.").format(row=reader.line_num)) from error


def _check_archive(content: bytes) -> None:
    """Refuses an .xlsx whose parts declare more than MAX_UNPACKED_BYTES in all. Python's zip
    reader never unpacks a part beyond its declared size, so this bounds the memory used."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        return  # openpyxl says the file is unreadable, in the usual words
    if declared > MAX_UNPACKED_BYTES:
        raise ImportFileError(_("This Excel file unpacks to {size} MB, more than a certificate "
                                "list needs (at most {limit} MB). Copy the table to a new file "
                                "and send that.").format(size=declared // (1024 * 1024),
                                                         limit=MAX_UNPACKED_BYTES // (1024 * 1024)))


def _columns(header: Sequence[object]) -> dict[str, int]:
    """Field -> column index; the first column of a field wins, unknown columns are ignored."""
    names, found = _words()[0], {}
    for index, cell in enumerate(header):
        text = _text(cell)
        field = names.get(fold(text)) or names.get(fold(re.sub(r"\(.*?\)", " ", text)))
        if field and field not in found:
            found[field] = index
    return found


def _table(sheets: list[Numbered]) -> tuple[dict[str, int], Numbered]:
    """The first sheet with every required column in a header row: (columns, data rows)."""
    best: dict[str, int] = {}
    for rows in sheets:
        for index, (_number, values) in enumerate(rows[:HEADER_SEARCH_ROWS]):
            columns = _columns(values)
            if all(field in columns for field in REQUIRED):
                return columns, rows[index + 1 :]
            best = max(best, columns, key=len)
    if not best:
        raise ImportFileError(_("No header row found: the first row must hold the column "
                                "names, as in the template."))
    missing = ", ".join(f"“{_(FIELDS[field][0])}”" for field in REQUIRED if field not in best)
    raise ImportFileError(_("Required columns are missing: {columns}.").format(columns=missing))


def _date(value: object) -> dt.date | None:
    """The date a cell holds: a date cell, an Excel day number of 2000-2099, or text."""
    if isinstance(value, dt.datetime | dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    if isinstance(value, int | float) and not isinstance(value, bool) and 36526 <= value < 73051:
        from openpyxl.utils.datetime import from_excel  # see _sheets

        return from_excel(value).date()
    if not (match := _DATE.fullmatch(_text(value))):
        return None
    day, month, year = match.groups()[:3] if match[1] else match.groups()[:2:-1]
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        return None


def _commune(text: str, area: Area, address: str = "") -> tuple[str | None, str | None]:
    """(code, None) or (None, why not): a current or pre-2025 name, or a code of the area. A
    name of a current unit and of a former one elsewhere is decided by the type word in the
    name or the address ("phường Nguyễn Nghiêm"), as in the registration form."""
    matches = [] if text.isdecimal() else area.match(text, address)
    found = [area.get(text)] if text.isdecimal() else [match.commune for match in matches]
    communes = [commune for commune in found if commune is not None]
    if len(communes) == 1:
        return communes[0].code, None
    if current_and_former(matches):
        choices = "; ".join(describe_match(match) for match in matches)
        return None, _(
            "commune “{value}” may mean {choices}: write “xã” or “phường” before its name"
        ).format(value=text, choices=choices)
    if not communes:
        return None, _("unknown commune “{value}”").format(value=text)
    choices = ", ".join(commune.short_name for commune in communes)
    return None, _("commune “{value}” is ambiguous: {choices}").format(value=text, choices=choices)


def _check(cells: dict[str, object], area: Area, today: dt.date) -> ImportedCertificate | list[str]:
    """The row's subject, product and certificate, or every reason it cannot be imported."""
    _headers, types, groups, examples = _words()
    text = {field: _text(value) for field, value in cells.items()}
    if tuple(fold(text[field]) for field in EXAMPLE) in examples:
        return [_("this is the template's example row: type your own data over it")]
    reasons = [_("missing {column}").format(column=_column(f)) for f in REQUIRED if not text[f]]
    for field in (field for field, limit in LIMITS.items() if len(text[field]) > limit):
        reason = _("{column} is too long: at most {limit} characters")
        reasons.append(reason.format(column=_column(field), limit=LIMITS[field]))
    subject_type = types.get(fold(text["subject_type"]))
    if not text["subject_name"] and subject_type not in (None, SubjectType.HOUSEHOLD):
        reasons.append(_("missing producer name (only a household may leave it blank)"))
    commune_code, why = (
        _commune(text["commune"], area, text["address"]) if text["commune"] else (None, None)
    )
    reasons.extend([why] if why else [])
    try:
        phone = parse_phone(text["phone"]) if text["phone"] else None
    except Invalid:
        phone = None
    star = _STAR.fullmatch(fold(text["star"]))
    issue_date = _date(cells["issue_date"])
    group = groups.get(fold(text["group"]))
    ecommerce = _YES_NO.get(fold(text["ecommerce"])) if text["ecommerce"] else False
    invalid = {"subject_type": subject_type, "phone": phone, "star": star,
               "issue_date": issue_date, "group": group, "ecommerce": ecommerce}
    for field in (field for field, value in invalid.items() if text[field] and value is None):
        reason = _("invalid {column} “{value}”")
        reasons.append(reason.format(column=_column(field), value=text[field]))
    if issue_date and not dt.date(OCOP_FIRST_YEAR, 1, 1) <= issue_date <= today:
        reason = _("issue date {date} must be from {year} up to today")
        reasons.append(reason.format(date=issue_date.strftime("%d/%m/%Y"), year=OCOP_FIRST_YEAR))
    if reasons or not (subject_type and commune_code and star and issue_date):
        return reasons
    return ImportedCertificate(
        subject_name=text["subject_name"] or text["owner"], subject_type=subject_type,
        representative=text["owner"], address=text["address"], phone=phone,
        product=text["product"], group=group, commune_code=commune_code,
        ecommerce=bool(ecommerce), star=int(star[1]), issue_date=issue_date,
        decision=text["decision"] or None,
    )


def parse_certificates(
    content: bytes, file_name: str, area: Area, today: dt.date
) -> list[Checked]:
    """Every data row of an XLSX or CSV file (by extension / content sniffing), checked: CPU
    work without the database, run by the bot in a worker process (handlers/reports/parsing.py).
    Raises ImportFileError when the whole file is unusable."""
    columns, data = _table(_sheets(content, file_name))
    if len(data) > MAX_ROWS:
        raise ImportFileError(_(TOO_MANY_ROWS).format(limit=MAX_ROWS))
    return [
        (number, _check({f: values[i] if (i := columns.get(f, -1)) in range(len(values)) else None
                         for f in FIELDS}, area, today))
        for number, values in data
    ]


async def classify(
    session: AsyncSession, checked: Sequence[Checked]
) -> tuple[list[tuple[int, ImportedCertificate]], list[RejectedRow]]:
    """The rows to import, and the rows not to with why: any problem, or a certificate stored
    already or earlier in the file. Only reads."""
    existing = await stored_keys(session, [row for _n, row in checked if not isinstance(row, list)])
    first_row: dict[Key, int] = {}
    accepted: list[tuple[int, ImportedCertificate]] = []
    rejected: list[RejectedRow] = []
    for number, row in checked:
        if isinstance(row, list):
            rejected.append(RejectedRow(number, tuple(row)))
            continue
        if row.key in existing:
            reason = _(ALREADY_STORED)
        elif row.key in first_row:
            reason = _("same certificate as row {row}").format(row=first_row[row.key])
        else:
            first_row[row.key] = number
            accepted.append((number, row))
            continue
        rejected.append(RejectedRow(number, (reason,)))
    return accepted, rejected


async def import_certificates(
    session: AsyncSession, area: Area, content: bytes, file_name: str,
    *, today: dt.date | None = None,
) -> ImportResult:
    """Parse, check and add the valid rows (subject + product + certificate) in the caller's
    transaction (flush, never commit), all at once: for the command line. Rows with any problem,
    or repeating a certificate stored or earlier in the file, are not imported and are reported.
    `today` (default: the server's date) bounds the issue dates."""
    checked = parse_certificates(content, file_name, area, today or dt.date.today())
    accepted, rejected = await classify(session, checked)
    await store_imported(session, [row for _number, row in accepted])
    return ImportResult(len(accepted), tuple(rejected))
