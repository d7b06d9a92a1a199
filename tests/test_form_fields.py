"""The registration form's field table is its one source of truth: every answer goes to the
registration and comes back unchanged, and the flow diagram names every question (issue 11,
item 5)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from handlers.engine import FormMeta
from handlers.registration import FIELDS, STEPS, answers_from, answers_of, meta_for, to_input
from handlers.reports.export import DETAIL_COLUMNS
from models.domain import RegistrationKind, SubjectType
from models.registrations import Registration, RegistrationInput

TODAY = dt.date(2026, 11, 29)
# Answers no column keeps: a question about the form itself.
NOT_STORED = {"reuse"}

HOUSEHOLD_NEW: dict[str, object] = {
    "kind": "new",
    "commune": "21478",
    "commune_input": None,
    "legacy_commune": None,
    "product": "Nước mắm cá cơm",
    "group": "food",
    "subject_type": "household",
    "owner": "Nguyễn Văn A",
    "address": "Thôn Thạnh Đức, phường Sa Huỳnh",
    "phone": "0905123456",
    "target": "3",
    "ecommerce": "no",
    "location": None,
}
COOPERATIVE_REEVALUATION: dict[str, object] = {
    **HOUSEHOLD_NEW,
    "kind": "reeval",
    "commune_input": "Pho Thanh",
    "legacy_commune": "xã Phổ Thạnh",
    "subject_type": "cooperative",
    "subject_name": "HTX Nước mắm Sa Huỳnh",
    "current_star": "4",
    "issue_date": "2023-03-15",
    "target": "4",
    "ecommerce": "yes",
    "location": [14.67, 109.01],
}
ENTERPRISE_UPGRADE_DATE_UNKNOWN: dict[str, object] = {
    **COOPERATIVE_REEVALUATION,
    "kind": "upgrade",
    "subject_type": "enterprise",
    "subject_name": "Công ty TNHH Sa Huỳnh",
    "issue_date": None,
    "target": "3to4",
}
del ENTERPRISE_UPGRADE_DATE_UNKNOWN["current_star"]  # an upgrade's target says it


def _stored(form: RegistrationInput, registration_id: int) -> Registration:
    return Registration(id=registration_id, **dataclasses.asdict(form))


@pytest.mark.parametrize(
    "answers",
    [HOUSEHOLD_NEW, COOPERATIVE_REEVALUATION, ENTERPRISE_UPGRADE_DATE_UNKNOWN],
    ids=["household new", "cooperative re-evaluation", "enterprise upgrade"],
)
def test_every_answer_goes_to_the_registration_and_comes_back(answers: dict[str, object]) -> None:
    form = to_input(dict(answers), TODAY, FormMeta())
    stored = _stored(form, 17)
    again = answers_of(stored)
    assert again == answers  # only the form's answers: what it is for is kept apart
    assert meta_for(stored).registration == 17
    # The form read back submits the same registration.
    assert to_input(again, TODAY, meta_for(stored)) == form


def test_the_field_table_covers_every_question_and_every_column() -> None:
    keys = {field.key for field in FIELDS}
    asked = {step.key for step in STEPS} | {key for step in STEPS for key in step.fills}
    assert asked - NOT_STORED == keys
    columns = {column for field in FIELDS for column in field.columns}
    # The year and the renewed certificate come from the conversation, not from a question.
    assert columns | {"programme_year", "certificate_id"} == {
        f.name for f in dataclasses.fields(RegistrationInput)
    }


def test_a_reminders_partial_record_fills_only_what_is_known() -> None:
    answers = answers_from(
        {
            "kind": RegistrationKind.REEVALUATION,
            "product_name": "Mạch nha",
            "current_star": 3,
            "subject_type": SubjectType.HOUSEHOLD,
            "subject_name": "Trần Thị B",
            "owner_name": "Trần Thị B",
        }
    )
    assert answers == {
        "kind": "reeval",
        "product": "Mạch nha",
        "current_star": "3",
        "subject_type": "household",
        "owner": "Trần Thị B",
    }


def test_the_flow_diagram_names_every_question() -> None:
    """registration.mmd draws each question as a node named by its step's key, and no
    question that the steps do not have."""
    diagram = (Path(__file__).parent.parent / "handlers" / "registration.mmd").read_text()
    lines = [line for line in diagram.splitlines() if not line.startswith("%%")]
    # A question is a rectangle: `key[...]` (rounded, stadium and diamond nodes are not).
    nodes = set(re.findall(r"(?<![\w(])([a-z_]+)\[(?![(\[])", "\n".join(lines)))
    others = {"suggest", "which", "notserved", "summary", "edit", "retype"}
    assert nodes - others == {step.key for step in STEPS}


def test_the_exports_detail_sheet_shows_every_column_the_form_fills() -> None:
    """A field added to the form's table without a column in the export's detail sheet (and
    its CSV) would be stored but never seen by the office."""
    shown = {getattr(column.field, "key", None) for column in DETAIL_COLUMNS}
    assert {column for field in FIELDS for column in field.columns} <= shown


def test_a_re_evaluation_renews_the_certificate_it_was_started_for() -> None:
    form = to_input(dict(COOPERATIVE_REEVALUATION), TODAY, FormMeta(certificate=4))
    assert form.certificate_id == 4
    assert meta_for(_stored(form, 17)) == FormMeta(registration=17, certificate=4)
