"""The sample certificate list an admin imports with one tap: a few certificates of the default
area, dated from today so that reminders, the digest and the statistics have something to show.

The rows are sample data, not interface text; the headers are the import template's."""

from __future__ import annotations

import datetime as dt
import io

import xlsxwriter

from handlers import labels
from handlers.i18n import _, in_language
from handlers.reports.certificate_import import FIELDS
from models.domain import SubjectType

FILE_NAME = "mau-danh-sach-chung-nhan-ocop.xlsx"
VALIDITY_DAYS = 3 * 365 + 1  # a certificate is valid 36 months

# product, owner, subject, type, commune, address, phone, star, days left, decision, e-commerce
ROWS: tuple[tuple[str, str, str, SubjectType, str, str, str, int, int, str, bool], ...] = (
    ("Nước mắm cá cơm nhà Lan", "Nguyễn Thị Lan", "", SubjectType.HOUSEHOLD, "Sa Huỳnh",
     "Thôn Long Thạnh 1, phường Sa Huỳnh", "0905111222", 3, 75, "215/QĐ-UBND", True),
    ("Muối Sa Huỳnh", "Võ Văn Bình", "HTX Muối Sa Huỳnh", SubjectType.COOPERATIVE, "Sa Huỳnh",
     "Thôn Tân Diêm, phường Sa Huỳnh", "0905222111", 4, 25, "198/QĐ-UBND", False),
    ("Quế Trà Câu", "Trần Văn Minh", "HTX Quế Trà Câu", SubjectType.COOPERATIVE, "Trà Câu",
     "Thôn Hiệp An, phường Trà Câu", "0935222333", 3, 170, "301/QĐ-UBND", True),
    ("Bánh tráng Nguyễn Nghiêm", "Đỗ Thị Hoa", "", SubjectType.HOUSEHOLD, "Nguyễn Nghiêm",
     "Thôn An Thạch, xã Nguyễn Nghiêm", "0914555666", 3, 400, "412/QĐ-UBND", False),
    ("Mật ong Khánh Cường", "Phan Văn Tài", "Tổ hợp tác Ong mật Khánh Cường",
     SubjectType.COOPERATIVE_GROUP, "Khánh Cường", "Thôn Vĩnh Lộc, xã Khánh Cường",
     "0983666777", 4, 700, "520/QĐ-UBND", True),
    ("Tỏi đen Đức Phổ", "Lê Thị Thu", "Công ty TNHH Nông sản Đức Phổ", SubjectType.ENTERPRISE,
     "Đức Phổ", "Tổ dân phố 3, phường Đức Phổ", "0977888999", 4, 5, "97/QĐ-UBND", True),
)


def sample_certificates(today: dt.date) -> bytes:
    """The list as an XLSX in the template's layout (Vietnamese headers)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    with in_language("vi"):
        sheet = book.add_worksheet(_("Certificates"))
        headers = [_(FIELDS[field][0]) for field in _COLUMNS]
        types = {kind: _(label) for kind, label in labels.SUBJECT_TYPE.items()}
        yes, no = _(labels.YES), _(labels.NO)
    date = book.add_format({"num_format": "dd/mm/yyyy"})
    for column, header in enumerate(headers):
        sheet.write_string(0, column, header)
    for number, row in enumerate(ROWS, start=1):
        product, owner, subject, kind, commune, address, phone, star, left, decision, shop = row
        issued = today + dt.timedelta(days=left) - dt.timedelta(days=VALIDITY_DAYS)
        values: list[object] = [product, owner, subject, types[kind], commune, address, phone,
                                star, issued, decision, yes if shop else no]
        for column, value in enumerate(values):
            if isinstance(value, dt.date):
                sheet.write_datetime(number, column, value, date)
            elif isinstance(value, int):
                sheet.write_number(number, column, value)
            else:
                sheet.write_string(number, column, str(value))
    book.close()
    return buffer.getvalue()


_COLUMNS = ("product", "owner", "subject_name", "subject_type", "commune", "address", "phone",
            "star", "issue_date", "decision", "ecommerce")
