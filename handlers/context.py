"""What a handler gets besides the event (the open session, the user, shared services), and what
a long task gets instead (sessions of its own, the user, its arguments)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.admin_units import Area
from models.base import utcnow
from models.conversations import Conversation
from models.storage import LocalStorage, Storage
from models.users import User

if TYPE_CHECKING:
    from handlers.routes import Routes


def _build_routes() -> Routes:
    from handlers.router import build_routes  # the router imports every feature, and this

    return build_routes()


@dataclass(frozen=True)
class Letterhead:
    """Who sends the exported table: the issuing office (the header block), the title of the
    person who signs it and the place written before the date (settings OCOP_OFFICE_NAME,
    OCOP_SIGNER_TITLE, OCOP_OFFICE_PLACE)."""

    office: str = "Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi"
    signer: str = "Chánh Văn phòng"
    place: str = "Quảng Ngãi"


@dataclass(frozen=True)
class Services:
    """Built once at start-up from the settings and shared by every event."""

    area: Area
    timezone: ZoneInfo
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    # Days before a certificate's expiry on which its producer is reminded (0 = the day itself).
    reminder_days: tuple[int, ...] = (180, 90, 60, 30, 0)
    # Named in the personal-data notice; the retention periods housekeeping applies.
    data_controller: str = "Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi"
    # Whom producers should contact ("" = the data controller's office).
    office_contact: str = ""
    form_retention_days: int = 90
    outbox_retention_days: int = 30
    # The dossier: where its files live, the checklist file ("" = shipped), the registration
    # form's template ("" = shipped), and the most one registration may hold.
    storage: Storage = field(default_factory=lambda: LocalStorage("data/dossier"))
    checklist_path: str = ""
    # The channels' names as people read them, by channel (the adapters' LABEL).
    channels: tuple[tuple[str, str], ...] = ()
    form_template: str = ""
    cover_template: str = ""
    dossier_max_bytes: int = 100 * 1024 * 1024
    letterhead: Letterhead = field(default_factory=Letterhead)
    # Commands, buttons and forms: built from the features' tables with the services.
    routes: Routes = field(default_factory=_build_routes, repr=False, compare=False)

    def today(self) -> dt.date:
        return self.clock().astimezone(self.timezone).date()


async def _ignore_progress(_text: str) -> None:
    return None


@dataclass(frozen=True)
class Context:
    session: AsyncSession
    user: User
    services: Services
    # Sends a short "working on it" message at once, before the event's work is done.
    progress: Callable[[str], Awaitable[None]] = _ignore_progress
    # The chat's conversation: its form's metadata (handlers.engine.meta_of) is read from it.
    conversation: Conversation | None = None
    # Whether the user ever submitted a registration, when the batch read it with them (None:
    # not known, look).
    registered_before: bool | None = None

    @property
    def area(self) -> Area:
        return self.services.area

    def today(self) -> dt.date:
        return self.services.today()


@dataclass(frozen=True)
class TaskContext:
    """A long task's view (handlers/tasks.py), run by bot/tasks.py after the event's batch.

    It opens its own sessions: `reader` never takes the write lock (SQLite), `writer` for short
    write transactions only, never held while parsing or talking to the network. `progress`
    queues a message to the chat at once; `fetch` downloads a file by its channel's file id.
    A task run again after a crash finds in `cursor` and `state` how far the last run got."""

    task_id: int
    worker: str  # the runner's lease on the task (models.tasks.advance_cursor checks it)
    channel: str
    chat_id: str
    user: User
    services: Services
    args: dict[str, Any]
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]
    progress: Callable[[str], Awaitable[None]]
    fetch: Callable[[str], Awaitable[bytes]]
    cursor: int = 0
    state: dict[str, Any] | None = None
    # For work done in a worker process, which opens a connection of its own ("" = none).
    database_url: str = ""

    @property
    def area(self) -> Area:
        return self.services.area

    def today(self) -> dt.date:
        return self.services.today()
