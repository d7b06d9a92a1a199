"""Officials told within a minute of registrations arriving in their communes, in one message.

The job (bot/jobs.py) takes what arrived since its last run and queues, per official, one
message listing it with a button to review each; the daily digest still sums up the day.
"""

from __future__ import annotations

import datetime as dt
import html

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.callbacks import ReviewShow
from handlers.context import Services
from handlers.events import Choice, Notice, Outcome, Reply
from handlers.i18n import N_, _, in_language
from handlers.routes import Call, Command, Entry
from models import keys
from models.arrivals import take_arrivals
from models.domain import Role
from models.officials import in_scope, officials
from models.registrations import Registration
from models.text import fold
from models.users import User

# More buttons than this would bury the list; the rest are in /choduyet.
MAX_BUTTONS = 8


def _line(services: Services, registration: Registration, resubmitted: bool) -> str:
    commune = services.area.get(registration.commune_code)
    place = commune.short_name if commune else registration.commune_code
    line = f"• <b>{registration.code}</b> · {html.escape(registration.product_name)} · " + (
        html.escape(place)
    )
    if resubmitted:
        line += " · " + _("resubmitted")
    return line


def arrivals_message(services: Services, arrived: list[tuple[Registration, bool]]) -> Reply:
    """One official's message, in the current language."""
    lines = [
        _("📥 {count} registrations arrived for review:").format(count=len(arrived)),
        *(_line(services, registration, again) for registration, again in arrived),
    ]
    buttons = tuple(
        (
            Choice(
                _("🔎 Review {code}").format(code=registration.code),
                ReviewShow(registration.id).encode(),
            ),
        )
        for registration, _again in arrived[:MAX_BUTTONS]
    )
    if len(arrived) > MAX_BUTTONS:
        lines.append(_("See all of them with /choduyet."))
    lines.append(_("<i>To stop these messages: /notices off</i>"))
    return Reply("\n".join(lines), choices=buttons)


def _for(person: User, arrived: list[tuple[Registration, bool]]) -> list[tuple[Registration, bool]]:
    return [item for item in arrived if in_scope(person, item[0].commune_code)]


async def arrival_notices(
    session: AsyncSession, services: Services, now: dt.datetime
) -> list[Notice]:
    """The messages telling each official what arrived in their scope since the last run."""
    batch, arrived = await take_arrivals(session, now)
    notices = []
    for person in await officials(session):  # on every channel
        theirs = _for(person, arrived) if person.arrival_notices else []
        if not theirs:
            continue
        with in_language(person.language):
            reply = arrivals_message(services, theirs)
        key = keys.arrivals(person.id, batch)
        notices.append(Notice(person.channel, person.chat_id, (reply,), key, person.id))
    return notices


ON, OFF = {"on", "bat", "mo"}, {"off", "tat", "tatthongbao", "khong"}


async def arrival_setting(call: Call) -> Outcome:
    """`/thongbao bat|tat`: an official turns the arrival messages on or off for themself."""
    user = call.ctx.user
    word = fold(" ".join(call.args)).replace(" ", "")
    if word in ON | OFF:
        user.arrival_notices = word in ON
    if user.arrival_notices:
        text = _(
            "You are told within a minute when a registration arrives in your communes. "
            "To stop: /notices off (the daily digest still comes)."
        )
    else:
        text = _(
            "You are not told of each arriving registration; the daily digest still comes. "
            "To be told again: /notices on"
        )
    return Outcome([Reply(text)])


def routes() -> tuple[Entry, ...]:
    return (
        Command(
            "notices",
            arrival_setting,
            ("thongbao",),
            role=Role.OFFICIAL,
            menu=N_("Messages on arriving registrations"),
            help=N_("/notices on|off: a message within a minute when registrations arrive"),
        ),
    )
