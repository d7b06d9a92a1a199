"""Officials review registrations: accept, return or reject with a reason, record the outcome.

Each change is stored with its history and the producer is told, in their own language.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from babel.dates import format_date
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import labels
from handlers.callbacks import (
    CorrectField,
    DossierOfficial,
    EditReturned,
    ReviewDecision,
    ReviewList,
    ReviewShow,
)
from handlers.checklist import Item
from handlers.context import Context
from handlers.dossier import checklist_of, item_buttons, progress_line
from handlers.engine import Answers, Engine, Flow, FormMeta, Step, meta_of
from handlers.events import Choice, Notice, Outcome, Reply
from handlers.i18n import N_, _, current_language, in_language
from handlers.routes import Button, Call, Command, Entry, Form, refusal
from handlers.validators import Invalid, Option, display_phone, parse_past_date
from models import keys
from models.audit import record
from models.certificates import Certificate
from models.conversations import Conversation
from models.domain import (
    RegistrationKind,
    RegistrationStatus,
    Role,
    certificate_expiry,
    parse_number,
)
from models.dossier import present_items
from models.inbox import lock_chats
from models.officials import in_scope
from models.registrations import Registration, can_change, change_status, waiting_for_review
from models.text import clean
from models.users import User

PENDING_LIMIT = 10
FIX_FLOW_NAME = "official_fix"  # handlers/corrections.py
ACTIONS = {
    "acc": RegistrationStatus.ACCEPTED,
    "ret": RegistrationStatus.RETURNED,
    "rej": RegistrationStatus.REJECTED,
    "cert": RegistrationStatus.CERTIFIED,
    "fail": RegistrationStatus.FAILED,
    "defer": RegistrationStatus.DEFERRED,
}


def _date(day: dt.date) -> str:
    return format_date(day, "dd/MM/yyyy", locale=current_language.get())


def headline(registration: Registration) -> str:
    """Where a registration stands, as the first line of its card."""
    if registration.status is RegistrationStatus.SUBMITTED:
        return _("Waiting for acceptance")
    if registration.status is RegistrationStatus.ACCEPTED:
        return _("Accepted, waiting for the evaluation result")
    return _(labels.STATUS[registration.status])


def card(registration: Registration, ctx: Context, dossier: str | None = None) -> str:
    """Everything an official needs to judge a registration, on a phone screen: where it
    stands, every answer of the form, what a resubmission changed, an expired certificate;
    `dossier` is its completeness line (handlers/dossier.py)."""
    commune = ctx.area.get(registration.commune_code)
    submitted = registration.submitted_at.astimezone(ctx.services.timezone).date()
    owner = registration.owner_name
    if registration.subject_name != owner:
        owner = f"{owner} ({registration.subject_name})"
    place = commune.short_name if commune else registration.commune_code
    if registration.legacy_commune:
        place = _("{name} (formerly {legacy})").format(
            name=place, legacy=registration.legacy_commune
        )
    lines = [
        f"<i>{html.escape(headline(registration))}</i>",
        f"<b>{registration.code}</b> · {_(labels.KIND[registration.kind])}",
    ]
    if registration.changed_fields is not None:
        changed = labels.fields(registration.changed_fields) or _("nothing")
        lines.append(_("🔁 Resubmitted; changed: {fields}").format(fields=html.escape(changed)))
    lines += [
        f"🏷 {html.escape(registration.product_name)} · {_(labels.TARGET[registration.target])}",
        "🗂 " + _(labels.GROUP[registration.product_group]),
    ]
    if registration.kind is not RegistrationKind.NEW:
        lines += _certificate_lines(registration, ctx)
    lines += [
        f"👤 {html.escape(owner)} · {_(labels.SUBJECT_TYPE[registration.subject_type])}",
        f"📍 {html.escape(place)} · {html.escape(registration.address)}",
    ]
    if registration.latitude is not None and registration.longitude is not None:
        # A bare address: Telegram and Zalo both make it a link (Zalo shows no HTML).
        point = f"{registration.latitude:.6f},{registration.longitude:.6f}"
        link = f"https://maps.google.com/?q={point}"
        lines.append("📌 " + _("Production site: {link}").format(link=link))
    lines += [
        "🛒 " + (_("Sold online") if registration.ecommerce else _("Not sold online")),
        f"📞 {display_phone(registration.phone)} · "
        + _("submitted {date}").format(date=_date(submitted)),
    ]
    if registration.status_note:
        lines.append(_("Note: {note}").format(note=html.escape(registration.status_note)))
    if dossier:
        lines.append(dossier)
    return "\n".join(lines)


def _certificate_lines(registration: Registration, ctx: Context) -> list[str]:
    star = (
        labels.stars(registration.current_star)
        if registration.current_star
        else _("star not known")
    )
    issued = registration.certificate_issue_date
    if issued is None:
        return ["⭐ " + _("Now {star}; certificate date not known").format(star=star)]
    expiry = certificate_expiry(issued)
    lines = [
        "⭐ "
        + _("Now {star}; certificate of {issued}, valid until {expiry}").format(
            star=star, issued=_date(issued), expiry=_date(expiry)
        )
    ]
    if expiry < ctx.today():
        lines.append(
            _(
                "⚠️ This certificate expired on {expiry}. Please check before accepting a "
                "re-evaluation."
            ).format(expiry=_date(expiry))
        )
    return lines


def _buttons(registration: Registration) -> tuple[tuple[Choice, ...], ...]:
    key = registration.id
    correct = Choice(_("✏️ Correct a field"), CorrectField(key).encode())
    papers = Choice(_("📦 Dossier (ZIP)"), DossierOfficial("z", (str(key),)).encode())
    if registration.status is RegistrationStatus.SUBMITTED:
        return (
            (
                Choice(_("✅ Accept"), ReviewDecision("acc", key).encode()),
                Choice(_("↩️ Return"), ReviewDecision("ret", key).encode()),
            ),
            (Choice(_("⛔ Reject"), ReviewDecision("rej", key).encode()), correct),
            (Choice(_("📎 Ask for papers"), DossierOfficial("a", (str(key),)).encode()), papers),
        )
    if registration.status is RegistrationStatus.ACCEPTED:
        return (
            (
                Choice(_("🏅 Certified"), ReviewDecision("cert", key).encode()),
                Choice(_("❌ Not certified"), ReviewDecision("fail", key).encode()),
            ),
            (Choice(_("⏭ Next year"), ReviewDecision("defer", key).encode()), correct),
            (papers,),
        )
    return ()


async def pending(call: Call) -> Outcome:
    ctx, official = call.ctx, call.ctx.user
    everywhere = official.role is Role.ADMIN or official.scope is None
    waiting = await waiting_for_review(ctx.session, None if everywhere else official.scope)
    if not waiting:
        return Outcome([Reply(_("Nothing is waiting for review."))])
    replies = [
        Reply(_("{count} registrations are waiting. The oldest first:").format(count=len(waiting)))
    ]
    shown = waiting[:PENDING_LIMIT]
    present = await present_items(ctx.session, [registration.id for registration in shown])
    checklist = checklist_of(ctx)
    for registration in shown:
        dossier = progress_line(checklist, registration, present[registration.id])
        replies.append(Reply(card(registration, ctx, dossier), choices=_buttons(registration)))
    if len(waiting) > PENDING_LIMIT:
        more = len(waiting) - PENDING_LIMIT
        replies.append(
            Reply(_("… and {count} more. Review these first, or use /export.").format(count=more))
        )
    return Outcome(replies)


# --- telling the producer ------------------------------------------------------------------


async def notify_producer(
    ctx: Context, registration: Registration, items: Sequence[str] = ()
) -> Notice | None:
    """`items`: the dossier papers the official asks for (checklist keys)."""
    producer = await ctx.session.get(User, registration.submitted_by_user_id)
    if producer is None:
        return None
    with in_language(producer.language):
        checklist = checklist_of(ctx)
        requested = [item for key in items if (item := checklist.item(key)) is not None]
        reply = producer_message(registration, requested)
        values = {
            "code": registration.code,
            "product": registration.product_name,
            "status": status_label(registration.status),
        }
    key = keys.review(registration.id, registration.status.value, ctx.services.clock())
    template = {"kind": "outcome", "values": values}
    return Notice(producer.channel, producer.chat_id, (reply,), key, producer.id, template)


def status_label(status: RegistrationStatus) -> str:
    """A registration's status in a few words (a ZNS template's parameter)."""
    return {
        RegistrationStatus.SUBMITTED: _("Submitted"),
        RegistrationStatus.ACCEPTED: _("Accepted for evaluation"),
        RegistrationStatus.RETURNED: _("Needs completing"),
        RegistrationStatus.REJECTED: _("Not accepted"),
        RegistrationStatus.FAILED: _("Not certified"),
        RegistrationStatus.DEFERRED: _("Moved to next year"),
        RegistrationStatus.CERTIFIED: _("Certified"),
    }.get(status, status.value)


def producer_message(registration: Registration, requested: Sequence[Item] = ()) -> Reply:
    """The producer's view of a status change, in the current language; a return lists the
    papers asked for, each with a button to send it."""
    values = {
        "code": registration.code,
        "product": html.escape(registration.product_name),
        "reason": html.escape(registration.status_note or ""),
    }
    status = registration.status
    if status is RegistrationStatus.RETURNED:
        text = _(
            "Your registration {code} ({product}) needs completing: {reason}\n"
            "Tap the button to correct it and submit it again."
        ).format(**values)
        fix = Choice(
            _("✏️ Complete and resubmit {code}").format(code=registration.code),
            EditReturned(registration.id).encode(),
        )
        if requested:
            text += "\n\n" + _("Papers to send:") + "\n"
            text += "\n".join(f"• {html.escape(item.label())}" for item in requested)
            sends = item_buttons(registration, tuple(requested), prefix=_("📎 Send: "))
            return Reply(text, choices=(*sends, (fix,)))
        return Reply(text, choices=((fix,),))
    texts = {
        RegistrationStatus.ACCEPTED: _(
            "Your registration {code} ({product}) was accepted and sent to evaluation."
        ),
        RegistrationStatus.REJECTED: _(
            "Your registration {code} ({product}) was not accepted. Reason: {reason}"
        ),
        RegistrationStatus.FAILED: _(
            "Your product {product} ({code}) was not certified in this evaluation."
        ),
        RegistrationStatus.DEFERRED: _(
            "Your registration {code} ({product}) was moved to next year's evaluation."
        ),
        RegistrationStatus.CERTIFIED: _(
            "🎉 Congratulations! {product} ({code}) is certified as an OCOP product: {reason}"
        ),
    }
    return Reply(texts[status].format(**values))


# --- button presses --------------------------------------------------------------------------


async def _load(call: Call, registration_id: str) -> Registration | Outcome:
    """The registration a button names, or the reply refusing it (gone, or out of scope)."""
    ctx = call.ctx
    number = parse_number(registration_id)
    registration = (
        await ctx.session.get(Registration, number, with_for_update=True, populate_existing=True)
        if number is not None
        else None
    )
    if registration is None:
        return Outcome([Reply(_("This registration does not exist."))])
    if not in_scope(ctx.user, registration.commune_code):
        return Outcome([refusal(Role.OFFICIAL)], refused=f"out of scope {registration.code}")
    return registration


async def apply(
    ctx: Context,
    registration: Registration,
    status: RegistrationStatus,
    note: str | None = None,
    items: Sequence[str] = (),
) -> Outcome:
    change_status(ctx.session, registration, status, ctx.user.id, ctx.services.clock(), note)
    record(ctx.session, ctx.user, "decision", f"{registration.code} {status.value}", allowed=True)
    done = _("{code}: {status}.").format(code=registration.code, status=_(labels.STATUS[status]))
    notice = await notify_producer(ctx, registration, items)
    return Outcome(
        [Reply(done)],
        toast=done,
        notices=[notice] if notice else [],
        edited=card(registration, ctx, await dossier_line(ctx, registration)),
    )


async def dossier_line(ctx: Context, registration: Registration) -> str:
    """The registration's dossier completeness, as its card shows it."""
    present = await present_items(ctx.session, [registration.id])
    return progress_line(checklist_of(ctx), registration, present[registration.id])


