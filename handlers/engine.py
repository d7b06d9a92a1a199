"""Runs a flow declared as an ordered list of steps, keeping its state in the database.

The state of a chat is (flow, step, answers, version). The next step is always the first
applicable step without an answer, so "back" only forgets one answer and "edit" only asks one
step again; nothing else needs to be remembered. Every change bumps `version`, which is put into
every button, so a button from an older message is recognized and refused.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from handlers.callbacks import FlowButton
from handlers.context import Context
from handlers.events import Choice, Event, EventKind, KeyButton, Outcome, Reply, Request
from handlers.i18n import _
from handlers.labels import NO_WORDS, YES_WORDS
from handlers.validators import Invalid, Option
from models.conversations import Conversation
from models.domain import parse_number
from models.text import fold

Answers = dict[str, Any]
SUMMARY = "summary"

BACK_WORDS = frozenset({"quay lai", "tro lai", "back"})
CANCEL_WORDS = frozenset({"huy", "huy bo", "cancel"})


@dataclass(frozen=True)
class FormMeta:
    """What a conversation holds that no question asks. In a form: the registration it changes
    (a returned, corrected or reviewed one), the certificate a re-evaluation renews, the
    producer details of the last registration it offers to reuse, the status a review sets, the
    papers a return asks for, and while "really cancel?" is asked, the version that asked it.
    Outside a form: a dossier file waiting for the paper it is (handlers/dossier.py) and the
    papers an official is choosing to ask for (handlers/dossier_review.py). Kept in
    `Conversation.meta`, never among the answers: read with `meta_of`, set by `Engine.begin`
    and `set_meta`."""

    registration: int | None = None
    certificate: int | None = None
    previous: dict[str, Any] | None = None
    status: str | None = None
    items: list[str] | None = None
    cancelling: int | None = None
    dossier: dict[str, Any] | None = None
    asking: dict[str, Any] | None = None


_NO_META = FormMeta()


def meta_of(conversation: Conversation | None) -> FormMeta:
    """The conversation's metadata (empty without a conversation)."""
    stored = conversation.meta if conversation is not None else None
    return FormMeta(**stored) if stored else _NO_META


def set_meta(conversation: Conversation, meta: FormMeta) -> None:
    stored = {key: value for key, value in vars(meta).items() if value is not None}
    conversation.meta = stored or None


def change_meta(conversation: Conversation, **changes: Any) -> None:
    """Change some fields of the conversation's metadata, keeping the others."""
    set_meta(conversation, replace(meta_of(conversation), **changes))


# A confirmation is asked before dropping a draft with at least this many answers.
CONFIRM_CANCEL_FROM = 2
Menu = Callable[[Context], tuple[tuple[Choice, ...], ...]]
_LEADING_SYMBOLS = re.compile(r"^[\W_]+")


def _always(_answers: Answers) -> bool:
    return True


def _offered_always(_meta: FormMeta) -> bool:
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
    # Asked only in forms started so (the reuse question: only with earlier details to reuse).
    offered: Callable[[FormMeta], bool] = _offered_always
    skip_label: str | None = None
    resets: tuple[str, ...] = ()
    fills: tuple[str, ...] = ()
    show: Callable[[Answers, Context], str] | None = None
    note: Callable[[Answers, Context], str | None] | None = None
    columns: int = 2
    text_hint: str | None = None
    # A catalog string: comma-separated words that also mean the skip button ("không biết").
    skip_words: str | None = None
    # False: typed text always goes to `parse_text` (it knows more than the buttons do), only
    # a button's number picks a button.
    match_typed: bool = True
    # The prompt's and the label's msgids when they depend on earlier answers (a household
    # has a "chủ hộ", not a legal representative).
    prompts: Callable[[Answers], str] | None = None
    labels: Callable[[Answers], str] | None = None

    def label_for(self, answers: Answers) -> str:
        """The label, translated."""
        return _(self.labels(answers) if self.labels else self.label)


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
    # Ask "really cancel?" before dropping a draft (the producer's long form).
    confirm_cancel: bool = False
    # The progress counter starts once this question is answered (it decides which questions
    # follow, so a count shown before it would change).
    progress_after: str | None = None
    # Gentle warnings shown above the summary, each with the question it suggests answering
    # again: [(text, step key)].
    summary_hints: Callable[[Answers, Context], list[tuple[str, str]]] | None = None
    by_key: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_key", {step.key: step for step in self.steps})

    def applicable(self, answers: Answers, meta: FormMeta | None = None) -> list[Step]:
        meta = meta or FormMeta()
        return [step for step in self.steps if step.when(answers) and step.offered(meta)]

    def next_step(self, answers: Answers, meta: FormMeta | None = None) -> str:
        for step in self.applicable(answers, meta):
            if step.key not in answers:
                return step.key
        return SUMMARY

    def summary_lines(
        self, answers: Answers, ctx: Context, meta: FormMeta | None = None
    ) -> list[str]:
        """One "label: answer" line per answered field, user values escaped."""
        return [
            f"<b>{step.label_for(answers)}:</b> {html.escape(_shown(step, answers, ctx))}"
            for step in self.applicable(answers, meta)
            if step.label and step.key in answers
        ]


