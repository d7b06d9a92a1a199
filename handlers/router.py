"""Entry point for every event: dedupes, resolves the user and language, dispatches."""

from __future__ import annotations

import html

from babel.dates import format_date
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import labels
from handlers.context import Context, Services
from handlers.engine import Engine
from handlers.events import Choice, Event, EventKind, Outcome, Reply
from handlers.i18n import LANGUAGES, _, current_language, use_language
from handlers.registration import FLOW, previous_details
from models.admin_units import fold
from models.conversations import Conversation, load_conversation
from models.domain import RegistrationKind
from models.registrations import registrations_of
from models.users import claim_update, get_or_create_user

REGISTER = Engine(FLOW)
ENGINES = {FLOW.name: REGISTER}

# Commands and the words that mean the same when typed without a slash (common on Zalo).
COMMANDS = {
    "start": "start",
    "menu": "start",
    "help": "help",
    "huongdan": "help",
    "register": "register",
    "dangky": "register",
    "cancel": "cancel",
    "huy": "cancel",
    "status": "status",
    "hoso": "status",
    "language": "language",
    "ngonngu": "language",
}


def _menu() -> tuple[tuple[Choice, ...], ...]:
    return (
        (Choice(_("📝 Register a new product"), "m:new"),),
        (Choice(_("🔁 Re-evaluate an expiring product"), "m:reeval"),),
        (Choice(_("📋 My registrations"), "m:status"),),
        (Choice(_("❓ Help"), "m:help"), Choice(_("🌐 Language"), "m:lang")),
    )


def welcome() -> Reply:
    text = "\n".join(
        [
            _(
                "Hello! This bot registers products for the OCOP programme "
                "(One Commune One Product)."
            ),
            _(
                "OCOP rates local products with 3 to 5 stars. Register a new product, or a "
                "product whose certificate is expiring, here in a few taps; the commune's "
                "officials receive it at once."
            ),
        ]
    )
    return Reply(text, choices=_menu())


def help_reply() -> Reply:
    text = "\n".join(
        [
            _("<b>How to use this bot</b>"),
            _("/register (or /dangky): register a product"),
            _("/status (or /hoso): your registrations and their status"),
            _("/cancel (or /huy): stop the registration in progress"),
            _("/language: change the language"),
            "",
            _(
                "Answer each question by tapping a button or typing. "
                "You can go back or cancel at every step."
            ),
        ]
    )
    return Reply(text, choices=_menu())


def language_reply() -> Reply:
    return Reply(
        _("Choose your language:"),
        choices=((Choice("🇻🇳 Tiếng Việt", "lang:vi"), Choice("🇬🇧 English", "lang:en")),),
    )


async def status_reply(ctx: Context) -> Reply:
    registrations = await registrations_of(ctx.session, ctx.user.id)
    if not registrations:
        return Reply(
            _("You have not registered any product yet."),
            choices=((Choice(_("📝 Register a new product"), "m:new"),),),
        )
    lines = [_("<b>Your registrations</b>"), ""]
    for registration in registrations:
        changed = registration.status_changed_at.astimezone(ctx.services.timezone)
        lines.append(
            f"<b>{registration.code}</b> · {html.escape(registration.product_name)} · "
            f"{_(labels.TARGET[registration.target])}"
        )
        lines.append(
            "   "
            + _("{status} since {date}").format(
                status=_(labels.STATUS[registration.status]),
                date=format_date(changed.date(), "dd/MM/yyyy", locale=current_language.get()),
            )
        )
        if registration.status_note:
            lines.append("   " + html.escape(registration.status_note))
    return Reply("\n".join(lines))


async def start_registration(
    conversation: Conversation, ctx: Context, kind: RegistrationKind | None = None
) -> list[Reply]:
    if conversation.flow:
        notice = _("You have a registration in progress. Here is where you stopped.")
        return ENGINES[conversation.flow].render(conversation, ctx, notice)
    preset = await previous_details(ctx)
    if kind is not None:
        preset["kind"] = kind.value
    return REGISTER.begin(conversation, ctx, preset)


async def _on_command(name: str, conversation: Conversation, ctx: Context) -> list[Reply]:
    if name == "start":
        return [welcome()]
    if name == "help":
        return [help_reply()]
    if name == "language":
        return [language_reply()]
    if name == "status":
        return [await status_reply(ctx)]
    if name == "register":
        return await start_registration(conversation, ctx)
    if name == "cancel":
        if conversation.flow:
            return [*ENGINES[conversation.flow].cancel(conversation), welcome()]
        return [Reply(_("There is nothing to cancel."), choices=_menu())]
    return [Reply(_("I don't know that command."), choices=_menu())]


async def _on_menu(choice: str, conversation: Conversation, ctx: Context) -> Outcome:
    action, _sep, value = choice.partition(":")
    if action == "lang" and value in LANGUAGES:
        ctx.user.language = use_language(value)
        return Outcome([Reply(_("Language changed to English."), choices=_menu())])
    kinds = {"new": RegistrationKind.NEW, "reeval": RegistrationKind.REEVALUATION}
    if value in kinds:
        return Outcome(await start_registration(conversation, ctx, kinds[value]))
    names = {"status": "status", "help": "help", "lang": "language"}
    return Outcome(await _on_command(names.get(value, "start"), conversation, ctx))


def _typed_command(event: Event) -> str | None:
    if event.kind is EventKind.COMMAND:
        return COMMANDS.get((event.command or "").lower(), "unknown")
    if event.kind is EventKind.TEXT:
        return COMMANDS.get(fold(event.text or "").replace(" ", ""))
    return None


async def handle_event(session: AsyncSession, services: Services, event: Event) -> Outcome:
    """Handle one event inside the caller's transaction; returns what to send back."""
    user = await get_or_create_user(
        session,
        event.channel,
        event.user_id,
        chat_id=event.chat_id,
        display_name=event.display_name,
        username=event.username,
    )
    if event.update_id is not None and not await claim_update(
        session, event.channel, event.update_id, user.id
    ):
        return Outcome()
    use_language(user.language)
    ctx = Context(session, user, services)
    conversation = await load_conversation(session, event.channel, event.chat_id)
    command = _typed_command(event)
    if event.kind is EventKind.CHOICE and (event.choice or "").startswith(("m:", "lang:")):
        return await _on_menu(event.choice or "", conversation, ctx)
    if conversation.flow in ENGINES and event.kind is not EventKind.COMMAND:
        return await ENGINES[conversation.flow].handle(conversation, ctx, event)
    if event.kind is EventKind.CHOICE:
        notice = _("That button belongs to a finished conversation.")
        return Outcome([Reply(notice, choices=_menu())], toast=notice)
    if command is not None:
        return Outcome(await _on_command(command, conversation, ctx))
    return Outcome([Reply(_("I did not understand. What would you like to do?"), choices=_menu())])
