"""Channel-neutral events (what a user did) and replies (what the bot answers)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class EventKind(enum.StrEnum):
    TEXT = "text"
    COMMAND = "command"
    CHOICE = "choice"
    CONTACT = "contact"
    LOCATION = "location"
    PHOTO = "photo"
    DOCUMENT = "document"
    OTHER = "other"


class FileTooLarge(Exception):
    """A file is larger than its channel lets a bot download (Telegram: 20 MB)."""


@dataclass(frozen=True)
class Attachment:
    """A file the user sent; `fetch` downloads it only when a handler decides to read it."""

    file_name: str
    size: int | None
    fetch: Callable[[], Awaitable[bytes]]
    # The channel's id of the file, to fetch it again later (a long task after a restart).
    file_id: str | None = None


@dataclass(frozen=True)
class Event:
    channel: str
    user_id: str
    chat_id: str
    kind: EventKind
    update_id: str | None = None
    display_name: str = ""
    username: str | None = None
    language_code: str | None = None
    text: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    choice: str | None = None
    phone: str | None = None
    contact_user_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    attachment: Attachment | None = None
    # How this channel links into the bot with a start code (Telegram: t.me/<bot>?start=).
    deep_link: str | None = None


class Request(enum.StrEnum):
    """A special input the channel should offer (Telegram: a reply-keyboard button)."""

    CONTACT = "contact"
    LOCATION = "location"


@dataclass(frozen=True)
class Choice:
    label: str
    data: str


@dataclass(frozen=True)
class Document:
    file_name: str
    content: bytes


@dataclass(frozen=True)
class KeyButton:
    """A button of a reply keyboard: sends its label as text, or a contact/location."""

    label: str
    request: Request | None = None


@dataclass(frozen=True)
class Reply:
    """One message to the user. Text is HTML with user values already escaped.

    `choices` are inline buttons; `keyboard` rows replace the user's keyboard (needed for contact
    and location requests); `remove_keyboard` takes such a keyboard away again.
    """

    text: str
    choices: tuple[tuple[Choice, ...], ...] = ()
    keyboard: tuple[tuple[KeyButton, ...], ...] = ()
    remove_keyboard: bool = False
    document: Document | None = None


@dataclass(frozen=True)
class Notice:
    """Messages for someone other than the sender, e.g. a producer told of a review outcome.

    Built in the recipient's language by the handler that decides to send it.
    """

    channel: str
    chat_id: str
    replies: tuple[Reply, ...]
    # Unique per notification: the outbox queues a key once, however often it is offered.
    key: str
    user_id: int | None = None
    # The same news as a channel's approved template would say it (Zalo ZNS, outside a chat):
    # {"kind": ..., "values": {...}}; kept with the notice's first message.
    template: dict[str, Any] | None = None


@dataclass(frozen=True)
class LongTask:
    """Work too long for the shared transaction of a batch (an export, an import, statistics):
    recorded in the event's transaction, run after it in sessions of its own (bot/tasks.py),
    its results sent to the chat through the outbox. `args` must be JSON."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What handling one event produced: replies, a toast for the pressed button, notices,
    long tasks to run once the event is committed."""

    replies: list[Reply] = field(default_factory=list)
    toast: str | None = None
    notices: list[Notice] = field(default_factory=list)
    tasks: list[LongTask] = field(default_factory=list)
    # Why a privileged route refused the request (out of scope…): it is audited as refused.
    refused: str | None = None
    # Set by a form answered by typing: the question before these replies has spent its buttons.
    spends_buttons: bool = False
    # Set by a channel: (chat id, its id of an earlier message in the chat) whose buttons these
    # replies replace (the previous question, answered by typing), to take them away.
    spent_buttons: tuple[str, str] | None = None
    # The pressed message's new text (HTML), for channels that can edit a sent message: a
    # review card showing the decision just taken instead of "waiting". Its buttons go.
    edited: str | None = None
    # The pressed message's buttons stay usable (a list of papers to send, one tap each);
    # otherwise a channel that can takes them away once the press is answered.
    keep_buttons: bool = False
