"""Outbox, reply and task keys, built and parsed here only.

A key makes a message or a task unique: queued twice (a redelivered update, a job run again)
it is stored once. The strings are the ones stored before this module existed, so rows already
in a database keep matching.
"""

from __future__ import annotations

import datetime as dt

from models.domain import parse_number

# The n-th message of a notice is stored under "<notice key>#<n>".
_PART = "#"
REMINDER = "reminder"


def message(notice_key: str, index: int) -> str:
    """The outbox key of a notice's `index`-th message."""
    return f"{notice_key}{_PART}{index}"


def notice_of(message_key: str) -> str:
    """The notice a stored message belongs to (the key it was queued under)."""
    return message_key.partition(_PART)[0]


def event(channel: str, update_id: str) -> str:
    """One update of one channel (its long tasks are keyed by it)."""
    return f"{channel}:{update_id}"


def reply(channel: str, update_id: str, index: int) -> str:
    """The `index`-th reply to one update."""
    return f"r:{channel}:{update_id}:{index}"


def task(event_key: str, number: int) -> str:
    """The `number`-th long task one event asked for."""
    return f"{event_key}:{number}"


def task_result(task_id: int) -> str:
    return f"task:{task_id}"


def task_progress(task_id: int, count: int) -> str:
    return f"task:{task_id}:progress:{count}"


def reminder(certificate_id: int, stage: int) -> str:
    """A producer's reminder `stage` days before the certificate expires."""
    return f"{REMINDER}:{certificate_id}:{stage}"


def reminder_like() -> str:
    """A LIKE pattern matching every reminder's messages."""
    return f"{REMINDER}:%"


def parse_reminder(key: str) -> tuple[int, int] | None:
    """(certificate id, stage) of a reminder's notice or message key, else None."""
    kind, _sep, rest = notice_of(key).partition(":")
    certificate, _sep, stage = rest.partition(":")
    numbers = parse_number(certificate), parse_number(stage)
    if kind != REMINDER or numbers[0] is None or numbers[1] is None:
        return None
    return numbers[0], numbers[1]


def expired(certificate_id: int, official_id: int) -> str:
    return f"expired:{certificate_id}:{official_id}"


def digest(person_id: int, day: dt.date) -> str:
    return f"digest:{person_id}:{day.isoformat()}"


def arrivals(person_id: int, batch: int) -> str:
    return f"arrivals:{person_id}:{batch}"


def review(registration_id: int, status: str, at: dt.datetime) -> str:
    return f"review:{registration_id}:{status}:{at.isoformat()}"


def corrected(registration_id: int, at: dt.datetime) -> str:
    return f"corrected:{registration_id}:{at.isoformat()}"


def official(user_id: int, at: dt.datetime) -> str:
    return f"official:{user_id}:{at.isoformat()}"


def withdrawn(official_id: int, user_id: int, at: dt.datetime) -> str:
    return f"withdrawn:{official_id}:{user_id}:{at.isoformat()}"


def forwarded(message_key: str, channel: str) -> str:
    """The copy of a message sent on another channel (Zalo OA's ZNS fallback); fits the
    column."""
    return f"{message_key}>{channel}"[:200]


def undelivered(message_key: str) -> str:
    """The notice that the file queued under `message_key` could not be sent; fits the
    column."""
    return f"{message_key}!undelivered"[:200]
