"""Local Telegram Bot API emulator for end-to-end tests and offline demos."""

from bot.emulator.telegram import TelegramEmulator

__all__ = ["TelegramEmulator"]
