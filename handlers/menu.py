"""What every user can do: the main menu, help, language, their registrations, start/cancel."""

from __future__ import annotations

import html

from babel.dates import format_date

from handlers import consent, dossier, labels
from handlers.area import office_contact, served_area
from handlers.callbacks import EditReturned, LanguageButton, MenuButton, ReviewList
from handlers.context import Context
from handlers.engine import Engine
from handlers.events import Choice, Outcome, Reply
from handlers.i18n import LANGUAGES, N_, _, current_language, use_language
from handlers.officials import start_with_code
from handlers.registration import FLOW, SUMMARY, answers_of, meta_for, previous_details
from handlers.routes import HELP_ROLES, Button, Call, Command, Entry, Form, Routes
from models.conversations import Conversation
from models.domain import RegistrationKind, RegistrationStatus, Role
from models.registrations import CORRECTABLE, Registration, registrations_of

REGISTER = Engine(FLOW, menu=lambda ctx: main_menu(ctx.user.role))


def main_menu(role: Role = Role.PRODUCER) -> tuple[tuple[Choice, ...], ...]:
    rows = [
        (Choice(_("📝 Register a new product"), MenuButton("new").encode()),),
        (Choice(_("🔁 Re-evaluate an expiring product"), MenuButton("reeval").encode()),),
        (Choice(_("📋 My registrations"), MenuButton("status").encode()),),
        (
            Choice(_("❓ Help"), MenuButton("help").encode()),
            Choice(_("🌐 Language"), MenuButton("lang").encode()),
        ),
    ]
    if role is not Role.PRODUCER:
        rows.insert(0, (Choice(_("🗂 Registrations to review"), ReviewList().encode()),))
    return tuple(rows)


def _served(ctx: Context) -> list[str]:
    return [
        _("This bot receives registrations from {area}.").format(
            area=html.escape(served_area(ctx.area))
        ),
        _("For help, please contact {contact}.").format(contact=html.escape(office_contact(ctx))),
    ]


def welcome(role: Role, ctx: Context | None = None) -> Reply:
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
            *(_served(ctx) if ctx is not None else ()),
        ]
    )
    return Reply(text, choices=main_menu(role))


HELP_HEADINGS = {
    Role.PRODUCER: N_("<b>How to use this bot</b>"),
    Role.OFFICIAL: N_("<b>For officials</b>"),
    Role.ADMIN: N_("<b>For administrators</b>"),
}


def help_reply(routes: Routes, role: Role, ctx: Context | None = None) -> Reply:
    """/help: each command's line as its route declares it, the producer's part first."""
    lines: list[str] = []
    for group, part in zip(HELP_ROLES[role], routes.help_lines(role), strict=True):
        if lines:
            lines.append("")
        lines.append(_(HELP_HEADINGS[group]))
        if group is Role.PRODUCER:
            lines += [*(_served(ctx) if ctx is not None else ()), ""]
        lines += part
    lines += [
        "",
        _(
            "Answer each question by tapping a button or typing. "
            "You can go back or cancel at every step."
        ),
    ]
    return Reply("\n".join(lines), choices=main_menu(role))


def _status_line(registration: Registration, ctx: Context) -> list[str]:
    changed = registration.status_changed_at.astimezone(ctx.services.timezone)
    lines = [
        f"<b>{registration.code}</b> · {html.escape(registration.product_name)} · "
        f"{_(labels.TARGET[registration.target])}",
        "   "
        + _("{status} since {date}").format(
            status=_(labels.STATUS[registration.status]),
            date=format_date(changed.date(), "dd/MM/yyyy", locale=current_language.get()),
        ),
    ]
    if registration.status_note:
        lines.append("   " + _("Note: {note}").format(note=html.escape(registration.status_note)))
    return lines


async def status(call: Call) -> Outcome:
    ctx = call.ctx
    registrations = await registrations_of(ctx.session, ctx.user.id)
    if not registrations:
        return Outcome(
            [
                Reply(
                    _("You have not registered any product yet."),
                    choices=(
                        (Choice(_("📝 Register a new product"), MenuButton("new").encode()),),
                    ),
                )
            ]
        )
    lines = [_("<b>Your registrations</b>"), ""]
    fixes = []
    corrections = 0
    for registration in registrations:
        lines += _status_line(registration, ctx)
        if registration.status is RegistrationStatus.RETURNED:
            label = _("✏️ Complete and resubmit {code}").format(code=registration.code)
            fixes.append((Choice(label, EditReturned(registration.id).encode()),))
        elif registration.status is RegistrationStatus.SUBMITTED and corrections < 3:
            # The newest few only: a long list of buttons would bury the statuses.
            corrections += 1
            label = _("✏️ Correct {code}").format(code=registration.code)
            fixes.append((Choice(label, EditReturned(registration.id).encode()),))
    if any(registration.status in dossier.OPEN for registration in registrations):
        fixes.append((dossier.send_papers_button(),))
    return Outcome([Reply("\n".join(lines), choices=tuple(fixes))])


