"""The start-up baseline: the barest python-telegram-bot application, one echo handler, long
polling. Usage: ``python bench/startup_bare.py TOKEN API_URL`` (API_URL ends in ``/bot``).

Deliberately imports nothing of the project: it is the floor of PTB's own start-up.
"""

from __future__ import annotations

import sys

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is not None and update.effective_message.text:
        await update.effective_message.reply_text(update.effective_message.text)


def main() -> None:
    token, api_url = sys.argv[1], sys.argv[2]
    application = Application.builder().token(token).base_url(api_url).build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
