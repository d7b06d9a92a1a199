"""Officials correct a registration's answers while reviewing it or after accepting it.

The producer's own form is reused: the official sees its summary, taps the field to correct,
answers that one question again and saves. Each changed field is audited (the code and the
field's name, not the values) and the producer is told which fields were corrected.
"""

from __future__ import annotations

from handlers import labels
from handlers.callbacks import CorrectField
from handlers.context import Context
from handlers.engine import SUMMARY, Answers, Engine, Flow, meta_of
from handlers.events import Notice, Outcome, Reply
from handlers.i18n import N_, _, in_language
from handlers.registration import STEPS, answers_of, meta_for, to_input
from handlers.review import FIX_FLOW_NAME, _buttons, _load, _still_allowed, card
from handlers.routes import Button, Call, Entry, Form
from models import keys
from models.audit import record
from models.domain import Role
from models.registrations import (
    OFFICIALLY_CORRECTABLE,
    Registration,
    apply_form,
    carry_corrections,
)
from models.users import User

# What an official's correction never changes: the year, and the certificate it renews.
KEPT = ("programme_year", "certificate_id")


async def begin_correction(call: Call) -> Outcome:
    button = CorrectField.from_parts(call.args)
    loaded = await _load(call, str(button.registration_id) if button else "")
    if isinstance(loaded, Outcome):
        return loaded
    if loaded.status not in OFFICIALLY_CORRECTABLE:
        text = _("{code} was already handled: {status}.").format(
            code=loaded.code, status=_(labels.STATUS[loaded.status])
        )
        return Outcome([Reply(text)])
    notice = _("Tap the field to correct, type the right value, then save.")
    replies = FIX.begin(
        call.conversation, call.ctx, answers_of(loaded), step=SUMMARY, meta=meta_for(loaded)
    )
    return Outcome([Reply(notice), *replies])


async def _tell_producer(ctx: Context, registration: Registration, changed: list[str]) -> Notice:
    producer = await ctx.session.get(User, registration.submitted_by_user_id)
    assert producer is not None
    with in_language(producer.language):
        text = _(
            "An OCOP official corrected your registration {code}: {fields}. See it with /hoso."
        ).format(code=registration.code, fields=labels.fields(changed))
    key = keys.corrected(registration.id, ctx.services.clock())
    return Notice(producer.channel, producer.chat_id, (Reply(text),), key, producer.id)


async def _complete(answers: Answers, ctx: Context) -> Outcome:
    meta = meta_of(ctx.conversation)
    registration = await ctx.session.get(
        Registration,
        meta.registration or 0,
        with_for_update=True,
        populate_existing=True,
    )
    if registration is None or registration.status not in OFFICIALLY_CORRECTABLE:
        return Outcome([Reply(_("This registration was changed meanwhile; nothing was done."))])
    refused = _still_allowed(ctx, registration)
    if refused is not None:
        return refused
    changed = apply_form(registration, to_input(answers, ctx.today(), meta), keep=KEPT)
    updated = Reply(card(registration, ctx), choices=_buttons(registration))
    if not changed:
        return Outcome([Reply(_("Nothing was changed.")), updated])
    await carry_corrections(ctx.session, registration)
    for name in changed:
        record(ctx.session, ctx.user, "correct", f"{registration.code} {name}", allowed=True)
    done = _("{code} corrected: {fields}.").format(
        code=registration.code, fields=labels.fields(changed)
    )
    notice = await _tell_producer(ctx, registration, changed)
    return Outcome([Reply(done), updated], notices=[notice])


FIX_FLOW = Flow(
    name=FIX_FLOW_NAME,
    steps=STEPS,
    summary_title=N_("Correct the registration"),
    submit_label=N_("💾 Save the corrections"),
    complete=_complete,
    cancelled=N_("Nothing was changed."),
)
FIX = Engine(FIX_FLOW)


def routes() -> tuple[Entry, ...]:
    return (
        Button(CorrectField.prefix, begin_correction, role=Role.OFFICIAL),
        Form(FIX),
    )
