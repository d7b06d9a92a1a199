"""The flow engine on its own: a small form driven in memory, no database and no HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import cast

import pytest

from handlers.context import Context
from handlers.engine import SUMMARY, Engine, Flow, FormMeta, Step
from handlers.events import Choice, Event, EventKind, Outcome, Reply
from handlers.i18n import in_language
from handlers.validators import Option
from models.conversations import Conversation

CTX = cast(Context, SimpleNamespace())  # the steps below never look at it
KINDS = (Option("new", "New product"), Option("renew", "Re-evaluation"))
REUSE = (Option("yes", "Same owner as last time"), Option("no", "Someone else"))


def _reuse(value: str, _answers: dict[str, object], _ctx: Context) -> dict[str, object]:
    # "Same owner" answers the owner question too, so going back must forget both.
    return {"reuse": value, **({"owner": "Nguyễn Văn A"} if value == "yes" else {})}


STEPS = (
    Step("kind", "Which kind?", "Kind", options=lambda _a, _c: KINDS, resets=("certificate",)),
    Step("product", "Product name?", "Product", parse_text=lambda t, _a, _c: {"product": t}),
    Step(
        "certificate",
        "Certificate number?",
        "Certificate",
        parse_text=lambda t, _a, _c: {"certificate": t},
        when=lambda answers: answers.get("kind") == "renew",
    ),
    Step(
        "reuse",
        "Same owner?",
        "Owner reused",
        options=lambda _a, _c: REUSE,
        parse_choice=_reuse,
        fills=("owner",),
    ),
    Step(
        "owner",
        "Owner's name?",
        "Owner",
        parse_text=lambda t, _a, _c: {"owner": t},
        when=lambda answers: answers.get("reuse") != "yes",
    ),
    Step(
        "website",
        "Website?",
        "Website",
        parse_text=lambda t, _a, _c: {"website": t},
        skip_label="Skip",
    ),
)

sent: list[dict[str, object]] = []


async def _complete(answers: dict[str, object], _ctx: Context) -> Outcome:
    sent.append(dict(answers))
    return Outcome([Reply("Sent.")])


FLOW = Flow("test", STEPS, "Your form", "✅ Send", _complete)


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    sent.clear()
    with in_language("en"):  # restored after: later test files expect the default
        yield


class Chat:
    """One producer's chat with the engine: what was said last and the buttons on screen."""

    def __init__(self) -> None:
        self.engine = Engine(FLOW)
        self.conversation = Conversation(
            channel="test", chat_id="1", flow=None, step=None, answers={}, version=0
        )
        self.last: list[Reply] = self.engine.begin(self.conversation, CTX, {})

    @property
    def text(self) -> str:
        return "\n".join(reply.text for reply in self.last)

    @property
    def buttons(self) -> list[Choice]:
        return [choice for reply in self.last for row in reply.choices for choice in row]

    def button(self, label: str) -> Choice:
        return next(choice for choice in self.buttons if label in choice.label)

    @property
    def answers(self) -> dict[str, object]:
        return dict(self.conversation.answers)

    @property
    def asking(self) -> str | None:
        return self.conversation.step

    async def _send(self, event: Event) -> Outcome:
        outcome = await self.engine.handle(self.conversation, CTX, event)
        self.last = outcome.replies
        return outcome

    async def type(self, text: str) -> Outcome:
        return await self._send(Event("test", "1", "1", EventKind.TEXT, text=text))

    async def tap(self, label_or_choice: str | Choice) -> Outcome:
        choice = (
            label_or_choice if isinstance(label_or_choice, Choice) else self.button(label_or_choice)
        )
        return await self._send(Event("test", "1", "1", EventKind.CHOICE, choice=choice.data))


async def _fill(chat: Chat, kind: str = "New product") -> None:
    await chat.tap(kind)
    await chat.type("Nước mắm")
    if kind == "Re-evaluation":
        await chat.type("QĐ-12")
    await chat.tap("Someone else")
    await chat.type("Trần Thị B")
    await chat.tap("Skip")


