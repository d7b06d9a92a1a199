"""Every command and every button prefix, for a stranger, a producer, an official in scope, an
official out of scope and an admin, on Telegram and Zalo: refused where it must be, with an
audit row, and never any of another person's data in the answer.

Run through the router itself (handlers.router.handle_event) on the real database, each event
in a transaction of its own that is rolled back, so every cell starts from the same state."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.context import Services
from handlers.events import Event, EventKind, Outcome
from handlers.router import ROUTES, handle_event, prepare
from models.admin_units import Area
from models.audit import AuditEntry
from models.certificates import Certificate
from models.db import create_sessionmaker
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    Role,
    SubjectType,
    Target,
)
from models.registrations import Product, Registration, Subject
from models.users import User

NOW = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)
SERVICES = Services(
    area=Area("51", ["21439", "21451", "21457", "21472", "21478"]),
    timezone=ZoneInfo("Asia/Ho_Chi_Minh"),
    clock=lambda: NOW,
)
# The producer's details: none may appear in an answer to anyone else.
SECRETS = ("Nguyễn Văn Sáu", "905 999 888", "905999888", "Xóm Bến Đá", "Mắm rươi")
PERSONAS = ("stranger", "producer", "official_in", "official_out", "admin")


@dataclass(frozen=True)
class Case:
    route: str  # the route's name, as the audit log records it
    kind: EventKind
    data: str  # the command's name or the button's data
    args: tuple[str, ...] = ()
    # Refused for an official whose communes do not include the producer's (the data's scope).
    scoped: bool = False


def cases(registration: int, certificate: int) -> list[Case]:
    commands = [
        Case("official", EventKind.COMMAND, "official", ("add", "424242")),
        Case("officials", EventKind.COMMAND, "officials"),
        Case("invite", EventKind.COMMAND, "invite"),
        Case("template", EventKind.COMMAND, "template"),
        Case("pending", EventKind.COMMAND, "pending"),
        Case("digest", EventKind.COMMAND, "digest"),
        Case("stats", EventKind.COMMAND, "stats"),
        Case("export", EventKind.COMMAND, "export", ("2026", "21478"), scoped=True),
        Case("reminders", EventKind.COMMAND, "reminders"),
        Case("claimlink", EventKind.COMMAND, "claimlink", (str(certificate),), scoped=True),
        Case("notices", EventKind.COMMAND, "notices", ("off",)),
    ]
    commands += [
        Case(name, EventKind.COMMAND, name)
        for name in ("start", "help", "register", "cancel", "status", "language", "withdraw",
                     "mydata", "deletedata")
    ]
    buttons = [
        Case("rvl", EventKind.CHOICE, "rvl"),
        Case("rv", EventKind.CHOICE, f"rv:acc:{registration}", scoped=True),
        Case("rvs", EventKind.CHOICE, f"rvs:{registration}", scoped=True),
        Case("rf", EventKind.CHOICE, f"rf:{registration}", scoped=True),
        Case("m", EventKind.CHOICE, "m:status"),
        Case("lang", EventKind.CHOICE, "lang:vi"),
        Case("pe", EventKind.CHOICE, f"pe:{registration}"),
        Case("rr", EventKind.CHOICE, f"rr:{certificate}"),
        Case("cs", EventKind.CHOICE, "cs:n"),
        Case("dd", EventKind.CHOICE, "dd:no"),
    ]
    return commands + buttons


def refused_for(case: Case, persona: str) -> bool:
    route = ROUTES.commands.get(case.data) or ROUTES.buttons[case.data.split(":")[0]]
    rank = {"stranger": 0, "producer": 0, "official_in": 1, "official_out": 1, "admin": 2}
    needed = {Role.PRODUCER: 0, Role.OFFICIAL: 1, Role.ADMIN: 2}[route.role]
    if rank[persona] < needed or case.route == "claimlink":  # the certificate has an owner
        return True
    return case.scoped and persona == "official_out"


async def _people(engine: AsyncEngine, channel: str) -> tuple[dict[str, str], int, int]:
    """The personas' channel ids (the stranger never wrote before), the producer's registration
    and certificate."""
    ids = {persona: f"{channel[:1]}{n}" for n, persona in enumerate(PERSONAS, start=1)}
    async with create_sessionmaker(engine)() as session, session.begin():
        users = {}
        for persona, role, scope in (
            ("producer", Role.PRODUCER, None),
            ("official_in", Role.OFFICIAL, ["21478"]),
            ("official_out", Role.OFFICIAL, ["21439"]),
            ("admin", Role.ADMIN, None),
        ):
            users[persona] = User(
                channel=channel, channel_user_id=ids[persona], chat_id=ids[persona],
                display_name=persona, language="vi", role=role, scope=scope, consent_version=1,
            )
        session.add_all(users.values())
        await session.flush()
        subject = Subject(
            owner_user_id=users["producer"].id, name="Nguyễn Văn Sáu",
            subject_type=SubjectType.HOUSEHOLD, representative="Nguyễn Văn Sáu",
            address="Xóm Bến Đá", phone="+84905999888",
        )
        session.add(subject)
        await session.flush()
        product = Product(subject_id=subject.id, name="Mắm rươi", commune_code="21478",
                          product_group=ProductGroup.FOOD)
        session.add(product)
        await session.flush()
        certificate = Certificate(product_id=product.id, star=3, issue_date=dt.date(2024, 1, 15),
                                  expiry_date=dt.date(2027, 1, 15))
        registration = Registration(
            code=f"OCOP-2026-{channel[:1]}001", kind=RegistrationKind.NEW, target=Target.STAR3,
            programme_year=2026, commune_code="21478", product_id=product.id,
            subject_id=subject.id, product_name="Mắm rươi", product_group=ProductGroup.FOOD,
            owner_name="Nguyễn Văn Sáu", subject_name="Nguyễn Văn Sáu",
            subject_type=SubjectType.HOUSEHOLD, address="Xóm Bến Đá", phone="+84905999888",
            ecommerce=False, submitted_by_user_id=users["producer"].id, channel=channel,
            submitted_at=NOW, status_changed_at=NOW, status=RegistrationStatus.SUBMITTED,
        )
        session.add_all([certificate, registration])
        await session.flush()
        return ids, registration.id, certificate.id


async def _run(
    engine: AsyncEngine, channel: str, user_id: str, case: Case, number: int
) -> tuple[Outcome, list[str]]:
    event = Event(
        channel, user_id, user_id, case.kind, update_id=f"matrix-{number}",
        display_name="Người lạ", command=case.data if case.kind is EventKind.COMMAND else None,
        args=case.args, choice=case.data if case.kind is EventKind.CHOICE else None,
        text=f"/{case.data}" if case.kind is EventKind.COMMAND else None,
    )

    async def progress(_text: str) -> None:
        return None

    async with create_sessionmaker(engine)() as session:
        await session.begin()
        prepared = await prepare(session, [event])
        outcome = await handle_event(session, SERVICES, event, prepared, progress)
        await session.flush()
        user = prepared.users[(channel, user_id)]
        refused = list(
            await session.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.user_id == user.id, AuditEntry.allowed.is_(False)
                )
            )
        )
        await session.rollback()
    return outcome, refused


@pytest.mark.both_databases
@pytest.mark.parametrize("channel", ["telegram", "zalo"])
async def test_every_route_for_every_role(engine: AsyncEngine, channel: str) -> None:
    ids, registration, certificate = await _people(engine, channel)
    problems = []
    number = 0
    for case in cases(registration, certificate):
        for persona in PERSONAS:
            number += 1
            outcome, refused = await _run(engine, channel, ids[persona], case, number)
            said = "\n".join([*(r.text for r in outcome.replies), outcome.toast or ""])
            where = f"{case.data} as {persona}"
            if not outcome.replies:
                problems.append(f"{where}: no answer")
            if refused_for(case, persona):
                if refused != [case.route]:
                    problems.append(f"{where}: audit {refused}")
                if outcome.tasks or any(r.document for r in outcome.replies):
                    problems.append(f"{where}: refused but work was queued")
            elif refused:
                problems.append(f"{where}: allowed but audited as refused")
            # Only the producer and the officials whose scope covers them may see their data.
            if persona in ("stranger", "official_out") and any(s in said for s in SECRETS):
                problems.append(f"{where}: the producer's data in {said[:80]!r}")
    assert problems == []
