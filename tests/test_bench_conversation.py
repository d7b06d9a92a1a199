"""The conversation benchmark's producers go through the real flow: their registrations end up
in the database complete (so the benchmark measures the real thing)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bench.conversation import SCRIPT, ours
from models.db import create_engine, create_sessionmaker
from models.domain import RegistrationStatus, SubjectType, Target
from models.registrations import Registration


async def test_benchmark_producers_register_completely(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bench.db"
    run = await ours(5, url)
    assert run.updates == 5 * len(SCRIPT)
    engine = create_engine(url)
    async with create_sessionmaker(engine, read_only=True)() as session:
        rows = list(await session.scalars(select(Registration).order_by(Registration.id)))
    await engine.dispose()
    assert len(rows) == 5
    for row in rows:
        number = int(row.owner_name.rsplit(" ", 1)[1])
        assert row.product_name == f"Nước mắm số {number}"
        assert row.subject_name == f"HTX Nước mắm {number}"
        assert row.subject_type is SubjectType.COOPERATIVE
        assert row.address == f"Thôn {number}, phường Sa Huỳnh"
        assert row.commune_code == "21478" and row.target is Target.STAR4 and row.ecommerce
        assert row.phone.startswith("+84905")
        assert row.status is RegistrationStatus.SUBMITTED
