"""Local Telegram Bot API emulator for end-to-end tests, benchmarks and offline demos."""

from bot.emulator.faults import Faults, Limits
from bot.emulator.telegram import TelegramEmulator

__all__ = ["Faults", "Limits", "TelegramEmulator"]
