"""`ocop-bot check`: what an operator verifies before (re)starting the bot, one line each.

Settings, the database (reachable, migrations applied), each channel's token (getMe) and
Telegram's webhook registration; then what `run` would serve. Every problem is one line that
says what to do; any problem makes the exit code 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url

from bot.settings import Settings

TIMEOUT = 10.0  # seconds for the database or a Bot API to answer


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failed: bool = False
    telegram_name: str | None = None

    def ok(self, line: str) -> None:
        self.lines.append(f"ok    {line}")

    def note(self, line: str) -> None:
        self.lines.append(f"note  {line}")

    def fail(self, line: str) -> None:
        self.lines.append(f"FAIL  {line}")
        self.failed = True


def shown_url(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


def _settings(settings: Settings, report: Report) -> None:
    from bot.channels.telegram_receiver import check_secret
    from bot.jobs import parse_time
    from models.admin_units import Area

    problems = []
    if not settings.telegram_bot_token and not settings.zalo_bot_token:
        problems.append("neither TELEGRAM_BOT_TOKEN nor ZALO_BOT_TOKEN is set")
    if settings.webhook_url:
        try:
            check_secret(settings.webhook_secret)
        except ValueError as error:
            problems.append(str(error))
    for name in ("ocop_digest_time", "ocop_backup_time"):
        try:
            parse_time(getattr(settings, name))
        except ValueError:
            problems.append(f"{name.upper()} must be a time such as 07:30")
    try:
        ZoneInfo(settings.ocop_timezone)
    except (KeyError, ValueError):
        problems.append(f"OCOP_TIMEZONE {settings.ocop_timezone!r} is not a known time zone")
    try:
        Area(settings.ocop_province_code, settings.ocop_commune_codes)
    except (KeyError, ValueError) as error:
        problems.append(f"OCOP_PROVINCE_CODE / OCOP_COMMUNE_CODES: {error}")
    for problem in problems:
        report.fail(f"settings: {problem}")
    if not problems:
        report.ok("settings")


def _revisions(connection: Connection) -> tuple[set[str], set[str]]:
    from bot.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(str(connection.engine.url)))
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current, set(script.get_heads())


async def _database(settings: Settings, report: Report) -> None:
    from models.db import create_engine

    shown = shown_url(settings.database_url)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not await asyncio.to_thread(os.path.exists, url.database):
            report.fail(f"database: there is no database at {url.database}: run `ocop-bot migrate`")
            return
    engine = create_engine(settings.database_url)
    try:
        async with asyncio.timeout(TIMEOUT), engine.connect() as connection:
            current, heads = await connection.run_sync(_revisions)
    except Exception as error:  # whatever the driver raises, the database is not usable
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        report.fail(f"database: cannot connect to {shown}: {reason}")
        return
    finally:
        await engine.dispose()
    if current != heads:
        at = ", ".join(sorted(current)) or "an empty database"
        report.fail(
            f"database {shown}: migrations pending (at {at}, newest {', '.join(sorted(heads))}): "
            "run `ocop-bot migrate`"
        )
        return
    report.ok(f"database {shown}, schema up to date ({', '.join(sorted(heads))})")


async def _telegram(settings: Settings, report: Report) -> None:
    from telegram import Bot
    from telegram.error import InvalidToken, TelegramError

    assert settings.telegram_bot_token
    bot = Bot(settings.telegram_bot_token, base_url=settings.telegram_api_url)
    try:
        async with asyncio.timeout(TIMEOUT), bot:  # getMe
            me = bot.bot
            info = await bot.get_webhook_info()
    except InvalidToken:
        report.fail("Telegram: the bot token was refused: check TELEGRAM_BOT_TOKEN (@BotFather)")
        return
    except (TelegramError, OSError, TimeoutError) as error:
        report.fail(f"Telegram: cannot reach the Bot API: {error or type(error).__name__}")
        return
    report.telegram_name = me.username
    report.ok(f"Telegram token: @{me.username}")
    wanted = settings.webhook_url
    if wanted and info.url == wanted:
        report.ok(f"Telegram webhook registered at {wanted} ({info.pending_update_count} waiting)")
    elif wanted and not info.url:
        report.note(f"Telegram webhook not registered yet; `ocop-bot run` registers {wanted}")
    elif wanted:
        report.fail(
            f"Telegram posts updates to {info.url}, not to WEBHOOK_URL {wanted} (another "
            "deployment with this token?); `ocop-bot run` takes it over"
        )
    elif info.url:
        report.note(f"a webhook is registered at {info.url}; polling removes it when it starts")
    else:
        report.ok("Telegram: no webhook registered (the bot polls)")
    if wanted and info.last_error_message and info.last_error_date:
        when = info.last_error_date.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        report.note(f"Telegram's last webhook error ({when}): {info.last_error_message}")


async def _zalo(settings: Settings, report: Report) -> None:
    from bot.channels.zalo_api import ZaloApiError, ZaloClient, ZaloNetworkError

    assert settings.zalo_bot_token
    client = ZaloClient(settings.zalo_bot_token, settings.zalo_api_url, timeout=TIMEOUT)
    await client.start()
    try:
        me = await client.get_me()
    except ZaloApiError as error:
        report.fail(f"Zalo: the bot token was refused ({error.description}): check ZALO_BOT_TOKEN")
        return
    except ZaloNetworkError as error:
        report.fail(f"Zalo: cannot reach the Zalo Bot API: {error}")
        return
    finally:
        await client.close()
    report.ok(f"Zalo token: {me.get('account_name') or me.get('id') or 'accepted'}")


async def check(settings: Settings) -> Report:
    report = Report()
    _settings(settings, report)
    await _database(settings, report)
    if settings.telegram_bot_token:
        await _telegram(settings, report)
    if settings.zalo_bot_token:
        await _zalo(settings, report)
    report.note(f"would serve: {settings.served(report.telegram_name)}")
    return report
