"""The producer's registration form, declared top to bottom as steps (see registration.mmd)."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from handlers import labels
from handlers.area import current_and_former, describe_match, office_contact, served_area
from handlers.callbacks import DossierButton, MenuButton
from handlers.context import Context
from handlers.duplicates import refuse_duplicate
from handlers.engine import SUMMARY, Answers, Flow, Step
from handlers.events import Choice, Outcome, Reply, Request
from handlers.i18n import N_, _
from handlers.validators import (
    Invalid,
    Option,
    display_phone,
    lacks_diacritics,
    parse_address,
    parse_organisation_name,
    parse_past_date,
    parse_person_name,
    parse_phone,
    parse_product_name,
)
from models.admin_units import CommuneMatch
from models.domain import (
    ProductGroup,
    RegistrationKind,
    SubjectType,
    Target,
    star_before,
    targets_for,
)
from models.registrations import (
    Registration,
    RegistrationInput,
    last_details_of,
    resubmit_registration,
    submit_registration,
)

__all__ = ["FLOW", "SUMMARY", "answers_of", "previous_details"]

FLOW_NAME = "register"
# Above this many communes the buttons would fill the screen; the producer types the name.
MAX_COMMUNE_BUTTONS = 12
REUSED = ("subject_type", "subject_name", "owner", "address", "phone")


def _labelled(mapping: dict[Any, str], words: dict[Any, str] | None = None) -> list[Option]:
    return [
        Option(str(key), _(label), _(words[key]) if words else "") for key, label in mapping.items()
    ]


def _is_renewal(answers: Answers) -> bool:
    return answers.get("kind") in (RegistrationKind.REEVALUATION, RegistrationKind.UPGRADE)


def _targets(answers: Answers) -> list[Target]:
    star = answers.get("current_star")
    return targets_for(RegistrationKind(answers["kind"]), int(star) if star else None)


# --- commune ---------------------------------------------------------------------------


def _commune_options(_answers: Answers, ctx: Context) -> list[Option]:
    communes = ctx.area.communes
    if len(communes) > MAX_COMMUNE_BUTTONS:
        return []
    return [Option(c.code, c.short_name) for c in communes]


def _parse_commune_text(text: str, _answers: Answers, ctx: Context) -> Answers:
    typed = " ".join(text.split())
    matches = ctx.area.match(typed)
    if len(matches) == 1:
        match = matches[0]
        return {
            "commune": match.commune.code,
            "commune_input": typed,
            "legacy_commune": match.legacy_name,
        }
    if current_and_former(matches):
        # A current unit's name, and a former unit's now in another one: say what each is now.
        raise Invalid(
            _("“{text}” is the name of more than one place. Which one do you mean?").format(
                text=html.escape(typed)
            ),
            [_ambiguous_option(m) for m in matches],
        )
    if matches:
        raise Invalid(
            _("“{text}” was split between several communes. Which one is yours now?").format(
                text=html.escape(typed)
            ),
            [Option(m.commune.code, m.commune.short_name) for m in matches],
        )
    outside = ctx.area.outside(typed)
    if outside:
        raise Invalid(
            _(
                "{commune} is not served by this bot: it receives registrations from {area} "
                "only. Please contact {contact}."
            ).format(
                commune=html.escape(" / ".join(c.name for c in outside)),
                area=html.escape(served_area(ctx.area)),
                contact=html.escape(office_contact(ctx)),
            )
        )
    raise Invalid(
        _("I could not find “{text}” in {area}. Did you mean one of these?").format(
            text=html.escape(typed), area=html.escape(served_area(ctx.area))
        ),
        [Option(c.code, c.short_name) for c in ctx.area.suggest(typed)],
    )


def _ambiguous_option(match: CommuneMatch) -> Option:
    value = match.commune.code
    return Option(
        value if match.legacy_id is None else f"{value}.{match.legacy_id}", describe_match(match)
    )


def _parse_commune_choice(value: str, _answers: Answers, ctx: Context) -> Answers:
    code, _sep, legacy_id = value.partition(".")
    legacy = ctx.area.legacy_label(int(legacy_id)) if legacy_id.isdecimal() else None
    if ctx.area.get(code) is None or (legacy_id and legacy is None):
        raise Invalid(_("Please choose one of the buttons."))
    return {"commune": code, "commune_input": None, "legacy_commune": legacy}


def _show_commune(answers: Answers, ctx: Context) -> str:
    commune = ctx.area.get(answers["commune"])
    name = commune.name if commune else answers["commune"]
    legacy = answers.get("legacy_commune")
    return _("{name} (formerly {legacy})").format(name=name, legacy=legacy) if legacy else name


# --- reuse of the previous registration's details ----------------------------------------


def _has_previous(answers: Answers) -> bool:
    return bool(answers.get("_previous"))


def _reuse_note(answers: Answers, ctx: Context) -> str:
    previous = answers["_previous"]
    return "\n".join(
        f"• {html.escape(value)}"
        for value in (
            previous["subject_name"],
            _(labels.SUBJECT_TYPE[SubjectType(previous["subject_type"])]),
            previous["owner"],
            previous["address"],
            display_phone(previous["phone"]),
        )
    )


def _parse_reuse(value: str, answers: Answers, _ctx: Context) -> Answers:
    if value == "yes":
        return {"reuse": "yes", **{key: answers["_previous"][key] for key in REUSED}}
    return {"reuse": "no"}


async def previous_details(ctx: Context) -> Answers:
    """Owner, subject, address and phone of the producer's last registration, if any."""
    last = await last_details_of(ctx.session, ctx.user.id)
    if last is None:
        return {}
    return {
        "_previous": {
            "subject_type": last.subject_type.value,
            "subject_name": last.subject_name,
            "owner": last.owner_name,
            "address": last.address,
            "phone": last.phone,
        }
    }


