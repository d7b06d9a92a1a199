"""The official export printed as an office sends it: LibreOffice (Debian's `libreoffice-calc`,
installed when missing, else the test is skipped saying why) renders the real XLSX to PDF.
Thirteen registrations fit on one landscape A4 page per sheet, and no row is shorter than its
wrapped text needs: the text is measured with the metrics of the font LibreOffice prints
Times New Roman in (Liberation Serif), against the column widths read back with openpyxl."""

from __future__ import annotations

import datetime as dt
import io
import math
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fontTools.ttLib import TTFont
from openpyxl.worksheet.worksheet import Worksheet
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import CHANNEL_LABELS
from handlers.context import Letterhead
from handlers.reports.export import ExportFilter, write_registration_xlsx
from models.db import create_sessionmaker
from models.domain import RegistrationKind, RegistrationStatus, SubjectType, Target
from tests import debian
from tests.test_export import AREA, DUC_PHO, NGUYEN_NGHIEM, SA_HUYNH, TRA_CAU, registration, store

SOFFICE = "/usr/bin/soffice"
FONTS = Path("/usr/share/fonts/truetype/liberation2")
# Converting a small workbook takes seconds; this bounds a hung LibreOffice, not the usual.
CONVERT_SECONDS = 600
YEAR = 2026
LETTERHEAD = Letterhead("Ủy ban nhân dân phường Sa Huỳnh", "Chủ tịch", "Sa Huỳnh")
NEW, REEVAL, UPGRADE = RegistrationKind.NEW, RegistrationKind.REEVALUATION, RegistrationKind.UPGRADE

# Thirteen registrations as a commune sends them: long names, long addresses, a former commune.
THIRTEEN = [
    registration(NEW, Target.STAR3, SA_HUYNH, "Nước mắm cá cơm truyền thống Sa Huỳnh", hour=1,
                 owner_name="Nguyễn Văn Ba", subject_name="Hợp tác xã Nước mắm Sa Huỳnh",
                 subject_type=SubjectType.COOPERATIVE, channel="zalo",
                 address="Thôn Long Thạnh 1, phường Sa Huỳnh, tỉnh Quảng Ngãi",
                 legacy_commune="Xã Phổ Thạnh (Thị xã Đức Phổ)", commune_input="pho thanh"),
    registration(NEW, Target.STAR3, SA_HUYNH, "Muối sạch Sa Huỳnh", hour=2,
                 owner_name="Võ Văn Bình", address="Thôn Tân Diêm, phường Sa Huỳnh"),
    registration(NEW, Target.STAR4, DUC_PHO, "Tỏi đen cô đơn Đức Phổ", hour=3,
                 owner_name="Lê Thị Thu", subject_name="Công ty TNHH Nông sản Đức Phổ",
                 subject_type=SubjectType.ENTERPRISE, address="Tổ dân phố 3, phường Đức Phổ"),
    registration(NEW, Target.STAR3, TRA_CAU, "Quế Trà Câu", hour=4, owner_name="Trần Văn Minh",
                 subject_name="HTX Quế Trà Câu", address="Thôn Hiệp An, phường Trà Câu"),
    registration(NEW, Target.STAR3, NGUYEN_NGHIEM, "Bánh tráng nước dừa", hour=5,
                 owner_name="Đỗ Thị Hoa", address="Thôn An Thạch, xã Nguyễn Nghiêm"),
    registration(NEW, Target.STAR4, "21472", "Mật ong rừng Khánh Cường", hour=6,
                 owner_name="Phan Văn Tài", subject_name="Tổ hợp tác Ong mật Khánh Cường",
                 address="Thôn Vĩnh Lộc, xã Khánh Cường", channel="zalo_oa"),
    registration(NEW, Target.STAR3, DUC_PHO, "Chả cá", hour=7, owner_name="Huỳnh Thị Lệ",
                 address="Tổ dân phố 1, phường Đức Phổ"),
    registration(NEW, Target.STAR3, SA_HUYNH, "Cá cơm khô", hour=8, owner_name="Ngô Văn Sáu",
                 address="Thôn Thạnh Đức 2, phường Sa Huỳnh"),
    registration(UPGRADE, Target.UP_3_TO_4, TRA_CAU, "Tinh dầu quế", hour=9, current_star=3,
                 certificate_issue_date=dt.date(2023, 5, 15), owner_name="Trần Văn Minh",
                 subject_name="HTX Quế Trà Câu", address="Thôn Hiệp An, phường Trà Câu",
                 status=RegistrationStatus.ACCEPTED, status_note="Đã kiểm tra hồ sơ gốc"),
    registration(REEVAL, Target.STAR3, DUC_PHO, "Bánh ít lá gai", hour=10, current_star=3,
                 owner_name="Phạm Thị Năm", address="Tổ dân phố 5, phường Đức Phổ"),
    registration(REEVAL, Target.STAR4, SA_HUYNH, "Nước mắm nhĩ", hour=11, current_star=4,
                 owner_name="Lê Văn An", subject_name="HTX Sa Huỳnh",
                 address="Thôn Long Thạnh 2, phường Sa Huỳnh"),
    registration(UPGRADE, Target.UP_4_TO_5, NGUYEN_NGHIEM, "Mạch nha gạo lứt", hour=12,
                 current_star=4, owner_name="Đinh Văn Tư", address="Thôn Mỹ Thuận"),
    registration(REEVAL, Target.STAR5, "21472", "Đường phổi", hour=13, current_star=5,
                 owner_name="Trương Thị Bảy", address="Thôn Vĩnh Bình, xã Khánh Cường"),
]  # fmt: skip
for _household in THIRTEEN:  # a household is its owner: no producer name beside theirs
    if _household["subject_type"] is SubjectType.HOUSEHOLD:
        _household["subject_name"] = _household["owner_name"]


