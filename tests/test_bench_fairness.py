"""The fairness benchmark's short form (bench/fairness.py): through `ocop-bot run`, other chats
are answered during each phase, the flood is recorded and handled, the export holds every
registration of the year but the rejected, and the import stores every certificate of its file.
`make bench` runs the long form and judges the latencies."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from bench.fairness import Load, fairness
from bench.national_data import YEAR, Size

SHORT = Load(
    probes=6,
    idle_samples=12,
    min_samples=1,  # a phase is repeated until a probe's message falls in it, up to 3 times
    max_rounds=3,
    flood=1_000,
    seed=Size(registrations=300, certificates=20, subjects=100),
    export_rows=1,
    import_rows=60,
)


def _count(database: Path, query: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(query).fetchone()[0])


async def test_other_chats_are_answered_through_a_flood_an_export_and_an_import(
    tmp_path: Path,
) -> None:
    result = await fairness(tmp_path, SHORT)
    phases = (result.idle, result.flood, result.export, result.imports, result.idle_after)
    for phase in phases:  # every probe's message was answered (fairness() waits for each)
        assert phase.windows and phase.latencies, (phase, result.log)
        assert all(latency > 0 for latency in phase.latencies)
    assert len(result.idle.latencies) >= SHORT.idle_samples
    database = tmp_path / "ocop.db"
    exported = _count(
        database,
        f"SELECT count(*) FROM registrations WHERE programme_year = {YEAR} "
        "AND status != 'rejected'",
    )
    assert re.match(f"{exported:,} rows exported in ", result.export.work[0]), result.export.work
    # The seeded certificates and the file's, each stored once.
    imported = len(result.imports.windows) * SHORT.import_rows
    assert _count(database, "SELECT count(*) FROM certificates") == 20 + imported
    assert _count(database, "SELECT count(*) FROM inbox WHERE status = 'pending'") == 0
    flooded = _count(database, "SELECT count(*) FROM inbox WHERE status = 'excess'")
    # The excess kept as such; the burst of each flood handled.
    assert 0 < flooded < len(result.flood.windows) * SHORT.flood