# --- the form --------------------------------------------------------------------------


def _text(key: str, parse: Any) -> Any:
    def parse_text(text: str, _answers: Answers, _ctx: Context) -> Answers:
        return {key: parse(text)}

    return parse_text


def _star_options(_answers: Answers, _ctx: Context) -> list[Option]:
    return [Option(str(star), labels.stars(star)) for star in (3, 4, 5)]


def _parse_issue_date(text: str, _answers: Answers, ctx: Context) -> Answers:
    return {"issue_date": parse_past_date(text, ctx.today()).isoformat()}


def _show_enum(key: str, mapping: dict[Any, str]) -> Any:
    return lambda answers, _ctx: _(mapping[answers[key]])


def _yes_no(_answers: Answers, _ctx: Context) -> list[Option]:
    return [
        Option("yes", _(labels.YES), _(labels.YES_WORDS)),
        Option("no", _(labels.NO), _(labels.NO_WORDS)),
    ]


def _show_date(answers: Answers, _ctx: Context) -> str:
    value = answers.get("issue_date")
    return dt.date.fromisoformat(value).strftime("%d/%m/%Y") if value else _("Not known")


def _show_location(answers: Answers, _ctx: Context) -> str:
    # Coordinates mean nothing to a producer; the officials get them with the registration.
    return _("Sent") if answers.get("location") else _("Not given")


def _target_label(target: Target, answers: Answers) -> str:
    """A re-evaluation that keeps the star says so ("Giữ 4 sao"); the table's column stays."""
    if answers.get("kind") == RegistrationKind.REEVALUATION and star_before(target) is None:
        return _("Keep {count} stars").format(count=target.value)
    return _(labels.TARGET[target])


def _owner_prompt(answers: Answers) -> str:
    if answers.get("subject_type") == SubjectType.HOUSEHOLD:
        return N_("Who is the head of the household? Type their full name.")
    return N_("Who is the legal representative? Type their full name.")


def _owner_label(answers: Answers) -> str:
    if answers.get("subject_type") == SubjectType.HOUSEHOLD:
        return N_("Head of household")
    return N_("Legal representative")