async def show(call: Call) -> Outcome:
    """One registration's card with its buttons (from the officials' arrival message)."""
    button = ReviewShow.from_parts(call.args)
    loaded = await _load(call, str(button.registration_id) if button else "")
    if isinstance(loaded, Outcome):
        return loaded
    dossier = await dossier_line(call.ctx, loaded)
    return Outcome([Reply(card(loaded, call.ctx, dossier), choices=_buttons(loaded))])


async def review_button(call: Call) -> Outcome:
    ctx = call.ctx
    button = ReviewDecision.from_parts(call.args)
    if button is None or button.action not in ACTIONS:
        return Outcome([Reply(_("This button is not valid any more."))])
    action = button.action
    loaded = await _load(call, str(button.registration_id))
    if isinstance(loaded, Outcome):
        return loaded
    status = ACTIONS[action]
    if not can_change(loaded, status):
        text = _("{code} was already handled: {status}.").format(
            code=loaded.code, status=_(labels.STATUS[loaded.status])
        )
        return Outcome([Reply(text)], toast=text)
    if status in (
        RegistrationStatus.ACCEPTED,
        RegistrationStatus.FAILED,
        RegistrationStatus.DEFERRED,
    ):
        return await apply(ctx, loaded, status)
    meta = FormMeta(registration=loaded.id, status=status.value)
    engine = CERTIFY if status is RegistrationStatus.CERTIFIED else NOTE
    replies = engine.begin(call.conversation, ctx, {}, meta=meta)
    return Outcome([Reply(card(loaded, ctx)), *replies])


