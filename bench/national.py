"""National scale: the digest and /stats of a province-wide official, and the year's full export,
on a database of 100,000 registrations and 20,000 certificates over all 3,321 communes
(see bench/national_data.py), on a SQLite file and on PostgreSQL when reachable.

- Digest and stats: an official of the largest province (Hồ Chí Minh City, 168 communes, ~5% of
  the rows) with no commune restriction, built and rendered as the bot sends them (message and
  XLSX attachment). Median of 3 runs; target <= 1 s each. The same for the whole country is
  reported too (no target: a deployment serves one province).
- Export: the year's registrations of the whole country (94,967: the 100,000 but the rejected),
  both sheets, against a baseline in the same run: XlsxWriter writing the same rows into the same
  cells of two sheets with no formatting (raw values, `write_row`, no styles, merges, widths or
  print set-up), from the same streamed query, with the same workbook options. Each runs alone
  in a fresh process; the figure is the ratio of their CPU times (wall times reported too).
  Target <= 1.5x. Peak memory: the exporting process's VmHWM; target <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from vietnam_provinces import Ward
from xlsxwriter.workbook import Workbook

from bench.national_data import NOW, OFFICIAL_ID, YEAR, populate
from bench.rss import peak_rss_mb, rss_mb
from bot.migrate import upgrade
from handlers.i18n import use_language
from handlers.reports.digest import build_digest, render_digest
from handlers.reports.export import (
    DETAIL_COLUMNS,
    FIELDS,
    TARGET_COLUMNS,
    ExportFilter,
    _statement,
    _stream,
    write_registration_xlsx,
)
from handlers.reports.stats import compute_stats, render_stats, stats_xlsx
from models.admin_units import Area
from models.db import create_engine, create_sessionmaker
from models.registrations import Registration as R
from models.users import User

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PG_SERVER = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PG_DATABASE = "ocop_bench"
RUNS = 3
ROOT = Path(__file__).resolve().parent.parent  # children run `-m bench....` from here


class Country(Area):
    """Every commune of the country as one area: what the export of a national database covers
    (the product's Area is one province; only communes, get() and the name are used here)."""

    def __init__(self) -> None:
        provinces = sorted({f"{int(ward.province_code):02d}" for ward in Ward.iter_all()})
        self.province_code, self.province_name = "00", "Việt Nam"
        self.communes = tuple(c for code in provinces for c in Area(code).communes)
        self._by_code = {c.code: c for c in self.communes}
        self._by_key = {}
        self._province_keys = set()


def largest_province() -> str:
    """The code of the province with the most communes (79, Hồ Chí Minh City: 168)."""
    counts = Counter(f"{int(ward.province_code):02d}" for ward in Ward.iter_all())
    return counts.most_common(1)[0][0]


@dataclass(frozen=True)
class NationalResult:
    """The figures of one database backend."""

    backend: str
    registrations: int
    certificates: int
    setup_seconds: float  # migrate + generate + bulk insert
    province: str
    province_registrations: int
    digest_seconds: float  # built and rendered, median
    digest_lines: str  # new / waiting / expiring in the digest
    stats_seconds: float
    country_digest_seconds: float
    country_stats_seconds: float
    export_rows: int
    export_seconds: float  # ours, wall clock
    baseline_seconds: float  # the same cells on two sheets, no formatting, wall clock
    export_cpu_seconds: float  # ours, CPU time of the exporting process (all its threads)
    baseline_cpu_seconds: float
    export_peak_mb: float  # whole child process
    export_start_mb: float  # the child's resident memory just before the export
    baseline_peak_mb: float

    @property
    def export_ratio(self) -> float:
        """CPU time ratio: the work each writer does. On a shared 2-core machine one 30 s run's
        wall clock moves by +-25% with the neighbours' load; its CPU time hardly does."""
        return self.export_cpu_seconds / self.baseline_cpu_seconds

    @property
    def export_wall_ratio(self) -> float:
        return self.export_seconds / self.baseline_seconds

    @property
    def passed(self) -> bool:
        return (
            self.digest_seconds <= 1.0
            and self.stats_seconds <= 1.0
            and self.export_ratio <= 1.5
            and self.export_peak_mb <= 300
        )


async def _median(runs: int, measure: Callable[[], Awaitable[float]]) -> float:
    return statistics.median([await measure() for _ in range(runs)])


async def _digest_seconds(maker: async_sessionmaker[AsyncSession], area: Area) -> float:
    """Build and render the digest as the daily job does; returns seconds."""
    async with maker() as session, session.begin():
        official = await session.get(User, OFFICIAL_ID)
        assert official is not None
        start = time.perf_counter()
        digest = await build_digest(
            session, area, official, NOW - dt.timedelta(days=1), NOW, TIMEZONE
        )
        render_digest(digest)
        return time.perf_counter() - start


async def _digest_lines(maker: async_sessionmaker[AsyncSession], area: Area) -> str:
    async with maker() as session, session.begin():
        official = await session.get(User, OFFICIAL_ID)
        assert official is not None
        d = await build_digest(session, area, official, NOW - dt.timedelta(days=1), NOW, TIMEZONE)
    return f"{len(d.new)} new, {len(d.stale)} waiting, {len(d.expiring)} expiring"


async def _stats_seconds(maker: async_sessionmaker[AsyncSession], area: Area) -> float:
    """compute_stats and both renderings, as /stats answers; returns seconds."""
    async with maker() as session, session.begin():
        start = time.perf_counter()
        codes = [commune.code for commune in area.communes]
        figures = await compute_stats(session, YEAR, codes, NOW.astimezone(TIMEZONE).date())
        render_stats(figures, area.province_name)
        stats_xlsx(figures, area.province_name)
        return time.perf_counter() - start


async def plain_dump(
    session: AsyncSession, area: Area, selection: ExportFilter, out: BinaryIO, *, sheets: int = 2
) -> int:
    """The baseline: the export's rows from the same query, raw values, no formatting at all.

    With two sheets, sheet 1 gets the official table's cells (number, commune, product, owner,
    address, an X under the target) and sheet 2 the detail fields, as the export writes them."""
    options = {"constant_memory": True, "in_memory": False, "remove_timezone": True,
               "strings_to_formulas": False, "strings_to_numbers": False,
               "strings_to_urls": False}  # fmt: skip
    book = Workbook(out, options)
    table = book.add_worksheet() if sheets == 2 else None
    details = book.add_worksheet()
    count = 0
    stmt = _statement(area, selection, FIELDS, by_section=True)
    async for row in _stream(session, stmt):
        count += 1
        if table is not None:
            marks = ["X" if row.target is target else None for target in TARGET_COLUMNS]
            table.write_row(
                count, 0, (count, row.commune_code, row.product_name, row.owner_name, row.address)
            )
            table.write_row(count, 5, marks)
        details.write_row(count, 0, row[: len(DETAIL_COLUMNS)])
    await asyncio.to_thread(book.close)
    return count


Writer = Callable[[AsyncSession, Area, ExportFilter, BinaryIO], Awaitable[int]]


async def _ours(session: AsyncSession, area: Area, selection: ExportFilter, out: BinaryIO) -> int:
    return await write_registration_xlsx(session, area, selection, out, timezone=TIMEZONE)


async def _two_sheets(
    session: AsyncSession, area: Area, selection: ExportFilter, out: BinaryIO
) -> int:
    return await plain_dump(session, area, selection, out, sheets=2)


async def _one_sheet(
    session: AsyncSession, area: Area, selection: ExportFilter, out: BinaryIO
) -> int:
    return await plain_dump(session, area, selection, out, sheets=1)


WRITERS: dict[str, Writer] = {"ours": _ours, "two_sheets": _two_sheets, "one_sheet": _one_sheet}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


async def _export(url: str, area: Area, writer: str, path: Path) -> dict[str, float]:
    """One export into `path` (fresh engine, read-only session): seconds, CPU seconds, rows."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine, read_only=True)() as session:
            with path.open("wb") as out:
                start, cpu = time.perf_counter(), _cpu()
                rows = await WRITERS[writer](session, area, ExportFilter(YEAR), out)
                return {
                    "seconds": time.perf_counter() - start,
                    "cpu_seconds": _cpu() - cpu,
                    "rows": rows,
                }
    finally:
        await engine.dispose()


async def _child_export(url: str, writer: str, path: Path) -> dict[str, float]:
    """Run one export in a fresh interpreter; its resident memory before and at the peak."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.national", "--child", url, writer, str(path),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, _err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"the export child failed ({process.returncode})")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def measure(url: str, backend: str, setup_seconds: float) -> NationalResult:
    """Every figure on a populated database at `url`."""
    use_language("vi")
    province, country = Area(largest_province()), Country()
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        count = select(func.count()).select_from(R)
        registrations = int(await session.scalar(count) or 0)
        codes = [c.code for c in province.communes]
        in_province = int(await session.scalar(count.where(R.commune_code.in_(codes))) or 0)
        certificates = int(await session.scalar(text("SELECT count(*) FROM certificates")) or 0)
    digest = await _median(RUNS, lambda: _digest_seconds(maker, province))
    stats = await _median(RUNS, lambda: _stats_seconds(maker, province))
    country_digest = await _median(1, lambda: _digest_seconds(maker, country))
    country_stats = await _median(1, lambda: _stats_seconds(maker, country))
    lines = await _digest_lines(maker, province)
    await engine.dispose()
    folder = Path(tempfile.mkdtemp(prefix="ocop-bench-export-"))
    try:
        # Each export in a fresh process: the same conditions for both, and its own peak memory.
        baseline = await _child_export(url, "two_sheets", folder / "plain.xlsx")
        ours = await _child_export(url, "ours", folder / "ours.xlsx")
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    return NationalResult(
        backend=backend,
        registrations=registrations,
        certificates=certificates,
        setup_seconds=setup_seconds,
        province=province.province_name,
        province_registrations=in_province,
        digest_seconds=digest,
        digest_lines=lines,
        stats_seconds=stats,
        country_digest_seconds=country_digest,
        country_stats_seconds=country_stats,
        export_rows=int(ours["rows"]),
        export_seconds=ours["seconds"],
        baseline_seconds=baseline["seconds"],
        export_cpu_seconds=ours["cpu_seconds"],
        baseline_cpu_seconds=baseline["cpu_seconds"],
        export_peak_mb=ours["peak_mb"],
        export_start_mb=ours["start_mb"],
        baseline_peak_mb=baseline["peak_mb"],
    )


