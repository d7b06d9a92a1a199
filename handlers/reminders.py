"""Certificate-expiry reminders, computed from the certificates on file rather than from timers:
a reminder whose day passed while the bot was down goes out when it is back, once (its outbox
key names the certificate and the reminder day). Also the producer's one-tap re-evaluation,
linking producers to imported certificates, and the officials' /reminders list."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from babel.dates import format_date
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import consent, labels
from handlers.callbacks import Renew
from handlers.context import Context, Services
from handlers.engine import Engine, FormMeta
from handlers.events import Choice, Event, EventKind, Notice, Outcome, Reply
from handlers.i18n import N_, _, current_language, in_language, ngettext
from handlers.menu import REGISTER
from handlers.officials import linked_reply
from handlers.registration import answers_from
from handlers.routes import Button, Call, Command, Entry
from handlers.validators import Invalid, parse_phone
from models import keys
from models.certificates import (
    Held,
    due_for_reminders,
    expired_unrenewed,
    expiring,
    held_certificate,
    link_by_phone,
    renewal_is_registered,
)
from models.domain import RegistrationKind, Role, parse_number
from models.officials import create_invite, in_scope, officials
from models.outbox import sent_reminders
from models.registrations import Product, Subject
from models.users import reachable_users

EXPIRED_ALERT_DAYS = 30  # officials are alerted of certificates expired at most this long ago
UPCOMING_DAYS = 180


def _day(day: dt.date) -> str:
    return format_date(day, "dd/MM/yyyy", locale=current_language.get())


def stage_of(days_left: int, reminder_days: tuple[int, ...]) -> int | None:
    """The reminder due with `days_left` to go: the latest reminder day already reached."""
    reached = [mark for mark in reminder_days if 0 <= days_left <= mark]
    return min(reached) if reached else None


def reminder_reply(held: Held, days_left: int) -> Reply:
    values = {
        "product": html.escape(held.product),
        "stars": labels.stars(held.star),
        "date": _day(held.expiry_date),
    }
    if days_left == 0:
        text = _(
            "⏰ The OCOP certificate of <b>{product}</b> ({stars}) expires <b>today</b>, "
            "{date}. Register its re-evaluation now to keep its stars."
        ).format(**values)
    else:
        text = ngettext(
            "⏰ The OCOP certificate of <b>{product}</b> ({stars}) expires on {date}: "
            "{days} day left. Register its re-evaluation in time to keep its stars.",
            "⏰ The OCOP certificate of <b>{product}</b> ({stars}) expires on {date}: "
            "{days} days left. Register its re-evaluation in time to keep its stars.",
            days_left,
        ).format(days=days_left, **values)
    button = Choice(_("🔁 Register re-evaluation"), Renew(held.certificate_id).encode())
    return Reply(text, choices=((button,),))


async def due_reminders(
    session: AsyncSession, services: Services, now: dt.datetime
) -> list[Notice]:
    """The producers' reminders due now (the caller queues them; keys make repeats harmless)."""
    today = now.astimezone(services.timezone).date()
    last = today + dt.timedelta(days=max(services.reminder_days, default=0))
    held = await due_for_reminders(session, today, last)
    owners = await reachable_users(
        session, {item.owner_user_id for item in held if item.owner_user_id}
    )
    notices = []
    for item in held:
        owner = owners.get(item.owner_user_id or 0)
        days_left = (item.expiry_date - today).days
        stage = stage_of(days_left, services.reminder_days)
        if owner is None or stage is None:
            continue
        with in_language(owner.language):
            reply = reminder_reply(item, days_left)
            # What a ZNS template says instead, outside a chat (values of its parameters).
            values = {
                "product": item.product,
                "stars": labels.stars(item.star),
                "expiry_date": _day(item.expiry_date),
                "days_left": days_left,
            }
        key = keys.reminder(item.certificate_id, stage)
        template = {"kind": "reminder", "values": values}
        notices.append(
            Notice(owner.channel, owner.chat_id, (reply,), key, owner.id, template=template)
        )
    return notices