async def start_registration(
    conversation: Conversation, ctx: Context, kind: RegistrationKind | None = None
) -> list[Reply]:
    engine = ctx.services.routes.flows.get(conversation.flow or "")
    if engine is not None:
        notice = _("You have a registration in progress. Here is where you stopped.")
        return engine.resume(conversation, ctx, notice)
    asked = consent.gate(ctx, MenuButton(kind.value if kind else "reg").encode())
    if asked is not None:
        return asked
    preset = {"kind": kind.value} if kind is not None else {}
    return REGISTER.begin(conversation, ctx, preset, meta=await previous_details(ctx))


async def register(call: Call) -> Outcome:
    return Outcome(await start_registration(call.conversation, call.ctx))


async def cancel(call: Call) -> Outcome:
    conversation = call.conversation
    engine = call.ctx.services.routes.flows.get(conversation.flow or "")
    if engine is not None:
        # The command is typed on purpose: it cancels without asking again.
        replies = engine.cancel(conversation, call.ctx)
        return Outcome(replies if engine.menu else [*replies, welcome(call.ctx.user.role)])
    return Outcome([Reply(_("There is nothing to cancel."), choices=main_menu(call.ctx.user.role))])


async def start(call: Call) -> Outcome:
    if call.args:  # t.me/<bot>?start=<code>: an invitation
        invited = await start_with_code(call)
        if invited is not None:
            return invited
    return Outcome([welcome(call.ctx.user.role, call.ctx)])


async def help_command(call: Call) -> Outcome:
    return Outcome([help_reply(call.ctx.services.routes, call.ctx.user.role, call.ctx)])


async def language(call: Call) -> Outcome:
    return Outcome(
        [
            Reply(
                _("Choose your language:"),
                choices=(
                    (
                        Choice("🇻🇳 Tiếng Việt", LanguageButton("vi").encode()),
                        Choice("🇬🇧 English", LanguageButton("en").encode()),
                    ),
                ),
            )
        ]
    )


async def choose_language(call: Call) -> Outcome:
    button = LanguageButton.from_parts(call.args)
    if button is not None and button.language in LANGUAGES:
        call.ctx.user.language = use_language(button.language)
    reply = Reply(_("Language changed to English."), choices=main_menu(call.ctx.user.role))
    return Outcome([reply])


async def menu_button(call: Call) -> Outcome:
    button = MenuButton.from_parts(call.args)
    action = button.action if button else ""
    kinds = {"new": RegistrationKind.NEW, "reeval": RegistrationKind.REEVALUATION}
    if action in kinds:
        return Outcome(await start_registration(call.conversation, call.ctx, kinds[action]))
    if action == "reg":
        return Outcome(await start_registration(call.conversation, call.ctx))
    handlers = {"status": status, "help": help_command, "lang": language}
    return await handlers.get(action, start)(call)


async def edit_returned(call: Call) -> Outcome:
    """A producer reopens a registration returned for completion, or corrects one no official
    has accepted yet (the right to correct one's data)."""
    ctx = call.ctx
    button = EditReturned.from_parts(call.args)
    registration = await ctx.session.get(Registration, button.registration_id) if button else None
    if registration is not None and registration.submitted_by_user_id != ctx.user.id:
        # Someone else's registration: a forged button, refused like a command (audited).
        text = _("This registration cannot be changed any more.")
        return Outcome([Reply(text)], refused=f"not theirs: {registration.id}")
    if registration is None or registration.status not in CORRECTABLE:
        return Outcome([Reply(_("This registration cannot be changed any more."))])
    asked = consent.gate(ctx, EditReturned(registration.id).encode())
    if asked is not None:
        return Outcome(asked)
    if call.conversation.flow in call.ctx.services.routes.flows:
        Engine.finish(call.conversation)
    notice = _("Change what the officials asked for, then submit again.")
    replies = REGISTER.begin(
        call.conversation, ctx, answers_of(registration), step=SUMMARY, meta=meta_for(registration)
    )
    return Outcome([Reply(notice), *replies])


def routes() -> tuple[Entry, ...]:
    return (
        Command(
            "register",
            register,
            ("dangky",),
            menu=N_("Register a product"),
            help=N_("/register (or /dangky): register a product"),
        ),
        Command(
            "status",
            status,
            ("hoso",),
            menu=N_("My registrations"),
            help=N_("/status (or /hoso): your registrations and their status"),
        ),
        Command(
            "cancel",
            cancel,
            ("huy",),
            menu=N_("Cancel the current registration"),
            help=N_("/cancel (or /huy): stop the registration in progress"),
        ),
        Command("start", start, ("batdau", "menu"), menu=N_("Main menu")),
        Command("help", help_command, ("huongdan", "trogiup"), menu=N_("Help")),
        Command(
            "language",
            language,
            ("ngonngu",),
            menu=N_("Change language"),
            help=N_("/language: change the language"),
        ),
        Form(REGISTER),
        Button(MenuButton.prefix, menu_button),
        Button(LanguageButton.prefix, choose_language),
        Button(EditReturned.prefix, edit_returned),
    )