async def _prepare(url: str) -> float:
    start = time.perf_counter()
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        await populate(engine)
    finally:
        await engine.dispose()
    return time.perf_counter() - start


async def _postgres(server_url: str, statement: str) -> bool:
    """Run a database-level statement on the server; False when it is not reachable."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with asyncio.timeout(5), engine.connect() as connection:
            await connection.execute(text(statement))
        return True
    except Exception:  # any failure means: not reachable here
        return False
    finally:
        await engine.dispose()


async def national(postgres: bool = True, server_url: str = PG_SERVER) -> list[NationalResult]:
    """The scenario on a SQLite file, then on PostgreSQL when `server_url` is reachable (in a
    database of its own, `ocop_bench`, dropped afterwards)."""
    results = []
    folder = tempfile.mkdtemp(prefix="ocop-bench-national-")
    url = f"sqlite+aiosqlite:///{folder}/national.db"
    try:
        results.append(await measure(url, "SQLite", await _prepare(url)))
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    drop = f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'
    if postgres and await _postgres(server_url, drop):
        await _postgres(server_url, f'CREATE DATABASE "{PG_DATABASE}"')
        url = make_url(server_url).set(database=PG_DATABASE).render_as_string(hide_password=False)
        try:
            results.append(await measure(url, "PostgreSQL", await _prepare(url)))
        finally:
            await _postgres(server_url, drop)
    return results


def _child(url: str, writer: str, path: str) -> None:
    """The export alone in this process: prints its resident memory before and at the peak."""
    area = Country()
    use_language("vi")
    start_mb = rss_mb()
    figures = asyncio.run(_export(url, area, writer, Path(path)))
    print(json.dumps({"start_mb": start_mb, "peak_mb": peak_rss_mb(), **figures}))


def _print(result: NationalResult) -> None:
    print(json.dumps(asdict(result), indent=1, ensure_ascii=False))
    print(
        f"export ratio {result.export_ratio:.2f} (CPU), {result.export_wall_ratio:.2f} (wall);"
        f" passed {result.passed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "WRITER", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--no-postgres", action="store_true", help="the SQLite file only")
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    for result in asyncio.run(national(postgres=not args.no_postgres)):
        _print(result)


if __name__ == "__main__":
    main()
