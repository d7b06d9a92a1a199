"""Officials and the dossier: download one registration's files as a ZIP, and return a
registration asking for particular papers (chosen with buttons), which the producer's message
then lists with a button each to send them."""

from __future__ import annotations

import html

from handlers import review
from handlers.callbacks import DossierOfficial
from handlers.dossier import checklist_of, progress_line
from handlers.engine import FormMeta, change_meta, meta_of
from handlers.events import Choice, LongTask, Outcome, Reply
from handlers.i18n import N_, _
from handlers.routes import Button, Call, Command, Entry, refusal
from models.domain import RegistrationStatus, Role, parse_number
from models.dossier import present_items
from models.officials import in_scope
from models.registrations import Registration, can_change, registrations_in

MISSING_BUTTONS = 5  # registrations /missing offers to ask for papers, the oldest first
UNDECIDED = (RegistrationStatus.SUBMITTED, RegistrationStatus.RETURNED, RegistrationStatus.ACCEPTED)


async def _load(call: Call) -> Registration | Outcome:
    number = parse_number(call.args[0]) if call.args else None
    registration = await call.ctx.session.get(Registration, number) if number is not None else None
    if registration is None:
        return Outcome([Reply(_("This registration does not exist."))])
    if not in_scope(call.ctx.user, registration.commune_code):
        return Outcome([refusal(Role.OFFICIAL)], refused=f"out of scope {registration.code}")
    return registration


async def download(call: Call) -> Outcome:
    """dzo:z:<registration> — the whole dossier as one ZIP (a long task)."""
    loaded = await _load(call)
    if isinstance(loaded, Outcome):
        return loaded
    text = _("Packing the dossier of {code}…").format(code=loaded.code)
    return Outcome([Reply(text)], tasks=[LongTask("dossier_zip", {"registration": loaded.id})])


def _chosen(call: Call, registration: Registration) -> list[str]:
    if call.conversation.flow is not None:
        return []
    asking = meta_of(call.conversation).asking
    if isinstance(asking, dict) and asking.get("r") == registration.id:
        return [str(key) for key in asking.get("items", [])]
    return []


def _ask_reply(call: Call, registration: Registration, chosen: list[str]) -> Reply:
    checklist = checklist_of(call.ctx)
    kind = checklist.for_kind(registration.kind)
    rows = []
    for item in kind.all:
        mark = "☑️" if item.key in chosen else "⬜"
        label = f"{mark} {item.label()}"[:60]
        rows.append(
            (Choice(label, DossierOfficial("t", (str(registration.id), item.key)).encode()),)
        )
    go = Choice(
        _("↩️ Return, asking for {count}").format(count=len(chosen)),
        DossierOfficial("n", (str(registration.id),)).encode(),
    )
    rows.append((go,))
    text = _(
        "Which papers should the producer send for {code}? Tap to choose, then tap Return."
    ).format(code=registration.code)
    return Reply(text, choices=tuple(rows))


async def ask(call: Call) -> Outcome:
    """dzo:a:<registration> — choose the papers to ask for; the missing ones are chosen."""
    loaded = await _load(call)
    if isinstance(loaded, Outcome):
        return loaded
    if not can_change(loaded, RegistrationStatus.RETURNED):
        return Outcome([Reply(_("{code} cannot be returned now.").format(code=loaded.code))])
    present = (await present_items(call.ctx.session, [loaded.id]))[loaded.id]
    missing = checklist_of(call.ctx).completeness(loaded.kind, present).missing
    chosen = [item.key for item in missing]
    _remember(call, loaded, chosen)
    return Outcome([_ask_reply(call, loaded, chosen)])


def _remember(call: Call, registration: Registration, chosen: list[str]) -> None:
    if call.conversation.flow is None:  # a form's metadata is the form's
        asking = {"r": registration.id, "items": chosen}
        change_meta(call.conversation, asking=asking)


