"""An in-process Bot API for benchmarks: answers PTB's requests locally and records replies, so a
benchmark measures the bot, not the network."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram.request import BaseRequest, RequestData

from bot.app import start, stop

BOT_USER = {"id": 424242, "is_bot": True, "first_name": "OCOP", "username": "ocop_bench_bot"}
TOKEN = "123456:BENCH"
ROOT = Path(__file__).resolve().parent.parent


async def start_emulator(
    limits: dict[str, float] | None = None,
) -> tuple[asyncio.subprocess.Process, str]:
    """The Telegram emulator in a process of its own (so it does not compete with the bot being
    measured); returns the process and the base URL it listens on."""
    extra = ["--limits", json.dumps(limits)] if limits else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.emulator", "--port", "0", "--token", TOKEN, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    while line := (await process.stdout.readline()).decode():
        if "listening on " in line:  # the first line names the address
            return process, line.split("listening on ")[1].strip()
    raise RuntimeError("the emulator did not start")


# The bot's own lifecycle; the baselines (plain Applications) go through the same steps.
start_application = start
stop_application = stop


@dataclass
class Received:
    text: str
    markup: dict[str, Any] | None
    at: float
    labels: str = ""  # the inline buttons' texts, one per line, to find a button by its label


def _labels(markup: dict[str, Any] | None) -> str:
    rows = (markup or {}).get("inline_keyboard", [])
    return "\n".join(str(button.get("text", "")) for row in rows for button in row)


@dataclass
class Inbox:
    """What the bot sent to one chat, with a condition to wait on."""

    messages: list[Received] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class LocalTransport(BaseRequest):
    """Answers getUpdates from `feed` as Telegram does (an update stays until an offset above
    it confirms it), and records every message sent."""

    def __init__(self) -> None:
        self.inboxes: dict[int, Inbox] = defaultdict(Inbox)
        self._ids = itertools.count(1)
        self.calls = 0
        self._updates: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._update_ids = itertools.count(1)

    def feed(self, update: dict[str, Any]) -> None:
        """A user's update, for the bot's next getUpdates."""
        self._updates.append({**update, "update_id": next(self._update_ids)})
        self._arrived.set()

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(str(params.get("offset") or 0))
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._arrived.clear()
            try:
                timeout = float(str(params.get("timeout") or 0))
                await asyncio.wait_for(self._arrived.wait(), timeout=timeout)
            except TimeoutError:
                return []
        return self._updates[: int(str(params.get("limit") or 100))]

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float:
        return 5.0

    async def do_request(  # type: ignore[override]
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        self.calls += 1
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        result: Any = True
        if name == "getMe":
            result = BOT_USER
        elif name == "getUpdates":
            result = await self._get_updates(params)
        elif name in ("sendMessage", "sendDocument"):
            chat_id = int(str(params["chat_id"]))
            raw = params.get("reply_markup")
            markup = raw if isinstance(raw, dict) else None
            text = str(params.get("text") or params.get("caption") or "")
            result = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
                "text": text,
            }
            inbox = self.inboxes[chat_id]
            async with inbox.changed:
                inbox.messages.append(Received(text, markup, time.perf_counter(), _labels(markup)))
                inbox.changed.notify_all()
        return 200, json.dumps({"ok": True, "result": result}).encode()
