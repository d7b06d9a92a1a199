"""The producer's dossier in the chat: the checklist with ticks, choosing the item a photo or file
is for (a button or the caption's words), several files per item, removing a wrong one.

Which registration and item the next file goes to is kept in the chat's conversation (outside a
form), so it survives restarts. A file is only looked at by its long task
(handlers/dossier_tasks.py), after the event's transaction: downloading never holds the lock.
"""

from __future__ import annotations

import html
from typing import Any

from handlers.callbacks import DossierButton
from handlers.checklist import Checklist, Completeness, Item, load_checklist
from handlers.context import Context
from handlers.engine import change_meta, meta_of
from handlers.events import Choice, LongTask, Outcome, Reply
from handlers.i18n import _
from handlers.routes import Button, Call, Entry
from models.conversations import Conversation
from models.domain import RegistrationStatus, parse_number
from models.dossier import DossierFile, files_of, remove_file, unreferenced
from models.registrations import Registration, open_registrations_of, registration_id_by_code

# Telegram's Bot API downloads files of at most 20 MB (getFile); larger ones cannot be read.
DOWNLOAD_LIMIT = 20 * 1024 * 1024
CLOSED = (RegistrationStatus.WITHDRAWN,)
# Registrations whose papers the status list offers to send (a decision is still to come).
OPEN = (RegistrationStatus.SUBMITTED, RegistrationStatus.RETURNED, RegistrationStatus.ACCEPTED)
FORM_ITEM = "phieu"  # the checklist item the signed registration form ticks
ITEM_BUTTON_LABEL = 48  # characters of an item's label on a button


def checklist_of(ctx: Context) -> Checklist:
    return load_checklist(ctx.services.checklist_path)


def progress_line(checklist: Checklist, registration: Registration, present: set[str]) -> str:
    """ "📎 Hồ sơ 5/8 · thiếu: …", the line the review card and the digest show."""
    done = checklist.completeness(registration.kind, present)
    line = _("📎 Dossier {done}/{total}").format(done=done.done, total=done.total)
    if done.missing:
        names = ", ".join(item.label() for item in done.missing)
        line += " · " + _("missing: {items}").format(items=html.escape(names))
    return line


def _short(label: str) -> str:
    return label if len(label) <= ITEM_BUTTON_LABEL else label[: ITEM_BUTTON_LABEL - 1] + "…"


def item_buttons(
    registration: Registration, items: tuple[Item, ...], prefix: str = "📎 "
) -> tuple[tuple[Choice, ...], ...]:
    return tuple(
        (
            Choice(
                prefix + _short(item.label()),
                DossierButton("i", (str(registration.id), item.key)).encode(),
            ),
        )
        for item in items
    )


def checklist_text(
    checklist: Checklist, registration: Registration, counts: dict[str, int]
) -> tuple[str, Completeness]:
    kind = checklist.for_kind(registration.kind)
    done = checklist.completeness(registration.kind, counts)
    lines = [
        _("<b>Dossier of {code}</b> ({product}): {done}/{total} required papers").format(
            code=registration.code,
            product=html.escape(registration.product_name),
            done=done.done,
            total=done.total,
        ),
        "",
    ]
    for item in kind.mandatory:
        mark = "✅" if counts.get(item.key) else "⬜"
        lines.append(f"{mark} {html.escape(item.label())}{_files(counts.get(item.key, 0))}")
    if kind.optional:
        lines += ["", _("Optional:")]
        for item in kind.optional:
            mark = "✅" if counts.get(item.key) else "▫️"
            lines.append(f"{mark} {html.escape(item.label())}{_files(counts.get(item.key, 0))}")
    lines += ["", _("Tap an item, then send its photos or files (JPEG, PNG, PDF, DOCX, XLSX).")]
    return "\n".join(lines), done


def _files(count: int) -> str:
    return " " + _("({count} files)").format(count=count) if count > 1 else ""


async def checklist_reply(ctx: Context, registration: Registration, notice: str = "") -> Reply:
    """The checklist with ticks, and a button per item (the missing ones first)."""
    checklist = checklist_of(ctx)
    counts: dict[str, int] = {}
    for row in await files_of(ctx.session, registration.id):
        counts[row.item] = counts.get(row.item, 0) + 1
    text, done = checklist_text(checklist, registration, counts)
    kind = checklist.for_kind(registration.kind)
    ordered = done.missing + tuple(item for item in kind.all if item not in done.missing)
    buttons = item_buttons(registration, ordered)
    extra: list[Choice] = []
    if counts:
        extra.append(
            Choice(_("🗑 Remove a file"), DossierButton("x", (str(registration.id),)).encode())
        )
    extra.append(Choice(_("📄 Form to sign"), DossierButton("f", (str(registration.id),)).encode()))
    return Reply((notice + "\n\n" if notice else "") + text, choices=(*buttons, tuple(extra)))


