"""The same product cannot wait twice: a producer sending a product they already registered
this year (name compared without case or diacritics) is warned, with a button to open the
registration already sent, and their form stays at its summary."""

from __future__ import annotations

import html

from handlers import labels
from handlers.callbacks import EditReturned, MenuButton
from handlers.context import Context
from handlers.engine import Answers, Held, meta_of
from handlers.events import Choice, Reply
from handlers.i18n import _
from models.registrations import (
    CORRECTABLE,
    Registration,
    RegistrationInput,
    pending_duplicate,
)


async def refuse_duplicate(answers: Answers, ctx: Context, form: RegistrationInput) -> None:
    """The same product may not wait twice: a warning and a button to the one already sent."""
    returned_id = meta_of(ctx.conversation).registration
    year = form.programme_year
    if returned_id is not None:
        own = await ctx.session.get(Registration, int(returned_id))
        year = own.programme_year if own is not None else year
    existing = await pending_duplicate(
        ctx.session,
        ctx.user.id,
        form.product_name,
        year,
        (form.subject_name, form.subject_type),  # its id read for the submit that follows
        other_than=int(returned_id) if returned_id is not None else None,
    )
    if existing is None:
        return
    text = _(
        "⚠️ You already registered “{product}” this year: {code} ({status}). The same product "
        "cannot be registered twice; please open that registration to change it, or change "
        "the product name here."
    ).format(
        product=html.escape(existing.product_name),
        code=existing.code,
        status=_(labels.STATUS[existing.status]),
    )
    opened = Choice(_("📂 Open {code}").format(code=existing.code), _open_data(existing))
    raise Held(Reply(text, choices=((opened,),)))


def _open_data(registration: Registration) -> str:
    if registration.status in CORRECTABLE:
        return EditReturned(registration.id).encode()
    return MenuButton("status").encode()
