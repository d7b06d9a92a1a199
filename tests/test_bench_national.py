"""The national-scale benchmark's data and baseline: consistent rows, the same rows exported."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import openpyxl
from sqlalchemy import func, select

from bench.national import Country, largest_province, plain_dump
from bench.national_data import YEAR, Size, commune_codes, populate
from bot.migrate import upgrade
from handlers.i18n import use_language
from handlers.reports.export import ExportFilter, write_registration_xlsx
from models.certificates import Certificate
from models.db import create_engine, create_sessionmaker
from models.domain import RegistrationStatus
from models.registrations import Registration

SMALL = Size(registrations=400, certificates=80, subjects=150)


def test_country_has_every_commune_once() -> None:
    country = Country()
    codes = [commune.code for commune in country.communes]
    assert len(codes) == len(set(codes)) == len(commune_codes()) == 3321
    assert country.get(codes[0]) is country.communes[0]
    assert largest_province() == "79"  # Hồ Chí Minh City, 168 communes


async def test_generated_rows_are_consistent(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/national.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        counts = await populate(engine, SMALL)
        assert counts["registrations"] == 400 and counts["certificates"] == 80
        async with create_sessionmaker(engine)() as session:
            communes = set(await session.scalars(select(Registration.commune_code).distinct()))
            assert communes <= set(commune_codes())
            renewals = await session.scalar(
                select(func.count())
                .select_from(Registration)
                .where(Registration.certificate_id.is_not(None))
            )
            assert renewals and renewals > 0
            linked = await session.scalar(
                select(func.count())
                .select_from(Registration)
                .join(Certificate, Certificate.id == Registration.certificate_id)
                .where(Certificate.product_id == Registration.product_id)
            )
            assert linked == renewals  # a renewal points at its own product's certificate
    finally:
        await engine.dispose()


async def test_baseline_writes_the_rows_the_export_writes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/national.db"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    use_language("vi")
    try:
        await populate(engine, SMALL)
        country, selection = Country(), ExportFilter(YEAR)
        async with create_sessionmaker(engine, read_only=True)() as session:
            expected = await session.scalar(
                select(func.count())
                .select_from(Registration)
                .where(Registration.status != RegistrationStatus.REJECTED)
            )
            ours, plain = io.BytesIO(), io.BytesIO()
            assert await write_registration_xlsx(session, country, selection, ours) == expected
            assert await plain_dump(session, country, selection, plain) == expected
    finally:
        await engine.dispose()
    ours_book = openpyxl.load_workbook(ours, read_only=True)
    plain_book = openpyxl.load_workbook(plain, read_only=True)
    assert len(ours_book.worksheets) == len(plain_book.worksheets) == 2
    # Same registrations in the same order on the details sheet (receipt code first).
    ours_codes = [row[0] for row in ours_book.worksheets[1].iter_rows(min_row=2, values_only=True)]
    plain_codes = [row[0] for row in plain_book.worksheets[1].iter_rows(values_only=True)]
    assert ours_codes == [code for code in plain_codes if code is not None]
