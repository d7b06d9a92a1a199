"""The holes an audit found, each tried the way an attacker would, through the emulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import zipfile

import openpyxl
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.text import split_message
from bot.emulator.wire import html_visible_text
from bot.migrate import upgrade
from handlers.i18n import use_language
from handlers.reports.certificate_import import ImportFileError, parse_certificates
from handlers.reports.certificate_template import template_xlsx
from models.admin_units import Area
from models.audit import AuditEntry
from models.db import create_engine, create_sessionmaker
from models.domain import RegistrationStatus
from models.officials import Invite, hash_code
from models.registrations import Subject
from models.text import clean
from models.users import User
from tests.conftest import reset_schema
from tests.flows import answer_new_product, stored_registrations
from tests.harness import ADMIN_ID, BotUnderTest, Producer
from tests.test_officials import make_official
from tests.test_reminders import at, before_expiry, certified_producer

CRASHED = "chưa xử lý được"  # what the inbox worker answers when a handler raised
REFUSED = "chỉ dành cho cán bộ"


async def audit(engine: AsyncEngine) -> list[AuditEntry]:
    async with create_sessionmaker(engine)() as session:
        return list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


async def certificate_number(official: Producer) -> str:
    await official.say("/nhachan")
    return official.text.split("#")[1].split()[0]


# --- claim links ---------------------------------------------------------------------------


async def test_a_claim_link_is_refused_for_a_certificate_that_has_an_owner(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 12001, "21478")
    await certified_producer(bot, engine, 12002)  # linked to its producer already
    bot.clock.now = at(before_expiry(100))
    number = await certificate_number(official)

    await official.say(f"/lienket {number}")
    assert "đã được gắn với tài khoản của một chủ thể" in official.text
    assert "start" not in official.text
    refused = [e for e in await audit(engine) if e.action == "claimlink"]
    assert [(e.allowed, "already owned" in e.detail) for e in refused] == [(False, True)]


async def test_a_claim_link_cannot_take_over_a_certificate_linked_meanwhile(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 12011, "21478")
    await certified_producer(bot, engine, 12012, linked=False)
    bot.clock.now = at(before_expiry(100))
    await official.say(f"/lienket {await certificate_number(official)}")
    code = official.text.split("?start=")[1].split()[0]
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await session.scalar(select(User).where(User.channel_user_id == "12012"))
        subject = await session.scalar(select(Subject))
        assert user is not None and subject is not None
        subject.owner_user_id = user.id  # the producer shared their contact meanwhile

    stranger = Producer(bot, user_id=12013)
    await stranger.say(f"/start {code}")
    assert "không còn hiệu lực" in stranger.text
    assert "Nguyễn Văn A" not in stranger.text
    async with create_sessionmaker(engine)() as session:
        subject = await session.scalar(select(Subject))
    assert subject is not None and subject.owner_user_id == user.id
    # The re-evaluation form, filled from the file, is not the stranger's to open either.
    await stranger.press(stranger.replies[-1]["message_id"], "rr:1")
    assert "chưa gắn với tài khoản" in stranger.text and "Nguyễn Văn A" not in stranger.text
    redeemed = [e for e in await audit(engine) if e.action == "redeem"]
    assert [e.allowed for e in redeemed] == [False]


async def test_out_of_scope_claim_links_and_exports_are_audited_as_refused(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    await certified_producer(bot, engine, 12021, linked=False)  # Sa Huỳnh
    official = await make_official(bot, 12022, "21439")  # Đức Phổ only
    await official.say("/lienket 1")
    assert "start" not in official.text
    await official.say("/xuat 2026 21478")
    assert not official.documents()
    rows = {(e.action, e.allowed) for e in await audit(engine) if e.action != "official"}
    assert rows == {("claimlink", False), ("export", False)}


async def test_every_export_is_audited_with_its_scope_and_row_count(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 12025, "21478")
    producer = Producer(bot, user_id=12026)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    await official.say("/xuat 2026")
    await official.notified("Hồ sơ đăng ký năm 2026: 1")
    exports = [(e.allowed, e.detail) for e in await audit(engine) if e.action == "export"]
    assert exports == [(True, "export 2026"), (True, "2026 communes 21478: 1 rows")]


# --- review forms re-check who finishes them -------------------------------------------------


async def _official_with_open_return_form(bot: BotUnderTest, user_id: int) -> Producer:
    official = await make_official(bot, user_id, "21478")
    producer = Producer(bot, user_id=user_id + 1)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    await official.say("/pending")
    await official.tap("Trả lại")
    assert "Lý do là gì?" in official.text
    return official


async def test_an_official_removed_while_a_review_form_is_open_cannot_finish_it(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await _official_with_open_return_form(bot, 12031)
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/official remove 12031")
    assert "không còn là cán bộ" in admin.text

    await official.say("Thiếu giấy phép kinh doanh")
    [registration] = await stored_registrations(engine)
    assert registration.status is RegistrationStatus.SUBMITTED
    assert "Thiếu giấy phép" not in (registration.status_note or "")


async def test_a_review_form_finished_after_the_role_changed_elsewhere_is_refused(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await _official_with_open_return_form(bot, 12041)
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await session.scalar(select(User).where(User.channel_user_id == "12041"))
        assert user is not None
        user.scope = ["21439"]  # another process moved them to another commune

    await official.say("Thiếu giấy phép kinh doanh")
    assert REFUSED in official.text
    [registration] = await stored_registrations(engine)
    assert registration.status is RegistrationStatus.SUBMITTED
    refused = [(e.action, e.allowed) for e in await audit(engine) if not e.allowed]
    assert refused == [("review_note", False)]


async def test_review_decisions_and_invite_redemptions_are_audited(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/moi 21478")
    code = admin.text.split("?start=")[1].split()[0]
    official = Producer(bot, user_id=12051)
    await official.say(f"/start {code}")
    producer = Producer(bot, user_id=12052)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    await official.say("/pending")
    await official.tap("Tiếp nhận")
    rows = [(e.action, e.allowed, e.detail) for e in await audit(engine)]
    assert ("redeem", True, "official invite, scope 21478") in rows
    assert ("decision", True, "OCOP-2026-0001 accepted") in rows


# --- invite and claim codes are stored hashed -----------------------------------------------


async def test_invite_codes_are_stored_only_as_hashes(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/moi")
    code = admin.text.split("?start=")[1].split()[0]
    async with engine.connect() as connection:
        stored = [tuple(row) for row in await connection.execute(text("SELECT * FROM invites"))]
    assert stored and not any(code in str(value) for row in stored for value in row)
    assert stored[0][0] == hashlib.sha256(code.encode()).hexdigest()


@pytest.mark.both_databases
async def test_the_migration_hashes_the_codes_already_handed_out(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await reset_schema(engine)
        await asyncio.to_thread(upgrade, database_url, "0004")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (channel, channel_user_id, chat_id, display_name, "
                    "language, role, reachable, created_at) VALUES ('telegram', '1', '1', '', "
                    "'vi', 'admin', true, :now)"
                ),
                {"now": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)},
            )
            await connection.execute(
                text(
                    "INSERT INTO invites (code, role, created_by_user_id, created_at, expires_at)"
                    " VALUES ('plain-code-123', 'official', 1, :now, :now)"
                ),
                {"now": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)},
            )
        await asyncio.to_thread(upgrade, database_url)
        async with create_sessionmaker(engine)() as session:
            [invite] = list(await session.scalars(select(Invite)))
        assert invite.code_hash == hash_code("plain-code-123")
    finally:
        await engine.dispose()


# --- input that used to crash a handler ------------------------------------------------------


async def test_superscript_digits_at_a_choice_step_ask_again(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=12061)
    await producer.say("/dangky")
    await producer.tap("Sản phẩm mới")
    for typed in ("¹", "²", "9" * 30):
        await producer.say(typed)
        assert CRASHED not in producer.text
        assert "xã/phường nào" in producer.text  # the same question again


async def test_a_lone_slash_is_answered_with_the_menu(bot: BotUnderTest) -> None:
    producer = Producer(bot, user_id=12071)
    for typed in ("/", "/ ", "/@ocop_test_bot"):
        await producer.say(typed)
        assert CRASHED not in producer.text
        assert "Ông/Bà muốn làm gì" in producer.text or "Không có lệnh này" in producer.text
        assert producer.buttons()


@pytest.mark.parametrize(
    "data",
    [
        "rv:acc:²",
        f"rv:acc:{2**63}",
        "rv:acc:" + "9" * 40,
        "pe:¹",
        f"pe:{2**64}",
        f"rr:{2**63 + 5}",
        "rr:³",
        "¹:o:new",
        f"{2**70}:b",
    ],
)
async def test_forged_button_data_gets_an_answer_not_a_crash(
    bot: BotUnderTest, data: str
) -> None:
    official = await make_official(bot, 12081, "21478")
    await official.say("/dangky")
    await official.press(official.replies[-1]["message_id"], data)
    assert official.text and CRASHED not in official.text


# --- every text the bot sends parses as Telegram HTML -----------------------------------------


async def test_an_admins_help_and_a_wrong_claim_link_are_delivered(bot: BotUnderTest) -> None:
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/help")
    assert "<id hoặc @tên>" in html_visible_text(admin.text)
    await admin.say("/lienket")
    assert "/lienket <số giấy chứng nhận" in html_visible_text(admin.text)


def test_splitting_a_long_html_reply_never_cuts_an_entity_or_a_tag() -> None:
    text = "<b>Tiêu đề</b>\n" + "Hợp tác xã A &amp; B " * 400 + "\n<i>" + "x &lt; y " * 700 + "</i>"
    for limit in (4096, 2000, 97):
        chunks = split_message(text, limit)
        assert all(len(chunk) <= limit for chunk in chunks)
        visible = [html_visible_text(chunk) for chunk in chunks]  # raises on a broken chunk
        assert "".join(visible).replace("\n", "") == html_visible_text(text).replace("\n", "")


# --- import limits checked before reading ----------------------------------------------------

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])


def _refusal(content: bytes, name: str) -> str:
    use_language("vi")
    with pytest.raises(ImportFileError) as refused:
        parse_certificates(content, name, AREA, dt.date(2026, 1, 1))
    return refused.value.message


def test_an_xlsx_that_unpacks_to_far_more_than_it_weighs_is_refused() -> None:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(template_xlsx(area=AREA))) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content.replace(b"<sheetData>", b"<sheetData>" + b" " * 200_000_000)
            bomb.writestr(item.filename, content)
    assert len(buffer.getvalue()) < 2_000_000
    assert "khi giải nén lên tới" in _refusal(buffer.getvalue(), "bom.xlsx")


def test_a_sheet_reaching_column_xfd_is_refused_before_reading() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["A1"], sheet["XFD1"] = "Tên sản phẩm", "x"
    buffer = io.BytesIO()
    book.save(buffer)
    assert "16384 cột" in _refusal(buffer.getvalue(), "rong.xlsx")


def test_a_csv_with_a_huge_field_is_refused_with_its_row() -> None:
    content = "Tên sản phẩm;Hạng sao\nMắm;4\n" + "x" * 200_000 + ";3\n"
    assert "dòng 3" in _refusal(content.encode(), "list.csv")


# --- invisible characters ---------------------------------------------------------------------


def test_clean_drops_control_format_and_private_use_characters() -> None:
    assert clean("Nguy\u202eễn\x1b Văn\x01 A\ue000\u200b") == "Nguyễn Văn A"
    assert clean("dòng 1\ndòng\t2", multiline=True) == "dòng 1\ndòng 2"
    assert clean("dòng 1\ndòng 2") == "dòng 1 dòng 2"


async def test_a_name_with_an_rtl_override_is_stored_without_it(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=12091)
    await answer_new_product(producer, owner="Nguyễn \u202eVăn\x1b A\ue000")
    await producer.tap("Gửi hồ sơ")
    [registration] = await stored_registrations(engine)
    assert registration.owner_name == "Nguyễn Văn A"
