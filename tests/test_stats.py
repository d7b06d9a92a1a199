"""The annual report's cumulative figures agree with a fixture counted by hand."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handlers.i18n import use_language
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from models.db import create_sessionmaker
from models.domain import RegistrationKind, RegistrationStatus, SubjectType, Target
from tests import factories

AREA = ["21439", "21451", "21457", "21472", "21478"]
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
    assert dict(stats.registrations_by_target) == {
        Target.STAR3: 2,
        Target.STAR4: 1,
        Target.UP_3_TO_4: 1,
    }
    assert dict(stats.registrations_by_outcome) == {
        RegistrationStatus.CERTIFIED: 1,
        RegistrationStatus.FAILED: 1,
        RegistrationStatus.DEFERRED: 1,
    }

    use_language("vi")
    message = render_stats(stats, "Quảng Ngãi")
    assert "Sản phẩm OCOP được công nhận (luỹ kế): <b>4</b>" in message
    assert "3/5 (60%)" in message and "2/4 (50%)" in message
    sheet = openpyxl.load_workbook(io.BytesIO(stats_xlsx(stats, "Quảng Ngãi"))).active
    assert sheet is not None
    values = {row[0]: row[1] for row in sheet.iter_rows(min_row=4, values_only=True)}
    assert values["Sản phẩm OCOP được công nhận (luỹ kế)"] == "4"


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
