"""The dossier end to end: a producer sends photos and files for the checklist's items from the
phone, an official sees how complete it is, asks for what is missing and downloads it as a ZIP;
files that cannot be taken are refused with a reason and leave nothing behind."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import docx
import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator import TelegramEmulator
from bot.settings import Settings
from models.db import create_sessionmaker
from models.dossier import DossierFile
from models.storage import LocalStorage
from tests.flows import answer_new_product
from tests.harness import BotUnderTest, Producer
from tests.test_officials import make_official

JSON = dict[str, object]
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def office_file(kind: str) -> bytes:
    """A real DOCX or XLSX, as a phone would send one."""
    buffer = io.BytesIO()
    if kind == "docx":
        document = docx.Document()
        document.add_paragraph("Phiếu kết quả kiểm nghiệm")
        document.save(buffer)
    else:
        workbook = openpyxl.Workbook()
        workbook.active.append(["Chỉ tiêu", "Kết quả"])  # type: ignore[union-attr]
        workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "dossier"


@pytest.fixture
async def bot(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator, store: Path
) -> AsyncIterator[BotUnderTest]:
    running = BotUnderTest(settings, engine, emulator)
    running.services = replace(running.services, storage=LocalStorage(store))
    await running.start()
    yield running
    await running.stop()


async def said_after(person: Producer, text: str, after: int) -> JSON:
    """The first message to `person` containing `text`, among those after the first `after`
    (a long task's answer comes after the event's own reply)."""
    emulator = person.emulator
    async with asyncio.timeout(30):
        while True:
            messages: list[JSON] = emulator.messages_to(person.user_id)
            for message in messages[after:]:
                if text in str(message.get("text") or message.get("caption") or ""):
                    return message
            await emulator.wait_for_messages(person.user_id, len(messages) + 1, timeout=30)


async def tasks_done(bot: BotUnderTest, condition: Callable[[], bool]) -> None:
    """Wait, as each long task ends, until `condition` holds (the store is updated by one)."""
    runner = bot.runtime.tasks
    async with asyncio.timeout(30), runner.finished:
        await runner.finished.wait_for(condition)


def so_far(person: Producer) -> int:
    return len(person.emulator.messages_to(person.user_id))


async def saved(person: Producer, after: int) -> str:
    return str((await said_after(person, "Đã lưu", after)).get("text"))


async def stored_rows(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(DossierFile.item, DossierFile.file_name).order_by(DossierFile.id)
        )
        return [(item, name) for item, name in rows]


def files_in(store: Path) -> list[Path]:
    return [path for path in store.rglob("*") if path.is_file()] if store.exists() else []


async def registered(bot: BotUnderTest, user_id: int) -> Producer:
    producer = Producer(bot, user_id=user_id)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    assert "OCOP-2026-0001" in producer.text
    return producer


async def sending_for(bot: BotUnderTest, user_id: int, item: str) -> Producer:
    """A producer who registered and chose the checklist's `item`: their next files go there."""
    producer = await registered(bot, user_id)
    await producer.tap("Gửi giấy tờ hồ sơ")
    await producer.tap(item)
    return producer