# --- the two short forms an official fills in --------------------------------------------------


def _parse_note(text: str, _answers: Answers, _ctx: Context) -> Answers:
    note = clean(text, multiline=True)
    if len(note) < 3:
        raise Invalid(_("Please write the reason in a few words."))
    if len(note) > 500:
        raise Invalid(_("Please keep the reason under 500 characters."))
    return {"note": note}


def _still_allowed(ctx: Context, registration: Registration) -> Outcome | None:
    """A form is finished long after its button was pressed: the official may have lost the
    role or the commune meanwhile. None when they may still decide; else the refusal."""
    if ctx.user.role is Role.PRODUCER:
        refused = f"no longer an official {registration.code}"
        return Outcome([refusal(Role.OFFICIAL)], refused=refused)
    if not in_scope(ctx.user, registration.commune_code):
        return Outcome([refusal(Role.OFFICIAL)], refused=f"out of scope {registration.code}")
    return None


async def _complete_review(ctx: Context, note: str) -> Outcome:
    """The metadata's `items`: papers asked for with the return (handlers/dossier_review.py)."""
    meta = meta_of(ctx.conversation)
    registration = await ctx.session.get(
        Registration, meta.registration or 0, with_for_update=True, populate_existing=True
    )
    status = RegistrationStatus(meta.status or "")
    if registration is None or not can_change(registration, status):
        return Outcome([Reply(_("This registration was changed meanwhile; nothing was done."))])
    refused = _still_allowed(ctx, registration)
    if refused is not None:
        return refused
    outcome = await apply(ctx, registration, status, note, meta.items or ())
    # The form's last message was pressed, not the card: the card comes again, updated.
    outcome.replies.append(Reply(outcome.edited or ""))
    outcome.edited = None
    return outcome


