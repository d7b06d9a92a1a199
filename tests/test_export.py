"""An official exports the year's registrations: the official table, the details sheet, the CSV."""

from __future__ import annotations

import csv
import datetime as dt
import gettext
import io
import itertools
import random
from typing import Any

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import i18n, labels
from handlers.reports import sheets
from handlers.reports.export import ExportFilter, write_registration_csv, write_registration_xlsx
from handlers.validators import display_phone
from models.admin_units import Area
from models.db import create_sessionmaker
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    SubjectType,
    Target,
)
from models.registrations import Product, Registration, Subject
from models.users import User

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])
YEAR = 2026
DUC_PHO, TRA_CAU, NGUYEN_NGHIEM, SA_HUYNH = "21439", "21451", "21457", "21478"
FORMULA = "=cmd|' /C calc'!A0"

# The official form's wording (DESIGN.md §2) for the export's catalog strings; the fixture below
# supplies it while the Vietnamese catalog does not have those strings yet.
OFFICIAL_WORDING = {
    "Registration of products for the OCOP programme in {year}": (
        "Đăng ký sản phẩm thực hiện Chương trình OCOP năm {year}"
    ),
    "OCOP registrations {year}": "Đăng ký OCOP {year}",
    "Details": "Chi tiết",
    "No.": "TT",
    "Locality (commune/ward/special zone)": "Địa phương (Xã/phường/đặc khu)",
    "Product name": "Tên sản phẩm",
    "Legal representative (producer)": "Người đại diện trước pháp luật (chủ thể)",
    "Where the product is made": "Địa chỉ sản xuất sản phẩm",
    "Product registration": "Đăng ký sản phẩm",
    "New product registrations": "Đăng ký sản phẩm mới",
    "Re-evaluation registrations (products whose certificate is expiring)": (
        "Đăng ký đánh giá lại (sản phẩm sắp hết hạn)"
    ),
    "{commune} (former {legacy})": "{commune} ({legacy} cũ)",
    "{product} (re-evaluation at 5 stars)": "{product} (đánh giá lại 5 sao)",
    "Area: {communes} ({province})": "Địa bàn: {communes} ({province})",
}
TARGET_HEADERS = ["3 sao", "4 sao", "Nâng hạng 3 sao lên 4 sao", "Nâng hạng 4 sao lên 5 sao"]


class _OfficialWording(gettext.NullTranslations):
    def __init__(self, catalog: gettext.NullTranslations) -> None:
        super().__init__()
        self.catalog = catalog

    def gettext(self, message: str) -> str:
        text = self.catalog.gettext(message)
        return OFFICIAL_WORDING.get(message, text) if text == message else text


