"""Telegram's command menu, per role and language: everyone's menu lists the commands the
messages teach (/dangky, /hoso, /huy… in Vietnamese, their English names for English clients);
each official and admin gets a menu of their own chat (setMyCommands with a chat scope) that
adds what their role may do, in the language they chose. Which commands, and their
descriptions, come from the routes (each `Command`'s `menu`, handlers/routes.py).

The officials' menus follow role changes within a minute: a job compares who is an official
now with what it last published, outside any database transaction.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.channels.telegram import CHANNEL, api_call
from handlers.i18n import LANGUAGES
from handlers.routes import Routes
from models.domain import Role
from models.officials import officials

log = logging.getLogger(__name__)


async def _set(
    bot: Bot, commands: list[dict[str, str]], scope: str | None = None, language: str | None = None
) -> None:
    await api_call(
        bot, "setMyCommands", commands=json.dumps(commands), scope=scope, language_code=language
    )


async def publish_default_menus(bot: Bot, routes: Routes) -> None:
    """Everyone's menu: Vietnamese by default, English for clients set to English."""
    for language in LANGUAGES:
        await _set(
            bot,
            routes.menu(Role.PRODUCER, language),
            language=None if language == "vi" else language,
        )


class OfficialMenus:
    """Keeps each official's and admin's chat menu in step with their role and language."""

    def __init__(
        self, bot: Bot, sessionmaker: async_sessionmaker[AsyncSession], routes: Routes
    ) -> None:
        self.bot, self.sessionmaker, self.routes = bot, sessionmaker, routes
        self.published: dict[str, tuple[Role, str]] = {}  # chat id -> what its menu shows

    async def sync(self) -> None:
        async with self.sessionmaker() as session:
            people = await officials(session, CHANNEL)
        wanted = {person.chat_id: (person.role, person.language) for person in people}
        for chat_id, (role, language) in wanted.items():
            if self.published.get(chat_id) == (role, language):
                continue
            scope = json.dumps({"type": "chat", "chat_id": int(chat_id)})
            try:
                await _set(self.bot, self.routes.menu(role, language), scope=scope)
            except TelegramError as error:  # a chat the bot cannot reach now: next tick
                log.info("could not set the menu of an official's chat: %s", error)
                continue
            self.published[chat_id] = (role, language)
        for chat_id in [chat for chat in self.published if chat not in wanted]:
            scope = json.dumps({"type": "chat", "chat_id": int(chat_id)})
            try:
                await api_call(self.bot, "deleteMyCommands", scope=scope)
            except TelegramError as error:
                log.info("could not reset the menu of a former official's chat: %s", error)
                continue
            del self.published[chat_id]

    async def __call__(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.sync()