async def close_review_forms(session: AsyncSession, user: User) -> None:
    """An official's role or scope changed: a review form they had open is dropped, so what
    they were allowed before cannot be finished after. Their chat is not this batch's: its lock
    is taken first, so that a batch handling their own message (which holds it) is not undone
    by this one, nor this by it, and the form is read as that batch left it."""
    await lock_chats(session, [(user.channel, user.chat_id)])
    conversation = await session.get(Conversation, (user.channel, user.chat_id))
    if conversation is not None and (
        conversation.flow in (NOTE_FLOW.name, CERTIFY_FLOW.name, FIX_FLOW_NAME)
    ):
        Engine.finish(conversation)


async def _complete_note(answers: Answers, ctx: Context) -> Outcome:
    return await _complete_review(ctx, answers["note"])


async def _complete_certificate(answers: Answers, ctx: Context) -> Outcome:
    registration = await ctx.session.get(
        Registration,
        meta_of(ctx.conversation).registration or 0,
        with_for_update=True,
        populate_existing=True,
    )
    if registration is None or not can_change(registration, RegistrationStatus.CERTIFIED):
        return Outcome([Reply(_("This registration was changed meanwhile; nothing was done."))])
    refused = _still_allowed(ctx, registration)
    if refused is not None:
        return refused
    issued = dt.date.fromisoformat(answers["issued"])
    certificate = Certificate(
        product_id=registration.product_id,
        star=int(answers["star"]),
        issue_date=issued,
        expiry_date=certificate_expiry(issued),
        decision_number=answers["decision"],
        registration_id=registration.id,
    )
    ctx.session.add(certificate)
    with in_language("vi"):  # the note is stored once; it names a Vietnamese decision anyway
        note = _("{star} stars, decision {decision} of {issued}, valid until {expiry}").format(
            star=certificate.star,
            decision=certificate.decision_number,
            issued=_date(issued),
            expiry=_date(certificate.expiry_date),
        )
    return await _complete_review(ctx, note)


