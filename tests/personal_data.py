"""Searching every text column of the database for a person's details (the acceptance check of
consent and erasure: what is not found there is not stored)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import JSON, String, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.all import Base


async def found_everywhere(engine: AsyncEngine, needles: Sequence[str]) -> list[str]:
    """`table.column: value` for every stored text (or JSON) that contains one of `needles`,
    case-insensitively."""
    wanted = [needle.lower() for needle in needles]
    hits = []
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in await connection.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    shown = _text(value)
                    if any(needle in shown.lower() for needle in wanted):
                        hits.append(f"{table.name}.{column.name}: {shown[:120]}")
    return hits


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
