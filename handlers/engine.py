"""Runs a flow declared as an ordered list of steps, keeping its state in the database.

The state of a chat is (flow, step, answers, version). The next step is always the first
applicable step without an answer, so "back" only forgets one answer and "edit" only asks one
step again; nothing else needs to be remembered. Every change bumps `version`, which is put into
every button, so a button from an older message is recognized and refused.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from handlers.context import Context
from handlers.events import Choice, Event, EventKind, KeyButton, Outcome, Reply, Request
from handlers.i18n import _
from handlers.validators import Invalid, Option
from models.admin_units import fold
from models.conversations import Conversation
from models.domain import parse_number

Answers = dict[str, Any]
SUMMARY = "summary"

BACK_WORDS = frozenset({"quay lai", "tro lai", "back"})
CANCEL_WORDS = frozenset({"huy", "huy bo", "cancel"})


def _always(_answers: Answers) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    """One question. Choice steps have `options`; text steps have `parse_text`."""

    key: str
    prompt: str
    label: str = ""
    options: Callable[[Answers, Context], Sequence[Option]] | None = None
    parse_text: Callable[[str, Answers, Context], Answers] | None = None
    parse_choice: Callable[[str, Answers, Context], Answers] | None = None
    request: Request | None = None
    when: Callable[[Answers], bool] = _always
    skip_label: str | None = None
    resets: tuple[str, ...] = ()
    fills: tuple[str, ...] = ()
    show: Callable[[Answers, Context], str] | None = None
    note: Callable[[Answers, Context], str | None] | None = None
    columns: int = 2
    text_hint: str | None = None


class Held(Exception):
    """Raised by a flow's `complete` when the form cannot be sent as it stands (the same product
    is already waiting): its replies are shown and the form stays at its summary, every
    answer kept."""

    def __init__(self, *replies: Reply) -> None:
        super().__init__()
        self.replies = replies


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    summary_title: str
    submit_label: str
    complete: Callable[[Answers, Context], Awaitable[Outcome]]
    cancelled: str = "Registration cancelled. Nothing was sent."
    # Without a confirmation the flow completes as soon as its last question is answered.
    confirm: bool = True
    by_key: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {step.key: step for step in self.steps})

    def applicable(self, answers: Answers) -> list[Step]:
        return [step for step in self.steps if step.when(answers)]

    def next_step(self, answers: Answers) -> str:
        for step in self.applicable(answers):
            if step.key not in answers:
                return step.key
        return SUMMARY

    def summary_lines(self, answers: Answers, ctx: Context) -> list[str]:
        """One "label: answer" line per answered field, user values escaped."""
        return [
            f"<b>{_(step.label)}:</b> {html.escape(_shown(step, answers, ctx))}"
            for step in self.applicable(answers)
            if step.label and step.key in answers
        ]


def _shown(step: Step, answers: Answers, ctx: Context) -> str:
    if step.show is not None:
        return step.show(answers, ctx)
    value = answers.get(step.key)
    return "" if value is None else str(value)


def _store(conversation: Conversation, answers: Answers, step: str, editing: bool = False) -> None:
    conversation.answers = answers  # a new dict, so the JSON column is marked changed
    conversation.step = step
    conversation.editing = editing
    conversation.version += 1


def _nav_row(version: int) -> tuple[Choice, ...]:
    return (Choice(_("⬅️ Back"), f"{version}:b"), Choice(_("✖️ Cancel"), f"{version}:x"))


def _rows(choices: Sequence[Choice], columns: int) -> list[tuple[Choice, ...]]:
    return [tuple(choices[i : i + columns]) for i in range(0, len(choices), columns)]


class Engine:
    """Drives one flow for one chat; the caller owns the session and the transaction."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow

    # --- starting and rendering -------------------------------------------------------

    def begin(
        self, conversation: Conversation, ctx: Context, preset: Answers, step: str | None = None
    ) -> list[Reply]:
        """Start the flow with some answers known; `step` jumps to a question (or the summary)."""
        conversation.flow = self.flow.name
        _store(conversation, dict(preset), step or self.flow.next_step(preset))
        return self.render(conversation, ctx)

    def render(
        self,
        conversation: Conversation,
        ctx: Context,
        notice: str | None = None,
        options: Sequence[Option] = (),
    ) -> list[Reply]:
        """The current question (or the summary), after an optional notice."""
        if conversation.step == SUMMARY:
            return [self._summary(conversation, ctx, notice)]
        step = self.flow.by_key[conversation.step or ""]
        answers = conversation.answers
        applicable = self.flow.applicable(answers)
        position = next((i for i, s in enumerate(applicable) if s.key == step.key), 0) + 1
        lines = []
        if notice:
            lines += [f"⚠️ {notice}", ""]
        if len(applicable) > 1:
            progress = _("Question {n} of {total}").format(n=position, total=len(applicable))
            lines.append(f"<i>{progress}</i>")
        lines.append(_(step.prompt))
        extra = step.note(answers, ctx) if step.note else None
        if extra:
            lines.append(extra)
        if conversation.editing and step.key in answers:
            lines.append(
                _("Current answer: {answer}").format(answer=html.escape(_shown(step, answers, ctx)))
            )
        text = "\n".join(lines)
        version = conversation.version
        if step.request is not None:
            share = (
                _("📱 Share my phone number")
                if step.request is Request.CONTACT
                else _("📍 Send my location")
            )
            keyboard: list[tuple[KeyButton, ...]] = [(KeyButton(share, step.request),)]
            if step.skip_label:
                keyboard.append((KeyButton(_(step.skip_label)),))
            keyboard.append((KeyButton(_("⬅️ Back")), KeyButton(_("✖️ Cancel"))))
            return [Reply(text, keyboard=tuple(keyboard))]
        shown = options or (step.options(answers, ctx) if step.options else ())
        buttons = [Choice(option.label, f"{version}:o:{option.value}") for option in shown]
        rows = _rows(buttons, step.columns)
        if step.skip_label:
            rows.append((Choice(_(step.skip_label), f"{version}:s"),))
        rows.append(_nav_row(version))
        return [Reply(text, choices=tuple(rows))]

    def _summary(self, conversation: Conversation, ctx: Context, notice: str | None) -> Reply:
        version = conversation.version
        lines = [f"⚠️ {notice}", ""] if notice else []
        lines += [f"<b>{_(self.flow.summary_title)}</b>", ""]
        lines += self.flow.summary_lines(conversation.answers, ctx)
        lines += ["", _("Check the details. Tap a field to change it, or send the registration.")]
        edits = [
            Choice("✏️ " + _(step.label), f"{version}:e:{step.key}")
            for step in self.flow.applicable(conversation.answers)
            if step.label
        ]
        rows = _rows(edits, 2)
        rows.append((Choice(_(self.flow.submit_label), f"{version}:ok"),))
        rows.append(_nav_row(version))
        return Reply("\n".join(lines), choices=tuple(rows))

    # --- handling input ---------------------------------------------------------------

    async def handle(self, conversation: Conversation, ctx: Context, event: Event) -> Outcome:
        """One event while this flow is active; returns the replies."""
        before = self._step(conversation)
        if event.kind is EventKind.CHOICE:
            outcome = await self._on_choice(conversation, ctx, event.choice or "")
        elif event.kind is EventKind.TEXT and fold(event.text or "") in BACK_WORDS:
            outcome = Outcome(self.back(conversation, ctx))
        elif event.kind is EventKind.TEXT and fold(event.text or "") in CANCEL_WORDS:
            outcome = Outcome(self.cancel(conversation))
        elif (
            before is not None
            and before.skip_label
            and event.kind is EventKind.TEXT
            and fold(event.text or "") == fold(_(before.skip_label))
        ):
            outcome = await self._accept(conversation, ctx, before, {before.key: None})
        else:
            outcome = await self._on_input(conversation, ctx, event)
        after = self._step(conversation) if conversation.flow else None
        if before is not None and before.request and not (after and after.request):
            self._drop_keyboard(outcome)
        return outcome

    def _step(self, conversation: Conversation) -> Step | None:
        return self.flow.by_key.get(conversation.step or "")

    @staticmethod
    def _drop_keyboard(outcome: Outcome) -> None:
        first = outcome.replies[0] if outcome.replies else None
        if first is not None and not first.choices and not first.keyboard:
            outcome.replies[0] = Reply(first.text, remove_keyboard=True, document=first.document)
        else:
            outcome.replies.insert(0, Reply("👌", remove_keyboard=True))

    async def _on_choice(self, conversation: Conversation, ctx: Context, data: str) -> Outcome:
        version, _sep, rest = data.partition(":")
        if parse_number(version) != conversation.version:
            notice = _("That button belongs to an earlier message. Here is the current question.")
            return Outcome(self.render(conversation, ctx, notice), toast=notice)
        action, _sep, argument = rest.partition(":")
        step = self._step(conversation)
        if action == "b":
            return Outcome(self.back(conversation, ctx))
        if action == "x":
            return Outcome(self.cancel(conversation))
        if action == "ok" and conversation.step == SUMMARY:
            return await self._complete(conversation, ctx)
        if action == "e" and conversation.step == SUMMARY and argument in self.flow.by_key:
            _store(conversation, conversation.answers, argument, editing=True)
            return Outcome(self.render(conversation, ctx))
        if action == "s" and step is not None and step.skip_label:
            return await self._accept(conversation, ctx, step, {step.key: None})
        if action == "o" and step is not None and step.options is not None:
            values = {option.value for option in step.options(conversation.answers, ctx)}
            try:
                if step.parse_choice is not None:
                    update = step.parse_choice(argument, conversation.answers, ctx)
                elif argument in values:
                    update = {step.key: argument}
                else:
                    raise Invalid(_("Please choose one of the buttons."))
            except Invalid as invalid:
                return Outcome(self.render(conversation, ctx, invalid.message, invalid.options))
            return await self._accept(conversation, ctx, step, update)
        notice = _("That button belongs to an earlier message. Here is the current question.")
        return Outcome(self.render(conversation, ctx, notice), toast=notice)

    async def _on_input(self, conversation: Conversation, ctx: Context, event: Event) -> Outcome:
        step = self._step(conversation)
        if step is None:  # the summary: only its buttons mean something
            notice = _("Please use the buttons below the summary.")
            return Outcome(self.render(conversation, ctx, notice))
        try:
            update = self._parse(step, conversation.answers, ctx, event)
        except Invalid as invalid:
            return Outcome(self.render(conversation, ctx, invalid.message, invalid.options))
        return await self._accept(conversation, ctx, step, update)

    def _parse(self, step: Step, answers: Answers, ctx: Context, event: Event) -> Answers:
        if step.request is Request.CONTACT and event.kind is EventKind.CONTACT:
            return self._parse_text(step, event.phone or "", answers, ctx)
        if step.request is Request.LOCATION and event.kind is EventKind.LOCATION:
            return {step.key: [event.latitude, event.longitude]}
        if event.kind is not EventKind.TEXT or not (event.text or "").strip():
            hint = _(step.text_hint) if step.text_hint else _("Please type your answer as text.")
            raise Invalid(hint)
        return self._parse_text(step, event.text or "", answers, ctx)

    def _parse_text(self, step: Step, text: str, answers: Answers, ctx: Context) -> Answers:
        if step.options is not None:
            options = list(step.options(answers, ctx))
            picked = _match_option(text, options)
            if picked is not None:
                if step.parse_choice is not None:
                    return step.parse_choice(picked.value, answers, ctx)
                return {step.key: picked.value}
            if step.parse_text is None:
                raise Invalid(_("Please choose one of the buttons."))
        if step.parse_text is None:
            raise Invalid(_(step.text_hint) if step.text_hint else _("Please use the buttons."))
        return step.parse_text(text, answers, ctx)

    async def _accept(
        self, conversation: Conversation, ctx: Context, step: Step, update: Answers
    ) -> Outcome:
        answers = dict(conversation.answers)
        changed = any(answers.get(key) != value for key, value in update.items())
        if changed:
            for key in step.resets:
                answers.pop(key, None)
        answers.update(update)
        _store(conversation, answers, self.flow.next_step(answers))
        if conversation.step == SUMMARY and not self.flow.confirm:
            return await self._complete(conversation, ctx)
        return Outcome(self.render(conversation, ctx))

    async def _complete(self, conversation: Conversation, ctx: Context) -> Outcome:
        try:
            outcome = await self.flow.complete(conversation.answers, ctx)
        except Held as held:
            return Outcome([*held.replies, *self.render(conversation, ctx)])
        self.finish(conversation)
        return outcome

    def back(self, conversation: Conversation, ctx: Context) -> list[Reply]:
        answers = dict(conversation.answers)
        if conversation.editing:
            _store(conversation, answers, self.flow.next_step(answers))
            return self.render(conversation, ctx)
        applicable = [step for step in self.flow.applicable(answers) if step.key in answers]
        if conversation.step != SUMMARY:
            current = self.flow.by_key[conversation.step or ""]
            order = [step.key for step in self.flow.steps]
            limit = order.index(current.key)
            applicable = [step for step in applicable if order.index(step.key) < limit]
        if not applicable:
            return self.render(conversation, ctx, _("This is the first question."))
        previous = applicable[-1]
        for key in (previous.key, *previous.fills):
            answers.pop(key, None)
        _store(conversation, answers, previous.key)
        return self.render(conversation, ctx)

    def cancel(self, conversation: Conversation) -> list[Reply]:
        self.finish(conversation)
        return [Reply(_(self.flow.cancelled), remove_keyboard=True)]

    @staticmethod
    def finish(conversation: Conversation) -> None:
        conversation.flow = None
        _store(conversation, {}, "")
        conversation.step = None


def _match_option(text: str, options: Sequence[Option]) -> Option | None:
    """A typed answer that names an option: its number, its label or its value."""
    key = fold(text)
    number = parse_number(key, max_digits=4)
    if number is not None and 1 <= number <= len(options):
        return options[number - 1]
    for option in options:
        if key in (fold(option.label), fold(option.value)):
            return option
    return None