STEPS = (
    Step(
        "kind",
        N_("What would you like to register?"),
        label=N_("Registration"),
        options=lambda a, c: _labelled(labels.KIND, labels.KIND_WORDS),
        show=_show_enum("kind", labels.KIND),
        resets=("current_star", "issue_date", "target"),
        columns=1,
    ),
    Step(
        "commune",
        N_(
            "Which commune or ward is the product made in? Tap it, or type its name "
            "(old names before 2025 are fine too)."
        ),
        label=N_("Commune"),
        options=_commune_options,
        parse_text=_parse_commune_text,
        parse_choice=_parse_commune_choice,
        fills=("commune_input", "legacy_commune"),
        show=_show_commune,
        # A typed name may also be a former unit elsewhere: the commune parser decides.
        match_typed=False,
    ),
    Step(
        "product",
        N_("What is the product's name? (for example: Nước mắm cá cơm Sa Huỳnh)"),
        label=N_("Product"),
        parse_text=_text("product", parse_product_name),
    ),
    Step(
        "group",
        N_("Which product group does it belong to?"),
        label=N_("Product group"),
        options=lambda a, c: _labelled(labels.GROUP),
        show=_show_enum("group", labels.GROUP),
        columns=1,
    ),
    Step(
        "current_star",
        N_("How many stars does the product have now?"),
        label=N_("Current star"),
        options=_star_options,
        # An upgrade's target ("from 3 to 4 stars") already says the current star.
        when=lambda a: a.get("kind") == RegistrationKind.REEVALUATION,
        resets=("target",),
        show=lambda a, c: labels.stars(int(a["current_star"])),
        columns=3,
    ),
    Step(
        "issue_date",
        N_(
            "When was its OCOP certificate issued? Type the date as day/month/year, "
            "for example 15/03/2023. If you do not remember, tap “I don't know”."
        ),
        label=N_("Certificate issued"),
        parse_text=_parse_issue_date,
        when=_is_renewal,
        skip_label=N_("I don't know"),
        skip_words=labels.DONT_KNOW_WORDS,
        show=_show_date,
    ),
    Step(
        "reuse",
        N_("Use the same producer details as last time?"),
        options=_yes_no,
        parse_choice=_parse_reuse,
        when=_has_previous,
        note=_reuse_note,
    ),
    Step(
        "subject_type",
        N_("How do you produce: as an enterprise, a cooperative, a group or a household?"),
        label=N_("Form of production"),
        options=lambda a, c: _labelled(labels.SUBJECT_TYPE, labels.SUBJECT_TYPE_WORDS),
        show=_show_enum("subject_type", labels.SUBJECT_TYPE),
        columns=1,
    ),
    Step(
        "subject_name",
        N_("What is the registered name of the enterprise, cooperative or group?"),
        label=N_("Producer name"),
        parse_text=_text("subject_name", parse_organisation_name),
        when=lambda a: a.get("subject_type") != SubjectType.HOUSEHOLD,
    ),
    Step(
        "owner",
        N_("Who is the legal representative? Type their full name."),
        label=N_("Legal representative"),
        parse_text=_text("owner", parse_person_name),
        prompts=_owner_prompt,
        labels=_owner_label,
    ),
    Step(
        "address",
        N_("Where is the product made? Type the address (village, commune)."),
        label=N_("Production address"),
        parse_text=_text("address", parse_address),
    ),
    Step(
        "location",
        N_(
            "If you are at the production site now, you can send its location. "
            "Otherwise tap “Skip”."
        ),
        label=N_("Location"),
        request=Request.LOCATION,
        skip_label=N_("Skip"),
        skip_words=labels.SKIP_WORDS,
        show=_show_location,
        text_hint=N_("Tap “📍 Send my location”, or “Skip”."),
    ),
    Step(
        "phone",
        N_("What phone number can the officials call? Tap the button to share it, or type it."),
        label=N_("Phone"),
        request=Request.CONTACT,
        parse_text=_text("phone", parse_phone),
        show=lambda a, c: display_phone(a["phone"]),
    ),
    Step(
        "target",
        N_("Which star level are you registering for?"),
        label=N_("Star level registered"),
        options=lambda a, c: [Option(t.value, _target_label(t, a)) for t in _targets(a)],
        when=lambda a: "kind" in a,
        show=lambda a, c: _target_label(Target(a["target"]), a),
        columns=1,
    ),
    Step(
        "ecommerce",
        N_("Is the product sold on an e-commerce platform (Shopee, Lazada, Postmart, …)?"),
        label=N_("Sold online (e-commerce)"),
        options=_yes_no,
        show=lambda a, c: _(labels.YES) if a["ecommerce"] == "yes" else _(labels.NO),
    ),
)


def _summary_hints(answers: Answers, _ctx: Context) -> list[tuple[str, str]]:
    """Names typed without any accent mark go into the official table as typed: ask gently."""
    hints: list[tuple[str, str]] = []
    for key in ("subject_name", "owner"):
        value = answers.get(key)
        if (
            key in FLOW.by_key
            and FLOW.by_key[key].when(answers)
            and value
            and lacks_diacritics(value)
        ):
            hints.append(
                (
                    _(
                        "“{name}” is written without accents. Would you like to type it again "
                        "with accents? It goes into the official list as written."
                    ).format(name=html.escape(value)),
                    key,
                )
            )
    return hints


