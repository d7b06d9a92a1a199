"""An admin imports the existing list of OCOP certificates from an Excel or CSV file."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.i18n import use_language
from handlers.reports.certificate_import import (
    FIELDS,
    ImportFileError,
    ImportResult,
    RejectedRow,
    import_certificates,
)
from handlers.reports.certificate_template import template_xlsx
from models.admin_units import Area
from models.certificates import Certificate
from models.db import create_sessionmaker
from models.domain import ProductGroup, SubjectType, certificate_expiry
from models.registrations import Product, Subject

AREA = Area("51", ["21439", "21451", "21457", "21472", "21478"])
TODAY = dt.date(2025, 10, 1)
DUPLICATE = "already in the list (same product, producer, star and issue date)"

# Columns in an order of their own, with a row number and a note the import ignores.
HEADER = (
    "TT",
    "Tên sản phẩm",
    "Tên chủ thể",
    "Người đại diện",
    "Loại hình chủ thể",
    "Xã/phường",
    "Địa chỉ",
    "Số điện thoại",
    "Hạng sao",
    "Ngày cấp",
    "Số quyết định",
    "Nhóm sản phẩm",
    "TMĐT",
    "Ghi chú",
)
# product, subject, owner, type, commune, address, phone, star, issue date, decision, group, TMĐT
ROWS: list[tuple[object, ...]] = [
    (
        "Nước mắm cá cơm",
        "HTX Nước mắm Sa Huỳnh",
        "Nguyễn Văn A",
        "Hợp tác xã",
        "Sa Huỳnh",
        "Thôn Thạnh Đức",
        "0905 123 456",
        "4 sao",
        "15/03/2023",
        "123/QĐ-UBND",
        "Thực phẩm",
        "Có",
    ),
    (
        "Mắm nêm",
        "HTX Nước mắm Sa Huỳnh",
        "Nguyễn Văn A",
        "HTX",
        "Phường Sa Huỳnh",
        "Thôn Thạnh Đức",
        "0905123456",
        3,
        "1/6/2022",
        None,
        "thuc pham",
        "x",
    ),
    (
        "Nước mắm cá cơm",
        "HTX nuoc mam Sa Huynh",
        "Nguyễn Văn A",
        "hop tac xa",
        "Sa Huỳnh",
        "Thôn Thạnh Đức",
        None,
        "3",
        "2020-01-10",
        None,
        None,
        None,
    ),
    (
        "Bánh tráng",
        None,
        "Trần Thị B",
        "hộ",
        "Hà Nội",
        "Thôn 1",
        "0914 000 111",
        "3",
        "01/02/2021",
        None,
        "Thực phẩm",
        "Không",
    ),  # row 5: not a commune of the area
    (
        "Tỏi",
        "Công ty TNHH Tỏi Đức Phổ",
        "Lê Văn C",
        "Doanh nghiệp",
        "Phổ Phong",
        "Thôn Tân Phong",
        "+84 935 222 333",
        "4*",
        dt.datetime(2021, 7, 20),
        "45/QĐ-UBND",
        "Thực phẩm",
        "yes",
    ),  # a pre-2025 commune and an Excel date cell
    (
        "Chè xanh",
        "THT Chè Khánh Cường",
        "Phạm Văn D",
        "THT",
        "Khánh Cường",
        "Thôn 3",
        None,
        "3 sao",
        "05/05/2019",
        None,
        "Đồ uống",
        None,
    ),
    (
        "Rượu nếp",
        None,
        "Võ Thị E",
        "Hộ kinh doanh",
        "21451",
        "Thôn 4",
        "0973 456 789",
        "3",
        "12/12/2022",
        None,
        "Đồ uống",
        "0",
    ),  # a commune code; a household without subject name
    (
        "Mật ong",
        "HTX Ong mật Nguyễn Nghiêm",
        "Đặng Văn F",
        "Hợp tác xã",
        "Xã Nguyễn Nghiêm",  # without "xã" it could be the former Phường Nguyễn Nghiêm too
        "Thôn 5",
        None,
        4,
        "2024-02-29",
        None,
        "Thực phẩm",
        "1",
    ),
    (
        "Sâm",
        "Công ty CP Dược liệu Sa Huỳnh",
        "Huỳnh Văn G",
        "doanh nghiệp",
        "Sa Huỳnh",
        "Tổ dân phố 2",
        "0905 999 888",
        "5★",
        "20/08/2024",
        "7/QĐ-TTg",
        "Dược liệu và sản phẩm từ dược liệu",
        "Có",
    ),
    (
        "Nón lá",
        None,
        "Nguyễn Thị H",
        "Hộ sản xuất/kinh doanh có đăng ký",
        "Trà Câu",
        "Thôn 6",
        None,
        "3",
        "3/3/2021",
        None,
        "Hàng thủ công mỹ nghệ",
        None,
    ),
    (
        "Bánh ít lá gai",
        None,
        "Trương Thị I",
        "hộ",
        "Đức Phổ",
        "Thôn 7",
        None,
        "3",
        "31/02/2023",
        None,
        "Thực phẩm",
        None,
    ),  # row 12: no such day
    (
        "Cá bò khô",
        "HTX Hải sản Phổ Thạnh",
        "Bùi Văn K",
        "htx",
        "Phổ Thạnh",
        "Thôn 8",
        None,
        "3",
        "14/07/2022",
        None,
        "Thực phẩm",
        None,
    ),
    (
        "Gạo hữu cơ",
        "HTX Nông nghiệp Phổ Vinh",
        "Ngô Văn L",
        "Hợp tác xã",
        "Phổ Vinh",
        "Tổ dân phố 1",
        None,
        "3",
        "09/09/2023",
        None,
        "Thực phẩm",
        None,
    ),
    (
        "Bonsai",
        None,
        "Lý Văn M",
        "hộ",
        "Khánh Cường",
        "Thôn 9",
        None,
        "3",
        "01/10/2023",
        None,
        "Sinh vật cảnh",
        None,
    ),
    (
        "Homestay biển",
        "THT Du lịch Sa Huỳnh",
        "Phan Văn N",
        "Tổ hợp tác",
        "Sa Huỳnh",
        "Thôn 10",
        None,
        "3",
        "2023-11-11",
        None,
        "Dịch vụ du lịch cộng đồng, du lịch sinh thái và điểm du lịch",
        "Không",
    ),
    (
        "Dầu dừa",
        None,
        "Đỗ Thị O",
        "hộ",
        "Trà Câu",
        "Thôn 11",
        None,
        "3",
        "10/10/2022",
        None,
        None,
        None,
    ),
    (
        "Kẹo gương",
        None,
        "Hồ Văn P",
        "hộ",
        "xa nguyen nghiem",
        "Thôn 12",
        None,
        "3",
        "11/11/2022",
        None,
        "Thực phẩm",
        None,
    ),
    (
        "Mứt gừng",
        None,
        "Vũ Thị Q",
        "hộ",
        "Đức Phổ",
        "Thôn 13",
        None,
        "3",
        "12/01/2024",
        None,
        "Thực phẩm",
        None,
    ),
    (
        "Nước dừa",
        "Công ty TNHH Dừa Sa Huỳnh",
        "Mai Văn R",
        "Doanh nghiệp",
        "Sa Huỳnh",
        "Thôn 14",
        None,
        "4",
        "02/02/2024",
        None,
        "Đồ uống",
        "Có",
    ),
    (
        "Chả cá",
        None,
        "Cao Thị S",
        "hộ",
        "Sa Huỳnh",
        "Thôn 15",
        None,
        "3",
        "03/04/2025",
        None,
        "Thực phẩm",
        None,
    ),
]


def certificate_list() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    for number, row in enumerate(ROWS, start=1):
        sheet.append((number, *row, None))
        if isinstance(row[8], dt.datetime):
            sheet.cell(sheet.max_row, 10).number_format = "dd/mm/yyyy"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def run_import(engine: AsyncEngine, content: bytes, name: str) -> ImportResult:
    async with create_sessionmaker(engine)() as session, session.begin():
        return await import_certificates(session, AREA, content, name, today=TODAY)


async def certificate_of(engine: AsyncEngine, product: str) -> tuple[Certificate, Product, Subject]:
    async with create_sessionmaker(engine)() as session:
        found = (
            await session.execute(
                select(Certificate, Product, Subject)
                .join(Product, Certificate.product_id == Product.id)
                .join(Subject, Product.subject_id == Subject.id)
                .where(Product.name == product)
                .order_by(Certificate.issue_date.desc())
            )
        ).first()
        assert found is not None
        return found[0], found[1], found[2]


async def count(engine: AsyncEngine, model: type[object]) -> int:
    async with create_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.both_databases
async def test_admin_imports_a_list_and_a_second_import_adds_nothing(engine: AsyncEngine) -> None:
    use_language("en")
    content = certificate_list()

    result = await run_import(engine, content, "chung-nhan-ocop.xlsx")

    assert result.imported == 18
    assert result.rejected == (
        RejectedRow(5, ("unknown commune “Hà Nội”",)),
        RejectedRow(12, ("invalid issue date “31/02/2023”",)),
    )
    assert await count(engine, Certificate) == 18
    async with create_sessionmaker(engine)() as session:
        for certificate in await session.scalars(select(Certificate)):
            assert certificate.expiry_date == certificate_expiry(certificate.issue_date)
            assert certificate.registration_id is None
    fish_sauce, product, subject = await certificate_of(engine, "Nước mắm cá cơm")
    assert (fish_sauce.star, fish_sauce.issue_date) == (4, dt.date(2023, 3, 15))
    assert fish_sauce.expiry_date == dt.date(2026, 3, 15)
    assert fish_sauce.decision_number == "123/QĐ-UBND"
    assert (product.commune_code, product.product_group, product.ecommerce) == (
        "21478",
        ProductGroup.FOOD,
        True,
    )
    assert (subject.name, subject.subject_type, subject.owner_user_id) == (
        "HTX Nước mắm Sa Huỳnh",
        SubjectType.COOPERATIVE,
        None,
    )
    assert (subject.representative, subject.phone) == ("Nguyễn Văn A", "+84905123456")
    # Rows 2-4: one cooperative, two products, the fish sauce with its older certificate too.
    async with create_sessionmaker(engine)() as session:
        cooperative_products = await session.scalars(
            select(Product.name).where(Product.subject_id == subject.id).order_by(Product.name)
        )
        assert list(cooperative_products) == ["Mắm nêm", "Nước mắm cá cơm"]
        stars = await session.scalars(
            select(Certificate.star)
            .where(Certificate.product_id == product.id)
            .order_by(Certificate.issue_date)
        )
        assert list(stars) == [3, 4]
    garlic, product, subject = await certificate_of(engine, "Tỏi")
    assert (garlic.issue_date, garlic.star, product.commune_code) == (
        dt.date(2021, 7, 20),
        4,
        "21457",
    )  # Excel date cell; Phổ Phong is now Nguyễn Nghiêm
    assert subject.phone == "+84935222333"
    _wine, product, subject = await certificate_of(engine, "Rượu nếp")
    assert (product.commune_code, subject.name, subject.subject_type, subject.phone) == (
        "21451",
        "Võ Thị E",
        SubjectType.HOUSEHOLD,
        "+84973456789",
    )
    honey, _product, _subject = await certificate_of(engine, "Mật ong")
    assert honey.expiry_date == dt.date(2027, 2, 28)
    assert await count(engine, Subject) == 16
    assert await count(engine, Product) == 17

    again = await run_import(engine, content, "chung-nhan-ocop.xlsx")

    assert again.imported == 0
    assert len(again.rejected) == 20
    assert again.rejected[3] == result.rejected[0]
    assert again.rejected[10] == result.rejected[1]
    others = [rejected for rejected in again.rejected if rejected.row not in (5, 12)]
    assert {rejected.reasons for rejected in others} == {(DUPLICATE,)}
    assert [rejected.row for rejected in others] == [n for n in range(2, 22) if n not in (5, 12)]
    assert await count(engine, Certificate) == 18


async def test_csv_with_semicolons_and_english_headers_is_imported(engine: AsyncEngine) -> None:
    use_language("en")
    content = (
        "\ufeffproduct;owner;subject type;commune;address;phone;star;issue date;e-commerce\r\n"
        "Nước mắm;Nguyễn Văn A;hộ;Sa Huỳnh;Thôn 1;0905 123 456;4;15/03/2023;Có\r\n"
        ";;;;;;;;\r\n"
        "Bánh tráng, loại đặc biệt;Trần Thị B;HTX;xã Phổ Phong;Thôn 2;;3 sao;2021-01-05;\r\n"
    ).encode()

    result = await run_import(engine, content, "list.csv")

    assert result == ImportResult(
        1, (RejectedRow(4, ("missing producer name (only a household may leave it blank)",)),)
    )
    certificate, product, subject = await certificate_of(engine, "Nước mắm")
    assert (certificate.star, certificate.issue_date, product.ecommerce) == (
        4,
        dt.date(2023, 3, 15),
        True,
    )
    assert (subject.name, subject.phone, product.product_group) == (
        "Nguyễn Văn A",
        "+84905123456",
        None,
    )


async def test_every_problem_of_a_row_is_reported(engine: AsyncEngine) -> None:
    use_language("en")
    content = (
        "Tên sản phẩm,Người đại diện,Loại hình chủ thể,Xã/phường,Địa chỉ,Số điện thoại,"
        "Hạng sao,Ngày cấp,TMĐT\n"
        "Mắm,Nguyễn Văn A,hộ,Sa Huỳnh,Thôn 1,,3,15/03/2023,\n"
        "Mắm,Nguyễn Văn A,hộ,Sa Huỳnh,Thôn 1,,3,2023-03-15,\n"
        "Mắm,,công ty,99999,Thôn 1,12345,2 sao,01/01/2026,có lẽ\n"
        "Mắm,Nguyễn Văn A,hộ,Sa Huỳnh,,,3,15/06/2017,\n"
    ).encode()

    result = await run_import(engine, content, "list.csv")

    assert result.imported == 1
    assert result.rejected == (
        RejectedRow(3, ("same certificate as row 2",)),
        RejectedRow(
            4,
            (
                "missing legal representative",
                "unknown commune “99999”",
                "invalid producer type “công ty”",
                "invalid phone “12345”",
                "invalid star “2 sao”",
                "invalid e-commerce “có lẽ”",
                "issue date 01/01/2026 must be from 2018 up to today",
            ),
        ),
        RejectedRow(5, ("missing address", "issue date 15/06/2017 must be from 2018 up to today")),
    )
    assert await count(engine, Certificate) == 1


async def test_a_file_without_a_required_column_is_refused_naming_it(engine: AsyncEngine) -> None:
    use_language("en")
    content = (
        "Tên sản phẩm;Người đại diện;Loại hình;Xã;Địa chỉ;Ngày cấp\n"
        "Mắm;Nguyễn Văn A;hộ;Sa Huỳnh;Thôn 1;1/1/2023\n"
    )

    with pytest.raises(ImportFileError) as refused:
        await run_import(engine, content.encode(), "list.csv")

    assert refused.value.message == "Required columns are missing: “Star”."
    assert await count(engine, Certificate) == 0


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"%PDF-1.4\x00\x01binary", "list.pdf"),
        (b"\xd0\xcf\x11\xe0old excel", "list.xls"),
        (b"PK\x03\x04broken zip", "list.xlsx"),
        (b"title only\n\n", "list.csv"),
        (("Tên sản phẩm,Hạng sao\n" + "Mắm,3\n" * 5001).encode(), "big.csv"),
    ],
)
async def test_unusable_files_are_refused_whole(
    engine: AsyncEngine, content: bytes, name: str
) -> None:
    use_language("en")
    with pytest.raises(ImportFileError) as refused:
        await run_import(engine, content, name)
    assert refused.value.message


@pytest.mark.parametrize("language", ["vi", "en"])
async def test_the_template_round_trips(engine: AsyncEngine, language: str) -> None:
    use_language(language)
    template = template_xlsx(area=AREA)
    book = openpyxl.load_workbook(io.BytesIO(template))
    sheet = book.worksheets[0]
    headers = [cell.value for cell in sheet[1]]
    assert len(headers) == len(FIELDS)
    assert len(sheet.data_validations.dataValidation) == 3
    assert len(book.worksheets) == 2

    untouched = await run_import(engine, template, "mau.xlsx")
    assert untouched.imported == 0
    assert len(untouched.rejected) == 1

    sheet["A2"], sheet["B2"] = "Nước mắm Sa Huỳnh", "Lê Thị T"
    filled = io.BytesIO()
    book.save(filled)
    result = await run_import(engine, filled.getvalue(), "mau.xlsx")

    assert result == ImportResult(1, ())
    certificate, product, subject = await certificate_of(engine, "Nước mắm Sa Huỳnh")
    assert (certificate.star, certificate.issue_date) == (4, dt.date(2023, 3, 15))
    assert (product.commune_code, product.product_group, product.ecommerce) == (
        "21439",
        ProductGroup.FOOD,
        True,
    )
    assert (subject.name, subject.subject_type, subject.phone) == (
        "Lê Thị T",
        SubjectType.HOUSEHOLD,
        "+84905123456",
    )


async def test_a_current_and_former_commune_name_is_decided_by_its_type_word(
    engine: AsyncEngine,
) -> None:
    """"Nguyễn Nghiêm" is today's Xã Nguyễn Nghiêm and also the former Phường Nguyễn Nghiêm,
    now in Phường Đức Phổ: the type word, in the commune column or the address, decides."""
    use_language("vi")
    content = (
        "Tên sản phẩm;Người đại diện;Loại hình;Xã;Địa chỉ;Hạng sao;Ngày cấp\r\n"
        "Bánh tráng;Võ Thị Hoa;hộ;Nguyễn Nghiêm;Tổ 1, phường Nguyễn Nghiêm;3;15/03/2023\r\n"
        "Mạch nha;Lê Văn Hai;hộ;nguyen nghiem;Thôn 3, xã Nguyễn Nghiêm;3;15/03/2023\r\n"
        "Nước mắm;Phạm Văn Ba;hộ;Nguyễn Nghiêm;Thôn 4;4;15/03/2023\r\n"
    ).encode()

    result = await run_import(engine, content, "list.csv")

    assert result.imported == 2
    [rejected] = result.rejected
    assert rejected.row == 4
    assert rejected.reasons == (
        "xã/phường “Nguyễn Nghiêm” có thể là Xã Nguyễn Nghiêm (đơn vị mới); Phường Nguyễn "
        "Nghiêm cũ, nay thuộc Phường Đức Phổ: ghi rõ “xã” hoặc “phường” trước tên",
    )
    _certificate, former, _subject = await certificate_of(engine, "Bánh tráng")
    _certificate, current, _subject = await certificate_of(engine, "Mạch nha")
    assert (former.commune_code, current.commune_code) == ("21439", "21457")
