"""Searching every column of the database that can hold a person's details for them (the
acceptance check of consent and erasure: what is not found there is not stored): text and JSON,
numbers (a GPS position), and files (an outbox attachment: a spreadsheet is a zip of XML, so its
parts are searched unzipped)."""

from __future__ import annotations

import html
import io
import json
import zipfile
from collections.abc import Sequence

from sqlalchemy import JSON, Float, LargeBinary, Numeric, String, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.all import Base

SEARCHED = (String, Text, JSON, Numeric, Float, LargeBinary)


async def found_everywhere(engine: AsyncEngine, needles: Sequence[str]) -> list[str]:
    """`table.column: value` for every stored value that contains one of `needles`,
    case-insensitively."""
    wanted = [needle.lower() for needle in needles]
    hits = []
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, SEARCHED)]
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
    if isinstance(value, bytes):
        return file_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def file_text(content: bytes) -> str:
    """The text of a file as a search sees it: each part of a zip (XLSX, DOCX) unzipped, its
    XML entities decoded; anything else decoded as UTF-8."""
    if zipfile.is_zipfile(io.BytesIO(content)):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            parts = [archive.read(name) for name in archive.namelist()]
        return "\n".join(html.unescape(part.decode("utf-8", "replace")) for part in parts)
    return content.decode("utf-8", "replace")
