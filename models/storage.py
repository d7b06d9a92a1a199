"""Where dossier files live: a local folder (the default) or an S3-compatible bucket, behind one
small interface. Files are addressed by the SHA-256 of their content, so a file sent twice (or
for two items) is stored once; the database (models/dossier.py) says whose it is."""

from __future__ import annotations

import asyncio
import contextlib
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
        if path.exists():
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
