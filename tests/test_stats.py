"""The annual report's cumulative figures agree with a fixture counted by hand."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handlers.i18n import use_language
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from models.certificates import Certificate
from models.db import create_sessionmaker
from models.domain import (
    ProductGroup,
    RegistrationKind,
    RegistrationStatus,
    SubjectType,
    Target,
    certificate_expiry,
)
from models.registrations import Product, Registration, Subject
from models.users import User

AREA = ["21439", "21451", "21457", "21472", "21478"]
TODAY = dt.date(2026, 11, 29)


async def _fixture(session: AsyncSession) -> None:
    """Counted by hand (see the expectations in the tests):

    P1 HTX A, Sa Huỳnh, online: 3★ 2021 then 4★ 2024 (newest, valid)
    P2 HTX A, Sa Huỳnh: 3★ 10/01/2023 (expired 10/01/2026)
    P3 Cty B, Trà Câu, online: 5★ 2025 (valid)
    P4 Hộ C, Đức Phổ: 3★ 2026 (valid)
    P5 THT D, Nguyễn Nghiêm, online: certified only in 2027 (not in 2026's figures)
    P6 Cty B, Khánh Cường: never certified
    """
    user = User(
        channel="telegram", channel_user_id="1", chat_id="1", display_name="", language="vi"
    )
    session.add(user)
    subjects = {
        name: Subject(name=name, subject_type=kind, representative=name, address="x", phone=None)
        for name, kind in [
            ("HTX A", SubjectType.COOPERATIVE),
            ("Cty B", SubjectType.ENTERPRISE),
            ("Hộ C", SubjectType.HOUSEHOLD),
            ("THT D", SubjectType.COOPERATIVE_GROUP),
        ]
    }
    session.add_all(subjects.values())
    await session.flush()
    products = {}
    for key, subject, commune, online in [
        ("P1", "HTX A", "21478", True),
        ("P2", "HTX A", "21478", False),
        ("P3", "Cty B", "21451", True),
        ("P4", "Hộ C", "21439", False),
        ("P5", "THT D", "21457", True),
        ("P6", "Cty B", "21472", False),
    ]:
        products[key] = Product(
            subject_id=subjects[subject].id,
            name=key,
            product_group=ProductGroup.FOOD,
            commune_code=commune,
            ecommerce=online,
        )
    session.add_all(products.values())
    await session.flush()
    for key, star, issued in [
        ("P1", 3, dt.date(2021, 5, 1)),
        ("P1", 4, dt.date(2024, 6, 1)),
        ("P2", 3, dt.date(2023, 1, 10)),
        ("P3", 5, dt.date(2025, 3, 1)),
        ("P4", 3, dt.date(2026, 2, 1)),
        ("P5", 4, dt.date(2027, 1, 15)),
    ]:
        session.add(
            Certificate(
                product_id=products[key].id,
                star=star,
                issue_date=issued,
                expiry_date=certificate_expiry(issued),
            )
        )
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    for number, (year, kind, target, status) in enumerate(
        [
            (2026, RegistrationKind.NEW, Target.STAR3, RegistrationStatus.CERTIFIED),
            (2026, RegistrationKind.NEW, Target.STAR4, RegistrationStatus.FAILED),
            (2026, RegistrationKind.REEVALUATION, Target.UP_3_TO_4, RegistrationStatus.DEFERRED),
            (2026, RegistrationKind.NEW, Target.STAR3, RegistrationStatus.SUBMITTED),
            (2026, RegistrationKind.NEW, Target.STAR4, RegistrationStatus.REJECTED),
            (2025, RegistrationKind.NEW, Target.STAR3, RegistrationStatus.CERTIFIED),
        ],
        start=1,
    ):
        session.add(
            _registration(
                number, user, products["P6"], subjects["Cty B"], year, kind, target, status, now
            )
        )
    await session.flush()


def _registration(
    number: int,
    user: User,
    product: Product,
    subject: Subject,
    year: int,
    kind: Any,
    target: Target,
    status: RegistrationStatus,
    now: dt.datetime,
) -> Registration:
    return Registration(
        code=f"OCOP-{year}-{number:04d}",
        kind=kind,
        target=target,
        programme_year=year,
        commune_code=product.commune_code,
        product_id=product.id,
        subject_id=subject.id,
        product_name=product.name,
        product_group=ProductGroup.FOOD,
        owner_name="x",
        subject_name=subject.name,
        subject_type=subject.subject_type,
        address="x",
        phone="+84905123456",
        ecommerce=False,
        status=status,
        submitted_by_user_id=user.id,
        channel="telegram",
        submitted_at=now,
        status_changed_at=now,
    )


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
