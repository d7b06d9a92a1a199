"""Entry point for every event: dedupes, resolves the user and language, dispatches.

Routing order matters and is decided here only:
1. a redelivered update (same id) does nothing;
2. buttons are routed by their prefix (menu, language, review…); flow buttons carry a version;
3. slash commands always work, even in the middle of a form (/huy, /hoso, /help);
4. anything else goes to the form in progress, if any;
5. with no form in progress, typed command words work without the slash ("dang ky", "huy").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import documents, menu, notices, officials, reminders, review
from handlers.context import Context, Services
from handlers.events import Event, EventKind, Outcome, Reply
from handlers.i18n import _, use_language
from handlers.menu import ENGINES
from handlers.routes import Call, Routes, dispatch
from models.admin_units import fold
from models.base import utcnow
from models.conversations import Conversation, load_conversation
from models.users import claim_update, get_or_create_user

ROUTES = Routes()
for feature in (menu, officials, review, documents, reminders):
    feature.register_routes(ROUTES)
ENGINES.update(review.ENGINES)

Progress = Callable[[str], Awaitable[None]]


async def _no_progress(_text: str) -> None:
    return None


def _typed_command(event: Event) -> tuple[str, tuple[str, ...]] | None:
    if event.kind is EventKind.COMMAND:
        return (event.command or "").lower(), event.args
    if event.kind is EventKind.TEXT:
        word = fold(event.text or "").replace(" ", "")
        if word in ROUTES.commands:
            return word, ()
    return None


async def handle_event(
    session: AsyncSession, services: Services, event: Event, progress: Progress = _no_progress
) -> Outcome:
    """Handle one event inside the caller's transaction; returns what to send back.

    Notices for other people are queued in the outbox in the same transaction."""
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
    ctx = Context(session, user, services, progress)
    linked = await reminders.link_shared_contact(ctx, event)
    conversation = await load_conversation(session, event.channel, event.chat_id)
    outcome = await _route(ctx, conversation, event)
    if linked is not None:
        outcome.replies.insert(0, linked)
    if outcome.notices:
        await notices.queue(session, outcome.notices, utcnow())
    return outcome


async def _route(ctx: Context, conversation: Conversation, event: Event) -> Outcome:
    user = ctx.user
    engine = ENGINES.get(conversation.flow or "")

    if event.kind is EventKind.CHOICE:
        prefix, *parts = (event.choice or "").split(":")
        route = ROUTES.buttons.get(prefix)
        if route is not None:
            return await dispatch(route, Call(ctx, conversation, event, tuple(parts)))
        if engine is not None:
            return await engine.handle(conversation, ctx, event)
        notice = _("That button belongs to a finished conversation.")
        return Outcome([Reply(notice, choices=menu.main_menu(user.role))], toast=notice)

    if event.kind is EventKind.COMMAND:
        route = ROUTES.commands.get((event.command or "").lower())
        if route is None:
            reply = Reply(_("I don't know that command."), choices=menu.main_menu(user.role))
            return Outcome([reply])
        return await dispatch(route, Call(ctx, conversation, event, event.args))

    if engine is not None:
        return await engine.handle(conversation, ctx, event)

    if event.kind is EventKind.DOCUMENT and ROUTES.documents is not None:
        return await dispatch(ROUTES.documents, Call(ctx, conversation, event))

    typed = _typed_command(event)
    if typed is not None:
        return await dispatch(ROUTES.commands[typed[0]], Call(ctx, conversation, event))
    reply = Reply(
        _("I did not understand. What would you like to do?"), choices=menu.main_menu(user.role)
    )
    return Outcome([reply])