def _parse_issued(text: str, _answers: Answers, ctx: Context) -> Answers:
    return {"issued": parse_past_date(text, ctx.today()).isoformat()}


def _parse_decision(text: str, _answers: Answers, _ctx: Context) -> Answers:
    decision = clean(text)
    if not 2 <= len(decision) <= 100:
        raise Invalid(_("Please type the decision number, for example 1234/QĐ-UBND."))
    return {"decision": decision}


NOTE_FLOW = Flow(
    name="review_note",
    steps=(
        Step(
            "note",
            N_("Why? Write what the producer should know or complete."),
            label=N_("Reason"),
            parse_text=_parse_note,
            note=lambda a, c: _("Decision: {status}").format(
                status=_(labels.STATUS[RegistrationStatus(meta_of(c.conversation).status or "")])
            ),
        ),
    ),
    summary_title=N_("Reason"),
    submit_label=N_("✅ Confirm"),
    complete=_complete_note,
    cancelled=N_("Nothing was changed."),
    confirm=False,
)

CERTIFY_FLOW = Flow(
    name="certify",
    steps=(
        Step(
            "star",
            N_("How many stars did the product get?"),
            label=N_("Star"),
            options=lambda a, c: [Option(str(n), labels.stars(n)) for n in (3, 4, 5)],
            show=lambda a, c: labels.stars(int(a["star"])),
            columns=3,
        ),
        Step(
            "issued",
            N_("On what date was the certificate issued? (day/month/year)"),
            label=N_("Issued"),
            parse_text=_parse_issued,
            show=lambda a, c: _date(dt.date.fromisoformat(a["issued"])),
        ),
        Step(
            "decision",
            N_("What is the decision number? (for example 1234/QĐ-UBND)"),
            label=N_("Decision"),
            parse_text=_parse_decision,
        ),
    ),
    summary_title=N_("Record this certificate?"),
    submit_label=N_("✅ Record the certificate"),
    complete=_complete_certificate,
    cancelled=N_("Nothing was changed."),
)

NOTE, CERTIFY = Engine(NOTE_FLOW), Engine(CERTIFY_FLOW)


def routes() -> tuple[Entry, ...]:
    return (
        Command(
            "pending",
            pending,
            ("choduyet",),
            role=Role.OFFICIAL,
            menu=N_("Registrations waiting for review"),
            help=N_("/pending: registrations waiting for review"),
        ),
        Form(NOTE),
        Form(CERTIFY),
        Button(ReviewList.prefix, pending, role=Role.OFFICIAL),
        Button(ReviewDecision.prefix, review_button, role=Role.OFFICIAL),
        Button(ReviewShow.prefix, show, role=Role.OFFICIAL),
    )
