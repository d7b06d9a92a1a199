"""The `ocop-bot` command: `run` serves the bot, `migrate` brings the database up to date."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from telegram import Update

from bot.settings import Settings

NO_TOKEN = """\
TELEGRAM_BOT_TOKEN is not set.

To get a token: open Telegram, talk to @BotFather, send /newbot, choose a name and a username
ending in "bot". BotFather answers with a token like 123456789:AAE...; put it in .env:

    TELEGRAM_BOT_TOKEN=123456789:AAE...

To try the bot without Telegram, start the local emulator (python -m bot.emulator) and set
TELEGRAM_API_URL to the URL it prints.
"""


def configure_logging() -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO
    )
    # httpx logs every request URL at INFO, and Telegram URLs contain the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocop-bot", description="OCOP product registration bot (Telegram)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run",
        help="apply pending migrations, then serve the bot",
        description="Apply pending database migrations, then serve the bot (long polling, or a "
        "webhook when WEBHOOK_URL is set). Settings come from the environment and .env.",
    )
    commands.add_parser(
        "migrate",
        help="apply pending database migrations and exit",
        description="Bring the database at DATABASE_URL up to the newest schema.",
    )
    return parser


def run(settings: Settings) -> int:
    from bot.app import build_application
    from bot.migrate import upgrade

    if not settings.telegram_bot_token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    upgrade(settings.database_url)
    application = build_application(settings)
    if settings.webhook_url:
        application.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret,
            allowed_updates=Update.ALL_TYPES,
        )
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    settings = Settings()
    if args.command == "migrate":
        from bot.migrate import upgrade

        upgrade(settings.database_url)
        return 0
    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
