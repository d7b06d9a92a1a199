"""The XLSX template admins fill in to import their existing OCOP certificate list."""

from __future__ import annotations

import datetime as dt
import io

import xlsxwriter

from handlers import labels
from handlers.i18n import _
from handlers.reports.certificate_import import EXAMPLE, FIELDS, LIMITS, MAX_ROWS, REQUIRED
from models.admin_units import Area
from models.domain import ProductGroup, SubjectType


def template_xlsx(*, area: Area | None = None) -> bytes:
    """A ready-to-fill XLSX in the current language: the header row, one example row (naming the
    area's first commune, when given), drop-down lists for star, producer type and e-commerce,
    and a short instruction sheet."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet, guide = book.add_worksheet(_("Certificates")), book.add_worksheet(_("Instructions"))
    bold = book.add_format({"bold": True, "text_wrap": True, "valign": "top", "border": 1})
    as_text = book.add_format({"num_format": "@"})  # keeps the phone's leading zero
    formats = {"phone": as_text, "decision": as_text,
               "issue_date": book.add_format({"num_format": "dd/mm/yyyy"})}
    choices = {"star": ["3", "4", "5"], "ecommerce": [_(labels.YES), _(labels.NO)],
               "subject_type": [_(label) for label in labels.SUBJECT_TYPE.values()]}
    example: dict[str, object] = {field: _(message) for field, message in EXAMPLE.items()} | {
        "subject_type": _(labels.SUBJECT_TYPE[SubjectType.HOUSEHOLD]),
        "commune": area.communes[0].short_name if area else None,
        "phone": "0905 123 456", "star": 4, "issue_date": dt.date(2023, 3, 15),
        "group": _(labels.GROUP[ProductGroup.FOOD]), "ecommerce": _(labels.YES),
    }
    for column, (field, (header, *_aliases)) in enumerate(FIELDS.items()):
        sheet.write_string(0, column, _(header), bold)
        sheet.set_column(column, column, 28 if field in LIMITS else 16, formats.get(field))
        if isinstance(value := example.get(field), dt.date):
            sheet.write_datetime(1, column, value, formats["issue_date"])
        elif value is not None:
            sheet.write(1, column, value, formats.get(field))
        if field in choices:
            validation = {"validate": "list", "source": choices[field]}
            sheet.data_validation(1, column, MAX_ROWS, column, validation)
    sheet.freeze_panes(1, 0)
    guide.set_column(0, 0, 110, book.add_format({"text_wrap": True, "valign": "top"}))
    required = ", ".join(_(FIELDS[field][0]) for field in REQUIRED)
    for line, text in enumerate([
        _("How to fill in the OCOP certificate list"),
        _("One row per certificate; keep the header row. Required columns: {columns}.")
        .format(columns=required),
        _("Type your own data over the example row: a row left as the example is not imported."),
        _("Commune: the current name, the name before 1 July 2025, or the 5-digit code. Star: 3, 4 "
          "or 5. Issue date: day/month/year. A household may leave the producer name blank."),
        _("Rows with a problem are not imported: fix them and send the file again. Rows already "
          "imported are skipped. At most {rows} rows per file.").format(rows=MAX_ROWS),
    ]):
        guide.write_string(line, 0, text, bold if line == 0 else None)
    book.close()
    return buffer.getvalue()
