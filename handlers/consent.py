"""Consent before personal data (Law 91/2025/QH15, Decree 356/2025): the notice shown before
the first personal question, the person's answer, and withdrawing it (/rutlai).

Whatever would ask for personal data (a registration, a re-evaluation from a reminder,
completing a returned registration) calls `gate` first; the notice's "I agree" button carries
the button data of what was asked for, which runs once consent is recorded."""

from __future__ import annotations

import html

from handlers.callbacks import ConsentButton, DeleteData
from handlers.context import Context
from handlers.events import Choice, Outcome, Reply
from handlers.i18n import _
from handlers.routes import Button, Call, Command, Entry, dispatch
from models.certificates import unlink_subjects
from models.consent import Decision, decide
from models.conversations import Conversation
from models.users import Profile, remember_profile

# Bump when the notice's text changes in substance: everyone is asked again.
NOTICE_VERSION = 1
PREFIX = ConsentButton.prefix


def needs_consent(ctx: Context) -> bool:
    return ctx.user.consent_version != NOTICE_VERSION


def notice(ctx: Context, resume: str) -> Reply:
    """The notice, with buttons; `resume` is the button data to run after "I agree"."""
    text = _(
        "🔒 <b>Before we start: about your personal information</b>\n"
        "• Who keeps it: {controller}.\n"
        "• What for: registering and evaluating your OCOP product, and reminding you before "
        "its certificate expires.\n"
        "• What we ask: the representative's name, the producer's name, address, phone "
        "number, location (if you send it) and the product's details.\n"
        "• Who sees it: the OCOP officials of your commune and of the province.\n"
        "• How long: a submitted registration is kept while the OCOP programme follows the "
        "product; a form left unfinished is deleted after {days} days.\n"
        "• Your rights: see what is kept (/mydata), correct a registration, delete your data "
        "(/deletedata), withdraw this consent (/withdraw).\n\n"
        "Do you agree that this information is kept and used for these purposes?"
    ).format(
        controller=html.escape(ctx.services.data_controller),
        days=ctx.services.form_retention_days,
    )
    buttons = (
        (Choice(_("✅ I agree"), ConsentButton.agree(resume).encode()),),
        (Choice(_("I do not agree"), ConsentButton("n").encode()),),
    )
    return Reply(text, choices=buttons)


def gate(ctx: Context, resume: str) -> list[Reply] | None:
    """The notice when consent is missing (or given to an older notice), else None."""
    return [notice(ctx, resume)] if needs_consent(ctx) else None


async def _decided(call: Call) -> Outcome:
    ctx, args = call.ctx, call.args
    now = ctx.services.clock()
    if args[:1] == ("y",):
        if needs_consent(ctx):
            decide(ctx.session, ctx.user, NOTICE_VERSION, Decision.GRANTED, now)
            event = call.event
            remember_profile(
                ctx.user,
                Profile(
                    event.channel, event.user_id, event.chat_id, event.display_name, event.username
                ),
            )
        prefix, *rest = args[1:] or ("m", "reg")
        # The "I agree" button runs what it was shown for, through the table.
        route = ctx.services.routes.buttons.get(prefix) if prefix != PREFIX else None
        if route is None:
            return Outcome([Reply(_("Thank you. Send /register to start."))])
        resumed = Call(ctx, call.conversation, call.event, tuple(rest))
        outcome = await dispatch(route, resumed)
        outcome.replies.insert(0, Reply(_("Thank you. Let us begin.")))
        return outcome
    decide(ctx.session, ctx.user, NOTICE_VERSION, Decision.REFUSED, now)
    _forget_profile(ctx)
    text = _(
        "You did not agree, so I will not ask for or keep any personal information. You can "
        "still read /help. If you change your mind, send /register."
    )
    return Outcome([Reply(text)])


def _forget_profile(ctx: Context) -> None:
    if not ctx.user.keeps_profile:
        ctx.user.display_name, ctx.user.username, ctx.user.phone = "", None, None


async def withdraw(call: Call) -> Outcome:
    """`/withdraw`: no more processing; what is stored stays until the person deletes it."""
    ctx = call.ctx
    if ctx.user.consent_version is None:
        text = _("You have not agreed to anything, so there is nothing to withdraw.")
        return Outcome([Reply(text)])
    decide(ctx.session, ctx.user, NOTICE_VERSION, Decision.WITHDRAWN, ctx.services.clock())
    _forget_profile(ctx)
    abandon_form(call.conversation)
    # No more reminders: their products are no longer linked to them.
    await unlink_subjects(ctx.session, ctx.user.id)
    text = _(
        "Your consent is withdrawn: the bot no longer uses your personal information and will "
        "not remind you. What you submitted is still kept; to delete it, tap the button below "
        "or send /deletedata."
    )
    delete_button = Choice(_("🗑 Delete my data"), DeleteData("ask").encode())
    return Outcome([Reply(text, choices=((delete_button,),))])


def abandon_form(conversation: Conversation) -> None:
    """Drop a form in progress with its answers (they may hold personal data)."""
    if conversation.flow is not None:
        conversation.flow, conversation.step, conversation.answers = None, None, {}
        conversation.editing = False
        conversation.version += 1


def routes() -> tuple[Entry, ...]:
    return (
        Button(PREFIX, _decided),
        Command("withdraw", withdraw, ("rutlai",)),
    )
