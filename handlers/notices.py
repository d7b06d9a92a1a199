"""Queues notices (messages for other people) in the outbox, inside the event's transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.events import Notice, Reply
from models import keys
from models.outbox import enqueue


def serialize_choices(reply: Reply) -> list[Any] | None:
    if not reply.choices:
        return None
    return [[[choice.label, choice.data] for choice in row] for row in reply.choices]


async def queue(session: AsyncSession, notices: Iterable[Notice], now: dt.datetime) -> int:
    """Write each notice's replies to the outbox; returns how many were new."""
    queued = 0
    for notice in notices:
        for index, reply in enumerate(notice.replies):
            queued += await enqueue(
                session,
                key=keys.message(notice.key, index),
                channel=notice.channel,
                chat_id=notice.chat_id,
                user_id=notice.user_id,
                text=reply.text,
                choices=serialize_choices(reply),
                document_name=reply.document.file_name if reply.document else None,
                document=reply.document.content if reply.document else None,
                now=now,
                template=notice.template if index == 0 else None,
            )
    return queued