@pytest.fixture(scope="session")
def soffice() -> str:
    for packages, provides in (
        (["libreoffice-calc"], SOFFICE),
        (["fonts-liberation2", "fonts-crosextra-carlito"], f"{FONTS}/LiberationSerif-Regular.ttf"),
    ):
        if why := debian.install(packages, provides, recommends=False):
            pytest.skip(f"LibreOffice cannot render the export here: {why}")
    return SOFFICE


def to_pdf(soffice: str, xlsx: Path) -> PdfReader:
    profile = xlsx.parent / "libreoffice-profile"  # its own: other sessions may run one too
    subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
         "--outdir", str(xlsx.parent), str(xlsx)],
        check=True, capture_output=True, timeout=CONVERT_SECONDS,
    )  # fmt: skip
    return PdfReader(xlsx.with_suffix(".pdf"))


class Font:
    """Liberation Serif's advance widths and line height, as LibreOffice lays text out."""

    def __init__(self, style: str) -> None:
        font = TTFont(FONTS / f"LiberationSerif-{style}.ttf")
        self.cmap, self.metrics = font.getBestCmap(), font["hmtx"]
        self.em = font["head"].unitsPerEm
        os2 = font["OS/2"]
        self.line = (os2.usWinAscent + os2.usWinDescent) / self.em

    def width(self, text: str, size: float) -> float:
        total = 0
        for ch in unicodedata.normalize("NFC", text):
            glyph = self.cmap.get(ord(ch))
            total += self.metrics[glyph][0] if glyph else self.em
        return total * size / self.em


def lines_needed(font: Font, text: str, width: float, size: float) -> int:
    """Greedy wrapping at spaces in a cell `width` points wide (3 points of it are margins)."""
    room, lines = width - 3, 0
    for paragraph in text.split("\n"):
        lines, used = lines + 1, 0.0
        for word in paragraph.split():
            needed = font.width(word, size)
            if used and used + font.width(" ", size) + needed <= room:
                used += font.width(" ", size) + needed
            else:
                lines += 1 if used else 0
                lines += max(math.ceil(needed / room) - 1, 0)
                used = needed % room if needed > room else needed
    return lines


def column_points(ws: Worksheet) -> dict[int, float]:
    """Each column's width in points. The file stores it in digits of the default font
    (7 pixels), padding included; one <col> element may give a range of columns."""
    points = {}
    for dimension in ws.column_dimensions.values():
        for col in range(dimension.min, dimension.max + 1):
            points[col] = int(dimension.width * 7 + 0.5) * 0.75  # 96 pixels an inch
    return points