@pytest.fixture(autouse=True)
def official_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strings already in the catalog win, so this changes nothing once they are translated."""
    real = i18n.translations

    def translations(language: str) -> gettext.NullTranslations:
        return _OfficialWording(real(language)) if language == "vi" else real(language)

    monkeypatch.setattr(i18n, "translations", translations)


_numbers = itertools.count(1)


def registration(
    kind: RegistrationKind,
    target: Target,
    commune: str,
    product: str,
    *,
    hour: int,
    status: RegistrationStatus = RegistrationStatus.SUBMITTED,
    year: int = YEAR,
    **fields: Any,
) -> dict[str, Any]:
    number = next(_numbers)
    when = dt.datetime(year, 3, 1, hour, 30, tzinfo=dt.UTC)
    return {
        "code": f"OCOP-{year}-{number:04d}",
        "kind": kind,
        "target": target,
        "programme_year": year,
        "commune_code": commune,
        "commune_input": None,
        "legacy_commune": None,
        "product_name": product,
        "product_group": ProductGroup.FOOD,
        "owner_name": "Trần Thị B",
        "subject_name": "Trần Thị B",
        "subject_type": SubjectType.HOUSEHOLD,
        "address": f"Thôn {number}",
        "phone": "+84905123456",
        "latitude": None,
        "longitude": None,
        "ecommerce": False,
        "current_star": None,
        "certificate_issue_date": None,
        "status": status,
        "channel": "telegram",
        "submitted_at": when,
        "status_changed_at": when,
    } | fields


NEW, REEVAL, UPGRADE = RegistrationKind.NEW, RegistrationKind.REEVALUATION, RegistrationKind.UPGRADE
SAMPLE = [
    registration(
        NEW, Target.STAR3, SA_HUYNH, "Nước mắm cá cơm", hour=1,
        legacy_commune="Xã Phổ Thạnh (Thị xã Đức Phổ)", commune_input="pho thanh",
        owner_name="Nguyễn Văn A", subject_name="HTX Nước mắm Sa Huỳnh",
        subject_type=SubjectType.COOPERATIVE, ecommerce=True, latitude=14.66, longitude=108.91,
    ),
    registration(NEW, Target.STAR4, DUC_PHO, FORMULA, hour=17),
    registration(
        UPGRADE, Target.UP_3_TO_4, TRA_CAU, "Tỏi cô đơn", hour=3, current_star=3,
        certificate_issue_date=dt.date(2023, 5, 15), status=RegistrationStatus.ACCEPTED,
    ),
    registration(REEVAL, Target.STAR5, NGUYEN_NGHIEM, "Mạch nha", hour=4, current_star=5),
    registration(NEW, Target.STAR3, DUC_PHO, "Bánh tráng", hour=2),
    registration(NEW, Target.STAR3, SA_HUYNH, "Muối", hour=5, status=RegistrationStatus.REJECTED),
    registration(NEW, Target.STAR3, SA_HUYNH, "Cá khô", hour=6, year=YEAR - 1),
]  # fmt: skip
EXPORTED = {r["code"] for r in SAMPLE if r["programme_year"] == YEAR} - {SAMPLE[5]["code"]}


async def store(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with create_sessionmaker(engine)() as session:
        user = User(channel="telegram", channel_user_id="42", chat_id="42")
        session.add(user)
        await session.flush()
        for row in rows:
            subject = Subject(
                owner_user_id=user.id,
                name=row["subject_name"],
                subject_type=row["subject_type"],
                representative=row["owner_name"],
                address=row["address"],
                phone=row["phone"],
            )
            session.add(subject)
            await session.flush()
            product = Product(
                subject_id=subject.id,
                name=row["product_name"],
                product_group=row["product_group"],
                commune_code=row["commune_code"],
            )
            session.add(product)
            await session.flush()
            ids = {"product_id": product.id, "subject_id": subject.id}
            session.add(Registration(**row, **ids, submitted_by_user_id=user.id))
        await session.commit()


async def export_xlsx(engine: AsyncEngine, selection: ExportFilter) -> tuple[int, Any]:
    buffer = io.BytesIO()
    async with create_sessionmaker(engine)() as session:
        count = await write_registration_xlsx(session, AREA, selection, buffer)
    buffer.seek(0)
    return count, openpyxl.load_workbook(buffer)


def table(ws: Worksheet) -> list[list[Any]]:
    """The rows of the table, from its first section to the last registration."""
    rows = [list(row) for row in ws.iter_rows(min_row=10, max_col=9, values_only=True)]
    while rows and not isinstance(rows[-1][0], (int, str)):  # the place, date and signer
        rows.pop()
    return rows


@pytest.mark.both_databases
async def test_official_table_has_both_sections_and_one_mark_per_row(engine: AsyncEngine) -> None:
    await store(engine, SAMPLE)
    i18n.use_language("en")  # an English-speaking admin still gets the Vietnamese form
    count, book = await export_xlsx(engine, ExportFilter(YEAR))
    assert i18n.current_language.get() == "en"
    assert count == len(EXPORTED) == 5
    assert book.sheetnames == [f"Đăng ký OCOP {YEAR}", "Chi tiết"]
    ws = book.worksheets[0]
    assert ws["A5"].value == f"Đăng ký sản phẩm thực hiện Chương trình OCOP năm {YEAR}"
    assert ws["A5"].font.b and ws["A5"].alignment.horizontal == "center"
    assert "Phường Sa Huỳnh" in ws["A7"].value and "Quảng Ngãi" in ws["A7"].value
    merged = {str(cell_range) for cell_range in ws.merged_cells.ranges}
    assert {"A5:I5", "A8:A9", "B8:B9", "C8:C9", "D8:D9", "E8:E9", "F8:I8"} <= merged
    assert [ws.cell(8, col).value for col in range(1, 7)] == [
        "TT",
        "Địa phương (Xã/phường/đặc khu)",
        "Tên sản phẩm",
        "Người đại diện trước pháp luật (chủ thể)",
        "Địa chỉ sản xuất sản phẩm",
        "Đăng ký sản phẩm",
    ]
    assert [ws.cell(9, col).value for col in range(6, 10)] == TARGET_HEADERS
    assert ws["C8"].font.b and ws["C8"].alignment.horizontal == "center"
    assert {"B10:I10", "B14:I14"} <= merged
    rows = table(ws)
    assert rows == [
        ["I", "Đăng ký sản phẩm mới", None, None, None, None, None, None, None],
        [1, "Đức Phổ", "Bánh tráng", "Trần Thị B", "Thôn 5", "X", None, None, None],
        [2, "Đức Phổ", FORMULA, "Trần Thị B", "Thôn 2", None, "X", None, None],
        [
            3, "Sa Huỳnh (Phổ Thạnh cũ)", "Nước mắm cá cơm",
            "Nguyễn Văn A (HTX Nước mắm Sa Huỳnh)", "Thôn 1", "X", None, None, None,
        ],
        ["II", "Đăng ký đánh giá lại (sản phẩm sắp hết hạn)", None, None, None, None, None, None,
         None],
        [1, "Trà Câu", "Tỏi cô đơn", "Trần Thị B", "Thôn 3", None, None, "X", None],
        [2, "Nguyễn Nghiêm", "Mạch nha (đánh giá lại 5 sao)", "Trần Thị B", "Thôn 4"] + [None] * 4,
    ]  # fmt: skip
    assert ws["C12"].data_type == "s" and ws["C12"].value.startswith("=")
    assert ws["F11"].border.left.style == "thin" and ws["E11"].alignment.wrap_text

    details = book["Chi tiết"]
    records = list(details.iter_rows(min_row=2, values_only=True))
    assert {record[0] for record in records} == EXPORTED
    assert all(record[17] == "0905 123 456" for record in records)
    first = next(r for r in records if r[0] == SAMPLE[1]["code"])
    assert first[5] == dt.datetime(YEAR, 3, 2, 0, 30)  # 17:30 UTC is half past midnight in Vietnam
    assert first[11] == FORMULA
    upgrade = next(r for r in records if r[0] == SAMPLE[2]["code"])
    accepted = labels.STATUS[RegistrationStatus.ACCEPTED]
    assert upgrade[1] == i18n.translations("vi").gettext(accepted) != accepted
    assert upgrade[19:21] == (3, dt.datetime(2023, 5, 15))
    assert details.cell(2 + records.index(upgrade), 21).number_format == "dd/mm/yyyy"


async def test_page_setup_prints_the_table_on_a4_landscape(engine: AsyncEngine) -> None:
    count, book = await export_xlsx(engine, ExportFilter(YEAR))
    ws = book.worksheets[0]
    assert count == 0
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == 9
    # One page wide (1 is the default, so the attribute is left out), as many pages tall as needed.
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.page_setup.fitToWidth in (None, 1) and int(ws.page_setup.fitToHeight) == 0
    assert ws.print_title_rows == "$8:$9"
    assert ws.freeze_panes == "A10"
    # Both section rows stay even when there is nothing to list.
    assert [row[:2] for row in table(ws)] == [
        ["I", "Đăng ký sản phẩm mới"],
        ["II", "Đăng ký đánh giá lại (sản phẩm sắp hết hạn)"],
    ]


async def test_a_commune_filter_keeps_only_that_commune(engine: AsyncEngine) -> None:
    await store(engine, SAMPLE)
    count, book = await export_xlsx(engine, ExportFilter(YEAR, communes=(SA_HUYNH,)))
    assert count == 1
    ws = book.worksheets[0]
    assert ws["A7"].value == "Địa bàn: Phường Sa Huỳnh (Quảng Ngãi)"
    assert [row[:3] for row in table(ws)] == [
        ["I", "Đăng ký sản phẩm mới", None],
        [1, "Sa Huỳnh (Phổ Thạnh cũ)", "Nước mắm cá cơm"],
        ["II", "Đăng ký đánh giá lại (sản phẩm sắp hết hạn)", None],
    ]
    codes = [row[0] for row in book["Chi tiết"].iter_rows(min_row=2, values_only=True)]
    assert codes == [SAMPLE[0]["code"]]


async def test_csv_has_the_detail_rows_with_formulas_neutralized(engine: AsyncEngine) -> None:
    await store(engine, SAMPLE)
    out = io.StringIO(newline="")
    async with create_sessionmaker(engine)() as session:
        count = await write_registration_csv(session, AREA, ExportFilter(YEAR), out)
    header, *rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert count == len(rows) == len(EXPORTED)
    assert header[0] and len(header) == len(rows[0]) == 26
    by_code = {row[0]: row for row in rows}
    assert set(by_code) == EXPORTED
    assert by_code[SAMPLE[1]["code"]][11] == "'" + FORMULA
    first = by_code[SAMPLE[0]["code"]]
    assert first[5] == f"01/03/{YEAR} 08:30"
    assert first[8:11] == ["Phường Sa Huỳnh", "Xã Phổ Thạnh (Thị xã Đức Phổ)", "pho thanh"]
    assert first[17:23] == ["0905 123 456", "Có", "", "", "14.66", "108.91"]
    assert by_code[SAMPLE[2]["code"]][20] == "15/05/2023"
    # By commune in the area's order, then submission time: no sections in the CSV.
    assert [row[7] for row in rows] == [DUC_PHO, DUC_PHO, TRA_CAU, NGUYEN_NGHIEM, SA_HUYNH]


def test_every_formula_prefix_is_neutralized_in_csv() -> None:
    for risky in ("=1+2", "+84905", "-2", "@SUM(A1)", "\tx", "\rx", "\nx"):
        assert sheets.csv_text(risky) == "'" + risky
    assert [sheets.csv_text(t) for t in ("Nước mắm", "", None)] == ["Nước mắm", "", ""]


def test_phones_in_bulk_look_exactly_like_display_phone() -> None:
    bulk = sheets.BulkPhoneFormat(display_phone)
    rng = random.Random(7)
    prefixes = ["+8490", "+8497", "+8432", "+8470", "+8424", "+8428", "+84255", "+84236", "+841900"]
    numbers = ["+14155552671", "+84", "+84abc", "0905123456", "+84٩٠٥١٢٣٤٥٦"]
    for prefix in prefixes:
        for length in range(9, 14):
            for _ in range(5):
                numbers.append(
                    prefix + "".join(rng.choice("0123456789") for _ in range(length - 3))
                )
    assert [bulk(n) for n in numbers * 2] == [display_phone(n) for n in numbers * 2]
