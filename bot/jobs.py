"""Scheduled work: the officials' daily digest, checked every minute against the local time.

The tick asks "is today's digest due and not yet sent?" rather than trusting one timer, so a bot
that was down at digest time sends it when it comes back, and a restart never sends it twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot.channels.telegram import CHANNEL, send_reply
from handlers.context import Services
from handlers.i18n import in_language
from handlers.reports.digest import build_digest, render_digest
from models.digests import DigestRun, open_digest
from models.officials import officials

log = logging.getLogger(__name__)
DIGEST_JOB = "digest"
TICK_SECONDS = 60


def parse_time(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


class DigestJob:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        services: Services,
        digest_time: dt.time,
    ) -> None:
        self.sessionmaker, self.services, self.digest_time = sessionmaker, services, digest_time

    async def __call__(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        now = self.services.clock()
        local = now.astimezone(self.services.timezone)
        if local.time() < self.digest_time:
            return
        async with self.sessionmaker() as session:
            people = await officials(session, CHANNEL)
        for person in people:
            async with self.sessionmaker() as session, session.begin():
                run = await open_digest(
                    session, person.id, local.date(), now, first_since=now - dt.timedelta(days=1)
                )
                if run is None:
                    continue
                digest = await build_digest(
                    session,
                    self.services.area,
                    person,
                    run.since,
                    run.covered_until,
                    self.services.timezone,
                )
                run_id = run.id
            with in_language(person.language):
                replies = render_digest(digest)
            try:
                for reply in replies:
                    await send_reply(context.bot, int(person.chat_id), reply)
            except Forbidden:  # final: retrying every minute would not help
                log.warning("official %s blocked the bot; digest not delivered", person.id)
            except TelegramError as error:
                log.warning("digest to official %s failed, will retry: %s", person.id, error)
                continue
            async with self.sessionmaker() as session, session.begin():
                sent = await session.get(DigestRun, run_id)
                if sent is not None:
                    sent.sent_at = self.services.clock()


def schedule_jobs(
    application: Application,
    sessionmaker: async_sessionmaker[AsyncSession],
    services: Services,
    digest_time: dt.time,
) -> None:
    """(Re)schedule the jobs by name, so calling this twice never runs them twice."""
    queue = application.job_queue
    if queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")
    for job in queue.get_jobs_by_name(DIGEST_JOB):
        job.schedule_removal()
    queue.run_repeating(
        DigestJob(sessionmaker, services, digest_time),
        interval=TICK_SECONDS,
        first=1,
        name=DIGEST_JOB,
    )