def too_short(ws: Worksheet) -> list[tuple[str, str, float, float]]:
    """(cell, text, row height, height its text needs) for every cell taller than its row
    (a merged cell: than its rows)."""
    fonts = {False: Font("Regular"), True: Font("Bold")}
    widths = column_points(ws)
    spans = {}
    for merged in ws.merged_cells.ranges:
        spans[(merged.min_row, merged.min_col)] = merged
    problems = []
    for row in ws.iter_rows():
        for cell in row:
            if not isinstance(cell.value, str) or not cell.value:
                continue
            merged = spans.get((cell.row, cell.column))
            rows = range(cell.row, (merged.max_row if merged else cell.row) + 1)
            cols = range(cell.column, (merged.max_col if merged else cell.column) + 1)
            width = sum(widths[c] for c in cols)
            height = sum(ws.row_dimensions[r].height or 15 for r in rows)
            font = fonts[bool(cell.font.b)]
            size = float(cell.font.sz)
            if cell.alignment.wrap_text:
                lines = lines_needed(font, cell.value, width, size)
            else:
                lines = 1
            needed = lines * font.line * size
            if height < needed:
                problems.append((cell.coordinate, cell.value, height, round(needed, 1)))
    return problems


async def test_thirteen_registrations_print_on_one_page_per_sheet(
    engine: AsyncEngine, soffice: str, tmp_path: Path
) -> None:
    await store(engine, THIRTEEN)
    buffer = io.BytesIO()
    async with create_sessionmaker(engine)() as session:
        count = await write_registration_xlsx(
            session, AREA, ExportFilter(YEAR, channels=CHANNEL_LABELS), buffer,
            letterhead=LETTERHEAD, today=dt.date(YEAR, 12, 1),
        )  # fmt: skip
    assert count == 13
    xlsx = tmp_path / "dang-ky-ocop.xlsx"
    xlsx.write_bytes(buffer.getvalue())

    book = openpyxl.load_workbook(xlsx)
    official, details = book.worksheets
    for ws in (official, details):
        assert too_short(ws) == [], ws.title
        # Every cell we wrote is centred vertically, in one font.
        cells = [c for row in ws.iter_rows() for c in row if c.value is not None]
        assert {c.alignment.vertical for c in cells} == {"center"}, ws.title
        assert {c.font.name for c in cells} == {"Times New Roman"}, ws.title
        assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title

    pdf = to_pdf(soffice, xlsx)
    texts = [page.extract_text() for page in pdf.pages]
    assert len(texts) == 2, [text[:200] for text in texts]  # one page each, nothing spilled
    first, second = (" ".join(text.split()) for text in texts)
    for expected in ("ỦY BAN NHÂN DÂN PHƯỜNG SA HUỲNH", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                     "Độc lập - Tự do - Hạnh phúc", "Phụ lục", "Kèm theo Công văn số",
                     "Sa Huỳnh, ngày … tháng … năm 2026", "CHỦ TỊCH", "Đường phổi"):  # fmt: skip
        assert expected in first
    assert "Mạch nha gạo lứt" in second


async def test_the_official_table_reads_as_an_office_document(engine: AsyncEngine) -> None:
    """The header block, "Xã/phường/đặc khu", and the detail sheet in Vietnamese throughout."""
    await store(engine, THIRTEEN)
    buffer = io.BytesIO()
    async with create_sessionmaker(engine)() as session:
        await write_registration_xlsx(
            session, AREA, ExportFilter(YEAR, channels=CHANNEL_LABELS), buffer,
            letterhead=LETTERHEAD, today=dt.date(YEAR, 12, 1),
        )  # fmt: skip
    book = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))
    official, details = book.worksheets
    text: dict[str, Any] = {c.coordinate: c.value for row in official.iter_rows() for c in row}
    assert text["A1"] == "ỦY BAN NHÂN DÂN PHƯỜNG SA HUỲNH"
    assert text["E1"] == "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    assert text["E2"] == "Độc lập - Tự do - Hạnh phúc"
    assert text["A4"] == "Phụ lục"
    assert text["A5"] == f"Đăng ký sản phẩm thực hiện Chương trình OCOP năm {YEAR}"
    assert text["A6"] == "(Kèm theo Công văn số …/… ngày …)"
    assert text["B8"] == "Địa phương (Xã/phường/đặc khu)"
    values = [v for v in text.values() if isinstance(v, str)]
    assert "Sa Huỳnh, ngày … tháng … năm 2026" in values and "CHỦ TỊCH" in values
    assert not any("thị trấn" in v for v in values)
    header = [c.value for c in details[1]]
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in details.iter_rows(2, values_only=True)}
    channels = {row["Kênh đăng ký"] for row in rows.values()}
    assert channels == {"Telegram", "Zalo", "Zalo OA (tài khoản chính thức)"}
