"""Where dossier files live: a local folder (the default) or an S3-compatible bucket, behind one
small interface. Files are addressed by the SHA-256 of their content, so a file sent twice (or
for two items) is stored once; the database (models/dossier.py) says whose it is.

Content is stored before its row is committed, so a crash (or a refusal) in between leaves
content no row refers to; the hourly sweep (handlers/dossier_tasks.sweep_orphans) removes what
was last written more than a grace period ago. Writing content that is there already renews
its time, so an upload in flight of a file the store holds is never taken for an orphan."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

DIGEST = re.compile(r"[0-9a-f]{64}")


class Storage(Protocol):
    """Content-addressed blobs: `digest` is the SHA-256 hex of `content`."""

    async def put(self, digest: str, content: bytes) -> None: ...

    async def get(self, digest: str) -> bytes: ...

    async def delete(self, digest: str) -> None: ...

    async def exists(self, digest: str) -> bool: ...

    async def stored_before(self, before: dt.datetime) -> list[str]:
        """The digests of the contents last written before `before`."""
        ...

    async def delete_if_older(self, digest: str, before: dt.datetime) -> bool:
        """Delete the content if it was last written before `before` (checked again now)."""
        ...


def _checked(digest: str) -> str:
    if not DIGEST.fullmatch(digest):  # never a path of the caller's making
        raise ValueError(f"not a SHA-256 digest: {digest!r}")
    return digest


class LocalStorage:
    """Files under `root`, two levels of sub-folders by digest; written to a temporary file
    and renamed, so a crash never leaves half a file under its final name."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        digest = _checked(digest)
        return self.root / digest[:2] / digest

    def _put(self, digest: str, content: bytes) -> None:
        path = self._path(digest)
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile: written again below
            os.utime(path)  # there already: renewed, so the orphan sweep leaves it alone
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    async def put(self, digest: str, content: bytes) -> None:
        await asyncio.to_thread(self._put, digest, content)

    async def get(self, digest: str) -> bytes:
        return await asyncio.to_thread(self._path(digest).read_bytes)

    async def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(digest).unlink)

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self._path(digest).exists)

    def _stored_before(self, before: dt.datetime) -> list[str]:
        limit, found = before.timestamp(), []
        for path in self.root.glob("??/*"):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                if path.stat().st_mtime >= limit:
                    continue
                if DIGEST.fullmatch(path.name):
                    found.append(path.name)
                elif path.name.startswith((".part-", ".sweep-")):  # a crash cut them short
                    path.unlink()
        return sorted(found)

    async def stored_before(self, before: dt.datetime) -> list[str]:
        return await asyncio.to_thread(self._stored_before, before)

    def _delete_if_older(self, digest: str, before: dt.datetime) -> bool:
        path = self._path(digest)
        # Moved aside first: a put from now on writes a new file, and one that renewed the
        # file before the move is seen in its time, and the file is moved back.
        aside = path.with_name(f".sweep-{digest}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return False
        try:
            if aside.stat().st_mtime >= before.timestamp():
                os.replace(aside, path)  # the same content if a put wrote it meanwhile
                return False
            aside.unlink()
        except FileNotFoundError:  # another process's sweep took it meanwhile
            return False
        return True

    async def delete_if_older(self, digest: str, before: dt.datetime) -> bool:
        return await asyncio.to_thread(self._delete_if_older, digest, before)


class S3Storage:
    """An S3-compatible bucket (MinIO, AWS S3, Ceph…) through the MinIO client, whose blocking
    calls run in a thread. The bucket must exist; objects are `prefix` + digest."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        prefix: str = "",
        region: str | None = None,
    ) -> None:
        from minio import Minio  # imported only when an office chose S3

        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        self.client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,
        )
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""

    def _name(self, digest: str) -> str:
        return self.prefix + _checked(digest)

    async def put(self, digest: str, content: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            self.bucket,
            self._name(digest),
            io.BytesIO(content),
            len(content),
        )

    def _get(self, digest: str) -> bytes:
        response = self.client.get_object(self.bucket, self._name(digest))
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    async def get(self, digest: str) -> bytes:
        return await asyncio.to_thread(self._get, digest)

    async def delete(self, digest: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, self._name(digest))

    def _exists(self, digest: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, self._name(digest))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise
        return True

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self._exists, digest)

    def _stored_before(self, before: dt.datetime) -> list[str]:
        found = []
        for item in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
            name = str(item.object_name or "")[len(self.prefix) :]
            if DIGEST.fullmatch(name) and item.last_modified and item.last_modified < before:
                found.append(name)
        return sorted(found)

    async def stored_before(self, before: dt.datetime) -> list[str]:
        return await asyncio.to_thread(self._stored_before, before)

    def _delete_if_older(self, digest: str, before: dt.datetime) -> bool:
        from minio.error import S3Error

        # A bucket has no conditional delete: the time is checked again just before, and an
        # upload that renewed the object after that finds it gone once its row is committed
        # and stores it again (handlers/dossier_tasks.run_receive).
        try:
            stat = self.client.stat_object(self.bucket, self._name(digest))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise
        if stat.last_modified is None or stat.last_modified >= before:
            return False
        self.client.remove_object(self.bucket, self._name(digest))
        return True

    async def delete_if_older(self, digest: str, before: dt.datetime) -> bool:
        return await asyncio.to_thread(self._delete_if_older, digest, before)


def open_storage(
    location: str,
    *,
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
) -> Storage:
    """The store a setting names: `s3://bucket/prefix` (with an endpoint and keys) or a folder."""
    if location.startswith("s3://"):
        parts = urlsplit(location)
        if not endpoint or not access_key or not secret_key:
            raise ValueError("an s3:// dossier store needs OCOP_S3_ENDPOINT and its two keys")
        return S3Storage(
            endpoint, parts.netloc, access_key, secret_key, prefix=parts.path, region=region
        )
    return LocalStorage(location)
