"""How replies look on Zalo: plain text, choices as a numbered list, words instead of keyboards,
a note instead of a file, and at most 2000 characters per message.

The handlers write Telegram HTML (user values escaped); Zalo shows text as is, so tags are
dropped and entities unescaped. Buttons, and the plain buttons of a reply keyboard, become
numbered lines ("1. Thực phẩm") followed by "Trả lời 1, 2 hoặc 3"; the user answers with the
number or the option's words, and `models.menus.Menu.pick` turns that answer back into the
button. "Back" and "cancel" are listed as words to type, without numbers, so a question that
wants typed text does not read like a multiple-choice one. Contact and location requests, which
Zalo cannot make, become a line saying what to type instead.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.channels.text import split_message
from handlers.engine import BACK_WORDS, CANCEL_WORDS
from handlers.events import Reply, Request
from handlers.i18n import _
from models.menus import MenuEntry
from models.text import fold

TEXT_LIMIT = 2000
# Up to this many numbers are listed one by one ("1, 2 or 3"); more are given as a range.
LISTED_NUMBERS = 4
_TAG = re.compile(r"<[^<>]+>")
# Buttons whose words the form engine understands typed ("quay lại", "huỷ", "back", "cancel").
_NAVIGATION = BACK_WORDS | CANCEL_WORDS
_LEADING_SYMBOLS = re.compile(r"^\W+")


def plain_text(text: str) -> str:
    """Telegram HTML as the text a user would see: tags dropped, entities unescaped."""
    return html.unescape(_TAG.sub("", text))


@dataclass
class Rendered:
    """Messages ready for sendMessage, and what a typed answer to them may name."""

    texts: list[str] = field(default_factory=list)
    menu: list[MenuEntry] = field(default_factory=list)


def _answer_hint(numbers: Sequence[int]) -> str:
    if len(numbers) == 1:
        return _("Reply {number}.").format(number=numbers[0])
    if len(numbers) <= LISTED_NUMBERS:
        listed = ", ".join(str(number) for number in numbers[:-1])
        return _("Reply {numbers} or {last}.").format(numbers=listed, last=numbers[-1])
    return _("Reply with a number from {first} to {last}.").format(
        first=numbers[0], last=numbers[-1]
    )


def _word(label: str) -> str:
    """A button label as the user would type it: without its leading emoji."""
    return _LEADING_SYMBOLS.sub("", label) or label


def _entries(reply: Reply) -> tuple[list[MenuEntry], list[MenuEntry], list[str]]:
    """(numbered entries, entries answered by words only, hint lines) of one reply."""
    entries: list[MenuEntry] = []
    hints: list[str] = []
    for row in reply.choices:
        entries += [MenuEntry(choice.label, choice.data) for choice in row]
    for keys in reply.keyboard:
        for button in keys:
            if button.request is Request.CONTACT:  # no contact sharing on Zalo: the phone is typed
                hints.append(_("Type your phone number, for example 0905 123 456."))
            elif button.request is Request.LOCATION:
                hints.append(_("Locations cannot be sent on Zalo."))
            else:  # a keyboard button only sends its label as text
                entries.append(MenuEntry(button.label, None))
    numbered = [entry for entry in entries if fold(entry.label) not in _NAVIGATION]
    words = [
        MenuEntry(entry.label, entry.data, numbered=False)
        for entry in entries
        if fold(entry.label) in _NAVIGATION
    ]
    return numbered, words, hints


def render_reply(reply: Reply, first_number: int = 1) -> Rendered:
    """One reply as Zalo messages; its numbered choices start at `first_number`."""
    numbered, words, hints = _entries(reply)
    lines = [plain_text(reply.text)] if reply.text.strip() else []
    if reply.document is not None:
        lines.append(
            _(
                "📎 {name}: Zalo cannot carry files. Get it on Telegram, or ask an administrator."
            ).format(name=reply.document.file_name)
        )
    lines += hints
    menu_lines = [f"{first_number + index}. {entry.label}" for index, entry in enumerate(numbered)]
    if numbered:
        menu_lines.append(_answer_hint(range(first_number, first_number + len(numbered))))
    if words:
        typed = " · ".join(_word(entry.label) for entry in words)
        menu_lines.append(_("Or type: {words}").format(words=typed))
    if lines and menu_lines:
        lines.append("")
    text = "\n".join(lines + menu_lines)
    texts = split_message(text, TEXT_LIMIT, html=False) if text.strip() else []
    return Rendered([chunk for chunk in texts if chunk.strip()], numbered + words)


def render(replies: Sequence[Reply]) -> Rendered:
    """Replies sent together. Numbers run on from one message to the next (an official's list
    of registrations, each with its own buttons), so every choice of the batch can be named."""
    batch = Rendered()
    for reply in replies:
        first = sum(entry.numbered for entry in batch.menu) + 1
        rendered = render_reply(reply, first)
        batch.texts += rendered.texts
        batch.menu += rendered.menu
    return batch