@pytest.mark.both_databases
async def test_producer_sends_papers_official_asks_for_more_and_downloads_the_zip(
    bot: BotUnderTest, engine: AsyncEngine, store: Path
) -> None:
    producer = await registered(bot, 7101)
    await producer.tap("Gửi giấy tờ hồ sơ")  # the receipt's button
    assert "đã có 0/8 giấy tờ bắt buộc" in producer.text

    # A photo for the item chosen with a button.
    await producer.tap("Hình ảnh sản phẩm")
    assert "Mời gửi ảnh chụp hoặc tệp cho mục «Hình ảnh sản phẩm»" in producer.text
    before = so_far(producer)
    await producer.send_photo(JPEG + b"san pham")
    assert "✅ Hình ảnh sản phẩm" in await saved(producer, before)

    # A photo whose caption names its item, though another item was chosen.
    before = so_far(producer)
    await producer.send_photo(JPEG + b"nhan", caption="Nhãn bao bì")
    text = await saved(producer, before)
    assert "«Nhãn và bao bì sản phẩm»" in text and "đã có 2/8" in text

    # With no item chosen and no caption, the bot asks which item the photo is.
    await producer.tap("Xong")
    await producer.send_photo(JPEG + b"giay phep")
    assert "Tệp này là giấy tờ nào của hồ sơ OCOP-2026-0001?" in producer.text
    before = so_far(producer)
    await producer.tap("Giấy chứng nhận đăng ký kinh doanh")
    assert "đã có 3/8" in await saved(producer, before)

    before = so_far(producer)
    await producer.send_document("phieu.pdf", PDF, caption="phieu dang ky")
    text = await saved(producer, before)
    assert "đã có 4/8" in text and "✅ Phiếu đăng ký sản phẩm OCOP" in text
    assert "⬜ Phiếu kết quả kiểm nghiệm sản phẩm" in text

    official = await make_official(bot, 7102, "21478")
    await official.say("/pending")
    assert "📎 Hồ sơ 4/8 · còn thiếu: Phương án / kế hoạch sản xuất kinh doanh" in official.text
    before = so_far(official)
    await official.say("/bantin")
    await said_after(official, "📎 Hồ sơ còn thiếu giấy tờ bắt buộc: 1. Xem /thieuhoso.", before)
    await official.say("/thieuhoso")
    assert "<b>OCOP-2026-0001</b> · Nước mắm cá cơm · Sa Huỳnh" in official.text
    assert "📎 Hồ sơ 4/8 · còn thiếu: Phương án" in official.text
    await official.tap("Yêu cầu bổ sung giấy tờ")
    assert "↩️ Trả lại, yêu cầu 4 giấy tờ" in official.buttons()
    # Of the four missing papers, ask for two.
    await official.tap("☑️ Phương án")
    await official.tap("☑️ Hồ sơ tự công bố")
    await official.tap("Trả lại, yêu cầu 2 giấy tờ")
    assert "Lý do là gì?" in official.text
    await official.say("Cần giấy an toàn thực phẩm và phiếu kiểm nghiệm")
    told = await producer.notified("Giấy tờ cần gửi:")
    assert "• Giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm" in told
    assert "• Phiếu kết quả kiểm nghiệm sản phẩm" in told
    assert "Phương án" not in told

    # One tap on the return message for each paper, then the file.
    await producer.tap("📎 Gửi: Giấy chứng nhận cơ sở")
    before = so_far(producer)
    await producer.send_document("attp.pdf", PDF + b"attp")
    assert "đã có 5/8" in await saved(producer, before)
    await producer.tap("📎 Gửi: Phiếu kết quả kiểm nghiệm")
    before = so_far(producer)
    await producer.send_document("kiem-nghiem.docx", office_file("docx"))
    assert "đã có 6/8" in await saved(producer, before)

    await producer.tap("Bổ sung và nộp lại")
    await producer.tap("Gửi hồ sơ")
    await official.say("/pending")
    assert "📎 Hồ sơ 6/8 · còn thiếu: Phương án" in official.text

    before = so_far(official)
    await official.tap("Tải hồ sơ (ZIP)")
    message = await said_after(official, "Hồ sơ OCOP-2026-0001: 6 tệp", before)
    document = message["document"]
    assert isinstance(document, dict) and document["file_name"] == "ho-so-OCOP-2026-0001.zip"
    with zipfile.ZipFile(io.BytesIO(bytes(document["content"]))) as archive:
        names = sorted(archive.namelist())
        assert archive.read(next(n for n in names if n.startswith("08-anh/"))) == (
            JPEG + b"san pham"
        )
    assert len(names) == 6
    assert [name.split("/")[0] for name in names] == [
        "01-phieu",
        "03-dkkd",
        "04-attp",
        "06-kiemnghiem",
        "07-nhan",
        "08-anh",
    ]
    assert len(files_in(store)) == 6

    # The export's detail sheet says how complete each dossier is.
    before = so_far(official)
    await official.say("/export 2026")
    message = await said_after(official, "Hồ sơ đăng ký năm 2026: 1", before)
    assert isinstance(message["document"], dict)
    book = openpyxl.load_workbook(io.BytesIO(bytes(message["document"]["content"])))
    header, row = list(book["Chi tiết"].iter_rows(values_only=True))[:2]
    assert row[header.index("Hồ sơ (giấy tờ bắt buộc)")] == "6/8"


