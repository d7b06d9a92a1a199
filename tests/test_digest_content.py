"""What a digest says: stale submissions, expiring certificates, and long lists as a file."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import openpyxl
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.i18n import use_language
from handlers.reports.digest import build_digest, render_digest
from models.admin_units import Area
from models.db import create_sessionmaker
from models.domain import RegistrationStatus, Role
from tests import factories

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 12, 1, 0, 31, tzinfo=dt.UTC)  # 07:31 in Vietnam


async def test_stale_submissions_and_expiring_certificates_are_listed(engine: AsyncEngine) -> None:
    use_language("vi")
    async with create_sessionmaker(engine)() as session, session.begin():
        official = await factories.user(session, Role.OFFICIAL, scope=["21478"])
        producer = await factories.user(session)
        htx = await factories.subject(session, "HTX Sa Huỳnh")
        sauce = await factories.product(session, htx, "Nước mắm", "21478")
        paste = await factories.product(session, htx, "Mắm ruốc", "21478")
        garlic = await factories.product(session, htx, "Tỏi", "21451")  # not their commune
        factories.registration(session, producer, sauce, htx, at=NOW - dt.timedelta(days=10))
        factories.registration(
            session,
            producer,
            paste,
            htx,
            at=NOW - dt.timedelta(days=10),
            status=RegistrationStatus.ACCEPTED,
        )
        factories.certificate(session, sauce, 4, dt.date(2024, 1, 15))  # expires 15/01/2027
        factories.certificate(session, paste, 3, dt.date(2024, 8, 1))  # expires after 90 days
        factories.certificate(session, garlic, 3, dt.date(2024, 1, 10))
        await session.flush()
        digest = await build_digest(session, AREA, official, NOW - dt.timedelta(days=1), NOW, HCM)
    [message] = render_digest(digest)
    assert "Chờ xử lý quá 7 ngày (1)" in message.text
    assert "Nước mắm" in message.text.split("Chờ xử lý quá 7 ngày")[1]
    expiring = message.text.split("hết hạn trong 90 ngày tới")[1]
    assert "Nước mắm" in expiring and "15/01/2027" in expiring
    assert "Mắm ruốc" not in expiring and "Tỏi" not in expiring
    assert "Hồ sơ mới (0)" in message.text


async def test_a_long_digest_is_cut_and_the_lists_attached(engine: AsyncEngine) -> None:
    use_language("vi")
    async with create_sessionmaker(engine)() as session, session.begin():
        official = await factories.user(session, Role.OFFICIAL)
        producer = await factories.user(session)
        htx = await factories.subject(session, "HTX")
        for number in range(45):
            item = await factories.product(session, htx, f"Sản phẩm {number:02d}", "21439")
            factories.registration(session, producer, item, htx, at=NOW - dt.timedelta(hours=2))
        await session.flush()
        digest = await build_digest(session, AREA, official, NOW - dt.timedelta(days=1), NOW, HCM)
    message, attachment = render_digest(digest)
    assert "Hồ sơ mới (45)" in message.text
    assert "… và 35 mục khác trong tệp đính kèm." in message.text
    assert len(message.text) < 4096
    assert attachment.document is not None
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.document.content)).worksheets[0]
    assert sheet.max_row == 46  # header + every new registration


async def test_producers_who_blocked_the_bot_are_named_in_the_next_digest(
    engine: AsyncEngine,
) -> None:
    use_language("vi")
    async with create_sessionmaker(engine)() as session, session.begin():
        official = await factories.user(session, Role.OFFICIAL, scope=["21478"])
        blocked = await factories.user(session)
        blocked.display_name, blocked.phone = "Bà Tư", "+84905000111"
        blocked.reachable, blocked.unreachable_since = False, NOW - dt.timedelta(hours=3)
        elsewhere = await factories.user(session)
        elsewhere.reachable, elsewhere.unreachable_since = False, NOW - dt.timedelta(hours=3)
        htx = await factories.subject(session, "HTX")
        here = await factories.product(session, htx, "Nước mắm", "21478")
        there = await factories.product(session, htx, "Tỏi", "21451")
        factories.registration(session, blocked, here, htx, at=NOW - dt.timedelta(days=30))
        factories.registration(session, elsewhere, there, htx, at=NOW - dt.timedelta(days=30))
        await session.flush()
        digest = await build_digest(session, AREA, official, NOW - dt.timedelta(days=1), NOW, HCM)
    [message] = render_digest(digest)
    assert "đã chặn bot, cần gọi điện (1)" in message.text
    assert "Bà Tư · 0905 000 111" in message.text