async def toggle(call: Call) -> Outcome:
    """dzo:t:<registration>:<item> — add or drop one paper from the request."""
    loaded = await _load(call)
    if isinstance(loaded, Outcome):
        return loaded
    key = call.args[1] if len(call.args) > 1 else ""
    if checklist_of(call.ctx).item(key) is None:
        return Outcome([Reply(_("This button is not valid any more."))])
    chosen = _chosen(call, loaded)
    chosen = [k for k in chosen if k != key] if key in chosen else [*chosen, key]
    _remember(call, loaded, chosen)
    return Outcome([_ask_reply(call, loaded, chosen)])


async def return_asking(call: Call) -> Outcome:
    """dzo:n:<registration> — the usual return (a reason to write), with the papers chosen."""
    loaded = await _load(call)
    if isinstance(loaded, Outcome):
        return loaded
    if not can_change(loaded, RegistrationStatus.RETURNED):
        return Outcome([Reply(_("{code} cannot be returned now.").format(code=loaded.code))])
    chosen = _chosen(call, loaded)
    meta = FormMeta(
        registration=loaded.id, status=RegistrationStatus.RETURNED.value, items=list(chosen)
    )
    card = review.card(loaded, call.ctx)
    replies = review.NOTE.begin(call.conversation, call.ctx, {}, meta=meta)
    return Outcome([Reply(card), *replies])


async def missing(call: Call) -> Outcome:
    """`/missing` (/thieuhoso): every paper still missing, per registration to be decided in
    the official's communes, with a button to ask the producer for them."""
    ctx = call.ctx
    everywhere = ctx.user.role is Role.ADMIN or ctx.user.scope is None
    registrations = await registrations_in(
        ctx.session, UNDECIDED, None if everywhere else ctx.user.scope
    )
    present = await present_items(ctx.session, [r.id for r in registrations])
    checklist = checklist_of(ctx)
    lines: list[str] = []
    asks: list[tuple[Choice, ...]] = []
    count = 0
    for registration in registrations:
        done = checklist.completeness(registration.kind, present[registration.id])
        if done.complete:
            continue
        count += 1
        commune = ctx.area.get(registration.commune_code)
        lines.append(
            f"• <b>{registration.code}</b> · {html.escape(registration.product_name)} · "
            f"{html.escape(commune.short_name if commune else registration.commune_code)}"
        )
        lines.append("   " + progress_line(checklist, registration, present[registration.id]))
        if registration.status is RegistrationStatus.SUBMITTED and len(asks) < MISSING_BUTTONS:
            label = _("📎 Ask for papers: {code}").format(code=registration.code)
            asks.append((Choice(label, DossierOfficial("a", (str(registration.id),)).encode()),))
    if not lines:
        return Outcome([Reply(_("Every dossier to be decided has its required papers."))])
    title = _("<b>Papers still missing</b> ({count} registrations)").format(count=count)
    return Outcome([Reply("\n".join([title, "", *lines]), choices=tuple(asks))])


async def cover(call: Call) -> Outcome:
    """`/coverletter [year]` (/congvan): the commune's letter to the province, as DOCX."""
    ctx = call.ctx
    year = parse_number(call.args[0], max_digits=4) if call.args else ctx.today().year
    if year is None or not 2018 <= year <= ctx.today().year + 1:
        return Outcome([Reply(_("Usage: /congvan [year], for example /congvan 2026."))])
    text = _("Preparing the cover letter…")
    return Outcome([Reply(text)], tasks=[LongTask("dossier_cover", {"year": year})])


def routes() -> tuple[Entry, ...]:
    return (
        Button(DossierOfficial.prefix, _official_button, role=Role.OFFICIAL),
        Command(
            "missing",
            missing,
            ("thieuhoso",),
            role=Role.OFFICIAL,
            help=N_(
                "/missing: papers missing from dossiers; /coverletter [year]: the commune's letter"
            ),
        ),
        Command("coverletter", cover, ("congvan",), role=Role.OFFICIAL),
    )


async def _official_button(call: Call) -> Outcome:
    action, *rest = call.args or ("",)
    handler = {"z": download, "a": ask, "t": toggle, "n": return_asking}.get(action)
    if handler is None:
        return Outcome([Reply(_("This button is not valid any more."))])
    return await handler(Call(call.ctx, call.conversation, call.event, tuple(rest)))
