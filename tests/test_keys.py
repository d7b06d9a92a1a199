"""Outbox keys: the strings stored before keep their meaning (a reminder is found again)."""

from __future__ import annotations

import datetime as dt

from models import keys


def test_a_reminder_is_recognised_from_its_stored_message_key() -> None:
    stored = keys.message(keys.reminder(315, 30), 0)
    assert stored == "reminder:315:30#0"  # the layout rows written earlier have
    assert keys.parse_reminder(stored) == (315, 30)
    assert keys.notice_of(stored) == "reminder:315:30"


def test_other_keys_are_not_taken_for_reminders() -> None:
    assert keys.parse_reminder("expired:315:4#0") is None
    assert keys.parse_reminder(keys.digest(4, dt.date(2026, 1, 5))) is None
    assert keys.parse_reminder("reminder:x:30#0") is None


def test_keys_stay_in_the_layout_already_stored() -> None:
    at = dt.datetime(2026, 1, 5, 7, 30, tzinfo=dt.UTC)
    assert keys.reply("telegram", "900", 1) == "r:telegram:900:1"
    assert keys.task(keys.event("telegram", "900"), 0) == "telegram:900:0"
    assert keys.review(7, "accepted", at) == "review:7:accepted:2026-01-05T07:30:00+00:00"
    assert (
        keys.forwarded("x" * 300, "zalo_oa").startswith("x")
        and len(keys.forwarded("x" * 300, "zalo_oa")) == 200
    )