@pytest.mark.parametrize(
    ("name", "content", "explanation"),
    [
        ("ban-quet.pdf", PDF + b"\0" * (25 * 1024 * 1024), "lớn hơn 20 MB"),
        ("ho-so.pdf", b"MZ\x90\x00\x03" + b"\0" * 500, "chỉ nhận ảnh chụp và bản quét"),
        ("trong.pdf", b"", "Tệp này trống (0 byte)"),
    ],
    ids=["25 MB", "executable named .pdf", "empty"],
)
async def test_a_file_that_cannot_be_taken_is_refused_and_nothing_is_stored(
    bot: BotUnderTest,
    engine: AsyncEngine,
    store: Path,
    name: str,
    content: bytes,
    explanation: str,
) -> None:
    producer = await registered(bot, 7201)
    await producer.tap("Gửi giấy tờ hồ sơ")
    await producer.tap("Phiếu đăng ký sản phẩm OCOP")
    before = so_far(producer)
    await producer.send_document(name, content)
    refusal = await said_after(producer, explanation, before)
    assert "Đã lưu" not in str(refusal.get("text"))
    await bot.drain()
    assert await stored_rows(engine) == []
    assert files_in(store) == []


async def test_the_same_file_twice_is_stored_once_and_a_wrong_one_can_be_removed(
    bot: BotUnderTest, engine: AsyncEngine, store: Path
) -> None:
    producer = await registered(bot, 7301)
    await producer.tap("Gửi giấy tờ hồ sơ")
    await producer.tap("Hình ảnh sản phẩm")
    before = so_far(producer)
    await producer.send_photo(JPEG + b"cung mot anh")
    await saved(producer, before)
    before = so_far(producer)
    await producer.send_photo(JPEG + b"cung mot anh")
    await said_after(producer, "đã có trong mục «Hình ảnh sản phẩm» nên không lưu lại", before)
    before = so_far(producer)
    await producer.send_document("nhan.png", b"\x89PNG\r\n\x1a\n" + b"x", caption="nhan")
    await saved(producer, before)
    assert [item for item, _name in await stored_rows(engine)] == ["anh", "nhan"]
    assert len(files_in(store)) == 2

    await producer.tap("Xoá một tệp")
    await producer.tap("Nhãn và bao bì sản phẩm: nhan.png")
    assert "Đã xoá nhan.png" in producer.text and "đã có 1/8" in producer.text
    await bot.drain()
    assert [item for item, _name in await stored_rows(engine)] == ["anh"]
    await tasks_done(bot, lambda: len(files_in(store)) == 1)  # a long task after the event


async def test_erasing_personal_data_removes_the_dossier_files(
    bot: BotUnderTest, engine: AsyncEngine, store: Path
) -> None:
    producer = await registered(bot, 7401)
    await producer.tap("Gửi giấy tờ hồ sơ")
    await producer.tap("Giấy chứng nhận đăng ký kinh doanh")
    before = so_far(producer)
    await producer.send_photo(JPEG + b"giay phep co ten va dia chi")
    await saved(producer, before)
    assert len(files_in(store)) == 1
    await producer.say("/xoadulieu")
    await producer.tap("Có, xoá thông tin của tôi")
    assert await stored_rows(engine) == []
    await tasks_done(bot, lambda: not files_in(store))
    async with create_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(DossierFile)) == 0


