"""Webhook mode of the Telegram emulator: setWebhook, deleteWebhook, getWebhookInfo and the pusher.

Like real Telegram, while a webhook is set getUpdates answers 409 and every queued update is
POSTed as JSON to the webhook's url (with ``X-Telegram-Bot-Api-Secret-Token`` when a secret was
given). An update leaves the queue only when the answer is 2xx; any other status, a refused
connection or a timeout (``webhook_timeout`` seconds) is recorded as the webhook's last error and
the same update is sent again after a back-off (``webhook_retry_initial`` doubling up to
``webhook_retry_max``), until it is acknowledged, the webhook is deleted or replaced, or the
emulator stops. Updates of one chat go strictly one at a time in queue order; different chats
concurrently, at most ``max_connections`` at once. ``webhook_attempts`` records every POST.

As the Bot API: setWebhook ends a pending long poll with 409 "terminated by setWebhook request";
an empty ``url`` removes the webhook; an empty ``secret_token`` is the same as none; other
secrets must be 1 to 256 of ``A-Za-z0-9_-``; ``max_connections`` is clamped to 1..100 (default
40); with ``allowed_updates`` other kinds of update are dropped (Telegram would not make them).
Unlike it, any port is accepted, and plain http on a loopback host (see ``_check_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.emulator.state import EmulatorState, _Pending
from bot.emulator.wire import JSON, ApiError

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# What the Bot API calls a webhook's "conflict" with long polling.
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active;"
    " use deleteWebhook to delete the webhook first"
)
TERMINATED = "Conflict: terminated by setWebhook request"


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str) -> None:
    """Real Telegram wants https on port 443, 80, 88 or 8443. The emulator takes https on any
    port, and plain http on a loopback host (tests and demos run the bot's webhook locally)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ApiError("bad webhook: Failed to resolve host: Name or service not known") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError("bad webhook: An HTTPS URL must be provided for webhook")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ApiError("bad webhook: An HTTPS URL must be provided for webhook")


def chat_key(update: JSON) -> Any:
    """What the pusher keeps in order: the update's chat (a pressed button: its message's chat),
    else its sender; an update with neither is independent of all others."""
    for key, payload in update.items():
        if key == "update_id" or not isinstance(payload, dict):
            continue
        for holder in (payload, payload.get("message")):
            if isinstance(holder, dict) and isinstance(holder.get("chat"), dict):
                return holder["chat"].get("id")
        if isinstance(payload.get("from"), dict):
            return payload["from"].get("id")
    return ("update", update.get("update_id"))


def _kind(update: JSON) -> str:
    return next((key for key in update if key != "update_id"), "")


class WebhookDelivery(EmulatorState):
    """The webhook's settings and the tasks that push updates to it."""

    def __init__(self, token: str, bot_username: str) -> None:
        super().__init__(token, bot_username)
        self.webhook: JSON | None = None  # url, secret_token, max_connections, allowed_updates
        self.webhook_attempts: list[JSON] = []  # every POST: update_id, chat, status or error
        self.webhook_timeout = 10.0  # seconds per POST before it counts as failed
        self.webhook_retry_initial = 0.05  # seconds before the first retry, doubled each time
        self.webhook_retry_max = 2.0  # the longest wait between two tries of an update
        self._http: aiohttp.ClientSession | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._pushing: dict[Any, asyncio.Task[None]] = {}  # chat -> the task delivering to it
        self._kick = asyncio.Event()  # something to push may have appeared

    # --- the Bot API methods ---------------------------------------------------------------

    def _api_setwebhook(self, params: JSON) -> bool:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise ApiError("bad webhook: An HTTPS URL must be provided for webhook")
        if not url:  # an empty url removes the webhook, as deleteWebhook does
            return self._api_deletewebhook(params)
        _check_url(url)
        secret = params.get("secret_token") or None  # empty: the same as not given
        if secret is not None and not (isinstance(secret, str) and _SECRET.fullmatch(secret)):
            raise ApiError("secret token contains unallowed characters")
        try:
            connections = int(params.get("max_connections") or 40)
        except (TypeError, ValueError):
            raise ApiError('field "max_connections" must be a valid Number') from None
        allowed = params.get("allowed_updates")
        if params.get("drop_pending_updates"):  # only once the webhook was accepted
            self._queue.clear()
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "max_connections": min(max(connections, 1), 100),  # Telegram clamps it to 1..100
            "allowed_updates": list(allowed) if isinstance(allowed, list) else None,
            "last_error_date": None,
            "last_error_message": None,
        }
        self._pulse()  # ends long polls: "terminated by setWebhook request"
        self._kick.set()
        return True

    def _api_deletewebhook(self, params: JSON) -> bool:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self.webhook = None
        self._pulse()
        return True

    def _api_getwebhookinfo(self, params: JSON) -> JSON:
        info: JSON = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if (webhook := self.webhook) is not None:
            info.update(url=webhook["url"], max_connections=webhook["max_connections"])
            if webhook["last_error_date"] is not None:
                info["last_error_date"] = webhook["last_error_date"]
                info["last_error_message"] = webhook["last_error_message"]
            if webhook["allowed_updates"] is not None:
                info["allowed_updates"] = webhook["allowed_updates"]
        return info

    async def wait_for_webhook_attempts(
        self,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Wait until the emulator made ``count`` webhook POSTs (answered or not); return all."""
        if not await self._wait_until(lambda: len(self.webhook_attempts) >= count, timeout):
            raise TimeoutError(
                f"expected {count} webhook attempts within {timeout}s;"
                f" made: {self.webhook_attempts}"
            )
        return list(self.webhook_attempts)

    def webhook_settings(self) -> JSON:
        """The timeout and back-off of webhook POSTs (seconds), as the control route shows them."""
        return {
            "timeout": self.webhook_timeout,
            "retry_initial": self.webhook_retry_initial,
            "retry_max": self.webhook_retry_max,
        }

    def configure_webhook(
        self,
        *,
        timeout: float | None = None,
        retry_initial: float | None = None,
        retry_max: float | None = None,
    ) -> JSON:
        """Change the timeout and back-off of webhook POSTs; all must be positive seconds."""
        settings = self.webhook_settings()
        given = {"timeout": timeout, "retry_initial": retry_initial, "retry_max": retry_max}
        settings.update({key: float(v) for key, v in given.items() if v is not None})
        if any(not value > 0 for value in settings.values()):
            raise ValueError(f"webhook timeout and back-off must be positive seconds: {settings}")
        if settings["retry_initial"] > settings["retry_max"]:
            raise ValueError(f"retry_initial must not exceed retry_max: {settings}")
        self.webhook_timeout = settings["timeout"]
        self.webhook_retry_initial = settings["retry_initial"]
        self.webhook_retry_max = settings["retry_max"]
        return settings

    # --- pushing ---------------------------------------------------------------------------

    def _start_pushing(self) -> None:
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._kick = asyncio.Event()
        self._kick.set()  # a webhook set before a restart: resume
        self._pusher = asyncio.create_task(self._push_updates(), name="emulator-webhook")

    async def _stop_pushing(self) -> None:
        """Cancel the pusher and every delivery in flight; their updates stay queued."""
        tasks = [t for t in (self._pusher, *self._pushing.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pusher = None
        self._pushing.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _queued(self) -> None:
        """Called on every enqueued update: with a webhook set, push it."""
        self._kick.set()

    async def _push_updates(self) -> None:
        """Start a delivery for the first pending update of every chat not being delivered to."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            if (webhook := self.webhook) is None or self._stopping:
                continue
            seen: set[Any] = set()
            dropped: list[_Pending] = []
            for pending in self._queue:
                if len(self._pushing) >= webhook["max_connections"]:
                    break
                key = chat_key(pending.update)
                if key in seen:
                    continue
                allowed = webhook["allowed_updates"]
                if allowed and _kind(pending.update) not in allowed:
                    # Real Telegram does not even create such updates; drop it, on record.
                    dropped.append(pending)
                    self._attempt(pending, key, None, f"dropped: not in {allowed}")
                    continue
                seen.add(key)
                if key not in self._pushing:
                    self._pushing[key] = asyncio.create_task(self._push(pending, key, webhook))
            for pending in dropped:
                self._acknowledge(pending)

    async def _push(self, pending: _Pending, key: Any, webhook: JSON) -> None:
        """POST one update until it is answered 2xx or the webhook changes; then the next."""
        delay = self.webhook_retry_initial

        def gone() -> bool:
            return self._stopping or self.webhook is not webhook

        try:
            while not gone():
                status, problem = await self._post(pending.update, webhook)
                self._attempt(pending, key, status, problem)
                if problem is None:
                    self._acknowledge(pending)
                    return
                webhook.update(last_error_date=int(time.time()), last_error_message=problem)
                self._pulse()
                await self._wait_until(gone, delay)
                delay = min(delay * 2, self.webhook_retry_max)
        finally:
            if self._pushing.get(key) is asyncio.current_task():
                del self._pushing[key]
            self._kick.set()

    async def _post(self, update: JSON, webhook: JSON) -> tuple[int | None, str | None]:
        """The answer's status, and what went wrong (None for a 2xx answer)."""
        assert self._http is not None
        headers = {"Content-Type": "application/json"}
        if webhook["secret_token"] is not None:
            headers[SECRET_HEADER] = webhook["secret_token"]
        body = json.dumps(update, ensure_ascii=False).encode()
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        try:
            async with self._http.post(
                webhook["url"], data=body, headers=headers, timeout=timeout
            ) as answer:
                await answer.read()
        except TimeoutError:
            return None, "Read timeout expired"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                return None, "Connection refused"
            return None, f"Failed to connect: {exc.os_error}"
        except aiohttp.ClientError as exc:
            return None, f"Connection error: {type(exc).__name__}: {exc}"
        if 200 <= answer.status < 300:
            return answer.status, None
        return answer.status, f"Wrong response from the webhook: {answer.status} {answer.reason}"

    def _attempt(
        self, pending: _Pending, key: Any, status: int | None, problem: str | None
    ) -> None:
        self.webhook_attempts.append(
            {
                "update_id": pending.update.get("update_id"),
                "chat": key if isinstance(key, int) else None,
                "status": status,
                "error": problem,
                "at": time.monotonic(),
            }
        )
        self._pulse()

    def _acknowledge(self, pending: _Pending) -> None:
        """Remove this very update (not an equal duplicate) from the queue."""
        for index, queued in enumerate(self._queue):
            if queued is pending:
                del self._queue[index]
                break
        self._pulse()
