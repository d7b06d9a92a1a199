"""The Word documents to sign, filled in from Word templates whose {{field}} marks are replaced:

- the registration form (Phiếu đăng ký sản phẩm OCOP), handlers/dossier_data/phieu-dang-ky.docx
  or an office's own (OCOP_DOSSIER_FORM_TEMPLATE), from one registration. Its fields: code,
  year, kind, target, product, product_group, subject, subject_type, representative, address,
  phone, commune, submitted (dd/mm/yyyy), today;
- the commune's cover letter to the province with the list of its registrations,
  handlers/dossier_data/cong-van-de-nghi.docx (OCOP_DOSSIER_COVER_TEMPLATE). Its fields: commune,
  province, year, count, today; the table row holding {{tt}} is repeated per registration, with
  the form's fields and tt (the row number) and dossier ("6/8")."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path

from docx import Document as open_docx
from docx.document import Document as DocxDocument
from docx.table import Table
from docx.text.paragraph import Paragraph

from handlers import labels
from handlers.context import Services
from handlers.i18n import _, in_language
from handlers.validators import display_phone
from models.registrations import Registration

SHIPPED = Path(__file__).parent / "dossier_data" / "phieu-dang-ky.docx"
SHIPPED_COVER = Path(__file__).parent / "dossier_data" / "cong-van-de-nghi.docx"
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


def _fill_document(document: DocxDocument, values: dict[str, str]) -> bytes:
    for paragraph in _paragraphs(document):
        _fill(paragraph, values)
    for section in document.sections:
        for part in (section.header, section.footer):
            for paragraph in _paragraphs(part):
                _fill(paragraph, values)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def registration_form(registration: Registration, services: Services) -> bytes:
    """The filled form as DOCX bytes."""
    template = Path(services.form_template) if services.form_template else SHIPPED
    return _fill_document(open_docx(str(template)), form_fields(registration, services))


def _repeat_rows(document: DocxDocument, rows: list[dict[str, str]]) -> None:
    """Each table row with a {{tt}} mark becomes one row per entry of `rows`, filled."""
    for table in document.tables:
        for row in list(table.rows):
            if "{{tt}}" not in "".join(cell.text for cell in row.cells).replace(" ", ""):
                continue
            for values in rows:
                copy = deepcopy(row._tr)  # the row's XML, formatting and all
                row._tr.addprevious(copy)
                for paragraph in _table_paragraphs_of(copy, table):
                    _fill(paragraph, values)
            row._tr.getparent().remove(row._tr)


def _table_paragraphs_of(tr: object, table: Table) -> Iterator[Paragraph]:
    from docx.table import _Row

    for cell in _Row(tr, table).cells:  # type: ignore[arg-type]
        yield from _paragraphs(cell)


def cover_letter(
    commune_code: str,
    year: int,
    registrations: list[tuple[Registration, str]],
    services: Services,
) -> bytes:
    """The commune's letter to the province listing `registrations` (each with its dossier's
    completeness, "6/8"), as DOCX bytes."""
    template = Path(services.cover_template) if services.cover_template else SHIPPED_COVER
    document = open_docx(str(template))
    commune = services.area.get(commune_code)
    rows = [
        {**form_fields(registration, services), "tt": str(number), "dossier": dossier}
        for number, (registration, dossier) in enumerate(registrations, start=1)
    ]
    _repeat_rows(document, rows)
    values = {
        "commune": commune.name if commune else commune_code,
        "province": services.area.province_name,
        "year": str(year),
        "count": str(len(registrations)),
        "today": services.today().strftime("%d/%m/%Y"),
    }
    return _fill_document(document, values)
