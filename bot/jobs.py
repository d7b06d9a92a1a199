"""Scheduled work: the officials' daily digest, checked every minute against the local time;
the officials' news of arrived registrations, reminders, housekeeping, backups; and the
`Scheduler` the runtime runs them with, the same for every set of channels.

The tick asks "is today's digest due and not yet queued?" rather than trusting one timer, so a
bot that was down at digest time sends it when it comes back. The digest is queued in the
outbox in the same transaction that records it, so a restart never sends it twice and a crash
never loses it; with several processes, the record's unique key lets only one queue it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.stopping import finish_within
from handlers import notices, reminders
from handlers.arrivals import arrival_notices
from handlers.checklist import load_checklist
from handlers.context import Services
from handlers.dossier_tasks import sweep_orphans
from handlers.events import Notice
from handlers.i18n import in_language
from handlers.reports.digest import build_digest, render_digest
from models import keys
from models.base import run_alone, utcnow
from models.conversations import forget_abandoned_forms
from models.digests import open_digest
from models.inbox import forget_excess
from models.officials import officials
from models.outbox import forget_delivered
from models.personal_data import naming_people
from models.tasks import forget_tasks
from models.users import forget_updates

log = logging.getLogger(__name__)
DIGEST_JOB = "digest"
REMINDER_JOB = "reminders"
ARRIVALS_JOB = "arrivals"
HOUSEKEEPING_JOB = "housekeeping"
BACKUP_JOB = "backup"  # bot/backup.py
MENUS_JOB = "menus"  # bot/channels/telegram_menus.py
TICK_SECONDS = 60
HOUSEKEEPING_SECONDS = 3600
# Telegram keeps an unconfirmed update for 24 hours; a week is ample for any redelivery.
KEEP_UPDATE_IDS = dt.timedelta(days=7)
FORGET_CHUNK = 5000


def parse_time(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


class DigestJob:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        services: Services,
        digest_time: dt.time,
        queued: Callable[[], None],
    ) -> None:
        self.sessionmaker, self.services = sessionmaker, services
        self.digest_time, self.queued = digest_time, queued

    async def __call__(self, _context: object = None) -> None:
        now = self.services.clock()
        local = now.astimezone(self.services.timezone)
        if local.time() < self.digest_time:
            return
        async with self.sessionmaker() as session, session.begin():
            if not await run_alone(session, DIGEST_JOB):
                return
            people = await officials(session)  # on every channel
        queued = 0
        for person in people:
            async with self.sessionmaker() as session, session.begin():
                await naming_people(session)
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
                    load_checklist(self.services.checklist_path),
                )
                with in_language(person.language):
                    replies = tuple(render_digest(digest))
                notice = Notice(
                    person.channel,
                    person.chat_id,
                    replies,
                    key=keys.digest(person.id, local.date()),
                    user_id=person.id,
                )
                queued += await notices.queue(session, [notice], utcnow())
        if queued:
            self.queued()


class NoticeJob:
    """A job that queues notices built from what the database holds now, alone across
    processes (`name`) and never overlapping an erasure: the notices name people (an expiry
    alert names the certificate's owner, an arrival notice the producer), and one built from
    details read before an erasure committed must not be written after its purge."""

    name: str

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        services: Services,
        queued: Callable[[], None],
    ) -> None:
        self.sessionmaker, self.services, self.queued = sessionmaker, services, queued

    async def due(self, session: AsyncSession, now: dt.datetime) -> list[Notice]:
        raise NotImplementedError

    async def __call__(self, _context: object = None) -> None:
        async with self.sessionmaker() as session, session.begin():
            if not await run_alone(session, self.name):
                return
            await naming_people(session)
            due = await self.due(session, self.services.clock())
            queued = await notices.queue(session, due, utcnow())
        if queued:
            log.info("%s: queued %d notices", self.name, queued)
            self.queued()


class ReminderJob(NoticeJob):
    """Queues the certificate reminders and expiry alerts due now (idempotent by outbox key)."""

    name = REMINDER_JOB

    async def due(self, session: AsyncSession, now: dt.datetime) -> list[Notice]:
        due = await reminders.due_reminders(session, self.services, now)
        return due + await reminders.expired_alerts(session, self.services, now)


class ArrivalsJob(NoticeJob):
    """Tells officials what arrived in their communes since the last tick, one message each."""

    name = ARRIVALS_JOB

    async def due(self, session: AsyncSession, now: dt.datetime) -> list[Notice]:
        return await arrival_notices(session, self.services, now)


class HousekeepingJob:
    """Forgets the ids of updates handled more than KEEP_UPDATE_IDS ago, so the table that
    catches redeliveries stays a week long instead of growing with every message, and the
    excess updates of floods recorded as long ago (handled updates leave the inbox at once), and
    the long tasks finished as long ago; forms left unfinished for OCOP_FORM_RETENTION_DAYS and
    messages delivered OCOP_OUTBOX_RETENTION_DAYS ago."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], services: Services) -> None:
        self.sessionmaker, self.services = sessionmaker, services

    async def __call__(self, _context: object = None) -> None:
        now = self.services.clock()
        before = now - KEEP_UPDATE_IDS
        forms = now - dt.timedelta(days=self.services.form_retention_days)
        delivered = now - dt.timedelta(days=self.services.outbox_retention_days)
        forgotten = 0
        while True:  # a chunk per transaction: events write in between
            async with self.sessionmaker() as session, session.begin():
                if not await run_alone(session, HOUSEKEEPING_JOB):
                    return
                chunk = await forget_updates(session, before, FORGET_CHUNK)
                chunk = max(chunk, await forget_excess(session, before, FORGET_CHUNK))
                chunk = max(chunk, await forget_tasks(session, before, FORGET_CHUNK))
                # Personal data kept no longer than needed (README, "Dữ liệu cá nhân").
                chunk = max(chunk, await forget_abandoned_forms(session, forms, FORGET_CHUNK))
                chunk = max(chunk, await forget_delivered(session, delivered, FORGET_CHUNK))
            forgotten += chunk
            if chunk < FORGET_CHUNK:
                break
        await sweep_orphans(self.sessionmaker, self.services.storage, now)  # a crash's leftovers
        if forgotten:
            log.info("forgot old update ids, excess updates, finished tasks, forms and messages")


# A job is called with one argument it ignores (PTB's job context, once; BackupJob and
# OfficialMenus keep that signature).
Job = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Scheduled:
    """A job, run every `interval` seconds, the first time `first` seconds after start."""

    name: str
    job: Job
    interval: float
    first: float = 1.0


def scheduled_jobs(
    sessionmaker: async_sessionmaker[AsyncSession],
    services: Services,
    digest_time: dt.time,
    queued: Callable[[], None],
    backup: Job | None = None,
    arrivals: bool = True,
    menus: Job | None = None,
) -> list[Scheduled]:
    """The jobs of a bot process, whichever channels it serves (`menus` is Telegram's)."""
    jobs = [
        Scheduled(DIGEST_JOB, DigestJob(sessionmaker, services, digest_time, queued), TICK_SECONDS),
        Scheduled(REMINDER_JOB, ReminderJob(sessionmaker, services, queued), TICK_SECONDS),
        Scheduled(HOUSEKEEPING_JOB, HousekeepingJob(sessionmaker, services), HOUSEKEEPING_SECONDS),
    ]
    if arrivals:
        # Announced a tick after start-up: what arrived while the bot was down is one batch,
        # and the first answers after a restart are not held up by it.
        arrival = ArrivalsJob(sessionmaker, services, queued)
        jobs.append(Scheduled(ARRIVALS_JOB, arrival, TICK_SECONDS, first=TICK_SECONDS))
    if backup is not None:
        jobs.append(Scheduled(BACKUP_JOB, backup, TICK_SECONDS))
    if menus is not None:  # bot/channels/telegram_menus.py
        jobs.append(Scheduled(MENUS_JOB, menus, TICK_SECONDS))
    return jobs


class Scheduler:
    """Runs the scheduled jobs in the event loop, each in its own task, so a slow backup does
    not hold up the digest; a job that fails is logged and runs again at its next time."""

    def __init__(self) -> None:
        self.jobs: dict[str, Scheduled] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}  # a job's run under way
        # One run of a job at a time in this process: a run asked for now waits for the timed
        # one under way (on PostgreSQL, run_alone would otherwise make it do nothing at all).
        self._turns: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        # Told the name of every job whose timed run has ended (tests wait on it).
        self.listeners: list[Callable[[str], None]] = []

    @property
    def names(self) -> set[str]:
        return set(self.jobs)

    def schedule(self, jobs: list[Scheduled]) -> None:
        """(Re)schedule these jobs by name, so scheduling twice never runs one twice."""
        for scheduled in jobs:
            self.jobs[scheduled.name] = scheduled
            if (task := self._tasks.pop(scheduled.name, None)) is not None:
                task.cancel()
                self._tasks[scheduled.name] = self._start(scheduled)

    def start(self) -> None:
        for scheduled in self.jobs.values():
            if scheduled.name not in self._tasks:
                self._tasks[scheduled.name] = self._start(scheduled)

    async def run_now(self, name: str) -> None:
        """Run a job now, as its timer would (tests set the clock first), after a run of it
        under way has ended."""
        async with self._turns[name]:
            await self.jobs[name].job(None)

    async def stop(self, grace: float) -> None:
        """No new runs; a run under way gets `grace` seconds to finish (each job is one
        transaction per step, so one cut short is done again at the next start)."""
        timers, self._tasks = list(self._tasks.values()), {}
        for task in timers:
            task.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        await finish_within([task for task in self._running.values() if not task.done()], grace)
        self._running.clear()

    def _start(self, scheduled: Scheduled) -> asyncio.Task[None]:
        return asyncio.create_task(self._repeat(scheduled), name=f"job-{scheduled.name}")

    async def _repeat(self, scheduled: Scheduled) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + scheduled.first
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += scheduled.interval
            run = asyncio.create_task(self._once(scheduled), name=f"job-{scheduled.name}-run")
            self._running[scheduled.name] = run
            # Shielded: stopping the timer lets the run under way finish (see `stop`).
            with contextlib.suppress(Exception):
                await asyncio.shield(run)
            for listener in self.listeners:
                listener(scheduled.name)
            due = max(due, loop.time())  # a run longer than the interval: the next one at once

    async def _once(self, scheduled: Scheduled) -> None:
        try:
            async with self._turns[scheduled.name]:
                await scheduled.job(None)
        except Exception:
            log.exception("scheduled job %s failed", scheduled.name)
