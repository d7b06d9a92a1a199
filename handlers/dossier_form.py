"""The registration form to sign (Phiếu đăng ký sản phẩm OCOP), filled in from a registration:
a Word template (handlers/dossier_data/phieu-dang-ky.docx, or an office's own through
OCOP_DOSSIER_FORM_TEMPLATE) whose {{field}} marks are replaced by the registration's values.

The fields: code, year, kind, target, product, product_group, subject, subject_type,
representative, address, phone, commune, submitted (dd/mm/yyyy), today."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

from docx import Document as open_docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from handlers import labels
from handlers.context import Services
from handlers.i18n import _, in_language
from handlers.validators import display_phone
from models.registrations import Registration

SHIPPED = Path(__file__).parent / "dossier_data" / "phieu-dang-ky.docx"
MARK = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def form_fields(registration: Registration, services: Services) -> dict[str, str]:
    """The values the template's marks stand for, in Vietnamese (the form is an official one)."""
    commune = services.area.get(registration.commune_code)
    submitted = registration.submitted_at.astimezone(services.timezone).date()
    with in_language("vi"):
        return {
            "code": registration.code,
            "year": str(registration.programme_year),
            "kind": _(labels.KIND[registration.kind]),
            "target": _(labels.TARGET[registration.target]),
            "product": registration.product_name,
            "product_group": _(labels.GROUP[registration.product_group]),
            "subject": registration.subject_name,
            "subject_type": _(labels.SUBJECT_TYPE[registration.subject_type]),
            "representative": registration.owner_name,
            "address": registration.address,
            "phone": display_phone(registration.phone),
            "commune": commune.name if commune else registration.commune_code,
            "submitted": submitted.strftime("%d/%m/%Y"),
            "today": services.today().strftime("%d/%m/%Y"),
        }


def _paragraphs(container: object) -> Iterator[Paragraph]:
    yield from getattr(container, "paragraphs", [])
    for table in getattr(container, "tables", []):
        yield from _table_paragraphs(table)


def _table_paragraphs(table: Table) -> Iterator[Paragraph]:
    for row in table.rows:
        for cell in row.cells:
            yield from _paragraphs(cell)


def _fill(paragraph: Paragraph, values: dict[str, str]) -> None:
    """Replace the marks of one paragraph; Word splits text into runs anywhere, so the whole
    text goes into the first run (keeping its formatting) when a mark is found."""
    text = paragraph.text
    if "{{" not in text:
        return
    filled = MARK.sub(lambda match: values.get(match.group(1), match.group(0)), text)
    runs = paragraph.runs
    if not runs:
        return
    runs[0].text = filled
    for run in runs[1:]:
        run.text = ""


def registration_form(registration: Registration, services: Services) -> bytes:
    """The filled form as DOCX bytes."""
    template = Path(services.form_template) if services.form_template else SHIPPED
    document = open_docx(str(template))
    values = form_fields(registration, services)
    for paragraph in _paragraphs(document):
        _fill(paragraph, values)
    for section in document.sections:
        for part in (section.header, section.footer):
            for paragraph in _paragraphs(part):
                _fill(paragraph, values)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