async def test_questions_come_in_order_and_the_summary_sends_the_answers() -> None:
    chat = Chat()
    assert "Which kind?" in chat.text
    await chat.tap("New product")
    assert "Product name?" in chat.text
    await chat.type("Nước mắm")
    assert "Same owner?" in chat.text  # no certificate question for a new product
    await chat.tap("Someone else")
    await chat.type("Trần Thị B")
    await chat.tap("Skip")
    assert chat.asking == SUMMARY
    assert "<b>Product:</b> Nước mắm" in chat.text
    assert "Certificate" not in chat.text
    await chat.tap("Send")
    assert sent == [
        {
            "kind": "new",
            "product": "Nước mắm",
            "reuse": "no",
            "owner": "Trần Thị B",
            "website": None,
        }
    ]
    assert chat.conversation.flow is None and chat.answers == {}


async def test_when_asks_a_question_only_where_it_applies() -> None:
    chat = Chat()
    await chat.tap("Re-evaluation")
    await chat.type("Nước mắm")
    assert "Certificate number?" in chat.text
    await chat.type("QĐ-12")
    assert "Same owner?" in chat.text


async def test_back_forgets_only_the_previous_answer() -> None:
    chat = Chat()
    await chat.tap("New product")
    await chat.type("Nước mắm")
    await chat.type("back")
    assert "Product name?" in chat.text
    assert chat.answers == {"kind": "new"}
    await chat.tap("Back")
    assert "Which kind?" in chat.text
    assert chat.answers == {}


async def test_back_from_the_summary_asks_the_last_question_again() -> None:
    chat = Chat()
    await _fill(chat)
    await chat.tap("Back")
    assert "Website?" in chat.text
    assert "website" not in chat.answers and chat.answers["owner"] == "Trần Thị B"


async def test_back_skips_questions_that_do_not_apply() -> None:
    chat = Chat()
    await chat.tap("New product")
    await chat.type("Nước mắm")
    await chat.tap("Back")
    assert "Product name?" in chat.text  # not the certificate, never asked for a new product


async def test_back_to_a_step_forgets_what_it_filled() -> None:
    chat = Chat()
    await chat.tap("New product")
    await chat.type("Nước mắm")
    await chat.tap("Same owner as last time")
    assert "Website?" in chat.text  # the owner came with the reused details
    await chat.tap("Back")
    assert "Same owner?" in chat.text
    assert "owner" not in chat.answers and "reuse" not in chat.answers
    await chat.tap("Someone else")
    assert "Owner's name?" in chat.text


async def test_skip_stores_no_answer_and_moves_on() -> None:
    chat = Chat()
    await chat.tap("New product")
    await chat.type("Nước mắm")
    await chat.tap("Someone else")
    await chat.type("Trần Thị B")
    await chat.type("skip")  # typing the skip button's words works as the button
    assert chat.asking == SUMMARY
    assert chat.answers["website"] is None


async def test_a_question_without_skip_offers_no_skip_button() -> None:
    chat = Chat()
    await chat.tap("New product")
    assert all("Skip" not in choice.label for choice in chat.buttons)


async def test_edit_from_the_summary_asks_one_question_then_returns() -> None:
    chat = Chat()
    await _fill(chat)
    await chat.tap("✏️ Product")
    assert "Product name?" in chat.text
    assert "Current answer: Nước mắm" in chat.text
    await chat.type("Mật ong")
    assert chat.asking == SUMMARY
    assert chat.answers["product"] == "Mật ong" and chat.answers["owner"] == "Trần Thị B"


async def test_back_while_editing_keeps_the_answer_and_returns_to_the_summary() -> None:
    chat = Chat()
    await _fill(chat)
    await chat.tap("✏️ Owner")
    await chat.tap("Back")
    assert chat.asking == SUMMARY
    assert chat.answers["owner"] == "Trần Thị B"


async def test_changing_an_answer_resets_the_questions_that_depend_on_it() -> None:
    chat = Chat()
    await _fill(chat, "Re-evaluation")
    assert chat.answers["certificate"] == "QĐ-12"
    await chat.tap("✏️ Kind")
    await chat.tap("Re-evaluation")  # the same answer again: nothing is reset
    assert chat.asking == SUMMARY and chat.answers["certificate"] == "QĐ-12"
    await chat.tap("✏️ Kind")
    await chat.tap("New product")
    assert chat.asking == SUMMARY
    assert "certificate" not in chat.answers
    await chat.tap("✏️ Kind")
    await chat.tap("Re-evaluation")
    assert "Certificate number?" in chat.text  # asked again, the old number is gone


