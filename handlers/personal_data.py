"""The data subject's rights in the chat: /mydata (everything stored, as a message and a file)
and /deletedata (after a confirmation, erase it; officials are told of withdrawn
registrations). Both are audited and answered at once."""

from __future__ import annotations

import html
import json

from handlers import labels
from handlers.callbacks import DeleteData
from handlers.events import Choice, Document, LongTask, Notice, Outcome, Reply
from handlers.i18n import N_, _, in_language
from handlers.routes import Button, Call, Command, Entry
from models import keys
from models.audit import record
from models.officials import in_scope, officials
from models.personal_data import Erasure, erase_person, everything_about
from models.registrations import Registration

PREFIX = DeleteData.prefix
FILE_NAME = "du-lieu-ca-nhan.json"


async def my_data(call: Call) -> Outcome:
    ctx = call.ctx
    data = await everything_about(ctx.session, ctx.user, call.conversation)
    record(ctx.session, ctx.user, "mydata", f"{len(data['registrations'])} registrations", True)
    account = data["account"]
    lines = [
        _("<b>What the bot keeps about you</b>"),
        _("Account: {channel} {id}, name “{name}”, phone {phone}").format(
            channel=html.escape(account["channel"]),
            id=html.escape(account["channel_user_id"]),
            name=html.escape(account["display_name"] or "—"),
            phone=html.escape(account["phone"] or "—"),
        ),
    ]
    for row in data["registrations"]:
        lines.append(
            "• "
            + _("{code}: {product}; representative {owner}; {address}; phone {phone}").format(
                code=html.escape(row["code"]),
                product=html.escape(row["product_name"]),
                owner=html.escape(row["owner_name"]),
                address=html.escape(row["address"]),
                phone=html.escape(row["phone"] or "—"),
            )
        )
    lines.append(
        _("Certificates linked to you: {count}. Reminders sent: {reminders}.").format(
            count=len(data["certificates"]), reminders=len(data["reminders_sent"])
        )
    )
    for consent in data["consents"]:
        lines.append(
            "• "
            + _("Notice version {version}: {decision} on {date}").format(
                version=consent["notice_version"],
                decision=_(labels.CONSENT_DECISION.get(consent["decision"], consent["decision"])),
                date=consent["at"][:10],
            )
        )
    lines += ["", _("Every field is in the attached file. To delete your data, send /deletedata.")]
    content = json.dumps(data, ensure_ascii=False, indent=2).encode()
    file_reply = Reply(_("Your data, as a file."), document=Document(FILE_NAME, content))
    return Outcome([Reply("\n".join(lines)), file_reply])


async def delete_data(call: Call) -> Outcome:
    """`/deletedata`: ask first, it cannot be undone."""
    text = _(
        "This erases your name, phone, address and location from every registration and "
        "cancels the registrations not decided yet. The officials keep only the product and "
        "its commune for the statistics. It cannot be undone. Delete your data?"
    )
    buttons = (
        (Choice(_("🗑 Yes, delete my data"), DeleteData("yes").encode()),),
        (Choice(_("Keep my data"), DeleteData("no").encode()),),
    )
    return Outcome([Reply(text, choices=buttons)])


async def delete_button(call: Call) -> Outcome:
    ctx = call.ctx
    button = DeleteData.from_parts(call.args)
    answer = button.answer if button else ""
    if answer == "ask":
        return await delete_data(call)
    if answer != "yes":
        return Outcome([Reply(_("Nothing was deleted."))])
    erased = await erase_person(ctx.session, ctx.user, call.conversation, ctx.services.clock())
    detail = f"{erased.registrations} registrations, {len(erased.withdrawn)} withdrawn"
    record(ctx.session, ctx.user, "deletedata", detail, True)
    text = _(
        "Your personal data was deleted. Registrations not decided yet were withdrawn and "
        "their officials told. You can still use the bot; a new registration asks again."
    )
    tasks = [LongTask("dossier_purge", {"digests": erased.dossier_digests})]
    return Outcome(
        [Reply(text)],
        notices=await _tell_officials(call, erased),
        tasks=tasks if erased.dossier_digests else [],
    )


async def _tell_officials(call: Call, erased: Erasure) -> list[Notice]:
    if not erased.withdrawn:
        return []
    notices = []
    for official in await officials(call.ctx.session):
        mine = [r for r in erased.withdrawn if in_scope(official, r.commune_code)]
        if not mine or not official.reachable:
            continue
        with in_language(official.language):
            replies = tuple(Reply(_withdrawn_text(registration)) for registration in mine)
        key = keys.withdrawn(official.id, call.ctx.user.id, call.ctx.services.clock())
        notices.append(Notice(official.channel, official.chat_id, replies, key, official.id))
    return notices


def _withdrawn_text(registration: Registration) -> str:
    return _(
        "Registration {code} ({product}) was withdrawn: its producer had their personal data "
        "deleted. Nothing more is needed from you."
    ).format(code=registration.code, product=html.escape(registration.product_name))


def routes() -> tuple[Entry, ...]:
    return (
        Command(
            "mydata",
            my_data,
            ("dulieu",),
            help=N_(
                "/mydata: what the bot keeps about you; /deletedata: delete it; /withdraw: "
                "withdraw your consent"
            ),
        ),
        Command("deletedata", delete_data, ("xoadulieu",)),
        Button(PREFIX, delete_button),
    )
