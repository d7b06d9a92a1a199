"""What a Zalo user sees and types: replies as numbered text, typed answers back to buttons."""

from __future__ import annotations

from bot.channels.zalo import to_event
from bot.channels.zalo_render import TEXT_LIMIT, plain_text, render, render_reply
from handlers.events import Choice, Document, EventKind, KeyButton, Reply, Request
from handlers.i18n import in_language
from models.menus import Menu, MenuEntry

KINDS = (
    (Choice("Sản phẩm mới", "7:o:new"),),
    (Choice("Đánh giá lại sản phẩm sắp hết hạn", "7:o:reeval"),),
    (Choice("Nâng hạng sao", "7:o:upgrade"),),
    (Choice("⬅️ Quay lại", "7:b"), Choice("✖️ Huỷ", "7:x")),
)


def _update(text: str | None, event: str = "message.text.received", **message: object) -> dict:
    body = {
        "message_id": "abc123",
        "from": {"id": "u1", "display_name": "Bà Năm", "is_bot": False},
        "chat": {"id": "u1", "chat_type": "PRIVATE"},
        "date": 1764385200000,
        **message,
    }
    if text is not None:
        body["text"] = text
    return {"event_name": event, "message": body}


def test_html_becomes_the_text_a_user_would_see() -> None:
    assert plain_text("Mã hồ sơ: <b>OCOP-2026-0001</b> · Cá &amp; mắm &lt;ngon&gt;") == (
        "Mã hồ sơ: OCOP-2026-0001 · Cá & mắm <ngon>"
    )


def test_a_question_lists_its_options_by_number_and_navigation_by_words() -> None:
    rendered = render([Reply("<i>Câu 1 trên 12</i>\nÔng/Bà muốn đăng ký gì?", choices=KINDS)])
    [text] = rendered.texts
    assert text.splitlines() == [
        "Câu 1 trên 12",
        "Ông/Bà muốn đăng ký gì?",
        "",
        "1. Sản phẩm mới",
        "2. Đánh giá lại sản phẩm sắp hết hạn",
        "3. Nâng hạng sao",
        "Trả lời 1, 2 hoặc 3.",
        "Hoặc gõ: Quay lại · Huỷ",
    ]
    assert [entry.numbered for entry in rendered.menu] == [True, True, True, False, False]


def test_english_hints_and_long_menus_as_a_range() -> None:
    choices = tuple((Choice(f"Field {n}", f"3:e:f{n}"),) for n in range(1, 7))
    with in_language("en"):
        [text] = render_reply(Reply("Check", choices=choices)).texts
        [single] = render_reply(Reply("One", choices=((Choice("Fix it", "pe:4"),),))).texts
    assert text.endswith("6. Field 6\nReply with a number from 1 to 6.")
    assert single.endswith("1. Fix it\nReply 1.")


def test_numbers_run_on_across_the_messages_of_one_answer() -> None:
    cards = [
        Reply("3 hồ sơ đang chờ."),
        Reply("OCOP-1", choices=((Choice("✅ Tiếp nhận", "rv:acc:1"), Choice("⛔", "rv:rej:1")),)),
        Reply("OCOP-2", choices=((Choice("✅ Tiếp nhận", "rv:acc:2"), Choice("⛔", "rv:rej:2")),)),
    ]
    rendered = render(cards)
    assert "3. ✅ Tiếp nhận" in rendered.texts[2] and "Trả lời 3 hoặc 4." in rendered.texts[2]
    menu = Menu(tuple(rendered.menu))
    assert menu.pick("3") == MenuEntry("✅ Tiếp nhận", "rv:acc:2")
    assert menu.pick("tiep nhan") is None  # names two registrations: ask again rather than guess


def test_keyboards_become_hints_and_words() -> None:
    keyboard = (
        (KeyButton("📱 Chia sẻ số điện thoại", Request.CONTACT),),
        (KeyButton("⬅️ Quay lại"), KeyButton("✖️ Huỷ")),
    )
    rendered = render_reply(Reply("Số điện thoại?", keyboard=keyboard))
    assert "Ông/Bà gõ số điện thoại" in rendered.texts[0]
    assert "Chia sẻ" not in rendered.texts[0]
    assert Menu(tuple(rendered.menu)).pick("quay lai") == MenuEntry("⬅️ Quay lại", None, False)


def test_files_are_announced_not_sent() -> None:
    reply = Reply("Đăng ký năm 2026: 3.", document=Document("dang-ky-ocop-2026.xlsx", b"PK"))
    [text] = render_reply(reply).texts
    assert "dang-ky-ocop-2026.xlsx" in text and "Telegram" in text


def test_a_long_reply_is_split_on_line_ends() -> None:
    lines = [f"OCOP-2026-{n:04d} · Nước mắm cá cơm loại đặc biệt số {n}" for n in range(60)]
    texts = render_reply(Reply("\n".join(lines))).texts
    assert len(texts) == 2 and all(len(text) <= TEXT_LIMIT for text in texts)
    assert "\n".join(texts) == "\n".join(lines)


def test_typed_answers_name_entries_by_number_or_words() -> None:
    menu = Menu(tuple(render([Reply("?", choices=KINDS)]).menu))
    assert menu.pick(" 2. ") == MenuEntry("Đánh giá lại sản phẩm sắp hết hạn", "7:o:reeval")
    assert menu.pick("NANG HANG SAO") == MenuEntry("Nâng hạng sao", "7:o:upgrade")
    assert menu.pick("huy") == MenuEntry("✖️ Huỷ", "7:x", False)
    assert menu.pick("4") is None  # back and cancel have no number
    assert menu.pick("Nước mắm") is None


def test_zalo_updates_become_events() -> None:
    text = to_event(_update("Xin chào"))
    assert text is not None and text.kind is EventKind.TEXT and text.update_id == "abc123"
    assert text.channel == "zalo" and text.chat_id == "u1" and text.display_name == "Bà Năm"
    command = to_event(_update("/start Ab_3x"))
    assert command is not None and (command.command, command.args) == ("start", ("Ab_3x",))
    spaced = to_event(_update("/Đăng Ký"))
    assert spaced is not None and (spaced.kind, spaced.command) == (EventKind.COMMAND, "dangky")
    photo = to_event(_update(None, "message.image.received", photo_url="https://x/y.jpg"))
    assert photo is not None and photo.kind is EventKind.PHOTO
    sticker = to_event(_update(None, "message.sticker.received", sticker="s1"))
    assert sticker is not None and sticker.kind is EventKind.OTHER
    group = _update("hi")
    group["message"]["chat"]["chat_type"] = "GROUP"
    assert to_event(group) is None
    bot = _update("hi")
    bot["message"]["from"]["is_bot"] = True
    assert to_event(bot) is None
