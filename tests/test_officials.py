"""Officials and admins do their job from the chat: roles, invitations, review, refusals."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.audit import AuditEntry
from models.certificates import Certificate
from models.db import create_sessionmaker
from models.domain import RegistrationStatus
from models.registrations import RegistrationStatusChange
from models.users import User
from tests.flows import answer_new_product, stored_registrations
from tests.harness import ADMIN_ID, BotUnderTest, Producer


async def make_official(bot: BotUnderTest, user_id: int, *codes: str) -> Producer:
    official = Producer(bot, user_id=user_id, first_name="Cán bộ")
    await official.say("/start")
    admin = Producer(bot, user_id=ADMIN_ID, first_name="Admin")
    await admin.say(" ".join(["/official", "add", str(user_id), *codes]))
    assert "là cán bộ phụ trách" in admin.text
    return official


async def test_a_producers_export_is_refused_and_audited(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    producer = Producer(bot, user_id=5101)
    await producer.say("/export 2026")
    assert "chỉ dành cho cán bộ" in producer.text
    assert not any(message.get("document") for message in producer.replies)
    await producer.say("/official add 5101")
    assert "chỉ quản trị viên" in producer.text
    async with create_sessionmaker(engine)() as session:
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        user = await session.scalar(select(User).where(User.channel_user_id == "5101"))
    assert [(e.action, e.allowed, e.user_id) for e in entries] == [
        ("export", False, user.id if user else None),
        ("official", False, user.id if user else None),
    ]
    assert entries[0].detail == "export 2026"


async def test_an_invitation_link_makes_an_official_with_the_right_scope(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    admin = Producer(bot, user_id=ADMIN_ID)
    await admin.say("/invite 21478 21451")
    assert "Sa Huỳnh" in admin.text and "Trà Câu" in admin.text
    link = next(word for word in admin.text.split() if word.startswith("https://t.me/"))
    assert link.startswith("https://t.me/ocop_test_bot?start=")
    code = link.split("start=")[1]

    newcomer = Producer(bot, user_id=5201)
    await newcomer.say(f"/start {code}")  # what Telegram sends when the link is opened
    assert "cán bộ phụ trách OCOP" in newcomer.text
    async with create_sessionmaker(engine)() as session:
        user = await session.scalar(select(User).where(User.channel_user_id == "5201"))
    assert user is not None and user.role.value == "official"
    assert user.scope == ["21478", "21451"]

    someone_else = Producer(bot, user_id=5202)
    await someone_else.say(f"/start {code}")  # one time only
    assert "không còn hiệu lực" in someone_else.text
    await someone_else.say("/pending")
    assert "chỉ dành cho cán bộ" in someone_else.text


async def test_review_accept_return_resubmit_and_certify_tell_the_producer(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 5301, "21478")
    producer = Producer(bot, user_id=5302)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")

    await official.say("/pending")
    assert "OCOP-2026-0001" in official.text
    await official.tap("Trả lại")
    assert "Lý do là gì?" in official.text and "Trả lại để bổ sung" in official.text
    await official.say("Thiếu giấy phép kinh doanh")
    told = await producer.notified("cần bổ sung")
    assert "Thiếu giấy phép kinh doanh" in told

    # The producer completes it from the notification and submits it again.
    await producer.tap("Bổ sung và nộp lại")
    assert "Kiểm tra lại hồ sơ" in producer.text
    await producer.tap("✏️ Tên chủ thể")
    await producer.say("HTX Nước mắm Sa Huỳnh (có giấy phép)")
    await producer.tap("Gửi hồ sơ")
    assert "OCOP-2026-0001" in producer.text  # same code

    await official.say("/pending")
    await official.tap("Tiếp nhận")
    await producer.notified("chuyển sang đánh giá")
    await official.say("/pending")
    await official.tap("Công nhận")
    await official.tap("4 sao")
    await official.say("15/11/2026")
    await official.say("1234/QĐ-UBND")
    assert "1234/QĐ-UBND" in official.text
    await official.tap("Ghi nhận")
    told = await producer.notified("Chúc mừng")
    assert "15/11/2029" in told

    [registration] = await stored_registrations(engine)
    assert registration.status is RegistrationStatus.CERTIFIED
    assert registration.subject_name == "HTX Nước mắm Sa Huỳnh (có giấy phép)"
    async with create_sessionmaker(engine)() as session:
        [certificate] = list(await session.scalars(select(Certificate)))
        history = list(
            await session.scalars(
                select(RegistrationStatusChange.status).order_by(RegistrationStatusChange.id)
            )
        )
    assert (certificate.star, certificate.decision_number) == (4, "1234/QĐ-UBND")
    assert certificate.expiry_date.isoformat() == "2029-11-15"
    assert [s.value for s in history] == [
        "submitted",
        "returned",
        "submitted",
        "accepted",
        "certified",
    ]


async def test_an_official_cannot_review_outside_their_communes(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    official = await make_official(bot, 5401, "21439")
    producer = Producer(bot, user_id=5402)
    await answer_new_product(producer, commune="Sa Huỳnh")
    await producer.tap("Gửi hồ sơ")
    await official.say("/pending")
    assert "Không có hồ sơ nào" in official.text
    # A forged button for the Sa Huỳnh registration, pressed on the last message.
    await official.press(official.replies[-1]["message_id"], "rv:acc:1")
    assert "chỉ dành cho cán bộ" in official.text
    [registration] = await stored_registrations(engine)
    assert registration.status is RegistrationStatus.SUBMITTED
    async with create_sessionmaker(engine)() as session:
        refused = await session.scalar(select(AuditEntry).where(AuditEntry.allowed.is_(False)))
    assert refused is not None and "OCOP-2026-0001" in refused.detail
