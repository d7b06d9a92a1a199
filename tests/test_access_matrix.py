"""Every command and every button prefix, for a stranger, a producer, an official in scope, an
official out of scope and an admin, on Telegram and Zalo: refused where it must be, with an
audit row, and never any of another person's data in the answer.

Run end to end: the real Telegram Application against the Telegram emulator, and the real Zalo
Bot channel against the Zalo emulator, one running bot per channel and one chat per persona.
Buttons are forged: on Telegram any callback data pressed under the bot's last message, on Zalo
the chat's numbered menu holding the button (as one left over from an earlier answer would) and
the person typing its number. After each cell the people, the registration and the chats are put
back as they were, and what an allowed cell set off (a long task, a notification) has landed,
so every cell starts from the same state. SQLite only: the checks do not depend on the database,
and PostgreSQL would make the run about three times longer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime import Runtime
from handlers.router import build_routes
from models.audit import AuditEntry
from models.certificates import Certificate
from models.conversations import Conversation
from models.db import create_sessionmaker
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    Role,
    SubjectType,
    Target,
)
from models.menus import MenuEntry, remember_menu
from models.registrations import Product, Registration, Subject
from models.tasks import LongTaskRow, TaskStatus
from models.users import User
from tests.harness import BotUnderTest, Producer
from tests.zalo_harness import ZaloBotUnderTest, ZaloUser, zalo_bot, zalo_emulator

__all__ = ["zalo_bot", "zalo_emulator"]  # fixtures

NOW = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)
ROUTES = build_routes()
# The producer's personal details: none may appear in a refusal to anyone else; these and the
# product's name in no answer at all to someone whose scope does not cover the producer.
NAME, ADDRESS, PHONE, PRODUCT = "Nguyễn Văn Sáu", "Xóm Bến Đá", "+84905999888", "Mắm rươi"
LATITUDE, LONGITUDE = 14.8712, 108.9633
PERSONAL = (NAME, ADDRESS, PHONE, "905999888", "0905 999 888", str(LATITUDE), str(LONGITUDE))
PERSONAS = ("stranger", "producer", "official_in", "official_out", "admin")
ROLES: dict[str, tuple[Role, list[str] | None]] = {
    "stranger": (Role.PRODUCER, None),  # consent_version None: never agreed to anything
    "producer": (Role.PRODUCER, None),
    "official_in": (Role.OFFICIAL, ["21478"]),  # the producer's commune
    "official_out": (Role.OFFICIAL, ["21439"]),
    "admin": (Role.ADMIN, None),
}
RANK = {"stranger": 0, "producer": 0, "official_in": 1, "official_out": 1, "admin": 2}


@dataclass(frozen=True)
class Case:
    route: str  # the route's name, as the audit log records it
    button: bool
    data: str  # the command's name or the button's data
    args: tuple[str, ...] = ()
    # Refused for an official whose communes do not include the producer's (the data's scope).
    scoped: bool = False
    # The producer's own record: refused for anyone else (a forged id).
    owned: bool = False


def cases(registration: int, certificate: int) -> list[Case]:
    """One case per route the router knows, so a route added later is tried too (with no
    arguments unless it is listed here)."""
    special = {
        "official": Case("official", False, "official", ("add", "424242")),
        "export": Case("export", False, "export", ("2026", "21478"), scoped=True),
        "claimlink": Case("claimlink", False, "claimlink", (str(certificate),), scoped=True),
        "rv": Case("rv", True, f"rv:acc:{registration}", scoped=True),
        "rvs": Case("rvs", True, f"rvs:{registration}", scoped=True),
        "rf": Case("rf", True, f"rf:{registration}", scoped=True),
        "notices": Case("notices", False, "notices", ("off",)),
        "m": Case("m", True, "m:status"),
        "lang": Case("lang", True, "lang:vi"),
        "pe": Case("pe", True, f"pe:{registration}", owned=True),
        "rr": Case("rr", True, f"rr:{certificate}", owned=True),
        "cs": Case("cs", True, "cs:n"),
        "dd": Case("dd", True, "dd:no"),  # "yes" would erase the producer: one-way
    }
    commands = sorted({route.name for route in ROUTES.commands.values()})
    found = [special.get(name) or Case(name, False, name) for name in commands]
    found += [special.get(p) or Case(p, True, p) for p in sorted(ROUTES.buttons)]
    return found


def route_of(case: Case) -> Role:
    if case.button:
        return ROUTES.buttons[case.route].role
    return ROUTES.commands[case.route].role


def refused_for(case: Case, persona: str) -> bool:
    needed = {Role.PRODUCER: 0, Role.OFFICIAL: 1, Role.ADMIN: 2}[route_of(case)]
    if RANK[persona] < needed or case.route == "claimlink":  # the certificate has an owner
        return True
    if case.owned:
        return persona != "producer"
    return case.scoped and persona == "official_out"


@dataclass
class World:
    ids: dict[str, str]  # persona -> channel user id (= chat id)
    users: dict[str, int]  # persona -> users.id
    registration: int
    certificate: int
    subject: int


async def _world(engine: AsyncEngine, channel: str, ids: dict[str, str]) -> World:
    async with create_sessionmaker(engine)() as session, session.begin():
        users = {}
        for persona, (role, scope) in ROLES.items():
            users[persona] = User(
                channel=channel, channel_user_id=ids[persona], chat_id=ids[persona],
                display_name="", language="vi", role=role, scope=scope,
                consent_version=None if persona == "stranger" else 1,
            )
        session.add_all(users.values())
        await session.flush()
        subject = Subject(
            owner_user_id=users["producer"].id, name=NAME, subject_type=SubjectType.HOUSEHOLD,
            representative=NAME, address=ADDRESS, phone=PHONE,
        )
        session.add(subject)
        await session.flush()
        product = Product(subject_id=subject.id, name=PRODUCT, commune_code="21478",
                          product_group=ProductGroup.FOOD)
        session.add(product)
        await session.flush()
        certificate = Certificate(product_id=product.id, star=3, issue_date=dt.date(2024, 1, 15),
                                  expiry_date=dt.date(2027, 1, 15))
        registration = Registration(
            code="OCOP-2026-0001", kind=RegistrationKind.NEW, target=Target.STAR3,
            programme_year=2026, commune_code="21478", product_id=product.id,
            subject_id=subject.id, product_name=PRODUCT, product_group=ProductGroup.FOOD,
            owner_name=NAME, subject_name=NAME, subject_type=SubjectType.HOUSEHOLD,
            address=ADDRESS, phone=PHONE, ecommerce=False, latitude=LATITUDE, longitude=LONGITUDE,
            submitted_by_user_id=users["producer"].id, channel=channel, submitted_at=NOW,
            status_changed_at=NOW, status=RegistrationStatus.SUBMITTED,
        )
        session.add_all([certificate, registration])
        await session.flush()
        return World(
            ids, {p: u.id for p, u in users.items()}, registration.id, certificate.id, subject.id
        )


async def _put_back(engine: AsyncEngine, channel: str, world: World) -> None:
    """Undo what an allowed cell changed: roles, consent, the form in progress, the decision."""
    async with create_sessionmaker(engine)() as session, session.begin():
        for persona, (role, scope) in ROLES.items():
            await session.execute(
                update(User)
                .where(User.id == world.users[persona])
                .values(role=role, scope=scope, language="vi",
                        consent_version=None if persona == "stranger" else 1)
            )
        await session.execute(
            update(Subject)
            .where(Subject.id == world.subject)
            .values(owner_user_id=world.users["producer"])
        )
        await session.execute(
            update(Registration)
            .where(Registration.id == world.registration)
            .values(status=RegistrationStatus.SUBMITTED)
        )
        await session.execute(
            update(Conversation)
            .where(Conversation.channel == channel)
            .values(flow=None, step=None, answers={}, editing=False,
                    version=Conversation.version + 1)
        )


async def _watermarks(engine: AsyncEngine) -> tuple[int, int]:
    async with create_sessionmaker(engine)() as session:
        audit = await session.scalar(select(func.max(AuditEntry.id)))
        tasks = await session.scalar(select(func.max(LongTaskRow.id)))
    return audit or 0, tasks or 0


@dataclass(frozen=True)
class Traces:
    refused: list[str]  # the actions audited as refused for the person
    allowed: list[str]  # and as allowed
    details: str  # every audit row's detail, whoever it is for
    tasks: int  # long tasks the person queued


async def _since(engine: AsyncEngine, user_id: int, marks: tuple[int, int]) -> Traces:
    async with create_sessionmaker(engine)() as session:
        rows = list(await session.execute(
            select(AuditEntry.action, AuditEntry.allowed, AuditEntry.user_id, AuditEntry.detail)
            .where(AuditEntry.id > marks[0])
            .order_by(AuditEntry.id)
        ))
        tasks = await session.scalar(
            select(func.count()).where(LongTaskRow.id > marks[1], LongTaskRow.user_id == user_id)
        )
    refused = [action for action, allowed, user, _ in rows if user == user_id and not allowed]
    allowed = [action for action, ok, user, _ in rows if user == user_id and ok]
    return Traces(refused, allowed, "\n".join(detail for *_, detail in rows), tasks or 0)


@dataclass(frozen=True)
class Answer:
    text: str  # everything the person was shown: messages, captions, toasts
    files: int  # documents among the messages


def _command(case: Case) -> str:
    return " ".join((f"/{case.data}", *case.args))


async def _telegram(bot: BotUnderTest, world: World, persona: str, case: Case) -> Answer:
    user = Producer(bot, int(world.ids[persona]), first_name="Người dùng", consents=False)
    toasts = len(bot.emulator.callback_answers)
    if case.button:
        [*_, last] = bot.emulator.messages_to(int(world.ids[persona]))
        await user.press(int(last["message_id"]), case.data)
    else:
        await user.say(_command(case))
    shown = [m.get("text") or m.get("caption") or "" for m in user.replies]
    shown += [a["text"] or "" for a in bot.emulator.callback_answers[toasts:]]
    return Answer("\n".join(shown), len(user.documents()))


async def _zalo(bot: ZaloBotUnderTest, world: World, persona: str, case: Case) -> Answer:
    user = ZaloUser(bot.emulator, bot.handled, world.ids[persona], "Người dùng", consents=False)
    if case.button:
        async with create_sessionmaker(bot.engine)() as session, session.begin():
            entries = [MenuEntry("Nút", case.data)]
            await remember_menu(session, "zalo", world.ids[persona], entries, NOW)
        await user.say("1")
    else:
        await user.say(_command(case))
    shown = [m.get("text") or m.get("caption") or "" for m in user.replies]
    # The Zalo Bot API carries no files: a file would be a long task's, counted as queued work.
    return Answer("\n".join(shown), 0)


async def test_every_route_for_every_role_on_telegram(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    ids = {persona: str(12900 + n) for n, persona in enumerate(PERSONAS)}
    world = await _world(engine, "telegram", ids)
    for persona in PERSONAS:  # a button is pressed under a message the bot sent the chat
        await Producer(bot, int(ids[persona]), consents=False).say("/help")
    await _put_back(engine, "telegram", world)

    async def act(persona: str, case: Case) -> Answer:
        return await _telegram(bot, world, persona, case)

    problems = await _matrix(engine, "telegram", world, act, bot.runtime, bot.drain)
    assert not problems, "\n".join(problems)


async def test_every_route_for_every_role_on_zalo(
    zalo_bot: ZaloBotUnderTest, engine: AsyncEngine
) -> None:
    ids = {persona: f"81000000000001290{n}" for n, persona in enumerate(PERSONAS)}
    world = await _world(engine, "zalo", ids)

    async def act(persona: str, case: Case) -> Answer:
        return await _zalo(zalo_bot, world, persona, case)

    assert zalo_bot.runtime is not None
    problems = await _matrix(engine, "zalo", world, act, zalo_bot.runtime, zalo_bot.drain)
    assert not problems, "\n".join(problems)


async def _matrix(
    engine: AsyncEngine,
    channel: str,
    world: World,
    act: Callable[[str, Case], Awaitable[Answer]],
    runtime: Runtime,
    drain: Callable[[], Awaitable[None]],
) -> list[str]:
    """Every case for every persona; what went wrong, one line each."""
    every = cases(world.registration, world.certificate)
    tried = {(case.button, case.route) for case in every}
    assert tried == {(False, r.name) for r in ROUTES.commands.values()} | {
        (True, prefix) for prefix in ROUTES.buttons
    }
    problems = []
    for case in every:
        for persona in PERSONAS:
            marks = await _watermarks(engine)
            answer = await act(persona, case)
            traces = await _since(engine, world.users[persona], marks)
            refused = traces.refused
            where = f"{channel}: {case.data} as {persona}"
            if not answer.text.strip():
                problems.append(f"{where}: no answer")
            leaked = [secret for secret in (*PERSONAL, PRODUCT) if secret in answer.text]
            personal = [secret for secret in leaked if secret != PRODUCT]
            if refused_for(case, persona):
                if refused != [case.route]:
                    problems.append(f"{where}: audit {refused}")
                if traces.tasks or answer.files:
                    problems.append(f"{where}: refused but work was queued or a file sent")
                # (the producer's own chat may meanwhile get their own news: not a leak)
                if personal and persona != "producer":
                    problems.append(f"{where}: the refusal shows {personal}: {answer.text[:80]!r}")
            elif refused:
                problems.append(f"{where}: allowed but audited as refused {refused}")
            elif route_of(case) is not Role.PRODUCER and case.route not in traces.allowed:
                problems.append(f"{where}: privileged use left no audit row")
            if [secret for secret in PERSONAL if secret in traces.details]:
                problems.append(f"{where}: personal data in the audit log")
            # Only the producer and the officials whose scope covers them may see their data.
            if persona in ("stranger", "official_out") and leaked:
                problems.append(f"{where}: the producer's data {leaked} in {answer.text[:80]!r}")
            # What an allowed cell set off (an export's file, the producer's news) lands now,
            # not in the next cell's answer.
            await _settle(engine, runtime, marks[1])
            await drain()
            await _put_back(engine, channel, world)
    return problems


async def _settle(engine: AsyncEngine, runtime: Runtime, since: int) -> None:
    """Wait until the long tasks queued after task id `since` have ended. The runner's condition
    is held while the database is read, so an ending in between cannot be missed."""

    async def open_tasks() -> int:
        async with create_sessionmaker(engine)() as session:
            count = await session.scalar(
                select(func.count()).where(
                    LongTaskRow.id > since,
                    LongTaskRow.status.in_([TaskStatus.PENDING, TaskStatus.RUNNING]),
                )
            )
        return count or 0

    runner = runtime.tasks
    async with asyncio.timeout(60), runner.finished:
        while await open_tasks():
            await runner.finished.wait()