async def test_a_button_from_an_earlier_message_is_refused_and_changes_nothing() -> None:
    chat = Chat()
    await chat.tap("New product")
    await chat.type("Nước mắm")
    stale = chat.button("Same owner as last time")
    await chat.tap("Someone else")
    before = chat.answers
    outcome = await chat.tap(stale)
    assert outcome.toast and "earlier message" in outcome.toast
    assert "Owner's name?" in chat.text  # the current question, shown again
    assert chat.answers == before


async def test_a_stale_back_button_does_not_go_back() -> None:
    chat = Chat()
    await chat.tap("New product")
    stale_back = chat.button("Back")
    await chat.type("Nước mắm")
    await chat.tap(stale_back)
    assert chat.answers == {"kind": "new", "product": "Nước mắm"}


async def test_a_typed_option_picks_it_and_nonsense_asks_again() -> None:
    chat = Chat()
    await chat.type("2")
    assert chat.answers == {"kind": "renew"}
    await chat.type("Back")
    await chat.type("banana")
    assert "Which kind?" in chat.text and "choose one of the buttons" in chat.text
    assert chat.answers == {}
    await chat.type("new product")
    assert chat.answers == {"kind": "new"}


async def test_cancel_drops_the_draft() -> None:
    chat = Chat()
    await chat.tap("New product")
    await chat.tap("Cancel")
    assert chat.conversation.flow is None and chat.answers == {}
    assert sent == []


async def test_really_cancel_is_remembered_apart_from_the_answers_and_forgotten_on_no() -> None:
    """With a draft worth keeping, Cancel asks first; the pending question is the
    conversation's metadata, never an answer, and "No, continue" forgets it: a "yes" typed
    afterwards is an answer again, not a confirmation."""
    chat = Chat()
    chat.engine = Engine(replace(FLOW, confirm_cancel=True))
    await chat.tap("New product")
    await chat.type("Nước mắm")
    await chat.tap("Cancel")
    assert "really" in chat.text.lower() and chat.conversation.flow == "test"
    assert chat.answers == {"kind": "new", "product": "Nước mắm"}
    assert chat.conversation.meta == {"cancelling": chat.conversation.version}
    await chat.tap("No, continue")
    assert chat.asking == "reuse" and chat.conversation.meta is None
    await chat.type("yes")
    assert chat.conversation.flow == "test" and chat.answers["product"] == "Nước mắm"


OFFERED = Flow(
    "offered",
    (
        Step(
            "reuse", "Same owner?", options=lambda _a, _c: REUSE, offered=lambda m: bool(m.previous)
        ),
        Step("product", "Product name?", "Product", parse_text=lambda t, _a, _c: {"product": t}),
    ),
    "Your form",
    "✅ Send",
    _complete,
)


def _idle() -> Conversation:
    return Conversation(channel="test", chat_id="1", flow=None, step=None, answers={}, version=0)


def test_what_a_form_was_started_for_is_kept_apart_from_its_answers_until_it_ends() -> None:
    """Earlier details to reuse: the reuse question is asked, and the details sit in the
    conversation's metadata, not among the answers; cancelling forgets them."""
    engine = Engine(OFFERED)
    conversation = _idle()
    replies = engine.begin(conversation, CTX, {}, meta=FormMeta(previous={"owner": "A"}))
    assert "Same owner?" in replies[0].text
    assert conversation.answers == {}
    assert conversation.meta == {"previous": {"owner": "A"}}
    engine.cancel(conversation)
    assert conversation.flow is None and conversation.meta is None


def test_a_question_offered_only_with_earlier_details_is_not_asked_without_them() -> None:
    conversation = _idle()
    replies = Engine(OFFERED).begin(conversation, CTX, {})
    assert "Product name?" in replies[0].text
    assert conversation.meta is None
