"""The emulator's memory: what the bot sent and called, pending updates, files, and waiting on them.

``EmulatorState`` is the base of ``TelegramEmulator``; it holds the data that the Bot API methods
(``botapi``) write and that tests read (``sent``, ``calls``, ``messages_to``, ``wait_for_*``).
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bot.emulator.wire import JSON


@dataclass(eq=False)  # queued updates are told apart by identity (duplicates are allowed)
class _Pending:
    update: JSON
    delivered: bool = False


class EmulatorState:
    """Bot messages and calls, user updates, stored files; wake-ups for whoever waits on them."""

    def __init__(self, token: str, bot_username: str) -> None:
        self.token = token
        bot_id = token.split(":")[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 123456,
            "is_bot": True,
            "first_name": "OCOP Test Bot",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.sent: list[JSON] = []  # bot messages, edited in place
        self.calls: list[tuple[str, JSON]] = []
        self.callback_answers: list[JSON] = []
        self.commands: list[JSON] = []  # the default menu (no scope, no language)
        # Every menu set, by its scope (canonical JSON) and language code ("" for none).
        self.menus: dict[tuple[str, str], list[JSON]] = {}
        self._queue: list[_Pending] = []  # updates not yet acknowledged
        self._next_update_id, self._counter, self._activity = 1, 0, 0
        self._next_message_ids: dict[int, int] = {}
        self._entries: dict[tuple[int, int], JSON] = {}  # the entries of `sent`, by chat and id
        self._by_chat: dict[int, list[JSON]] = {}  # `sent` by chat, see _sent_by_chat
        self._indexed: tuple[list[JSON], int, JSON | None] = (self.sent, 0, None)
        self._user_messages: set[tuple[int, int]] = set()
        self._users: dict[int, JSON] = {}
        self._files: dict[str, JSON] = {}  # file_id -> {"file_path", "content", ...}
        self._callback_ids: set[str] = set()
        self._changed = asyncio.Event()  # replaced and set on every change, see _pulse
        self._stopping = False
        # Called on every change, e.g. by the sandbox's web chat to push what is new.
        self.on_change: list[Callable[[], None]] = []

    @property
    def pending_updates(self) -> int:
        """Updates the bot has not acknowledged yet: by a later getUpdates offset, or with a 2xx
        answer to the webhook's POST (delivered or not)."""
        return len(self._queue)

    def messages_to(self, chat_id: int) -> list[JSON]:
        return list(self._sent_by_chat().get(chat_id, ()))

    def texts_to(self, chat_id: int) -> list[str]:
        """The texts (captions for files) of the bot's messages to ``chat_id``, in order."""
        texts = (entry["text"] or entry["caption"] for entry in self.messages_to(chat_id))
        return [text for text in texts if text is not None]

    def last_message(self, chat_id: int) -> JSON:
        if not (messages := self.messages_to(chat_id)):
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return messages[-1]

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        def enough() -> bool:
            return len(self._sent_by_chat().get(chat_id, ())) >= count

        if not await self._wait_until(enough, timeout):
            raise TimeoutError(
                f"expected {count} messages to chat {chat_id} within {timeout}s;"
                f" the bot sent:\n{self._dump()}"
            )
        return self.messages_to(chat_id)

    async def wait_for_call(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[JSON]:
        """Wait until the bot made ``count`` calls of ``method``; return their parameters."""

        def matching() -> list[JSON]:
            return [params for name, params in self.calls if name.lower() == method.lower()]

        if not await self._wait_until(lambda: len(matching()) >= count, timeout):
            raise TimeoutError(
                f"expected {count} {method} calls within {timeout}s; "
                f"calls: {[name for name, _ in self.calls]}"
            )
        return matching()

    async def wait_idle(self, timeout: float = 10.0, *, quiet: float = 0.0) -> None:  # noqa: ASYNC109
        """Wait until the bot acknowledged every update (asked getUpdates for later ones, or
        answered the webhook's POST of each with 2xx).

        PTB acknowledges updates once queued, possibly before its handlers finish; ``quiet > 0``
        also waits until the bot made no other API call for ``quiet`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        if not await self._wait_until(lambda: not self._queue, timeout):
            raise TimeoutError(f"updates not acknowledged in {timeout}s: {self._queue}")
        while quiet > 0:
            seen, left = self._activity, deadline - asyncio.get_running_loop().time()
            if not await self._wait_until(
                partial(lambda n: self._activity != n, seen), min(quiet, left)
            ):
                if left < quiet:
                    raise TimeoutError(f"the bot kept calling the API for {timeout}s")
                return

    def _sent_by_chat(self) -> dict[int, list[JSON]]:
        """``sent`` grouped by chat, indexed incrementally (waiters re-check on every send).

        Re-indexes from scratch when a test replaced, cleared or shortened ``sent``.
        """
        indexed_list, count, last = self._indexed
        if (
            indexed_list is not self.sent
            or count > len(self.sent)
            or (count and self.sent[count - 1] is not last)
        ):
            self._by_chat, count = {}, 0
        if count < len(self.sent):
            for entry in self.sent[count:]:
                self._by_chat.setdefault(entry["chat_id"], []).append(entry)
            count = len(self.sent)
            self._indexed = (self.sent, count, self.sent[-1])
        return self._by_chat

    def _pulse(self) -> None:
        """Wake every waiter: they re-check their condition (sync code can't notify a Condition)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        for listener in self.on_change:
            listener()

    async def _wait_until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        try:
            async with asyncio.timeout(max(seconds, 0)):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            return predicate()
        return True

    def _next_counter(self) -> int:
        self._counter += 1
        return self._counter

    def _dump(self) -> str:
        return (
            "\n".join(
                f"  -> {e['chat_id']} #{e['message_id']} {e['method']}: "
                f"{e['text'] or e['caption']!r}"
                for e in self.sent
            )
            or "  (nothing)"
        )

    def _user(self, user_id: int) -> JSON:
        return self._users.setdefault(
            user_id, {"id": user_id, "is_bot": False, "first_name": "Test", "language_code": "vi"}
        )

    def _new_message(self, chat_id: int, sender: JSON, content: JSON) -> JSON:
        message_id = self._next_message_ids.get(chat_id, 1)
        self._next_message_ids[chat_id] = message_id + 1
        chat: JSON = {"id": chat_id, "type": "private"}
        if chat_id > 0:
            chat["first_name"] = self._user(chat_id)["first_name"]
        else:
            chat.update(type="supergroup" if chat_id < -(10**12) else "group", title="Group")
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **content,
        }

    def _store_file(self, content: bytes, file_name: str | None, folder: str) -> JSON:
        n = self._next_counter()
        file_id, unique_id = f"FILE{n:06d}", f"U{n:06d}"
        ext = file_name.rpartition(".")[2] if file_name and "." in file_name else "jpg"
        self._files[file_id] = {
            "file_path": f"{folder}/file_{n}.{ext}",
            "content": content,
            "file_unique_id": unique_id,
        }
        stored = {"file_id": file_id, "file_unique_id": unique_id, "file_size": len(content)}
        if file_name is not None:
            mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
            stored.update(file_name=file_name, mime_type=mime)
        return stored
