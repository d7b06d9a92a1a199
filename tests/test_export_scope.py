"""Exports carry what the role needs: an official's file holds the phone, GPS and full address of
the rows of their own communes and nothing of any other commune's rows; an admin's holds every
row in full; each export leaves an audit row with its scope and row count.

Read back from the file the bot sent, with openpyxl (or the csv module), searching every cell:
the layout of the sheets may change, what a person may see must not."""

from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.audit import AuditEntry
from models.db import create_sessionmaker
from models.domain import Role, SubjectType
from tests import factories
from tests.harness import ADMIN_ID, BotUnderTest, Producer
from tests.test_officials import make_official

AT = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
SA_HUYNH, DUC_PHO = "21478", "21439"
AREA_CODES = "21439 21451 21457 21472 21478"


class Row:
    """A registration's personal details, as they are stored and as a sheet may show them."""

    def __init__(self, commune: str, name: str, address: str, phone: str, gps: tuple[float, float],
                 product: str) -> None:  # fmt: skip
        self.commune, self.name, self.address, self.phone = commune, name, address, phone
        self.gps, self.product = gps, product

    @property
    def personal(self) -> list[str]:
        national = "0" + self.phone[3:6] + " " + self.phone[6:9] + " " + self.phone[9:]
        return [self.name, self.address, national, str(self.gps[0]), str(self.gps[1])]

    def found_in(self, cells: list[str]) -> list[str]:
        """Which of the row's details (its product too) some cell holds."""
        return [d for d in (*self.personal, self.product) if any(d in cell for cell in cells)]


MINE = Row(SA_HUYNH, "Phạm Thị Gấm", "Xóm Cồn Cát, thôn Thạnh Đức", "+84905444111",
           (14.8712, 108.9633), "Mắm rươi Sa Huỳnh")  # fmt: skip
THEIRS = Row(DUC_PHO, "Võ Văn Lụa", "Tổ 7, khu phố Trà Câu", "+84913222777",
             (14.7801, 108.9512), "Bánh tráng Đức Phổ")  # fmt: skip


async def _registered(engine: AsyncEngine, *rows: Row) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        producer = await factories.user(session, Role.PRODUCER)
        for row in rows:
            subject = await factories.subject(session, row.name, SubjectType.HOUSEHOLD)
            subject.address, subject.phone = row.address, row.phone
            product = await factories.product(session, subject, row.product, row.commune)
            registration = factories.registration(session, producer, product, subject, at=AT)
            registration.address, registration.phone = row.address, row.phone
            registration.latitude, registration.longitude = row.gps


async def file_sent(bot: BotUnderTest, person: Producer, command: str) -> tuple[str, bytes]:
    """The file (name, content) the bot sends after `command`: the command answers at once
    ("Preparing the table…"), a long task sends the file after."""
    before = len(bot.emulator.messages_to(person.user_id))
    await person.say(command)
    while not [m for m in bot.emulator.messages_to(person.user_id)[before:] if m.get("document")]:
        count = len(bot.emulator.messages_to(person.user_id))
        await bot.emulator.wait_for_messages(person.user_id, count + 1, timeout=15)
    [(name, content)] = [
        (m["document"]["file_name"], m["document"]["content"])
        for m in bot.emulator.messages_to(person.user_id)[before:]
        if m.get("document")
    ]
    return str(name), bytes(content)


async def _exported(bot: BotUnderTest, person: Producer, command: str) -> list[str]:
    """Every non-empty cell of the file the bot sends for `command`, as text."""
    name, content = await file_sent(bot, person, command)
    if name.endswith(".csv"):
        text = content.decode("utf-8-sig")
        return [cell for line in csv.reader(io.StringIO(text)) for cell in line if cell]
    book = openpyxl.load_workbook(io.BytesIO(content))
    return [
        str(value)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    ]


async def _exports(engine: AsyncEngine) -> list[tuple[bool, str]]:
    async with create_sessionmaker(engine)() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "export").order_by(AuditEntry.id)
        )
        return [(row.allowed, row.detail) for row in rows]


async def test_an_official_gets_full_details_of_their_communes_and_nothing_of_others(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    await _registered(engine, MINE, THEIRS)
    official = await make_official(bot, 15501, SA_HUYNH)

    cells = await _exported(bot, official, "/xuat 2026")
    assert MINE.found_in(cells) == [*MINE.personal, MINE.product]  # phone, GPS, full address
    assert THEIRS.found_in(cells) == []

    cells = await _exported(bot, official, "/xuat 2026 csv")
    assert MINE.found_in(cells) == [*MINE.personal, MINE.product]
    assert THEIRS.found_in(cells) == []

    await official.say(f"/xuat 2026 {DUC_PHO}")  # another commune, asked by its code
    assert not official.documents()
    assert THEIRS.found_in([official.text]) == []

    assert await _exports(engine) == [
        (True, "export 2026"),
        (True, f"2026 communes {SA_HUYNH}: 1 rows"),
        (True, "export 2026 csv"),
        (True, f"2026 communes {SA_HUYNH}: 1 rows"),
        (False, f"export 2026 {DUC_PHO} (out of scope {DUC_PHO})"),
    ]


async def test_an_official_of_two_communes_gets_both_in_full(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    await _registered(engine, MINE, THEIRS)
    official = await make_official(bot, 15511, SA_HUYNH, DUC_PHO)
    cells = await _exported(bot, official, "/xuat 2026")
    assert MINE.found_in(cells) == [*MINE.personal, MINE.product]
    assert THEIRS.found_in(cells) == [*THEIRS.personal, THEIRS.product]
    assert (await _exports(engine))[-1] == (True, f"2026 communes {SA_HUYNH} {DUC_PHO}: 2 rows")


async def test_an_admin_gets_every_row_in_full(bot: BotUnderTest, engine: AsyncEngine) -> None:
    await _registered(engine, MINE, THEIRS)
    admin = Producer(bot, user_id=ADMIN_ID, first_name="Admin")
    cells = await _exported(bot, admin, "/xuat 2026")
    assert MINE.found_in(cells) == [*MINE.personal, MINE.product]
    assert THEIRS.found_in(cells) == [*THEIRS.personal, THEIRS.product]
    assert await _exports(engine) == [
        (True, "export 2026"),
        (True, f"2026 communes {AREA_CODES}: 2 rows"),
    ]


async def test_an_official_moved_to_another_commune_gets_none_of_the_old_ones_rows(
    bot: BotUnderTest, engine: AsyncEngine
) -> None:
    await _registered(engine, MINE, THEIRS)
    official = await make_official(bot, 15521, SA_HUYNH)
    admin = Producer(bot, user_id=ADMIN_ID, first_name="Admin")
    await admin.say(f"/official add 15521 {DUC_PHO}")  # now Đức Phổ only
    cells = await _exported(bot, official, "/xuat 2026")
    assert MINE.found_in(cells) == []
    assert THEIRS.found_in(cells) == [*THEIRS.personal, THEIRS.product]
    assert (await _exports(engine))[-1] == (True, f"2026 communes {DUC_PHO}: 1 rows")
