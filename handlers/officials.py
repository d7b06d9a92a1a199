"""Admins manage officials: grant and revoke the role with a scope, list them, invite links."""

from __future__ import annotations

import html

from babel.dates import format_date

from handlers import labels
from handlers.area import served_area
from handlers.context import Context, TaskContext
from handlers.events import Notice, Outcome, Reply
from handlers.i18n import N_, _, current_language, in_language
from handlers.review import close_review_forms
from handlers.routes import Call, Command, Entry
from handlers.scopes import parse_communes, wants_whole_area
from models import keys
from models.audit import record
from models.certificates import Held, link_certificate
from models.domain import Role
from models.officials import create_invite, find_user, officials, redeem_invite
from models.text import fold
from models.users import User

ADD = {"add", "them", "cap"}
REMOVE = {"remove", "xoa", "bo", "huy"}


def usage() -> str:
    return _(
        "How to use it:\n"
        "/official add &lt;id or @username&gt; &lt;communes&gt;: makes the person the official "
        "of these communes (names or codes, separated by commas; “all” for the whole area)\n"
        "/official remove &lt;id or @username&gt;: the person is no longer an official\n"
        "For example: /official add 123456789 Sa Huỳnh, Trà Câu"
    )


def describe_scope(ctx: Context | TaskContext, scope: list[str] | None) -> str:
    if scope is None:
        return _("the whole served area: {area}").format(area=served_area(ctx.area))
    names = []
    for code in scope:
        commune = ctx.area.get(code)
        names.append(commune.name if commune else code)
    return ", ".join(names)


def parse_scope(ctx: Context, words: tuple[str, ...]) -> list[str] | None:
    """Communes typed by an admin, by name or code; none, or "all", means the whole area.
    Raises ValueError naming the words that are no commune of the area."""
    if not words or wants_whole_area(words):
        return None
    codes, unknown = parse_communes(ctx.area, words)
    if unknown:
        raise ValueError(" ".join(unknown))
    return codes


def _unknown_communes(ctx: Context, unknown: ValueError) -> Reply:
    text = _("“{words}” is not a commune of the area. The communes are: {known}.").format(
        words=html.escape(str(unknown)),
        known=html.escape(", ".join(f"{c.short_name} ({c.code})" for c in ctx.area.communes[:12])),
    )
    return Reply(text)


def _welcome_official(ctx: Context, user: User) -> Notice:
    with in_language(user.language):
        text = _(
            "You are now an OCOP official for {scope}. Send /pending to see registrations "
            "waiting for review, /help for everything you can do."
        ).format(scope=html.escape(describe_scope(ctx, user.scope)))
    key = keys.official(user.id, ctx.services.clock())
    return Notice(user.channel, user.chat_id, (Reply(text),), key=key, user_id=user.id)


def _name(user: User) -> str:
    label = user.display_name or user.channel_user_id
    if user.username:
        label += f" (@{user.username})"
    return html.escape(label)


async def official(call: Call) -> Outcome:
    ctx, args = call.ctx, call.args
    action = fold(args[0]).replace(" ", "") if args else ""
    if len(args) < 2 or action not in ADD | REMOVE:
        return Outcome([Reply(usage())])
    reference, words = args[1], args[2:]
    user = await find_user(ctx.session, ctx.user.channel, reference)
    if user is None:
        text = _(
            "I don't know {who} yet. Ask them to send /start to the bot first, or use /invite."
        ).format(who=html.escape(reference))
        return Outcome([Reply(text)])
    if user.role is Role.ADMIN:
        return Outcome([Reply(_("{who} is an administrator.").format(who=_name(user)))])
    if action in REMOVE:
        await close_review_forms(ctx.session, user)
        user.role, user.scope = Role.PRODUCER, None
        text = _("{who} is no longer an official.").format(who=_name(user))
        return Outcome([Reply(text)])
    if not words and user.role is Role.OFFICIAL and user.scope is not None:
        # Naming no commune must not quietly give a commune's official the whole area.
        text = _(
            "{who} is already the official of {scope}; nothing was changed. To change the "
            "communes, name them: /official add {id} Sa Huỳnh, Trà Câu; for the whole area: "
            "/official add {id} all."
        ).format(
            who=_name(user),
            scope=html.escape(describe_scope(ctx, user.scope)),
            id=html.escape(reference),
        )
        return Outcome([Reply(text)])
    try:
        scope = parse_scope(ctx, words)
    except ValueError as unknown:
        return Outcome([_unknown_communes(ctx, unknown)])
    await close_review_forms(ctx.session, user)
    user.role, user.scope = Role.OFFICIAL, scope
    text = _("{who} is now an official for {scope}.").format(
        who=_name(user), scope=html.escape(describe_scope(ctx, scope))
    )
    return Outcome([Reply(text)], notices=[_welcome_official(ctx, user)])