async def test_the_producer_gets_the_registration_form_filled_in(bot: BotUnderTest) -> None:
    producer = await registered(bot, 7501)
    await producer.tap("Gửi giấy tờ hồ sơ")
    before = so_far(producer)
    await producer.tap("Phiếu đăng ký để ký")
    message = await said_after(producer, "Xin in ra, ký tên", before)
    document = message["document"]
    assert isinstance(document, dict)
    assert document["file_name"] == "phieu-dang-ky-OCOP-2026-0001.docx"
    opened = docx.Document(io.BytesIO(bytes(document["content"])))
    text = "\n".join(
        [p.text for p in opened.paragraphs]
        + [cell.text for table in opened.tables for row in table.rows for cell in row.cells]
    )
    for value in (
        "OCOP-2026-0001",
        "Nước mắm cá cơm",
        "Nguyễn Văn A",
        "HTX Nước mắm Sa Huỳnh",
        "Hợp tác xã",
        "Thôn Thạnh Đức, phường Sa Huỳnh",
        "0905 123 456",
    ):
        assert value in text
    assert "{{" not in text


async def test_the_bot_api_serves_no_file_over_20_mb(emulator: TelegramEmulator) -> None:
    """The emulator's getFile refuses as the Bot API does, and the adapter says why."""
    from telegram import Bot

    from bot.channels.telegram import _download
    from handlers.events import FileTooLarge

    update = emulator.send_document(7601, "lon.pdf", PDF + b"\0" * (20 * 1024 * 1024))
    file_id = str(update["message"]["document"]["file_id"])
    async with Bot(emulator.token, base_url=emulator.api_url) as client:
        with pytest.raises(FileTooLarge):
            await _download(client, file_id)


async def test_the_commune_gets_its_cover_letter_listing_the_accepted_registrations(
    bot: BotUnderTest,
) -> None:
    producer = await registered(bot, 7701)
    await producer.tap("Gửi giấy tờ hồ sơ")
    await producer.tap("Hình ảnh sản phẩm")
    before = so_far(producer)
    await producer.send_photo(JPEG + b"cong van")
    await saved(producer, before)
    official = await make_official(bot, 7702, "21478")
    await official.say("/congvan")
    assert (
        "Chưa có hồ sơ đăng ký năm 2026 nào được tiếp nhận"
        in (await said_after(official, "Chưa có hồ sơ", 0))["text"]
    )
    await official.say("/pending")
    await official.tap("Tiếp nhận")
    before = so_far(official)
    await official.say("/congvan 2026")
    message = await said_after(official, "Công văn đề nghị của Sa Huỳnh năm 2026: 1", before)
    document = message["document"]
    assert isinstance(document, dict)
    assert document["file_name"] == "cong-van-ocop-2026-21478.docx"
    opened = docx.Document(io.BytesIO(bytes(document["content"])))
    [_header, _titles, row] = [
        [cell.text for cell in table_row.cells]
        for table in opened.tables
        for table_row in table.rows
    ]
    assert row[:2] == ["1", "Nước mắm cá cơm"]
    assert row[5] == "1/8 (OCOP-2026-0001)"
    text = "\n".join(p.text for p in opened.paragraphs)
    assert "Ủy ban nhân dân Phường Sa Huỳnh" in text and "1 sản phẩm" in text


async def test_a_dossier_is_never_served_outside_the_officials_communes(
    bot: BotUnderTest,
) -> None:
    producer = await registered(bot, 7801)
    await producer.tap("Gửi giấy tờ hồ sơ")
    await producer.tap("Hình ảnh sản phẩm")
    before = so_far(producer)
    await producer.send_photo(JPEG + b"rieng tu")
    await saved(producer, before)
    elsewhere = await make_official(bot, 7802, "21439")  # Đức Phổ, not Sa Huỳnh
    someone = Producer(bot, 7803)
    await someone.say("/start")
    for person in (producer, elsewhere, someone):
        last = person.emulator.messages_to(person.user_id)[-1]
        before = so_far(person)
        await person.press(int(last["message_id"]), "dzo:z:1")
        assert "chỉ dành cho cán bộ" in person.text
        await bot.drain()
        sent = person.emulator.messages_to(person.user_id)[before:]
        assert not any(message.get("document") for message in sent)