def _state(conversation: Conversation) -> dict[str, Any]:
    if conversation.flow is not None:
        return {}
    return dict(meta_of(conversation).dossier or {})


def in_progress(conversation: Conversation) -> bool:
    """Whether the chat is adding files to a dossier (a file it sends is one of them)."""
    return bool(_state(conversation))


def _set_state(conversation: Conversation, state: dict[str, Any]) -> None:
    if conversation.flow is None:  # a form's metadata is the form's
        change_meta(conversation, dossier=state or None)


async def _own(call: Call, registration_id: str) -> Registration | Outcome:
    """The caller's own registration a button names, or the reply refusing it."""
    number = parse_number(registration_id)
    registration = await call.ctx.session.get(Registration, number) if number is not None else None
    if registration is None or registration.submitted_by_user_id != call.ctx.user.id:
        return Outcome([Reply(_("This registration does not exist."))])
    if registration.status in CLOSED:
        text = _("{code} was withdrawn; its dossier is closed.").format(code=registration.code)
        return Outcome([Reply(text)])
    return registration


async def show_by_code(call: Call) -> Outcome:
    """dz:c:<code> — the receipt's button (the registration had no id yet when it was sent)."""
    code = call.args[0] if call.args else ""
    number = await registration_id_by_code(call.ctx.session, code)
    return await show(Call(call.ctx, call.conversation, call.event, (str(number or ""),)))


async def show(call: Call) -> Outcome:
    """dz:l:<registration> — the checklist; the next files go to this registration."""
    loaded = await _own(call, call.args[0] if call.args else "")
    if isinstance(loaded, Outcome):
        return loaded
    _set_state(call.conversation, {"r": loaded.id})
    return Outcome([await checklist_reply(call.ctx, loaded)])


def receive_task(registration: Registration, item: str, pending: dict[str, Any]) -> LongTask:
    """Taking in one file (handlers/dossier_tasks.run_receive), after the event's batch."""
    return LongTask("dossier_file", {"registration": registration.id, "item": item, **pending})


async def choose_item(call: Call) -> Outcome:
    """dz:i:<registration>:<item> — files for this item next; a file waiting for its item
    goes there at once."""
    if len(call.args) != 2:
        return Outcome([Reply(_("This button is not valid any more."))])
    loaded = await _own(call, call.args[0])
    if isinstance(loaded, Outcome):
        return loaded
    item = checklist_of(call.ctx).item(call.args[1])
    if item is None or item not in checklist_of(call.ctx).for_kind(loaded.kind).all:
        return Outcome([Reply(_("This button is not valid any more."))])
    state = _state(call.conversation)
    pending = state.get("p") if state.get("r") == loaded.id else None
    _set_state(call.conversation, {"r": loaded.id, "i": item.key})
    label = html.escape(item.label())
    if isinstance(pending, dict):
        text = _("📥 Saving the file for «{item}»…").format(item=label)
        return Outcome([Reply(text)], tasks=[receive_task(loaded, item.key, pending)])
    text = _(
        "Send the photos or files for «{item}» ({code}). You can send several; tap "
        "Done when finished."
    ).format(item=label, code=loaded.code)
    done = Choice(_("✔️ Done"), DossierButton("l", (str(loaded.id),)).encode())
    return Outcome([Reply(text, choices=((done,),))], keep_buttons=True)


async def _open_registrations(ctx: Context) -> list[Registration]:
    return await open_registrations_of(ctx.session, ctx.user.id, CLOSED)


def refuse_size(size: int | None) -> str | None:
    """Why a file of `size` bytes cannot be taken, before downloading it; None if it can."""
    if size is not None and size > DOWNLOAD_LIMIT:
        return _(
            "This file is larger than 20 MB, the most Telegram lets a bot receive. Please "
            "send a smaller scan or photo (for a PDF, scan at a lower resolution)."
        )
    if size == 0:
        return _("This file is empty (0 bytes). Please send it again.")
    return None