async def list_officials(call: Call) -> Outcome:
    ctx = call.ctx
    people = await officials(ctx.session, ctx.user.channel)
    lines = [_("<b>Officials and administrators</b>"), ""]
    for person in people:
        role = _("administrator") if person.role is Role.ADMIN else _("official")
        lines.append(
            f"• {_name(person)} · id {person.channel_user_id} · {role} · "
            f"{html.escape(describe_scope(ctx, person.scope))}"
        )
    return Outcome([Reply("\n".join(lines))])


async def invite(call: Call) -> Outcome:
    ctx = call.ctx
    try:
        scope = parse_scope(ctx, call.args)
    except ValueError as unknown:
        return Outcome([_unknown_communes(ctx, unknown)])
    _created, code = await create_invite(ctx.session, ctx.user, scope, ctx.services.clock())
    link = f"{call.event.deep_link}{code}" if call.event.deep_link else None
    text = _(
        "A one-time invitation for an official of {scope}, valid for 7 days. Forward it to "
        "the person; opening it makes them an official."
    ).format(scope=html.escape(describe_scope(ctx, scope)))
    text += "\n\n" + (link or f"/start {code}")
    return Outcome([Reply(text)])


def held_lines(items: list[Held]) -> list[str]:
    return [
        "• "
        + _("{product} ({stars}), valid until {date}").format(
            product=html.escape(item.product),
            stars=labels.stars(item.star),
            date=format_date(item.expiry_date, "dd/MM/yyyy", locale=current_language.get()),
        )
        for item in items
    ]


def linked_reply(items: list[Held]) -> Reply:
    lines = [_("These OCOP products are now linked to your account:"), *held_lines(items)]
    lines.append(_("You will be reminded before their certificates expire."))
    return Reply("\n".join(lines))


async def start_with_code(call: Call) -> Outcome | None:
    """`/start <code>` from an invitation or claim link; None when it is neither."""
    ctx = call.ctx
    if not call.args:
        return None
    used = await redeem_invite(ctx.session, call.args[0], ctx.user, ctx.services.clock())
    invalid = Reply(_("This invitation link is not valid any more. Ask for a new one."))
    if used is None:
        record(ctx.session, ctx.user, "redeem", "unknown, used or expired code", allowed=False)
        return Outcome([invalid])
    if used.certificate_id is not None:
        held = await link_certificate(ctx.session, used.certificate_id, ctx.user.id)
        detail = f"claim certificate {used.certificate_id}"
        if held is None:
            record(ctx.session, ctx.user, "redeem", f"{detail}: already owned", allowed=False)
            return Outcome([invalid])
        record(ctx.session, ctx.user, "redeem", detail, allowed=True)
        return Outcome([linked_reply([held])])
    await close_review_forms(ctx.session, ctx.user)  # the scope may have changed
    scope = " ".join(ctx.user.scope) if ctx.user.scope is not None else "all"
    record(ctx.session, ctx.user, "redeem", f"official invite, scope {scope}", allowed=True)
    text = _(
        "Welcome! You are now an OCOP official for {scope}. Send /pending to see registrations "
        "waiting for review, /help for everything you can do."
    ).format(scope=html.escape(describe_scope(ctx, ctx.user.scope)))
    return Outcome([Reply(text)])


def routes() -> tuple[Entry, ...]:
    return (
        Command(
            "officials",
            list_officials,
            ("dscanbo",),
            role=Role.ADMIN,
            menu=N_("Officials and their communes"),
            help=N_("/officials: who are officials, and their communes"),
        ),
        Command(
            "official",
            official,
            ("canbo",),
            role=Role.ADMIN,
            menu=N_("Appoint or remove an official"),
            help=N_("/official add|remove <id or @username> [commune codes]"),
        ),
        Command(
            "invite",
            invite,
            ("moi",),
            role=Role.ADMIN,
            menu=N_("An invitation link for an official"),
            help=N_("/invite [commune codes]: a one-time link that makes its user an official"),
        ),
    )
