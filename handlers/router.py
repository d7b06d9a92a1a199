"""Entry point for every event: dedupes, resolves the user and language, dispatches.

Routing order matters and is decided here only:
1. a redelivered update (same id) does nothing;
2. buttons are routed by their prefix (menu, language, review…); flow buttons carry a version;
3. slash commands always work, even in the middle of a form (/huy, /hoso, /help);
4. anything else goes to the form in progress, if any;
5. with no form in progress, typed command words work without the slash ("dang ky", "huy").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import (
    arrivals,
    consent,
    corrections,
    documents,
    dossier,
    dossier_review,
    menu,
    notices,
    officials,
    personal_data,
    reminders,
    review,
)
from handlers import routes as table
from handlers.callbacks import unpack
from handlers.context import Context, Services
from handlers.engine import Engine
from handlers.events import Event, EventKind, Outcome, Reply
from handlers.i18n import _, use_language
from handlers.routes import Call, Routes, dispatch
from models import keys
from models.audit import record
from models.base import utcnow
from models.conversations import Conversation, conversations_for, save_conversations
from models.tasks import queue_tasks
from models.text import fold
from models.users import Profile, User, claim_updates, users_for

# Each feature's table, in the order the command menu and /help list their commands.
FEATURES = (
    menu,
    review,
    corrections,
    officials,
    documents,
    reminders,
    arrivals,
    consent,
    personal_data,
    dossier,
    dossier_review,
)


def build_routes() -> Routes:
    """The commands, buttons and forms of every feature (Services builds it at start-up)."""
    return table.build_routes(feature.routes() for feature in FEATURES)


Progress = Callable[[str], Awaitable[None]]


def _typed_command(routes: Routes, event: Event) -> tuple[str, tuple[str, ...]] | None:
    if event.kind is EventKind.TEXT:
        word = fold(event.text or "").replace(" ", "")
        if word in routes.commands:
            return word, ()
    return None


@cache
def command_words() -> frozenset[str]:
    """Every command name and alias (built on first use, for a channel parsing `/đăng ký`)."""
    return frozenset(build_routes().commands)


@dataclass(frozen=True)
class Prepared:
    """What a batch of events needs before any of them runs, loaded for all at once: a few
    statements per batch instead of a few per event (the group commit in bot/batch.py)."""

    users: dict[tuple[str, str], User]
    fresh: set[tuple[str, str]]  # (channel, update id) seen for the first time
    conversations: dict[tuple[str, str], Conversation]
    registered: set[int]  # ids of the senders who ever registered


async def prepare(session: AsyncSession, events: Sequence[Event]) -> Prepared:
    """Senders (created when new), the claim of each update id, and each chat's conversation."""
    registered: set[int] = set()
    users = await users_for(
        session,
        [Profile(e.channel, e.user_id, e.chat_id, e.display_name, e.username) for e in events],
        registered,
    )
    fresh = await claim_updates(
        session,
        [
            (e.channel, e.update_id, users[(e.channel, e.user_id)].id)
            for e in events
            if e.update_id is not None
        ],
    )
    conversations = await conversations_for(session, [(e.channel, e.chat_id) for e in events])
    return Prepared(users, fresh, conversations, registered)


async def conclude(session: AsyncSession, prepared: Prepared) -> None:
    """After the batch's events: what `prepare` loaded for them written back at once."""
    await save_conversations(session, prepared.conversations.values())


async def handle_event(
    session: AsyncSession,
    services: Services,
    event: Event,
    prepared: Prepared,
    progress: Progress,
) -> Outcome:
    """Handle one event inside the caller's transaction; returns what to send back.

    `prepared` comes from `prepare` over a batch that includes this event, in this transaction.
    Notices for other people are queued in the outbox in the same transaction, and the long
    tasks it asks for in the tasks table (run after it by bot/tasks.py)."""
    user = prepared.users[(event.channel, event.user_id)]
    if event.update_id is not None and (event.channel, event.update_id) not in prepared.fresh:
        return Outcome()  # a redelivery
    use_language(user.language)
    conversation = prepared.conversations[(event.channel, event.chat_id)]
    # What the batch knew when it began: the sender's other events are never in it.
    registered = user.id in prepared.registered
    ctx = Context(session, user, services, progress, conversation, registered_before=registered)
    linked = await reminders.link_shared_contact(ctx, event)
    outcome = await _route(ctx, conversation, event)
    if linked is not None:
        outcome.replies.insert(0, linked)
    if outcome.notices:
        await notices.queue(session, outcome.notices, utcnow())
    if outcome.tasks and event.update_id is not None:
        await queue_tasks(
            session,
            channel=event.channel,
            chat_id=event.chat_id,
            user_id=user.id,
            key=keys.event(event.channel, event.update_id),
            tasks=outcome.tasks,
            now=utcnow(),
        )
    return outcome


async def _in_flow(
    engine: Engine, ctx: Context, conversation: Conversation, event: Event
) -> Outcome:
    """An event for the form in progress; a form that refuses at its end (the official lost
    the role or the commune meanwhile) leaves an audit row like a refused command."""
    outcome = await engine.handle(conversation, ctx, event)
    if outcome.refused is not None:
        record(ctx.session, ctx.user, engine.flow.name, outcome.refused, allowed=False)
    return outcome


async def _route(ctx: Context, conversation: Conversation, event: Event) -> Outcome:
    user = ctx.user
    routes = ctx.services.routes
    engine = routes.flows.get(conversation.flow or "")

    if event.kind is EventKind.CHOICE:
        prefix, parts = unpack(event.choice or "")
        route = routes.buttons.get(prefix)
        if route is not None:
            return await dispatch(route, Call(ctx, conversation, event, parts))
        if engine is not None:
            return await _in_flow(engine, ctx, conversation, event)
        notice = _("That button belongs to a finished conversation.")
        return Outcome([Reply(notice, choices=menu.main_menu(user.role))], toast=notice)

    if event.kind is EventKind.COMMAND:
        route = routes.commands.get((event.command or "").lower())
        if route is None:
            reply = Reply(_("I don't know that command."), choices=menu.main_menu(user.role))
            return Outcome([reply])
        return await dispatch(route, Call(ctx, conversation, event, event.args))

    if engine is not None:
        return await _in_flow(engine, ctx, conversation, event)

    if event.kind in (EventKind.DOCUMENT, EventKind.PHOTO) and routes.documents is not None:
        return await dispatch(routes.documents, Call(ctx, conversation, event))

    typed = _typed_command(routes, event)
    if typed is not None:
        return await dispatch(routes.commands[typed[0]], Call(ctx, conversation, event))
    reply = Reply(
        _("I did not understand. What would you like to do?"), choices=menu.main_menu(user.role)
    )
    return Outcome([reply])