async def receive(call: Call) -> Outcome:
    """A photo or file sent outside a form: for the chosen item, the item its caption names, or
    after asking which item it is."""
    ctx, event = call.ctx, call.event
    attachment = event.attachment
    if attachment is None or attachment.file_id is None:
        return Outcome([Reply(_("I could not read this file. Please send it again."))])
    refused = refuse_size(attachment.size)
    if refused is not None:
        return Outcome([Reply(refused)])
    state = _state(call.conversation)
    registrations = await _open_registrations(ctx)
    chosen = [r for r in registrations if r.id == state.get("r")]
    if not chosen and len(registrations) == 1:
        chosen = registrations
    if not registrations:
        text = _("Register your product first (/dangky); then send the papers of its dossier here.")
        return Outcome([Reply(text)])
    if not chosen:
        text = _("Which registration is this file for? Choose one, then send the file again.")
        return Outcome([_which_registration(registrations, text)])
    registration = chosen[0]
    checklist = checklist_of(ctx)
    pending = {
        "file_id": attachment.file_id,
        "file_name": attachment.file_name,
        "size": attachment.size,
    }
    item = checklist.match_caption(registration.kind, event.text)
    if item is None and state.get("r") == registration.id and state.get("i"):
        item = checklist.item(str(state["i"]))
    if item is None:
        _set_state(call.conversation, {"r": registration.id, "p": pending})
        text = _("Which paper of {code} is this file? Tap its item:").format(code=registration.code)
        kind = checklist.for_kind(registration.kind)
        return Outcome([Reply(text, choices=item_buttons(registration, kind.all, prefix=""))])
    _set_state(call.conversation, {"r": registration.id, "i": item.key})
    text = _("📥 Saving the file for «{item}»…").format(item=html.escape(item.label()))
    return Outcome([Reply(text)], tasks=[receive_task(registration, item.key, pending)])


async def list_files(call: Call) -> Outcome:
    """dz:x:<registration> — the files, each with a button that removes it."""
    loaded = await _own(call, call.args[0] if call.args else "")
    if isinstance(loaded, Outcome):
        return loaded
    checklist = checklist_of(call.ctx)
    rows = await files_of(call.ctx.session, loaded.id)
    if not rows:
        return Outcome([await checklist_reply(call.ctx, loaded)])
    choices = []
    for row in rows[:30]:
        item = checklist.item(row.item)
        name = item.label() if item else row.item
        label = "🗑 " + _short(f"{name}: {row.file_name}")
        choices.append((Choice(label, DossierButton("d", (str(row.id),)).encode()),))
    text = _("Tap the file to remove:")
    return Outcome([Reply(text, choices=tuple(choices))])


async def delete_file(call: Call) -> Outcome:
    """dz:d:<file> — remove one file; its content goes from the store if nothing else uses it."""
    number = parse_number(call.args[0]) if call.args else None
    row = await call.ctx.session.get(DossierFile, number) if number is not None else None
    if row is None:
        return Outcome([Reply(_("This file was already removed."))])
    loaded = await _own(call, str(row.registration_id))
    if isinstance(loaded, Outcome):
        return loaded
    await remove_file(call.ctx.session, row.id)
    gone = await unreferenced(call.ctx.session, [row.digest])
    notice = _("🗑 Removed {name}.").format(name=html.escape(row.file_name))
    tasks = [LongTask("dossier_purge", {"digests": gone})] if gone else []
    return Outcome([await checklist_reply(call.ctx, loaded, notice)], tasks=tasks)


async def form(call: Call) -> Outcome:
    """dz:f:<registration> — the registration form, filled in, to print, sign and stamp."""
    loaded = await _own(call, call.args[0] if call.args else "")
    if isinstance(loaded, Outcome):
        return loaded
    if checklist_of(call.ctx).item(FORM_ITEM) is not None:  # its signed scan goes there next
        _set_state(call.conversation, {"r": loaded.id, "i": FORM_ITEM})
    text = _("Preparing your registration form…")
    return Outcome([Reply(text)], tasks=[LongTask("dossier_form", {"registration": loaded.id})])


def send_papers_button() -> Choice:
    """The status list's one button to the dossiers (which registration comes next)."""
    return Choice(_("📎 Send the dossier's papers"), DossierButton("r").encode())


async def choose_registration(call: Call) -> Outcome:
    """dz:r — the checklist of the producer's one open registration, or which one to choose."""
    registrations = await _open_registrations(call.ctx)
    if len(registrations) == 1:
        return await show(
            Call(call.ctx, call.conversation, call.event, (str(registrations[0].id),))
        )
    if not registrations:
        text = _("Register your product first (/dangky); then send the papers of its dossier here.")
        return Outcome([Reply(text)])
    return Outcome(
        [_which_registration(registrations, _("Which registration are the papers for?"))]
    )


def _which_registration(registrations: list[Registration], text: str) -> Reply:
    choices = tuple(
        (Choice(f"{r.code} · {_short(r.product_name)}", DossierButton("l", (str(r.id),)).encode()),)
        for r in registrations[:8]
    )
    return Reply(text, choices=choices)


def routes() -> tuple[Entry, ...]:
    return (Button(DossierButton.prefix, _producer_button),)


async def _producer_button(call: Call) -> Outcome:
    action, *rest = call.args or ("",)
    handler = {
        "l": show,
        "c": show_by_code,
        "r": choose_registration,
        "i": choose_item,
        "x": list_files,
        "d": delete_file,
        "f": form,
    }.get(action)
    if handler is None:
        return Outcome([Reply(_("This button is not valid any more."))])
    return await handler(Call(call.ctx, call.conversation, call.event, tuple(rest)))
