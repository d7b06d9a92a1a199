"""A small client for the Zalo Bot API: `POST <ZALO_API_URL><token>/<method>` with a JSON body.

Answers are `{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …}`.
`getUpdates` long-polls and returns ONE update (not a list, unlike Telegram), or error 408 when
none arrived within `timeout` (which the API wants as a string). Errors never carry the URL, so
the token cannot reach a log through them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

JSON = dict[str, Any]
NO_UPDATE = 408  # getUpdates: nothing arrived within the timeout
# A sent message's id is stored in the outbox (String(32)); Zalo's ids are shorter than that.
MESSAGE_ID_LENGTH = 32


class ZaloApiError(Exception):
    """The API answered `ok: false` (or something that is not its JSON at all)."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description = code, description
        self.parameters = parameters or {}


class ZaloNetworkError(Exception):
    """The request did not get an answer: connection refused or reset, DNS, timeout."""


class ZaloClient:
    """One HTTP connection pool per bot. Call `start` in the event loop, `close` at the end."""

    def __init__(self, token: str, base_url: str, timeout: float = 15.0) -> None:
        self.token, self.base_url, self.timeout = token, base_url, timeout
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32), raise_for_status=False
            )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def _hide_token(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    async def call(
        self, method: str, params: JSON | None = None, seconds: float | None = None
    ) -> Any:
        """The `result` of one API call; raises ZaloApiError or ZaloNetworkError."""
        if self._http is None:
            raise RuntimeError("ZaloClient.start() was not called")
        url = f"{self.base_url}{self.token}/{method}"
        limit = aiohttp.ClientTimeout(total=seconds if seconds is not None else self.timeout)
        try:
            async with self._http.post(url, json=params or {}, timeout=limit) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = self._hide_token(str(error)) or type(error).__name__
            raise ZaloNetworkError(f"{method}: {reason}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise ZaloApiError(status, f"{method}: not a Bot API answer (HTTP {status})") from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            answer = answer if isinstance(answer, dict) else {}
            code = int(answer.get("error_code") or status or 500)
            description = self._hide_token(str(answer.get("description") or "error"))
            raise ZaloApiError(code, description, answer.get("parameters"))
        return answer.get("result")

    async def get_me(self) -> JSON:
        result = await self.call("getMe")
        return result if isinstance(result, dict) else {}

    async def get_update(self, wait: int) -> JSON | None:
        """Wait up to `wait` seconds for the next update; None when none arrived."""
        try:
            # The HTTP request may take a little longer than the long poll itself.
            result = await self.call("getUpdates", {"timeout": str(wait)}, wait + 10)
        except ZaloApiError as error:
            if error.code == NO_UPDATE:
                return None
            raise
        if isinstance(result, list):  # tolerate a Telegram-style list of one
            result = result[0] if result else None
        return result if isinstance(result, dict) else None

    async def send_message(self, chat_id: str, text: str) -> str:
        """Send a text (1–2000 characters); returns the message id."""
        result = await self.call("sendMessage", {"chat_id": chat_id, "text": text})
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return str(message_id or "")[:MESSAGE_ID_LENGTH]

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> None:
        try:
            await self.call("sendChatAction", {"chat_id": chat_id, "action": action}, 5.0)
        except (ZaloApiError, ZaloNetworkError) as error:  # a courtesy; never worth failing for
            log.debug("sendChatAction failed: %s", error)

    async def set_webhook(self, url: str, secret_token: str) -> None:
        await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> None:
        await self.call("deleteWebhook")

    async def get_webhook_info(self) -> JSON:
        result = await self.call("getWebhookInfo")
        return result if isinstance(result, dict) else {}


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` unless `stopping` is set first; True when it was (stop at once)."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
