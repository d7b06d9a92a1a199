"""A local Zalo Official Account + ZNS emulator (aiohttp) for end-to-end tests and demos.

One server answers for the three hosts (point ZALO_OA_OAUTH_URL, ZALO_OA_API_URL and
ZALO_ZNS_API_URL at `base_url`), as strict as the published pages listed in
bot/channels/zalo_oa.py:

- ``POST /v4/oa/access_token``: form-encoded, the app secret in the ``secret_key`` header, the
  current refresh token; each refresh token is good ONCE; a new pair is issued with
  ``expires_in`` (a string of seconds) counted on the emulator's clock.
- ``POST /v3.0/oa/message/cs``: a live access token in the ``access_token`` header, a recipient
  who follows the OA and wrote within ``window``, text of 1 to 2000 characters, at most 5
  buttons; error -230 outside the window, -216 for a bad or expired token.
- ``POST /message/template`` (ZNS): ``phone`` as 84… linked to a Zalo account
  (``zalo_phones``), an approved ``template_id`` with exactly its parameters, within the
  sending hours (07:00-22:00 Vietnam time) and the day's quota; ``GET /message/quota``.
- Webhook: user actions (``send_text``, ``send_image``, ``follow``, ``unfollow``) are POSTed to
  ``webhook_url`` signed with ``X-ZEvent-Signature: mac=sha256(app_id + body + timestamp +
  oa_secret)``; ``post_event`` posts with any signature.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

JSON = dict[str, Any]
TEXT_LIMIT = 2000
MAX_BUTTONS = 5
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
_PHONE = re.compile(r"^84\d{9,10}$")


class ZaloOAEmulator:
    def __init__(
        self,
        clock: Callable[[], dt.datetime],
        *,
        app_id: str = "4290000000000000001",
        app_secret: str = "APP-SECRET-TEST",
        oa_secret: str = "OA-SECRET-TEST",
        window: dt.timedelta = dt.timedelta(hours=48),
        token_seconds: int = 90000,
        daily_quota: int = 500,
        hours: tuple[dt.time, dt.time] = (dt.time(7), dt.time(22)),
    ) -> None:
        self.clock, self.app_id, self.app_secret, self.oa_secret = (
            clock,
            app_id,
            app_secret,
            oa_secret,
        )
        self.window, self.token_seconds, self.daily_quota, self.hours = (
            window,
            token_seconds,
            daily_quota,
            hours,
        )
        self.refresh_token = "RT-" + secrets.token_urlsafe(12)  # what the OA admin hands out
        self.used_refresh_tokens: set[str] = set()
        self._access: dict[str, dt.datetime] = {}  # access token -> expiry
        self.refreshes = 0
        self.templates: dict[str, set[str]] = {}  # approved template id -> its parameters
        self.zalo_phones: dict[str, str] = {}  # 84… -> the user id of that Zalo account
        self.followers: set[str] = set()
        self.last_interaction: dict[str, dt.datetime] = {}
        self.sent: list[JSON] = []  # customer-service messages
        self.zns: list[JSON] = []  # ZNS messages delivered
        self.failures: list[tuple[str, int, str]] = []
        self.webhook_url: str | None = None
        self.webhook_statuses: list[int] = []
        self._counter = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.host, self.port = "127.0.0.1", 0
        self.files: dict[str, bytes] = {}  # images users sent, served under /_files/

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v4/oa/access_token", self._access_token)
        app.router.add_post("/v3.0/oa/message/cs", self._send_cs)
        app.router.add_post("/message/template", self._send_zns)
        app.router.add_get("/message/quota", self._quota)
        app.router.add_get("/_files/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()

    async def _file(self, request: web.Request) -> web.Response:
        content = self.files.get(request.match_info["name"])
        if content is None:
            return web.Response(status=404)
        return web.Response(body=content, content_type="image/jpeg")

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- acting as users --------------------------------------------------------------------

    def _next_id(self) -> str:
        self._counter += 1
        return f"{secrets.token_hex(4)}{self._counter:08x}"

    def _event(self, name: str, user_id: str, extra: JSON) -> JSON:
        return {
            "app_id": self.app_id,
            "user_id_by_app": f"app-{user_id}",
            "event_name": name,
            "timestamp": str(int(self.clock().timestamp() * 1000)),
            **extra,
        }

    def _message_event(self, name: str, user_id: str, message: JSON) -> JSON:
        self.followers.add(user_id)  # the OA's chat is open to them; writing counts as following
        self.last_interaction[user_id] = self.clock()
        extra = {"sender": {"id": user_id}, "recipient": {"id": "oa"}, "message": message}
        return self._event(name, user_id, extra)

    def text_event(self, user_id: str, text: str, msg_id: str | None = None) -> JSON:
        """The event of `user_id` writing `text`, not delivered (``push``/``post_event`` it)."""
        message = {"msg_id": msg_id or self._next_id(), "text": text}
        return self._message_event("user_send_text", user_id, message)

    async def send_text(self, user_id: str, text: str) -> JSON:
        event = self.text_event(user_id, text)
        await self.push(event)
        return event

    async def send_image(
        self, user_id: str, content: bytes | None = None, caption: str = ""
    ) -> JSON:
        """An image; with `content`, its payload URL serves those bytes (as Zalo's CDN would)."""
        url = "https://example.invalid/a.jpg"
        if content is not None:
            name = f"{self._next_id()}.jpg"
            self.files[name] = content
            url = f"{self.base_url}/_files/{name}"
        image = {"type": "image", "payload": {"url": url}}
        message = {"msg_id": self._next_id(), "text": caption, "attachments": [image]}
        event = self._message_event("user_send_image", user_id, message)
        await self.push(event)
        return event

    async def follow(self, user_id: str) -> JSON:
        self.followers.add(user_id)
        self.last_interaction[user_id] = self.clock()
        event = self._event("follow", user_id, {"oa_id": "oa", "follower": {"id": user_id}})
        await self.push(event)
        return event

    async def unfollow(self, user_id: str) -> JSON:
        self.followers.discard(user_id)
        event = self._event("unfollow", user_id, {"oa_id": "oa", "follower": {"id": user_id}})
        await self.push(event)
        return event

    def sign(self, body: str, timestamp: str) -> str:
        digest = hashlib.sha256(f"{self.app_id}{body}{timestamp}{self.oa_secret}".encode())
        return "mac=" + digest.hexdigest()

    async def push(self, event: JSON) -> int:
        """Deliver an event to the webhook, signed, as Zalo would; returns the HTTP status."""
        body = json.dumps(event, ensure_ascii=False)
        status = await self.post_event(body, self.sign(body, str(event["timestamp"])))
        self.webhook_statuses.append(status)
        return status

    async def post_event(self, body: str, signature: str | None) -> int:
        if self.webhook_url is None or self._http is None:
            raise AssertionError("no webhook URL is set")
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-ZEvent-Signature"] = signature
        try:
            async with self._http.post(self.webhook_url, data=body.encode(), headers=headers) as r:
                await r.read()
                return r.status
        except aiohttp.ClientError:
            return 0

    # --- what the bot did ---------------------------------------------------------------------

    def texts_to(self, user_id: str) -> list[str]:
        return [m["text"] for m in self.sent if m["user_id"] == user_id]

    def remaining_quota(self) -> int:
        today = self.clock().astimezone(VIETNAM).date()
        used = sum(1 for m in self.zns if m["day"] == today)
        return self.daily_quota - used

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def _pulse(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # --- the APIs -----------------------------------------------------------------------------

    def _fail(self, api: str, code: int, message: str) -> web.Response:
        self.failures.append((api, code, message))
        self._pulse()
        return web.json_response({"error": code, "message": message})

    def _token_ok(self, request: web.Request) -> bool:
        expiry = self._access.get(request.headers.get("access_token", ""))
        return expiry is not None and self.clock() < expiry

    async def _access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.headers.get("secret_key") != self.app_secret:
            return self._fail("oauth", -14002, "Invalid secret key")
        if form.get("app_id") != self.app_id or form.get("grant_type") != "refresh_token":
            return self._fail("oauth", -14001, "Invalid app_id or grant_type")
        given = str(form.get("refresh_token") or "")
        if given in self.used_refresh_tokens or given != self.refresh_token:
            return self._fail("oauth", -14014, "Invalid refresh token")
        self.used_refresh_tokens.add(given)
        self.refresh_token = "RT-" + secrets.token_urlsafe(12)
        access = "AT-" + secrets.token_urlsafe(16)
        self._access[access] = self.clock() + dt.timedelta(seconds=self.token_seconds)
        self.refreshes += 1
        self._pulse()
        return web.json_response(
            {
                "access_token": access,
                "refresh_token": self.refresh_token,
                "expires_in": str(self.token_seconds),
            }
        )

    async def _send_cs(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return self._fail("cs", -216, "Access token is invalid")
        body = await request.json()
        user = str((body.get("recipient") or {}).get("user_id") or "")
        message = body.get("message") or {}
        text = message.get("text")
        if user not in self.followers:
            return self._fail("cs", -213, "User has not followed the OA")
        last = self.last_interaction.get(user)
        if last is None or self.clock() - last >= self.window:
            return self._fail("cs", -230, "User has not interacted with the OA in the past 7 days")
        if not isinstance(text, str) or not 1 <= len(text) <= TEXT_LIMIT:
            return self._fail("cs", -201, f"text must be 1 to {TEXT_LIMIT} characters")
        buttons = ((message.get("attachment") or {}).get("payload") or {}).get("buttons") or []
        if len(buttons) > MAX_BUTTONS:
            return self._fail("cs", -201, f"at most {MAX_BUTTONS} buttons")
        message_id = self._next_id()
        self.sent.append({"user_id": user, "text": text, "buttons": buttons, "id": message_id})
        self._pulse()
        return web.json_response(
            {"error": 0, "message": "Success", "data": {"message_id": message_id, "user_id": user}}
        )

    async def _send_zns(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return self._fail("zns", -124, "Access token is invalid")
        body = await request.json()
        phone, template = str(body.get("phone") or ""), str(body.get("template_id") or "")
        data = body.get("template_data")
        if not _PHONE.match(phone):
            return self._fail("zns", -108, "Phone number is invalid")
        if template not in self.templates:
            return self._fail("zns", -1123, "Template is not approved")
        if not isinstance(data, dict) or set(data) != self.templates[template]:
            return self._fail("zns", -1124, "template_data does not match the template")
        local = self.clock().astimezone(VIETNAM)
        if not self.hours[0] <= local.time() < self.hours[1]:
            return self._fail("zns", -1139, "Outside the sending hours")
        if self.remaining_quota() <= 0:
            return self._fail("zns", -1144, "The daily quota is used up")
        if phone not in self.zalo_phones:
            return self._fail("zns", -1118, "The phone number has no Zalo account")
        message_id = self._next_id()
        self.zns.append(
            {
                "phone": phone,
                "template_id": template,
                "data": data,
                "tracking_id": body.get("tracking_id"),
                "msg_id": message_id,
                "day": local.date(),
            }
        )
        self._pulse()
        quota = {"dailyQuota": str(self.daily_quota), "remainingQuota": str(self.remaining_quota())}
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"msg_id": message_id, "sent_time": str(local.timestamp()), "quota": quota},
            }
        )

    async def _quota(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return self._fail("zns", -124, "Access token is invalid")
        quota = {"dailyQuota": str(self.daily_quota), "remainingQuota": str(self.remaining_quota())}
        return web.json_response({"error": 0, "message": "Success", "data": quota})