def _shown(step: Step, answers: Answers, ctx: Context) -> str:
    if step.show is not None:
        return step.show(answers, ctx)
    value = answers.get(step.key)
    return "" if value is None else str(value)


def _store(
    conversation: Conversation,
    answers: Answers,
    step: str,
    editing: bool = False,
    cancelling: bool = False,
) -> None:
    conversation.answers = dict(answers)  # a new dict, so the JSON column is marked changed
    conversation.step = step
    conversation.editing = editing
    conversation.version += 1
    # Any step forgets a pending "cancel?"; the one that asks it remembers its version.
    if cancelling or meta_of(conversation).cancelling is not None:
        change_meta(conversation, cancelling=conversation.version if cancelling else None)


def words(msgid: str) -> frozenset[str]:
    """A catalog list of comma-separated words, folded; the English ones count too."""
    return frozenset(fold(w) for w in f"{_(msgid)},{msgid}".split(",") if fold(w))


def _nav_row(version: int) -> tuple[Choice, ...]:
    return (
        Choice(_("⬅️ Back"), FlowButton(version, "b").encode()),
        Choice(_("✖️ Cancel"), FlowButton(version, "x").encode()),
    )


def _rows(choices: Sequence[Choice], columns: int) -> list[tuple[Choice, ...]]:
    return [tuple(choices[i : i + columns]) for i in range(0, len(choices), columns)]


