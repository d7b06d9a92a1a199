"""The numbered menu a chat last saw on a channel without buttons (Zalo), kept per chat.

Zalo shows choices as a numbered list and the user answers "2" or the option's words; to turn
that answer back into the button it stands for, the choices the chat was last offered are stored
here, so an answer typed after a restart (or to another bot process) still works.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.domain import parse_number
from models.text import fold


@dataclass(frozen=True)
class MenuEntry:
    """One thing the user can answer: a button (`data`) or a word to send as text (`data` None).

    `numbered` entries are answered by their number too; the others only by their words."""

    label: str
    data: str | None
    numbered: bool = True


@dataclass(frozen=True)
class Menu:
    entries: tuple[MenuEntry, ...]
    # Sent on its own (a notification), not as the answer to something the user wrote.
    unsolicited: bool = False

    def numbered(self) -> list[MenuEntry]:
        return [entry for entry in self.entries if entry.numbered]

    def pick(self, text: str) -> MenuEntry | None:
        """The entry a typed answer names: its number, or its label (case, diacritics, emoji and
        punctuation ignored). None when it names none, or several that mean different things."""
        key = fold(text)
        if not key:
            return None
        number = parse_number(key, max_digits=4)
        if number is not None:
            numbered = self.numbered()
            return numbered[number - 1] if 1 <= number <= len(numbered) else None
        matches = [entry for entry in self.entries if fold(entry.label) == key]
        meanings = {(entry.data, entry.label if entry.data is None else "") for entry in matches}
        return matches[0] if len(meanings) == 1 else None


class ChatMenu(Base):
    __tablename__ = "chat_menus"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # [[label, data or null, numbered], …] in the order they were shown.
    entries: Mapped[list[Any]] = mapped_column(JSON)
    unsolicited: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime]


async def remember_menu(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    entries: Sequence[MenuEntry],
    now: dt.datetime,
    *,
    unsolicited: bool = False,
) -> None:
    """Replace the chat's menu (an upsert, so two writers of one chat never collide)."""
    values = {
        "entries": [[entry.label, entry.data, entry.numbered] for entry in entries],
        "unsolicited": unsolicited,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(ChatMenu).values(channel=channel, chat_id=chat_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["channel", "chat_id"], set_=values)
    )


async def menu_of(session: AsyncSession, channel: str, chat_id: str) -> Menu | None:
    row = await session.get(ChatMenu, (channel, chat_id), populate_existing=True)
    if row is None:
        return None
    entries = tuple(
        MenuEntry(str(label), None if data is None else str(data), bool(numbered))
        for label, data, numbered in row.entries
    )
    return Menu(entries, row.unsolicited)
