"""The sandbox's pre-seeded people: two producers, a commune official, an admin, and the first
producer again on Zalo; each has a chat of their own in the web page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from handlers.i18n import N_
from models.domain import Role

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# The channels' names (bot.channels.telegram.CHANNEL, bot.channels.zalo.CHANNEL), spelled out:
# the page is served before the bot's modules are imported (tests/test_sandbox.py checks them).
TELEGRAM, ZALO = "telegram", "zalo"

# Sa Huỳnh and Trà Câu: the official's scope, two of the default area's five communes.
OFFICIAL_SCOPE = ("21478", "21451")
# "Send my location" sends this point: the beach of Sa Huỳnh, in the default area.
LOCATION = (14.6689, 109.0631)


@dataclass(frozen=True)
class Persona:
    key: str  # in the page's URLs
    channel: str
    user_id: str  # the channel's id of the person (on Telegram also their chat's id)
    name: str
    role: Role
    about: str  # a catalog message id, shown under the name
    phone: str  # what "Share my phone number" sends
    scope: tuple[str, ...] | None = None


PERSONAS = (
    Persona(
        "lan", TELEGRAM, "1001", "Nguyễn Thị Lan", Role.PRODUCER,
        N_("Producer, fish sauce household in Sa Huỳnh"), "+84905111222",
    ),
    Persona(
        "minh", TELEGRAM, "1002", "Trần Văn Minh", Role.PRODUCER,
        N_("Producer, cinnamon cooperative in Trà Câu"), "+84935222333",
    ),
    Persona(
        "hung", TELEGRAM, "2001", "Lê Văn Hùng", Role.OFFICIAL,
        N_("Commune official for Sa Huỳnh and Trà Câu"), "+84914333444", OFFICIAL_SCOPE,
    ),
    Persona(
        "mai", TELEGRAM, "9001", "Phạm Thị Mai", Role.ADMIN,
        N_("Administrator of the bot"), "+84983444555",
    ),
    Persona(
        "lan-zalo", ZALO, "5001001", "Nguyễn Thị Lan", Role.PRODUCER,
        N_("The same producer on Zalo"), "+84905111222",
    ),
)
BY_KEY = {persona.key: persona for persona in PERSONAS}


def persona(key: str) -> Persona | None:
    return BY_KEY.get(key)
ADMIN_IDS = [int(p.user_id) for p in PERSONAS if p.role is Role.ADMIN and p.channel == TELEGRAM]


def seed(session: AsyncSession) -> None:
    """Every persona as a user who already wrote to the bot once, with their role and scope."""
    from models.users import User

    for persona in PERSONAS:
        session.add(
            User(
                channel=persona.channel,
                channel_user_id=persona.user_id,
                chat_id=persona.user_id,
                display_name=persona.name,
                language="vi",
                role=persona.role,
                scope=list(persona.scope) if persona.scope else None,
                reachable=True,
            )
        )
