"""a conversation's passing state (a "really cancel?" pending, a dossier file waiting for its
paper, the papers an official is choosing) in its metadata, out of the answers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The metadata's name for each, and the answers' key 0011's code kept it under.
_MOVED = {"cancelling": "_cancelling", "dossier": "_dossier", "asking": "_dossier_ask"}

_conversations = sa.table(
    "conversations",
    sa.column("channel", sa.String),
    sa.column("chat_id", sa.String),
    sa.column("answers", sa.JSON),
    sa.column("meta", sa.JSON),
)


def _loaded(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # a driver that hands JSON back as text
        value = json.loads(value)
    return dict(value or {})


def _rows() -> list[Any]:
    return list(
        op.get_bind().execute(
            sa.select(
                _conversations.c.channel,
                _conversations.c.chat_id,
                _conversations.c.answers,
                _conversations.c.meta,
            )
        )
    )


def _write(channel: str, chat_id: str, answers: dict[str, Any], meta: dict[str, Any]) -> None:
    op.get_bind().execute(
        _conversations.update()
        .where(_conversations.c.channel == channel, _conversations.c.chat_id == chat_id)
        .values(answers=answers, meta=meta or None)
    )


def upgrade() -> None:
    for channel, chat_id, stored, stored_meta in _rows():
        answers, meta = _loaded(stored), _loaded(stored_meta)
        moved = {name: answers[key] for name, key in _MOVED.items() if key in answers}
        if moved:
            kept = {key: v for key, v in answers.items() if key not in _MOVED.values()}
            _write(channel, chat_id, kept, {**meta, **moved})


def downgrade() -> None:
    for channel, chat_id, stored, stored_meta in _rows():
        answers, meta = _loaded(stored), _loaded(stored_meta)
        moved = {key: meta[name] for name, key in _MOVED.items() if name in meta}
        if moved:
            kept = {name: v for name, v in meta.items() if name not in _MOVED}
            _write(channel, chat_id, {**answers, **moved}, kept)
