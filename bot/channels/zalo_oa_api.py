"""A client for the Zalo Official Account APIs the bot uses (OAuth v4, OA API v3 customer-service
messages, ZNS), and the keeper of the OA's tokens: stored encrypted, refreshed before expiry.

Where each fact comes from is listed in bot/channels/zalo_oa.py. Answers are JSON with an
`error` code (0 = success) and a `message`; a token is sent in the `access_token` header.
Errors never carry a token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.zalo_oa import OAuthToken, store_tokens

log = logging.getLogger(__name__)

JSON = dict[str, Any]
# An access token is refreshed this long before it expires (it lives 25 hours).
REFRESH_MARGIN = dt.timedelta(minutes=10)
# Answers meaning the access token is no longer good (revoked, or expired early): refreshed and
# the call made once more. Handled so by public SDK code; the bot refreshes by `expires_in`
# first, so these only matter when a token is revoked.
TOKEN_ERRORS = frozenset({-216, -124})


class OAError(Exception):
    """The API answered with a non-zero `error` (or something that is not its JSON)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class OANetworkError(Exception):
    """No answer: connection refused or reset, DNS, timeout."""


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: str
    expires_at: dt.datetime


class OAClient:
    """One connection pool for the three hosts. `start` in the event loop, `close` at the end."""

    def __init__(
        self,
        oauth_url: str,
        api_url: str,
        zns_url: str,
        app_id: str,
        app_secret: str,
        timeout: float = 15.0,
    ) -> None:
        self.oauth_url, self.api_url, self.zns_url = (
            oauth_url.rstrip("/"),
            api_url.rstrip("/"),
            zns_url.rstrip("/"),
        )
        self.app_id, self.app_secret, self.timeout = app_id, app_secret, timeout
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _request(
        self, method: str, url: str, *, headers: dict[str, str], **kwargs: Any
    ) -> JSON:
        if self._http is None:
            raise RuntimeError("OAClient.start() was not called")
        limit = aiohttp.ClientTimeout(total=self.timeout)
        name = url.rsplit("/", 2)[-2:]
        try:
            async with self._http.request(
                method, url, headers=headers, timeout=limit, **kwargs
            ) as response:
                body, status = await response.read(), response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OANetworkError(f"{'/'.join(name)}: {type(error).__name__}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise OAError(status, f"not a Zalo answer (HTTP {status})") from None
        if not isinstance(answer, dict):
            raise OAError(status, f"not a Zalo answer (HTTP {status})")
        if status >= 500:
            raise OANetworkError(f"{'/'.join(name)}: HTTP {status}")
        return answer

    async def refresh(self, refresh_token: str, now: dt.datetime) -> Tokens:
        """A new access token and a new refresh token for the one given (good only once)."""
        answer = await self._request(
            "POST",
            f"{self.oauth_url}/v4/oa/access_token",
            headers={"secret_key": self.app_secret},
            data={
                "refresh_token": refresh_token,
                "app_id": self.app_id,
                "grant_type": "refresh_token",
            },
        )
        access, fresh = answer.get("access_token"), answer.get("refresh_token")
        if not access or not fresh:
            code = int(answer.get("error") or -1)
            raise OAError(code, str(answer.get("error_description") or answer.get("message")))
        seconds = int(answer.get("expires_in") or 3600)  # a string in Zalo's answers
        return Tokens(str(access), str(fresh), now + dt.timedelta(seconds=seconds))

    async def _call(self, method: str, url: str, token: str, body: JSON | None = None) -> JSON:
        headers = {"access_token": token}
        if body is None:
            answer = await self._request(method, url, headers=headers)
        else:
            answer = await self._request(method, url, headers=headers, json=body)
        code = int(answer.get("error") or 0)
        if code != 0:
            raise OAError(code, str(answer.get("message") or "error"))
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    async def send_cs(
        self, token: str, user_id: str, text: str, buttons: list[tuple[str, str]]
    ) -> str:
        """A customer-service message (text, with buttons that send their payload back as the
        user's text); returns its message id."""
        message: JSON = {"text": text}
        if buttons:
            message["attachment"] = {
                "type": "template",
                "payload": {
                    "buttons": [
                        {"title": title, "type": "oa.query.hide", "payload": payload}
                        for title, payload in buttons
                    ]
                },
            }
        data = await self._call(
            "POST",
            f"{self.api_url}/v3.0/oa/message/cs",
            token,
            {"recipient": {"user_id": user_id}, "message": message},
        )
        return str(data.get("message_id") or "")

    async def send_zns(
        self, token: str, phone: str, template_id: str, values: JSON, tracking_id: str
    ) -> JSON:
        """A ZNS template message to a phone number (84…); returns the answer's `data`
        (`msg_id`, `sent_time`, `quota`)."""
        return await self._call(
            "POST",
            f"{self.zns_url}/message/template",
            token,
            {
                "phone": phone,
                "template_id": template_id,
                "template_data": values,
                "tracking_id": tracking_id,
            },
        )

    async def zns_quota(self, token: str) -> JSON:
        return await self._call("GET", f"{self.zns_url}/message/quota", token)


class TokenKeeper:
    """The OA's current access token, from the database (encrypted with Fernet), refreshed
    before it expires. Several processes may share the database: a refresh token is good once,
    so a process writes its new pair only if the stored version is still the one it read; if
    another process refreshed first, it takes theirs."""

    def __init__(
        self,
        client: OAClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        key: str,
        channel: str,
        clock: Callable[[], dt.datetime],
        seed_refresh_token: str | None = None,
    ) -> None:
        self.client, self.sessionmaker, self.channel, self.clock = (
            client,
            sessionmaker,
            channel,
            clock,
        )
        self.fernet = Fernet(key.encode())
        self.seed = seed_refresh_token
        self._lock = asyncio.Lock()
        self._current: Tokens | None = None
        self.refreshed = 0  # how many refreshes this process made (logs, tests)

    def _seal(self, value: str) -> bytes:
        return self.fernet.encrypt(value.encode())

    def _open(self, value: bytes) -> str:
        try:
            return self.fernet.decrypt(value).decode()
        except InvalidToken:
            raise ValueError(
                "the stored Zalo OA tokens cannot be read with ZALO_OA_TOKEN_KEY"
            ) from None

    async def _load(self) -> tuple[Tokens | None, str, int]:
        """(usable tokens or None, the refresh token, the stored version)."""
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(OAuthToken, self.channel, populate_existing=True)
            if row is None:
                if not self.seed:
                    raise ValueError("no Zalo OA refresh token: set ZALO_OA_REFRESH_TOKEN")
                row = OAuthToken(
                    channel=self.channel,
                    access_token=None,
                    refresh_token=self._seal(self.seed),
                    access_expires_at=None,
                    version=0,
                    updated_at=self.clock(),
                )
                session.add(row)
            refresh = self._open(row.refresh_token)
            tokens = None
            if row.access_token is not None and row.access_expires_at is not None:
                tokens = Tokens(self._open(row.access_token), refresh, row.access_expires_at)
            return tokens, refresh, row.version

    async def _store(self, tokens: Tokens, version: int) -> bool:
        async with self.sessionmaker() as session, session.begin():
            return await store_tokens(
                session,
                self.channel,
                version,
                access_token=self._seal(tokens.access),
                refresh_token=self._seal(tokens.refresh),
                expires_at=tokens.expires_at,
                now=self.clock(),
            )

    def _fresh(self, tokens: Tokens | None) -> bool:
        return tokens is not None and tokens.expires_at - REFRESH_MARGIN > self.clock()

    async def access_token(self, *, stale: str | None = None) -> str:
        """A good access token; `stale` names one the API refused, to be replaced."""
        async with self._lock:
            current = self._current
            if self._fresh(current) and current is not None and current.access != stale:
                return current.access
            for _attempt in range(3):
                stored, refresh, version = await self._load()
                if self._fresh(stored) and stored is not None and stored.access != stale:
                    self._current = stored
                    return stored.access
                # Not the network while a transaction is open: read, refresh, then write.
                tokens = await self.client.refresh(refresh, self.clock())
                self.refreshed += 1
                if await self._store(tokens, version):
                    log.info("Zalo OA access token refreshed; good until %s", tokens.expires_at)
                    self._current = tokens
                    return tokens.access
                log.info("another process refreshed the Zalo OA token first; using theirs")
            raise OAError(-1, "the Zalo OA token could not be refreshed")

    async def call(self, request: Callable[[str], Awaitable[Any]]) -> Any:
        """`request(token)`, once more with a new token if the API refused this one."""
        token = await self.access_token()
        try:
            return await request(token)
        except OAError as error:
            if error.code not in TOKEN_ERRORS:
                raise
            log.info("Zalo OA refused the access token (%s); refreshing", error.code)
        return await request(await self.access_token(stale=token))
