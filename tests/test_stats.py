"""The annual report's cumulative figures agree with a fixture counted by hand."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handlers.i18n import use_language
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from models.admin_units import Area
from models.db import create_sessionmaker
from models.domain import RegistrationKind, RegistrationStatus, SubjectType, Target
from models.registrations import Product, Subject
from tests import factories

AREA = ["21439", "21451", "21457", "21472", "21478"]
AREA_UNITS = Area("51", AREA)
TODAY = dt.date(2026, 11, 29)


async def _fixture(session: AsyncSession) -> None:
    """Counted by hand (see the expectations in the tests):

    P1 HTX A, Sa Huỳnh, online: 3★ 2021 then 4★ 2024 (newest, valid)
    P2 HTX A, Sa Huỳnh: 3★ 10/01/2023 (expired 10/01/2026)
    P3 Cty B, Trà Câu, online: 5★ 2025 (valid)
    P4 Hộ C, Đức Phổ: 3★ 2026 (valid)
    P5 THT D, Nguyễn Nghiêm, online: certified only in 2027 (not in 2026's figures)
    P6 Cty B, Khánh Cường: never certified; six registrations, one of them in 2025
    """
    person = await factories.user(session)
    htx = await factories.subject(session, "HTX A", SubjectType.COOPERATIVE)
    cty = await factories.subject(session, "Cty B", SubjectType.ENTERPRISE)
    ho = await factories.subject(session, "Hộ C", SubjectType.HOUSEHOLD)
    tht = await factories.subject(session, "THT D", SubjectType.COOPERATIVE_GROUP)
    p1 = await factories.product(session, htx, "P1", "21478", ecommerce=True)
    p2 = await factories.product(session, htx, "P2", "21478")
    p3 = await factories.product(session, cty, "P3", "21451", ecommerce=True)
    p4 = await factories.product(session, ho, "P4", "21439")
    p5 = await factories.product(session, tht, "P5", "21457", ecommerce=True)
    p6 = await factories.product(session, cty, "P6", "21472")
    for item, star, issued in [
        (p1, 3, dt.date(2021, 5, 1)),
        (p1, 4, dt.date(2024, 6, 1)),
        (p2, 3, dt.date(2023, 1, 10)),
        (p3, 5, dt.date(2025, 3, 1)),
        (p4, 3, dt.date(2026, 2, 1)),
        (p5, 4, dt.date(2027, 1, 15)),
    ]:
        factories.certificate(session, item, star, issued)
    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    for year, kind, target, status in [
        (2026, RegistrationKind.NEW, Target.STAR3, RegistrationStatus.CERTIFIED),
        (2026, RegistrationKind.NEW, Target.STAR4, RegistrationStatus.FAILED),
        (2026, RegistrationKind.REEVALUATION, Target.UP_3_TO_4, RegistrationStatus.DEFERRED),
        (2026, RegistrationKind.NEW, Target.STAR3, RegistrationStatus.SUBMITTED),
        (2026, RegistrationKind.NEW, Target.STAR4, RegistrationStatus.REJECTED),
        (2025, RegistrationKind.NEW, Target.STAR3, RegistrationStatus.CERTIFIED),
    ]:
        factories.registration(
            session, person, p6, cty, at=at, year=year, kind=kind, target=target, status=status
        )
    await session.flush()


@pytest.mark.both_databases
async def test_cumulative_figures_for_the_whole_area(engine: AsyncEngine) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        await _fixture(session)
        stats = await compute_stats(session, 2026, AREA, TODAY)
    assert stats.certified == 4
    assert dict(stats.by_star) == {3: 2, 4: 1, 5: 1}
    assert stats.valid == 3  # P2's certificate expired in January
    assert stats.subjects_by_type == {
        SubjectType.COOPERATIVE: 1,
        SubjectType.ENTERPRISE: 1,
        SubjectType.HOUSEHOLD: 1,
    }
    assert stats.products_by_subject_type == {
        SubjectType.COOPERATIVE: 2,
        SubjectType.ENTERPRISE: 1,
        SubjectType.HOUSEHOLD: 1,
    }
    assert (stats.communes_with_products, stats.communes_in_scope) == (3, 5)
    assert stats.on_ecommerce == 2
    # Every registration of the year counts, the rejected one too, and every status is listed.
    assert stats.registrations == 5
    assert dict(stats.registrations_by_target) == {
        Target.STAR3: 2,
        Target.STAR4: 2,
        Target.UP_3_TO_4: 1,
    }
    assert dict(stats.registrations_by_status) == {
        RegistrationStatus.CERTIFIED: 1,
        RegistrationStatus.FAILED: 1,
        RegistrationStatus.DEFERRED: 1,
        RegistrationStatus.SUBMITTED: 1,
        RegistrationStatus.REJECTED: 1,
    }
    assert stats.former_communes_in_scope is None  # 2026 counts the current communes only

    use_language("vi")
    message = render_stats(stats, "Quảng Ngãi")
    assert "Sản phẩm OCOP được công nhận (luỹ kế): <b>4</b>" in message
    assert "3/5 (60%)" in message and "2/4 (50%)" in message
    assert "Hồ sơ đăng ký năm 2026: <b>5</b>" in message
    assert "  Không tiếp nhận: <b>1</b>" in message
    assert "phường cũ" not in message
    sheet = openpyxl.load_workbook(io.BytesIO(stats_xlsx(stats, "Quảng Ngãi"))).active
    assert sheet is not None
    assert [cell.value for cell in sheet[3]] == [
        "Chỉ tiêu", "Số lượng", "Trên tổng số", "Tỷ lệ", "Số sản phẩm"
    ]  # fmt: skip
    rows = {row[0]: row[1:] for row in sheet.iter_rows(min_row=4, values_only=True)}
    # Numbers as numbers: an official can sum them, and a share is a percentage.
    assert rows["Sản phẩm OCOP được công nhận (luỹ kế)"] == (4, None, None, None)
    assert rows["Xã/phường có ít nhất một sản phẩm OCOP"] == (3, 5, 0.6, None)
    assert rows["Hợp tác xã"] == (1, None, None, 2)
    assert rows["Hồ sơ đăng ký năm 2026"][0] == 5 and rows["Không tiếp nhận"][0] == 1
    share = next(r for r in sheet.iter_rows(min_row=4) if r[0].value.startswith("Xã/phường"))
    assert share[3].number_format == "0%"
    numbers = [value for row in rows.values() for value in row if value is not None]
    assert all(isinstance(value, int | float) for value in numbers)


async def test_a_year_before_2025_is_also_counted_by_former_communes(engine: AsyncEngine) -> None:
    """The province's reports for 2024 count the 15 former communes of Đức Phổ ("11/15 xã,
    phường"); a product's former commune comes from its registration or its address."""
    async with create_sessionmaker(engine)() as session, session.begin():
        await _fixture(session)
        person = await factories.user(session)
        # P1 (Sa Huỳnh, certified 2021) was registered from former Phổ Thạnh.
        p1 = (await session.scalars(select(Product).where(Product.name == "P1"))).one()
        htx = await session.get(Subject, p1.subject_id)
        assert htx is not None
        at = dt.datetime(2021, 3, 1, tzinfo=dt.UTC)
        first = factories.registration(session, person, p1, htx, at=at, year=2021)
        first.legacy_commune = "Phường Phổ Thạnh (Thị xã Đức Phổ)"
        # P7 (Trà Câu, certified 2022): its producer's address names former Phổ An.
        ho = await factories.subject(session, "Hộ E", SubjectType.HOUSEHOLD)
        ho.address = "Thôn An Thạch, xã Phổ An, thị xã Đức Phổ"
        p7 = await factories.product(session, ho, "P7", "21451")
        factories.certificate(session, p7, 3, dt.date(2022, 4, 1))
        await session.flush()
        stats = await compute_stats(session, 2024, AREA, TODAY, AREA_UNITS)
        current = await compute_stats(session, 2026, AREA, TODAY, AREA_UNITS)
    # 2024: P1, P2 (both Sa Huỳnh) and P7; P2's former commune cannot be told (two merged).
    assert stats.certified == 3
    assert (stats.communes_with_products, stats.communes_in_scope) == (2, 5)
    assert (stats.former_communes_with_products, stats.former_communes_in_scope) == (2, 15)
    assert stats.former_unknown == 1
    assert current.former_communes_in_scope is None
    use_language("vi")
    message = render_stats(stats, "Quảng Ngãi")
    former = "Xã/phường cũ (trước 01/7/2025) có ít nhất một sản phẩm OCOP"
    assert f"{former}: <b>2/15 (13%)</b>" in message
    assert "  sản phẩm OCOP chưa rõ thuộc xã/phường cũ nào: <b>1</b>" in message
    sheet = openpyxl.load_workbook(io.BytesIO(stats_xlsx(stats, "Quảng Ngãi"))).active
    assert sheet is not None
    rows = {row[0]: row[1:4] for row in sheet.iter_rows(min_row=4, values_only=True)}
    assert rows[former] == (2, 15, pytest.approx(2 / 15))


async def test_a_later_year_counts_the_2027_certificate_and_a_scope_narrows(
    engine: AsyncEngine,
) -> None:
    async with create_sessionmaker(engine)() as session, session.begin():
        await _fixture(session)
        next_year = await compute_stats(session, 2027, AREA, dt.date(2027, 3, 1))
        sa_huynh = await compute_stats(session, 2026, ["21478"], TODAY)
    assert next_year.certified == 5 and next_year.by_star[4] == 2
    assert next_year.registrations == 0
    assert sa_huynh.certified == 2 and sa_huynh.valid == 1
    assert (sa_huynh.communes_with_products, sa_huynh.communes_in_scope) == (1, 1)