def to_input(answers: Answers, today: dt.date) -> RegistrationInput:
    household = answers["subject_type"] == SubjectType.HOUSEHOLD
    location = answers.get("location")
    issue_date = answers.get("issue_date")
    target = Target(answers["target"])
    star = answers.get("current_star") or star_before(target)
    return RegistrationInput(
        kind=RegistrationKind(answers["kind"]),
        target=target,
        programme_year=today.year,
        commune_code=answers["commune"],
        commune_input=answers.get("commune_input"),
        legacy_commune=answers.get("legacy_commune"),
        product_name=answers["product"],
        product_group=ProductGroup(answers["group"]),
        subject_type=SubjectType(answers["subject_type"]),
        subject_name=answers["owner"] if household else answers["subject_name"],
        owner_name=answers["owner"],
        address=answers["address"],
        phone=answers["phone"],
        latitude=location[0] if location else None,
        longitude=location[1] if location else None,
        ecommerce=answers["ecommerce"] == "yes",
        current_star=int(star) if star else None,
        certificate_issue_date=dt.date.fromisoformat(issue_date) if issue_date else None,
        certificate_id=answers.get("_certificate"),
    )


def answers_of(registration: Registration) -> Answers:
    """The form as it was submitted, to complete a returned registration."""
    answers: Answers = {
        "_registration": registration.id,
        "kind": registration.kind.value,
        "commune": registration.commune_code,
        "commune_input": registration.commune_input,
        "legacy_commune": registration.legacy_commune,
        "product": registration.product_name,
        "group": registration.product_group.value,
        "subject_type": registration.subject_type.value,
        "owner": registration.owner_name,
        "address": registration.address,
        "phone": registration.phone,
        "target": registration.target.value,
        "ecommerce": "yes" if registration.ecommerce else "no",
        "location": (
            [registration.latitude, registration.longitude]
            if registration.latitude is not None and registration.longitude is not None
            else None
        ),
        # A re-evaluation started from a reminder keeps the certificate it renews.
        "_certificate": registration.certificate_id,
    }
    if registration.subject_type is not SubjectType.HOUSEHOLD:
        answers["subject_name"] = registration.subject_name
    if registration.kind is not RegistrationKind.NEW:
        issued = registration.certificate_issue_date
        answers["issue_date"] = issued.isoformat() if issued else None
    if registration.kind is RegistrationKind.REEVALUATION:
        answers["current_star"] = str(registration.current_star)
    return answers


async def complete(answers: Answers, ctx: Context) -> Outcome:
    form = to_input(answers, ctx.today())
    await refuse_duplicate(answers, ctx, form)  # the same product may not wait twice
    returned_id = answers.get("_registration")
    if returned_id is not None:
        registration = await resubmit_registration(
            ctx.session, int(returned_id), ctx.user.id, form, ctx.services.clock()
        )
        if registration is None:
            return Outcome([Reply(_("This registration cannot be changed any more."))])
        headline = _("✅ Your completed registration was sent again.")
    else:
        registration = await submit_registration(
            ctx.session, ctx.user.id, ctx.user.channel, form, ctx.services.clock()
        )
        headline = _("✅ Your registration was received.")
    lines = [
        headline,
        _("Receipt code: <b>{code}</b>").format(code=registration.code),
        "",
        *FLOW.summary_lines(answers, ctx),
        "",
        _("The commune's OCOP officials will review it. See its status any time with /status."),
    ]
    another = Choice(_("📝 Register another product"), MenuButton("new").encode())
    mine = Choice(_("📋 My registrations"), MenuButton("status").encode())
    # By code: the new registration has no id before the batch's flush.
    papers = Choice(
        _("📎 Send the dossier's papers"), DossierButton("c", (registration.code,)).encode()
    )
    return Outcome([Reply("\n".join(lines), choices=((papers,), (another,), (mine,)))])


FLOW = Flow(
    name=FLOW_NAME,
    steps=STEPS,
    summary_title=N_("Please check your registration"),
    submit_label=N_("✅ Submit registration"),
    complete=complete,
    cancelled=N_("Registration cancelled. Nothing was sent."),
    confirm_cancel=True,
    progress_after="kind",
    summary_hints=_summary_hints,
)
