"""What Zalo Bot API updates mean: a text without `event_name`, names given as `first_name`."""

from __future__ import annotations

from bot.channels.zalo import to_event
from handlers.events import EventKind


def _update(message: dict[str, object], event_name: str | None = None) -> dict[str, object]:
    base = {
        "message_id": "m1",
        "from": {"id": "u1", "is_bot": False},
        "chat": {"id": "u1", "chat_type": "PRIVATE"},
        "date": 1764385200000,
        **message,
    }
    update: dict[str, object] = {"message": base}
    if event_name is not None:
        update["event_name"] = event_name
    return update


def test_a_text_without_event_name_is_a_text() -> None:
    event = to_event(_update({"text": "dang ky"}))
    assert event is not None and event.kind is EventKind.TEXT and event.text == "dang ky"
    command = to_event(_update({"text": "/hoso"}))
    assert command is not None and command.kind is EventKind.COMMAND
    assert command.command == "hoso"


def test_an_update_without_event_name_or_text_is_not_taken_for_a_text() -> None:
    photo = to_event(_update({"photo": "https://example.invalid/a.jpg"}))
    assert photo is not None and photo.kind is EventKind.PHOTO
    sticker = to_event(_update({"sticker": "5a3b"}))
    assert sticker is not None and sticker.kind is EventKind.OTHER and sticker.text is None


def test_an_event_name_still_decides_when_given() -> None:
    sticker = to_event(_update({"text": "ignored"}, "message.sticker.received"))
    assert sticker is not None and sticker.kind is EventKind.OTHER


def test_the_senders_first_name_is_their_name() -> None:
    update = _update({"text": "chào"}, "message.text.received")
    update["message"]["from"] = {"id": "u1", "first_name": "Năm", "last_name": "Lê"}  # type: ignore[index]
    event = to_event(update)
    assert event is not None and event.display_name == "Năm Lê"
    update["message"]["from"] = {"id": "u1", "display_name": "Bà Năm", "first_name": "Năm"}  # type: ignore[index]
    event = to_event(update)
    assert event is not None and event.display_name == "Bà Năm"