async def expired_alerts(
    session: AsyncSession, services: Services, now: dt.datetime
) -> list[Notice]:
    """Officials are told of certificates in their communes that expired unrenewed."""
    today = now.astimezone(services.timezone).date()
    expired = await expired_unrenewed(session, today - dt.timedelta(days=EXPIRED_ALERT_DAYS), today)
    if not expired:
        return []
    notices = []
    for official in await officials(session):
        for item in expired:
            if not in_scope(official, item.commune_code) or not official.reachable:
                continue
            commune = services.area.get(item.commune_code)
            with in_language(official.language):
                text = _(
                    "⚠️ The OCOP certificate of {product} ({owner}, {commune}, {stars}) expired "
                    "on {date} and no re-evaluation was registered."
                ).format(
                    product=html.escape(item.product),
                    owner=html.escape(item.owner_name),
                    commune=html.escape(commune.short_name if commune else item.commune_code),
                    stars=labels.stars(item.star),
                    date=_day(item.expiry_date),
                )
            key = keys.expired(item.certificate_id, official.id)
            notices.append(
                Notice(official.channel, official.chat_id, (Reply(text),), key, official.id)
            )
    return notices


# --- the producer's one tap ------------------------------------------------------------------


async def renew(call: Call) -> Outcome:
    """ "Register re-evaluation" under a reminder: the form, filled with what is on file."""
    ctx = call.ctx
    button = Renew.from_parts(call.args)
    held = await held_certificate(ctx.session, button.certificate_id) if button else None
    if held is None or held.owner_user_id != ctx.user.id:
        text = _("This certificate is not linked to your account.")
        # A certificate on file that is not theirs: a forged button, audited like a command.
        refused = None if held is None else f"not theirs: {held.certificate_id}"
        return Outcome([Reply(text)], refused=refused)
    if await renewal_is_registered(ctx.session, held.certificate_id):
        text = _("A re-evaluation of {product} is already registered. See /status.").format(
            product=html.escape(held.product)
        )
        return Outcome([Reply(text)])
    asked = consent.gate(ctx, Renew(held.certificate_id).encode())
    if asked is not None:
        return Outcome(asked)
    product = await ctx.session.get(Product, held.product_id)
    subject = await ctx.session.get(Subject, held.subject_id)
    assert product is not None and subject is not None
    # What is on file, as the registration's columns: the form's field table makes the answers.
    on_file: dict[str, Any] = {
        "kind": RegistrationKind.REEVALUATION,
        "product_name": product.name,
        "current_star": held.star,
        "certificate_issue_date": held.issue_date,
        "subject_type": subject.subject_type,
        "subject_name": subject.name,
        "owner_name": subject.representative,
        "address": subject.address,
        "commune_code": product.commune_code,
        "product_group": product.product_group,
        "phone": subject.phone,
    }
    if ctx.area.get(product.commune_code) is None:
        del on_file["commune_code"]
    known = {column: value for column, value in on_file.items() if value not in (None, "")}
    meta = FormMeta(certificate=held.certificate_id)
    if call.conversation.flow in ctx.services.routes.flows:
        Engine.finish(call.conversation)
    notice = _("Re-evaluation of {product}: what is on file is filled in already.").format(
        product=html.escape(product.name)
    )
    return Outcome(
        [Reply(notice), *REGISTER.begin(call.conversation, ctx, answers_from(known), meta=meta)]
    )


# --- linking producers to the certificates on file --------------------------------------------


