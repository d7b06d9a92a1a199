"""The producer's registration form, declared top to bottom as steps (see registration.mmd)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from handlers import labels
from handlers.area import current_and_former, describe_match, office_contact, served_area
from handlers.callbacks import DossierButton, MenuButton
from handlers.context import Context
from handlers.duplicates import refuse_duplicate
from handlers.engine import SUMMARY, Answers, Flow, FormMeta, Step, meta_of
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

__all__ = [
    "FIELDS",
    "FLOW",
    "SUMMARY",
    "answers_from",
    "answers_of",
    "meta_for",
    "previous_details",
]

FLOW_NAME = "register"
# Above this many communes the buttons would fill the screen; the producer types the name.
MAX_COMMUNE_BUTTONS = 12


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


def _has_previous(meta: FormMeta) -> bool:
    return bool(meta.previous)


def _reuse_note(_answers: Answers, ctx: Context) -> str:
    previous = meta_of(ctx.conversation).previous or {}
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


def _parse_reuse(value: str, _answers: Answers, ctx: Context) -> Answers:
    if value == "yes":
        return {"reuse": "yes", **(meta_of(ctx.conversation).previous or {})}
    return {"reuse": "no"}


async def previous_details(ctx: Context) -> FormMeta:
    """Owner, subject, address and phone of the producer's last registration, if any, for the
    form to offer again."""
    if ctx.registered_before is False:  # known with the sender: no registration to look at
        return FormMeta()
    last = await last_details_of(ctx.session, ctx.user.id)
    if last is None:
        return FormMeta()
    values = dict(last._mapping)
    return FormMeta(
        previous={field.key: field.to_answer(values) for field in FIELDS if field.reused}
    )


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
        offered=_has_previous,
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


# --- the field table: each form key, its registration column(s), both ways ------------------


Values = Mapping[str, Any]  # a registration's columns by name (a model, an input, a query row)


@dataclass(frozen=True)
class Field:
    """One answer of the form and the registration column(s) it fills: `to_input` reads the
    answers into column values, `to_answer` reads the columns back into the answer, for a
    registration opened again (returned, corrected), a reminder's re-evaluation and reuse.
    `applies`: whether a registration with these values has the answer at all; `reused`: the
    answer is offered again from the producer's last registration."""

    key: str
    columns: tuple[str, ...]
    to_input: Callable[[Answers], dict[str, Any]]
    to_answer: Callable[[Values], Any]
    applies: Callable[[Values], bool] = lambda values: True
    reused: bool = False


def _column(
    key: str,
    column: str,
    to_input: Callable[[Any], Any] = lambda value: value,
    to_answer: Callable[[Any], Any] = lambda value: value,
    **options: Any,
) -> Field:
    """An answer stored as one column, converted each way (a required answer: `answers[key]`)."""
    return Field(
        key,
        (column,),
        lambda answers: {column: to_input(answers[key])},
        lambda values: to_answer(values[column]),
        **options,
    )


def _optional(key: str, column: str) -> Field:
    return Field(key, (column,), lambda a: {column: a.get(key)}, lambda v: v[column])


def _enum_value(value: Any) -> Any:
    return value.value


def _household(values: Values) -> bool:
    return bool(values["subject_type"] is SubjectType.HOUSEHOLD)


def _subject_name(answers: Answers) -> dict[str, Any]:
    household = answers["subject_type"] == SubjectType.HOUSEHOLD
    return {"subject_name": answers["owner"] if household else answers["subject_name"]}


def _location(answers: Answers) -> dict[str, Any]:
    location = answers.get("location")
    return {
        "latitude": location[0] if location else None,
        "longitude": location[1] if location else None,
    }


def _location_answer(values: Values) -> list[float] | None:
    latitude, longitude = values["latitude"], values["longitude"]
    return [latitude, longitude] if latitude is not None and longitude is not None else None


def _current_star(answers: Answers) -> dict[str, Any]:
    star = answers.get("current_star") or star_before(Target(answers["target"]))
    return {"current_star": int(star) if star else None}


def _issue_date(answers: Answers) -> dict[str, Any]:
    issued = answers.get("issue_date")
    return {"certificate_issue_date": dt.date.fromisoformat(issued) if issued else None}


FIELDS = (
    _column("kind", "kind", RegistrationKind, _enum_value),
    _column("commune", "commune_code"),
    _optional("commune_input", "commune_input"),
    _optional("legacy_commune", "legacy_commune"),
    _column("product", "product_name"),
    _column("group", "product_group", ProductGroup, _enum_value),
    _column("subject_type", "subject_type", SubjectType, _enum_value, reused=True),
    Field(
        "subject_name",
        ("subject_name",),
        _subject_name,
        lambda values: values["subject_name"],
        applies=lambda values: not _household(values),
        reused=True,
    ),
    _column("owner", "owner_name", reused=True),
    _column("address", "address", reused=True),
    _column("phone", "phone", reused=True),
    _column("target", "target", Target, _enum_value),
    _column("ecommerce", "ecommerce", lambda a: a == "yes", lambda v: "yes" if v else "no"),
    Field("location", ("latitude", "longitude"), _location, _location_answer),
    Field(
        "current_star",
        ("current_star",),
        _current_star,
        lambda values: str(values["current_star"]),
        applies=lambda values: values["kind"] is RegistrationKind.REEVALUATION,
    ),
    Field(
        "issue_date",
        ("certificate_issue_date",),
        _issue_date,
        lambda v: v["certificate_issue_date"].isoformat() if v["certificate_issue_date"] else None,
        applies=lambda values: values["kind"] is not RegistrationKind.NEW,
    ),
)


def to_input(answers: Answers, today: dt.date, meta: FormMeta) -> RegistrationInput:
    """The registration the answers describe; `meta`: the certificate a re-evaluation renews."""
    columns: dict[str, Any] = {}
    for field in FIELDS:
        columns.update(field.to_input(answers))
    return RegistrationInput(**columns, programme_year=today.year, certificate_id=meta.certificate)


def answers_from(values: Values) -> Answers:
    """The answers that registration columns give (those known: a reminder knows a few)."""
    return {
        field.key: field.to_answer(values)
        for field in FIELDS
        if all(column in values for column in field.columns) and field.applies(values)
    }


def answers_of(registration: Registration) -> Answers:
    """The form as it was submitted, to complete a returned registration."""
    values = {column: getattr(registration, column) for f in FIELDS for column in f.columns}
    return answers_from(values)


def meta_for(registration: Registration) -> FormMeta:
    """What a form changing `registration` is for: that registration, and the certificate it
    renews (a re-evaluation started from a reminder keeps it)."""
    return FormMeta(registration=registration.id, certificate=registration.certificate_id)


async def complete(answers: Answers, ctx: Context) -> Outcome:
    meta = meta_of(ctx.conversation)
    form = to_input(answers, ctx.today(), meta)
    await refuse_duplicate(answers, ctx, form)  # the same product may not wait twice
    returned_id = meta.registration
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
        *FLOW.summary_lines(answers, ctx, meta),
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
