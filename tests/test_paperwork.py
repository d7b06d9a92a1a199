"""Officials' files through the chat: the export, statistics, and the admins' import.

The command answers at once; the file or the result follows as a notice once its long task has
run (bot/tasks.py)."""

from __future__ import annotations

import asyncio
import csv
import io

import openpyxl
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.audit import AuditEntry
from models.certificates import Certificate
from models.db import create_sessionmaker
from tests.flows import answer_new_product
from tests.harness import ADMIN_ID, BotUnderTest, Producer
from tests.test_officials import make_official

JSON = dict[str, object]


async def sent_file(person: Producer, caption: str, after: int) -> tuple[str, bytes]:
    """The next file captioned `caption` sent to `person` after their first `after` messages."""
    emulator = person.emulator
    async with asyncio.timeout(30):
        while True:
            messages: list[JSON] = emulator.messages_to(person.user_id)
            for message in messages[after:]:
                document = message.get("document")
                if isinstance(document, dict) and caption in str(message.get("caption") or ""):
                    return str(document["file_name"]), bytes(document["content"])
            await emulator.wait_for_messages(person.user_id, len(messages) + 1, timeout=30)


def sent_so_far(person: Producer) -> int:
    return len(person.emulator.messages_to(person.user_id))


async def _register(bot: BotUnderTest, user_id: int, commune: str, product: str) -> None:
    producer = Producer(bot, user_id=user_id)
    await answer_new_product(producer, commune=commune, product=product)
    await producer.tap("Gửi hồ sơ")


async def test_an_official_exports_the_table_of_their_communes(bot: BotUnderTest) -> None:
    official = await make_official(bot, 7001, "21478")
    await _register(bot, 7101, "Sa Huỳnh", '=HYPERLINK("x")')
    await _register(bot, 7102, "Trà Câu", "Tỏi Trà Câu")

    before = sent_so_far(official)
    await official.say("/xuat 2026")
    assert "Đang lập bảng" in official.text  # at once, before the file
    name, content = await sent_file(official, "Hồ sơ đăng ký năm 2026: 1.", before)
    assert name == "dang-ky-ocop-2026.xlsx"
    table = openpyxl.load_workbook(io.BytesIO(content)).worksheets[0]
    cells = [str(cell) for row in table.iter_rows(values_only=True) for cell in row if cell]
    assert "Đăng ký sản phẩm thực hiện Chương trình OCOP năm 2026" in cells
    assert '=HYPERLINK("x")' in cells  # stored as text, not a formula
    assert "Tỏi Trà Câu" not in cells  # outside the official's commune

    await official.say("/export 2026 21451")  # a commune outside their scope
    assert "Cách dùng" in official.text and not official.documents()

    before = sent_so_far(official)
    await official.say("/export csv")
    name, content = await sent_file(official, "Hồ sơ đăng ký năm 2026: 1.", before)
    assert name.endswith(".csv") and content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert len(rows) == 2 and rows[1][rows[0].index("Mã hồ sơ")] == "OCOP-2026-0001"
    assert "'=HYPERLINK" in content.decode("utf-8-sig")


async def test_an_empty_year_is_said_rather_than_sent_as_an_empty_file(bot: BotUnderTest) -> None:
    official = await make_official(bot, 7011, "21478")
    await _register(bot, 7111, "Sa Huỳnh", "Nước mắm")  # of 2026, not 2025
    before = sent_so_far(official)
    await official.say("/xuat 2025")
    answer = await official.notified("Chưa có hồ sơ đăng ký nào của năm 2025")
    assert "chưa có bảng để gửi" in answer
    await bot.drain()
    later = official.emulator.messages_to(official.user_id)[before:]
    assert not [message for message in later if message.get("document")]


async def test_statistics_come_as_a_message_and_a_sheet(bot: BotUnderTest) -> None:
    official = await make_official(bot, 7201)
    await _register(bot, 7202, "Sa Huỳnh", "Nước mắm")
    before = sent_so_far(official)
    await official.say("/thongke")
    assert "Đang tổng hợp số liệu" in official.text
    figures = await official.notified("Số liệu OCOP đến ngày 29/11/2026")
    assert "Hồ sơ đăng ký năm 2026: <b>1</b>" in figures
    name, _content = await sent_file(official, "Số liệu trên dưới dạng tệp XLSX", before)
    assert name == "so-lieu-ocop-2026.xlsx"


async def test_an_admin_imports_certificates_from_the_template(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/maunhap")
    [(name, template)] = admin.documents()
    assert name.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(template))
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    row = {
        "Tên sản phẩm": "Nước mắm Phổ Thạnh",
        "Người đại diện": "Trần Văn Bé",
        "Tên chủ thể": "HTX Phổ Thạnh",
        "Loại hình chủ thể": "Hợp tác xã",
        "Xã/phường": "Phổ Thạnh",
        "Địa chỉ": "Thôn Thạch Bi",
        "Số điện thoại": "0905 222 333",
        "Hạng sao": 3,
        "Ngày cấp": "20/12/2023",
        "Số quyết định": "999/QĐ-UBND",
    }
    for column, title in enumerate(header, start=1):
        if title in row:
            sheet.cell(row=2, column=column, value=row[title])
    buffer = io.BytesIO()
    book.save(buffer)
    await admin.send_document("chung-nhan.xlsx", buffer.getvalue())
    assert "Đang đọc tệp chung-nhan.xlsx" in admin.text
    await admin.notified("Đã nhập 1 giấy chứng nhận")
    async with create_sessionmaker(engine)() as session:
        [certificate] = list(await session.scalars(select(Certificate)))
    assert certificate.expiry_date.isoformat() == "2026-12-20"


async def test_a_producer_sending_a_file_is_told_kindly_not_audited(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=7301)
    await producer.send_document("anh.pdf", b"%PDF-1.4")
    # Files are the dossier's now (tests/test_dossier.py): first a registration to put it in.
    assert "Xin đăng ký sản phẩm trước" in producer.text
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