class Engine:
    """Drives one flow for one chat; the caller owns the session and the transaction."""

    def __init__(self, flow: Flow, menu: Menu | None = None) -> None:
        """`menu`: the main menu, shown after cancelling and by "back" on the first question."""
        self.flow = flow
        self.menu = menu

    # --- starting and rendering -------------------------------------------------------

    def begin(
        self,
        conversation: Conversation,
        ctx: Context,
        preset: Answers,
        step: str | None = None,
        meta: FormMeta | None = None,
    ) -> list[Reply]:
        """Start the flow with some answers known and what it is for (`meta`); `step` jumps to
        a question (or the summary)."""
        meta = meta or FormMeta()
        conversation.flow = self.flow.name
        set_meta(conversation, meta)
        _store(conversation, dict(preset), step or self.flow.next_step(preset, meta))
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
        lines = []
        if notice:
            lines += [f"⚠️ {notice}", ""]
        progress = (
            None if conversation.editing else self._progress(answers, meta_of(conversation), step)
        )
        if progress:
            lines.append(f"<i>{progress}</i>")
        lines.append(_(step.prompts(answers) if step.prompts else step.prompt))
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
        buttons = [
            Choice(option.label, FlowButton(version, "o", option.value).encode())
            for option in shown
        ]
        rows = _rows(buttons, step.columns)
        if step.skip_label:
            rows.append((Choice(_(step.skip_label), FlowButton(version, "s").encode()),))
        rows.append(_nav_row(version))
        return [Reply(text, choices=tuple(rows))]

    def _progress(self, answers: Answers, meta: FormMeta, step: Step) -> str | None:
        """How many questions are left, this one included. Only questions still unanswered
        count, so a straight walk-through counts down by one; an answer that makes questions
        unnecessary (a household has no separate name, reused details) only shortens it."""
        after = self.flow.progress_after
        if after is not None and after not in answers:
            return None
        left = [s for s in self.flow.applicable(answers, meta) if s.key not in answers]
        if len(self.flow.steps) <= 1 or step not in left:
            return None
        if len(left) == 1:
            return _("Last question")
        return _("{n} questions left").format(n=len(left))

    def _summary(self, conversation: Conversation, ctx: Context, notice: str | None) -> Reply:
        version = conversation.version
        lines = [f"⚠️ {notice}", ""] if notice else []
        lines += [f"<b>{_(self.flow.summary_title)}</b>", ""]
        lines += self.flow.summary_lines(conversation.answers, ctx, meta_of(conversation))
        submit = _LEADING_SYMBOLS.sub("", _(self.flow.submit_label))  # "✅ Gửi hồ sơ": the words
        lines += [
            "",
            _("Check the details. Tap a field to change it, or tap “{submit}”.").format(
                submit=submit
            ),
        ]
        hints = (
            self.flow.summary_hints(conversation.answers, ctx) if self.flow.summary_hints else []
        )
        for hint, _key in hints:
            lines += ["", f"💡 {hint}"]
        retype = [
            (
                Choice(
                    _("✏️ Retype: {field}").format(
                        field=self.flow.by_key[key].label_for(conversation.answers)
                    ),
                    FlowButton(version, "e", key).encode(),
                ),
            )
            for _hint, key in hints
        ]
        edits = [
            Choice(
                "✏️ " + step.label_for(conversation.answers),
                FlowButton(version, "e", step.key).encode(),
            )
            for step in self.flow.applicable(conversation.answers, meta_of(conversation))
            if step.label
        ]
        rows = [*retype, *_rows(edits, 2)]
        rows.append((Choice(_(self.flow.submit_label), FlowButton(version, "ok").encode()),))
        rows.append(_nav_row(version))
        return Reply("\n".join(lines), choices=tuple(rows))

    # --- handling input ---------------------------------------------------------------

    async def handle(self, conversation: Conversation, ctx: Context, event: Event) -> Outcome:
        """One event while this flow is active; returns the replies."""
        before = self._step(conversation)
        answered = dict(conversation.answers)
        typed = fold(event.text or "") if event.kind is EventKind.TEXT else None
        asked = meta_of(conversation).cancelling == conversation.version
        if asked and typed is not None and typed in words(YES_WORDS) | CANCEL_WORDS:
            outcome = Outcome(self.cancel(conversation, ctx))
        elif asked and typed is not None and typed in words(NO_WORDS) | BACK_WORDS:
            outcome = Outcome(self.resume(conversation, ctx))
        elif event.kind is EventKind.CHOICE:
            outcome = await self._on_choice(conversation, ctx, event.choice or "")
        elif typed in BACK_WORDS:
            outcome = Outcome(self.back(conversation, ctx))
        elif typed in CANCEL_WORDS:
            outcome = Outcome(self.ask_cancel(conversation, ctx))
        elif (
            before is not None
            and before.skip_label
            and typed is not None
            and typed
            in (
                {fold(_(before.skip_label))}
                | (words(before.skip_words) if before.skip_words else set())
            )
        ):
            outcome = await self._accept(conversation, ctx, before, {before.key: None})
        else:
            outcome = await self._on_input(conversation, ctx, event)
        after = self._step(conversation) if conversation.flow else None
        # Typed, not tapped: the question's buttons are still live until the channel takes them.
        outcome.spends_buttons = event.kind is not EventKind.CHOICE and any(
            reply.choices for reply in outcome.replies
        )
        if before is not None and before.request and not (after and after.request):
            self._drop_keyboard(outcome, self._received(before, answered, conversation, ctx))
        return outcome

    def _step(self, conversation: Conversation) -> Step | None:
        return self.flow.by_key.get(conversation.step or "")

    @staticmethod
    def _received(step: Step, before: Answers, conversation: Conversation, ctx: Context) -> str:
        """What the producer just gave at a step that showed a reply keyboard, said back to
        them: the message that takes the keyboard away."""
        answers = conversation.answers
        if step.key not in answers or answers.get(step.key) == before.get(step.key):
            return _("The earlier answer is kept.")
        if answers[step.key] is None:
            return _("Skipped.")
        if step.request is Request.LOCATION:
            return _("📍 Location received.")
        return _("Received: {answer}").format(answer=html.escape(_shown(step, answers, ctx)))

    @staticmethod
    def _drop_keyboard(outcome: Outcome, said: str) -> None:
        """Take the reply keyboard away with the first message, or with a message saying what
        was received when the first one carries buttons (one message has one keyboard)."""
        first = outcome.replies[0] if outcome.replies else None
        if first is not None and not first.choices and not first.keyboard:
            outcome.replies[0] = Reply(first.text, remove_keyboard=True, document=first.document)
        else:
            outcome.replies.insert(0, Reply(said, remove_keyboard=True))

    async def _on_choice(self, conversation: Conversation, ctx: Context, data: str) -> Outcome:
        button = FlowButton.decode(data)
        if button is None or button.version != conversation.version:
            notice = _("That button belongs to an earlier message. Here is the current question.")
            return Outcome(self.render(conversation, ctx, notice), toast=notice)
        action, argument = button.action, button.argument or ""
        step = self._step(conversation)
        if action == "b":
            return Outcome(self.back(conversation, ctx))
        if action == "x":
            return Outcome(self.ask_cancel(conversation, ctx))
        if action == "xy":
            return Outcome(self.cancel(conversation, ctx))
        if action == "xn":
            return Outcome(self.resume(conversation, ctx))
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
            picked = _match_option(text, options, numbers_only=not step.match_typed)
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
        _store(conversation, answers, self.flow.next_step(answers, meta_of(conversation)))
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
        meta = meta_of(conversation)
        if conversation.editing:
            _store(conversation, answers, self.flow.next_step(answers, meta))
            return self.render(conversation, ctx)
        applicable = [step for step in self.flow.applicable(answers, meta) if step.key in answers]
        if conversation.step != SUMMARY:
            current = self.flow.by_key[conversation.step or ""]
            order = [step.key for step in self.flow.steps]
            limit = order.index(current.key)
            applicable = [step for step in applicable if order.index(step.key) < limit]
        if not applicable:
            if self.menu is None:
                return self.render(conversation, ctx, _("This is the first question."))
            if _answered(self.flow, answers):  # later answers exist: keep the draft for later
                return [
                    Reply(
                        _(
                            "Here is the main menu. Your unfinished registration is kept; "
                            "send /dangky to continue it."
                        ),
                        choices=self.menu(ctx),
                    )
                ]
            self.finish(conversation)
            return [Reply(_("What would you like to do?"), choices=self.menu(ctx))]
        previous = applicable[-1]
        for key in (previous.key, *previous.fills):
            answers.pop(key, None)
        _store(conversation, answers, previous.key)
        return self.render(conversation, ctx)

    def ask_cancel(self, conversation: Conversation, ctx: Context) -> list[Reply]:
        """ "Cancel" on a draft with answers asks first: one tap should not lose them."""
        if (
            not self.flow.confirm_cancel
            or _answered(self.flow, conversation.answers) < CONFIRM_CANCEL_FROM
        ):
            return self.cancel(conversation, ctx)
        _store(
            conversation,
            conversation.answers,
            conversation.step or "",
            conversation.editing,
            cancelling=True,
        )
        version = conversation.version
        text = _(
            "Do you really want to cancel this registration? The {count} answers you gave "
            "will be deleted and nothing will be sent."
        ).format(count=_answered(self.flow, conversation.answers))
        choices = (
            (Choice(_("🗑 Yes, cancel it"), FlowButton(version, "xy").encode()),),
            (Choice(_("↩️ No, continue"), FlowButton(version, "xn").encode()),),
        )
        return [Reply(text, choices=choices)]

    def resume(
        self, conversation: Conversation, ctx: Context, notice: str | None = None
    ) -> list[Reply]:
        """The current question again (after "no, continue", or when the producer comes back)."""
        if meta_of(conversation).cancelling is not None:
            _store(
                conversation, conversation.answers, conversation.step or "", conversation.editing
            )
        return self.render(conversation, ctx, notice)

    def cancel(self, conversation: Conversation, ctx: Context | None = None) -> list[Reply]:
        self.finish(conversation)
        cancelled = Reply(_(self.flow.cancelled), remove_keyboard=True)
        if self.menu is None or ctx is None:
            return [cancelled]
        return [cancelled, Reply(_("What would you like to do?"), choices=self.menu(ctx))]

    @staticmethod
    def finish(conversation: Conversation) -> None:
        conversation.flow = None
        conversation.meta = None
        _store(conversation, {}, "")
        conversation.step = None


def _answered(flow: Flow, answers: Answers) -> int:
    """How many of the flow's questions have an answer (some fill other keys too)."""
    return sum(1 for key in answers if key in flow.by_key)


def _match_option(
    text: str, options: Sequence[Option], numbers_only: bool = False
) -> Option | None:
    """A typed answer that names one option, with or without diacritics: its label, value or
    one of its words; its number; else the one option whose label (or a word of it) contains
    the typed words ("ho", "danh gia lai"), else the one whose label starts so ("nang")."""
    key = fold(text)
    if not key:
        return None
    if not numbers_only:
        for option in options:
            if key in (fold(option.label), fold(option.value)) or key in _option_words(option):
                return option
    number = parse_number(key, max_digits=4)
    if number is not None and 1 <= number <= len(options):
        return options[number - 1]
    if numbers_only:
        return None
    phrase = f" {key} "
    found = [
        option
        for option in options
        if any(phrase in f" {name} " for name in (fold(option.label), *_option_words(option)))
    ]
    if not found:
        found = [option for option in options if fold(option.label).startswith(key)]
    return found[0] if len(found) == 1 else None


def _option_words(option: Option) -> frozenset[str]:
    return frozenset(fold(w) for w in option.words.split(",") if fold(w))
