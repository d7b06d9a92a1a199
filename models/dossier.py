"""The files of a registration's dossier: which checklist item each is for, its content type as
sniffed from its bytes, and its digest in the store (models/storage.py)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Sequence

from sqlalchemy import ForeignKey, String, UniqueConstraint, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, insert_if_absent, utcnow

# What the store accepts, by content: the extension a file of that type is given back with.
EXTENSIONS = {"jpeg": "jpg", "png": "png", "pdf": "pdf", "docx": "docx", "xlsx": "xlsx"}


class DossierFile(Base):
    __tablename__ = "dossier_files"
    __table_args__ = (UniqueConstraint("registration_id", "item", "digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"), index=True)
    item: Mapped[str] = mapped_column(String(12))
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int]
    content_type: Mapped[str] = mapped_column(String(8))
    file_name: Mapped[str] = mapped_column(String(200))
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def sniff(content: bytes) -> str | None:
    """The file's type from its first bytes (and, for Office files, the parts inside the ZIP):
    one of EXTENSIONS, or None for anything else (an executable named .pdf included)."""
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return None
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
        if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
            return "xlsx"
    return None


async def add_file(
    session: AsyncSession,
    *,
    registration_id: int,
    item: str,
    digest: str,
    size: int,
    content_type: str,
    file_name: str,
    user_id: int | None,
) -> bool:
    """Record a file for an item; False if the same content is there for that item already."""
    return await insert_if_absent(
        session,
        DossierFile,
        registration_id=registration_id,
        item=item,
        digest=digest,
        size=size,
        content_type=content_type,
        file_name=file_name[:200],
        uploaded_by_user_id=user_id,
        created_at=utcnow(),
    )


async def files_of(session: AsyncSession, registration_id: int) -> list[DossierFile]:
    return list(
        await session.scalars(
            select(DossierFile)
            .where(DossierFile.registration_id == registration_id)
            .order_by(DossierFile.id)
        )
    )


async def present_items(
    session: AsyncSession, registration_ids: Iterable[int]
) -> dict[int, set[str]]:
    """The items that have at least one file, per registration (one query for many)."""
    ids = list(set(registration_ids))
    found: dict[int, set[str]] = {number: set() for number in ids}
    if not ids:
        return found
    rows = await session.execute(
        select(DossierFile.registration_id, DossierFile.item)
        .where(DossierFile.registration_id.in_(ids))
        .distinct()
    )
    for registration_id, item in rows:
        found[registration_id].add(item)
    return found


async def total_size(session: AsyncSession, registration_id: int) -> int:
    """Bytes held for a registration; the same content for two items counts once."""
    distinct = (
        select(DossierFile.digest, func.max(DossierFile.size).label("size"))
        .where(DossierFile.registration_id == registration_id)
        .group_by(DossierFile.digest)
        .subquery()
    )
    return int(await session.scalar(select(func.coalesce(func.sum(distinct.c.size), 0))) or 0)


async def remove_file(session: AsyncSession, file_id: int) -> DossierFile | None:
    row = await session.get(DossierFile, file_id)
    if row is not None:
        await session.delete(row)
        await session.flush()
    return row


async def unreferenced(session: AsyncSession, digests: Iterable[str]) -> list[str]:
    """Of `digests`, those no dossier file refers to any more (their content may go)."""
    wanted = set(digests)
    if not wanted:
        return []
    used = set(
        await session.scalars(select(DossierFile.digest).where(DossierFile.digest.in_(wanted)))
    )
    return sorted(wanted - used)


async def forget_dossiers(session: AsyncSession, registration_ids: Sequence[int]) -> list[str]:
    """Delete the file records of these registrations (an erasure); returns their digests, for
    the content to be removed from the store once no one else refers to it."""
    if not registration_ids:
        return []
    digests = set(
        await session.scalars(
            select(DossierFile.digest).where(DossierFile.registration_id.in_(registration_ids))
        )
    )
    await session.execute(
        delete(DossierFile).where(DossierFile.registration_id.in_(registration_ids))
    )
    return sorted(digests)