async def link_shared_contact(ctx: Context, event: Event) -> Reply | None:
    """A producer shared their own contact: certificates on file with that phone become theirs."""
    if event.kind is not EventKind.CONTACT or event.contact_user_id != event.user_id:
        return None  # only a verified own number, never one typed or someone else's card
    if ctx.user.consent_version is None:
        return None  # a phone number is personal data: not kept without consent
    try:
        phone = parse_phone(event.phone or "")
    except Invalid:
        return None
    ctx.user.phone = phone
    linked = await link_by_phone(ctx.session, ctx.user.id, phone)
    if not linked:
        return None
    return linked_reply(linked)


async def claim_link(call: Call) -> Outcome:
    """An official's one-time link that gives a certificate's product to whoever opens it."""
    ctx = call.ctx
    certificate_id = (parse_number(call.args[0]) if call.args else None) or 0
    held = await held_certificate(ctx.session, certificate_id)
    usage = Reply(html.escape(_("Usage: /claimlink <certificate number from /reminders>.")))
    if held is None:
        return Outcome([usage])
    if not in_scope(ctx.user, held.commune_code):
        return Outcome([usage], refused=f"out of scope certificate {certificate_id}")
    if held.owner_user_id is not None:
        # Taking a certificate from its owner would also hand the newcomer the owner's name,
        # address and phone in the re-evaluation form: the owner must unlink it first.
        text = _(
            "{product} is already linked to a producer's account, so no claim link can be made "
            "for it. If the product changed hands, ask an administrator."
        ).format(product=html.escape(held.product))
        return Outcome([Reply(text)], refused=f"certificate {certificate_id} already owned")
    _invite, code = await create_invite(
        ctx.session, ctx.user, None, ctx.services.clock(), certificate_id=certificate_id
    )
    link = f"{call.event.deep_link}{code}" if call.event.deep_link else None
    text = _(
        "A one-time link for the producer of {product}, valid for 7 days. Opening it links the "
        "product to their account, so they are reminded before the certificate expires."
    ).format(product=html.escape(held.product))
    return Outcome([Reply(text + "\n\n" + (link or f"/start {code}"))])


# --- the officials' view ------------------------------------------------------------------------


async def upcoming(call: Call) -> Outcome:
    ctx = call.ctx
    today = ctx.today()
    found = await expiring(ctx.session, today, today + dt.timedelta(days=UPCOMING_DAYS))
    items = [item for item in found if in_scope(ctx.user, item.commune_code)]
    if not items:
        return Outcome([Reply(_("No certificate expires in the next 180 days."))])
    sent = await sent_reminders(
        ctx.session, [item.certificate_id for item in items], ctx.services.reminder_days
    )
    lines = [_("<b>Certificates expiring in the next 180 days</b>"), ""]
    for item in items:
        commune = ctx.area.get(item.commune_code)
        lines.append(
            f"#{item.certificate_id} · {html.escape(item.product)} · "
            f"{html.escape(item.owner_name)} · "
            f"{html.escape(commune.short_name if commune else item.commune_code)} · "
            f"{labels.stars(item.star)} · "
            + _("expires {date}").format(date=_day(item.expiry_date))
        )
        if item.owner_user_id is None:
            lines.append(
                "   "
                + _("no producer account linked: /claimlink {number}").format(
                    number=item.certificate_id
                )
            )
        elif item.certificate_id in sent:
            done = ", ".join(
                _("{days} days ({date})").format(
                    days=stage, date=_day(when.astimezone(ctx.services.timezone).date())
                )
                for stage, when in sorted(sent[item.certificate_id], reverse=True)
            )
            lines.append("   " + _("reminded: {done}").format(done=done))
        else:
            lines.append("   " + _("not reminded yet"))
    return Outcome([Reply("\n".join(lines))])


def routes() -> tuple[Entry, ...]:
    return (
        Button(Renew.prefix, renew),
        Command(
            "reminders",
            upcoming,
            ("nhachan",),
            role=Role.OFFICIAL,
            menu=N_("Certificates expiring soon"),
        ),
        Command("claimlink", claim_link, ("lienket",), role=Role.OFFICIAL),
    )
